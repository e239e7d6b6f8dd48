// printbox benchmarks: the spine (issue 2), printbox versus CUPS and the bare Node.js server (issues 8, 20), and history size (issue 20).
//
//   npx tsx bench/run.ts            full run (≈ 10 min on 2 cores): writes bench/results.md
//   npx tsx bench/run.ts --quick    ≈ 1 min: smaller counts, 100 MiB instead of 1 GiB, history 0/100k: bench/results-quick.md
//   --only=A,B,C,D                  run some sections only (D: intake per protocol, bench/intake.ts)
//   --server-prof=DIR               run each printbox under `node --cpu-prof`, profiles in DIR (open in Chrome DevTools)
//
// Every figure is printed beside a baseline measured in the same run, because a shared 2-core machine is noisy.
// Needs root (a private cupsd) and the Debian packages cups, cups-client (lp, lpadmin, lpstat).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { execFileSync } from 'node:child_process';
import { ROOT, startBenchSink, startPrintbox, startCups, startBare, smallDoc, largeDoc, type BenchSink, type PrintboxProcess, type CupsProcess } from './peers.js';
import { printboxClient, submitPrintbox, ippClient, submitLp, runPool } from './clients.js';
import { seedHistory } from './history.js';
import { sectionD } from './intake.js';
import { phaseMeter, percentile, progress, renderTable, fmtMs, fmtRate, fmtMB, ratio, MiB, rss, type Row } from './measure.js';

const quick = process.argv.includes('--quick');
const only = (process.argv.find((a) => a.startsWith('--only='))?.slice(7) ?? 'A,B,C,D').toUpperCase().split(',');

const P = quick
  ? { warm: 100, small: 1000, clients: 32, seq: 150, large: 100 * MiB, fsyncs: 200, bWarm: 1000, bSmall: 300, bClients: 8, bSeq: 100, hSlices: 4, hSlice: 300, bLarge: 100 * MiB, bLargeReps: 1, lp: 40, history: [0, 100_000], cSamples: 300, cLoad: 600, intake: 200 }
  : { warm: 300, small: 10000, clients: 32, seq: 500, large: 1024 * MiB, fsyncs: 1000, bWarm: 2000, bSmall: 1500, bClients: 8, bSeq: 300, hSlices: 6, hSlice: 500, bLarge: 100 * MiB, bLargeReps: 2, lp: 100, history: [0, 100_000, 1_000_000], cSamples: 1000, cLoad: 2000, intake: 1000 };
const SMALL = 2048;

const rows: Row[] = [];
const notes: string[] = [];
let nextIndex = 1; // every document carries a unique stamp so the sink can map a connection to its job

/* ------------------------------------------------------------------ systems under test */

interface System {
  name: string;
  pid: number;
  submit(doc: Buffer | AsyncIterable<Buffer>): Promise<void>;
}

const ms = (a: number[], p: number) => percentile(a, p);
const p50p99 = (a: number[]) => `${fmtMs(ms(a, 50))} / ${fmtMs(ms(a, 99))}`;
const mbps = (bytes: number, msTaken: number) => bytes / MiB / (msTaken / 1000);

/** `n` small jobs from `clients` concurrent clients: accept rate, delivery rate, per-job latencies, server usage. */
async function loadRun(sys: System, sink: BenchSink, n: number, clients: number) {
  sink.reset();
  const base = nextIndex;
  nextIndex += n;
  const t0 = new Array<number>(n);
  const t1 = new Array<number>(n);
  const meter = phaseMeter(sys.pid);
  const start = performance.now();
  await runPool(n, clients, async (k) => {
    const doc = smallDoc(base + k, SMALL);
    t0[k] = performance.now();
    await sys.submit(doc);
    t1[k] = performance.now();
  });
  const acceptedAt = performance.now();
  await sink.waitCount(n, 120000 + n * 50);
  const usage = meter.stop();
  const arr = [...sink.arrivals.values()].filter((a) => a.index >= base && a.index < base + n);
  if (arr.length !== n) throw new Error(`${sys.name}: ${arr.length} of ${n} jobs arrived with their stamp`);
  const lastAt = Math.max(...arr.map((a) => a.lastAt));
  const first: number[] = [];
  const last: number[] = [];
  for (let k = 0; k < n; k++) {
    const a = sink.arrivals.get(base + k)!;
    first.push(a.firstAt - t0[k]);
    last.push(a.lastAt - t0[k]);
  }
  return {
    acceptRate: n / ((acceptedAt - start) / 1000),
    deliverRate: n / ((lastAt - start) / 1000),
    accept: t1.map((t, k) => t - t0[k]),
    first,
    last,
    cpuPerJobMs: (usage.cpu / n) * 1000,
    peak: usage.peakRss,
    treePeak: usage.treePeak,
  };
}

/** One job at a time, each waited for at the sink before the next: latency without queueing. */
async function seqRun(sys: System, sink: BenchSink, n: number) {
  const accept: number[] = [];
  const first: number[] = [];
  const last: number[] = [];
  const meter = phaseMeter(sys.pid);
  const start = performance.now();
  for (let k = 0; k < n; k++) {
    const i = nextIndex++;
    const doc = smallDoc(i, SMALL);
    const t0 = performance.now();
    await sys.submit(doc);
    accept.push(performance.now() - t0);
    const a = await sink.waitIndex(i, 30000);
    first.push(a.firstAt - t0);
    last.push(a.lastAt - t0);
  }
  const usage = meter.stop();
  return { accept, first, last, rate: n / ((performance.now() - start) / 1000), cpuPerJobMs: (usage.cpu / n) * 1000 };
}

async function largeRun(sys: System, sink: BenchSink, size: number) {
  const i = nextIndex++;
  const before = rss(sys.pid);
  const meter = phaseMeter(sys.pid);
  const t0 = performance.now();
  await sys.submit(largeDoc(i, size));
  const t1 = performance.now();
  const a = await sink.waitIndex(i, 600000);
  const usage = meter.stop();
  if (a.bytes < size) throw new Error(`${sys.name}: sink got ${a.bytes} of ${size} bytes`);
  return { ingest: mbps(size, t1 - t0), deliver: mbps(size, a.lastAt - t1), e2e: mbps(size, a.lastAt - t0), cpu: usage.cpu, peak: usage.peakRss, treePeak: usage.treePeak, before };
}

/* ------------------------------------------------------------------ baselines */

/** The same bytes straight into the sink over one TCP connection: the wire's limit here. */
async function rawTcpSend(sink: BenchSink, doc: Buffer | AsyncIterable<Buffer>): Promise<{ t0: number; index: number }> {
  const index = nextIndex++;
  const t0 = performance.now();
  const sock = net.connect({ host: '127.0.0.1', port: sink.port });
  sock.setNoDelay(true);
  sock.on('error', () => {});
  await once(sock, 'connect');
  const src = Buffer.isBuffer(doc) ? [doc] : doc;
  for await (const c of src) if (!sock.write(c)) await once(sock, 'drain');
  sock.end();
  sock.resume();
  return { t0, index };
}

function stampedSmall(): Buffer {
  return smallDoc(nextIndex, SMALL); // rawTcpSend takes the same index next
}

async function rawTcpLarge(sink: BenchSink, size: number): Promise<number> {
  const index = nextIndex;
  const { t0 } = await rawTcpSend(sink, largeDoc(index, size));
  const a = await sink.waitIndex(index, 600000);
  return mbps(size, a.lastAt - t0);
}

async function rawTcpSmall(sink: BenchSink, n: number, clients: number) {
  sink.reset();
  const lat: number[] = [];
  const start = performance.now();
  await runPool(n, clients, async () => {
    const { t0, index } = await rawTcpSend(sink, stampedSmall());
    const a = await sink.waitIndex(index, 30000);
    lat.push(a.lastAt - t0);
  });
  return { rate: n / ((performance.now() - start) / 1000), lat };
}

/** `cat` + fsync of the same size to the same filesystem as the spool. */
function ddFsync(dir: string, size: number): number {
  const file = path.join(dir, 'dd-baseline.bin');
  const t0 = performance.now();
  execFileSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${Math.ceil(size / MiB)}`, 'conv=fsync'], { stdio: 'ignore' });
  const took = performance.now() - t0;
  execFileSync('rm', ['-f', file]);
  return mbps(size, took);
}

/** Durable small files, one after another: write 2 KiB, fsync, close (the disk's sequential fsync rate). */
async function fsyncSmall(dir: string, n: number) {
  const d = path.join(dir, 'fsync-baseline');
  await fs.mkdir(d, { recursive: true });
  const lat: number[] = [];
  const start = performance.now();
  const doc = smallDoc(0, SMALL);
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    const fh = await fs.open(path.join(d, `${k}`), 'w');
    await fh.write(doc);
    await fh.sync();
    await fh.close();
    lat.push(performance.now() - t0);
  }
  const rate = n / ((performance.now() - start) / 1000);
  await fs.rm(d, { recursive: true, force: true });
  return { rate, lat };
}

/** 2 KiB appended to one open file and fdatasync'd, one after another: what a journal commit costs on this disk. */
async function appendSync(dir: string, n: number): Promise<number[]> {
  const file = path.join(dir, 'append-baseline.log');
  const fh = await fs.open(file, 'a');
  const lat: number[] = [];
  const doc = smallDoc(0, SMALL);
  try {
    for (let k = 0; k < n; k++) {
      const t0 = performance.now();
      await fh.write(doc);
      await fh.datasync();
      lat.push(performance.now() - t0);
    }
  } finally {
    await fh.close();
    await fs.rm(file, { force: true });
  }
  return lat;
}

/* ------------------------------------------------------------------ printbox */

async function addPrinter(pb: PrintboxProcess, sink: BenchSink) {
  const api = printboxClient(pb.base, pb.ca, pb.token, 32);
  const r = await api.json('POST', '/v1/printers', { name: 'sink', uri: `raw://127.0.0.1:${sink.port}` });
  if (r.status !== 201) {
    const log = await fs.readFile(`${pb.dataDir}.log`, 'utf8').catch(() => '');
    throw new Error(`adding the printer failed: ${r.status} ${r.text}\nthe server's log ends with:\n${log.slice(-3000)}`);
  }
  const sys: System = { name: 'printbox', pid: pb.pid, submit: (doc) => submitPrintbox(api, 'sink', doc) };
  return { api, sys };
}

async function warmUp(sys: System, sink: BenchSink, n: number) {
  await loadRun(sys, sink, n, 32);
}

/* ------------------------------------------------------------------ A: the spine */

async function sectionA(tmp: string, sink: BenchSink, pbSys: System, pb: PrintboxProcess) {
  progress(`A1 small jobs: ${P.small} × 2 KiB from ${P.clients} keep-alive clients`);
  const rssBefore = rss(pb.pid);
  const load = await loadRun(pbSys, sink, P.small, P.clients);
  const rssAfter = rss(pb.pid);
  progress(`   accepted ${load.acceptRate.toFixed(0)} jobs/s, delivered ${load.deliverRate.toFixed(0)} jobs/s, submit→first byte p50 ${fmtMs(ms(load.first, 50))}`);
  progress(`A2 baselines: ${P.small} × 2 KiB straight to the sink over TCP (${P.clients} at once); ${P.fsyncs} × write+fsync of 2 KiB`);
  const tcp = await rawTcpSmall(sink, P.small, P.clients);
  const disk = await fsyncSmall(pb.dataDir, P.fsyncs);
  const tcpSeq = await rawTcpSmall(sink, P.seq, 1);
  progress(`   raw TCP ${tcp.rate.toFixed(0)} jobs/s; fsync'd files ${disk.rate.toFixed(0)}/s (p50 ${fmtMs(ms(disk.lat, 50))})`);
  progress(`A3 one job at a time: ${P.seq} jobs`);
  const seq = await seqRun(pbSys, sink, P.seq);
  progress(`   submit→201 p50 ${fmtMs(ms(seq.accept, 50))}, submit→first byte p50 ${fmtMs(ms(seq.first, 50))}`);

  rows.push(
    { section: 'A', metric: `small jobs accepted durably (${P.clients} clients, 2 KiB)`, printbox: fmtRate(load.acceptRate, 'jobs/s'), baseline: `${fmtRate(disk.rate, 'fsync\'d 2 KiB files/s')} (one by one)`, ratio: ratio(load.acceptRate, disk.rate), target: '≥ 1,000 jobs/s', ok: load.acceptRate >= 1000 },
    { section: 'A', metric: 'small jobs delivered to the RAW sink (same load)', printbox: fmtRate(load.deliverRate, 'jobs/s'), baseline: `${fmtRate(tcp.rate, 'jobs/s')} raw TCP (${P.clients} at once)`, ratio: ratio(load.deliverRate, tcp.rate), target: '' },
    { section: 'A', metric: 'submit → 201 under load, p50 / p99', printbox: p50p99(load.accept), baseline: `fsync p50 / p99 ${p50p99(disk.lat)}`, ratio: ratio(ms(load.accept, 50), ms(disk.lat, 50)), target: '' },
    { section: 'A', metric: 'submit → first byte at sink under load, p50 / p99', printbox: p50p99(load.first), baseline: `raw TCP connect → last byte ${p50p99(tcp.lat)}`, ratio: ratio(ms(load.first, 50), ms(tcp.lat, 50)), target: '(queueing: see note)' },
    { section: 'A', metric: 'submit → 201, one job at a time, p50 / p99', printbox: p50p99(seq.accept), baseline: `fsync p50 / p99 ${p50p99(disk.lat)}`, ratio: ratio(ms(seq.accept, 50), ms(disk.lat, 50)), target: '' },
    { section: 'A', metric: 'submit → first byte at sink, one job at a time, p50 / p99', printbox: p50p99(seq.first), baseline: `raw TCP, one at a time ${p50p99(tcpSeq.lat)}`, ratio: ratio(ms(seq.first, 50), ms(tcpSeq.lat, 50)), target: 'p50 < 5 ms', ok: ms(seq.first, 50) < 5 },
    { section: 'A', metric: 'server CPU per small job (under load)', printbox: fmtMs(load.cpuPerJobMs), baseline: '', ratio: '', target: '' },
    { section: 'A', metric: `server RSS during / after the ${P.small.toLocaleString('en')}-job burst (peak / when the last job has printed)`, printbox: `${fmtMB(load.peak)} / ${fmtMB(rssAfter)}`, baseline: `before it: ${fmtMB(rssBefore)}`, ratio: ratio(load.peak, rssBefore), target: '< 160 MiB', ok: Math.max(load.peak, rssAfter) < 160 * MiB },
  );
  const underLoadP50 = ms(load.first, 50);
  if (load.deliverRate < load.acceptRate * 0.9) {
    notes.push(
      `A: under ${P.clients}-client load printbox accepts faster (${load.acceptRate.toFixed(0)} jobs/s) than one RAW printer takes jobs (${load.deliverRate.toFixed(0)} jobs/s, one TCP connection per job, strictly in order), so jobs queue and submit → first byte under load (p50 ${fmtMs(underLoadP50)}) measures the backlog, not the path. The path's own latency is the one-job-at-a-time row.`,
    );
  }

  progress(`A4 large job: ${fmtMB(P.large)} through HTTPS, then to the sink`);
  const large = await largeRun(pbSys, sink, P.large);
  progress(`   ingest ${large.ingest.toFixed(0)} MB/s, delivery ${large.deliver.toFixed(0)} MB/s, peak RSS ${fmtMB(large.peak)}`);
  progress(`A5 baselines: ${fmtMB(P.large)} raw TCP to the sink; dd conv=fsync to the data dir's filesystem`);
  const tcpLarge = await rawTcpLarge(sink, P.large);
  const dd = ddFsync(path.dirname(pb.dataDir), P.large);
  progress(`   raw TCP ${tcpLarge.toFixed(0)} MB/s, dd+fsync ${dd.toFixed(0)} MB/s`);
  const size = fmtMB(P.large);
  rows.push(
    { section: 'A', metric: `${size} ingest (HTTPS upload until 201; sealed + fsync'd)`, printbox: fmtRate(large.ingest, 'MB/s'), baseline: `${fmtRate(dd, 'MB/s')} dd conv=fsync`, ratio: ratio(large.ingest, dd), target: '≥ 50% of baseline', ok: large.ingest >= 0.5 * dd },
    { section: 'A', metric: `${size} delivery (201 until the sink has the last byte)`, printbox: fmtRate(large.deliver, 'MB/s'), baseline: `${fmtRate(tcpLarge, 'MB/s')} raw TCP`, ratio: ratio(large.deliver, tcpLarge), target: '≥ 50% of baseline', ok: large.deliver >= 0.5 * tcpLarge },
    { section: 'A', metric: `${size} end to end (upload start until last byte)`, printbox: fmtRate(large.e2e, 'MB/s'), baseline: `${fmtRate(1 / (1 / dd + 1 / tcpLarge), 'MB/s')} dd then TCP`, ratio: ratio(large.e2e, 1 / (1 / dd + 1 / tcpLarge)), target: '' },
    { section: 'A', metric: `server peak RSS during the ${size} job (RSS just before it: ${fmtMB(large.before)}, after the small-job load)`, printbox: fmtMB(large.peak), baseline: '', ratio: '', target: '< 128 MiB', ok: large.peak < 128 * MiB },
  );

  // What the document itself costs: the same job on a server that has done nothing else (its history and
  // the heap the small-job load grew are not in this figure).
  progress(`A6 large job on a freshly started server: ${fmtMB(P.large)}`);
  const fresh = await startPrintbox(path.join(path.dirname(pb.dataDir), 'data-fresh'));
  try {
    const { sys, api } = await addPrinter(fresh, sink);
    const idle = rss(fresh.pid);
    const again = await largeRun(sys, sink, P.large);
    api.close();
    progress(`   ingest ${again.ingest.toFixed(0)} MB/s, delivery ${again.deliver.toFixed(0)} MB/s, peak RSS ${fmtMB(again.peak)} (idle ${fmtMB(idle)})`);
    rows.push({ section: 'A', metric: `server peak RSS during the ${size} job on a freshly started server (idle ${fmtMB(idle)})`, printbox: fmtMB(again.peak), baseline: '', ratio: '', target: '< 128 MiB', ok: again.peak < 128 * MiB });
  } finally {
    await fresh.stop();
  }
}

/* ------------------------------------------------------------------ B: versus CUPS */

interface SideResult {
  load: Awaited<ReturnType<typeof loadRun>>;
  seq: Awaited<ReturnType<typeof seqRun>>;
  large: Awaited<ReturnType<typeof largeRun>>[];
}

async function measureSide(sys: System, sink: BenchSink): Promise<SideResult> {
  progress(`B ${sys.name}: ${P.bSmall} small jobs from ${P.bClients} clients`);
  const load = await loadRun(sys, sink, P.bSmall, P.bClients);
  progress(`   ${load.deliverRate.toFixed(0)} jobs/s end to end, ${fmtMs(load.cpuPerJobMs)} CPU/job`);
  progress(`B ${sys.name}: ${P.bSeq} jobs one at a time`);
  const seq = await seqRun(sys, sink, P.bSeq);
  progress(`   submit→last byte p50 ${fmtMs(ms(seq.last, 50))} p99 ${fmtMs(ms(seq.last, 99))}`);
  const large = [];
  for (let r = 0; r < P.bLargeReps; r++) {
    progress(`B ${sys.name}: ${fmtMB(P.bLarge)} job (${r + 1}/${P.bLargeReps})`);
    large.push(await largeRun(sys, sink, P.bLarge));
    progress(`   ${large[r].e2e.toFixed(0)} MB/s end to end`);
  }
  return { load, seq, large };
}

/**
 * printbox (`a`) and the bare server (`b`) side by side, so that the noise of a shared machine falls on both alike:
 * the 8-client load in alternating slices (the order flips every slice), one-at-a-time jobs taking turns job by job.
 * The two rows issue 20 sets its targets on come from here; each slice's own ratio shows how noisy the run was.
 */
async function headToHead(a: System, b: System, sink: BenchSink) {
  const sum = { a: { jobs: 0, ms: 0, cpu: 0, last: [] as number[] }, b: { jobs: 0, ms: 0, cpu: 0, last: [] as number[] } };
  const sliceRatios: number[] = [];
  for (let i = 0; i < P.hSlices; i++) {
    const rates: Record<string, number> = {};
    for (const side of i % 2 ? (['b', 'a'] as const) : (['a', 'b'] as const)) {
      const r = await loadRun(side === 'a' ? a : b, sink, P.hSlice, P.bClients);
      rates[side] = r.deliverRate;
      sum[side].jobs += P.hSlice;
      sum[side].ms += (P.hSlice / r.deliverRate) * 1000;
      sum[side].cpu += r.cpuPerJobMs * P.hSlice;
    }
    sliceRatios.push(rates.a / rates.b);
  }
  for (let k = 0; k < P.bSeq; k++) {
    for (const side of k % 2 ? (['b', 'a'] as const) : (['a', 'b'] as const)) {
      const i = nextIndex++;
      const doc = smallDoc(i, SMALL);
      const t0 = performance.now();
      await (side === 'a' ? a : b).submit(doc);
      sum[side].last.push((await sink.waitIndex(i, 30000)).lastAt - t0);
    }
  }
  const out = (s: typeof sum.a) => ({ rate: s.jobs / (s.ms / 1000), cpuPerJobMs: s.cpu / s.jobs, last: s.last });
  return { a: out(sum.a), b: out(sum.b), sliceRatios };
}

async function sectionB(tmp: string, sink: BenchSink, pbSys: System, pbDataDir: string) {
  const pb = await measureSide(pbSys, sink);
  progress('B starting a private cupsd with a raw queue to the same sink');
  let cups: CupsProcess | undefined;
  let cu: SideResult;
  let lp: { rate: number; last: number[] };
  const cuTls: SideResult['large'] = [];
  try {
    cups = await startCups(path.join(tmp, 'cups'), sink.port);
    const ipp = ippClient(cups.queueUri, 32);
    const cupsSys: System = { name: 'CUPS (IPP keep-alive)', pid: cups.pid, submit: (doc) => ipp.printJob(doc).then(() => {}) };
    await loadRun(cupsSys, sink, Math.min(P.warm, 100), P.bClients);
    cu = await measureSide(cupsSys, sink);
    ipp.close();
    // printbox's API is TLS only; CUPS takes TLS on the same port (ipps, its own self-signed certificate): the
    // large job once more that way, so the CPU per byte can be set against a server that decrypts as well.
    const ipps = ippClient(cups.queueUri.replace(/^ipp:/, 'ipps:'), 4, { selfSigned: true });
    const cupsTlsSys: System = { name: 'CUPS (ipps)', pid: cups.pid, submit: (doc) => ipps.printJob(doc).then(() => {}) };
    for (let r = 0; r < P.bLargeReps; r++) {
      progress(`B CUPS over TLS (ipps): ${fmtMB(P.bLarge)} job (${r + 1}/${P.bLargeReps})`);
      cuTls.push(await largeRun(cupsTlsSys, sink, P.bLarge));
      progress(`   ${cuTls[r].e2e.toFixed(0)} MB/s end to end, ${fmtMs(cuTls[r].cpu * 1000)} CPU`);
    }
    ipps.close();
    progress(`B CUPS: ${P.lp} jobs with \`lp\`, one at a time`);
    const files = path.join(tmp, 'lp-docs');
    await fs.mkdir(files, { recursive: true });
    const last: number[] = [];
    const start = performance.now();
    for (let k = 0; k < P.lp; k++) {
      const i = nextIndex++;
      const f = path.join(files, `${i}.prn`);
      await fs.writeFile(f, smallDoc(i, SMALL));
      const t0 = performance.now();
      await submitLp(cups.port, f);
      last.push((await sink.waitIndex(i, 30000)).lastAt - t0);
    }
    lp = { rate: P.lp / ((performance.now() - start) / 1000), last };
    progress(`   ${lp.rate.toFixed(0)} jobs/s, submit→last byte p50 ${fmtMs(ms(last, 50))}`);
  } finally {
    await cups?.stop();
  }
  const tcpLarge = await rawTcpLarge(sink, P.bLarge);
  // What no server that makes a job durable before printing it can beat, on this machine, in this run.
  progress(`B floors: ${fmtMB(P.bLarge)} dd conv=fsync; ${P.bSeq} × (2 KiB append + fdatasync) and ${P.bSeq} × 2 KiB raw TCP, one at a time`);
  const ddLarge = ddFsync(tmp, P.bLarge);
  const bound = 1 / (1 / ddLarge + 1 / tcpLarge);
  const syncSeq = await appendSync(tmp, P.bSeq);
  const tcpSeq: number[] = [];
  for (let k = 0; k < P.bSeq; k++) {
    const { t0, index } = await rawTcpSend(sink, stampedSmall());
    tcpSeq.push((await sink.waitIndex(index, 30000)).lastAt - t0);
  }
  const floor = ms(syncSeq, 50) + ms(tcpSeq, 50);
  // The same two runs on the least a Node.js print server can do (no auth, parsing, sealing or records), with the same client and TLS key.
  progress(`B bare Node.js server (bench/bare-server.mjs): ${P.bWarm} warm-up, then beside printbox: ${P.hSlices} alternating slices of ${P.hSlice} jobs from ${P.bClients} clients each, and ${P.bSeq} one at a time, job by job in turn`);
  const bareProc = await startBare(path.join(tmp, 'bare'), sink.port, path.join(pbDataDir, 'tls'));
  let hh: Awaited<ReturnType<typeof headToHead>>;
  try {
    const api = printboxClient(bareProc.base, await fs.readFile(path.join(pbDataDir, 'tls/cert.pem'), 'utf8'), 'none', 32);
    const bareSys: System = { name: 'bare Node.js server', pid: bareProc.pid, submit: (doc) => submitPrintbox(api, 'sink', doc) };
    await warmUp(bareSys, sink, P.bWarm);
    hh = await headToHead(pbSys, bareSys, sink);
    api.close();
  } finally {
    await bareProc.stop();
  }
  const bare = { load: { deliverRate: hh.b.rate, cpuPerJobMs: hh.b.cpuPerJobMs }, seq: { last: hh.b.last } };
  const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}×`;
  progress(`   bare ${bare.load.deliverRate.toFixed(0)} jobs/s end to end (printbox beside it ${hh.a.rate.toFixed(0)}, slices ${spread(hh.sliceRatios)}); one at a time p50 bare ${fmtMs(ms(hh.b.last, 50))}, printbox ${fmtMs(ms(hh.a.last, 50))}`);
  notes.push(
    `B: both servers are measured warm: printbox after ${P.bWarm} jobs (its JavaScript is compiled while it runs; the first thousand jobs after a start are ~25% slower), CUPS after ${Math.min(P.warm, 100)}. The two floor rows are the disk and the wire alone in this run: a ${fmtMB(P.bLarge)} job that must be on disk before it prints cannot arrive faster than dd conv=fsync followed by raw TCP, and a small job not faster than one journal commit (append + fdatasync) plus one TCP job.`,
  );
  notes.push(
    `B: the "bare Node.js server" rows run bench/bare-server.mjs with the same client, TLS key and sink: it reads the POST whole, appends it to one file with fdatasync, answers 201 and sends it to the sink, one job after another, and does nothing else (no token, no multipart parsing, no sealing, no job record). It measures Node.js itself on this machine: its ratio to CUPS is about the most a single Node.js process could show here. The two rows against it (issue 20's targets) are measured with both servers running, taking turns: the load in ${P.hSlices} slices whose order flips each time, the one-at-a-time jobs alternating job by job, so that a shared machine's noise falls on both alike; "slice by slice" is the spread of the slices' own ratios.`,
  );
  const best = (l: SideResult['large']) => Math.max(...l.map((x) => x.e2e));
  const cpuLarge = (l: SideResult['large']) => l.reduce((s, x) => s + x.cpu, 0) / l.length;
  const peakLarge = (l: SideResult['large']) => Math.max(...l.map((x) => x.treePeak));
  const size = fmtMB(P.bLarge);
  rows.push(
    { section: 'B', metric: `small jobs end to end, ${P.bClients} clients (submit until the sink has all)`, printbox: fmtRate(pb.load.deliverRate, 'jobs/s'), baseline: `CUPS ${fmtRate(cu!.load.deliverRate, 'jobs/s')} (IPP keep-alive)`, ratio: ratio(pb.load.deliverRate, cu!.load.deliverRate), target: '' },
    { section: 'B', metric: `the same load on a bare Node.js server (append + fdatasync, 201, forward; nothing else), ${P.hSlices} slices each taking turns`, printbox: fmtRate(hh.a.rate, 'jobs/s'), baseline: `bare ${fmtRate(bare.load.deliverRate, 'jobs/s')} = ${ratio(bare.load.deliverRate, cu!.load.deliverRate)} CUPS; slice by slice ${spread(hh.sliceRatios)}`, ratio: ratio(hh.a.rate, bare.load.deliverRate), target: '≥ 1.0× bare', ok: hh.a.rate >= bare.load.deliverRate },
    { section: 'B', metric: 'small jobs, one client, one at a time', printbox: fmtRate(pb.seq.rate, 'jobs/s'), baseline: `CUPS ${fmtRate(cu!.seq.rate, 'jobs/s')} IPP; ${fmtRate(lp!.rate, 'jobs/s')} with lp`, ratio: ratio(pb.seq.rate, cu!.seq.rate), target: '' },
    { section: 'B', metric: 'submit → last byte at sink, one at a time, p50 / p99', printbox: p50p99(pb.seq.last), baseline: `CUPS ${p50p99(cu!.seq.last)} IPP; lp ${p50p99(lp!.last)}`, ratio: ratio(ms(pb.seq.last, 50), ms(cu!.seq.last, 50)), target: '' },
    { section: 'B', metric: 'the floor under that latency for any server that makes a job durable before printing it: one 2 KiB append + fdatasync, then one raw TCP job, p50', printbox: fmtMs(ms(pb.seq.last, 50)), baseline: `${fmtMs(floor)} (fdatasync ${fmtMs(ms(syncSeq, 50))} + TCP ${fmtMs(ms(tcpSeq, 50))}); CUPS/10 = ${fmtMs(ms(cu!.seq.last, 50) / 10)}`, ratio: ratio(ms(pb.seq.last, 50), floor), target: '' },
    { section: 'B', metric: 'submit → last byte, one at a time, on the bare Node.js server (job by job in turn), p50 / p99', printbox: p50p99(hh.a.last), baseline: `bare ${p50p99(bare.seq.last)}; its p50 = ${ratio(ms(bare.seq.last, 50), ms(cu!.seq.last, 50))} CUPS`, ratio: ratio(ms(hh.a.last, 50), ms(bare.seq.last, 50)), target: '≤ 1.3× bare', ok: ms(hh.a.last, 50) <= 1.3 * ms(bare.seq.last, 50) },
    { section: 'B', metric: `submit → last byte under ${P.bClients}-client load, p50 / p99`, printbox: p50p99(pb.load.last), baseline: `CUPS ${p50p99(cu!.load.last)}`, ratio: ratio(ms(pb.load.last, 50), ms(cu!.load.last, 50)), target: '' },
    { section: 'B', metric: `${size} job end to end (best of ${P.bLargeReps})`, printbox: fmtRate(best(pb.large), 'MB/s'), baseline: `CUPS ${fmtRate(best(cu!.large), 'MB/s')}`, ratio: ratio(best(pb.large), best(cu!.large)), target: '' },
    { section: 'B', metric: `${size} job end to end vs raw TCP`, printbox: fmtRate(best(pb.large), 'MB/s'), baseline: `raw TCP ${fmtRate(tcpLarge, 'MB/s')}`, ratio: ratio(best(pb.large), tcpLarge), target: '' },
    { section: 'B', metric: `${size} job end to end vs the bound for a job made durable before it prints (dd conv=fsync, then raw TCP)`, printbox: fmtRate(best(pb.large), 'MB/s'), baseline: `${fmtRate(bound, 'MB/s')} = ${ratio(bound, tcpLarge)} raw, ${ratio(bound, best(cu!.large))} CUPS`, ratio: ratio(best(pb.large), bound), target: '≥ 0.7× the bound', ok: best(pb.large) >= 0.7 * bound },
    { section: 'B', metric: 'CPU per small job (server + children), under load', printbox: fmtMs(pb.load.cpuPerJobMs), baseline: `CUPS ${fmtMs(cu!.load.cpuPerJobMs)} (cupsd + backends); bare Node.js server ${fmtMs(bare.load.cpuPerJobMs)}`, ratio: ratio(pb.load.cpuPerJobMs, cu!.load.cpuPerJobMs), target: '' },
    { section: 'B', metric: `CPU per ${size} job (server + children)`, printbox: fmtMs(cpuLarge(pb.large) * 1000), baseline: `CUPS ${fmtMs(cpuLarge(cu!.large) * 1000)}`, ratio: ratio(cpuLarge(pb.large), cpuLarge(cu!.large)), target: '≤ 1.5× CUPS', ok: cpuLarge(pb.large) <= 1.5 * cpuLarge(cu!.large) },
    { section: 'B', metric: `CPU per ${size} job, against CUPS taking it over TLS as well (ipps; printbox's API is TLS only)`, printbox: fmtMs(cpuLarge(pb.large) * 1000), baseline: `CUPS over ipps ${fmtMs(cpuLarge(cuTls) * 1000)}, ${fmtRate(best(cuTls), 'MB/s')} end to end`, ratio: ratio(cpuLarge(pb.large), cpuLarge(cuTls)), target: '' },
    { section: 'B', metric: 'peak memory, small-job load (process tree, sampled)', printbox: fmtMB(pb.load.treePeak), baseline: `CUPS ${fmtMB(cu!.load.treePeak)}`, ratio: ratio(pb.load.treePeak, cu!.load.treePeak), target: '' },
    { section: 'B', metric: `peak memory, ${size} job (process tree, sampled)`, printbox: fmtMB(peakLarge(pb.large)), baseline: `CUPS ${fmtMB(peakLarge(cu!.large))}`, ratio: ratio(peakLarge(pb.large), peakLarge(cu!.large)), target: '' },
  );
}

/* ------------------------------------------------------------------ C: accept latency against history */

async function sectionC(tmp: string, sink: BenchSink) {
  const limit = Math.max(...P.history) + 100_000; // the same retention setting for every size, so only the history differs
  const results: { h: number; accept: number[]; rate: number; startMs: number; rss: number; rssEnd: number; seedMs: number; journal: number }[] = [];
  for (const h of P.history) {
    const dataDir = path.join(tmp, `history-${h}`);
    progress(`C history ${h.toLocaleString('en')}: writing the history store`);
    const s0 = performance.now();
    const journal = await seedHistory(dataDir, h);
    const seedMs = performance.now() - s0;
    progress(`   ${fmtMB(journal)} of history in ${(seedMs / 1000).toFixed(1)} s; starting printbox (historyLimit ${limit.toLocaleString('en')})`);
    const pb = await startPrintbox(dataDir, { historyLimit: limit }, 600000);
    try {
      const { sys, api } = await addPrinter(pb, sink);
      const rssAfterLoad = rss(pb.pid);
      progress(`   started in ${(pb.startMs / 1000).toFixed(1)} s, RSS ${fmtMB(rssAfterLoad)}; ${P.warm} warm-up jobs, then ${P.cSamples} one at a time, then ${P.cLoad} from 32 clients`);
      await warmUp(sys, sink, P.warm);
      // Accept latency alone: each POST waits for its 201, delivery runs alongside as it would.
      const accept: number[] = [];
      sink.reset();
      for (let k = 0; k < P.cSamples; k++) {
        const doc = smallDoc(nextIndex++, SMALL);
        const t0 = performance.now();
        await sys.submit(doc);
        accept.push(performance.now() - t0);
      }
      await sink.waitCount(P.cSamples, 120000).catch(() => {});
      const load = await loadRun(sys, sink, P.cLoad, 32);
      progress(`   submit→201 p50 ${fmtMs(ms(accept, 50))} p99 ${fmtMs(ms(accept, 99))}; ${load.acceptRate.toFixed(0)} jobs/s accepted from 32 clients`);
      results.push({ h, accept, rate: load.acceptRate, startMs: pb.startMs, rss: rssAfterLoad, rssEnd: rss(pb.pid), seedMs, journal });
      api.close();
    } finally {
      await pb.stop();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  }
  const base = results[0];
  for (const r of results) {
    const label = r.h.toLocaleString('en');
    const flat = ms(r.accept, 50) <= ms(base.accept, 50) * 1.5 + 0.5;
    rows.push(
      { section: 'C', metric: `submit → 201 with ${label} jobs in history, p50 / p99`, printbox: p50p99(r.accept), baseline: `${base.h} in history: ${p50p99(base.accept)}`, ratio: ratio(ms(r.accept, 50), ms(base.accept, 50)), target: 'flat', ok: flat },
      { section: 'C', metric: `accepted jobs/s (32 clients) with ${label} in history`, printbox: fmtRate(r.rate, 'jobs/s'), baseline: `${base.h} in history: ${fmtRate(base.rate, 'jobs/s')}`, ratio: ratio(r.rate, base.rate), target: 'flat' , ok: r.rate >= base.rate * 0.67 },
      { section: 'C', metric: `start time / RSS at start / RSS after the load, ${label} in history (${fmtMB(r.journal)} on disk)`, printbox: `${(r.startMs / 1000).toFixed(1)} s / ${fmtMB(r.rss)} / ${fmtMB(r.rssEnd)}`, baseline: `${base.h} in history: ${(base.startMs / 1000).toFixed(1)} s / ${fmtMB(base.rss)} / ${fmtMB(base.rssEnd)}`, ratio: ratio(r.rssEnd, base.rssEnd), target: r.h >= 1_000_000 ? '< 2 s, < 160 MiB' : '', ok: r.h >= 1_000_000 ? r.startMs < 2000 && Math.max(r.rss, r.rssEnd) < 160 * MiB : undefined },
    );
  }
}

/* ------------------------------------------------------------------ main */

async function main() {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'printbox-bench-'));
  const started = performance.now();
  const cupsVersion = (() => {
    try {
      return execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'cups']).toString();
    } catch {
      return 'unknown';
    }
  })();
  progress(`printbox bench (${quick ? 'quick' : 'full'}), ${os.cpus().length} cores, node ${process.version}, cups ${cupsVersion}, temp ${tmp}`);
  const sink = await startBenchSink();
  let pb: PrintboxProcess | undefined;
  let failure: unknown;
  try {
    if (only.includes('A') || only.includes('B')) {
      pb = await startPrintbox(path.join(tmp, 'data'));
      const idleRss = rss(pb.pid);
      rows.push({ section: 'A', metric: 'server RSS at rest, just after start (node + bundled runtime)', printbox: fmtMB(idleRss), baseline: '', ratio: '', target: '< 100 MB (95.4 MiB)', ok: idleRss < 100e6 });
      let { sys, api } = await addPrinter(pb, sink);
      const warm = only.includes('A') ? P.warm : P.bWarm;
      progress(`printbox pid ${pb.pid} on port ${pb.port}; ${warm} warm-up jobs`);
      await warmUp(sys, sink, warm);
      if (only.includes('A')) await sectionA(tmp, sink, sys, pb);
      if (only.includes('A') && only.includes('B')) {
        // CUPS starts fresh, so printbox does too: A leaves it with thousands of jobs behind it (see the note on slowing down).
        api.close();
        await pb.stop();
        pb = await startPrintbox(path.join(tmp, 'data-b'));
        ({ sys, api } = await addPrinter(pb, sink));
        progress(`fresh printbox for B: pid ${pb.pid}; ${P.bWarm} warm-up jobs`);
        await warmUp(sys, sink, P.bWarm);
      }
      if (only.includes('B')) await sectionB(tmp, sink, sys, pb.dataDir);
      api.close();
      await pb.stop();
      pb = undefined;
    }
    if (only.includes('C')) await sectionC(tmp, sink);
    if (only.includes('D')) {
      progress(`D intake per protocol: ${P.intake} × 2 KiB per measure, 1 and 8 clients, printbox and CUPS`);
      await sectionD(tmp, sink, rows, P.intake, () => ((nextIndex += P.intake), nextIndex - P.intake));
    }
  } catch (err) {
    failure = err;
  } finally {
    await pb?.stop();
    await sink.close();
    await fs.rm(tmp, { recursive: true, force: true });
  }
  const took = (performance.now() - started) / 1000;
  const header = [
    `# printbox benchmark results (${quick ? 'quick' : 'full'} mode)`,
    '',
    `${new Date().toISOString()} · ${os.cpus().length} × ${os.cpus()[0]?.model.trim()} · ${Math.round(os.totalmem() / 1e9)} GB RAM · node ${process.version} · CUPS ${cupsVersion} · ${took.toFixed(0)} s`,
    '',
    `Produced by \`npx tsx bench/run.ts${quick ? ' --quick' : ''}\`. Everything on loopback on one machine: the clients and the sink share it with the server. "Baseline" is measured in the same run.`,
    '',
  ].join('\n');
  const body = renderTable(rows) + (notes.length ? '\n' + notes.map((n) => `- ${n}`).join('\n') + '\n' : '') + (failure ? `\n**The run stopped early:** ${(failure as Error).stack ?? failure}\n` : '');
  process.stdout.write('\n' + body);
  await fs.writeFile(path.join(ROOT, 'bench', quick ? 'results-quick.md' : 'results.md'), header + '\n' + body);
  progress(`done in ${took.toFixed(0)} s`);
  if (failure) process.exitCode = 1;
}

await main();
