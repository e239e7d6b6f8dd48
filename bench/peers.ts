// The processes a benchmark runs against: a lean RAW sink that times arrivals, printbox as a child process, a private cupsd.
import net from 'node:net';
import fs from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort, waitForPort, stopProcess as stopPeer } from '../test/peers/ports.js';
import { startCupsd } from '../test/peers/cupsd.js';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../test/helpers/node-flags.js';

/** Stops a peer process (SIGKILL after 10000 ms). */
export const stopProcess = (p: ChildProcess | undefined, timeoutMs = 10000) => stopPeer(p, timeoutMs);


const run = promisify(execFile);
export const ROOT = path.resolve(import.meta.dirname, '..');
/** The checkout whose printbox is measured (BENCH_PRINTBOX_ROOT: compare a patched copy against this one). */
const SERVER_ROOT = path.resolve(process.env.BENCH_PRINTBOX_ROOT ?? ROOT);

/* ------------------------------------------------------------------ documents */

/** Every benchmark document starts with this stamp, so the sink can tell which job a connection carries. */
export const STAMP = 'PBXBENCH';
const STAMP_LEN = STAMP.length + 10 + 1;

export function stamp(index: number): Buffer {
  return Buffer.from(`${STAMP}${String(index).padStart(10, '0')}\n`);
}

/** A small document of `size` bytes: the stamp, then printable filler (no PJL/PDF magic, so it goes out as raw). */
export function smallDoc(index: number, size: number): Buffer {
  const b = Buffer.alloc(size, 0x2e);
  stamp(index).copy(b);
  return b;
}

/** A large document as a stream of 1 MiB chunks (the same filler), the stamp first. */
export async function* largeDoc(index: number, size: number, chunk = 1024 * 1024): AsyncGenerator<Buffer> {
  const block = Buffer.alloc(chunk, 0x2e);
  let left = size;
  let first = true;
  while (left > 0) {
    const n = Math.min(chunk, left);
    if (first) {
      const b = Buffer.from(block.subarray(0, n));
      stamp(index).copy(b);
      first = false;
      yield b;
    } else yield n === chunk ? block : block.subarray(0, n);
    left -= n;
  }
}

/* ------------------------------------------------------------------ sink */

export interface Arrival {
  index: number; // -1 when the connection carried no stamp
  firstAt: number; // performance.now() of the first byte
  lastAt: number; // of the last byte
  bytes: number;
}

/**
 * A RAW (9100) printer that only counts: it keeps no bytes, answers nothing, and closes its side when the
 * client half-closes (what the raw driver and CUPS's socket backend wait for). Times are performance.now()
 * of this process, the same clock the clients stamp their submits with.
 */
export async function startBenchSink() {
  const arrivals = new Map<number, Arrival>();
  let count = 0;
  let bytes = 0;
  const waiters = new Set<() => void>();
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    sock.on('error', () => {});
    const a: Arrival = { index: -1, firstAt: 0, lastAt: 0, bytes: 0 };
    let head: Buffer | null = Buffer.alloc(0);
    sock.on('data', (c: Buffer) => {
      const now = performance.now();
      if (!a.bytes) a.firstAt = now;
      a.lastAt = now;
      a.bytes += c.length;
      if (head) {
        head = Buffer.concat([head, c.subarray(0, 512)]);
        const at = head.indexOf(STAMP);
        if (at >= 0 && head.length >= at + STAMP_LEN) {
          a.index = Number(head.subarray(at + STAMP.length, at + STAMP_LEN - 1).toString());
          head = null;
        } else if (head.length >= 512) head = null;
      }
    });
    sock.on('end', () => {
      sock.end();
      count++;
      bytes += a.bytes;
      arrivals.set(a.index, a);
      for (const w of waiters) w();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;

  function waitFor(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`sink: ${what()} within ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  }

  return {
    port,
    arrivals,
    count: () => count,
    bytes: () => bytes,
    reset() {
      arrivals.clear();
      count = 0;
      bytes = 0;
    },
    waitIndex: (i: number, timeoutMs: number) => waitFor(() => arrivals.has(i), timeoutMs, () => `job ${i} did not arrive`).then(() => arrivals.get(i)!),
    waitCount: (n: number, timeoutMs: number) => waitFor(() => count >= n, timeoutMs, () => `only ${count} of ${n} jobs arrived`),
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
export type BenchSink = Awaited<ReturnType<typeof startBenchSink>>;

/* ------------------------------------------------------------------ processes */

export interface PrintboxProcess {
  pid: number;
  port: number;
  base: string;
  ca: string;
  token: string;
  dataDir: string;
  /** ms from spawn to "printbox listening" (includes loading the journal). */
  startMs: number;
  stop(): Promise<void>;
}

/**
 * Runs `printbox serve` as its own process (so its CPU and memory are its own), logging at its default level
 * to a file next to the data dir, as it would to journald. `config` goes into a config file (historyLimit…).
 */
export async function startPrintbox(dataDir: string, config: Record<string, unknown> = {}, timeoutMs = 180000): Promise<PrintboxProcess> {
  const port = await freePort();
  const logFile = `${dataDir}.log`;
  const configFile = `${dataDir}.config.json`;
  await fs.writeFile(configFile, JSON.stringify(config));
  const log = await fs.open(logFile, 'w');
  const started = performance.now();
  const prof = process.argv.find((a) => a.startsWith('--server-prof='))?.slice(14);
  const nodeArgs = prof ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(prof)}`] : [];
  // BENCH_SERVER_NODE_ARGS="--trace-gc" and the like, for digging into a result.
  nodeArgs.push(...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean));
  const proc = spawn(process.execPath, [...SERVER_NODE_FLAGS, ...nodeArgs, path.join(SERVER_ROOT, 'bin/printbox.mjs'), 'serve', '--data', dataDir, '--port', String(port), '--host', '127.0.0.1'], {
    cwd: SERVER_ROOT,
    stdio: ['ignore', log.fd, log.fd],
    env: { ...process.env, ...SERVER_ENV, PRINTBOX_MIN_FREE_BYTES: '0', PRINTBOX_MDNS: '0', PRINTBOX_CONFIG: configFile, PRINTBOX_INSTALLED: '', PRINTBOX_REQUIRE_BUNDLE: '1' },
  });
  await log.close();
  const until = Date.now() + timeoutMs;
  let text = '';
  while (!text.includes('printbox listening')) {
    if (proc.exitCode !== null) throw new Error(`printbox exited with code ${proc.exitCode}: ${text.slice(-2000)}`);
    if (Date.now() > until) {
      await stopProcess(proc);
      throw new Error(`printbox did not start within ${timeoutMs} ms: ${text.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
    text = await fs.readFile(logFile, 'utf8');
  }
  const startMs = performance.now() - started;
  const m = text.match(/first admin API token[^\n]*\n(\S+)/);
  if (!m) throw new Error('printbox printed no first admin token');
  const ca = await fs.readFile(path.join(dataDir, 'tls/cert.pem'), 'utf8');
  return { pid: proc.pid!, port, base: `https://127.0.0.1:${port}`, ca, token: m[1], dataDir, startMs, stop: () => stopProcess(proc) };
}

export interface CupsProcess {
  pid: number;
  port: number;
  queueUri: string;
  stop(): Promise<void>;
}

/** A private cupsd (own config, spool, state, logs, port; LogLevel warn) with a raw queue `sink` → socket://127.0.0.1:sinkPort. */
export async function startCups(dir: string, sinkPort: number): Promise<CupsProcess> {
  const cupsd = await startCupsd(dir);
  try {
    // The trailing slash matters: CUPS refuses "socket://host:port?x" but takes "socket://host:port/?x".
    await run('lpadmin', ['-h', cupsd.host, '-p', 'sink', '-E', '-v', `socket://127.0.0.1:${sinkPort}/?snmp=false`, '-m', 'raw'], { timeout: 15000 }).catch((e) => {
      // lpadmin warns that raw queues are deprecated and may exit non-zero for it while the queue is created.
      if (!/deprecated/i.test(String(e.stderr))) throw e;
    });
    await run('lpstat', ['-h', cupsd.host, '-p', 'sink'], { timeout: 15000 });
  } catch (e) {
    const log = await cupsd.log();
    await cupsd.stop();
    throw new Error(`cupsd setup failed: ${(e as Error).message} ${log}`);
  }
  return { pid: cupsd.pid, port: cupsd.port, queueUri: `ipp://127.0.0.1:${cupsd.port}/printers/sink`, stop: () => cupsd.stop() };
}

export interface BareProcess {
  pid: number;
  base: string;
  stop(): Promise<void>;
}

/** bench/bare-server.mjs (the least a Node.js print server can do per job) on a free port, with printbox's own TLS key. */
export async function startBare(dir: string, sinkPort: number, tlsDir: string): Promise<BareProcess> {
  await fs.mkdir(dir, { recursive: true });
  const port = await freePort();
  const proc = spawn(process.execPath, [path.join(ROOT, 'bench/bare-server.mjs'), String(port), String(sinkPort), dir, path.join(tlsDir, 'cert.pem'), path.join(tlsDir, 'key.pem')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c));
  proc.stderr!.on('data', (c: Buffer) => (out += c));
  await waitForPort(port, 15000, proc, 'bench/bare-server.mjs').catch(async (e) => {
    await stopProcess(proc);
    throw new Error(`${(e as Error).message}: ${out}`);
  });
  return { pid: proc.pid!, base: `https://127.0.0.1:${port}`, stop: () => stopProcess(proc) };
}

export { freePort };
