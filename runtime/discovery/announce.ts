// Publishes the appliance on the LAN: _printbox._tcp and _https._tcp, and answers A/AAAA for its .local host name.
import os from 'node:os';
import { X509Certificate } from 'node:crypto';
import { openMdns, sameName, type MdnsPacket, type MdnsRecord, type MdnsSocket } from './mdns.js';
import { encodeTxt } from './merge.js';
import type { ServiceOffer } from './printer-services.js';

export interface AnnounceOptions {
  /** Service instance name shown in browsers, e.g. "printbox kitchen". */
  name: string;
  /** The HTTPS API port. */
  port: number;
  /** SHA-256 fingerprint of the API's TLS certificate (hex, any case, colons allowed). */
  fingerprint: string;
  version: string;
  /** Host name to answer for; default `<os.hostname()>.local`, which the certificate lists. */
  host?: string;
  /** Extra TXT keys. */
  txt?: Record<string, string | number | boolean>;
  /** Share the browser's socket; by default one is opened (and closed by stop()). */
  mdns?: MdnsSocket;
  /** Addresses to answer with; default: every non-loopback interface address, read at answer time. */
  addresses?: () => string[];
  /** More services on the same host (each printer's `_ipps._tcp`), read at answer time. */
  services?: () => ServiceOffer[];
}

export interface Announcement {
  host: string;
  instance: string;
  /** Announces again (after the offered services changed). */
  refresh(): void;
  stop(): Promise<void>;
}

const TTL_HOST = 120; // RFC 6762 §10: host-name records 120 s
const TTL_SERVICE = 4500; // other records 75 min
const SERVICE_TYPES = ['_printbox._tcp.local', '_https._tcp.local'];
const META = '_services._dns-sd._udp.local';

/** "AB:CD:…" or "abcd…" → lower-case hex without separators, as published in TXT `fp`. */
export function normaliseFingerprint(fp: string): string {
  return fp.replace(/[^0-9a-f]/gi, '').toLowerCase();
}

/** SHA-256 fingerprint (lower-case hex) of a PEM certificate: what clients pin. */
export function certificateFingerprint(pem: string | Buffer): string {
  return normaliseFingerprint(new X509Certificate(pem).fingerprint256);
}

export function defaultHostName(): string {
  const h = os.hostname().split('.')[0].toLowerCase().replace(/[^a-z0-9-]/g, '-');
  return `${h || 'printbox'}.local`;
}

/** Non-loopback addresses; IPv6 link-local is left out because a URL to it needs a zone id nobody can type. */
export function interfaceAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((a) => !a.internal && !(a.family === 'IPv6' && /^fe80:/i.test(a.address)))
    .map((a) => a.address);
}

/** One DNS label (≤ 63 bytes). dns-packet splits names on every dot and knows no escapes, so dots become dashes. */
function instanceLabel(s: string): string {
  let label = s.replace(/\./g, '-').trim() || 'printbox';
  while (Buffer.byteLength(label) > 63) label = label.slice(0, -1);
  return label;
}

export async function announce(opts: AnnounceOptions): Promise<Announcement> {
  const host = (opts.host ?? defaultHostName()).replace(/\.$/, '');
  if (!host.toLowerCase().endsWith('.local')) throw Object.assign(new Error(`mDNS host name must end in .local: ${host}`), { code: 'bad_host_name' });
  const mdns = opts.mdns ?? (await openMdns());
  const ownSocket = !opts.mdns;
  const addresses = opts.addresses ?? interfaceAddresses;
  const txt = encodeTxt({ txtvers: 1, path: '/v1', version: opts.version, fp: normaliseFingerprint(opts.fingerprint), ...opts.txt });
  const instances = SERVICE_TYPES.map((t) => `${instanceLabel(opts.name)}.${t}`);

  const hostRecords = (live: boolean, forPeer?: string): MdnsRecord[] =>
    orderForPeer(addresses(), forPeer).map((a) => ({ name: host, type: a.includes(':') ? 'AAAA' : 'A', ttl: live ? TTL_HOST : 0, flush: true, data: a }) as MdnsRecord);
  const serviceRecords = (live: boolean): MdnsRecord[] =>
    SERVICE_TYPES.flatMap((type, i) => [
      { name: type, type: 'PTR', ttl: live ? TTL_SERVICE : 0, data: instances[i] },
      { name: instances[i], type: 'SRV', ttl: live ? TTL_HOST : 0, flush: true, data: { target: host, port: opts.port, priority: 0, weight: 0 } },
      { name: instances[i], type: 'TXT', ttl: live ? TTL_SERVICE : 0, flush: true, data: txt },
      { name: META, type: 'PTR', ttl: live ? TTL_SERVICE : 0, data: type },
    ]) as MdnsRecord[];
  const offerRecords = (live: boolean, offers = opts.services?.() ?? []): MdnsRecord[] =>
    offers.flatMap((o) => {
      const type = `${o.type}.local`;
      const instance = `${instanceLabel(o.name)}.${type}`;
      return [
        { name: type, type: 'PTR', ttl: live ? TTL_SERVICE : 0, data: instance },
        ...o.subtypes.map((sub) => ({ name: `${sub}._sub.${type}`, type: 'PTR', ttl: live ? TTL_SERVICE : 0, data: instance })),
        { name: instance, type: 'SRV', ttl: live ? TTL_HOST : 0, flush: true, data: { target: host, port: o.port, priority: 0, weight: 0 } },
        { name: instance, type: 'TXT', ttl: live ? TTL_SERVICE : 0, flush: true, data: encodeTxt(o.txt) },
        { name: META, type: 'PTR', ttl: live ? TTL_SERVICE : 0, data: type },
      ] as MdnsRecord[];
    });
  const all = (live: boolean, forPeer?: string) => [...serviceRecords(live), ...offerRecords(live), ...hostRecords(live, forPeer)];

  const onQuery = (q: MdnsPacket, from: { address: string; port: number }) => {
    if (stopped) return;
    const records = all(true, from.address);
    const answers: MdnsRecord[] = [];
    for (const question of q.questions) {
      for (const r of records) {
        if (!sameName(r.name, question.name)) continue;
        if ((question.type as string) !== 'ANY' && question.type !== r.type) continue;
        if (!answers.includes(r)) answers.push(r);
      }
    }
    if (answers.length === 0) return;
    // Additionals save the asker a round trip: PTR → SRV + TXT + addresses; SRV → addresses.
    const wantsService = answers.some((a) => a.type === 'PTR' || a.type === 'SRV');
    const additionals = wantsService ? records.filter((r) => !answers.includes(r) && r.type !== 'PTR') : [];
    if (from.port !== 5353) {
      // Legacy unicast resolver (dig, a one-shot query): answer it directly, TTL ≤ 10 s per RFC 6762 §6.7.
      const cap = (rs: MdnsRecord[]) => rs.map((r) => ({ ...r, ttl: Math.min(10, (r as { ttl?: number }).ttl ?? 10), flush: false }) as MdnsRecord);
      mdns.respond(cap(answers), cap(additionals), { address: from.address, port: from.port, id: q.id, questions: q.questions });
    } else {
      mdns.respond(answers, additionals);
    }
  };

  let stopped = false;
  let announced = opts.services?.() ?? [];
  mdns.onQuery(onQuery);
  // Announce (RFC 6762 §8.3): twice, one second apart, so caches that missed the first packet still learn.
  mdns.respond(all(true));
  const again = setTimeout(() => !stopped && mdns.respond(all(true)), 1000);
  again.unref();

  return {
    host,
    instance: instances[0],
    refresh() {
      if (stopped) return;
      // A printer removed (or renamed, or no longer announced) gets its goodbye; the rest is announced again.
      const now = opts.services?.() ?? [];
      const gone = announced.filter((o) => !now.some((n) => n.type === o.type && n.name === o.name));
      // Not the _services._dns-sd PTR: other printers keep the type.
      if (gone.length) mdns.respond(offerRecords(false, gone).filter((r) => !sameName(r.name, META)));
      announced = now;
      mdns.respond(all(true));
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(again);
      // Goodbye (TTL 0) so browsers drop us at once instead of waiting for the TTL to run out.
      // Not the _services._dns-sd PTRs: another responder on this box (avahi) may offer the same types.
      mdns.respond(all(false).filter((r) => !sameName(r.name, META)));
      await new Promise((r) => setTimeout(r, 50)); // let the goodbye leave before the socket closes
      if (ownSocket) await mdns.close();
    },
  };
}

/** Puts the addresses on the asker's subnet first, so a multi-homed box is reached on the right interface. */
function orderForPeer(addresses: string[], peer?: string): string[] {
  if (!peer || peer.includes(':')) return addresses;
  const prefix = peer.split('.').slice(0, 3).join('.') + '.';
  return [...addresses.filter((a) => a.startsWith(prefix)), ...addresses.filter((a) => !a.startsWith(prefix))];
}
