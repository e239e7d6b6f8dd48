// How the torture scenarios judge a batch's prints: on each of its printers, its part is its listed order (first
// prints only) and one run — between its first and last document nothing else prints, except a repeat of a
// document already printed (the job in flight at a kill is sent again).

export interface BatchParts {
  /** How findings name the batch ("batch 3"). */
  name: string;
  /** Is this printed label one of the batch's documents? */
  mine(label: string): boolean;
  /** Per printer, the labels the batch sends there, in listed order. */
  parts: { printer: number; expected: string[] }[];
}

export interface BatchRunReport {
  /** Listed order and one run on every printer. */
  inOrder: boolean;
  /** Other documents found inside the batch's runs. */
  interleaved: number;
  violations: string[];
}

/** `printedOn[p]`: labels printed on printer p in arrival order; `around(p, k)`: the context to show for a finding. */
export function checkBatchRun(b: BatchParts, printedOn: string[][], around: (p: number, k: number) => string): BatchRunReport {
  const violations: string[] = [];
  let interleaved = 0;
  for (const { printer: p, expected } of b.parts) {
    const labels = printedOn[p];
    const firstPrints = [...new Set(labels.filter(b.mine))];
    if (firstPrints.join() !== expected.join()) {
      const diff = firstPrints.findIndex((l, i) => l !== expected[i]);
      const k = diff < 0 ? firstPrints.length : diff; // a prefix: the rest never printed
      violations.push(`${b.name} on p${p}: listed order broken at position ${k} (printed ${firstPrints.slice(Math.max(0, k - 2), k + 3).join(' ')}, listed ${expected.slice(Math.max(0, k - 2), k + 3).join(' ')})`);
    }
    const from = labels.findIndex(b.mine);
    if (from < 0) continue;
    const to = labels.length - 1 - [...labels].reverse().findIndex(b.mine);
    const before = new Set(labels.slice(0, from));
    for (let k = from; k <= to; k++) {
      const l = labels[k];
      if (b.mine(l)) {
        before.add(l);
        continue;
      }
      if (before.has(l)) continue; // a repeat of the job in flight at a kill
      interleaved++;
      violations.push(`${b.name} on p${p}: ${l} printed inside the batch's run: ${around(p, k)}`);
      before.add(l);
    }
  }
  return { inOrder: violations.length === 0, interleaved, violations };
}
