// Batch records in cluster mode: one sealed key per batch in a replicated JetStream key-value bucket instead of
// spool/batches.log, so a batch opened on one node is known to every node (admission, release, contiguity).
// Every change is a compare-and-set on the key's revision, so two nodes changing one batch never lose a change.
import { randomUUID } from 'node:crypto';
import type { KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';
import type { BatchJournal, BatchRecord } from '../queue/batches.js';
import { openRecord, sealRecord } from '../spool/seal.js';
import { casPut, isWrongSequence, retried, transient } from './nats.js';

export const BATCHES_BUCKET = 'printbox-batches';

/** Batch ids are the client's strings: the key is their base64url form (KV keys allow few characters). */
const keyOf = (batchID: string) => Buffer.from(batchID).toString('base64url') || '_';

/** What one key holds (sealed): the record, and the id of the write that made it (a retried write finds its own). */
type Stored = BatchRecord & { wid?: string };

export class KvBatchJournal implements BatchJournal {
  bytes = 0;
  private kv!: KV;
  private watch?: QueuedIterator<KvEntry>;
  /** Each key's latest record and revision as this node knows them: the base of the next compare-and-set. */
  private known = new Map<string, { b: BatchRecord; revision: number; wid?: string }>();
  /** The highest revision the watch delivered (see caughtUp). */
  private watchRev = 0;
  private initial = true;

  constructor(private nc: NatsConnection, private key: Uint8Array, private replicas: number, private onRemote: (b: BatchRecord) => void) {}

  /** Takes an entry in if it is newer than what this node knows, and returns its record (else undefined). */
  private take(e: KvEntry): BatchRecord | undefined {
    if (e.operation !== 'PUT' || (this.known.get(e.key)?.revision ?? 0) >= e.revision) return undefined;
    const { wid, ...b } = JSON.parse(openRecord(Buffer.from(e.value), this.key).toString('utf8')) as Stored;
    this.known.set(e.key, { b, revision: e.revision, wid });
    return b;
  }

  /** Every batch the cluster holds, then every change another node makes (through onRemote). */
  async load(onRecord: (b: BatchRecord) => void): Promise<number> {
    const js = this.nc.jetstream({ timeout: 10000 });
    this.kv = await retried(() => js.views.kv(BATCHES_BUCKET, { replicas: this.replicas, history: 1 }));
    let n = 0;
    let ready!: () => void;
    const done = new Promise<void>((r) => (ready = r));
    this.watch = await this.kv.watch({ key: '>', initializedFn: () => ready() });
    void (async () => {
      for await (const e of this.watch!) {
        this.watchRev = Math.max(this.watchRev, e.revision);
        const b = this.take(e); // this node's own writes are known already: their echoes are skipped here
        if (!b) continue;
        if (this.initial) {
          onRecord(b);
          n++;
        } else this.onRemote(b);
      }
    })();
    await done;
    this.initial = false;
    return n;
  }

  /** Resolves once the watch has delivered every batch record the bucket held when called. */
  async caughtUp(withinMs = 10000): Promise<void> {
    const jsm = await this.nc.jetstreamManager({ timeout: 5000 });
    const last = (await jsm.streams.info(`KV_${BATCHES_BUCKET}`)).state.last_seq;
    const deadline = Date.now() + withinMs;
    while (this.watchRev < last) {
      if (Date.now() > deadline) throw new Error(`the batch records are still arriving (${this.watchRev} of ${last})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async open(): Promise<void> {}

  /** Only through change(): a plain put would be last-writer-wins. */
  async append(b: BatchRecord): Promise<void> {
    await this.change(b.batchID, () => b);
  }

  /**
   * Compare-and-set: `fn` runs on the latest record this node knows, and the write expects that record's revision
   * (create() when there is none). Another node's write in between makes it fail: the newer record is read and
   * `fn` runs again on it. A write whose answer was lost (a timeout in a leader election) is found by its id.
   */
  async change(batchID: string, fn: (cur: BatchRecord | undefined) => BatchRecord | null, withinMs = 15000): Promise<BatchRecord | null> {
    const key = keyOf(batchID);
    const deadline = Date.now() + withinMs;
    for (let attempt = 0; ; attempt++) {
      const base = this.known.get(key);
      const next = fn(base?.b);
      if (!next) return null;
      const wid = randomUUID();
      const value = sealRecord(Buffer.from(JSON.stringify({ ...next, wid })), this.key);
      try {
        const revision = await casPut(this.nc, BATCHES_BUCKET, key, value, base ? base.revision : 0, 10000);
        if (revision > (this.known.get(key)?.revision ?? 0)) this.known.set(key, { b: next, revision, wid });
        return next;
      } catch (err) {
        const refused = isWrongSequence(err);
        if ((!refused && !transient(err)) || Date.now() > deadline) throw err;
        const e = await retried(() => this.kv.get(key), Math.max(1000, deadline - Date.now())).catch(() => null);
        if (e?.operation === 'PUT') {
          if ((this.known.get(key)?.revision ?? 0) < e.revision) {
            const b = this.take(e)!;
            if (this.known.get(key)!.wid === wid) return next; // our own write had landed
            this.onRemote(b);
          } else if (this.known.get(key)?.wid === wid) return next;
        }
        if (!refused) await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1000)));
      }
    }
  }

  async compact(): Promise<void> {}

  async close(): Promise<void> {
    this.watch?.stop();
  }
}
