// Where a statusURL callback may go: the host resolved once, loopback/link-local/metadata/multicast/unspecified refused unless the config names them.
import dns from 'node:dns/promises';
import net from 'node:net';

export type Target = { ok: true; address: string; family: 4 | 6 } | { ok: false; reason: string; transient?: boolean };

/** Never reached unless the allow list names them: the box itself, link-local (cloud metadata lives there), multicast, unspecified. */
const FORBIDDEN: [string, number, 'ipv4' | 'ipv6'][] = [
  ['0.0.0.0', 8, 'ipv4'],
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'],
  ['240.0.0.0', 4, 'ipv4'], // reserved, and 255.255.255.255
  ['100.100.100.200', 32, 'ipv4'], // Alibaba Cloud metadata
  ['168.63.129.16', 32, 'ipv4'], // Azure host endpoint
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
  ['fd00:ec2::254', 128, 'ipv6'], // AWS metadata over IPv6
];

const family = (a: string): 'ipv4' | 'ipv6' => (net.isIPv4(a) ? 'ipv4' : 'ipv6');

/** "::ffff:127.0.0.1" is 127.0.0.1: checked as the IPv4 address it is. */
function plain(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

/** Throws a readable error for an entry of `callbacks.allow` that is not a CIDR range, an address, a URL origin or a host name. */
function parseEntry(entry: string, nets: net.BlockList, origins: Set<string>, hosts: Set<string>): void {
  const e = entry.trim();
  if (e.includes('://')) {
    const u = new URL(e);
    if (!['http:', 'https:'].includes(u.protocol)) throw new Error(`callbacks.allow: "${entry}" must be an http or https origin`);
    origins.add(u.origin);
    return;
  }
  const [addr, bits] = e.split('/');
  const ip = plain(addr.replace(/^\[|\]$/g, ''));
  if (net.isIP(ip)) {
    const max = net.isIPv4(ip) ? 32 : 128;
    const prefix = bits === undefined ? max : Number(bits);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) throw new Error(`callbacks.allow: "${entry}" has a bad prefix length`);
    nets.addSubnet(ip, prefix, family(ip));
    return;
  }
  if (bits === undefined && /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(e)) {
    hosts.add(e.toLowerCase());
    return;
  }
  throw new Error(`callbacks.allow: "${entry}" is not a range (10.1.0.0/16), an address, an origin (https://ehr.example.org) or a host name`);
}

export class CallbackTargets {
  private forbidden = new net.BlockList();
  private allowNets = new net.BlockList();
  private origins = new Set<string>();
  private hosts = new Set<string>();
  private narrowed: boolean;

  /** `allow`: config `callbacks.allow`; when set, only what it names is reached (and what it names is reached even on loopback). */
  constructor(allow?: string[], private lookup = (host: string) => dns.lookup(host, { all: true, verbatim: true })) {
    for (const [a, p, f] of FORBIDDEN) this.forbidden.addSubnet(a, p, f);
    for (const entry of allow ?? []) parseEntry(entry, this.allowNets, this.origins, this.hosts);
    this.narrowed = allow !== undefined;
  }

  /** The address to connect to for this URL, or why not. A name is resolved here, once; the caller connects to the answer. */
  async resolve(url: string): Promise<Target> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return { ok: false, reason: 'not a URL' };
    }
    if (!['http:', 'https:'].includes(u.protocol)) return { ok: false, reason: 'only http and https callbacks are sent' };
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const named = this.origins.has(u.origin) || this.hosts.has(host.toLowerCase());
    let addresses: string[];
    if (net.isIP(host)) addresses = [host];
    else {
      try {
        addresses = (await this.lookup(host)).map((a) => a.address);
      } catch (err) {
        return { ok: false, reason: `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, transient: true };
      }
    }
    if (!addresses.length) return { ok: false, reason: `${host} has no address`, transient: true };
    for (const raw of addresses) {
      const a = plain(raw);
      if (named) continue;
      // Every address of the name must pass: a name that also points at the box itself is refused whole.
      if (this.narrowed && !this.allowNets.check(a, family(a))) return { ok: false, reason: `${a} is not in callbacks.allow` };
      if (!this.narrowed && this.forbidden.check(a, family(a))) return { ok: false, reason: `${a} is a loopback, link-local, metadata, multicast or unspecified address; name it in callbacks.allow to reach it` };
    }
    const address = plain(addresses[0]);
    return { ok: true, address, family: net.isIPv4(address) ? 4 : 6 };
  }
}
