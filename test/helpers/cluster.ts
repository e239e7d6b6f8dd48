// A printbox cluster for tests: N appliance nodes on a real NATS JetStream cluster (test/peers/nats.ts), sharing
// one cluster key and one TLS identity as `printbox cluster join` sets them up; in-process or as child processes.
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startNatsCluster, type NatsCluster } from '../peers/nats.js';
import { Api } from './api.js';
import type { Config } from '../../runtime/system/config.js';
import { freePort, spawnAppliance, startAppliance, tempDir, until, type ChildAppliance, type TestAppliance } from './appliance.js';

/** Data dirs that share the cluster key and the TLS identity of the first (what `printbox cluster join` copies). */
export async function clusterDataDirs(n: number, prefix: string): Promise<string[]> {
  const dirs = await Promise.all(Array.from({ length: n }, () => tempDir(prefix)));
  await fs.writeFile(path.join(dirs[0], 'cluster.key'), randomBytes(32), { mode: 0o600 });
  return dirs;
}

async function shareIdentity(from: string, to: string): Promise<void> {
  await fs.cp(path.join(from, 'tls'), path.join(to, 'tls'), { recursive: true });
  await fs.copyFile(path.join(from, 'cluster.key'), path.join(to, 'cluster.key'));
}

export interface InProcessCluster {
  nats: NatsCluster;
  nodes: TestAppliance[];
  token: string;
  /** An API client for node i with the cluster's admin token. */
  api(i: number): Api;
  stop(): Promise<void>;
}

/** Nodes started one after another (the first seeds the configuration and makes the first admin token). */
export async function startCluster(n: number, opts: { prefix: string; leaseMs?: number; nats?: NatsCluster; config?: (i: number) => Partial<Config> }): Promise<InProcessCluster> {
  const nats = opts.nats ?? (await startNatsCluster(n, { prefix: `${opts.prefix}nats-` }));
  const dirs = await clusterDataDirs(n, opts.prefix);
  const nodes: TestAppliance[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0) await shareIdentity(dirs[0], dirs[i]);
    nodes.push(await startAppliance({ ...opts.config?.(i), dataDir: dirs[i], cluster: { servers: [nats.urls[i % nats.urls.length]], node: `node${i + 1}`, leaseMs: opts.leaseMs ?? 2000 } }));
  }
  const token = nodes[0].token;
  // Each node's own client (it knows the node's address), with the cluster's admin token.
  const apis = nodes.map((nd) => Object.assign(nd.api, { token }));
  return {
    nats,
    nodes,
    token,
    api: (i) => apis[i],
    async stop() {
      for (const a of apis) a.close();
      for (const nd of nodes) await nd.stop().catch(() => {});
      await nats.stop();
      for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
    },
  };
}

export interface ProcessNode {
  dir: string;
  port: number;
  env: Record<string, string>;
  child?: ChildAppliance;
  start(): Promise<void>;
}

/** Nodes as `printbox serve` child processes (kill -9 tests); PRINTBOX_CLUSTER names each node's own server. */
export async function spawnClusterNodes(nats: NatsCluster, opts: { prefix: string; leaseMs?: number; servers?: (i: number) => string[]; env?: Record<string, string> }): Promise<{ nodes: ProcessNode[]; token: string; cert: string }> {
  const n = nats.urls.length;
  const dirs = await clusterDataDirs(n, opts.prefix);
  const nodes: ProcessNode[] = [];
  let token = '';
  for (let i = 0; i < n; i++) {
    if (i > 0) await shareIdentity(dirs[0], dirs[i]);
    const config = path.join(dirs[i], 'config.json');
    await fs.writeFile(config, JSON.stringify({ cluster: { servers: opts.servers?.(i) ?? [nats.urls[i]], node: `node${i + 1}`, leaseMs: opts.leaseMs ?? 2000 } }));
    const node: ProcessNode = {
      dir: dirs[i],
      port: await freePort(),
      env: { PRINTBOX_CONFIG: config, PRINTBOX_LOG_LEVEL: 'info', ...opts.env },
      async start() {
        node.child = await spawnAppliance(node.dir, node.port, node.env);
      },
    };
    await node.start();
    token ||= node.child!.token ?? '';
    nodes.push(node);
  }
  const cert = await fs.readFile(path.join(dirs[0], 'tls', (await fs.readdir(path.join(dirs[0], 'tls'))).find((f) => /cert|crt/.test(f))!), 'utf8');
  return { nodes, token, cert };
}

/**
 * Three `printbox serve` processes on a fresh 3-server JetStream cluster, an Api for each, all stopped and removed
 * when the test `t` ends (nodes, then the NATS servers).
 */
export async function startProcessCluster(t: { after(fn: () => unknown): void }, prefix: string, opts: { leaseMs?: number; env?: Record<string, string> } = {}) {
  const nats = await startNatsCluster(3, { prefix: `${prefix}nats-` });
  t.after(() => nats.stop());
  const { nodes, token, cert } = await spawnClusterNodes(nats, { prefix, leaseMs: opts.leaseMs ?? 2000, env: opts.env });
  t.after(async () => {
    for (const n of nodes) await n.child?.stop();
    for (const n of nodes) await fs.rm(n.dir, { recursive: true, force: true });
  });
  const apis = nodes.map((n) => new Api(`https://127.0.0.1:${n.port}`, cert, token));
  t.after(() => apis.forEach((a) => a.close()));
  return { nats, nodes, apis, token, cert };
}

export { until };
