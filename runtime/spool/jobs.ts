// Job records and states: the vocabulary shared by the spool, the queue and the API.
import type { ContentType, JobOptions } from '../../drivers/contract-types.js'; // no Node types: web/ imports this file's types

export const JOB_STATES = ['received', 'waiting-for-batch', 'queued', 'sending', 'sent', 'confirmed', 'held', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINAL_STATES: ReadonlySet<JobState> = new Set(['sent', 'confirmed', 'failed', 'cancelled']);

export interface JobRecord {
  id: string;
  seq: number; // acceptance order across the appliance; the queue's order within a printer
  printerId: string;
  title: string;
  user: string;
  contentType: ContentType;
  options: JobOptions;
  statusURL?: string;
  batchID?: string;
  owner: string; // id of the token that posted it ('local' for the admin socket)
  size: number;
  digest: string; // keyed hash of the document (idempotency), never the plain SHA-256; '' when printbox chose the ID
  metaDigest: string; // keyed hash of the metadata (idempotency)
  state: JobState;
  reason?: string;
  warnings: string[];
  attempts: number;
  nextAttemptAt?: string;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  hasDocument: boolean;
  inline?: boolean; // the sealed document is inside the journal record (small documents), not in docs/
  queuePos?: number; // place in the printer's FIFO when it differs from seq (batch release)
  replayOf?: string; // the job this one reprints (batch replay)
  callback?: CallbackOutcome; // what became of the statusURL callback; absent while it is due
  pages?: number; // pages printed: the document's (selected) pages × copies, once known
  sheets?: number; // sheets of paper: pages, or half of them (rounded up per copy) when duplex
}

/** How the statusURL callback of a finished job ended. */
export interface CallbackOutcome {
  result: 'delivered' | 'refused' | 'gave-up';
  attempts: number;
  at: string;
}

export function isFinal(state: JobState): boolean {
  return FINAL_STATES.has(state);
}

/**
 * What a change does to a job's record in every spool backend: a job that becomes final is stamped finishedAt,
 * and a final job drops its document unless it keeps it (keepDocument; batch members keep theirs for replay
 * until the batch's retention time passes). Changes `job` in place.
 */
export function settleChange(prev: JobRecord, job: JobRecord, keepDocument = false): { becameFinal: boolean; dropDoc: boolean } {
  const becameFinal = isFinal(job.state) && !isFinal(prev.state);
  if (becameFinal) job.finishedAt = job.updatedAt;
  const dropDoc = isFinal(job.state) && job.hasDocument && !keepDocument && !job.batchID;
  if (dropDoc) job.hasDocument = false;
  return { becameFinal, dropDoc };
}

/** The public view of a job (what the API returns). */
export function jobView(j: JobRecord) {
  return {
    jobID: j.id,
    state: j.state,
    printer: j.printerId,
    title: j.title,
    user: j.user,
    contentType: j.contentType,
    options: j.options,
    size: j.size,
    batchID: j.batchID,
    statusURL: j.statusURL,
    reason: j.reason,
    warnings: j.warnings,
    attempts: j.attempts,
    nextAttemptAt: j.nextAttemptAt,
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
    finishedAt: j.finishedAt,
    replayOf: j.replayOf,
    callback: j.callback,
    pages: j.pages,
    sheets: j.sheets,
  };
}

export type JobView = ReturnType<typeof jobView>;
