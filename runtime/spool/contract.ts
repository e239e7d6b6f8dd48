// The spool's interface: what intake, the queue and batches need of a job store. The local journal
// (local-spool.ts) is its first implementation; a replicated one must pass the same contract tests
// (test/spool-contract.ts).
import type { Readable } from 'node:stream';
import type { JobRecord, JobState } from './jobs.js';

/**
 * Two positions allocSeq() hands out on one node are at least this far apart (one box: 1; a cluster node: this
 * step between two revisions), so a batch can place all its members between its base position and the next one.
 */
export const ALLOC_GAP = 1 / 1024;

/** An upload sealed and fsync'd but not yet a job: accept() makes it one, discard() throws it away. */
export interface Received {
  /** The sealed upload in the backend's temp area, fsync'd; absent for a small document, whose sealed bytes are in `sealed`. */
  tmp?: string;
  /** A small document's whole sealed stream, never written to a file by receive(). */
  sealed?: Buffer;
  size: number;
  /**
   * Keyed digest of the plaintext: the same document gives the same digest (idempotent re-posts). Absent when
   * receive() was told no repeat can name the job (the appliance picks its ID): one pass less over the bytes.
   */
  digest?: string;
  /** The document's first bytes (content sniffing), kept in memory only. */
  head: Buffer;
}

/** A job's fields as intake hands them over; the spool adds its position, size, digest and document flag. */
export type NewJob = Omit<JobRecord, 'seq' | 'hasDocument' | 'size' | 'digest'>;

export interface ReceiveOptions {
  /** Compute the document's keyed digest while it streams in (default true); false when no jobID can repeat it. */
  digest?: boolean;
}

export interface UpdateOptions {
  /** Wait until the change is durable (default true). */
  durable?: boolean;
  /** A final state keeps the sealed document (batch members until their retention ends). */
  keepDocument?: boolean;
  /** A dropped document may be removed after the answer (delivery), not before it (cancel). */
  lazyRemoval?: boolean;
}

/** A page of jobs: filters, and a seq cursor (exclusive) in the direction of the listing. */
export interface JobQuery {
  printerId?: string;
  state?: JobState;
  /** Only jobs posted with this token (submit tokens see their own jobs). */
  owner?: string;
  /** Jobs with seq greater than this (ascending listings' cursor). */
  after?: number;
  /** Jobs with seq less than this (newest-first listings' cursor). */
  before?: number;
  newestFirst?: boolean;
  limit: number;
}

/** `nextCursor`: the seq of the last job returned when more match (pass it as `after`, or `before` when newest first). */
export interface JobPage {
  jobs: JobRecord[];
  nextCursor: number | null;
}

export interface Spool {
  /** Loads what the store holds, removes half-received uploads; call once before anything else. */
  open(): Promise<void>;
  close(): Promise<void>;

  // ---- intake: receive, then accept or discard
  /** Seals an upload as it streams in and makes it durable. Rejects with code `document_too_large` past maxBytes, `insufficient_storage` on a full disk. */
  receive(source: Readable, maxBytes: number, opts?: ReceiveOptions): Promise<Received>;
  /** The digest of an upload received without one (a jobID that arrived after the document): reads it back. */
  digestOf(r: Received): Promise<string>;
  discard(r: Received): Promise<void>;
  /** Keyed digest of a job's metadata, to tell a repeat from a conflict. */
  metaDigest(meta: object): string;
  /** Makes a received upload a job, durably: when this resolves, the job survives a crash. */
  accept(fields: NewJob, r: Received): Promise<JobRecord>;
  /** A new job that shares another job's sealed document (a batch replay). */
  copy(fields: JobRecord, documentOf: string): Promise<JobRecord>;

  // ---- reading
  /** Any job the store keeps, unfinished or in history (the local spool reads a history record from disk). */
  get(id: string): JobRecord | undefined;
  /** The jobs held in memory — every unfinished one, and finished ones still holding a document — in no particular order. */
  records(): IterableIterator<JobRecord>;
  /** The same jobs as records(), in acceptance order. Finished history is not here: see list(). */
  all(): JobRecord[];
  /** One page of every kept job (unfinished and history), filtered, in acceptance order or newest first. */
  list(q: JobQuery): Promise<JobPage>;
  /** Every kept job counted by state, without reading history records. */
  counts(): Partial<Record<string, number>>;
  /** Finished jobs (finishedAt >= sinceMs) with a statusURL and no callback outcome: sent again after a restart. */
  callbacksDue(sinceMs: number): Promise<JobRecord[]>;
  /** Unfinished jobs in acceptance order: what a restart re-queues. */
  live(): JobRecord[];
  /** The document as a verified plaintext stream (any size; nothing held whole). */
  openDocument(id: string): Readable;
  /** A small document read and authenticated whole, as plaintext chunks. */
  readDocument(id: string): Promise<Buffer[]>;
  /** The same without I/O when the backend holds the document in memory (else undefined): delivery starts in the same turn. */
  readDocumentNow?(id: string): Buffer[] | undefined;

  // ---- state
  update(id: string, patch: Partial<JobRecord>, opts?: UpdateOptions): Promise<JobRecord>;
  /** Changes a job at once and records it without waiting (for states a crash may lose). */
  updateNow(id: string, patch: Partial<JobRecord>): JobRecord;
  /** The next position in acceptance order (a batch release places its jobs with it); see ALLOC_GAP. */
  allocSeq(): number;

  // ---- purge
  /** Removes a job's sealed document (cancel, batch retention); the record stays. */
  dropDocument(id: string): Promise<void>;

  stats(): { jobs: number; journalBytes: number; historyJobs?: number; historyBytes?: number };
}
