// Batch records in cluster mode: one sealed key per batch in a replicated JetStream key-value bucket instead of
// spool/batches.log, so a batch opened on one node is known to every node (admission, release, contiguity).
import type { KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';
import type { BatchJournal, BatchRecord } from '../queue/batches.js';
import { openRecord, sealRecord } from '../spool/seal.js';
import { retried } from './nats.js';

export const BATCHES_BUCKET = 'printbox-batches';

/** Batch ids are the client's strings: the key is their base64url form (KV keys allow few characters). */
const keyOf = (batchID: string) => Buffer.from(batchID).toString('base64url') || '_';

export class KvBatchJournal implements BatchJournal {
  bytes = 0;
  private kv!: KV;
  private watch?: QueuedIterator<KvEntry>;
  private own = new Set<number>(); // revisions of this node's own writes (their echoes are skipped)

  constructor(private nc: NatsConnection, private key: Uint8Array, private replicas: number, private onRemote: (b: BatchRecord) => void) {}

  private open1(e: KvEntry): BatchRecord | undefined {
    if (e.operation !== 'PUT') return undefined;
    return JSON.parse(openRecord(Buffer.from(e.value), this.key).toString('utf8'));
  }

  /** Every batch the cluster holds, then every change another node makes (through onRemote). */
  async load(onRecord: (b: BatchRecord) => void): Promise<number> {
    const js = this.nc.jetstream({ timeout: 10000 });
    this.kv = await retried(() => js.views.kv(BATCHES_BUCKET, { replicas: this.replicas, history: 1 }));
    let n = 0;
    let initial = true;
    let ready!: () => void;
    const done = new Promise<void>((r) => (ready = r));
    this.watch = await this.kv.watch({ key: '>', initializedFn: () => ready() });
    void (async () => {
      for await (const e of this.watch!) {
        if (this.own.delete(e.revision)) continue;
        const b = this.open1(e);
        if (!b) continue;
        if (initial) {
          onRecord(b);
          n++;
        } else this.onRemote(b);
      }
    })();
    await done;
    initial = false;
    return n;
  }

  async open(): Promise<void> {}

  async append(b: BatchRecord): Promise<void> {
    const rev = await this.kv.put(keyOf(b.batchID), sealRecord(Buffer.from(JSON.stringify(b)), this.key));
    this.own.add(rev);
  }

  async compact(): Promise<void> {}

  async close(): Promise<void> {
    this.watch?.stop();
  }
}
