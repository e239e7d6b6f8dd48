// Finds printers on the LAN by mDNS/DNS-SD (plus drivers' own discover()) and keeps one merged list with presence.
import { OWN_PRODUCT } from './printer-services.js';
import { EventEmitter } from 'node:events';
import type { FoundPrinter } from '../../drivers/contract.js';
import { openMdns, sameName, type MdnsPacket, type MdnsQuestion, type MdnsRecord, type MdnsSocket } from './mdns.js';
import {
  PRINTER_SERVICES,
  fromFound,
  groupByDevice,
  mergeDevice,
  parseTxt,
  serviceTypeOf,
  type DiscoveredPrinter,
  type PrinterServiceType,
  type ServiceRecord,
} from './merge.js';

export { adoptionFor, type DiscoveredPrinter, type PrinterUri } from './merge.js';

export type DiscoveryChange = { type: 'added' | 'updated' | 'gone' | 'removed'; printer: DiscoveredPrinter };

export interface DiscoveryOptions {
  /** Driver schemes this box has (registry.schemes()); `preferred` only picks among these. Default: all. */
  schemes?: readonly string[];
  /** Re-query interval once the start-up burst (0 s, 1 s, 3 s) is over. */
  requeryMs?: number;
  /** A service not heard of for this long (i.e. it missed re-queries) is gone. */
  goneAfterMs?: number;
  /** A gone printer stays listed this long, so a printer switched off for lunch keeps its card. */
  removeAfterMs?: number;
  /** Share one mDNS socket with the announcer; by default the browser opens its own. */
  mdns?: MdnsSocket;
  log?: { warn(o: object, msg?: string): void };
}

const TYPES = Object.keys(PRINTER_SERVICES) as PrinterServiceType[];
/** Each type and its `_universal._sub` subtype (AirPrint / IPP Everywhere printers register it). */
const BROWSE_NAMES = TYPES.flatMap((t) => [`${t}.local`, `_universal._sub.${t}.local`]);

interface Timed<T> {
  value: T;
  expires: number;
}
interface PtrEntry {
  type: PrinterServiceType;
  expires: number;
  lastSeen: number;
}
interface Tracked {
  printer: DiscoveredPrinter;
  origin: string; // 'mdns' or 'source:<name>'
  goneAt?: number;
}

export class PrinterDiscovery extends EventEmitter<{ change: [DiscoveryChange] }> {
  private readonly opts: Required<Omit<DiscoveryOptions, 'mdns' | 'schemes' | 'log'>> & Pick<DiscoveryOptions, 'schemes' | 'log'>;
  private mdns?: MdnsSocket;
  private ownSocket = false;
  private ptrs = new Map<string, PtrEntry>(); // key: lower-case instance name
  private srvs = new Map<string, Timed<{ target: string; port: number }>>();
  private txts = new Map<string, Timed<Record<string, string>>>();
  private addrs = new Map<string, Map<string, number>>(); // lower-case host → address → expires
  private instanceNames = new Map<string, string>(); // lower-case → as advertised (keeps the name's case)
  private devices = new Map<string, Tracked>();
  private lastAsked = new Map<string, number>();
  private timers: NodeJS.Timeout[] = [];
  private recomputePending?: NodeJS.Timeout;
  private stopped = false;

  constructor(options: DiscoveryOptions = {}) {
    super();
    const requeryMs = options.requeryMs ?? 30_000;
    this.opts = {
      requeryMs,
      goneAfterMs: options.goneAfterMs ?? requeryMs * 2.5,
      removeAfterMs: options.removeAfterMs ?? 15 * 60_000,
      schemes: options.schemes,
      log: options.log,
    };
    this.mdns = options.mdns;
  }

  async start(): Promise<void> {
    if (!this.mdns) {
      this.mdns = await openMdns();
      this.ownSocket = true;
    }
    this.mdns.onResponse((p) => this.ingest(p));
    this.refresh();
    // Start-up burst catches answers lost to collisions, then a steady re-query keeps presence fresh.
    this.timers.push(setTimeout(() => this.refresh(), 1000), setTimeout(() => this.refresh(), 3000));
    this.timers.push(setInterval(() => this.refresh(), this.opts.requeryMs));
    this.timers.push(setInterval(() => this.recompute(), Math.min(1000, this.opts.goneAfterMs / 4)));
    for (const t of this.timers) t.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    clearTimeout(this.recomputePending);
    if (this.ownSocket) await this.mdns?.close();
  }

  list(): DiscoveredPrinter[] {
    return [...this.devices.values()].map((d) => d.printer);
  }

  get(id: string): DiscoveredPrinter | undefined {
    return this.devices.get(id)?.printer;
  }

  /**
   * Asks the LAN again now. Known answers are deliberately not listed in the query, so every printer
   * answers and refreshes its presence; follow-up questions fill in missing SRV/TXT/addresses.
   */
  refresh(): void {
    if (this.stopped || !this.mdns) return;
    const questions: MdnsQuestion[] = BROWSE_NAMES.map((name) => ({ name, type: 'PTR' }));
    this.mdns.query([...questions, ...this.followUps(true)]);
  }

  /**
   * Merges printers from a driver's discover() into the same list. One pass of the iterable is one full
   * scan: printers of this source missing from the latest scan are marked gone. Pass a function and
   * `everyMs` to rescan periodically (until stop()). Resolves when the first scan has finished.
   */
  async addSource(
    source: AsyncIterable<FoundPrinter> | (() => AsyncIterable<FoundPrinter>),
    opts: { name?: string; everyMs?: number } = {},
  ): Promise<void> {
    const origin = `source:${opts.name ?? 'driver'}`;
    const scan = async () => {
      const seen = new Set<string>();
      const iterable = typeof source === 'function' ? source() : source;
      try {
        for await (const found of iterable) {
          if (this.stopped) return;
          const core = fromFound(found, this.opts.schemes);
          seen.add(core.id);
          this.upsert(core.id, core, origin, Date.now());
        }
      } catch (err) {
        this.opts.log?.warn({ err, origin }, 'printer discovery source failed');
        return; // a failed scan says nothing about absence: keep what we had
      }
      for (const [id, d] of this.devices) if (d.origin === origin && !seen.has(id)) this.markGone(id, d, Date.now());
    };
    await scan();
    if (typeof source === 'function' && opts.everyMs && !this.stopped) {
      const t = setInterval(() => void scan(), opts.everyMs);
      t.unref();
      this.timers.push(t);
    }
  }

  // ---- mDNS cache -------------------------------------------------------------------------

  private ingest(packet: MdnsPacket): void {
    const now = Date.now();
    let relevant = false;
    for (const rr of [...packet.answers, ...packet.additionals]) relevant = this.cacheRecord(rr, now) || relevant;
    if (relevant) {
      this.askMissing();
      this.scheduleRecompute();
    }
  }

  /** Returns true when the record concerns a printer service or a host we track. */
  private cacheRecord(rr: MdnsRecord, now: number): boolean {
    const ttl = 'ttl' in rr && typeof rr.ttl === 'number' ? rr.ttl : 120;
    const expires = now + ttl * 1000;
    switch (rr.type) {
      case 'PTR': {
        if (!BROWSE_NAMES.some((n) => sameName(n, rr.name))) return false;
        const instance = String(rr.data);
        const type = serviceTypeOf(instance);
        if (!type) return false;
        const key = instance.replace(/\.$/, '').toLowerCase();
        this.instanceNames.set(key, instance.replace(/\.$/, ''));
        if (ttl === 0) this.ptrs.delete(key); // goodbye: the printer withdrew this service
        else this.ptrs.set(key, { type, expires, lastSeen: now });
        return true;
      }
      case 'SRV':
      case 'TXT': {
        if (!serviceTypeOf(rr.name)) return false;
        const key = rr.name.replace(/\.$/, '').toLowerCase();
        this.instanceNames.set(key, rr.name.replace(/\.$/, ''));
        const map = rr.type === 'SRV' ? this.srvs : this.txts;
        if (ttl === 0) map.delete(key);
        else if (rr.type === 'SRV') this.srvs.set(key, { value: { target: rr.data.target.replace(/\.$/, ''), port: rr.data.port }, expires });
        else this.txts.set(key, { value: parseTxt(rr.data), expires });
        const ptr = this.ptrs.get(key);
        if (ptr && ttl > 0) ptr.lastSeen = now; // a fresh SRV/TXT also shows the service is alive
        return true;
      }
      case 'A':
      case 'AAAA': {
        const host = rr.name.replace(/\.$/, '').toLowerCase();
        const tracked = [...this.srvs.values()].some((s) => s.value.target.toLowerCase() === host);
        if (!tracked && !this.addrs.has(host)) {
          // Addresses often arrive in the same packet before the SRV is cached: keep them anyway (bounded).
          if (this.addrs.size > 512) return false;
        }
        const set = this.addrs.get(host) ?? new Map<string, number>();
        if (ttl === 0) set.delete(rr.data);
        else set.set(rr.data, expires);
        this.addrs.set(host, set);
        return tracked;
      }
      default:
        return false;
    }
  }

  private alive(key: string, now: number): boolean {
    const ptr = this.ptrs.get(key);
    return !!ptr && ptr.expires > now && now - ptr.lastSeen <= this.opts.goneAfterMs;
  }

  private addressesOf(host: string, now: number): string[] {
    const set = this.addrs.get(host.toLowerCase());
    return set ? [...set].filter(([, exp]) => exp > now).map(([a]) => a) : [];
  }

  /** Questions for what live services still lack (or will soon lose): SRV, TXT, host addresses. */
  private followUps(includeExpiring: boolean): MdnsQuestion[] {
    const now = Date.now();
    const soon = includeExpiring ? now + this.opts.requeryMs : now;
    const qs: MdnsQuestion[] = [];
    const ask = (name: string, type: MdnsQuestion['type']) => {
      const k = `${type} ${name.toLowerCase()}`;
      if (now - (this.lastAsked.get(k) ?? 0) < 1000) return; // at most once a second per question
      this.lastAsked.set(k, now);
      qs.push({ name, type });
    };
    for (const key of this.ptrs.keys()) {
      if (!this.alive(key, now)) continue;
      const name = this.instanceNames.get(key) ?? key;
      const srv = this.srvs.get(key);
      if (!srv || srv.expires <= soon) ask(name, 'SRV');
      const txt = this.txts.get(key);
      if (!txt || txt.expires <= soon) ask(name, 'TXT');
      if (srv && this.addressesOf(srv.value.target, soon).length === 0) {
        ask(srv.value.target, 'A');
        ask(srv.value.target, 'AAAA');
      }
    }
    if (this.lastAsked.size > 4096) this.lastAsked.clear();
    return qs;
  }

  private askMissing(): void {
    const qs = this.followUps(false);
    if (qs.length && this.mdns && !this.stopped) this.mdns.query(qs);
  }

  // ---- devices ----------------------------------------------------------------------------

  private scheduleRecompute(): void {
    // Coalesce: one response burst (PTRs of all four types, then follow-ups) becomes one change event.
    if (this.recomputePending) return;
    this.recomputePending = setTimeout(() => {
      this.recomputePending = undefined;
      this.recompute();
    }, 150);
    this.recomputePending.unref();
  }

  private resolvedRecords(now: number): { rec: ServiceRecord; lastSeen: number }[] {
    const out: { rec: ServiceRecord; lastSeen: number }[] = [];
    for (const [key, ptr] of this.ptrs) {
      if (!this.alive(key, now)) continue;
      const srv = this.srvs.get(key);
      if (!srv) continue;
      const addresses = this.addressesOf(srv.value.target, now);
      if (addresses.length === 0) continue;
      const txt = this.txts.get(key);
      // A printbox queue (this box's own, or another box's) is not a printer to deliver to: it would loop.
      if (txt?.value.product === OWN_PRODUCT) continue;
      const instance = this.instanceNames.get(key) ?? key;
      out.push({ rec: { instance, type: ptr.type, host: srv.value.target, port: srv.value.port, addresses, txt: txt?.value ?? {} }, lastSeen: ptr.lastSeen });
    }
    return out;
  }

  private recompute(): void {
    if (this.stopped) return;
    const now = Date.now();
    const resolved = this.resolvedRecords(now);
    const groups = groupByDevice(resolved.map((r) => r.rec));
    for (const [id, recs] of groups) {
      const lastSeen = Math.max(...resolved.filter((r) => recs.includes(r.rec)).map((r) => r.lastSeen));
      this.upsert(id, mergeDevice(id, recs, this.opts.schemes), 'mdns', lastSeen);
    }
    for (const [id, d] of this.devices) {
      if (d.origin === 'mdns' && d.printer.state === 'present' && !groups.has(id)) this.markGone(id, d, now);
      if (d.printer.state === 'gone' && d.goneAt !== undefined && now - d.goneAt > this.opts.removeAfterMs) {
        this.devices.delete(id);
        this.emit('change', { type: 'removed', printer: d.printer });
      }
    }
    this.forgetExpired(now);
  }

  private upsert(id: string, core: Omit<DiscoveredPrinter, 'state' | 'firstSeen' | 'lastSeen'>, origin: string, seenAt: number): void {
    const prev = this.devices.get(id);
    const lastSeen = new Date(seenAt).toISOString();
    if (!prev) {
      const printer: DiscoveredPrinter = { ...core, state: 'present', firstSeen: lastSeen, lastSeen };
      this.devices.set(id, { printer, origin });
      this.emit('change', { type: 'added', printer });
      return;
    }
    const { state: _s, firstSeen: _f, lastSeen: _l, ...prevCore } = prev.printer;
    const changed = prev.printer.state !== 'present' || JSON.stringify(prevCore) !== JSON.stringify(core);
    prev.printer = { ...core, state: 'present', firstSeen: prev.printer.firstSeen, lastSeen };
    prev.origin = origin;
    prev.goneAt = undefined;
    // lastSeen alone changes on every re-query: not worth a change event on the SSE stream.
    if (changed) this.emit('change', { type: 'updated', printer: prev.printer });
  }

  private markGone(id: string, d: Tracked, now: number): void {
    d.printer = { ...d.printer, state: 'gone' };
    d.goneAt = now;
    this.emit('change', { type: 'gone', printer: d.printer });
  }

  private forgetExpired(now: number): void {
    for (const [k, p] of this.ptrs) if (p.expires <= now || now - p.lastSeen > this.opts.removeAfterMs) this.ptrs.delete(k);
    for (const m of [this.srvs, this.txts] as Map<string, Timed<unknown>>[]) for (const [k, v] of m) if (v.expires <= now) m.delete(k);
    for (const [h, set] of this.addrs) {
      for (const [a, exp] of set) if (exp <= now) set.delete(a);
      if (set.size === 0) this.addrs.delete(h);
    }
    for (const k of this.instanceNames.keys()) if (!this.ptrs.has(k) && !this.srvs.has(k) && !this.txts.has(k)) this.instanceNames.delete(k);
  }
}
