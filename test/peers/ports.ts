// Peers started by tests and benchmarks: a free loopback port, waiting (for a port, or any condition), stopping the process.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';

// Ports are handed out below the kernel's ephemeral range (32768–60999 here), which outgoing connections draw their
// source ports from: a port found free with listen(0) and closed could be taken by any connect() on the machine
// before the peer that was meant to bind it does (seen as EADDRINUSE when suites ran side by side). A claim file per
// port (created exclusively, naming the claiming process) keeps concurrent test processes from picking the same one;
// a claim whose process is gone is taken over.
const PORT_LOW = 20000;
const PORT_SPAN = 10000;
const claimDir = path.join(os.tmpdir(), 'printbox-test-ports');
let nextOffset = Math.floor(Math.random() * PORT_SPAN);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function claim(port: number): boolean {
  const file = path.join(claimDir, String(port));
  try {
    fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const owner = Number(fs.readFileSync(file, 'utf8'));
  if (owner === process.pid || (owner > 0 && alive(owner))) return false;
  fs.writeFileSync(file, String(process.pid)); // the claimer is gone: its port is free to claim again
  return true;
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A loopback port no other test process has claimed and nothing listens on (bounded search). */
export async function freePort(): Promise<number> {
  fs.mkdirSync(claimDir, { recursive: true, mode: 0o1777 });
  for (let tries = 0; tries < PORT_SPAN; tries++) {
    const port = PORT_LOW + (nextOffset++ % PORT_SPAN);
    if (claim(port) && (await bindable(port))) return port;
  }
  throw new Error(`no free port in ${PORT_LOW}–${PORT_LOW + PORT_SPAN - 1}`);
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
