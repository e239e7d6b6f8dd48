// Delivery: one FIFO per printer, printers in parallel; owns retry, back-off, hold and order.
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type { Outcome, OutboundJob } from '../../drivers/contract.js';
import type { DriverRegistry } from '../../drivers/registry.js';
import { isFinal, type JobRecord } from '../spool/jobs.js';
import type { Spool } from '../spool/contract.js';
import type { PrinterRecord } from '../system/state.js';
import type { ConvertStage, Prepared } from '../convert/stage.js';
import { countPassthrough } from '../convert/pages.js';

export interface QueueDeps {
  spool: Spool;
  drivers: DriverRegistry;
  printer(id: string): PrinterRecord | undefined;
  setStopped(id: string, reason: string | null): Promise<void>;
  /** ipps printers not pinned yet (off when added): pin the certificate now, before the first byte; the record to use. */
  pinPrinter?(printer: PrinterRecord): PrinterRecord | Promise<PrinterRecord>;
  /** Batches: must this printer keep printing only this batch? */
  holdsPrinter?(batchID: string, printerId: string): boolean;
  batchJobDone?(batchID: string): Promise<void>;
  batchStartedOn?(printerId: string): string | undefined;
  /** Batches: has every member listed before this one on its printer ended? */
  batchTurn?(job: JobRecord): boolean;
  /** Cluster mode: may this node send to the printer now (it holds the printer's lease)? Absent: always. */
  mayDrive?(printerId: string): boolean;
  preverifyBytes: number;
  /** Converts documents the printer does not take (runtime/convert/); absent: every document goes as it is. */
  convert?: ConvertStage;
  log: { info(o: object, m?: string): void; warn(o: object, m?: string): void; error(o: object, m?: string): void };
}

export interface SendDone {
  printerId: string;
  ms: number;
  outcome: Outcome['kind'];
  bytes: number;
  pages?: number;
}

export interface QueueEvents {
  job: [JobRecord];
  sendDone: [SendDone];
}

/** Sorting key of a job inside its printer's FIFO. */
const position = (j: JobRecord) => j.queuePos ?? j.seq;
/** Still in its printer's line: not cancelled, moved or finished while the queue awaited something. */
const inLine = (j: JobRecord | undefined) => j?.state === 'queued' || j?.state === 'held' || j?.state === 'sending';

class PrinterQueue {
  readonly ids: string[] = []; // queued and held-at-head jobs, in order
  private members = new Set<string>(); // the same ids, for O(1) membership (queues can be 100,000 deep)
  private wakeUp: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  current: { id: string; abort: AbortController } | null = null;
  /**
   * The durable record of the last job's outcome, still being written. The next job may be prepared
   * meanwhile, but its first byte waits for it: otherwise a crash could repeat two jobs instead of one.
   */
  settling: Promise<unknown> | null = null;
  /** While a batch's part on this printer runs, only its jobs go (contiguity): other jobs wait behind it. */
  lock: string | null = null;
  private stopped = false;
  state: 'idle' | 'printing' | 'waiting' | 'stopped' | 'disabled' | 'standby' = 'idle';
  lastError?: string;
  readonly done: Promise<void>;

  constructor(readonly printerId: string, private q: Dispatcher) {
    this.done = this.run();
  }

  insert(job: JobRecord): void {
    if (this.members.has(job.id)) return;
    // Usually an append; a re-queue on start or a release of an older job finds its place by position.
    let i = this.ids.length;
    while (i > 0 && position(this.q.spool.get(this.ids[i - 1])!) > position(job)) i--;
    if (i === this.ids.length) this.ids.push(job.id);
    else this.ids.splice(i, 0, job.id);
    this.members.add(job.id);
    this.wake();
  }

  remove(id: string): void {
    if (this.members.delete(id)) {
      if (this.ids[0] === id) this.ids.shift();
      else this.ids.splice(this.ids.indexOf(id), 1);
    }
    this.wake();
  }

  wake(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  stop(): void {
    this.stopped = true;
    this.current?.abort.abort();
    this.wake();
  }

  private sleep(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeUp = resolve;
      if (ms !== undefined) this.timer = setTimeout(() => this.wake(), Math.max(0, ms));
    });
  }

  private pickHead(): JobRecord | undefined {
    // A job cancelled or moved while we awaited is dropped when it reaches the head, so the loop never spins
    // on it. Only the head is looked at: a scan of the whole line per job made deep queues quadratic.
    while (this.ids.length) {
      if (inLine(this.q.spool.get(this.ids[0]))) break;
      this.members.delete(this.ids.shift()!);
    }
    if (this.lock && !this.q.deps.holdsPrinter?.(this.lock, this.printerId)) this.lock = null;
    const head = this.ids.length ? this.q.spool.get(this.ids[0]) : undefined;
    const batch = this.lock ?? head?.batchID;
    if (!batch) return head;
    // A batch member goes only in its turn: in a cluster, the queue can hold a later member before an earlier one
    // reaches it (this node's own release of it still awaits its write, or another node's write came first).
    for (const id of this.ids) {
      const j = this.q.spool.get(id);
      if (j?.batchID === batch && inLine(j) && this.q.deps.batchTurn?.(j) !== false) return j;
    }
    return undefined; // the batch's next job has not arrived yet: nothing else may go in between
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const printer = this.q.deps.printer(this.printerId);
      const head = this.pickHead();
      if (!printer || !head) {
        this.state = 'idle';
        await this.sleep();
        continue;
      }
      if (this.q.deps.mayDrive && !this.q.deps.mayDrive(this.printerId)) {
        this.state = 'standby'; // another node of the cluster drives this printer; a lease gained wakes this queue
        await this.sleep();
        continue;
      }
      if (!printer.enabled || printer.stopped) {
        this.state = printer.stopped ? 'stopped' : 'disabled';
        await this.sleep();
        continue;
      }
      const wait = head.nextAttemptAt ? Date.parse(head.nextAttemptAt) - Date.now() : 0;
      if (wait > 0) {
        this.state = 'waiting';
        await this.sleep(wait);
        continue;
      }
      try {
        await this.q.deliver(this, head, printer);
        // Let I/O run between attempts, whatever happened. After a delivery this also lets the journal start the
        // outcome's write and fdatasync (queued first) before the next job is prepared and connected beside it.
        await new Promise((r) => setImmediate(r));
      } catch (err) {
        // A bug or an I/O error of our own: keep the job, report it, and pause before trying again.
        this.q.deps.log.error({ err, jobID: head.id }, 'queue error');
        this.lastError = (err as Error).message;
        await this.sleep(1000);
      }
    }
  }
}

export class Dispatcher extends EventEmitter<QueueEvents> {
  private queues = new Map<string, PrinterQueue>();
  readonly spool: Spool;

  constructor(readonly deps: QueueDeps) {
    super();
    this.spool = deps.spool;
  }

  /** Jobs waiting in the printers' lines (queued, and held at a head), over every printer: intake's back-pressure. */
  backlog(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.ids.length;
    return n;
  }

  /**
   * Re-queues every unfinished job in its original order (called once at start). In a cluster (`keepSending`) a
   * job another node is sending stays as it is: takeOver() re-queues a printer's jobs when its lease comes here.
   */
  async restore(opts: { keepSending?: boolean } = {}): Promise<void> {
    // In flight when the process died: it goes again, first in its printer's line.
    for (const job of opts.keepSending ? [] : this.spool.live()) {
      if (job.state === 'sending') await this.spool.update(job.id, { state: 'queued', reason: 'interrupted by a restart while sending; sent again' });
    }
    // Then every queue is filled and its batch lock set with no await in between: a queue that started on a
    // partial line (jobs come in seq order, a released batch sits at its queuePos) would print a later job first.
    for (const job of this.spool.live()) {
      if (job.state === 'queued' || (job.state === 'held' && this.blocksQueue(job))) this.queueFor(job.printerId).insert(job);
    }
    for (const [printerId, q] of this.queues) q.lock = this.deps.batchStartedOn?.(printerId) ?? null;
  }

  /**
   * Cluster mode: this node now holds the printer's lease. A job left 'sending' by the node that held it before
   * goes again (it may have printed: only that one job can print twice), then the line runs from its first
   * unfinished job, in order.
   */
  async takeOver(printerId: string, from: string): Promise<void> {
    for (const job of this.spool.live()) {
      if (job.printerId === printerId && job.state === 'sending') await this.spool.update(job.id, { state: 'queued', reason: `taken over from ${from} while it was sending; sent again` });
    }
    const q = this.queueFor(printerId);
    for (const job of this.spool.live()) {
      if (job.printerId === printerId && (job.state === 'queued' || (job.state === 'held' && this.blocksQueue(job)))) q.insert(job);
    }
    q.lock = this.deps.batchStartedOn?.(printerId) ?? null;
    q.wake();
  }

  /** Cluster mode: the lease is gone; a job being sent is stopped now (its next holder sends it again). */
  standDown(printerId: string): void {
    const q = this.queues.get(printerId);
    q?.current?.abort.abort();
    q?.wake();
  }

  /** Cluster mode: another node changed a job; this node's line for its printer follows. */
  follow(job: JobRecord): void {
    if (job.state === 'queued' || (job.state === 'held' && this.blocksQueue(job))) return this.enqueue(job);
    const q = this.queues.get(job.printerId);
    if (q?.current?.id === job.id && job.state === 'cancelled') q.current.abort.abort();
    q?.wake();
  }

  /** A held job stays at the head of its queue unless the printer's policy lets the queue move on. */
  private blocksQueue(job: JobRecord): boolean {
    return !!job.batchID || this.deps.printer(job.printerId)?.errorPolicy !== 'hold-job';
  }

  private queueFor(printerId: string): PrinterQueue {
    let q = this.queues.get(printerId);
    if (!q) {
      q = new PrinterQueue(printerId, this);
      this.queues.set(printerId, q);
    }
    return q;
  }

  /** Puts a queued job into its printer's FIFO. */
  enqueue(job: JobRecord): void {
    this.queueFor(job.printerId).insert(job);
  }

  printerState(printerId: string) {
    const q = this.queues.get(printerId);
    return {
      state: q?.state ?? 'idle',
      queued: q?.ids.length ?? 0,
      current: q?.current?.id ?? null,
      lastError: q?.lastError ?? null,
    };
  }

  /** A job is being sent to the printer, or its outcome is still being recorded. */
  busy(printerId: string): boolean {
    const q = this.queues.get(printerId);
    return !!(q?.current || q?.settling);
  }

  wakePrinter(printerId: string): void {
    this.queues.get(printerId)?.wake();
  }

  wakeAll(): void {
    for (const q of this.queues.values()) q.wake();
  }

  private async setJob(id: string, patch: Partial<JobRecord>, durable = true, lazyRemoval = false): Promise<JobRecord> {
    const job = await this.spool.update(id, patch, { durable, lazyRemoval });
    this.emit('job', job);
    return job;
  }

  /** Delivery's own transitions apply only while the job is still where delivery left it: a cancel always wins. */
  private async deliveryUpdate(id: string, patch: Partial<JobRecord>, durable = true, lazyRemoval = false): Promise<JobRecord | null> {
    const cur = this.spool.get(id);
    if (!cur || cur.state !== 'sending') return null;
    return this.setJob(id, patch, durable, lazyRemoval);
  }

  /** A final delivery transition written in the background; a failure is logged here and re-thrown to whoever waits on it. */
  private settle(q: PrinterQueue, id: string, patch: Partial<JobRecord>): Promise<unknown> {
    const p = this.deliveryUpdate(id, patch, true, true);
    p.catch((err) => this.deps.log.error({ err, jobID: id }, 'recording a delivery outcome failed'));
    // Once durable it no longer holds anything back (busy() is false); a failure stays for the next job to meet.
    p.then(() => {
      if (q.settling === p) q.settling = null;
    }, () => {});
    return p;
  }

  /** Cancels a job that has not finished; a job being sent is aborted. */
  async cancel(id: string, reason = 'cancelled by request'): Promise<JobRecord | undefined> {
    const job = this.spool.get(id);
    if (!job || isFinal(job.state)) return job;
    const q = this.queues.get(job.printerId);
    const updated = await this.setJob(id, { state: 'cancelled', reason, nextAttemptAt: undefined });
    this.deps.convert?.forget(id);
    if (q) {
      if (q.current?.id === id) q.current.abort.abort();
      q.remove(id);
    }
    return updated;
  }

  /** Puts a held (or failed-to-deliver) job back in line at its original place; also resumes a stopped printer. */
  async release(id: string): Promise<JobRecord | undefined> {
    const job = this.spool.get(id);
    if (!job || job.state !== 'held') return job;
    const updated = await this.setJob(id, { state: 'queued', reason: undefined, attempts: 0, nextAttemptAt: undefined });
    const printer = this.deps.printer(job.printerId);
    if (printer?.stopped) await this.deps.setStopped(job.printerId, null);
    this.enqueue(updated);
    return updated;
  }

  /** Moves a held or queued job to another printer (keeps its place in time). */
  async move(id: string, printerId: string): Promise<JobRecord | undefined> {
    const job = this.spool.get(id);
    if (!job || isFinal(job.state) || job.state === 'sending') return job;
    this.queues.get(job.printerId)?.remove(id);
    this.deps.convert?.forget(id);
    const updated = await this.setJob(id, { printerId, state: job.state === 'held' ? 'queued' : job.state, attempts: 0, nextAttemptAt: undefined, reason: undefined });
    if (updated.state === 'queued') this.enqueue(updated);
    return updated;
  }

  async resumePrinter(printerId: string): Promise<void> {
    await this.deps.setStopped(printerId, null);
    const q = this.queueFor(printerId);
    for (const id of q.ids) {
      const j = this.spool.get(id);
      if (j?.state === 'held') await this.setJob(id, { state: 'queued', attempts: 0, reason: undefined, nextAttemptAt: undefined });
    }
    q.wake();
  }

  async stopAll(): Promise<void> {
    for (const q of this.queues.values()) q.stop();
    await Promise.all([...this.queues.values()].map((q) => q.done));
    await Promise.all([...this.queues.values()].map((q) => q.settling?.catch(() => {})));
  }

  /**
   * One attempt at the head job of a printer, and what its outcome means for the queue. A small job whose
   * document is in memory, needs no conversion and waits for no earlier outcome reaches driver.send() without
   * an await: its connection is opened before the code that woke the queue (the accept's 201) goes on.
   */
  async deliver(q: PrinterQueue, head: JobRecord, printer: PrinterRecord): Promise<void> {
    const pinned = this.deps.pinPrinter?.(printer);
    if (pinned) printer = pinned instanceof Promise ? await pinned : pinned;
    const driver = this.deps.drivers.forUri(new URL(printer.uri));
    if (head.batchID) q.lock = head.batchID;
    const abort = new AbortController();
    q.current = { id: head.id, abort };
    q.state = 'printing';
    let sealError: Error | null = null;
    const warnings: string[] = [];
    try {
      const fresh = this.spool.get(head.id);
      if (!fresh || (fresh.state !== 'queued' && fresh.state !== 'held')) return; // cancelled or moved meanwhile
      // 'sending' need not be durable (a crash re-sends the job anyway): don't wait for the journal.
      const sending = this.spool.updateNow(head.id, { state: 'sending', attempts: fresh.attempts + 1 });
      this.emit('job', sending);
      if (abort.signal.aborted) return;
      let verified: Buffer[] | null = null;
      if (head.size <= this.deps.preverifyBytes) {
        // Small documents are authenticated whole before any byte leaves, so a damaged file sends nothing;
        // the verified plaintext (at most preverifyBytes) is what gets sent, so it is decrypted once.
        try {
          verified = this.spool.readDocumentNow?.(head.id) ?? (await this.spool.readDocument(head.id));
        } catch (err) {
          sealError = err as Error;
        }
      }
      // Conversion starts before the previous job's outcome is durable: it only reads, and it is the slow part.
      let prepared: Prepared | null = null;
      let convertFailure: string | null = null;
      if (driver && !sealError && this.deps.convert) {
        const v = verified;
        const r = this.deps.convert.plan(head, printer) === null ? null : await this.deps.convert.prepare(head, printer, () => v ?? this.spool.openDocument(head.id), abort.signal);
        if (r && 'fail' in r) convertFailure = r.fail;
        else prepared = r;
        if (prepared) warnings.push(prepared.note);
        this.renderAhead(q, head, printer);
      }
      // The previous job's outcome must be durable before this job's first byte. A driver that connects early
      // (RAW) gets the wait as job.ready and opens its connection meanwhile; any other waits here.
      let ready: Promise<void> | undefined;
      let readyError: unknown;
      if (q.settling) {
        const s = q.settling;
        q.settling = null;
        if (driver?.connectsEarly && !sealError && !convertFailure) {
          ready = s.then(
            () => {},
            (err) => {
              readyError = err;
              throw err;
            },
          );
          ready.catch(() => {}); // met below, after send(): the driver may never get to wait on it
        } else await s;
      }
      let outcome: Outcome;
      if (!driver) {
        outcome = { kind: 'retry', reason: `no driver for ${new URL(printer.uri).protocol} printers (a plug-in that did not load?)` };
      } else if (sealError) {
        outcome = { kind: 'fail', reason: `document cannot be opened: ${sealError.message}` };
      } else if (convertFailure) {
        outcome = { kind: 'fail', reason: convertFailure };
      } else {
        const job: OutboundJob = {
          id: head.id,
          title: head.title,
          user: head.user,
          contentType: prepared?.contentType ?? head.contentType,
          size: prepared?.size ?? head.size,
          options: prepared?.options ?? head.options,
          uri: new URL(printer.uri),
          ready,
          bytes: prepared ? prepared.bytes : (verified ?? undefined),
          open: () => {
            if (prepared) return prepared.open();
            if (verified) return Readable.from(verified);
            const s = this.spool.openDocument(head.id);
            s.on('error', (e) => {
              if ((e as NodeJS.ErrnoException).code === 'seal_broken') sealError = e;
            });
            return s;
          },
          warn: (m) => {
            if (!warnings.includes(m)) warnings.push(m);
          },
          // Shown at once and not made durable: it describes the present, which a restart changes anyway.
          status: (m) => {
            const cur = this.spool.get(head.id);
            if (cur?.state !== 'sending' || cur.reason === (m ?? undefined)) return;
            this.emit('job', this.spool.updateNow(head.id, { reason: m ?? undefined }));
            if (m) this.deps.log.warn({ jobID: head.id, printer: printer.name, reason: m }, 'printer stalled');
          },
        };
        const started = Date.now();
        // Counted while the document is sent (a PDF sent as it is costs a qpdf run), so the next job never waits on it.
        const counting = this.pageCounts(head, prepared, verified);
        try {
          outcome = await driver!.send(job, abort.signal);
        } catch (err) {
          outcome = { kind: 'retry', reason: `driver error: ${(err as Error).message}` };
        }
        // Outcomes are recorded in order: this one only after the previous one is durable (a driver that failed
        // to connect returns without waiting). If that record failed, this job is left as a queue error, as before.
        if (ready) await ready.catch(() => {});
        if (readyError) throw readyError;
        const convertError = prepared?.error();
        if (convertError) outcome = { kind: 'fail', reason: `conversion failed while sending: ${convertError.message}` };
        if (sealError) outcome = { kind: 'fail', reason: `document cannot be opened: ${(sealError as Error).message}` };
        const counted = await counting;
        const pages = outcome.kind === 'sent' || outcome.kind === 'confirmed' ? counted : undefined;
        if (pages) await this.deliveryUpdate(head.id, pages, false);
        this.emit('sendDone', { printerId: printer.id, ms: Date.now() - started, outcome: outcome.kind, bytes: head.size, pages: pages?.pages });
      }
      if (outcome.kind !== 'retry') this.deps.convert?.forget(head.id);
      const now = this.spool.get(head.id)!;
      if (now.state !== 'sending') return; // cancelled or moved while sending: the outcome no longer matters
      const merged = [...new Set([...now.warnings, ...warnings])];
      if (merged.length !== now.warnings.length) await this.deliveryUpdate(head.id, { warnings: merged }, false);
      await this.applyOutcome(q, this.spool.get(head.id)!, printer, outcome);
      if (head.batchID) {
        await q.settling; // the batch may move on only once this job's outcome is on disk
        await this.deps.batchJobDone?.(head.batchID);
      }
    } finally {
      q.current = null;
    }
  }

  /** Starts converting the job after the head while the head prints (different printers' jobs convert in parallel). */
  private renderAhead(q: PrinterQueue, head: JobRecord, printer: PrinterRecord): void {
    const i = q.ids.indexOf(head.id);
    const nextId = i >= 0 ? q.ids[i + 1] : undefined;
    const next = nextId ? this.spool.get(nextId) : undefined;
    if (!next || next.state !== 'queued' || (q.lock && next.batchID !== q.lock)) return;
    this.deps.convert!.ahead(next, printer, () => this.spool.openDocument(next.id));
  }

  /** Pages and sheets of a delivered job: from its conversion, else counted where cheap (documents in memory). */
  private async pageCounts(head: JobRecord, prepared: Prepared | null, verified: Buffer[] | null): Promise<{ pages: number; sheets: number } | undefined> {
    if (prepared?.pages !== undefined) return { pages: prepared.pages, sheets: prepared.sheets! };
    if (!verified || !this.deps.convert) return undefined;
    try {
      const n = await countPassthrough(head.contentType, verified);
      if (n === undefined) return undefined;
      // Sent as it is: copies and duplex are the printer's to apply, so count what was asked for.
      const copies = Math.max(1, head.options.copies || 1);
      const perSheets = head.options.duplex && head.options.duplex !== 'none' ? Math.ceil(n / 2) : n;
      return { pages: n * copies, sheets: perSheets * copies };
    } catch {
      return undefined; // a count is a nicety: a document the printer took is not failed for it
    }
  }

  private async applyOutcome(q: PrinterQueue, job: JobRecord, printer: PrinterRecord, outcome: Outcome): Promise<void> {
    const log = this.deps.log;
    if (job.state !== 'sending') return;
    switch (outcome.kind) {
      case 'sent':
      case 'confirmed':
        q.lastError = undefined;
        q.remove(job.id);
        // The record changes in memory now; the next job waits for it to be durable before its first byte.
        q.settling = this.settle(q, job.id, { state: outcome.kind, reason: outcome.detail, nextAttemptAt: undefined });
        log.info({ jobID: job.id, printer: printer.name, outcome: outcome.kind }, 'job delivered');
        return;
      case 'fail':
        q.lastError = outcome.reason;
        q.remove(job.id);
        q.settling = this.settle(q, job.id, { state: 'failed', reason: outcome.reason, nextAttemptAt: undefined });
        log.warn({ jobID: job.id, printer: printer.name, reason: outcome.reason }, 'job failed');
        return;
      case 'retry': {
        q.lastError = outcome.reason;
        const attempts = job.attempts;
        const r = printer.retry;
        if (outcome.stop) {
          // The driver says only an admin can clear this (a changed printer certificate): no back-off would help.
          log.warn({ jobID: job.id, printer: printer.name, reason: outcome.reason }, 'printer stopped; job held until an admin acts');
          await this.deps.setStopped(printer.id, outcome.reason);
          await this.deliveryUpdate(job.id, { state: 'held', reason: outcome.reason, nextAttemptAt: undefined });
          return;
        }
        if (attempts < r.limit) {
          const delay = Math.min(r.baseMs * 2 ** (attempts - 1), r.maxMs);
          await this.deliveryUpdate(job.id, { state: 'queued', reason: `attempt ${attempts} failed: ${outcome.reason}; next try in ${Math.round(delay / 1000)} s`, nextAttemptAt: new Date(Date.now() + delay).toISOString() }, false);
          log.warn({ jobID: job.id, printer: printer.name, attempts, delayMs: delay, reason: outcome.reason }, 'delivery will be retried');
          return;
        }
        const reason = `held after ${attempts} attempts: ${outcome.reason}`;
        log.warn({ jobID: job.id, printer: printer.name, policy: printer.errorPolicy, reason }, 'job held');
        // A batch never lets the queue move past one of its jobs: that would break its order.
        if (printer.errorPolicy === 'hold-job' && !job.batchID) {
          q.remove(job.id);
          await this.deliveryUpdate(job.id, { state: 'held', reason, nextAttemptAt: undefined });
        } else if (printer.errorPolicy === 'stop-printer') {
          // Printer first: whoever sees the held job also sees the stopped printer (and a crash in between
          // leaves a stopped printer with its job still queued, which resume handles).
          await this.deps.setStopped(printer.id, reason);
          await this.deliveryUpdate(job.id, { state: 'held', reason, nextAttemptAt: undefined });
        } else {
          await this.deliveryUpdate(job.id, { state: 'held', reason, nextAttemptAt: new Date(Date.now() + r.heldRetryMs).toISOString() });
        }
      }
    }
  }
}
