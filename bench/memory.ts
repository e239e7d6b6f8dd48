// Memory and start-up of one printbox process, measured alone (issue 20): RSS during and after a small-job burst, and the start with a large history.
//
//   npx tsx bench/memory.ts burst [--jobs=10000] [--clients=32] [--runs=1] [--settle=20]
//   npx tsx bench/memory.ts start [--history=1000000] [--runs=3] [--seeded=DIR]
//   npx tsx bench/memory.ts large [--jobs=2000] [--mib=100] [--runs=2]
//
// burst: a fresh server, 300 warm-up jobs, then `jobs` × 2 KiB from `clients` keep-alive clients to one RAW sink
// (the burst of `bench/run.ts` section A1). Prints the peak RSS (VmHWM of the burst), where it was (from
// /proc/PID/smaps at the highest sample), the RSS when the last job has printed and `settle` s later, and the
// server's CPU per job. start: seeds `history` finished jobs (bench/history.ts) once, then starts the server `runs`
// times on it and on an empty data dir (after one unmeasured first start of each, which makes the certificate): wall
// time spawn → "listening", the server's CPU time until then, RSS.
// Server flags and environment as for run.ts (PBX_FLAGS, BENCH_SERVER_NODE_ARGS, MALLOC_ARENA_MAX…).
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startBenchSink, startPrintbox, smallDoc, largeDoc, type BenchSink, type PrintboxProcess } from './peers.js';
import { printboxClient, submitPrintbox, runPool } from './clients.js';
import { seedHistory } from './history.js';
import { cpuSeconds, peakRss, resetPeak, rss, MiB, progress } from './measure.js';

const arg = (name: string, def: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def);
const mode = process.argv[2];
const SMALL = 2048;
let nextIndex = 1;

/** Resident memory by kind, from /proc/PID/smaps: glibc's main heap, the node binary, anonymous mappings, the rest. */
function smapsBreakdown(pid: number): Record<string, number> {
  const out: Record<string, number> = { heap: 0, binary: 0, anon: 0, other: 0 };
  let kind = 'other';
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const head = line.match(/^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/);
    if (head) {
      const name = head[1];
      kind = name === '[heap]' ? 'heap' : name === '' ? 'anon' : name.endsWith('/node') || name.includes('/bin/node') ? 'binary' : 'other';
      continue;
    }
    const m = line.match(/^Rss:\s+(\d+) kB/);
    if (m) out[kind] += Number(m[1]) * 1024;
  }
  return out;
}

const mib = (b: number) => (b / MiB).toFixed(0);

/** V8's largest committed heap seen in a --trace-gc log ("… -> 30.1 (62.3) MB"), or null without --trace-gc. */
function traceGcMax(logFile: string): string | null {
  let text: string;
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch {
    return null;
  }
  let max: number | null = null;
  let live = 0;
  for (const m of text.matchAll(/-> [\d.]+ \(([\d.]+)\) MB/g)) max = Math.max(max ?? 0, Number(m[1]));
  for (const m of text.matchAll(/Mark-Compact[^>]*-> ([\d.]+) \(/g)) live = Math.max(live, Number(m[1]));
  return max === null ? null : `${max} MB, live after a mark-compact at most ${live} MB`;
}

async function burstRun(tmp: string, sink: BenchSink, jobs: number, clients: number, settleS: number) {
  const pb: PrintboxProcess = await startPrintbox(path.join(tmp, `data-${Date.now()}`));
  const api = printboxClient(pb.base, pb.ca, pb.token, clients);
  try {
    const r = await api.json('POST', '/v1/printers', { name: 'sink', uri: `raw://127.0.0.1:${sink.port}` });
    if (r.status !== 201) throw new Error(`adding the printer failed: ${r.status} ${r.text}`);
    const idle = rss(pb.pid);
    const send = async (n: number) => {
      sink.reset();
      const base = nextIndex;
      nextIndex += n;
      await runPool(n, clients, (k) => submitPrintbox(api, 'sink', smallDoc(base + k, SMALL)));
      await sink.waitCount(n, 120000 + n * 50);
    };
    await send(300);
    const before = rss(pb.pid);
    const cpu0 = cpuSeconds(pb.pid);
    resetPeak(pb.pid);
    let top = { total: 0, parts: {} as Record<string, number> };
    let samples = 0;
    const timer = setInterval(() => {
      const now = rss(pb.pid);
      // smaps is read only when the RSS is at a new high (every 4th sample at most): where the peak is.
      if (now > top.total && samples++ % 4 === 0) top = { total: now, parts: smapsBreakdown(pb.pid) };
    }, 100);
    const t0 = performance.now();
    await send(jobs);
    const took = (performance.now() - t0) / 1000;
    clearInterval(timer);
    const cpu = cpuSeconds(pb.pid) - cpu0;
    const peak = peakRss(pb.pid);
    const after = rss(pb.pid);
    await new Promise((r) => setTimeout(r, settleS * 1000));
    const settled = rss(pb.pid);
    const gc = traceGcMax(`${pb.dataDir}.log`);
    const parts = Object.entries(top.parts).map(([k, v]) => `${k} ${mib(v)}`).join(', ');
    progress(
      `burst ${jobs} × 2 KiB, ${clients} clients: ${(jobs / took).toFixed(0)} jobs/s end to end; RSS idle ${mib(idle)}, before ${mib(before)}, ` +
        `peak ${mib(peak)} MiB (at the highest sample ${mib(top.total)}: ${parts}), after ${mib(after)}, ${settleS} s later ${mib(settled)} MiB; ` +
        `CPU ${((cpu / jobs) * 1000).toFixed(2)} ms/job${gc !== null ? `; V8 heap committed max ${gc}` : ''}`,
    );
    return { peak, after, settled, cpuMs: (cpu / jobs) * 1000 };
  } finally {
    api.close();
    await pb.stop();
  }
}

/** CPU and peak RSS of `runs` large jobs on a server that has just taken `jobs` small ones (what heap settings cost a large job). */
async function largeRuns(tmp: string, sink: BenchSink, jobs: number, size: number, runs: number) {
  const pb: PrintboxProcess = await startPrintbox(path.join(tmp, `data-${Date.now()}`));
  const api = printboxClient(pb.base, pb.ca, pb.token, 32);
  try {
    const r = await api.json('POST', '/v1/printers', { name: 'sink', uri: `raw://127.0.0.1:${sink.port}` });
    if (r.status !== 201) throw new Error(`adding the printer failed: ${r.status} ${r.text}`);
    sink.reset();
    const base = nextIndex;
    nextIndex += jobs;
    await runPool(jobs, 32, (k) => submitPrintbox(api, 'sink', smallDoc(base + k, SMALL)));
    await sink.waitCount(jobs, 120000 + jobs * 50);
    for (let i = 0; i < runs; i++) {
      const index = nextIndex++;
      const cpu0 = cpuSeconds(pb.pid);
      resetPeak(pb.pid);
      const t0 = performance.now();
      await submitPrintbox(api, 'sink', largeDoc(index, size));
      await sink.waitIndex(index, 600000);
      const cpu = cpuSeconds(pb.pid) - cpu0;
      progress(`${mib(size)} MiB job after ${jobs} small ones: ${(performance.now() - t0).toFixed(0)} ms end to end, CPU ${(cpu * 1000).toFixed(0)} ms, peak RSS ${mib(peakRss(pb.pid))} MiB`);
    }
  } finally {
    api.close();
    await pb.stop();
  }
}

async function startRun(dataDir: string, config: Record<string, unknown>) {
  // A data dir started before has its token already: without state.json the server makes (and prints) a new one.
  await fsp.rm(path.join(dataDir, 'state.json'), { force: true });
  await fsp.rm(path.join(dataDir, 'setup-code'), { force: true });
  const pb = await startPrintbox(dataDir, config, 600000);
  try {
    const cpu = cpuSeconds(pb.pid);
    return { wallMs: pb.startMs, cpuMs: cpu * 1000, rss: rss(pb.pid) };
  } finally {
    await pb.stop();
  }
}

async function main() {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'printbox-memory-'));
  try {
    if (mode === 'burst') {
      const sink = await startBenchSink();
      try {
        const res: Awaited<ReturnType<typeof burstRun>>[] = [];
        for (let i = 0; i < arg('runs', 1); i++) res.push(await burstRun(tmp, sink, arg('jobs', 10000), arg('clients', 32), arg('settle', 20)));
        const span = (k: 'peak' | 'after' | 'settled') => `${mib(Math.min(...res.map((r) => r[k])))}–${mib(Math.max(...res.map((r) => r[k])))}`;
        progress(`summary: peak ${span('peak')}, after ${span('after')}, settled ${span('settled')} MiB; CPU ${res.map((r) => r.cpuMs.toFixed(2)).join(', ')} ms/job`);
      } finally {
        await sink.close();
      }
    } else if (mode === 'large') {
      const sink = await startBenchSink();
      try {
        await largeRuns(tmp, sink, arg('jobs', 2000), arg('mib', 100) * MiB, arg('runs', 2));
      } finally {
        await sink.close();
      }
    } else if (mode === 'start') {
      const h = arg('history', 1_000_000);
      // --seeded=DIR: a data dir seeded before (by this script or bench/history.ts) with `history` jobs, reused as it is.
      const seeded = process.argv.find((a) => a.startsWith('--seeded='))?.slice(9);
      const full = seeded ?? path.join(tmp, 'history');
      if (!seeded) {
        progress(`seeding ${h.toLocaleString('en')} jobs of history`);
        const bytes = await seedHistory(full, h);
        progress(`   ${mib(bytes)} MiB on disk`);
      }
      const limit = { historyLimit: h + 100_000 };
      const emptyDir = path.join(tmp, 'empty');
      // A first start makes the TLS certificate and keys; every measured start is a restart, as on a box.
      await startRun(emptyDir, limit);
      await startRun(full, limit);
      for (let i = 0; i < arg('runs', 3); i++) {
        const empty = await startRun(emptyDir, limit);
        const big = await startRun(full, limit);
        progress(
          `start, empty data dir: ${empty.wallMs.toFixed(0)} ms wall, ${empty.cpuMs.toFixed(0)} ms CPU, RSS ${mib(empty.rss)} MiB; ` +
            `${h.toLocaleString('en')} in history: ${big.wallMs.toFixed(0)} ms wall, ${big.cpuMs.toFixed(0)} ms CPU, RSS ${mib(big.rss)} MiB`,
        );
      }
    } else {
      throw new Error('usage: bench/memory.ts burst|start|large [--jobs=N --clients=N --runs=N --settle=S | --history=N --runs=N]');
    }
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

await main();
