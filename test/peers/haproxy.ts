// HAProxy (Debian's 2.6) in front of several printbox nodes on loopback: TCP passthrough of TLS, each node
// health-checked with GET /v1/health over TLS, so a node that is down or not ready gets no new connections.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, stopProcess, waitForPort } from './ports.js';

export interface HaproxyPeer {
  port: number;
  proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** The example config of image/haproxy.cfg, with loopback ports and faster checks for tests. */
export function haproxyConfig(port: number, backends: number[], checkMs = 500): string {
  return [
    'global',
    '  maxconn 2000',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 120s',
    '  timeout server 120s',
    'frontend printbox',
    `  bind 127.0.0.1:${port}`,
    '  default_backend nodes',
    'backend nodes',
    '  balance roundrobin',
    '  option httpchk GET /v1/health',
    '  http-check expect status 200',
    ...backends.map((p, i) => `  server node${i + 1} 127.0.0.1:${p} check check-ssl verify none inter ${checkMs} fall 2 rise 2`),
    '',
  ].join('\n');
}

export async function startHaproxy(backends: number[], opts: { checkMs?: number } = {}): Promise<HaproxyPeer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx-haproxy-'));
  const port = await freePort();
  const cfg = path.join(dir, 'haproxy.cfg');
  await fs.writeFile(cfg, haproxyConfig(port, backends, opts.checkMs));
  const proc = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c) => (out = (out + c).slice(-20000)));
  proc.stderr!.on('data', (c) => (out = (out + c).slice(-20000)));
  await waitForPort(port, 10000, proc, 'haproxy');
  return {
    port,
    proc,
    output: () => out,
    async stop() {
      await stopProcess(proc);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
