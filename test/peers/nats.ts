// A real NATS JetStream cluster on loopback for tests and benchmarks: N nats-server processes (Debian's 2.9),
// clustered by routes, JetStream store encryption on, each with its own temp store dir.
//
// const c = await startNatsCluster(3);   // resolves once every server reports JetStream healthy
// c.urls                                  // ['nats://127.0.0.1:P1', …] (what PRINTBOX_CLUSTER takes)
// await c.nodes[1].kill9(); await c.nodes[1].start();   // a crash and a restart on the same store
// c.nodes[2].pause(); c.nodes[2].resume();              // SIGSTOP / SIGCONT: a node cut off, then back
// await c.stop();
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, stopProcess, until } from './ports.js';

export interface NatsNode {
  name: string;
  port: number;
  /** Its monitoring port (/varz, /jsz, /healthz) on loopback. */
  monitorPort: number;
  url: string;
  dir: string;
  proc?: ChildProcess;
  output(): string;
  start(): Promise<void>;
  kill9(): Promise<void>;
  pause(): void;
  resume(): void;
  /** JetStream healthy on this server (monitoring /healthz). */
  healthy(): Promise<boolean>;
}

export interface NatsCluster {
  nodes: NatsNode[];
  urls: string[];
  dir: string;
  stop(): Promise<void>;
}

function get(port: number, p: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => {
      req.destroy();
      resolve(0);
    });
  });
}

/** Starts `n` servers; with n = 1 it is a single JetStream server without routes. */
export async function startNatsCluster(n = 3, opts: { prefix?: string } = {}): Promise<NatsCluster> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), opts.prefix ?? 'pbx-nats-'));
  const ports = await Promise.all(Array.from({ length: n }, async () => ({ client: await freePort(), route: await freePort(), http: await freePort() })));
  const storeKey = randomBytes(24).toString('hex');
  const nodes: NatsNode[] = ports.map((p, i) => {
    const name = `n${i + 1}`;
    const nodeDir = path.join(dir, name);
    const conf = path.join(dir, `${name}.conf`);
    const routes = ports.filter((_, j) => j !== i).map((q) => `nats-route://127.0.0.1:${q.route}`);
    const text = [
      `server_name: ${name}`,
      `listen: 127.0.0.1:${p.client}`,
      `http: 127.0.0.1:${p.http}`,
      // Store encryption: JetStream seals its own files too (our documents are sealed before they get there).
      `jetstream { store_dir: "${nodeDir}", cipher: chachapoly, key: "${storeKey}", max_memory_store: 64MB, max_file_store: 2GB }`,
      n > 1 ? `cluster { name: pbxtest, listen: 127.0.0.1:${p.route}, routes: [${routes.join(', ')}] }` : '',
      '',
    ].join('\n');
    let out = '';
    const node: NatsNode = {
      name,
      port: p.client,
      monitorPort: p.http,
      url: `nats://127.0.0.1:${p.client}`,
      dir: nodeDir,
      output: () => out,
      async start() {
        await fs.writeFile(conf, text);
        const proc = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
        proc.stdout!.on('data', (c) => (out = (out + c).slice(-20000)));
        proc.stderr!.on('data', (c) => (out = (out + c).slice(-20000)));
        node.proc = proc;
        await until(`nats-server ${name} listening`, async () => {
          if (proc.exitCode !== null) throw new Error(`nats-server ${name} exited: ${out}`);
          return (await get(p.http, '/varz')) === 200;
        }, 20000);
      },
      async kill9() {
        const proc = node.proc;
        if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGCONT');
        proc.kill('SIGKILL');
        await gone;
      },
      pause: () => node.proc?.kill('SIGSTOP'),
      resume: () => node.proc?.kill('SIGCONT'),
      healthy: async () => (await get(p.http, '/healthz?js-enabled-only=true')) === 200 && (await get(p.http, '/healthz')) === 200,
    };
    return node;
  });
  await Promise.all(nodes.map((nd) => nd.start()));
  await until('JetStream healthy on every server', async () => (await Promise.all(nodes.map((nd) => nd.healthy()))).every(Boolean), 30000, 200);
  return {
    nodes,
    urls: nodes.map((nd) => nd.url),
    dir,
    async stop() {
      for (const nd of nodes) nd.resume();
      await Promise.all(nodes.map((nd) => stopProcess(nd.proc)));
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
