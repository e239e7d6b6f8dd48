// The cluster's one configuration: printers, token hashes, settings and the setup page's password in one sealed
// key of a replicated JetStream key-value bucket; every node reads it from memory and changes it with a
// compare-and-set on its revision, so two nodes changing it at once never lose either change.
import type { KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';
import { State, type StateData } from '../system/state.js';
import { openRecord, sealRecord } from '../spool/seal.js';
import { casPut, isWrongSequence, retried } from './nats.js';

export const CONFIG_BUCKET = 'printbox-config';
const KEY = 'state';

export interface SharedStateOptions {
  nc: NatsConnection;
  key: Uint8Array;
  replicas: number;
  /** What this node had on its own disk: the first node of a cluster brings it in; later nodes adopt the cluster's. */
  local: State;
  /** Called after a change made on another node arrived, with the configuration before and after it. */
  onRemote?(before: StateData, after: StateData): void;
}

export class SharedState extends State {
  private kv!: KV;
  private current!: StateData;
  private revision = 0;
  private watch?: QueuedIterator<KvEntry>;
  private queue: Promise<void> = Promise.resolve();

  constructor(private opts: SharedStateOptions) {
    super('/nonexistent', opts.local.data.settings.name);
  }

  private seal(d: StateData): Uint8Array {
    return sealRecord(Buffer.from(JSON.stringify(d)), this.opts.key);
  }

  private take(e: KvEntry): void {
    if (e.operation !== 'PUT' || e.revision <= this.revision) return;
    this.current = JSON.parse(openRecord(Buffer.from(e.value), this.opts.key).toString('utf8'));
    this.revision = e.revision;
  }

  override async load(): Promise<void> {
    const js = this.opts.nc.jetstream({ timeout: 10000 });
    this.kv = await retried(() => js.views.kv(CONFIG_BUCKET, { replicas: this.opts.replicas, history: 5 }));
    const e = await retried(() => this.kv.get(KEY));
    if (e?.operation === 'PUT') this.take(e);
    else {
      try {
        this.revision = await casPut(this.opts.nc, CONFIG_BUCKET, KEY, this.seal(this.opts.local.data), 0, 10000);
        this.current = structuredClone(this.opts.local.data);
      } catch (err) {
        if (!isWrongSequence(err)) throw err;
        this.take((await this.kv.get(KEY))!); // another node seeded it first
      }
    }
    this.watch = await this.kv.watch({ key: KEY });
    void (async () => {
      for await (const w of this.watch!) {
        const [before, revision] = [this.current, this.revision];
        this.take(w);
        if (this.revision !== revision) this.opts.onRemote?.(before, this.current);
      }
    })();
  }

  override get data(): StateData {
    return this.current;
  }

  /** Applies `fn` to the latest cluster state and writes it only if nobody else wrote in between (else again). */
  override change(fn: (d: StateData) => void): Promise<void> {
    const run = async () => {
      for (let attempt = 0; attempt < 20; attempt++) {
        const next = structuredClone(this.current);
        fn(next);
        try {
          const rev = await casPut(this.opts.nc, CONFIG_BUCKET, KEY, this.seal(next), this.revision, 10000);
          if (rev > this.revision) {
            this.current = next;
            this.revision = rev;
          }
          return;
        } catch (err) {
          if (!isWrongSequence(err)) throw err;
          const e = await this.kv.get(KEY);
          if (e) this.take(e);
        }
      }
      throw new Error('the cluster configuration kept changing under this write; try again');
    };
    const p = this.queue.then(run);
    this.queue = p.catch(() => {});
    return p;
  }

  close(): void {
    this.watch?.stop();
  }
}
