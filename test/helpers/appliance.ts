// Starts a real appliance for a test: in this process, or as a child process that a test may kill -9.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { checkServerIdentity } from 'node:tls';
import { loadConfig, type Config } from '../../runtime/system/config.js';
import { serve, type Running } from '../../runtime/serve.js';
import { Api } from './api.js';
import { freePort, until } from '../peers/ports.js';

export { until };
import { SERVER_ENV, SERVER_NODE_FLAGS } from './node-flags.js';

export async function tempDir(prefix = 'pbx-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface TestAppliance {
  running: Running;
  api: Api;
  token: string;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startAppliance(overrides: Partial<Config> = {}): Promise<TestAppliance> {
  const dataDir = overrides.dataDir ?? (await tempDir());
  let token = '';
  // mdns off: tests never multicast on the machine's real interfaces (namespace tests turn it on).
  const running = await serve(loadConfig({ host: '127.0.0.1', port: 0, minFreeBytes: 0, logLevel: 'silent', mdns: false, ...overrides, dataDir }), { firstToken: (t) => (token = t) });
  // A node given another loopback address (127.0.0.2, … : cluster nodes each with their own intake ports) is
  // reached there; its certificate names 127.0.0.1, the loopback address it was made for.
  const host = overrides.host && /^127\./.test(overrides.host) ? overrides.host : '127.0.0.1';
  const api = new Api(`https://${host}:${running.port}`, running.tls.cert, token, 32, host === '127.0.0.1' ? {} : { checkServerIdentity: (_h, cert) => checkServerIdentity('127.0.0.1', cert) });
  return {
    running,
    api,
    token,
    dataDir,
    async stop() {
      api.close();
      await running.stop();
    },
  };
}

/** Adds a RAW printer with fast retries (tests should not wait minutes for back-off). */
export async function addRawPrinter(api: Api, name: string, port: number, extra: Record<string, unknown> = {}) {
  const r = await api.json('POST', '/v1/printers', { name, uri: `raw://127.0.0.1:${port}`, retry: { limit: 3, baseMs: 50, maxMs: 200, heldRetryMs: 500 }, ...extra });
  if (r.status !== 201) throw new Error(`adding printer failed: ${r.status} ${r.text}`);
  return r.json;
}

export interface ChildAppliance {
  proc: ChildProcess;
  port: number;
  output: () => string;
  token?: string;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

const ROOT = path.resolve(import.meta.dirname, '../..');

/** `printbox serve` as its own process (what kill -9 tests need). Resolves once HTTPS answers. */
export async function spawnAppliance(dataDir: string, port: number, env: Record<string, string> = {}): Promise<ChildAppliance> {
  const proc = spawn(process.execPath, [...SERVER_NODE_FLAGS, path.join(ROOT, 'bin/printbox.mjs'), 'serve', '--data', dataDir, '--port', String(port), '--host', '127.0.0.1'], {
    env: { ...process.env, ...SERVER_ENV, PRINTBOX_MIN_FREE_BYTES: '0', PRINTBOX_LOG_LEVEL: 'info', PRINTBOX_MDNS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (c) => (out += c));
  proc.stderr!.on('data', (c) => (out += c));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const deadline = Date.now() + 30000;
  while (!/printbox listening/.test(out)) {
    if (proc.exitCode !== null) throw new Error(`printbox exited early: ${out}`);
    if (Date.now() > deadline) throw new Error(`printbox did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const token = /first admin API token[^\n]*\n(pbx_\S+)/.exec(out)?.[1];
  return {
    proc,
    port,
    token,
    output: () => out,
    async kill9() {
      proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
}

/** Every file under a directory (recursively), for "nothing left behind" and "no plaintext" checks. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(path.join(e.parentPath ?? (e as any).path, e.name));
  return out;
}

export { freePort };
