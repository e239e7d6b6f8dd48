// Torture scenario "cluster": 3 nats-server + 3 `printbox serve` + HAProxy on loopback, 8 clients posting to 4
// printers through HAProxy; mid-load a printbox is killed with -9, then a nats-server, then a whole node.
// Batches run across the kills, spread over the nodes: some members posted before their Batch Open, the open on
// one node, the members on all three, the close on another (each call moves to the next node when its node is down).
//
//   const r = await clusterKill({ jobs: 2000, canary, canaryDirs });   // prints one line starting "cluster:"
//
// Held: every acknowledged job prints (0 lost); each client's jobs print in its order on each printer; a job prints
// twice only when it was in flight at a kill (its two prints follow each other). Takeover time: from a kill to the
// first job printed afterwards on each printer the dead node drove. Each batch prints on each of its printers in its
// listed order and in one run (bench/batch-runs.ts), and ends done.
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
import { checkBatchRun } from './batch-runs.js';

export interface ClusterKillOptions {
  jobs: number;
  canary: string;
  clients?: number;
  printers?: number;
  /** Batches (their jobs are part of `jobs`): default 4 of max(6, jobs / 50) jobs. */
  batches?: number;
  batchSize?: number;
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
  /** Batches done, and in listed order and contiguous on every printer. */
  batchesDone: number;
  batchesInOrder: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DOC_SIZE = 600;

export async function clusterKill(opts: ClusterKillOptions): Promise<ClusterKillResult> {
  const t0 = Date.now();
  const clients = opts.clients ?? 8;
  const printers = opts.printers ?? 4;
  const batchCount = opts.batches ?? 4;
  const batchSize = opts.batchSize ?? Math.max(6, Math.round(opts.jobs / 50));
  const regular = opts.jobs - batchCount * batchSize;
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
    const perClient = Math.ceil(regular / clients);
    // Odd batches are split over two printers: each part must be contiguous on its printer.
    const batchID = (b: number) => `cluster-batch-${b}`;
    const batchLabel = (b: number, i: number) => `b${b}-${String(i).padStart(5, '0')}`;
    const batchPrinters = (b: number) => (b % 2 ? [b % printers, (b + 1) % printers] : [b % printers]);
    const batchPrinterOf = (b: number, i: number) => batchPrinters(b)[i % batchPrinters(b).length];
    const labelPrinter = (l: string): number => {
      const m = /^([cb])(\d+)-(\d+)$/.exec(l)!;
      return m[1] === 'c' ? printerOf(+m[2], +m[3]) : batchPrinterOf(+m[2], +m[3]);
    };
    /** Per batch: when it was opened, closed and seen done; the kills, when they happened. */
    const batchTimes: { opened?: number; closed?: number; done?: number }[] = Array.from({ length: batchCount }, () => ({}));
    const kills: { name: string; at: number }[] = [];
    const bs = { opened: 0, reopened: 0, closed: 0, closeAgain: 0, early: 0, printedBeforeClose: 0, done: 0, inOrder: 0, interleaved: 0, nodes: [0, 0, 0] };
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
      for (let i = 0; i < perClient && c * perClient + i < regular; i++) {
        await post(c, i);
        posted++;
      }
    };

    /**
     * One call to node `start` (then the next, and so on while nodes are down or answer 5xx) until `ok` accepts an
     * answer; any other 4xx is a finding. Returns the answer and the node that gave it.
     */
    async function onNode(what: string, start: number, send: (a: Api) => Promise<ApiReply>, ok: (r: ApiReply) => boolean): Promise<{ r: ApiReply; node: number }> {
      let last = '';
      for (let attempt = 0; attempt < 600; attempt++) {
        const i = (start + attempt) % 3;
        if (alive.has(i)) {
          try {
            const r = await send(nodeApi[i]);
            if (ok(r)) return { r, node: i };
            last = `node${i + 1}: ${r.status} ${r.text.slice(0, 160)}`;
            // job_in_progress: the same upload, cut off by a kill, still being read on that node.
            if (r.status < 500 && r.json?.error?.code !== 'job_in_progress') throw Object.assign(new Error(`${what}: ${last}`), { fatal: true });
          } catch (err) {
            if ((err as { fatal?: boolean }).fatal) throw err;
            last = `node${i + 1}: ${(err as { code?: string }).code ?? (err as Error).message}`;
          }
        }
        await sleep(50);
      }
      throw new Error(`${what} never answered (last: ${last})`);
    }
    const batchJobIDs = Array.from({ length: batchCount }, () => Array.from({ length: batchSize }, () => randomUUID()));
    /** Batch b: a few members posted before its Batch Open, the open on one node, the rest on all three, the close on another. */
    async function batch(b: number): Promise<void> {
      while (posted < regular * (0.1 + (0.6 * b) / Math.max(1, batchCount - 1))) await sleep(20);
      const members = batchJobIDs[b];
      const member = async (i: number) => {
        ids.set(batchLabel(b, i), members[i]);
        const doc = Buffer.from(`${batchLabel(b, i)}|${opts.canary}|`.padEnd(DOC_SIZE, '.'));
        const { r } = await onNode(`batch ${b} job ${i}`, i % 3, (a) => a.postJob({ printer: `p${batchPrinterOf(b, i)}`, jobID: members[i], title: batchLabel(b, i), batchID: batchID(b) }, doc), accepted);
        if (r.json?.state !== 'waiting-for-batch') failures.push(`cluster: batch ${b} job ${i} answered state ${r.json?.state} before close`);
        acked.add(batchLabel(b, i));
      };
      const early = [0, 1, 2].filter((i) => i < members.length);
      for (const i of early) await member(i);
      bs.early += early.length;
      const body = { batchID: batchID(b), jobIDs: members, requireAllJobs: true, name: `cluster batch ${b}` };
      batchTimes[b].opened = Date.now();
      const opened = await onNode(`batch ${b} open`, b + 1, (a) => a.json('POST', '/v1/batches', body), accepted);
      bs.opened++;
      bs.nodes[opened.node]++;
      if (opened.r.status === 200) bs.reopened++;
      const order = members.map((_, i) => i).filter((i) => !early.includes(i)).sort(() => Math.random() - 0.5);
      let next = 0;
      await Promise.all(Array.from({ length: 3 }, async () => {
        while (next < order.length) await member(order[next++]);
      }));
      const before = sinks.flatMap((s) => s.jobs.filter((j) => j.data!.toString().startsWith(`b${b}-`))).length;
      bs.printedBeforeClose += before;
      if (before) failures.push(`cluster: batch ${b}: ${before} jobs printed before Batch Close`);
      // A close that was committed before its node died answers 409 batch_not_open when sent again.
      const closed = await onNode(`batch ${b} close`, b + 2, (a) => a.request('POST', `/v1/batches/${batchID(b)}/close`), (r) => r.status === 200 || (r.status === 409 && r.json?.error?.code === 'batch_not_open'));
      if (closed.r.status === 409) bs.closeAgain++;
      bs.closed++;
      batchTimes[b].closed = Date.now();
      // How long from its close until it is done (a kill during that time: the batch resumed on another node).
      await until(`batch ${b} done`, async () => {
        for (const i of alive) {
          const st = (await nodeApi[i].json('GET', `/v1/batches/${batchID(b)}`).catch(() => null))?.json?.state;
          if (st) return st === 'done';
        }
        return false;
      }, 180000, 100).then(() => (batchTimes[b].done = Date.now()), () => {});
    }

    /** Kills, waits for every printer the victim drove to print again, and records how long that took. */
    async function event(name: string, kill: (victim: number) => Promise<void>, after: (victim: number) => Promise<void>): Promise<void> {
      const before = await drivers();
      const counts = new Map<number, number>();
      for (const i of alive) counts.set(i, [...before.values()].filter((d) => d === i).length);
      const victim = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
      const driven = [...before.entries()].filter(([, d]) => d === victim).map(([p]) => Number(p.slice(1)));
      const killedAt = Date.now();
      kills.push({ name, at: killedAt });
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
        while (posted < regular * share) await sleep(20);
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

    const batches = Array.from({ length: batchCount }, (_, b) => batch(b).catch((err) => void failures.push(`cluster: batch ${b}: ${(err as Error).message}`)));
    await Promise.all([...Array.from({ length: clients }, (_, c) => client(c)), killer(), ...batches]);

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
      for (const l of acked) if (labelPrinter(l) === p && !seen.has(l)) lost++;
    }
    // Every batch ends done, and prints on each of its printers in its listed order and in one run.
    const printedOn = sinks.map((s) => s.jobs.map((j) => j.data!.toString().split('|')[0]));
    const around = (p: number, k: number) => printedOn[p].slice(Math.max(0, k - 4), k + 5).map((l, x) => (x === Math.min(k, 4) ? `[${l}]` : l)).join(' ');
    const states: { batchID: string; state: string }[] = await until<{ batchID: string; state: string }[] | null>('every batch done', async () => {
      for (const i of alive) {
        const list = (await nodeApi[i].json('GET', '/v1/batches').catch(() => null))?.json?.batches as { batchID: string; state: string }[] | undefined;
        if (list) return list.length >= batchCount && list.every((x) => x.state === 'done') ? list : null;
      }
      return null;
    }, 60000, 200).then((x) => x!, async () => {
      for (const i of alive) {
        const list = (await nodeApi[i].json('GET', '/v1/batches').catch(() => null))?.json?.batches;
        if (list) return list as { batchID: string; state: string }[];
      }
      return [];
    });
    bs.done = states.filter((x) => x.state === 'done').length;
    for (const x of states) if (x.state !== 'done') failures.push(`cluster: ${x.batchID} is ${x.state} after the drain`);
    for (let b = 0; b < batchCount; b++) {
      const parts = batchPrinters(b).map((p) => ({ printer: p, expected: Array.from({ length: batchSize }, (_, i) => i).filter((i) => batchPrinterOf(b, i) === p).map((i) => batchLabel(b, i)) }));
      const r = checkBatchRun({ name: `cluster: batch ${b}`, mine: (l) => l.startsWith(`b${b}-`), parts }, printedOn, around);
      failures.push(...r.violations);
      bs.interleaved += r.interleaved;
      if (r.inOrder) bs.inOrder++;
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
    const batchFmt = batchTimes
      .map((t, b) => {
        const across = kills.filter((k) => t.opened && k.at >= t.opened && k.at <= (t.done ?? Infinity)).map((k) => k.name);
        return `b${b} close→done ${t.done && t.closed ? `${((t.done - t.closed) / 1000).toFixed(1)} s` : 'never'}${across.length ? ` (across ${across.join(', ')})` : ''}`;
      })
      .join(', ');
    const fmt = (e: string) => takeovers.filter((t) => t.event === e).map((t) => `${t.printer} ${(t.ms / 1000).toFixed(1)} s`).join(', ') || 'none';
    const line = `cluster: 3 nats-server + 3 printbox + haproxy, ${clients} clients, ${printers} printers: ${acked.size} acknowledged, ${lost} lost, ${duplicates} printed twice (in flight), order ${failures.some((f) => /order/.test(f)) ? 'BROKEN' : 'kept'}; batches ${batchCount} × ${batchSize} jobs (${bs.early} posted before their open; opened on nodes ${bs.nodes.map((n, i) => `${i + 1}:${n}`).join(' ')}): closed ${bs.closed}, done ${bs.done}, in listed order and contiguous ${bs.inOrder}, interleaved ${bs.interleaved}, printed before close ${bs.printedBeforeClose}, re-opened ${bs.reopened}, re-closed ${bs.closeAgain}; ${batchFmt}; takeover after printbox kill -9: ${fmt('printbox kill -9')}; after nats-server kill -9: ${fmt('nats-server kill -9')}; after whole node kill -9: ${fmt('whole node kill -9')}; ${files} files searched for the canary; elapsed ${((Date.now() - t0) / 1000).toFixed(1)} s`;
    console.log(line);
    if (failures.length && process.env.PRINTBOX_CLUSTER_LOGS) {
      for (const [i, n] of nodes.entries()) await fs.writeFile(`${process.env.PRINTBOX_CLUSTER_LOGS}/node${i + 1}.log`, logs[i].join('\n--- restart ---\n') + (n.child?.output() ?? ''));
      for (const [p, s] of sinks.entries()) await fs.writeFile(`${process.env.PRINTBOX_CLUSTER_LOGS}/p${p}.txt`, s.jobs.map((j) => j.data!.toString().split('|')[0]).map((l) => `${l} ${ids.get(l)}`).join('\n'));
    }
    return { failures, line, accepted: acked.size, duplicates, takeovers, batchesDone: bs.done, batchesInOrder: bs.inOrder };
  } finally {
    for (const a of apis) a.close();
    await proxy?.stop();
    for (const n of nodes) await n.child?.stop().catch(() => {});
    for (const s of sinks) await s.close();
    await nats.stop();
    for (const n of nodes) await fs.rm(n.dir, { recursive: true, force: true });
  }
}
