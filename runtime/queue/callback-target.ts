// Where a statusURL callback may go: the host resolved once, loopback/link-local/metadata/multicast/unspecified refused unless the config names them.
import dns from 'node:dns/promises';
import net from 'node:net';
import { AddressRanges } from '../system/address-ranges.js';

export type Target = { ok: true; address: string; family: 4 | 6 } | { ok: false; reason: string; transient?: boolean };

/** Never reached unless the allow list names them: the box itself, link-local (cloud metadata lives there), multicast, unspecified. */
const FORBIDDEN = new AddressRanges([
  '0.0.0.0/8',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4', // reserved, and 255.255.255.255
  '100.100.100.200', // Alibaba Cloud metadata
  '168.63.129.16', // Azure host endpoint
  '::/128',
  '::1/128',
  'fe80::/10',
  'ff00::/8',
  'fd00:ec2::254', // AWS metadata over IPv6
]);

/** "::ffff:127.0.0.1" is 127.0.0.1 (as AddressRanges reads it too). */
const plain = (address: string) => /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] ?? address;

/** Splits `callbacks.allow` into ranges, origins and host names; throws a readable error for an entry that is none. */
function parseAllow(allow: string[]): { ranges: AddressRanges; origins: Set<string>; hosts: Set<string> } {
  const ranges: string[] = [];
  const origins = new Set<string>();
  const hosts = new Set<string>();
  for (const entry of allow) {
    const e = entry.trim();
    if (e.includes('://')) {
      const u = new URL(e);
      if (!['http:', 'https:'].includes(u.protocol)) throw new Error(`callbacks.allow: "${entry}" must be an http or https origin`);
      origins.add(u.origin);
    } else if (net.isIP(plain(e.split('/')[0].replace(/^\[|\]$/g, '')))) ranges.push(e.replace(/^\[|\](?=\/|$)/g, ''));
    else if (/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(e)) hosts.add(e.toLowerCase());
    else throw new Error(`callbacks.allow: "${entry}" is not a range (10.1.0.0/16), an address, an origin (https://ehr.example.org) or a host name`);
  }
  try {
    return { ranges: new AddressRanges(ranges), origins, hosts };
  } catch (err) {
    throw new Error(`callbacks.allow: ${(err as Error).message}`);
  }
}

export class CallbackTargets {
  private allow: ReturnType<typeof parseAllow>;
  private narrowed: boolean;

  /** `allow`: config `callbacks.allow`; when set, only what it names is reached (and what it names is reached even on loopback). */
  constructor(allow?: string[], private lookup = (host: string) => dns.lookup(host, { all: true, verbatim: true })) {
    this.allow = parseAllow(allow ?? []);
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
    const named = this.allow.origins.has(u.origin) || this.allow.hosts.has(host.toLowerCase());
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
      if (this.narrowed && !this.allow.ranges.has(a)) return { ok: false, reason: `${a} is not in callbacks.allow` };
      if (!this.narrowed && FORBIDDEN.has(a)) return { ok: false, reason: `${a} is a loopback, link-local, metadata, multicast or unspecified address; name it in callbacks.allow to reach it` };
    }
    const address = plain(addresses[0]);
    return { ok: true, address, family: net.isIPv4(address) ? 4 : 6 };
  }
}
