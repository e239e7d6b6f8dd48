// A real serial line for tests: socat joins two ptys (ttyA ↔ ttyB); the printer end (ttyB) hashes what arrives.
//
// const line = await startPtyPair();          // links in a fresh temp dir: line.a (the "printer port"), line.b
// const printer = openPrinterEnd(line.b);      // opened before the job: opening a tty may discard buffered bytes
// ... send to serial://${line.a} ...
// await printer.waitForBytes(n, 5000);         // { size, sha256, data }
// printer.pause() / printer.resume();           // stop / start reading: the line's back-pressure reaches the sender
// await line.unplug();                          // kill socat: the links disappear, like a cable pulled out
// await line.plugIn();                          // start socat again with the same link names
// line.freeze() / line.thaw();                  // SIGSTOP / SIGCONT socat: written bytes wait in the kernel, unread
// await line.close();                           // in after(): kills socat, removes the temp dir
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tty from 'node:tty';
import { until } from './ports.js';

export interface PtyPair {
  dir: string;
  a: string;
  b: string;
  unplug(): Promise<void>;
  plugIn(): Promise<void>;
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

export async function startPtyPair(): Promise<PtyPair> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'printbox-pty-'));
  const a = path.join(dir, 'ttyA');
  const b = path.join(dir, 'ttyB');
  let socat: ChildProcess | undefined;
  let log = '';

  async function plugIn() {
    log = '';
    const proc = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    socat = proc;
    // socat logs "starting data transfer loop" once both links exist.
    await until(`socat to create ${a} and ${b} (log: ${log})`, () => proc.exitCode !== null || /starting data transfer loop/.test(log), 5000, 20);
    if (proc.exitCode !== null) throw new Error(`socat exited with ${proc.exitCode}: ${log}`);
  }

  async function unplug() {
    const proc = socat;
    socat = undefined;
    if (!proc || proc.exitCode !== null) return;
    let timer: NodeJS.Timeout | undefined;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 3000)))]);
    clearTimeout(timer);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await until('socat to remove its links', () => !fs.existsSync(a) && !fs.existsSync(b), 3000, 20).catch(() => {
      fs.rmSync(a, { force: true });
      fs.rmSync(b, { force: true });
    });
  }

  await plugIn();
  return {
    dir,
    a,
    b,
    unplug,
    plugIn,
    freeze: () => socat?.kill('SIGSTOP'),
    thaw: () => socat?.kill('SIGCONT'),
    async close() {
      socat?.kill('SIGCONT');
      await unplug();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PrinterEnd {
  size: number;
  sha256(): string;
  /** Everything received, if `keepBytes` (small documents only). */
  data(): Buffer;
  pause(): void;
  resume(): void;
  waitForBytes(n: number, ms: number): Promise<void>;
  close(): void;
}

/**
 * Reads the printer end of the line through libuv's tty handle (non-blocking, nothing left in the thread pool);
 * pause() stops reading at the source, so the kernel buffers fill and the sender really has to wait.
 */
export function openPrinterEnd(ttyPath: string, opts: { keepBytes?: boolean; paused?: boolean } = {}): PrinterEnd {
  const fd = fs.openSync(ttyPath, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  const stream = new tty.ReadStream(fd);
  let hash: Hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let digest: string | undefined;
  const end: PrinterEnd = {
    size: 0,
    sha256: () => (digest ??= hash.copy().digest('hex')),
    data: () => Buffer.concat(chunks),
    pause: () => stream.pause(),
    resume: () => stream.resume(),
    waitForBytes: async (n, ms) => {
      await until(`${n} bytes at ${ttyPath} (have ${end.size})`, () => end.size >= n, ms, 20);
    },
    close: () => stream.destroy(),
  };
  stream.on('data', (c: Buffer) => {
    end.size += c.length;
    hash.update(c);
    digest = undefined;
    if (opts.keepBytes) chunks.push(c);
  });
  stream.on('error', () => {}); // EIO once socat is gone: the test asserts on what arrived
  if (opts.paused) stream.pause();
  return end;
}
