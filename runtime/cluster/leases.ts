// Who drives which printer, and whether this node may act at all: per-printer leases in a JetStream key-value
// bucket (revision-conditional renewals, expiry by the bucket's TTL on the servers' clocks) and a heartbeat
// that doubles as the quorum probe (a node whose writes are not acknowledged by a quorum is not ready).
import type { KV, NatsConnection } from 'nats';
import { casDelete, casPut, isWrongSequence, retried } from './nats.js';

export const LEASES_BUCKET = 'printbox-leases';
export const NODES_BUCKET = 'printbox-nodes';

export interface NodeInfo {
  name: string;
  url?: string;
  startedAt: string;
  at: string; // last heartbeat (the node's clock; only shown, never compared)
  drives: string[]; // printer ids this node holds the lease of
}

/** How a node looks from here: heard lately, silent for longer than a lease (it can hold none), or gone. */
export type NodeState = 'up' | 'silent' | 'gone';

export interface LeaseOptions {
  nc: NatsConnection;
  node: string;
  url?: string;
  replicas: number;
  /** A lease lapses this long after its last renewal (the bucket's TTL). */
  leaseMs: number;
  /** The printers to drive (all of them: each node competes for every printer). */
  printers(): string[];
  /** This node now holds the printer's lease (after a takeover: another node may have been sending). */
  onGained(printerId: string, previous: string | undefined): void;
  /** This node no longer holds it: stop sending to it now. */
  onLost(printerId: string): void;
  /** Nothing is being sent to the printer right now (a printer handed to another node goes between two jobs). */
  idle(printerId: string): boolean;
  log: { info(o: object, m?: string): void; warn(o: object, m?: string): void };
}

interface Held {
  revision: number;
  renewedAt: number; // local monotonic-ish time of the last acknowledged renewal
}

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

export class Leases {
  private leases!: KV;
  private nodes!: KV;
  private held = new Map<string, Held>();
  private vacantSince = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private ticking: Promise<void> | null = null;
  private lastQuorum = 0;
  private lastError = 'not started';
  private stopped = false;
  private readonly startedAt = new Date().toISOString();
  /** Nodes seen in the last heartbeat round. */
  private liveNodes: NodeInfo[] = [];
  private watching?: { stop(): void };

  constructor(private opts: LeaseOptions) {}

  /** Renewals run every fifth of the lease: a holder that cannot renew stops at 3/5 of it, well before anyone may take over. */
  private get every(): number {
    return Math.max(100, Math.round(this.opts.leaseMs / 5));
  }

  async start(): Promise<void> {
    const js = this.opts.nc.jetstream({ timeout: Math.max(1000, this.every) });
    const js10 = this.opts.nc.jetstream({ timeout: 10000 });
    // The TTL is the lease: the servers drop a lease nobody renewed, so a dead holder's clock never matters.
    await retried(() => js10.views.kv(LEASES_BUCKET, { replicas: this.opts.replicas, history: 1, ttl: this.opts.leaseMs }));
    await retried(() => js10.views.kv(NODES_BUCKET, { replicas: this.opts.replicas, history: 1, ttl: this.opts.leaseMs * 2 }));
    this.leases = await js.views.kv(LEASES_BUCKET, { bindOnly: true });
    this.nodes = await js.views.kv(NODES_BUCKET, { bindOnly: true });
    await this.watchNodes();
    await this.tick();
    this.timer = setInterval(() => {
      if (!this.ticking) this.ticking = this.tick().finally(() => (this.ticking = null));
    }, this.every);
  }

  /** Hands every lease back so that another node takes the printers over at once (a clean stop). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.watching?.stop();
    await this.ticking;
    for (const [printerId, h] of this.held) {
      this.held.delete(printerId);
      this.opts.onLost(printerId);
      await casDelete(this.opts.nc, LEASES_BUCKET, printerId, h.revision).catch(() => {});
    }
    await this.nodes.delete(this.opts.node).catch(() => {});
  }

  /** Ready: the last heartbeat was acknowledged by a quorum recently enough. */
  ready(): boolean {
    return !this.stopped && Date.now() - this.lastQuorum < this.every * 3;
  }

  reason(): string {
    return this.ready() ? '' : `this node is cut off from the cluster's quorum (${this.lastError}); it accepts and prints nothing until it is back`;
  }

  /** May this node send to the printer now? Only while its lease was renewed within 3/5 of the lease time. */
  drives(printerId: string): boolean {
    const h = this.held.get(printerId);
    return !!h && Date.now() - h.renewedAt < this.every * 3;
  }

  nodeList(): NodeInfo[] {
    return this.liveNodes;
  }

  /** Printer id → the node that held its lease when last read (the previous holder, once it lapsed). */
  private owners = new Map<string, string>();
  owner(printerId: string): string | undefined {
    if (this.held.has(printerId)) return this.opts.node;
    return this.vacantSince.has(printerId) ? undefined : this.owners.get(printerId);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const info: NodeInfo = { name: this.opts.node, url: this.opts.url, startedAt: this.startedAt, at: new Date().toISOString(), drives: [...this.held.keys()] };
    try {
      await this.nodes.put(this.opts.node, enc(info));
      this.lastQuorum = Date.now();
    } catch (err) {
      this.lastError = (err as Error).message;
    }
    // Lost the quorum: every lease goes at once (they lapse on the servers anyway before anyone can take them).
    if (!this.ready()) {
      for (const printerId of [...this.held.keys()]) this.lose(printerId, 'no quorum');
      return;
    }
    this.readNodes();
    const printers = this.opts.printers();
    const fair = Math.ceil(printers.length / Math.max(1, this.liveNodes.length));
    await Promise.all(printers.map((p) => this.tend(p, fair)));
    for (const p of [...this.held.keys()]) if (!printers.includes(p)) this.lose(p, 'printer removed');
    await this.rebalance(fair);
  }

  /** Printers being handed to another node: no new job starts on them here; the lease goes once the current job ends. */
  private handing = new Set<string>();

  handingOver(printerId: string): boolean {
    return this.handing.has(printerId);
  }

  /**
   * The first node up takes every printer; when others join, a node over its fair share hands one printer at a
   * time over, between two jobs (never aborting one), so printing spreads without a job printed twice.
   */
  private async rebalance(fair: number): Promise<void> {
    for (const p of this.handing) {
      if (!this.held.has(p)) this.handing.delete(p);
      else if (this.opts.idle(p)) {
        this.handing.delete(p);
        this.vacantSince.set(p, Date.now()); // and wait two rounds before taking it back, so another node gets it
        await this.release(p);
      }
    }
    if (this.handing.size || this.held.size <= fair || this.liveNodes.length < 2) return;
    const busiest = Math.max(...this.liveNodes.map((n) => n.drives.length));
    const least = Math.min(...this.liveNodes.map((n) => n.drives.length));
    if (busiest - least < 2) return;
    const p = [...this.held.keys()].pop()!;
    this.handing.add(p);
    this.opts.log.info({ printerId: p, node: this.opts.node, fair }, 'handing a printer to a less busy node');
  }

  /** Heartbeats as they arrive (a watch): a node unheard for two lease times is gone (TTL expiry sends no event). */
  private heard = new Map<string, { info: NodeInfo; at: number }>();
  /** Nodes heard once and gone since (expired or stopped), kept so that the setup page can say so. */
  private gone = new Map<string, NodeInfo>();

  private forget(name: string): void {
    const h = this.heard.get(name);
    if (h) this.gone.set(name, h.info);
    this.heard.delete(name);
  }

  /** Every node this one has heard of, with how it looks from here now (the setup page's cluster view). */
  nodeStates(): { info: NodeInfo; state: NodeState }[] {
    const now = Date.now();
    const out: { info: NodeInfo; state: NodeState }[] = [];
    for (const h of this.heard.values()) {
      const age = now - h.at;
      out.push({ info: h.info, state: age > this.opts.leaseMs * 2 ? 'gone' : age > this.opts.leaseMs ? 'silent' : 'up' });
    }
    for (const [name, info] of this.gone) if (!this.heard.has(name)) out.push({ info, state: 'gone' });
    return out.sort((a, b) => a.info.name.localeCompare(b.info.name));
  }

  private readNodes(): void {
    const now = Date.now();
    for (const [name, h] of this.heard) if (now - h.at > this.opts.leaseMs * 2) this.forget(name);
    this.liveNodes = [...this.heard.values()].map((h) => h.info).sort((a, b) => a.name.localeCompare(b.name));
  }

  private async watchNodes(): Promise<void> {
    const w = await this.nodes.watch({ key: '>' });
    this.watching = w;
    void (async () => {
      for await (const e of w) {
        if (e.operation === 'PUT') {
          this.heard.set(e.key, { info: JSON.parse(new TextDecoder().decode(e.value)), at: Date.now() });
          this.gone.delete(e.key);
        } else this.forget(e.key);
      }
    })();
  }

  /** Renews a held lease, or takes a vacant one (a fair share at once; any vacant one after a second look). */
  private async tend(printerId: string, fair: number): Promise<void> {
    const h = this.held.get(printerId);
    const value = enc({ node: this.opts.node, at: new Date().toISOString() });
    if (h) {
      try {
        h.revision = await casPut(this.opts.nc, LEASES_BUCKET, printerId, value, h.revision, Math.max(1000, this.every));
        h.renewedAt = Date.now();
      } catch (err) {
        if (isWrongSequence(err)) this.lose(printerId, 'another node holds it');
        else if (!this.drives(printerId)) this.lose(printerId, (err as Error).message);
      }
      return;
    }
    try {
      const e = await this.leases.get(printerId);
      if (e && e.operation === 'PUT') {
        this.owners.set(printerId, JSON.parse(new TextDecoder().decode(e.value)).node);
        this.vacantSince.delete(printerId);
        return;
      }
      // Over its fair share, a node waits one more round so that a node with fewer printers gets it first.
      const since = this.vacantSince.get(printerId) ?? Date.now();
      this.vacantSince.set(printerId, since);
      if (this.held.size >= fair && Date.now() - since < this.every * 2) return;
      const revision = await casPut(this.opts.nc, LEASES_BUCKET, printerId, value, 0, Math.max(1000, this.every));
      this.vacantSince.delete(printerId);
      this.held.set(printerId, { revision, renewedAt: Date.now() });
      this.opts.log.info({ printerId, node: this.opts.node }, 'printer lease taken');
      this.opts.onGained(printerId, this.owners.get(printerId));
      this.owners.set(printerId, this.opts.node);
    } catch {
      /* another node was quicker, or no quorum: the next round looks again */
    }
  }

  /** Gives a lease back (a takeover that could not finish): another node, or this one later, takes it. */
  async release(printerId: string): Promise<void> {
    const h = this.held.get(printerId);
    if (!h) return;
    this.lose(printerId, 'released');
    await casDelete(this.opts.nc, LEASES_BUCKET, printerId, h.revision).catch(() => {});
  }

  private lose(printerId: string, why: string): void {
    if (!this.held.delete(printerId)) return;
    this.opts.log.warn({ printerId, node: this.opts.node, why }, 'printer lease lost');
    this.opts.onLost(printerId);
  }
}
