// Torture scenario "cluster": 3 nats-server + 3 `printbox serve` + HAProxy on loopback, 8 clients posting to 4
// printers through HAProxy; mid-load a printbox is killed with -9, then a nats-server, then a whole node.
//
//   const r = await clusterKill({ jobs: 2000, canary, canaryDirs });   // prints one line starting "cluster:"
//
// Held: every acknowledged job prints (0 lost); each client's jobs print in its order on each printer; a job prints
// twice only when it was in flight at a kill (its two prints follow each other). Takeover time: from a kill to the
// first job printed afterwards on each printer the dead node drove.
import fs from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { startSink, type Sink } from '../test/peers/tcp-sink.js';
import { isPjlQuestion } from '../test/peers/pjl-printer.js';
import { startNatsCluster } from '../test/peers/nats.js';
import { startHaproxy } from '../test/peers/haproxy.js';
import { Api, type ApiReply } from '../test/helpers/api.js';
import { filesUnder } from '../test/helpers/appliance.js';
import { spawnClusterNodes, type ProcessNode } from '../test/helpers/cluster.js';
import { until } from '../test/peers/ports.js';

export interface ClusterKillOptions {
  jobs: number;
  canary: string;
  clients?: number;
  printers?: number;
}

export interface Takeover {
  event: string;
  printer: string;
  ms: number;
}

export interface ClusterKillResult {
  failures: string[];
  line: string;
  accepted: number;
  duplicates: number;
  takeovers: Takeover[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DOC_SIZE = 600;

export async function clusterKill(opts: ClusterKillOptions): Promise<ClusterKillResult> {
  const t0 = Date.now();
  const clients = opts.clients ?? 8;
  const printers = opts.printers ?? 4;
  const failures: string[] = [];
  const takeovers: Takeover[] = [];
  const logs: string[][] = [[], [], []]; // output of killed printbox processes (PRINTBOX_CLUSTER_LOGS=dir keeps them on failure)
  const nats = await startNatsCluster(3, { prefix: 'pbx19-kill-nats-' });
  const sinks: Sink[] = [];
  let nodes: ProcessNode[] = [];
  let proxy: Awaited<ReturnType<typeof startHaproxy>> | undefined;
  const apis: Api[] = [];
  try {
    for (let p = 0; p < printers; p++) sinks.push(await startSink());
    const spawned = await spawnClusterNodes(nats, { prefix: 'pbx19-kill-', leaseMs: 2000 });
    nodes = spawned.nodes;
    const nodeApi = nodes.map((n) => new Api(`https://127.0.0.1:${n.port}`, spawned.cert, spawned.token, 4));
    apis.push(...nodeApi);
    proxy = await startHaproxy(nodes.map((n) => n.port));
    const api = new Api(`https://127.0.0.1:${proxy.port}`, spawned.cert, spawned.token, 32);
    apis.push(api);
    for (let p = 0; p < printers; p++) {
      const r = await api.json('POST', '/v1/printers', { name: `p${p}`, uri: `raw://127.0.0.1:${sinks[p].port}`, retry: { limit: 1000, baseMs: 20, maxMs: 200, heldRetryMs: 200 } });
      if (r.status !== 201) throw new Error(`adding printer p${p}: ${r.status} ${r.text}`);
    }
    const alive = new Set([0, 1, 2]);
    /** printer name → node index driving it, read from a live node. */
    const drivers = async (): Promise<Map<string, number>> => {
      for (const i of alive) {
        const v = (await nodeApi[i].json('GET', '/v1/cluster').catch(() => null))?.json;
        if (!v?.printers) continue;
        return new Map(v.printers.filter((p: { drivenBy: string | null }) => p.drivenBy).map((p: { name: string; drivenBy: string }) => [p.name, Number(p.drivenBy.slice(4)) - 1]));
      }
      return new Map();
    };
    await until('every printer driven', async () => (await drivers()).size === printers, 30000, 200);

    const label = (c: number, i: number) => `c${c}-${String(i).padStart(5, '0')}`;
    const printerOf = (c: number, i: number) => (c + i) % printers;
    const perClient = Math.ceil(opts.jobs / clients);
    const acked = new Set<string>();
    const ids = new Map<string, string>(); // label → jobID (the logs name jobs by id)
    const accepted = (r: ApiReply) => r.status === 201 || r.status === 200;

    /** A job re-posted with the same jobID until the cluster acknowledges it (across kills, 503s, resets). */
    async function post(c: number, i: number): Promise<void> {
      const jobID = randomUUID();
      ids.set(label(c, i), jobID);
      const doc = Buffer.from(`${label(c, i)}|${opts.canary}|`.padEnd(DOC_SIZE, '.'));
      let last = '';
      for (let attempt = 0; attempt < 600; attempt++) {
        try {
          const r = await api.postJob({ printer: `p${printerOf(c, i)}`, jobID, title: label(c, i) }, doc);
          if (accepted(r)) {
            acked.add(label(c, i));
            return;
          }
          last = `${r.status} ${r.text.slice(0, 160)}`;
          if (r.status < 500) throw Object.assign(new Error(`job ${label(c, i)}: ${last}`), { fatal: true });
        } catch (err) {
          if ((err as { fatal?: boolean }).fatal) throw err;
          last = (err as { code?: string }).code ?? (err as Error).message;
        }
        await sleep(50);
      }
      throw new Error(`job ${label(c, i)} never accepted (last: ${last})`);
    }
    let posted = 0;
    const client = async (c: number) => {
      for (let i = 0; i < perClient && c * perClient + i < opts.jobs; i++) {
        await post(c, i);
        posted++;
      }
    };

    /** Kills, waits for every printer the victim drove to print again, and records how long that took. */
    async function event(name: string, kill: (victim: number) => Promise<void>, after: (victim: number) => Promise<void>): Promise<void> {
      const before = await drivers();
      const counts = new Map<number, number>();
      for (const i of alive) counts.set(i, [...before.values()].filter((d) => d === i).length);
      const victim = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
      const driven = [...before.entries()].filter(([, d]) => d === victim).map(([p]) => Number(p.slice(1)));
      const killedAt = Date.now();
      await kill(victim);
      // Taken over: a surviving node holds the printer's lease (GET /v1/cluster names it). A print seen at the sink
      // proves nothing: the job the victim was sending can still arrive after the kill.
      const waiting = new Set(driven);
      while (waiting.size && Date.now() - killedAt < 60000) {
        const now = await drivers();
        for (const p of driven) {
          const by = now.get(`p${p}`);
          if (waiting.has(p) && by !== undefined && by !== victim && alive.has(by)) {
            waiting.delete(p);
            takeovers.push({ event: name, printer: `p${p}`, ms: Date.now() - killedAt });
          }
        }
        await sleep(50);
      }
      for (const p of waiting) failures.push(`cluster: after ${name}, printer p${p} was not taken over within 60 s`);
      await after(victim);
    }

    const killer = async () => {
      const waitFor = async (share: number) => {
        while (posted < opts.jobs * share) await sleep(20);
      };
      await waitFor(0.2);
      await event('printbox kill -9', async (v) => {
        alive.delete(v);
        await nodes[v].child!.kill9();
        logs[v].push(nodes[v].child!.output());
      }, async (v) => {
        await nodes[v].start();
        alive.add(v);
      });
      await waitFor(0.45);
      await event('nats-server kill -9', async (v) => {
        alive.delete(v);
        await nats.nodes[v].kill9();
      }, async (v) => {
        await nats.nodes[v].start();
        await until('the restarted nats-server healthy', () => nats.nodes[v].healthy(), 30000, 200);
        await until('its printbox ready again', async () => (await nodeApi[v].request('GET', '/v1/health').catch(() => null))?.status === 200, 30000, 200);
        alive.add(v);
      });
      await waitFor(0.7);
      await event('whole node kill -9', async (v) => {
        alive.delete(v);
        await Promise.all([nodes[v].child!.kill9(), nats.nodes[v].kill9()]);
      }, async () => {});
    };

    await Promise.all([...Array.from({ length: clients }, (_, c) => client(c)), killer()]);

    // Every acknowledged job must reach its printer. A PJL question a kill left at a sink (the probe of a RAW printer
    // just added, closed instead of reset) is no job.
    const docs = (s: Sink) => s.jobs.filter((j) => !isPjlQuestion(j.data!));
    const printed = () => sinks.reduce((n, s) => n + new Set(docs(s).map((j) => j.data!.toString().split('|')[0])).size, 0);
    await until('every acknowledged job printed', () => printed() >= acked.size, 180000, 200).catch(() => {});
    let lost = 0;
    let duplicates = 0;
    for (const [p, s] of sinks.entries()) {
      const labels = docs(s).map((j) => j.data!.toString().split('|')[0]);
      const seen = new Map<string, number[]>();
      labels.forEach((l, k) => seen.set(l, [...(seen.get(l) ?? []), k]));
      for (const [l, at] of seen) {
        if (at.length === 1) continue;
        duplicates += at.length - 1;
        if (at.length > 2 || at[1] !== at[0] + 1) failures.push(`cluster: p${p} printed ${l} ${at.length} times, not back to back (positions ${at.join(', ')}): not a job in flight`);
      }
      // Each client's jobs for this printer, in the order the client had them acknowledged.
      for (let c = 0; c < clients; c++) {
        const mine = [...seen.keys()].filter((l) => l.startsWith(`c${c}-`));
        const sorted = [...mine].sort();
        if (mine.join() !== sorted.join()) failures.push(`cluster: p${p} printed client ${c}'s jobs out of order`);
      }
      for (const l of acked) if (printerOf(Number(l.slice(1, l.indexOf('-'))), Number(l.slice(l.indexOf('-') + 1))) === p && !seen.has(l)) lost++;
    }
    if (lost) failures.push(`cluster: ${lost} acknowledged jobs never printed`);
    const events = 3;
    if (duplicates > events * printers) failures.push(`cluster: ${duplicates} duplicates, more than one per printer per kill`);
    // No document in clear in any node's data dir or any JetStream store.
    const dirs = [...nodes.map((n) => n.dir), nats.dir];
    let files = 0;
    for (const d of dirs) {
      for (const f of await filesUnder(d).catch(() => [])) {
        files++;
        const b = await fs.readFile(f).catch(() => Buffer.alloc(0));
        if (b.includes(opts.canary)) failures.push(`cluster: canary in plaintext in ${f}`);
      }
    }
    const fmt = (e: string) => takeovers.filter((t) => t.event === e).map((t) => `${t.printer} ${(t.ms / 1000).toFixed(1)} s`).join(', ') || 'none';
    const line = `cluster: 3 nats-server + 3 printbox + haproxy, ${clients} clients, ${printers} printers: ${acked.size} acknowledged, ${lost} lost, ${duplicates} printed twice (in flight), order ${failures.some((f) => /order/.test(f)) ? 'BROKEN' : 'kept'}; takeover after printbox kill -9: ${fmt('printbox kill -9')}; after nats-server kill -9: ${fmt('nats-server kill -9')}; after whole node kill -9: ${fmt('whole node kill -9')}; ${files} files searched for the canary; elapsed ${((Date.now() - t0) / 1000).toFixed(1)} s`;
    console.log(line);
    if (failures.length && process.env.PRINTBOX_CLUSTER_LOGS) {
      for (const [i, n] of nodes.entries()) await fs.writeFile(`${process.env.PRINTBOX_CLUSTER_LOGS}/node${i + 1}.log`, logs[i].join('\n--- restart ---\n') + (n.child?.output() ?? ''));
      for (const [p, s] of sinks.entries()) await fs.writeFile(`${process.env.PRINTBOX_CLUSTER_LOGS}/p${p}.txt`, s.jobs.map((j) => j.data!.toString().split('|')[0]).map((l) => `${l} ${ids.get(l)}`).join('\n'));
    }
    return { failures, line, accepted: acked.size, duplicates, takeovers };
  } finally {
    for (const a of apis) a.close();
    await proxy?.stop();
    for (const n of nodes) await n.child?.stop().catch(() => {});
    for (const s of sinks) await s.close();
    await nats.stop();
    for (const n of nodes) await fs.rm(n.dir, { recursive: true, force: true });
  }
}
