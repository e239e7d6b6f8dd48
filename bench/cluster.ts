// Benchmark: one box against a 3-node cluster (3 nats-server + 3 printbox + HAProxy) on this machine. The three
// nodes share its cores, so besides jobs/s it reports CPU per job (all processes of each setup), and the takeover
// time (median, worst) after a printbox driving printers is killed with -9.
//
//   npm run bench:cluster [-- --jobs=2000 --takeovers=5]
import fs from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { startSink, type Sink } from '../test/peers/tcp-sink.js';
import { startNatsCluster } from '../test/peers/nats.js';
import { startHaproxy } from '../test/peers/haproxy.js';
import { Api } from '../test/helpers/api.js';
import { freePort, spawnAppliance, tempDir, until } from '../test/helpers/appliance.js';
import { spawnClusterNodes } from '../test/helpers/cluster.js';

const arg = (name: string, dflt: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt);
const JOBS = arg('jobs', 2000);
const TAKEOVERS = arg('takeovers', 5);
const CLIENTS = 8;
const PRINTERS = 4;
const DOC = Buffer.alloc(2048, 'x');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds (user + system) a process has used, from /proc. */
async function cpu(pid: number | undefined): Promise<number> {
  if (!pid) return 0;
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Messages into every server (from clients and routes), summed over the cluster (monitoring /varz). */
async function natsMessages(ports: number[]): Promise<number> {
  let n = 0;
  for (const port of ports) n += ((await (await fetch(`http://127.0.0.1:${port}/varz`)).json()) as { in_msgs?: number }).in_msgs ?? 0;
  return n;
}

async function load(api: Api, sinks: Sink[], pids: () => (number | undefined)[], monitor: number[] = []) {
  const msgs0 = await natsMessages(monitor);
  const before = sinks.map((s) => s.jobs.length);
  const cpu0 = await Promise.all(pids().map(cpu));
  const t0 = Date.now();
  let next = 0;
  const client = async () => {
    for (let i = next++; i < JOBS; i = next++) {
      for (let attempt = 0; ; attempt++) {
        const r = await api.postJob({ printer: `p${i % PRINTERS}`, jobID: randomUUID() }, DOC).catch(() => null);
        if (r && (r.status === 201 || r.status === 200)) break;
        if (attempt > 100) throw new Error(`job ${i}: ${r?.status} ${r?.text}`);
        await sleep(20);
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, client));
  const accepted = Date.now() - t0;
  await until('all printed', () => sinks.reduce((n, s, k) => n + s.jobs.length - before[k], 0) >= JOBS, 300000, 20);
  const e2e = Date.now() - t0;
  const cpu1 = await Promise.all(pids().map(cpu));
  // Per process, in the order pids() gives them (the cluster: 3 printbox, 3 nats-server, haproxy).
  const perJob = cpu1.map((c, k) => ((c - cpu0[k]) * 1000) / JOBS);
  const natsMsgsPerJob = ((await natsMessages(monitor)) - msgs0) / JOBS;
  return { acceptedPerS: (JOBS / accepted) * 1000, e2ePerS: (JOBS / e2e) * 1000, cpuMsPerJob: perJob.reduce((a, b) => a + b, 0), perJob, natsMsgsPerJob };
}

async function addPrinters(api: Api, sinks: Sink[]) {
  for (const [p, s] of sinks.entries()) {
    const r = await api.json('POST', '/v1/printers', { name: `p${p}`, uri: `raw://127.0.0.1:${s.port}`, retry: { limit: 1000, baseMs: 20, maxMs: 200, heldRetryMs: 200 } });
    if (r.status !== 201) throw new Error(`printer: ${r.status} ${r.text}`);
  }
}

async function oneBox() {
  const sinks = await Promise.all(Array.from({ length: PRINTERS }, () => startSink({ keepBytes: false })));
  const dir = await tempDir('pbx19-bench-one-');
  const box = await spawnAppliance(dir, await freePort());
  const api = new Api(`https://127.0.0.1:${box.port}`, await fs.readFile(`${dir}/tls/cert.pem`, 'utf8'), box.token!, 32);
  try {
    await addPrinters(api, sinks);
    await load(api, sinks, () => [box.proc.pid]); // warm-up (the first thousand jobs after a start are slower)
    return await load(api, sinks, () => [box.proc.pid]);
  } finally {
    api.close();
    await box.stop();
    for (const s of sinks) await s.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function cluster() {
  const sinks = await Promise.all(Array.from({ length: PRINTERS }, () => startSink({ keepBytes: false })));
  const nats = await startNatsCluster(3, { prefix: 'pbx19-bench-nats-' });
  const { nodes, token, cert } = await spawnClusterNodes(nats, { prefix: 'pbx19-bench-', leaseMs: 2000 });
  const proxy = await startHaproxy(nodes.map((n) => n.port));
  const api = new Api(`https://127.0.0.1:${proxy.port}`, cert, token, 32);
  const direct = nodes.map((n) => new Api(`https://127.0.0.1:${n.port}`, cert, token, 2));
  const pids = () => [...nodes.map((n) => n.child?.proc.pid), ...nats.nodes.map((n) => n.proc?.pid), proxy.proc.pid];
  try {
    await addPrinters(api, sinks);
    const monitor = nats.nodes.map((n) => n.monitorPort);
    await load(api, sinks, pids, monitor);
    const figures = await load(api, sinks, pids, monitor);
    // Takeovers: kill -9 the node driving the most printers, time until a live node drives each of them, restart it.
    const takeovers: number[] = [];
    const view = async (skip: number) => {
      for (let i = 0; i < 3; i++) {
        if (i === skip) continue;
        const v = (await direct[i].json('GET', '/v1/cluster').catch(() => null))?.json;
        if (v?.printers) return v.printers as { name: string; drivenBy: string | null }[];
      }
      return [];
    };
    for (let round = 0; round < TAKEOVERS; round++) {
      await until('every printer driven', async () => (await view(-1)).filter((p) => p.drivenBy).length === PRINTERS, 30000, 100);
      const printers = await view(-1);
      const counts = [0, 1, 2].map((i) => printers.filter((p) => p.drivenBy === `node${i + 1}`).length);
      const victim = counts.indexOf(Math.max(...counts));
      const theirs = printers.filter((p) => p.drivenBy === `node${victim + 1}`).map((p) => p.name);
      const t0 = Date.now();
      await nodes[victim].child!.kill9();
      const pending = new Set(theirs);
      while (pending.size && Date.now() - t0 < 60000) {
        for (const p of await view(victim)) {
          if (pending.has(p.name) && p.drivenBy && p.drivenBy !== `node${victim + 1}`) {
            pending.delete(p.name);
            takeovers.push(Date.now() - t0);
          }
        }
        await sleep(20);
      }
      await nodes[victim].start();
    }
    takeovers.sort((a, b) => a - b);
    return { ...figures, takeoverMedianMs: takeovers[Math.floor(takeovers.length / 2)], takeoverWorstMs: takeovers.at(-1), takeovers: takeovers.length };
  } finally {
    api.close();
    for (const d of direct) d.close();
    await proxy.stop();
    for (const n of nodes) await n.child?.stop();
    await nats.stop();
    for (const s of sinks) await s.close();
    for (const n of nodes) await fs.rm(n.dir, { recursive: true, force: true });
  }
}

const fmt = (r: { acceptedPerS: number; e2ePerS: number; cpuMsPerJob: number }) => `accepted ${r.acceptedPerS.toFixed(0)} jobs/s, end to end ${r.e2ePerS.toFixed(0)} jobs/s, CPU ${r.cpuMsPerJob.toFixed(2)} ms per job`;
console.log(`printbox cluster bench: ${JOBS} jobs of 2 KiB, ${CLIENTS} clients, ${PRINTERS} RAW printers (TCP sinks), lease 2 s`);
const one = await oneBox();
console.log(`one box:            ${fmt(one)}`);
const three = await cluster();
const part = (from: number, to: number) => three.perJob.slice(from, to).reduce((a, b) => a + b, 0).toFixed(2);
console.log(`3-node cluster:     ${fmt(three)} (all 7 processes: 3 printbox ${part(0, 3)}, 3 nats-server ${part(3, 6)}, haproxy ${part(6, 7)} ms); ${three.natsMsgsPerJob.toFixed(1)} messages into the NATS servers per job`);
console.log(`takeover after kill -9 of the busiest printbox (lease 2 s): median ${(three.takeoverMedianMs! / 1000).toFixed(1)} s, worst ${(three.takeoverWorstMs! / 1000).toFixed(1)} s over ${three.takeovers} printer takeovers`);
process.exit(0);
