// The one place that touches the mDNS library: a UDP 5353 socket that shares the port with avahi-daemon.
import makeMdns from 'multicast-dns';
import type { Answer, Question } from 'dns-packet';
import type { RemoteInfo } from 'node:dgram';

export type { Answer as MdnsRecord, Question as MdnsQuestion };

export interface MdnsPacket {
  id: number;
  questions: Question[];
  answers: Answer[];
  additionals: Answer[];
}

export interface MdnsSocket {
  /** Sends one multicast query (several questions in one packet, as responders like it). */
  query(questions: Question[]): void;
  /** Sends a response: multicast to 224.0.0.251 unless `to` is given (legacy unicast reply). */
  respond(answers: Answer[], additionals?: Answer[], to?: { address: string; port: number; id?: number; questions?: Question[] }): void;
  onResponse(fn: (packet: MdnsPacket, from: RemoteInfo) => void): void;
  onQuery(fn: (packet: MdnsPacket, from: RemoteInfo) => void): void;
  close(): Promise<void>;
}

export class MdnsError extends Error {
  constructor(
    readonly code: 'mdns_bind_failed',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Opens an IPv4 mDNS socket on 0.0.0.0:5353 with SO_REUSEADDR, so it coexists with avahi-daemon
 * (Linux delivers each multicast datagram to every socket bound with SO_REUSEADDR to the port).
 * Group membership is refreshed on every interface every 5 s, so interfaces that come up later join too.
 */
export function openMdns(opts: { port?: number } = {}): Promise<MdnsSocket> {
  const mdns = makeMdns({ port: opts.port ?? 5353, reuseAddr: true, loopback: true });
  // Joining the group fails on interfaces without MULTICAST (lo): that is expected, not an error.
  mdns.on('warning', () => {});
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      mdns.destroy();
      reject(new MdnsError('mdns_bind_failed', `cannot open the mDNS socket on UDP ${opts.port ?? 5353}: ${err.message}`));
    };
    mdns.once('error', onError);
    mdns.once('ready', () => {
      mdns.removeListener('error', onError);
      mdns.on('error', () => {}); // late socket errors must not crash the appliance; queries simply go unanswered
      resolve(wrap(mdns));
    });
  });
}

function wrap(mdns: makeMdns.MulticastDNS): MdnsSocket {
  let closed = false;
  const normalise = (p: Partial<MdnsPacket>): MdnsPacket => ({
    id: p.id ?? 0,
    questions: p.questions ?? [],
    answers: p.answers ?? [],
    additionals: p.additionals ?? [],
  });
  return {
    query(questions) {
      if (!closed) mdns.query({ questions });
    },
    respond(answers, additionals = [], to) {
      if (closed) return;
      if (to) {
        // Legacy unicast (a resolver that did not send from port 5353): echo id and questions, reply to its port.
        mdns.respond({ id: to.id ?? 0, questions: to.questions ?? [], answers, additionals }, { address: to.address, port: to.port });
      } else {
        mdns.respond({ answers, additionals });
      }
    },
    onResponse(fn) {
      mdns.on('response', (p: Partial<MdnsPacket>, from: RemoteInfo) => fn(normalise(p), from));
    },
    onQuery(fn) {
      mdns.on('query', (p: Partial<MdnsPacket>, from: RemoteInfo) => fn(normalise(p), from));
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise((resolve) => mdns.destroy(() => resolve()));
    },
  };
}

/** DNS names compare case-insensitively and may or may not carry the root dot. */
export function sameName(a: string, b: string): boolean {
  return a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();
}
