// printbox torture suite: kill -9 storms, printer faults, a full disk, floods of malformed requests, and a
// plaintext-canary search of every data dir they used.
//
//   npx tsx bench/torture.ts            full: 20 kills over 5,000 jobs (200 of them in 5 batches), 4 fault rounds
//                                       on 5 printers, 3 disk-full cycles, 10,000 bad requests (a few minutes)
//   npx tsx bench/torture.ts --quick    4 kills over 600 jobs (60 in 5 batches), 1 fault round, 1 disk-full
//                                       cycle, 1,000 bad requests (about a minute; test/torture.test.ts runs it)
//   --only=crash,faults,disk,bad,cluster   run some scenarios only (the secrets check runs on their data dirs)
//   cluster (full run only; --quick leaves it to test/cluster-kill.test.ts): 3 nats-server + 3 printbox + HAProxy,
//                                       2,000 jobs, kill -9 of a printbox, a nats-server, a whole node (PRINTBOX_CLUSTER_JOBS)
//
// Each scenario prints one summary line; the process exits 1 if any scenario lost a job, broke order or broke its rule.
import fs from 'node:fs/promises';
import https from 'node:https';
import { createHash, randomBytes } from 'node:crypto';
import { startSink, type Sink } from '../test/peers/tcp-sink.js';
import { isPjlQuestion } from '../test/peers/pjl-printer.js';
import { Api, multipart, type ApiReply } from '../test/helpers/api.js';
import { printerFaults } from './torture-faults.js';
import { diskFull } from './torture-disk.js';
import { clusterKill } from './torture-cluster.js';
import { checkBatchRun } from './batch-runs.js';
import { addRawPrinter, filesUnder, freePort, spawnAppliance, startAppliance, tempDir, until, type ChildAppliance } from '../test/helpers/appliance.js';

const quick = process.argv.includes('--quick');
const only = (process.argv.find((a) => a.startsWith('--only='))?.slice(7) ?? (quick ? 'crash,faults,disk,bad' : 'crash,faults,disk,bad,cluster')).split(',');
// Batch jobs are part of `jobs`: 5 batches of `batchSize`, each posted by `batchPosters` concurrent clients.
const P = quick
  ? { jobs: 600, clients: 8, printers: 4, kills: 4, batches: 5, batchSize: 12, batchPosters: 4, bad: 1000, drainMs: 90_000 }
  : { jobs: 5000, clients: 8, printers: 4, kills: 20, batches: 5, batchSize: 40, batchPosters: 4, bad: 10_000, drainMs: 300_000 };

/** A string that must never reach the disk in clear: documents are sealed before they touch the spool. */
const CANARY = `PBX-CANARY-${randomBytes(12).toString('hex')}`;
const DOC_SIZE = 600;

const failures: string[] = [];
const canaryDirs: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
const MiB = 1024 * 1024;

/** A deterministic UUID per key so a client can re-post after a kill with the same jobID. */
function jobID(key: string): string {
  const h = createHash('sha256').update(`torture-${key}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const k = Math.floor(Math.random() * (i + 1));
    [a[i], a[k]] = [a[k], a[i]];
  }
  return a;
}

/** The label a document starts with (`c3-00042` or `b1-00007`), read without decoding the whole document. */
function labelOf(d: Buffer): string {
  const bar = d.indexOf(0x7c);
  return d.subarray(0, bar < 0 ? Math.min(d.length, 32) : bar).toString('latin1');
}

// ---------------------------------------------------------------------------------------------------------------
// 1. crash: kill -9 at random moments while clients post; every acknowledged job prints, in order, and every
// batch prints in its listed order without another job inside its run on a printer.
async function crash(): Promise<void> {
  const t0 = Date.now();
  const dataDir = await tempDir('pbx-torture-crash-');
  canaryDirs.push(dataDir);
  const port = await freePort();
  const sinks: Sink[] = [];
  for (let p = 0; p < P.printers; p++) sinks.push(await startSink());
  let box: ChildAppliance = await spawnAppliance(dataDir, port);
  const token = box.token!;
  let api = new Api(`https://127.0.0.1:${port}`, await fs.readFile(`${dataDir}/tls/cert.pem`, 'utf8'), token, 32);
  const acked = new Set<string>();
  let kills = 0;
  const violations: string[] = [];
  // Batch figures for the summary line.
  const bs = { opened: 0, reopened: 0, closed: 0, closeAgain: 0, done: 0, inOrder: 0, interleaved: 0 };
  try {
    for (const [p, s] of sinks.entries()) {
      const r = await api.json('POST', '/v1/printers', { name: `p${p}`, uri: `raw://127.0.0.1:${s.port}`, retry: { limit: 1000, baseMs: 20, maxMs: 200, heldRetryMs: 200 } });
      if (r.status !== 201) throw new Error(`adding printer p${p}: ${r.status} ${r.text}`);
    }
    let restarting: Promise<void> | null = null;
    let postingDone = false;
    const batchJobs = P.batches * P.batchSize;
    const regular = P.jobs - batchJobs;
    const perClient = Math.ceil(regular / P.clients);
    const label = (c: number, i: number) => `c${c}-${String(i).padStart(5, '0')}`;
    // Jobs rotate over the printers so every printer interleaves several clients.
    const printerOf = (c: number, i: number) => (c + i) % P.printers;
    // Batches: one per printer, and the rest spread over two printers (a batch's part on each printer must stay contiguous).
    const batchID = (b: number) => `torture-batch-${b}`;
    const batchLabel = (b: number, i: number) => `b${b}-${String(i).padStart(5, '0')}`;
    const batchPrinters = (b: number) => (b < P.printers ? [b] : [b % P.printers, (b + 2) % P.printers]);
    const batchPrinterOf = (b: number, i: number) => batchPrinters(b)[i % batchPrinters(b).length];
    const batchJobIDs = (b: number) => Array.from({ length: P.batchSize }, (_, i) => jobID(`b${b}-${i}`));
    const labelPrinter = (l: string): number | undefined => {
      const m = /^([cb])(\d+)-(\d+)$/.exec(l);
      if (!m) return undefined;
      return m[1] === 'c' ? printerOf(+m[2], +m[3]) : batchPrinterOf(+m[2], +m[3]);
    };
    let ackedRegular = 0;
    const killedAt: number[][] = []; // each sink's document count at each kill, to show a finding next to its kill

    /**
     * One request retried across kills: waits out a restart, retries network errors and 5xx; `ok` says which
     * answers mean done. Any other 4xx is a finding and ends the run.
     */
    async function retried(what: string, send: () => Promise<ApiReply>, ok: (r: ApiReply) => boolean): Promise<ApiReply> {
      let last = '';
      for (let attempt = 0; ; attempt++) {
        if (attempt >= 400) throw new Error(`${what} never accepted (last: ${last})`);
        if (restarting) await restarting;
        try {
          const r = await send();
          if (ok(r)) return r;
          last = `${r.status} ${r.text.slice(0, 160)}`;
          if (r.status < 500) throw Object.assign(new Error(`${what}: ${last}`), { fatal: true });
        } catch (err) {
          if ((err as { fatal?: boolean }).fatal) throw err;
          last = (err as { code?: string }).code ?? (err as Error).message;
        }
        await sleep(50); // the server is down or restarting: try again once it is back
      }
    }
    const accepted = (r: ApiReply) => r.status === 201 || r.status === 200;

    async function client(c: number) {
      for (let i = 0; i < perClient && c * perClient + i < regular; i++) {
        const doc = Buffer.from(`${label(c, i)}|${CANARY}|`.padEnd(DOC_SIZE, '.'));
        await retried(`client ${c} job ${i}`, () => api.postJob({ printer: `p${printerOf(c, i)}`, jobID: jobID(`${c}-${i}`), title: label(c, i) }, doc), accepted);
        acked.add(label(c, i));
        ackedRegular++;
      }
    }

    /** Batch b: opened once a share of the regular jobs is in, members posted by several clients in shuffled order, closed. */
    async function batch(b: number) {
      const at = Math.floor(regular * (0.05 + (0.8 * b) / Math.max(1, P.batches - 1)));
      await until(`${at} regular jobs before batch ${b}`, () => ackedRegular >= at || postingDone, 600_000, 5);
      const ids = batchJobIDs(b);
      const body = { batchID: batchID(b), jobIDs: ids, requireAllJobs: true, name: `torture batch ${b}` };
      // Open again after a kill: the same body answers 200 with the batch that was created before the kill.
      const opened = await retried(`batch ${b} open`, () => api.json('POST', '/v1/batches', body), accepted);
      bs.opened++;
      if (opened.status === 200) bs.reopened++;
      const order = shuffle(ids.map((_, i) => i));
      let next = 0;
      await Promise.all(
        Array.from({ length: P.batchPosters }, async () => {
          while (next < order.length) {
            const i = order[next++];
            const doc = Buffer.from(`${batchLabel(b, i)}|${CANARY}|`.padEnd(DOC_SIZE, '.'));
            const r = await retried(`batch ${b} job ${i}`, () => api.postJob({ printer: `p${batchPrinterOf(b, i)}`, jobID: ids[i], title: batchLabel(b, i), batchID: batchID(b) }, doc), accepted);
            if (r.json?.state !== 'waiting-for-batch') violations.push(`batch ${b} job ${i} answered state ${r.json?.state} before close`);
            acked.add(batchLabel(b, i));
          }
        }),
      );
      // Held until close: nothing of this batch may have reached a printer yet.
      const early = sinks.flatMap((s) => s.jobs.filter((j) => j.size > 0 && labelOf(j.data!).startsWith(`b${b}-`))).length;
      if (early) violations.push(`batch ${b}: ${early} jobs printed before Batch Close`);
      // Close again after a kill: a close that was committed before the kill answers 409 batch_not_open.
      const closed = await retried(`batch ${b} close`, () => api.request('POST', `/v1/batches/${batchID(b)}/close`), (r) => r.status === 200 || (r.status === 409 && r.json?.error?.code === 'batch_not_open'));
      if (closed.status === 409) {
        bs.closeAgain++;
        const st = (await retried(`batch ${b} state`, () => api.request('GET', `/v1/batches/${batchID(b)}`), (r) => r.status === 200)).json?.state;
        if (st !== 'printing' && st !== 'done') violations.push(`batch ${b}: close answered 409 batch_not_open but the batch is ${st}`);
      }
      bs.closed++;
    }

    async function killer() {
      // Random kill points spread over the run, each with a random extra delay so kills land mid-upload and mid-print.
      const points = Array.from({ length: P.kills }, () => Math.floor(P.jobs * (0.03 + 0.94 * Math.random()))).sort((a, b) => a - b);
      for (const at of points) {
        // A point the posting outran (it got faster, or two points lie close) is killed at once: mid-delivery then.
        await until(`${at} acknowledged jobs`, () => acked.size >= at || postingDone, 600_000, 5);
        await sleep(Math.random() * 150);
        let done!: () => void;
        restarting = new Promise((r) => (done = r));
        await box.kill9();
        kills++;
        killedAt.push(sinks.map((s) => s.jobs.length));
        box = await spawnAppliance(dataDir, port);
        const cert = await fs.readFile(`${dataDir}/tls/cert.pem`, 'utf8');
        api.close();
        api = new Api(`https://127.0.0.1:${port}`, cert, token, 32);
        restarting = null;
        done();
      }
    }

    const posting = Promise.all([...Array.from({ length: P.clients }, (_, c) => client(c)), ...Array.from({ length: P.batches }, (_, b) => batch(b))]).finally(() => (postingDone = true));
    await Promise.all([posting, killer()]);
    const postedAt = Date.now();

    // Sink bookkeeping, incremental: each document's label is read once, and the wait checks only what is still missing.
    const scanned = sinks.map(() => 0);
    const printedOn = sinks.map(() => [] as string[]); // labels of non-empty documents per printer, in arrival order
    const seen = new Set<string>();
    const scan = () => {
      for (const [p, s] of sinks.entries()) {
        for (; scanned[p] < s.jobs.length; scanned[p]++) {
          const j = s.jobs[scanned[p]];
          if (j.size === 0 || isPjlQuestion(j.data!)) continue; // a PJL probe a kill closed instead of resetting
          const l = labelOf(j.data!);
          printedOn[p].push(l);
          seen.add(l);
        }
      }
    };
    const pending = new Set(acked);
    let lastReport = Date.now();
    await until(
      'every acknowledged job at a sink',
      () => {
        scan();
        for (const l of pending) if (seen.has(l)) pending.delete(l);
        if (Date.now() - lastReport > 10_000) {
          lastReport = Date.now();
          console.log(`crash: drain +${secs(postedAt)}: ${pending.size} not yet printed; per printer ${printedOn.map((l) => l.length).join('/')}`);
        }
        return pending.size === 0;
      },
      P.drainMs,
      100,
    ).catch(() => {});
    const drainMs = Date.now() - postedAt;
    // Every batch reaches done once its last member has printed (settle runs after the outcome is journaled).
    type BatchState = { batchID: string; state: string };
    const states: BatchState[] = await until<BatchState[] | null>(
      'every batch done',
      async () => {
        const r = await api.request('GET', '/v1/batches').catch(() => null);
        const list: BatchState[] = r?.json?.batches ?? [];
        return list.length >= P.batches && list.every((x) => x.state === 'done') ? list : null;
      },
      10_000,
      200,
    ).then((x) => x!, async () => ((await api.request('GET', '/v1/batches').catch(() => null))?.json?.batches ?? []) as BatchState[]);
    bs.done = states.filter((x) => x.state === 'done').length;
    for (const x of states) if (x.state !== 'done') violations.push(`batch ${x.batchID} is ${x.state} after the drain`);
    // Why a drain is slow: the last server's delivery retries, with one reason of each kind.
    const retries = box.output().split('\n').filter((l) => l.includes('delivery will be retried') || l.includes('job held'));
    const reasons = [...new Set(retries.map((l) => (/"reason":"([^"]{0,120})/.exec(l)?.[1] ?? '?').replace(/\d+/g, 'N')))];
    console.log(`crash: last server logged ${retries.length} retries/holds${reasons.length ? `: ${reasons.slice(0, 4).join(' | ')}` : ''}`);

    /** Where each kill fell on printer p, as an index into printedOn[p] (the first document printed after it). */
    const killMarks = (p: number) => {
      // printedOn skips empty documents and PJL questions: count only the documents before each kill.
      const nonEmptyBefore: number[] = [0];
      for (const j of sinks[p].jobs) nonEmptyBefore.push(nonEmptyBefore[nonEmptyBefore.length - 1] + (j.size > 0 && !isPjlQuestion(j.data!) ? 1 : 0));
      return killedAt.map((ka) => nonEmptyBefore[ka[p]]);
    };
    /** The documents printed around position k of printer p, with the kills marked (`‖`) where they fell. */
    const around = (p: number, k: number) => {
      const marks = killMarks(p);
      const out: string[] = [];
      for (let x = Math.max(0, k - 6); x <= Math.min(printedOn[p].length - 1, k + 6); x++) {
        if (marks.includes(x)) out.push('‖');
        out.push(x === k ? `[${printedOn[p][x]}]` : printedOn[p][x]);
      }
      return out.join(' ');
    };
    scan();
    const lost = [...acked].filter((l) => !seen.has(l));
    let duplicated = 0;
    let outOfOrder = 0;
    for (const [p, s] of sinks.entries()) {
      const labels = printedOn[p].filter((l) => labelPrinter(l) !== undefined);
      // Empty connections come from a kill between connect and first byte; anything else unlabelled is a torn document.
      const odd = printedOn[p].length - labels.length;
      if (odd) violations.push(`p${p}: ${odd} unlabelled non-empty documents`);
      // The positive control for the secrets scenario: the canary really travelled inside every document.
      const docs = s.jobs.filter((j) => j.size > 0 && !isPjlQuestion(j.data!));
      const noCanary = docs.filter((j) => !j.data!.includes(CANARY));
      if (noCanary.length) violations.push(`p${p}: ${noCanary.length} printed documents without the canary`);
      const torn = docs.filter((j) => j.size !== DOC_SIZE);
      if (torn.length) violations.push(`p${p}: ${torn.length} documents not whole (sizes ${torn.slice(0, 5).map((j) => j.size)})`);
      const dups = labels.length - new Set(labels).size;
      duplicated += dups;
      if (dups > kills) violations.push(`p${p}: ${dups} duplicates for ${kills} kills`);
      // A duplicate is the job in flight at a kill, sent again first after the restart: its two prints sit right
      // before and right after a kill mark (give or take one: the sink may record the killed connection late).
      const marks = killMarks(p);
      const at = new Map<string, number>();
      for (const [k, l] of printedOn[p].entries()) {
        const prev = at.get(l);
        at.set(l, k);
        if (prev === undefined || labelPrinter(l) === undefined) continue;
        if (!marks.some((m) => prev >= m - 2 && prev < m + 1 && k >= m && k <= m + 2)) violations.push(`p${p}: ${l} printed twice, not around a kill: ${around(p, k)}`);
      }
      const first = new Set<string>();
      const last = new Map<number, number>();
      for (const l of labels) {
        if (first.has(l)) continue;
        first.add(l);
        if (labelPrinter(l) !== p) violations.push(`${l} printed on p${p}, posted to p${labelPrinter(l)}`);
        const m = /^c(\d+)-(\d+)$/.exec(l);
        if (!m) continue;
        const [c, i] = [+m[1], +m[2]];
        if ((last.get(c) ?? -1) > i) outOfOrder++;
        last.set(c, Math.max(i, last.get(c) ?? -1));
      }
    }
    // Batches: on each of its printers, a batch's part is its listed order (first prints only) and one run: between
    // its first and last document nothing else prints, except a repeat of a document already printed (the job in
    // flight at a kill is sent again).
    for (let b = 0; b < P.batches; b++) {
      const parts = batchPrinters(b).map((p) => ({ printer: p, expected: Array.from({ length: P.batchSize }, (_, i) => i).filter((i) => batchPrinterOf(b, i) === p).map((i) => batchLabel(b, i)) }));
      const r = checkBatchRun({ name: `batch ${b}`, mine: (l) => l.startsWith(`b${b}-`), parts }, printedOn, around);
      violations.push(...r.violations);
      bs.interleaved += r.interleaved;
      if (r.inOrder) bs.inOrder++;
    }
    if (acked.size !== P.jobs) violations.push(`${P.jobs - acked.size} jobs never acknowledged`);
    if (kills !== P.kills) violations.push(`only ${kills} of ${P.kills} kills happened`);
    if (lost.length) violations.push(`lost: ${lost.slice(0, 10).join(', ')}${lost.length > 10 ? ' …' : ''}`);
    if (outOfOrder) violations.push(`${outOfOrder} out of order`);
    console.log(
      `crash: posted ${P.jobs}, acknowledged ${acked.size}, printed ${seen.size}, lost ${lost.length}, duplicated ${duplicated}, out of order ${outOfOrder}; ` +
        `batches ${P.batches} × ${P.batchSize} jobs: closed ${bs.closed}, done ${bs.done}, in listed order and contiguous ${bs.inOrder}, interleaved ${bs.interleaved}, re-opened after a kill ${bs.reopened}, re-closed ${bs.closeAgain}; ` +
        `${kills} kills, drain ${(drainMs / 1000).toFixed(1)} s, elapsed ${secs(t0)}`,
    );
  } catch (err) {
    violations.push(`aborted: ${(err as Error).message}`);
    console.log(`crash: aborted after ${kills} kills, ${acked.size} acknowledged, elapsed ${secs(t0)}`);
  } finally {
    api.close();
    await box.stop().catch(() => {});
    for (const s of sinks) await s.close().catch(() => {});
  }
  for (const v of violations) failures.push(`crash: ${v}`);
}

// ---------------------------------------------------------------------------------------------------------------
// 2. bad input: a flood of malformed requests; every answer is a 4xx JSON error and nothing is left behind.
const UUID = () => crypto.randomUUID();

/** Sends raw bytes over TLS with a pause in the middle (a slow or stalled client), bounded by `ms`. */
function slowRequest(port: number, ca: string, head: string, parts: Buffer[], pauseMs: number, ms = 15_000): Promise<ApiReply> {
  return new Promise((resolve, reject) => {
    const [method, path] = head.split(' ');
    const chunks: Buffer[] = [];
    const req = https.request({ host: '127.0.0.1', port, method, path, ca, agent: false, headers: JSON.parse(head.slice(method.length + path.length + 2)) }, (res) => {
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error('slow request not answered in time')), ms);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.write(parts[0]);
    setTimeout(() => {
      for (const p of parts.slice(1)) req.write(p);
      req.end();
    }, pauseMs);
  });
}

async function badInput(): Promise<void> {
  const t0 = Date.now();
  const LIMIT = 256 * 1024;
  const box = await startAppliance({ maxDocumentBytes: LIMIT });
  canaryDirs.push(box.dataDir);
  const sink = await startSink({ behaviour: 'refuse' }); // nothing prints: any accepted document would stay visible
  const violations: string[] = [];
  let rssStart = 0;
  let rssPeak = 0;
  let rssEnd = 0;
  const bad = new Map<string, number>();
  let sent = 0;
  try {
    await addRawPrinter(box.api, 'p', sink.port);
    const api = box.api;
    const ca = box.running.tls.cert;
    const port = box.running.port;
    const sealedBefore = (await filesUnder(`${box.dataDir}/spool/docs`)).length;
    const revoked = (await api.json('POST', '/v1/tokens', { name: 'revoked', scope: 'admin' })).json;
    await api.request('DELETE', `/v1/tokens/${revoked.id}`);
    const doc = () => Buffer.from(`${CANARY}|`.padEnd(64 + Math.floor(Math.random() * 2000), 'x'));
    // Token guesses come from an address of their own, as a guesser on the LAN would: wrong tokens are counted per
    // address (30 a minute, then 429 for every token from it), and the rest of the flood must meet its own checks.
    const guesser = new Api(box.api.base, ca, undefined, 16, { localAddress: '127.0.0.2' });
    let guessesRefused = 0;
    /** Names the variant of a kind in the report, so a finding says which input it was. */
    const tag = (variant: string, p: Promise<ApiReply>) => p.then((r) => Object.assign(r, { variant }));
    const ct = (b: string) => ({ 'content-type': `multipart/form-data; boundary=${b}` });

    // Each kind makes one malformed request; the name is what a failure is reported by.
    const kinds: Record<string, () => Promise<ApiReply>> = {
      'truncated multipart': () => {
        const { contentType, body } = multipart({ printer: 'p' }, doc());
        const b = body as Buffer;
        return api.request('POST', '/v1/jobs', { body: b.subarray(0, Math.floor(Math.random() * (b.length - 10))), headers: { 'content-type': contentType } });
      },
      'garbage multipart': () => api.request('POST', '/v1/jobs', { body: randomBytes(1 + Math.floor(Math.random() * 4000)), headers: ct('zzz') }),
      'no closing boundary': () => {
        const b = 'bb';
        return api.request('POST', '/v1/jobs', { body: Buffer.concat([Buffer.from(`--${b}\r\ncontent-disposition: form-data; name="printer"\r\n\r\np\r\n--${b}\r\ncontent-disposition: form-data; name="file"; filename="a"\r\n\r\n`), doc()]), headers: ct(b) });
      },
      'missing boundary param': () => api.request('POST', '/v1/jobs', { body: doc(), headers: { 'content-type': 'multipart/form-data' } }),
      'missing file': () => api.request('POST', '/v1/jobs', { body: `--b\r\ncontent-disposition: form-data; name="printer"\r\n\r\np\r\n--b--\r\n`, headers: ct('b') }),
      'two files': () => {
        const b = 'tf';
        const part = (n: string) => Buffer.concat([Buffer.from(`--${b}\r\ncontent-disposition: form-data; name="${n}"; filename="a"\r\n\r\n`), doc(), Buffer.from('\r\n')]);
        return api.request('POST', '/v1/jobs', { body: Buffer.concat([Buffer.from(`--${b}\r\ncontent-disposition: form-data; name="printer"\r\n\r\nnope\r\n`), part('file'), part('file'), Buffer.from(`--${b}--\r\n`)]), headers: ct(b) });
      },
      'bad uuid': () => api.postJob({ printer: 'p', jobID: ['nope', '1234', UUID().slice(1), UUID() + 'x', 'g'.repeat(36), ''][Math.floor(Math.random() * 6)] || 'z' }, doc(), { fieldsAfter: Math.random() < 0.5 }),
      'path filename, bad uuid': () => api.postJob({ printer: 'p', jobID: '../../etc/passwd' }, doc(), { filename: ['../../etc/passwd', '/etc/shadow', '..\\..\\boot.ini', 'a/../../b'][Math.floor(Math.random() * 4)] }),
      'unknown printer': () => api.postJob({ printer: `nope-${randomBytes(3).toString('hex')}` }, doc(), { fieldsAfter: Math.random() < 0.5 }),
      'bad option': () => {
        const opts: Record<string, string>[] = [{ copies: '0' }, { copies: '-1' }, { copies: '1e9' }, { copies: 'two' }, { duplex: 'sideways' }, { contentType: 'docx' }, { pageRanges: '1-x' }, { pageRanges: '5-2' }, { statusURL: 'file:///etc/passwd' }, { color: 'maybe' }, { metadata: '{not json' }, { orientation: 'diagonal' }];
        const o = opts[Math.floor(Math.random() * opts.length)];
        return tag(JSON.stringify(o), api.postJob({ printer: 'p', ...o }, doc(), { fieldsAfter: Math.random() < 0.5 }));
      },
      'oversized field': () => api.postJob({ printer: 'p', [['title', 'jobID', 'metadata', 'printer'][Math.floor(Math.random() * 4)]]: 'x'.repeat(2000 + Math.floor(Math.random() * 200_000)) }, doc()),
      'oversized document': () => api.postJob({ printer: 'p' }, randomBytes(LIMIT + 1 + Math.floor(Math.random() * 1000))),
      'wrong content type': () => {
        const types = ['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream', 'image/png'];
        return api.request('POST', '/v1/jobs', { body: '{"printer":"p"}', headers: { 'content-type': types[Math.floor(Math.random() * types.length)] } });
      },
      'bad batch': () => {
        const id = UUID();
        const bodies = [{ batchID: 'dup', jobIDs: [id, id] }, { batchID: 'bad', jobIDs: ['not-a-uuid'] }, { batchID: 'x'.repeat(129 + Math.floor(Math.random() * 100_000)), jobIDs: [UUID()] }, { batchID: 'empty', jobIDs: [] }, { batchID: 'na', jobIDs: 'nope' }, { jobIDs: [UUID()] }, { batchID: 'n', jobIDs: [UUID()], requireAllJobs: 'perhaps' }];
        const k = Math.floor(Math.random() * bodies.length);
        return tag(['duplicate jobIDs', 'invalid jobID', 'huge batchID', 'no jobIDs', 'jobIDs not a list', 'no batchID', 'bad requireAllJobs'][k], api.json('POST', '/v1/batches', bodies[k]));
      },
      'batch not json': () => api.request('POST', '/v1/batches', { body: '{"batchID": "a", jobIDs: [', headers: { 'content-type': 'application/json' } }),
      'bad uuid in path': () => api.request(['GET', 'DELETE'][Math.floor(Math.random() * 2)], `/v1/jobs/${encodeURIComponent(['../../etc/passwd', 'nope', '%00', UUID() + 'x'][Math.floor(Math.random() * 4)])}`),
      'no token': () => api.postJob({ printer: 'p' }, doc(), { token: null }),
      'wrong token': () =>
        guesser.request(['GET', 'POST'][Math.floor(Math.random() * 2)], ['/v1/jobs', '/v1/printers', '/v1/batches'][Math.floor(Math.random() * 3)], { token: ['pbx_wrong', `pbx_${randomBytes(20).toString('hex')}`, 'Bearer', revoked.token][Math.floor(Math.random() * 4)] }).then((r) => {
          if (r.status === 429) guessesRefused++;
          return r;
        }),
      'no token on status': () => api.request('GET', '/v1/status', { token: null }),
    };
    const names = Object.keys(kinds);
    const slowKind = 'slow client';
    const SLOW_EVERY = Math.max(50, Math.floor(P.bad / 20)); // ~20 slow clients per run, each pausing 1–2 s

    const sample = () => {
      const r = process.memoryUsage().rss;
      rssPeak = Math.max(rssPeak, r);
      return r;
    };
    rssStart = sample();
    const sampler = setInterval(sample, 100);
    const note = (kind: string, what: string) => {
      const k = `${kind}: ${what}`;
      bad.set(k, (bad.get(k) ?? 0) + 1);
    };
    let next = 0;
    async function worker() {
      while (next < P.bad) {
        const n = next++;
        const slow = n % SLOW_EVERY === SLOW_EVERY - 1;
        let kind = slow ? slowKind : names[Math.floor(Math.random() * names.length)];
        try {
          let r: ApiReply;
          if (slow) {
            const { contentType, body } = multipart({ printer: 'p' }, doc());
            const b = body as Buffer;
            const cut = Math.floor(b.length / 2);
            // Half a body, a pause, then the rest without its closing boundary: a slow client that then sends junk.
            r = await slowRequest(port, ca, `POST /v1/jobs ${JSON.stringify({ 'content-type': contentType, authorization: `Bearer ${box.token}` })}`, [b.subarray(0, cut), b.subarray(cut, b.length - 30)], 1000 + Math.random() * 1000);
          } else r = await kinds[kind]();
          sent++;
          const v = (r as { variant?: string }).variant;
          if (v) kind = `${kind} ${v}`;
          if (r.status < 400 || r.status >= 500) note(kind, `status ${r.status}`);
          else if (typeof r.json?.error?.code !== 'string' || typeof r.json?.error?.message !== 'string') note(kind, `status ${r.status} without a JSON error (${r.text.slice(0, 60)})`);
        } catch (err) {
          // The server may close a connection on a huge or broken body after answering; a reset without an answer is a finding.
          note(kind, `no answer (${(err as { code?: string }).code ?? (err as Error).message})`);
        }
      }
    }
    await Promise.all(Array.from({ length: 16 }, () => worker()));
    clearInterval(sampler);
    await sleep(500); // let aborted uploads finish cleaning up
    const tmpLeft = await filesUnder(`${box.dataDir}/spool/tmp`);
    const sealedAfter = (await filesUnder(`${box.dataDir}/spool/docs`)).length;
    globalThis.gc?.();
    rssEnd = sample();
    const ok = await box.api.postJob({ printer: 'p' }, doc());
    guesser.close();
    if (ok.status !== 201) violations.push(`a valid job after the flood got ${ok.status} ${ok.text}`);
    if (tmpLeft.length) violations.push(`${tmpLeft.length} files left under spool/tmp`);
    if (sealedAfter !== sealedBefore) violations.push(`${sealedAfter - sealedBefore} new sealed documents from bad requests`);
    if (rssEnd - rssStart > 256 * MiB) violations.push(`RSS grew by ${((rssEnd - rssStart) / MiB).toFixed(0)} MiB`);
    for (const [k, n] of [...bad].sort((a, b) => b[1] - a[1])) violations.push(`${n}× ${k}`);
    const wrong = [...bad.values()].reduce((a, b) => a + b, 0);
    console.log(`bad-input: sent ${P.bad}, answered ${sent}, wrong answers ${wrong}, token guesses refused with 429 ${guessesRefused}, valid job after ${ok.status}, spool/tmp left ${tmpLeft.length}, new sealed ${sealedAfter - sealedBefore}, RSS start ${(rssStart / MiB).toFixed(0)} / peak ${(rssPeak / MiB).toFixed(0)} / end ${(rssEnd / MiB).toFixed(0)} MiB, elapsed ${secs(t0)}`);
  } catch (err) {
    violations.push(`aborted: ${(err as Error).message}`);
    console.log(`bad-input: aborted after ${sent} requests, elapsed ${secs(t0)}`);
  } finally {
    await box.stop().catch(() => {});
    await sink.close().catch(() => {});
  }
  for (const v of violations) failures.push(`bad-input: ${v}`);
}

// ---------------------------------------------------------------------------------------------------------------
// 3. secrets: the canary put in every document above never appears in any file under the data dirs.
async function secrets(): Promise<void> {
  const t0 = Date.now();
  const needle = Buffer.from(CANARY);
  let files = 0;
  let bytes = 0;
  const hits: string[] = [];
  for (const dir of canaryDirs) {
    for (const f of await filesUnder(dir).catch(() => [] as string[])) {
      const data = await fs.readFile(f).catch(() => null);
      if (!data) continue;
      files++;
      bytes += data.length;
      if (data.includes(needle)) hits.push(f);
    }
  }
  console.log(`secrets: searched ${files} files (${(bytes / MiB).toFixed(1)} MiB) in ${canaryDirs.length} data dirs, canary found in ${hits.length}, elapsed ${secs(t0)}`);
  for (const h of hits) failures.push(`secrets: canary in plaintext in ${h}`);
}

const t0 = Date.now();
console.log(`printbox torture${quick ? ' (quick)' : ''}: ${only.join(', ')}`);
if (only.includes('crash')) await crash();
if (only.includes('faults')) failures.push(...(await printerFaults({ quick, canary: CANARY, canaryDirs })));
if (only.includes('disk')) failures.push(...(await diskFull({ quick, canary: CANARY, canaryDirs })));
if (only.includes('bad')) await badInput();
if (only.includes('cluster')) failures.push(...(await clusterKill({ jobs: Number(process.env.PRINTBOX_CLUSTER_JOBS ?? 2000), canary: CANARY })).failures);
await secrets();
for (const d of canaryDirs) await fs.rm(d, { recursive: true, force: true }).catch(() => {});
console.log(`total elapsed ${secs(t0)}`);
if (failures.length) {
  console.log(`\nFAILED (${failures.length}):`);
  for (const f of failures.slice(0, 50)) console.log(`  ${f}`);
  process.exit(1);
}
console.log('all scenarios held');
process.exit(0);
