// The replicated spool (cluster mode): job records in a JetStream key-value bucket, large sealed documents in a
// JetStream object store, both replicated (R3); every node mirrors all records in memory through a watch.
import fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { JetStreamClient, KV, KvEntry, NatsConnection, ObjectStore, PubAck, QueuedIterator } from 'nats';
import { LocalSpool, SpoolError } from '../spool/local-spool.js';
import { Opener, openRecord, openSealed, sealRecord } from '../spool/seal.js';
import { isFinal, settleChange, type JobRecord } from '../spool/jobs.js';
import { ALLOC_GAP, type JobPage, type JobQuery, type NewJob, type Received, type ReceiveOptions, type Spool, type UpdateOptions } from '../spool/contract.js';
import { callbackDue, countByState, pageInMemory } from '../spool/query.js';
import { isWrongSequence, publishAcked, retried } from './nats.js';

export const JOBS_BUCKET = 'printbox-jobs';
export const DOCS_BUCKET = 'printbox-docs';
/** A sealed document up to this size rides inside its job's record (one replicated write per accept). */
const INLINE_MAX = 64 * 1024;

/** What one key of the jobs bucket holds (sealed with the cluster key): the record and where its document is. */
interface Stored {
  job: JobRecord;
  doc?: string; // the sealed document itself (base64), small documents
  obj?: string; // name of the sealed document in the object store, large ones
  acceptId?: string; // set by the accept, kept by every later write: tells our own retried accept from another node's repeat
  wid?: string; // this write's id: tells our own write that landed (its answer lost) from another node's
}

export interface JetStreamSpoolOptions {
  nc: NatsConnection;
  /** The cluster key: the same on every node (documents and records are sealed with it before they leave). */
  key: Uint8Array;
  /** Local scratch for uploads being sealed (this node only; removed at start). */
  stagingDir: string;
  historyLimit: number;
  replicas: number;
  /** A change made by another node (or a node before a restart) has arrived: the queue and batches follow it. */
  onRemote?(job: JobRecord, prev: JobRecord | undefined): void;
  /** A record was removed (history trimmed by another node). */
  onRemoved?(id: string): void;
}

export class JetStreamSpool implements Spool {
  private js: JetStreamClient;
  private kv!: KV;
  private os!: ObjectStore;
  private staging: LocalSpool;
  private jobs = new Map<string, JobRecord>();
  private docs = new Map<string, Buffer>(); // unfinished jobs' small sealed documents
  private objs = new Map<string, string>(); // job id → object name of its large sealed document
  private finished: string[] = [];
  private lastRev = 0;
  /** The highest revision the watch delivered: own acknowledgements do not count (they skip over other writes). */
  private watchRev = 0;
  private allocated = 0;
  private watch?: QueuedIterator<KvEntry>;
  /** Own writes not yet acknowledged, per job: the watch's echoes of older writes must not undo them. */
  private pending = new Map<string, number>();
  private deferred = new Map<string, KvEntry>();
  /** The revision of each record as this node last saw it (applied, or its own write acknowledged): the fence. */
  private revs = new Map<string, number>();
  /** Each job's writes, one after the other: a write expects the revision its predecessor got. */
  private chains = new Map<string, Promise<unknown>>();
  private acceptIds = new Map<string, string>();

  constructor(private opts: JetStreamSpoolOptions) {
    this.js = opts.nc.jetstream({ timeout: 10000 });
    // Uploads are sealed by the same code as on one box, into this node's scratch dir; only sealed bytes leave.
    this.staging = new LocalSpool({ dataDir: opts.stagingDir, key: opts.key, historyLimit: 0, preallocateJournal: false });
  }

  private subject(id: string): string {
    return `$KV.${JOBS_BUCKET}.${id}`;
  }

  async open(): Promise<void> {
    await fs.mkdir(this.opts.stagingDir, { recursive: true, mode: 0o700 });
    await this.staging.open();
    this.kv = await retried(() => this.js.views.kv(JOBS_BUCKET, { replicas: this.opts.replicas, history: 1 }));
    this.os = await retried(() => this.js.views.os(DOCS_BUCKET, { replicas: this.opts.replicas }));
    let ready!: () => void;
    const initialised = new Promise<void>((r) => (ready = r));
    this.watch = await this.kv.watch({ key: '>', initializedFn: () => ready() });
    void (async () => {
      for await (const e of this.watch!) this.apply(e, true);
    })();
    await initialised;
    const byFinish = [...this.jobs.values()].filter((j) => isFinal(j.state)).sort((a, b) => a.seq - b.seq);
    this.finished = byFinish.map((j) => j.id);
  }

  /** Resolves once every record the stream held when called has been seen here (a takeover waits for it). */
  async caughtUp(withinMs = 10000): Promise<void> {
    const jsm = await this.opts.nc.jetstreamManager({ timeout: 5000 });
    const last = (await jsm.streams.info(`KV_${JOBS_BUCKET}`)).state.last_seq;
    const deadline = Date.now() + withinMs;
    while (this.watchRev < last) {
      if (Date.now() > deadline) throw new Error(`the job records are still arriving (${this.watchRev} of ${last})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    this.watch?.stop();
    await Promise.allSettled([...this.writes]);
    await this.staging.close();
  }

  /** One entry of the bucket, seen through the watch (all of them at start, then every change). */
  private apply(e: KvEntry, fromWatch = false): void {
    this.lastRev = Math.max(this.lastRev, e.revision);
    if (fromWatch) this.watchRev = Math.max(this.watchRev, e.revision);
    const id = e.key;
    if (this.pending.get(id)) {
      // Applied once this node's own writes to the job are acknowledged (if still newer than them).
      if ((this.deferred.get(id)?.revision ?? 0) < e.revision) this.deferred.set(id, e);
      return;
    }
    if ((this.revs.get(id) ?? 0) >= e.revision) return; // the echo of our own write
    this.revs.set(id, e.revision);
    if (e.operation !== 'PUT') {
      this.forget(id);
      this.opts.onRemoved?.(id);
      return;
    }
    let stored: Stored;
    try {
      stored = JSON.parse(openRecord(Buffer.from(e.value), this.opts.key).toString('utf8'));
    } catch {
      return; // not sealed with our key: a misconfigured node; the cluster key check at start reports it
    }
    const job = stored.job;
    if (stored.acceptId) this.acceptIds.set(id, stored.acceptId);
    job.seq ??= e.revision; // a job's position is the revision of its first record (set by the accept)
    const prev = this.jobs.get(id);
    this.jobs.set(id, job);
    if (stored.doc && job.hasDocument) this.docs.set(id, Buffer.from(stored.doc, 'base64'));
    else this.docs.delete(id);
    if (stored.obj && job.hasDocument) this.objs.set(id, stored.obj);
    else this.objs.delete(id);
    if (isFinal(job.state) && !(prev && isFinal(prev.state))) this.retire(id, false);
    this.opts.onRemote?.(job, prev);
  }

  private forget(id: string): void {
    this.jobs.delete(id);
    this.acceptIds.delete(id);
    this.revs.delete(id);
    this.docs.delete(id);
    this.objs.delete(id);
  }

  private writes = new Set<Promise<unknown>>();

  /**
   * Writes a job's whole record (with its document's place) and waits for the replicated acknowledgement.
   * Fenced: the write is refused (job_changed) when the record moved on since this node last saw it. A node
   * that lost its printer's lease, or whose late write arrives after a reconnect, cannot undo what the node now
   * driving the printer recorded (a job marked sent, then set back to queued by a stale write, would print twice).
   */
  private write(job: JobRecord, first?: string): Promise<PubAck> {
    const id = job.id;
    // A new job's record has no seq: the revision its write gets is its position (see apply).
    if (first) this.acceptIds.set(id, first);
    const wid = randomUUID();
    const stored: Stored = { job: first ? { ...job, seq: undefined as unknown as number } : job, doc: job.hasDocument ? this.docs.get(id)?.toString('base64') : undefined, obj: job.hasDocument ? this.objs.get(id) : undefined, acceptId: this.acceptIds.get(id), wid };
    const data = sealRecord(Buffer.from(JSON.stringify(stored)), this.opts.key);
    this.pending.set(id, (this.pending.get(id) ?? 0) + 1);
    const before = this.chains.get(id) ?? Promise.resolve();
    const p = before.catch(() => {}).then(() => this.publish(id, data, wid, first));
    this.chains.set(id, p);
    this.writes.add(p);
    const done = () => {
      this.writes.delete(p);
      if (this.chains.get(id) === p) this.chains.delete(id);
      const n = this.pending.get(id)! - 1;
      if (n) return void this.pending.set(id, n);
      this.pending.delete(id);
      const d = this.deferred.get(id);
      this.deferred.delete(id);
      if (d) this.apply(d);
    };
    p.then(done, done);
    return p;
  }

  private unseal(e: KvEntry): Stored | undefined {
    return e.operation === 'PUT' ? (JSON.parse(openRecord(Buffer.from(e.value), this.opts.key).toString('utf8')) as Stored) : undefined;
  }

  private async publish(id: string, data: Uint8Array, wid: string, first?: string): Promise<PubAck> {
    const expected = first ? 0 : this.revs.get(id);
    const landed = (seq: number) => {
      this.revs.set(id, Math.max(this.revs.get(id) ?? 0, seq));
      this.lastRev = Math.max(this.lastRev, seq);
    };
    try {
      const ack = await publishAcked(this.js, this.subject(id), data, { msgID: first ? `accept.${id}` : wid, ...(expected !== undefined && { expect: { lastSubjectSequence: expected } }) });
      landed(ack.seq);
      return ack;
    } catch (err) {
      if (!isWrongSequence(err)) throw err;
      const e = await this.kv.get(id).catch(() => null);
      // A retry after a timeout whose first try did land meets its own write: that is success, not a conflict.
      const cur = e ? this.unseal(e) : undefined;
      if (e && (cur?.wid === wid || (first && cur?.acceptId === first))) {
        landed(e.revision);
        return { seq: e.revision, duplicate: true, stream: '', domain: '' } as PubAck;
      }
      if (first) {
        if (this.acceptIds.get(id) === first) this.acceptIds.delete(id);
        throw err;
      }
      // The newer record replaces this node's view once its writes are done.
      if (e && (this.deferred.get(id)?.revision ?? 0) < e.revision) this.deferred.set(id, e);
      throw new SpoolError('job_changed', `job ${id} was changed on another node; this change was not recorded`);
    }
  }

  receive(source: Readable, maxBytes: number, opts?: ReceiveOptions): Promise<Received> {
    return this.staging.receive(source, maxBytes, opts);
  }

  digestOf(r: Received): Promise<string> {
    return this.staging.digestOf(r);
  }

  discard(r: Received): Promise<void> {
    return this.staging.discard(r);
  }

  metaDigest(meta: object): string {
    return this.staging.metaDigest(meta);
  }

  /** A large sealed upload goes to the object store under a name of its own (two nodes racing never share one). */
  private async upload(r: Received): Promise<string> {
    const name = `${randomUUID()}.sealed`;
    const source = r.tmp ? createReadStream(r.tmp) : Readable.from([r.sealed!]);
    await this.os.put({ name }, Readable.toWeb(source) as ReadableStream<Uint8Array>);
    return name;
  }

  /**
   * 201's promise: the sealed document and then the record are in JetStream with the stream's replication.
   * The record's write carries the job id as message id and "no earlier record" as its condition: a repeat
   * on another node, even at the same moment, is refused (`job_exists`) instead of making a second job.
   */
  async accept(fields: NewJob, r: Received): Promise<JobRecord> {
    const job = { ...fields, seq: 0, size: r.size, digest: r.digest ?? '', hasDocument: true } as JobRecord;
    const small = r.sealed && r.sealed.length <= INLINE_MAX;
    let obj: string | undefined;
    try {
      if (small) this.docs.set(job.id, r.sealed!);
      else this.objs.set(job.id, (obj = await this.upload(r)));
      await this.firstWrite(job);
    } catch (err) {
      this.docs.delete(job.id);
      this.objs.delete(job.id);
      if (obj) await this.os.delete(obj).catch(() => {});
      if (isWrongSequence(err)) {
        await this.refresh(job.id);
        throw new SpoolError('job_exists', `job ${job.id} was accepted by another node at the same time`);
      }
      throw err;
    } finally {
      await this.staging.discard(r);
    }
    this.jobs.set(job.id, job);
    return job;
  }

  /** Reads one record straight from the bucket (a race lost to another node: its record may not be here yet). */
  private async refresh(id: string): Promise<void> {
    const e = await this.kv.get(id).catch(() => null);
    if (e) this.apply(e);
  }

  allocSeq(): number {
    // Positions between the last revision seen and the next: every job accepted later (a higher revision) goes
    // behind them. Each placed job is then written (one revision each), so the steps never reach the next integer.
    this.allocated = Math.max(this.allocated, this.lastRev) + ALLOC_GAP;
    return this.allocated;
  }

  async copy(rec: JobRecord, documentOf: string): Promise<JobRecord> {
    const job: JobRecord = { ...rec, hasDocument: true };
    const doc = this.docs.get(documentOf);
    const obj = this.objs.get(documentOf);
    if (doc) this.docs.set(job.id, doc);
    else if (obj) this.objs.set(job.id, await this.upload({ sealed: await this.sealedObject(obj), size: 0, digest: '', head: Buffer.alloc(0) }));
    else throw new SpoolError('job_not_found', `job ${documentOf} has no document`);
    try {
      await this.firstWrite(job);
    } catch (err) {
      if (!isWrongSequence(err)) throw err;
      await this.refresh(job.id); // (a batch replay's copy another node made first: this node takes it in)
      throw new SpoolError('job_exists', `job ${job.id} was made by another node at the same time`);
    }
    this.jobs.set(job.id, job);
    return job;
  }

  /**
   * A job's first record. Its message id is the job id, so within JetStream's dedup window a repeat is answered
   * as a duplicate (ours, when our own retry after a timeout was that repeat: told apart by acceptId); after
   * the window, "no earlier record" (expected last subject sequence 0) refuses it. Either way: job_exists.
   */
  private async firstWrite(job: JobRecord): Promise<void> {
    const acceptId = randomUUID();
    const ack = await this.write(job, acceptId);
    if (ack.duplicate) {
      const e = await this.kv.get(job.id);
      // acceptId rides along in every later write of the job, so this holds even if a driver already updated it.
      if ((e && this.unseal(e))?.acceptId !== acceptId) {
        if (this.acceptIds.get(job.id) === acceptId) this.acceptIds.delete(job.id);
        this.revs.delete(job.id); // that revision is the other node's record: this node must still take it in
        throw Object.assign(new Error('duplicate job id'), { api_error: { err_code: 10071 } });
      }
    }
    job.seq = ack.seq;
  }

  get(id: string): JobRecord | undefined {
    return this.jobs.get(id);
  }

  records(): IterableIterator<JobRecord> {
    return this.jobs.values();
  }

  all(): JobRecord[] {
    return [...this.jobs.values()].sort((a, b) => a.seq - b.seq);
  }

  live(): JobRecord[] {
    return this.all().filter((j) => !isFinal(j.state));
  }

  // Every node holds the cluster's kept records in memory (the watch), so listings are in-memory pages.
  async list(q: JobQuery): Promise<JobPage> {
    return pageInMemory(this.jobs.values(), q);
  }

  counts(): Partial<Record<string, number>> {
    return countByState(this.jobs.values());
  }

  async callbacksDue(sinceMs: number): Promise<JobRecord[]> {
    return this.all().filter((j) => callbackDue(j, sinceMs));
  }

  private async sealedObject(name: string): Promise<Buffer> {
    const res = await this.os.get(name);
    if (!res) throw new SpoolError('job_not_found', 'the document is gone from the cluster store');
    const parts: Buffer[] = [];
    for await (const c of res.data) parts.push(Buffer.from(c));
    if (await res.error) throw await res.error;
    return Buffer.concat(parts);
  }

  async readDocument(id: string): Promise<Buffer[]> {
    const doc = this.docs.get(id);
    if (doc) return openSealed(doc, this.opts.key);
    const obj = this.objs.get(id);
    if (!obj) throw new SpoolError('job_not_found', `job ${id} has no document`);
    return openSealed(await this.sealedObject(obj), this.opts.key);
  }

  openDocument(id: string): Readable {
    return Readable.from(this.readPlain(id), { objectMode: false, highWaterMark: 1 });
  }

  private async *readPlain(id: string): AsyncGenerator<Buffer> {
    const doc = this.docs.get(id);
    if (doc) return yield* openSealed(doc, this.opts.key);
    const obj = this.objs.get(id);
    if (!obj) throw new SpoolError('job_not_found', `job ${id} has no document`);
    const res = await this.os.get(obj);
    if (!res) throw new SpoolError('job_not_found', 'the document is gone from the cluster store');
    const opener = new Opener(this.opts.key);
    for await (const c of res.data) yield* opener.push(Buffer.from(c));
    const err = await res.error;
    if (err) throw err;
    opener.end();
  }

  private merged(id: string, patch: Partial<JobRecord>): { prev: JobRecord; job: JobRecord } {
    const prev = this.jobs.get(id);
    if (!prev) throw new SpoolError('job_not_found', `no job ${id}`);
    return { prev, job: { ...prev, ...patch, updatedAt: new Date().toISOString() } };
  }

  async update(id: string, patch: Partial<JobRecord>, opts: UpdateOptions = {}): Promise<JobRecord> {
    const { prev, job } = this.merged(id, patch);
    const { becameFinal, dropDoc } = settleChange(prev, job, opts.keepDocument);
    const obj = dropDoc ? this.objs.get(id) : undefined;
    this.jobs.set(id, job);
    const written = this.write(job);
    if (opts.durable ?? true) await written;
    else written.catch(() => {}); // as on one box: a lost non-durable write costs at most a re-send
    if (dropDoc) {
      this.docs.delete(id);
      this.objs.delete(id);
      if (obj) {
        const rm = this.os.delete(obj);
        if (opts.lazyRemoval) rm.catch(() => {});
        else await rm;
      }
    }
    if (becameFinal) this.retire(id, true);
    return job;
  }

  updateNow(id: string, patch: Partial<JobRecord>): JobRecord {
    const { job } = this.merged(id, patch);
    this.jobs.set(id, job);
    this.write(job).catch(() => {});
    return job;
  }

  async dropDocument(id: string): Promise<void> {
    const job = this.jobs.get(id);
    if (!job?.hasDocument) return;
    const obj = this.objs.get(id);
    this.docs.delete(id);
    this.objs.delete(id);
    await this.update(id, { hasDocument: false }, { keepDocument: true });
    if (obj) await this.os.delete(obj);
  }

  /** The history window: the node that finished a job also removes the oldest finished record from the bucket. */
  private retire(id: string, mine: boolean): void {
    this.finished.push(id);
    while (this.finished.length > this.opts.historyLimit) {
      const old = this.finished.shift()!;
      const j = this.jobs.get(old);
      if (!j || !isFinal(j.state) || j.hasDocument) continue;
      this.forget(old);
      if (mine) this.kv.purge(old).catch(() => {});
    }
  }

  stats() {
    return { jobs: this.jobs.size, journalBytes: 0 };
  }
}
