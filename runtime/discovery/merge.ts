// Pure DNS-SD logic: TXT parsing, service → printer URI, and merging one device's services into one printer.
import type { ContentType, FoundPrinter } from '../../drivers/contract.js';

/** The DNS-SD service types a printer advertises, and the printbox driver (URI scheme) each one maps to. */
export const PRINTER_SERVICES = {
  '_ipps._tcp': 'ipps',
  '_ipp._tcp': 'ipp',
  '_pdl-datastream._tcp': 'raw',
  '_printer._tcp': 'lpr',
} as const;
export type PrinterServiceType = keyof typeof PRINTER_SERVICES;

/**
 * Preference when a device offers several wires: ipps (IPP over TLS: encrypted, and the printer reports
 * job state so the queue can record `confirmed`), then ipp (same status, in clear), then raw (fast and
 * simple, but fire-and-forget), then lpr (least status, reserved ports, 3-digit job numbers).
 */
export const DRIVER_PREFERENCE = ['ipps', 'ipp', 'raw', 'lpr'];

/** One resolved DNS-SD service instance (PTR → SRV + TXT → A/AAAA), as the browser's cache knows it. */
export interface ServiceRecord {
  /** Full instance name, e.g. "HP LaserJet [A1B2]._ipp._tcp.local". */
  instance: string;
  type: PrinterServiceType;
  /** SRV target, e.g. "hp-a1b2.local". */
  host: string;
  port: number;
  addresses: string[];
  txt: Record<string, string>;
}

export interface PrinterUri {
  uri: string;
  driver: string;
  /** Where it came from: a DNS-SD type ("_ipp._tcp") or "driver:<scheme>" for a driver's discover(). */
  service: string;
}

export interface DiscoveredPrinter {
  /** Stable across restarts: the device UUID when it advertises one, else its host name (URL-safe). */
  id: string;
  name: string;
  model: string | null;
  host: string | null;
  addresses: string[];
  uris: PrinterUri[];
  preferred: { uri: string; driver: string } | null;
  /** MIME types from the TXT `pdl` key, as advertised. */
  languages: string[];
  /** The same, as printbox content types. */
  contentTypes: ContentType[];
  color: boolean | null;
  duplex: boolean | null;
  note: string | null;
  adminurl: string | null;
  uuid: string | null;
  /** TLS versions offered by the IPP service (TXT `TLS`), null when not advertised. */
  tls: string | null;
  state: 'present' | 'gone';
  firstSeen: string;
  lastSeen: string;
}

/** Decodes DNS-SD TXT strings ("key=value"); keys are case-insensitive (RFC 6763 §6.4) so they are lower-cased. */
export function parseTxt(data: string | Buffer | Array<string | Buffer> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const items = data === undefined ? [] : Array.isArray(data) ? data : [data];
  for (const item of items) {
    const s = Buffer.isBuffer(item) ? item.toString('utf8') : item;
    if (!s) continue;
    const eq = s.indexOf('=');
    const key = (eq < 0 ? s : s.slice(0, eq)).trim().toLowerCase();
    // The first occurrence of a key wins (§6.4); a bare key means "present, no value".
    if (key && !(key in out)) out[key] = eq < 0 ? '' : s.slice(eq + 1);
  }
  return out;
}

/** Builds DNS-SD TXT strings from a record of values. */
export function encodeTxt(txt: Record<string, string | number | boolean>): string[] {
  return Object.entries(txt).map(([k, v]) => `${k}=${v}`);
}

export function serviceTypeOf(instance: string): PrinterServiceType | null {
  const lower = instance.replace(/\.$/, '').toLowerCase();
  for (const t of Object.keys(PRINTER_SERVICES) as PrinterServiceType[]) if (lower.endsWith(`.${t}.local`)) return t;
  return null;
}

/** The instance label (user-visible name): "HP LaserJet._ipp._tcp.local" → "HP LaserJet". */
export function instanceLabel(instance: string, type: string): string {
  const bare = instance.replace(/\.$/, '');
  return bare.slice(0, bare.length - `.${type}.local`.length);
}

export function hostForUri(rec: Pick<ServiceRecord, 'host' | 'addresses'>): string {
  // An address, not the .local name: Node's resolver finds .local names only where nss-mdns is installed.
  const v4 = rec.addresses.find((a) => !a.includes(':'));
  if (v4) return v4;
  const v6 = rec.addresses.find((a) => a.includes(':') && !/^fe80:/i.test(a));
  if (v6) return `[${v6}]`;
  return rec.host.replace(/\.$/, '');
}

/** The printer URI a driver will use for one service, e.g. ipp://10.0.0.5:631/ipp/print. */
export function serviceUri(rec: ServiceRecord): PrinterUri {
  const driver = PRINTER_SERVICES[rec.type];
  const host = hostForUri(rec);
  const rp = (rec.txt.rp ?? '').replace(/^\/+/, '');
  let uri: string;
  switch (driver) {
    case 'ipp':
    case 'ipps':
      uri = `${driver}://${host}:${rec.port}/${rp || 'ipp/print'}`;
      break;
    case 'raw':
      uri = `raw://${host}:${rec.port}`;
      break;
    case 'lpr':
      // LPD's port is fixed at 515 in practice; keep a non-standard one if advertised. rp is the queue name.
      uri = `lpr://${host}${rec.port === 515 ? '' : `:${rec.port}`}/${encodeURIComponent(rp || 'lp')}`;
      break;
  }
  return { uri, driver, service: rec.type };
}

export function pickPreferred(uris: PrinterUri[], available?: readonly string[]): { uri: string; driver: string } | null {
  const usable = available ? uris.filter((u) => available.includes(u.driver)) : uris;
  const rank = (u: PrinterUri) => {
    const i = DRIVER_PREFERENCE.indexOf(u.driver);
    return i < 0 ? DRIVER_PREFERENCE.length : i;
  };
  const best = [...usable].sort((a, b) => rank(a) - rank(b))[0];
  return best ? { uri: best.uri, driver: best.driver } : null;
}

const PDL_TO_CONTENT: Record<string, ContentType> = {
  'application/pdf': 'pdf',
  'application/postscript': 'postscript',
  'application/vnd.hp-pcl': 'pcl',
  'application/vnd.hp-pclxl': 'pcl',
  'image/pwg-raster': 'pwg-raster',
  'application/vnd.zebra-zpl': 'zpl',
  'application/vnd.epson.escpos': 'escpos',
  'text/plain': 'text',
  'application/octet-stream': 'raw',
};

function bool(v: string | undefined): boolean | null {
  if (v === undefined) return null;
  return /^(t|true|1|yes)$/i.test(v.trim());
}

export function normaliseUuid(v: string | undefined): string | null {
  if (!v) return null;
  const m = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/i.exec(v);
  return m ? m[1].toLowerCase() : null;
}

function bareHost(h: string): string {
  return h.replace(/\.$/, '').toLowerCase();
}

/** Keeps ids usable as one URL path segment without escaping. */
export function safeId(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/-{2,}/g, '-').replace(/^-+|-+$/g, '');
}

/**
 * Groups service records into devices. Records with the same UUID are one device; a record without a
 * UUID joins the UUID device on the same host (or sharing an address) when there is exactly one; the
 * rest group by host. Two UUIDs on one host stay two printers (a print server with several queues).
 */
export function groupByDevice(records: ServiceRecord[]): Map<string, ServiceRecord[]> {
  const groups = new Map<string, ServiceRecord[]>();
  const add = (key: string, r: ServiceRecord) => groups.set(key, [...(groups.get(key) ?? []), r]);
  const withUuid = records.filter((r) => normaliseUuid(r.txt.uuid));
  const without = records.filter((r) => !normaliseUuid(r.txt.uuid));
  for (const r of withUuid) add(normaliseUuid(r.txt.uuid)!, r);
  for (const r of without) {
    const candidates = new Set<string>();
    for (const u of withUuid) {
      const sameHost = bareHost(u.host) === bareHost(r.host);
      const sharedAddr = u.addresses.some((a) => r.addresses.includes(a));
      if (sameHost || sharedAddr) candidates.add(normaliseUuid(u.txt.uuid)!);
    }
    if (candidates.size === 1) add([...candidates][0], r);
    else add(safeId(bareHost(r.host) || r.addresses[0] || r.instance), r);
  }
  return groups;
}

/** The printer-facing fields of one device; state and times are added by the caller that tracks them. */
export function mergeDevice(
  id: string,
  records: ServiceRecord[],
  available?: readonly string[],
): Omit<DiscoveredPrinter, 'state' | 'firstSeen' | 'lastSeen'> {
  const byPref = [...records].sort((a, b) => DRIVER_PREFERENCE.indexOf(PRINTER_SERVICES[a.type]) - DRIVER_PREFERENCE.indexOf(PRINTER_SERVICES[b.type]));
  const first = <K extends string>(key: K) => byPref.map((r) => r.txt[key]).find((v) => v !== undefined && v !== '');
  const uris = byPref.map(serviceUri);
  const languages = [...new Set(byPref.flatMap((r) => (r.txt.pdl ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)))];
  const contentTypes = [...new Set(languages.map((l) => PDL_TO_CONTENT[l]).filter((c): c is ContentType => !!c))];
  const mfgModel = [first('usb_mfg'), first('usb_mdl')].filter(Boolean).join(' ');
  const model = first('ty') ?? (first('product')?.replace(/^\((.*)\)$/, '$1') || undefined) ?? (mfgModel || undefined);
  const main = byPref[0];
  return {
    id,
    name: main ? instanceLabel(main.instance, main.type) : id,
    model: model ?? null,
    host: main ? main.host.replace(/\.$/, '') : null,
    addresses: [...new Set(byPref.flatMap((r) => r.addresses))],
    uris,
    preferred: pickPreferred(uris, available),
    languages,
    contentTypes,
    color: bool(first('color')),
    duplex: bool(first('duplex')),
    note: first('note') ?? null,
    adminurl: first('adminurl') ?? null,
    uuid: normaliseUuid(first('uuid')),
    tls: first('tls') ?? null,
  };
}

/** A printer found by a driver's own discover() (serial ports, USB…), in the same shape as mDNS ones. */
export function fromFound(f: FoundPrinter, available?: readonly string[]): Omit<DiscoveredPrinter, 'state' | 'firstSeen' | 'lastSeen'> {
  const uris = [{ uri: f.uri, driver: f.driver, service: `driver:${f.driver}` }];
  const info = f.info ?? {};
  const str = (k: string) => (typeof info[k] === 'string' ? (info[k] as string) : null);
  return {
    id: safeId(`${f.driver}-${f.id}`),
    name: f.name,
    model: str('model'),
    host: null,
    addresses: [],
    uris,
    preferred: pickPreferred(uris, available),
    languages: [],
    contentTypes: [],
    color: null,
    duplex: null,
    note: str('note'),
    adminurl: null,
    uuid: null,
    tls: null,
  };
}

export class DiscoveryError extends Error {
  constructor(
    readonly code: 'printer_not_adoptable',
    message: string,
  ) {
    super(message);
  }
}

/**
 * What POST /v1/discovered/:id/adopt creates: a printer named like the device, on its preferred URI.
 * Throws `printer_not_adoptable` when no advertised wire has a driver here (preferred is null).
 */
export function adoptionFor(p: DiscoveredPrinter): { name: string; uri: string } {
  const chosen = p.preferred;
  if (!chosen) throw new DiscoveryError('printer_not_adoptable', `discovered printer "${p.name}" offers no wire printbox has a driver for (${p.uris.map((u) => u.driver).join(', ') || 'none'})`);
  const name = p.name.replace(/[\u0000-\u001f]/g, '').trim().slice(0, 127) || p.id;
  return { name, uri: chosen.uri };
}
