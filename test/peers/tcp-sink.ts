// A real TCP sink on loopback standing in for a RAW (port 9100) printer: each connection's bytes are one job.
//
// const sink = await startSink();                  // behaviour 'normal', random free port on 127.0.0.1
// ... send to raw://127.0.0.1:${sink.port} ...
// const [job] = await sink.waitForJobs(1, 5000);   // { size, sha256, data }
// await sink.close();
//
// Behaviours (set at start or switched later with sink.setBehaviour):
//   normal  read everything; when the client half-closes, record the job and close our side
//   refuse  stop listening, so connections get ECONNREFUSED (the port is listened on again when switched back)
//   reset   read `resetAfter` bytes, then send a TCP reset (a printer dying mid-job); nothing is recorded
//   stall   accept, never read, never close (a jammed printer); nothing is recorded
// Only connections that ended normally count as jobs: a client reset is told apart from a clean end by writing one
// NUL byte back after the client's FIN (`detectReset`, on by default; clients read or ignore it as printer status).
// `keepBytes: false` keeps only size + sha256 (big jobs).
import { createHash } from 'node:crypto';
import net from 'node:net';
import { listenOn } from './ports.js';

export type SinkBehaviour = 'normal' | 'refuse' | 'reset' | 'stall';

export interface SinkJob {
  size: number;
  sha256: string;
  data?: Buffer;
}

export interface SinkOptions {
  behaviour?: SinkBehaviour;
  resetAfter?: number; // bytes read before a reset, behaviour 'reset' (default 1)
  keepBytes?: boolean; // default true
  host?: string; // default 127.0.0.1
  /** After the client's FIN, write one NUL byte back: if that fails the client had reset, and it is no job. Default true. */
  detectReset?: boolean;
}

export interface Sink {
  port: number;
  jobs: SinkJob[];
  /** Connections accepted so far, whatever became of them. */
  connections(): number;
  /** Connections that ended in a reset from the client after sending (a broken job the sink threw away). */
  resets(): number;
  setBehaviour(b: SinkBehaviour, resetAfter?: number): Promise<void>;
  waitForJobs(n: number, timeoutMs: number): Promise<SinkJob[]>;
  close(): Promise<void>;
}

export async function startSink(opts: SinkOptions = {}): Promise<Sink> {
  const host = opts.host ?? '127.0.0.1';
  const keepBytes = opts.keepBytes ?? true;
  let behaviour: SinkBehaviour = opts.behaviour ?? 'normal';
  let resetAfter = opts.resetAfter ?? 1;
  const detectReset = opts.detectReset ?? true;
  let accepted = 0;
  let resets = 0;
  const jobs: SinkJob[] = [];
  const waiters = new Set<() => void>();
  const open = new Set<net.Socket>();

  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    accepted++;
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    let recorded = false;
    sock.on('error', () => {
      if (!recorded) resets++; // the client reset the connection: a broken job, thrown away
    });
    if (behaviour === 'stall') return void sock.pause();
    const limit = behaviour === 'reset' ? resetAfter : Infinity;
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let size = 0;
    sock.on('data', (c: Buffer) => {
      if (size + c.length >= limit) {
        sock.resetAndDestroy();
        return;
      }
      size += c.length;
      hash.update(c);
      if (keepBytes) chunks.push(c);
    });
    sock.on('end', () => {
      const record = () => {
        recorded = true;
        jobs.push({ size, sha256: hash.digest('hex'), data: keepBytes ? Buffer.concat(chunks) : undefined });
        for (const w of waiters) w();
        sock.end();
      };
      if (!detectReset) return record();
      // libuv reports a reset that follows the last data as a plain end; a write tells them apart.
      sock.write(Buffer.alloc(1), (err) => err || record());
    });
  });

  const listen = (port: number) => listenOn(server, port, host);
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  if (behaviour === 'refuse') await new Promise<void>((r) => server.close(() => r()));

  return {
    port,
    jobs,
    connections: () => accepted,
    resets: () => resets,
    async setBehaviour(b, n) {
      if (n !== undefined) resetAfter = n;
      if (b === behaviour) return;
      if (b === 'refuse') await new Promise<void>((r) => server.close(() => r()));
      else if (behaviour === 'refuse') await listen(port);
      behaviour = b;
    },
    waitForJobs(n, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (jobs.length < n) return;
          cleanup();
          resolve(jobs.slice(0, n));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`sink got ${jobs.length} of ${n} jobs within ${timeoutMs} ms`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const s of open) s.destroy();
      if (server.listening) await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
