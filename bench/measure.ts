// Measuring tools for the benchmarks: a server's CPU and memory from /proc, percentiles, and the results table.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds used by a process, including its reaped children (cupsd's backends, printbox's health probes). */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may itself contain spaces and parentheses.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [utime, stime, cutime, cstime] = [f[11], f[12], f[13], f[14]].map(Number);
  return (utime + stime + cutime + cstime) / CLK_TCK;
}

function statusKb(pid: number, field: string): number {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // the process (a short-lived backend) is gone
  }
}

/** Peak resident set size of one process since start or since the last `resetPeak`, in bytes. */
export const peakRss = (pid: number) => statusKb(pid, 'VmHWM') * 1024;
export const rss = (pid: number) => statusKb(pid, 'VmRSS') * 1024;

/** Lets VmHWM measure one phase only (Linux ≥ 4.0, root or same user). */
export function resetPeak(pid: number): void {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    /* not permitted: the peak then covers the process's whole life, which only overstates it */
  }
}

function children(pid: number, deep = false): number[] {
  try {
    const direct = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return deep ? direct.flatMap((c) => [c, ...children(c, true)]) : direct;
  } catch {
    return [];
  }
}

/**
 * Samples a process tree's total RSS every few ms: catches short-lived children (backends) that VmHWM of the parent
 * misses. `deep` counts grandchildren too (CUPS's gs runs under gstoraster, itself a child of cupsd).
 */
export function treeRssSampler(pid: number, everyMs = 20, deep = false) {
  let peak = 0;
  const sample = () => {
    let total = rss(pid);
    for (const c of children(pid, deep)) total += rss(c);
    peak = Math.max(peak, total);
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop(): number {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

/** Usage of one phase: CPU seconds and peak memory of the server process tree. */
export function phaseMeter(pid: number) {
  const cpu0 = cpuSeconds(pid);
  resetPeak(pid);
  const tree = treeRssSampler(pid);
  return {
    stop() {
      const treePeak = tree.stop();
      return { cpu: cpuSeconds(pid) - cpu0, peakRss: peakRss(pid), treePeak: Math.max(treePeak, peakRss(pid)) };
    },
  };
}

export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export const MiB = 1024 * 1024;
export const fmtMs = (ms: number) => (Number.isFinite(ms) ? (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)) + ' ms' : 'n/a');
export const fmtRate = (n: number, unit: string) => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n.toFixed(1)) + ' ' + unit : 'n/a');
export const fmtMB = (bytes: number) => (bytes / MiB).toFixed(0) + ' MiB';
export const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? (a / b >= 10 ? (a / b).toFixed(0) : (a / b).toFixed(2)) + '×' : 'n/a');

/** One row of the results: a figure, what it is compared with, and whether it meets its target. */
export interface Row {
  section: string;
  metric: string;
  printbox: string;
  baseline: string;
  ratio: string;
  target: string;
  ok?: boolean;
}

export function renderTable(rows: Row[]): string {
  const head = ['section', 'metric', 'printbox', 'baseline (same run)', 'ratio', 'target', 'met'];
  const cells = rows.map((r) => [r.section, r.metric, r.printbox, r.baseline, r.ratio, r.target, r.ok === undefined ? '' : r.ok ? 'yes' : 'NO']);
  const lines = [head, head.map(() => '---'), ...cells].map((c) => `| ${c.join(' | ')} |`);
  return lines.join('\n') + '\n';
}

export function progress(msg: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
