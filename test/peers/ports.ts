// Peers started by tests and benchmarks: a free loopback port, waiting (for a port, or any condition), stopping the process.
import net from 'node:net';
import type { ChildProcess } from 'node:child_process';

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Polls until `fn` returns a truthy value, or throws after `ms`. */
export async function until<T>(what: string, fn: () => Promise<T> | T, ms = 20000, every = 50): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Polls until 127.0.0.1:port accepts connections (bounded); fails early if `proc` exits. */
export async function waitForPort(port: number, timeoutMs: number, proc: ChildProcess, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`${what} exited with code ${proc.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/** SIGTERM, then SIGKILL after `timeoutMs`; resolves once the process is gone (or was never there). */
export function stopProcess(p: ChildProcess | undefined, timeoutMs = 3000): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      resolve();
    }, timeoutMs);
    p.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

/** Binds a server to `port` on `host` (0: any free port); rejects on EADDRINUSE and the like. */
export function listenOn(server: import('node:net').Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
}
