// The one door into the spool: every intake protocol ends here with a validated job and a sealed upload, and
// "accepted" (HTTP 201, IPP successful-ok, the LPD ack) is answered only after this resolves.
import fs from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { ApiError, conflict, jobIdTaken } from '../system/errors.js';
import type { JobRecord, JobState } from '../spool/jobs.js';
import type { Received, Spool } from '../spool/contract.js';
import { sniff, validateJob, type JobField, type JobFields, type PrinterDirectory, type ValidJob } from './options.js';
import { fieldFor, knownFieldNames, pathAwarePrinters, type FieldAliases } from './vasion.js';

/** Seconds a sender pushed back by a full queue is asked to wait (a RAW printer prints ~100–600 small jobs a second). */
const RETRY_AFTER_S = 2;

/** What the batches must say about a job that arrives (the queue room implements it). */
export interface BatchAdmission {
  /** The batch a job is listed in, if any (a repeat of a listed job carries its batch). */
  listing(jobID: string): string | undefined;
  /** Where an arriving job starts: `queued`, or `waiting-for-batch` in a batch; throws a coded error when the batch refuses it. */
  admit(jobID: string | undefined, batchID: string | undefined, owner: string): { batch?: { batchID: string }; state: JobState; reason?: string };
  /** A batch member has been accepted durably. */
  arrived(job: JobRecord): Promise<void>;
}

export interface IntakeDeps {
  spool: Spool;
  printers: PrinterDirectory;
  batches: BatchAdmission;
  /** Hands an accepted, queued job to its printer's line. */
  enqueue(job: JobRecord): void;
  /** Counts an accepted job (metrics). */
  counted?(job: JobRecord): void;
  log: Logger;
  limits: { dataDir: string; maxDocumentBytes: number; minFreeBytes: number; maxQueuedJobs?: number };
  /** Jobs waiting in the printers' lines now (back-pressure: see maxQueuedJobs). */
  backlog?(): number;
  /** The site's own field names (config `fieldAliases`), on top of the built-in dialects. */
  fieldAliases?: FieldAliases;
  /** Why intake is closed right now (cluster mode: this node is cut off from the quorum), or undefined. */
  refuse?(): string | undefined;
}

/** Same jobID again: the same job when content and metadata match, otherwise a conflict. */
export function sameJob(existing: JobRecord, digest: string, metaDigest: string): JobRecord {
  if (existing.digest === '') throw conflict('job_conflict', `job ${existing.id} was posted without a jobID (printbox chose it), so no post can repeat it`);
  if (existing.digest === digest && existing.metaDigest === metaDigest) return existing;
  throw conflict('job_conflict', `job ${existing.id} already exists with different content`);
}

export class JobIntake {
  private uploading = new Set<string>();
  private diskCheck = { at: 0, free: Infinity };

  private printers: PrinterDirectory;

  constructor(private deps: IntakeDeps) {
    this.printers = pathAwarePrinters(deps.printers);
  }

  get maxDocumentBytes(): number {
    return this.deps.limits.maxDocumentBytes;
  }

  /** The one validation of job fields, for every protocol. */
  validate(fields: JobFields): ValidJob {
    return validateJob(this.printers, fields);
  }

  /** Where a field name a client sent goes: a job field, null (ignored on purpose by the site), undefined (unknown). */
  fieldFor(name: string): JobField | null | undefined {
    return fieldFor(name, this.deps.fieldAliases);
  }

  knownFields(): string[] {
    return knownFieldNames(this.deps.fieldAliases);
  }

  /**
   * 507 before the disk fills: intake stops below the floor and resumes by itself once space is back. 503 while
   * the printers' lines hold maxQueuedJobs: a burst faster than the printers is pushed back to its senders (they
   * keep the job and send it again after Retry-After) instead of growing the appliance's memory without bound.
   */
  async checkDiskSpace(): Promise<void> {
    // Every protocol's pre-flight: a node without its cluster's quorum could not make a job durable either.
    const closed = this.deps.refuse?.();
    if (closed) throw new ApiError(503, 'cluster_unavailable', closed);
    const max = this.deps.limits.maxQueuedJobs ?? 0;
    const waiting = max > 0 ? (this.deps.backlog?.() ?? 0) : 0;
    if (max > 0 && waiting >= max) {
      throw new ApiError(503, 'queue_full', `${waiting} jobs are waiting for their printers, the appliance's limit (maxQueuedJobs); this job was not accepted: send it again after Retry-After seconds`, { retryAfterSeconds: RETRY_AFTER_S });
    }
    const now = Date.now();
    const { dataDir, minFreeBytes } = this.deps.limits;
    if (now - this.diskCheck.at > 1000) {
      const st = await fs.statfs(dataDir);
      this.diskCheck = { at: now, free: st.bavail * st.bsize };
    }
    if (this.diskCheck.free < minFreeBytes) {
      throw new ApiError(507, 'insufficient_storage', `the appliance has ${Math.round(this.diskCheck.free / 1048576)} MiB free, below its floor of ${Math.round(minFreeBytes / 1048576)} MiB; intake resumes when space is freed`);
    }
  }

  /**
   * Seals a document stream into the spool (durable, not yet a job); 507 first when the disk is below its floor.
   * `digest`: hash the document on the way in, for a job whose jobID is known to be given (a repeat can only
   * name a client's own ID). Without it, accept() reads the upload back for its digest if a jobID turns up after all.
   */
  async receive(source: Readable, opts: { digest?: boolean } = {}): Promise<Received> {
    await this.checkDiskSpace();
    return this.deps.spool.receive(source, this.deps.limits.maxDocumentBytes, { digest: opts.digest ?? false });
  }

  discard(r: Received): Promise<void> {
    return this.deps.spool.discard(r);
  }

  /** Makes a sealed upload a job. Idempotent for the same jobID with the same content. */
  async accept(v: ValidJob, r: Received, owner: string): Promise<{ job: JobRecord; created: boolean }> {
    const { spool, batches } = this.deps;
    const id = v.jobID ?? randomUUID();
    // A client's jobID can come again: its digest tells a repeat from a conflict. An ID chosen here cannot.
    if (v.jobID !== undefined && r.digest === undefined) {
      try {
        r = { ...r, digest: await spool.digestOf(r) };
      } catch (err) {
        await spool.discard(r);
        throw err;
      }
    }
    const digest = r.digest ?? '';
    const metaOf = (batchID: string | undefined) => ({ printerId: v.printerId, title: v.title, user: v.user, contentType: v.contentType, options: v.options, statusURL: v.statusURL, batchID });
    // A repeat is answered before the batch rules: re-posting a member of a finished batch is the same job.
    const existing = spool.get(id);
    if (existing) {
      await spool.discard(r);
      // Another owner's job is not this caller's to see: no view, no hint of its content, just "taken".
      if (existing.owner !== owner) throw jobIdTaken(id);
      return { job: sameJob(existing, digest, spool.metaDigest(metaOf(v.batchID ?? batches.listing(id)))), created: false };
    }
    let admission;
    try {
      admission = batches.admit(v.jobID, v.batchID, owner);
    } catch (err) {
      await spool.discard(r);
      throw err;
    }
    const meta = metaOf(admission.batch?.batchID ?? v.batchID);
    const metaDigest = spool.metaDigest(meta);
    if (this.uploading.has(id)) {
      await spool.discard(r);
      throw new ApiError(409, 'job_in_progress', `job ${id} is being uploaded by another request`);
    }
    this.uploading.add(id);
    try {
      const now = new Date().toISOString();
      const fields = {
        id,
        ...meta,
        contentType: v.contentType ?? sniff(r.head),
        owner,
        metaDigest,
        state: admission.state,
        reason: admission.reason,
        warnings: [],
        attempts: 0,
        createdAt: now,
        updatedAt: now,
      };
      const job = await spool.accept(fields, r).catch((err) => {
        // The journal append met a full disk: the upload is undone, and the client hears 507 like any other.
        if (err?.code === 'insufficient_storage') throw new ApiError(507, 'insufficient_storage', err.message);
        // Cluster mode: another node accepted the same jobID at the same moment; answer as for any repeat.
        if (err?.code === 'job_exists' && spool.get(id)) return { repeat: sameJob(spool.get(id)!, digest, metaDigest) };
        throw err;
      });
      if ('repeat' in job) return { job: job.repeat, created: false };
      if (job.state === 'queued') this.deps.enqueue(job);
      else await batches.arrived(job);
      this.deps.counted?.(job);
      this.deps.log.info({ jobID: job.id, printerId: job.printerId, bytes: job.size, state: job.state }, 'job accepted');
      return { job, created: true };
    } finally {
      this.uploading.delete(id);
    }
  }
}
