// Misbehaving printers for the fault torture: a RAW sink whose faults switch on a schedule, and a serial line that can be unplugged.
//
// const sink = await startFaultSink();          // 'normal' on a random port of 127.0.0.1
// await sink.setMode('refuse');                 // listener closed: ECONNREFUSED
// await sink.setMode('reset', 3000);            // each new connection is reset after 3000 bytes
// await sink.setMode('stall');                  // accept, never read, never close (a jammed printer)
// sink.powerCycle();                            // resets every open connection (the jammed printer switched off and on)
// sink.jobs                                     // documents that ended cleanly, in arrival order
//
// const line = await startSerialCapture();      // socat: a pty (line.path, the printer port) copied into a file per plug-in
// await line.unplug(); await line.plugIn();     // kill socat (the link disappears) and start it again
// line.sessions()                               // bytes received during each plug-in, oldest first
//
// The serial printer writes straight into a file (socat -u) rather than through a second pty, so nothing sent
// right after a plug-in is lost to the moment a reader opens the other end. The printer keeps its end of the line
// open (as a real port stays open): when the sender closed the last descriptor of the pty, socat lost the bytes
// still in flight (measured: 131 KB of 1.6 MB over 400 jobs). The link gets its public name only after that
// descriptor is open, so no sender can get in first.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { listenOn, until } from './ports.js';

export type FaultMode = 'normal' | 'refuse' | 'reset' | 'stall';

export interface FaultJob {
  size: number;
  sha256: string;
  data: Buffer;
  at: number;
}

export interface FaultSink {
  port: number;
  jobs: FaultJob[];
  mode(): FaultMode;
  connections(): number;
  /** Connections the sink itself reset (mode 'reset' or a power cycle). */
  resets(): number;
  /** Connections held open without reading (mode 'stall') right now. */
  stalled(): number;
  setMode(m: FaultMode, resetAfter?: number): Promise<void>;
  powerCycle(): void;
  close(): Promise<void>;
}

export async function startFaultSink(host = '127.0.0.1'): Promise<FaultSink> {
  let mode: FaultMode = 'normal';
  let resetAfter = 1;
  let accepted = 0;
  let resets = 0;
  const jobs: FaultJob[] = [];
  const open = new Set<net.Socket>();
  const stalled = new Set<net.Socket>();

  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    accepted++;
    open.add(sock);
    sock.on('close', () => {
      open.delete(sock);
      stalled.delete(sock);
    });
    sock.on('error', () => {}); // a client reset: the job was not whole, nothing is recorded
    if (mode === 'stall') {
      stalled.add(sock);
      return void sock.pause();
    }
    const limit = mode === 'reset' ? resetAfter : Infinity;
    const chunks: Buffer[] = [];
    let size = 0;
    sock.on('data', (c: Buffer) => {
      if (size + c.length >= limit) {
        resets++;
        sock.resetAndDestroy();
        return;
      }
      size += c.length;
      chunks.push(c);
    });
    sock.on('end', () => {
      // A reset that follows the last data looks like a clean end to libuv; a write back tells them apart.
      sock.write(Buffer.alloc(1), (err) => {
        if (err) return;
        const data = Buffer.concat(chunks);
        jobs.push({ size, sha256: createHash('sha256').update(data).digest('hex'), data, at: Date.now() });
        sock.end();
      });
    });
  });

  const listen = (port: number) => listenOn(server, port, host);
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    jobs,
    mode: () => mode,
    connections: () => accepted,
    resets: () => resets,
    stalled: () => stalled.size,
    async setMode(m, n) {
      if (n !== undefined) resetAfter = n;
      if (m === mode) return;
      if (m === 'refuse') await new Promise<void>((r) => server.close(() => r()));
      else if (mode === 'refuse') await listen(port);
      mode = m;
    },
    powerCycle() {
      for (const s of open) {
        if (s.destroyed) continue;
        resets++;
        s.resetAndDestroy();
      }
    },
    async close() {
      for (const s of open) s.destroy();
      if (server.listening) await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface SerialCapture {
  /** The printer port a serial:// URI names. */
  path: string;
  plugged(): boolean;
  unplug(): Promise<void>;
  plugIn(): Promise<void>;
  /** Bytes received in each plug-in session, oldest first. */
  sessions(): Buffer[];
  close(): Promise<void>;
}

export async function startSerialCapture(): Promise<SerialCapture> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'printbox-serial-'));
  const tty = path.join(dir, 'ttyPRN');
  const files: string[] = [];
  let socat: ChildProcess | undefined;
  let holder: number | undefined;

  async function plugIn() {
    const out = path.join(dir, `session-${files.length}.bin`);
    const hidden = path.join(dir, `.tty-${files.length}`);
    files.push(out);
    let log = '';
    const proc = spawn('socat', ['-d', '-d', '-u', `pty,raw,echo=0,link=${hidden}`, `open:${out},creat,trunc`], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    socat = proc;
    await until(`socat to create ${hidden}`, () => proc.exitCode !== null || /starting data transfer loop/.test(log), 5000, 20);
    if (proc.exitCode !== null) throw new Error(`socat exited with ${proc.exitCode}: ${log}`);
    holder = fs.openSync(hidden, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
    fs.renameSync(hidden, tty);
  }

  async function unplug() {
    const proc = socat;
    socat = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 3000)))]);
    clearTimeout(timer);
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
    if (holder !== undefined) fs.closeSync(holder);
    holder = undefined;
    fs.rmSync(tty, { force: true }); // socat removes the link by its first name only
  }

  await plugIn();
  return {
    path: tty,
    plugged: () => !!socat,
    unplug,
    plugIn,
    sessions: () => files.map((f) => (fs.existsSync(f) ? fs.readFileSync(f) : Buffer.alloc(0))),
    async close() {
      await unplug();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
