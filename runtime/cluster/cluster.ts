// One node of a printbox cluster: its NATS connection, the cluster key, and the three shared things built on
// JetStream (the job spool, the configuration, the printer leases), handed to the appliance as one object.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { ClusterSettings } from '../system/config.js';
import type { State, StateData } from '../system/state.js';
import { writeFileAtomic } from '../system/fsutil.js';
import type { JobRecord } from '../spool/jobs.js';
import { connectCluster } from './nats.js';
import { JetStreamSpool, JOBS_BUCKET } from './jetstream-spool.js';
import { SharedState } from './shared-state.js';
import { Leases } from './leases.js';
import { KvBatchJournal } from './batch-records.js';
import type { BatchPeers, BatchRecord } from '../queue/batches.js';

export interface ClusterHooks {
  /** A job changed on another node. */
  onRemoteJob(job: JobRecord): void;
  /** The shared configuration changed on another node (before and after the change). */
  onRemoteState(before: StateData, after: StateData): void;
  printers(): string[];
  /** This node holds a printer's lease and its view of the jobs is caught up: re-queue its line. */
  takeOver(printerId: string, from: string): Promise<void>;
  /** Nothing is being sent to the printer right now. */
  idle(printerId: string): boolean;
  /** The printer's queue may run now. */
  wake(printerId: string): void;
  /** The lease is gone: stop sending to that printer now. */
  standDown(printerId: string): void;
}

/**
 * The key every node seals documents and records with before they leave it: `<data>/cluster.key` (0600), or
 * the systemd credential `printbox-cluster-key`. The first node makes one; `printbox cluster join` copies it.
 */
export async function loadClusterKey(dataDir: string): Promise<Buffer> {
  const cred = process.env.CREDENTIALS_DIRECTORY;
  if (cred) {
    const b = await fs.readFile(path.join(cred, 'printbox-cluster-key')).catch(() => null);
    if (b?.length === 32) return b;
  }
  const file = path.join(dataDir, 'cluster.key');
  try {
    const b = await fs.readFile(file);
    if (b.length !== 32) throw new Error(`${file} must be 32 bytes, found ${b.length}`);
    return b;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const b = randomBytes(32);
    await writeFileAtomic(file, b, 0o600);
    return b;
  }
}

export class Cluster {
  readonly node: string;
  readonly replicas: number;
  spool!: JetStreamSpool;
  state!: SharedState;
  leases!: Leases;
  private nc!: NatsConnection;
  private key!: Buffer;
  /** Printers whose lease this node holds and whose takeover (catch-up, re-queue) is done. */
  private driving = new Set<string>();
  private batchRecords?: KvBatchJournal;

  constructor(private settings: ClusterSettings, private dataDir: string, private log: Logger, private hooks: ClusterHooks) {
    this.node = settings.node ?? os.hostname();
    this.replicas = settings.replicas ?? 3;
  }

  /** Connects and loads the shared configuration and the job spool (not yet the leases: see start). */
  async open(local: State, historyLimit: number): Promise<void> {
    const key = (this.key = await loadClusterKey(this.dataDir));
    this.nc = await connectCluster(this.settings, `printbox ${this.node}`);
    this.state = new SharedState({ nc: this.nc, key, replicas: this.replicas, local, onRemote: (before, after) => this.hooks.onRemoteState(before, after) });
    await this.state.load();
    this.spool = new JetStreamSpool({
      nc: this.nc,
      key,
      stagingDir: path.join(this.dataDir, 'cluster-staging'),
      historyLimit,
      replicas: this.replicas,
      onRemote: (job) => this.hooks.onRemoteJob(job),
    });
    this.log.info({ node: this.node, servers: this.settings.servers, replicas: this.replicas }, 'cluster mode: jobs and configuration in NATS JetStream');
  }

  /** Where batch records live in the cluster (shared by every node); `onRemote` hears other nodes' changes. */
  batchJournal(onRemote: (b: BatchRecord) => void): KvBatchJournal {
    return (this.batchRecords = new KvBatchJournal(this.nc, this.key, this.replicas, onRemote));
  }

  /** What the batches need from the other nodes: a catch-up before Batch Open and Close, and one node for timers. */
  batchPeers(): BatchPeers {
    return {
      caughtUp: async () => {
        await Promise.all([this.spool.caughtUp(), this.batchRecords?.caughtUp()]);
      },
      timersHere: (printerId) => this.timersHere(printerId),
    };
  }

  /**
   * Timers of jobs bound for a printer fire on the node that drives it (it prints them, too); timers that name no
   * printer yet (a batch none of whose jobs has arrived) on the node that drives the first printer by id. With no
   * printer at all, on every ready node: their writes are compare-and-set, so only one change is made.
   */
  timersHere(printerId: string | undefined): boolean {
    const p = this.timersOf(printerId);
    return p === undefined ? this.ready() : this.drives(p);
  }

  /** The printer whose driving node fires the timers (and sends the callbacks) of jobs bound for `printerId`. */
  timersOf(printerId: string | undefined): string | undefined {
    const printers = this.hooks.printers();
    return printerId && printers.includes(printerId) ? printerId : [...printers].sort()[0];
  }

  /** Starts competing for printer leases (a serving node only). */
  async start(): Promise<void> {
    this.leases = new Leases({
      nc: this.nc,
      node: this.node,
      url: this.settings.url,
      replicas: this.replicas,
      leaseMs: this.settings.leaseMs ?? 5000,
      printers: () => this.hooks.printers(),
      idle: (printerId) => this.hooks.idle(printerId),
      log: this.log,
      onGained: (printerId, previous) => void this.gained(printerId, previous),
      onLost: (printerId) => {
        this.driving.delete(printerId);
        this.hooks.standDown(printerId);
      },
    });
    await this.leases.start();
  }

  private async gained(printerId: string, previous: string | undefined): Promise<void> {
    const started = Date.now();
    try {
      // Every record written before the lease was taken must be here before a job is sent: a job the last holder
      // finished but whose record had not arrived yet would otherwise print again.
      await this.spool.caughtUp();
      if (!this.leases.drives(printerId)) return;
      await this.hooks.takeOver(printerId, previous && previous !== this.node ? `node ${previous}` : 'another node');
      this.driving.add(printerId);
      this.hooks.wake(printerId);
      this.log.info({ printerId, node: this.node, previous, ms: Date.now() - started }, 'driving printer');
    } catch (err) {
      this.log.warn({ printerId, err: (err as Error).message }, 'printer takeover failed; the lease is given back');
      await this.leases.release(printerId);
    }
  }

  /** The dispatcher's gate: send to this printer only while holding its lease, after the takeover. */
  drives(printerId: string): boolean {
    return this.driving.has(printerId) && !!this.leases?.drives(printerId) && !this.leases.handingOver(printerId);
  }

  ready(): boolean {
    return !!this.leases?.ready() && !this.nc.isClosed();
  }

  reason(): string {
    return this.leases ? this.leases.reason() : 'this node is starting';
  }

  view(printers: { id: string; name: string }[]) {
    const nodes = this.leases?.nodeStates() ?? [];
    return {
      clustered: true,
      node: this.node,
      ready: this.ready(),
      reason: this.ready() ? undefined : this.reason(),
      replicas: this.replicas,
      // Gone nodes stay listed (state "gone", driving nothing: their leases have lapsed) until they are heard again.
      nodes: nodes.map(({ info: n, state }) => ({ name: n.name, url: n.url, state, startedAt: n.startedAt, lastSeen: n.at, drives: state === 'gone' ? [] : n.drives })),
      printers: printers.map((p) => ({ id: p.id, name: p.name, drivenBy: this.leases?.owner(p.id) ?? null })),
      bucket: JOBS_BUCKET,
    };
  }

  async close(): Promise<void> {
    await this.leases?.stop();
    this.state?.close(); // the spool is closed by the appliance, like any spool

    await this.nc?.drain().catch(() => {});
  }
}
