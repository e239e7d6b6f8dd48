// How long the health snapshot and the free-space check take, while the real probes refresh: the timings the
// tests deliberately do not assert (test/health.test.ts asserts that neither waits). Run: npx tsx bench/health.ts
import os from 'node:os';
import { SystemHealth, freeBytesSync } from '../runtime/system/health.js';
import { percentile } from './measure.js';

function time(f: () => unknown): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const health = new SystemHealth({ dataDir: os.tmpdir(), version: 'bench', refreshMs: 60_000 });
const during: number[] = [];
const refreshing = health.refresh();
while (health.refreshing) {
  during.push(time(() => health.snapshot()));
  await new Promise((r) => setTimeout(r, 5));
}
await refreshing;
const after = Array.from({ length: 2000 }, () => time(() => health.snapshot()));
const statfs = Array.from({ length: 2000 }, () => time(() => freeBytesSync(os.tmpdir())));
// Same-run baseline: the cheapest call the snapshot makes of the os module.
const baseline = Array.from({ length: 2000 }, () => time(() => os.freemem()));
const row = (name: string, xs: number[]) => `${name.padEnd(44)} p50 ${percentile(xs, 50).toFixed(4)} ms  p99 ${percentile(xs, 99).toFixed(4)} ms  max ${Math.max(...xs).toFixed(3)} ms  (n=${xs.length})`;
console.log(row('snapshot() while the probes refresh', during));
console.log(row('snapshot() idle', after));
console.log(row('freeBytesSync (statfs of the data dir)', statfs));
console.log(row('baseline: os.freemem()', baseline));
