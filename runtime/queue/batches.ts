// Ordered batches (Vasion semantics): held until close, released in listed order, contiguous per printer, replayable.
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Journal } from '../spool/journal.js';
import { ApiError, conflict, jobIdTaken, notFound } from '../system/errors.js';
import { isFinal, type CallbackOutcome, type JobRecord } from '../spool/jobs.js';
import { ALLOC_GAP, type Spool } from '../spool/contract.js';
import type { Dispatcher } from './dispatcher.js';
import { CALLBACK_REDO_MS, type StatusCallbacks } from './callbacks.js';

export const BATCH_STATES = ['open', 'expired', 'printing', 'done', 'failed', 'cancelled'] as const;
export type BatchState = (typeof BATCH_STATES)[number];

export interface BatchRecord {
  batchID: string;
  name: string;
  jobIDs: string[];
  requireAllJobs: boolean;
  statusURL?: string;
  owner: string;
  state: BatchState;
  released: number; // how many of jobIDs (in order) have been handed to the queue
  base?: number; // queue position the members are placed after, set once at the first release (see release)
  skipped: string[]; // missing at close and not there when the timeout passed
  createdAt: string;
  expiresAt: string; // an open batch not closed by then expires (its jobs are held)
  closedAt?: string;
  missingDeadline?: string; // after close: missing jobs are skipped at this time
  finishedAt?: string;
  retainUntil?: string; // sealed documents kept for replay until then
  documentsDeleted?: boolean;
  replays: Replay[];
  notified?: boolean; // the batch callback has ended (delivered, refused or given up)
  callback?: CallbackOutcome;
  warnings?: string[]; // Batch Open properties printbox does not know (kept, not refused)
}

/** One replay: its copies' ids are written before the copies are made, each the copy of the source at its index. */
export interface Replay {
  at: string;
  fromJobID: string;
  jobIDs: string[];
  sources?: string[]; // the members copied, by index of jobIDs (absent in records from before)
  making?: boolean; // copies still being made: the batch holds its printers and cannot end
}

/** Where batch records are kept: the local journal (spool/batches.log), or a replicated store in a cluster. */
export interface BatchJournal {
  bytes: number;
  load(onRecord: (b: BatchRecord) => void): Promise<number>;
  open(): Promise<void>;
  append(b: BatchRecord): Promise<void>;
  compact(records: Iterable<BatchRecord>): Promise<void>;
  close(): Promise<void>;
  /**
   * A compare-and-set store (the cluster's): `fn` gets the latest record and returns the next, or null for no
   * change; when another node wrote first, `fn` runs again on what it wrote. Resolves to what was written, or null.
   */
  change?(batchID: string, fn: (cur: BatchRecord | undefined) => BatchRecord | null): Promise<BatchRecord | null>;
}

/** Cluster mode: what the batches need from the other nodes. */
export interface BatchPeers {
  /** Resolves once every job and batch record written anywhere before the call is known on this node. */
  caughtUp(): Promise<void>;
  /** Timers (open timeout, missing-job timeout, retention, jobs waiting for their Batch Open) fire on one node only. */
  timersHere(printerId: string | undefined): boolean;
}

export interface BatchOptions {
  openTimeoutMs: number;
  missingTimeoutMs: number;
  retentionMs: number;
}

export interface OpenBatch {
  batchID: string;
  jobIDs: string[];
  requireAllJobs?: boolean;
  name?: string;
  statusURL?: string;
  warnings?: string[];
}

/** A replay still being made after this long is finished by the node that fires the batch's timers (cluster). */
const REPLAY_STALLED_MS = 30_000;

const FINISHED: ReadonlySet<BatchState> = new Set(['done', 'failed', 'cancelled']);

export class Batches {
  private batches = new Map<string, BatchRecord>();
  private byJob = new Map<string, string>(); // jobID → batchID (original members only)
  private early = new Map<string, Set<string>>(); // batchID not opened yet → jobs that named it and wait for its Batch Open
  private notifying = new Set<string>(); // batches whose callback is being sent
  private replaying = new Set<string>(); // batches whose replay copies this node is making
  private journal: BatchJournal;
  private timer: NodeJS.Timeout | null = null;

  constructor(dataDir: string, key: Uint8Array, private spool: Spool, private queue: Dispatcher, private callbacks: StatusCallbacks, private opts: BatchOptions, private log: { warn(o: object, m?: string): void; info(o: object, m?: string): void }, journal?: BatchJournal, private peers?: BatchPeers) {
    this.journal = journal ?? new Journal(path.join(dataDir, 'spool', 'batches.log'), key);
  }

  async open(): Promise<void> {
    await this.journal.load((b: BatchRecord) => this.index(b));
    await this.journal.open();
    for (const j of this.spool.live()) if (j.state === 'waiting-for-batch' && j.batchID && !this.batches.has(j.batchID)) this.waitForOpen(j.batchID, j.id);
    if (this.batches.size && this.journal.bytes > 1024 * 1024) await this.journal.compact(this.batches.values());
    this.timer = setInterval(() => void this.tick().catch((err) => this.log.warn({ err: (err as Error).message }, 'batch timer')), 1000);
    this.timer.unref();
  }

  /**
   * After a restart (once the queues are restored): a kill inside Batch Close's release leaves the batch
   * `printing` with members still waiting, and a kill after the last member printed leaves it unsettled.
   * Nothing else would ever release or settle them, and the printers stay locked to the batch.
   */
  async resume(): Promise<void> {
    for (const b of [...this.batches.values()]) {
      if (b.state !== 'printing') continue;
      await this.finishReplays(b);
      await this.release(this.get(b.batchID));
    }
  }

  /**
   * Batch callbacks still due (finished in the last 24 hours, the callback never ended: the appliance stopped) are
   * sent now, for the batches whose printer `mine` accepts (one box: all; a cluster: the printer whose lease this
   * node just took). Returns how many.
   */
  resendDue(mine: (printerId: string | undefined) => boolean): number {
    const since = Date.now() - CALLBACK_REDO_MS;
    let n = 0;
    for (const b of this.batches.values()) {
      if (!FINISHED.has(b.state) || !b.statusURL || b.notified || !b.finishedAt || Date.parse(b.finishedAt) < since || !mine(this.printerOf(b))) continue;
      this.notify(b);
      n++;
    }
    return n;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.journal.close();
  }

  /** Cluster mode: a batch record written by another node. Jobs it lists stop waiting for its Batch Open here too. */
  remote(b: BatchRecord): void {
    this.index(b);
    const early = this.early.get(b.batchID);
    if (early) {
      for (const id of b.jobIDs) if (this.spool.get(id)?.owner === b.owner) early.delete(id);
      if (!early.size) this.early.delete(b.batchID);
    }
    // Its last member may have printed here before this record (its `released`) arrived: settle it now.
    if (b.state === 'printing') this.settle(b.batchID).catch((err) => this.log.warn({ batchID: b.batchID, err: (err as Error).message }, 'batch settle after a remote change'));
    this.queue.wakeAll();
  }

  /** Cluster mode: waits until this node knows every job and batch written before (one box: at once). */
  async caughtUp(): Promise<void> {
    if (!this.peers) return;
    try {
      await this.peers.caughtUp();
    } catch (err) {
      throw new ApiError(503, 'cluster_unavailable', `this node could not catch up with the cluster: ${(err as Error).message}`);
    }
  }

  /** Does this node fire the timers of jobs bound for this printer (one box: always)? */
  private timersHere(printerId: string | undefined): boolean {
    return this.peers ? this.peers.timersHere(printerId) : true;
  }

  /** The printer a batch's timers belong to: that of its first listed job that has arrived. */
  private printerOf(b: BatchRecord): string | undefined {
    for (const id of b.jobIDs) {
      const j = this.spool.get(id);
      if (j) return j.printerId;
    }
    return undefined;
  }

  private index(b: BatchRecord): void {
    this.batches.set(b.batchID, b);
    for (const id of b.jobIDs) this.byJob.set(id, b.batchID);
  }

  /**
   * Changes one batch record: `fn` gets the latest record and returns the next one (null: nothing to change).
   * In a cluster the write is a compare-and-set on the record's revision, and `fn` runs again on whatever
   * another node wrote in between, so two nodes changing one batch at once never lose either change.
   */
  private async write(batchID: string, fn: (cur: BatchRecord | undefined) => BatchRecord | null): Promise<BatchRecord | null> {
    if (this.journal.change) {
      const next = await this.journal.change(batchID, fn);
      if (next) this.index(next);
      return next;
    }
    const next = fn(this.batches.get(batchID));
    if (!next) return null;
    this.index(next);
    await this.journal.append(next);
    return next;
  }

  /** A member job's change; in a cluster another node may have written the job first: look again and retry. */
  private async updateMember(id: string, when: (j: JobRecord) => boolean, patch: () => Partial<JobRecord>): Promise<JobRecord | undefined> {
    for (let attempt = 0; ; attempt++) {
      const j = this.spool.get(id);
      if (!j || !when(j)) return undefined;
      try {
        return await this.spool.update(id, patch());
      } catch (err) {
        if ((err as { code?: string }).code !== 'job_changed' || attempt >= 5) throw err;
      }
    }
  }

  get(batchID: string): BatchRecord {
    const b = this.batches.get(batchID);
    if (!b) throw notFound('batch', batchID);
    return b;
  }

  list(): BatchRecord[] {
    return [...this.batches.values()];
  }

  counts(): Record<string, number> {
    const c: Record<string, number> = {};
    for (const b of this.batches.values()) c[b.state] = (c[b.state] ?? 0) + 1;
    return c;
  }

  /** Batch Open. Same batchID with the same body: the same batch; with another body: 409. */
  async create(req: OpenBatch, owner: string): Promise<{ batch: BatchRecord; created: boolean }> {
    // Jobs posted with this batchID on another node before this Batch Open must be known here first.
    await this.caughtUp();
    const same = (b: BatchRecord) => b.name === (req.name ?? '') && b.requireAllJobs === (req.requireAllJobs ?? false) && (b.statusURL ?? null) === (req.statusURL ?? null) && b.jobIDs.join() === req.jobIDs.map((j) => j.toLowerCase()).join();
    const answer = (existing: BatchRecord) => {
      if (existing.owner === owner && same(existing)) return { batch: existing, created: false };
      if (existing.owner !== owner) throw conflict('batch_conflict', `batch "${req.batchID}" already exists`);
      throw conflict('batch_conflict', `batch "${req.batchID}" already exists with a different body`);
    };
    const existing = this.batches.get(req.batchID);
    if (existing) return answer(existing);
    const ids = req.jobIDs.map((j) => j.toLowerCase());
    if (new Set(ids).size !== ids.length) throw new ApiError(400, 'duplicate_job_ids', 'jobIDs lists the same job more than once');
    // Only this owner's early jobs: another owner's job naming the same batchID neither joins it nor blocks it.
    const early = new Set([...(this.early.get(req.batchID) ?? [])].filter((id) => this.spool.get(id)?.state === 'waiting-for-batch' && this.spool.get(id)?.owner === owner));
    for (const id of ids) {
      const other = this.byJob.get(id);
      // Another owner's batch or job is never named: the ID is just taken.
      if (other && this.batches.get(other)?.owner !== owner) throw jobIdTaken(id);
      if (other) throw conflict('job_in_other_batch', `job ${id} is already listed in batch "${other}"`);
      const job = this.spool.get(id);
      if (job && job.owner !== owner) throw jobIdTaken(id);
      // A job posted with this batchID before its Batch Open is a member; any other posted job is not.
      if (job && !early.has(id)) throw conflict('job_exists', `job ${id} was already submitted outside a batch; a batch lists jobs not yet posted`);
    }
    const unlisted = [...early].filter((id) => !ids.includes(id));
    if (unlisted.length) throw conflict('batch_missing_posted_jobs', `jobs ${unlisted.join(', ')} were posted with batchID "${req.batchID}" but this Batch Open does not list them`, { unlisted });
    const now = new Date();
    const batch: BatchRecord = {
      batchID: req.batchID,
      name: req.name ?? '',
      jobIDs: ids,
      requireAllJobs: req.requireAllJobs ?? false,
      statusURL: req.statusURL,
      owner,
      state: 'open',
      released: 0,
      skipped: [],
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + this.opts.openTimeoutMs).toISOString(),
      replays: [],
      ...(req.warnings?.length ? { warnings: req.warnings } : {}),
    };
    // Two nodes opening the same batch at once: one record is made, the other open is answered as a repeat.
    if (!(await this.write(req.batchID, (cur) => (cur ? null : batch)))) return answer(this.get(req.batchID));
    const strangers = [...(this.early.get(req.batchID) ?? [])].filter((id) => !early.has(id));
    if (strangers.length) this.early.set(req.batchID, new Set(strangers)); // they wait on, and expire, as for a batch never opened
    else this.early.delete(req.batchID);
    for (const id of early) {
      const j = await this.updateMember(id, (m) => m.state === 'waiting-for-batch', () => ({ reason: undefined }));
      if (j) this.queue.emit('job', j);
    }
    return { batch, created: true };
  }

  /** The batch that lists this job, if any. */
  listing(jobID: string): string | undefined {
    return this.byJob.get(jobID);
  }

  /** Which batch (if any) a job being posted belongs to, and the state it starts in. Throws the client's mistakes. */
  admit(jobID: string | undefined, batchID: string | undefined, owner: string): { batch?: BatchRecord; state: JobRecord['state']; reason?: string } {
    const listedIn = jobID ? this.byJob.get(jobID) : undefined;
    if (batchID) {
      const found = this.batches.get(batchID);
      // Another owner's batch is unknown to this caller: the job waits as for a batch not opened yet, and never joins it.
      const b = found?.owner === owner ? found : undefined;
      if (!jobID) throw new ApiError(400, 'job_id_required', 'a job that names a batch needs the jobID the batch lists');
      if (!b) {
        // Its Batch Open has not arrived yet: the job waits for it (or for the open timeout).
        if (listedIn && this.batches.get(listedIn)?.owner !== owner) throw jobIdTaken(jobID);
        if (listedIn) throw conflict('job_not_in_batch', `job ${jobID} is listed in batch "${listedIn}", not "${batchID}"`);
        return { state: 'waiting-for-batch', reason: `waiting for the Batch Open of "${batchID}"` };
      }
      if (listedIn !== batchID) throw conflict('job_not_in_batch', `batch "${batchID}" does not list job ${jobID}`);
    }
    if (!listedIn) return { state: 'queued' };
    const b = this.batches.get(listedIn)!;
    if (b.owner !== owner) throw jobIdTaken(jobID!);
    if (FINISHED.has(b.state)) throw conflict('batch_finished', `batch "${b.batchID}" is ${b.state}; it takes no more jobs`);
    if (b.skipped.includes(jobID!)) throw conflict('batch_job_skipped', `job ${jobID} arrived after batch "${b.batchID}" stopped waiting for it; it was skipped`);
    if (b.state === 'expired') return { batch: b, state: 'waiting-for-batch', reason: `batch "${b.batchID}" expired before it was closed; release or cancel it` };
    return { batch: b, state: 'waiting-for-batch' };
  }

  /** A member job was accepted: it may fill a gap in a closed batch. */
  async arrived(job: JobRecord): Promise<void> {
    if (job.batchID && this.batches.get(job.batchID)?.owner !== job.owner) return this.waitForOpen(job.batchID, job.id);
    const b = job.batchID ? this.batches.get(job.batchID) : undefined;
    if (b?.state === 'printing') await this.release(b);
  }

  private waitForOpen(batchID: string, jobID: string): void {
    let set = this.early.get(batchID);
    if (!set) this.early.set(batchID, (set = new Set()));
    set.add(jobID);
  }

  /** Jobs that named a batch whose Batch Open never came within the open timeout are cancelled, with the reason. */
  private async expireEarly(now: number): Promise<void> {
    for (const [batchID, ids] of [...this.early]) {
      for (const id of [...ids]) {
        const j = this.spool.get(id);
        if (j && j.state === 'waiting-for-batch' && Date.parse(j.createdAt) + this.opts.openTimeoutMs > now) continue;
        // The node that fires the timers of the job's printer cancels it; the others keep it in mind until then.
        if (j?.state === 'waiting-for-batch' && !this.timersHere(j.printerId)) continue;
        ids.delete(id);
        if (j?.state !== 'waiting-for-batch') continue;
        this.log.warn({ batchID, jobID: id }, 'job waited for a Batch Open that never came');
        await this.queue.cancel(id, `its batch "${batchID}" was never opened (waited ${Math.round(this.opts.openTimeoutMs / 1000)} s for Batch Open)`);
        await this.spool.dropDocument(id);
      }
      if (!ids.size) this.early.delete(batchID);
    }
  }

  missing(b: BatchRecord): string[] {
    return b.jobIDs.filter((id) => !this.spool.get(id) && !b.skipped.includes(id));
  }

  /** Batch Close: with requireAllJobs and jobs missing, 409 and the batch stays open. */
  async closeBatch(batchID: string): Promise<BatchRecord> {
    this.get(batchID); // (the route has waited for caughtUp(): members accepted on another node just before are not missing)
    const now = Date.now();
    const next = await this.write(batchID, (b) => {
      if (!b) throw notFound('batch', batchID);
      if (b.state === 'printing' || FINISHED.has(b.state)) throw conflict('batch_not_open', `batch "${batchID}" is already ${b.state}`);
      const missing = this.missing(b);
      if (b.requireAllJobs && missing.length) throw conflict('batch_incomplete', `batch "${batchID}" requires all jobs; ${missing.length} missing`, { missing });
      return { ...b, state: 'printing', closedAt: new Date(now).toISOString(), missingDeadline: new Date(now + this.opts.missingTimeoutMs).toISOString() };
    });
    await this.release(next!);
    return this.get(batchID);
  }

  /**
   * Hands jobs to the queue in listed order, stopping at the first one that has not arrived. Member i goes to
   * base + ALLOC_GAP·(i+1)/(n+1): a function of the batch record alone, so two nodes releasing parts of one batch at
   * once (one learning from `released` that a member went before it sees where) can never place them crosswise.
   */
  private async release(from: BatchRecord): Promise<void> {
    let b = this.batches.get(from.batchID) ?? from;
    let released = b.released;
    while (released < b.jobIDs.length) {
      const id = b.jobIDs[released];
      if (b.skipped.includes(id)) {
        released++;
        continue;
      }
      if (!this.spool.get(id)) break; // a gap: everything behind it waits
      if (b.base === undefined) b = await this.placeBatch(b);
      const queuePos = b.base! + (ALLOC_GAP * (released + 1)) / (b.jobIDs.length + 1);
      // In a cluster another node may release the same job at the same moment: whichever writes first queues it.
      const queued = await this.updateMember(id, (j) => j.state === 'waiting-for-batch', () => ({ state: 'queued', reason: undefined, queuePos }));
      if (queued) {
        this.queue.enqueue(queued);
        this.queue.emit('job', queued);
      }
      released++;
    }
    if (released > b.released) await this.write(b.batchID, (cur) => (cur && cur.released < released ? { ...cur, released } : null));
    await this.settle(b.batchID);
    this.queue.wakeAll();
  }

  /**
   * The batch's base position, chosen by the first node to release one of its members and written by
   * compare-and-set: a node that loses the race takes the winner's. Records from before `base` existed may have
   * members released already: the base goes behind them.
   */
  private async placeBatch(b: BatchRecord): Promise<BatchRecord> {
    const mine = Math.max(this.spool.allocSeq(), this.positionBefore(b, b.released));
    let seen: BatchRecord | undefined;
    const next = await this.write(b.batchID, (cur) => {
      seen = cur;
      return cur && cur.base === undefined ? { ...cur, base: mine } : null;
    });
    return { ...b, base: (next ?? seen)?.base ?? mine };
  }

  /** The queue position of the last member released before index `i` (0 when none). */
  private positionBefore(b: BatchRecord, i: number): number {
    for (let k = i - 1; k >= 0; k--) {
      const j = this.spool.get(b.jobIDs[k]);
      if (j) return j.queuePos ?? j.seq;
    }
    return 0;
  }

  /** True while a printer must keep printing this batch only: it has unfinished members there, or a gap may still fill. */
  holdsPrinter(batchID: string, printerId: string): boolean {
    const b = this.batches.get(batchID);
    if (!b || FINISHED.has(b.state)) return false;
    if (b.state === 'printing' && b.released < b.jobIDs.length) return true;
    // Between two copies of a replay being made, the line holds for the next one.
    if (b.replays.some((r) => r.making && r.sources?.some((id) => this.spool.get(id)?.printerId === printerId))) return true;
    return this.members(b).some((j) => j.printerId === printerId && !isFinal(j.state));
  }

  /**
   * May this member be sent now: has every member listed before it on the same printer ended? Releases go in
   * listed order, but in a cluster the queue of the node driving the printer can see a later member queued before
   * an earlier one (its own release of that one still awaits its write, or another node's write came first).
   */
  turnOf(job: JobRecord): boolean {
    const b = job.batchID ? this.batches.get(job.batchID) : undefined;
    if (b?.state !== 'printing' || this.byJob.get(job.id) !== b.batchID) return true; // (replays are made in order by one node)
    for (const id of b.jobIDs) {
      if (id === job.id) return true;
      const j = this.spool.get(id);
      if (j && j.printerId === job.printerId && !isFinal(j.state) && !b.skipped.includes(id)) return false;
    }
    return true;
  }

  private members(b: BatchRecord): JobRecord[] {
    const ids = [...b.jobIDs, ...b.replays.flatMap((r) => r.jobIDs)];
    return ids.map((id) => this.spool.get(id)).filter((j): j is JobRecord => !!j);
  }

  /** The batch whose part on this printer has begun and not ended (re-established after a restart). */
  startedOn(printerId: string): string | undefined {
    for (const b of this.batches.values()) {
      if (b.state !== 'printing') continue;
      const here = this.members(b).filter((j) => j.printerId === printerId);
      if (here.some((j) => isFinal(j.state)) && this.holdsPrinter(b.batchID, printerId)) return b.batchID;
    }
    return undefined;
  }

  /** After a member finishes: is the whole batch done? */
  async settle(batchID: string): Promise<void> {
    const settled = (b: BatchRecord | undefined) => !!b && b.state === 'printing' && b.released >= b.jobIDs.length && !b.replays.some((r) => r.making) && this.members(b).every((j) => isFinal(j.state));
    if (!settled(this.batches.get(batchID))) return;
    const now = Date.now();
    // Only the node whose write ends the batch calls back: another node settling it at the same moment finds it done.
    const done = await this.write(batchID, (b) => {
      if (!settled(b)) return null;
      const ok = this.members(b!).every((j) => j.state === 'sent' || j.state === 'confirmed') && b!.skipped.length === 0;
      return { ...b!, state: ok ? 'done' : 'failed', finishedAt: new Date(now).toISOString(), retainUntil: new Date(now + this.opts.retentionMs).toISOString() };
    });
    if (!done) return;
    this.notify(done);
    this.queue.wakeAll();
  }

  /** The batch callback, at least once: `notified` is saved when it has ended, so a restart sends it again. */
  private notify(b: BatchRecord): void {
    if (!b.statusURL || b.notified || this.notifying.has(b.batchID)) return;
    this.notifying.add(b.batchID);
    const failed = this.members(b).filter((j) => j.state === 'failed' || j.state === 'cancelled').map((j) => j.id);
    const message = b.state === 'done' ? `batch printed: ${b.jobIDs.length} jobs in order` : `batch ${b.state}: ${[b.skipped.length && `skipped ${b.skipped.join(', ')}`, failed.length && `failed ${failed.join(', ')}`].filter(Boolean).join('; ')}`;
    this.callbacks.send(b.statusURL, { batchID: b.batchID, status: b.state === 'done' ? 'success' : 'fail', message }, b.owner, (callback) => {
      this.notifying.delete(b.batchID);
      // Replayed meanwhile: that run calls back itself.
      this.write(b.batchID, (cur) => (!cur || cur.state !== b.state || cur.finishedAt !== b.finishedAt ? null : { ...cur, notified: true, callback })).catch((err) => this.log.warn({ batchID: b.batchID, err: (err as Error).message }, 'could not record the batch callback outcome'));
    });
  }

  /** DELETE: cancels every member not yet printed. */
  async cancel(batchID: string): Promise<BatchRecord> {
    this.get(batchID);
    const b = (await this.write(batchID, (cur) => {
      if (!cur) throw notFound('batch', batchID);
      if (FINISHED.has(cur.state)) throw conflict('batch_finished', `batch "${batchID}" is already ${cur.state}`);
      return { ...cur, state: 'cancelled', finishedAt: new Date().toISOString(), retainUntil: new Date(Date.now() + this.opts.retentionMs).toISOString() };
    }))!;
    for (const j of this.members(b)) if (!isFinal(j.state)) await this.queue.cancel(j.id, `batch "${batchID}" was cancelled`);
    for (const j of this.members(b)) await this.spool.dropDocument(j.id);
    this.notify(this.get(batchID));
    return this.get(batchID);
  }

  /**
   * Prints the batch again, whole or from one job on, in the same order, as new jobs sharing the sealed documents.
   * The replay (its copies' ids) is written before the copies are made: a copy that printed before the list was
   * written once ended the batch early (done, and its printers free between two copies). Copies take new places
   * in their printers' lines, behind the jobs already waiting.
   */
  async replay(batchID: string, fromJobID?: string): Promise<BatchRecord> {
    this.get(batchID);
    const check = (b: BatchRecord | undefined): BatchRecord => {
      if (!b) throw notFound('batch', batchID);
      if (b.state !== 'done' && b.state !== 'failed') throw conflict('batch_not_finished', `batch "${batchID}" is ${b.state}; only a finished batch can be replayed`);
      if (b.documentsDeleted) throw new ApiError(410, 'batch_documents_expired', `the documents of batch "${batchID}" were deleted after the retention time; it cannot be replayed`);
      return b;
    };
    const b = check(this.batches.get(batchID));
    const start = fromJobID ? b.jobIDs.indexOf(fromJobID.toLowerCase()) : 0;
    if (start < 0) throw notFound('batch_job', fromJobID!);
    const sources = b.jobIDs.slice(start).filter((id) => !b.skipped.includes(id) && this.spool.get(id)?.hasDocument);
    const replay: Replay = { at: new Date().toISOString(), fromJobID: sources[0] ?? '', jobIDs: sources.map(() => randomUUID()), sources, making: true };
    // Two replays of one batch at once (two nodes): one starts, the other hears batch_not_finished.
    const started = await this.write(batchID, (cur) => ({ ...check(cur), state: 'printing', notified: false, callback: undefined, finishedAt: undefined, replays: [...cur!.replays, replay] }));
    await this.finishReplays(started!);
    return this.get(batchID);
  }

  /**
   * Makes the copies of the batch's replays still being made that do not exist yet, in order, then marks them made
   * and settles the batch (a replay cut by a stop or a failed node is finished this way; in a cluster another node
   * may be making the same copies: each is made once, whoever writes it first).
   */
  private async finishReplays(b: BatchRecord): Promise<void> {
    if (!b.replays.some((r) => r.making) || this.replaying.has(b.batchID)) return;
    this.replaying.add(b.batchID);
    try {
      for (const r of b.replays) {
        if (!r.making) continue;
        for (const [i, id] of r.jobIDs.entries()) await this.copyOnce(id, r.sources?.[i]);
      }
    } finally {
      this.replaying.delete(b.batchID);
      await this.write(b.batchID, (cur) => (cur?.replays.some((r) => r.making) ? { ...cur, replays: cur.replays.map(({ making: _m, ...r }) => r) } : null));
    }
    await this.settle(b.batchID);
  }

  private async copyOnce(id: string, sourceId: string | undefined): Promise<void> {
    const src = sourceId ? this.spool.get(sourceId) : undefined;
    if (this.spool.get(id) || !src?.hasDocument) return;
    const now = new Date().toISOString();
    try {
      const job = await this.spool.copy({ ...src, id, seq: 0, queuePos: undefined, state: 'queued', reason: undefined, warnings: [], attempts: 0, nextAttemptAt: undefined, createdAt: now, updatedAt: now, finishedAt: undefined, replayOf: src.id, statusURL: undefined }, src.id);
      this.queue.enqueue(job);
    } catch (err) {
      if ((err as { code?: string }).code !== 'job_exists') throw err; // (another node made it first)
    }
  }

  /** Expiry of open batches, skipping of missing jobs, deletion of documents past retention. */
  async tick(now = Date.now()): Promise<void> {
    await this.expireEarly(now);
    for (const b of [...this.batches.values()]) {
      // In a cluster one node fires a batch's timers: the one that fires those of its first job's printer.
      if (!this.timersHere(this.printerOf(b))) continue;
      if (b.state === 'open' && Date.parse(b.expiresAt) <= now) {
        const reason = `batch "${b.batchID}" expired before it was closed; release or cancel it`;
        for (const m of this.members(b)) {
          const j = await this.updateMember(m.id, (x) => x.state === 'waiting-for-batch', () => ({ reason }));
          if (j) this.queue.emit('job', j);
        }
        this.log.warn({ batchID: b.batchID }, 'batch expired before it was closed');
        await this.write(b.batchID, (cur) => (cur?.state === 'open' ? { ...cur, state: 'expired' } : null));
      } else if (b.state === 'printing' && b.missingDeadline && Date.parse(b.missingDeadline) <= now && this.missing(b).length) {
        this.log.warn({ batchID: b.batchID, skipped: this.missing(b) }, 'batch stopped waiting for missing jobs');
        await this.write(b.batchID, (cur) => {
          const missing = cur?.state === 'printing' ? this.missing(cur) : [];
          return missing.length ? { ...cur!, skipped: [...cur!.skipped, ...missing] } : null;
        });
        await this.release(this.get(b.batchID));
      } else if (b.state === 'printing' && this.peers) {
        // Cluster: a release or settle that a node did not finish (it died, or its write met an election) is
        // finished here: the next member that has arrived is released, and a batch whose members all ended is settled.
        const next = b.jobIDs[b.released];
        // (a replay whose node stopped making it; a node still making one is left to it for a while)
        if (b.replays.some((r) => r.making && Date.parse(r.at) + REPLAY_STALLED_MS <= now)) await this.finishReplays(b);
        else if (next !== undefined && (this.spool.get(next) || b.skipped.includes(next))) await this.release(b);
        else await this.settle(b.batchID);
      } else if (FINISHED.has(b.state) && b.retainUntil && !b.documentsDeleted && Date.parse(b.retainUntil) <= now) { // (not while a replay prints)
        for (const j of this.members(b)) await this.spool.dropDocument(j.id);
        await this.write(b.batchID, (cur) => (cur && !cur.documentsDeleted ? { ...cur, documentsDeleted: true } : null));
      }
    }
  }

  view(b: BatchRecord) {
    const jobs = b.jobIDs.map((id) => {
      const j = this.spool.get(id);
      return { jobID: id, state: j?.state ?? (b.skipped.includes(id) ? 'skipped' : 'missing'), printer: j?.printerId, reason: j?.reason };
    });
    const { notified: _n, owner: _o, base: _p, ...rest } = b;
    return { ...rest, jobs, missing: this.missing(b), replays: b.replays.map(({ sources: _s, making: _m, ...r }) => ({ ...r, jobs: r.jobIDs.map((id) => ({ jobID: id, state: this.spool.get(id)?.state ?? 'unknown' })) })) };
  }
}
