// Prometheus metrics: counters fed by intake and the queue, gauges read from the spool at scrape time.
import type { PrinterRecord } from './state.js';

/** One delivery attempt, as the queue reports it. */
export interface SendObservation {
  printerId: string;
  ms: number;
  outcome: string;
  bytes: number;
  pages?: number; // pages delivered (× copies), when known
}

/** What a scrape reads: printers, the jobs the spool knows, each printer's queue, batch counts. */
export interface MetricsSource {
  printers: { list(): PrinterRecord[] };
  spool: { records(): Iterable<{ state: string; printerId: string; createdAt: string }>; counts(): Partial<Record<string, number>> };
  queue: { printerState(id: string): { lastError?: unknown } };
  batchCounts?: () => Record<string, number>;
}

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

class Histogram {
  counts = new Array(BUCKETS.length).fill(0);
  sum = 0;
  n = 0;
  observe(v: number) {
    this.sum += v;
    this.n++;
    for (let i = 0; i < BUCKETS.length; i++) if (v <= BUCKETS[i]) this.counts[i]++;
  }
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export class Metrics {
  bytesIn = 0;
  bytesOut = 0;
  jobsAccepted = 0;
  private sends = new Map<string, Histogram>(); // by printer id
  private outcomes = new Map<string, number>(); // `${printer}\0${kind}`
  private pages = new Map<string, number>(); // by printer id

  onSend(e: SendObservation): void {
    let h = this.sends.get(e.printerId);
    if (!h) this.sends.set(e.printerId, (h = new Histogram()));
    h.observe(e.ms / 1000);
    const k = `${e.printerId}\0${e.outcome}`;
    this.outcomes.set(k, (this.outcomes.get(k) ?? 0) + 1);
    if (e.outcome === 'sent' || e.outcome === 'confirmed') {
      this.bytesOut += e.bytes;
      if (e.pages) this.pages.set(e.printerId, (this.pages.get(e.printerId) ?? 0) + e.pages);
    }
  }

  render(app: MetricsSource): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, rows: [Record<string, string>, number][]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of rows) {
        const l = Object.entries(labels).map(([k, x]) => `${k}="${esc(x)}"`).join(',');
        out.push(`${name}${l ? `{${l}}` : ''} ${v}`);
      }
    };
    const printers = app.printers.list();
    const name = (id: string) => printers.find((p) => p.id === id)?.name ?? id;
    const byState = new Map<string, number>();
    const depth = new Map<string, number>();
    const oldest = new Map<string, number>();
    const now = Date.now();
    for (const [state, n] of Object.entries(app.spool.counts())) byState.set(state, n ?? 0);
    for (const j of app.spool.records()) {
      if (j.state === 'queued' || j.state === 'sending' || j.state === 'held' || j.state === 'waiting-for-batch') {
        depth.set(j.printerId, (depth.get(j.printerId) ?? 0) + 1);
        oldest.set(j.printerId, Math.max(oldest.get(j.printerId) ?? 0, (now - Date.parse(j.createdAt)) / 1000));
      }
    }
    metric('printbox_jobs', 'gauge', 'Jobs known to the appliance (in flight and kept history) by state', [...byState].map(([s, v]) => [{ state: s }, v]));
    metric('printbox_jobs_accepted_total', 'counter', 'Jobs accepted since start', [[{}, this.jobsAccepted]]);
    metric('printbox_bytes_in_total', 'counter', 'Document bytes accepted since start', [[{}, this.bytesIn]]);
    metric('printbox_bytes_out_total', 'counter', 'Document bytes delivered to printers since start', [[{}, this.bytesOut]]);
    metric('printbox_queue_depth', 'gauge', 'Unfinished jobs per printer', printers.map((p) => [{ printer: p.name }, depth.get(p.id) ?? 0]));
    metric('printbox_queue_oldest_job_age_seconds', 'gauge', 'Age of the oldest unfinished job per printer', printers.map((p) => [{ printer: p.name }, Math.round(oldest.get(p.id) ?? 0)]));
    metric('printbox_printer_up', 'gauge', '1 when the last delivery attempt to the printer worked (or none failed yet)', printers.map((p) => {
      const st = app.queue.printerState(p.id);
      return [{ printer: p.name }, p.enabled && !p.stopped && !st.lastError ? 1 : 0];
    }));
    metric('printbox_send_outcomes_total', 'counter', 'Delivery attempts by outcome', [...this.outcomes].map(([k, v]) => {
      const [id, kind] = k.split('\0');
      return [{ printer: name(id), outcome: kind }, v];
    }));
    metric('printbox_pages_total', 'counter', 'Pages delivered to each printer since start (pages × copies, where the page count is known)', printers.map((p) => [{ printer: p.name }, this.pages.get(p.id) ?? 0]));
    out.push('# HELP printbox_send_duration_seconds Time to send one job to its printer', '# TYPE printbox_send_duration_seconds histogram');
    for (const [id, h] of this.sends) {
      const p = esc(name(id));
      BUCKETS.forEach((b, i) => out.push(`printbox_send_duration_seconds_bucket{printer="${p}",le="${b}"} ${h.counts[i]}`));
      out.push(`printbox_send_duration_seconds_bucket{printer="${p}",le="+Inf"} ${h.n}`, `printbox_send_duration_seconds_sum{printer="${p}"} ${h.sum}`, `printbox_send_duration_seconds_count{printer="${p}"} ${h.n}`);
    }
    const batches = app.batchCounts?.() ?? {};
    metric('printbox_batches', 'gauge', 'Batches by state', Object.entries(batches).map(([s, v]) => [{ state: s }, v]));
    return out.join('\n') + '\n';
  }
}
