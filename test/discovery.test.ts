// Discovery logic from recorded printer responses: TXT parsing, URIs, merging one device's services, presence over time.
// The packets go through dns-packet encode/decode, so the browser sees exactly what the wire would give it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import packet from 'dns-packet';
import type { Answer } from 'dns-packet';
import type { FoundPrinter } from '../drivers/contract.js';
import { PrinterDiscovery, type DiscoveryChange } from '../runtime/discovery/browser.js';
import type { MdnsPacket, MdnsQuestion, MdnsSocket } from '../runtime/discovery/mdns.js';
import { adoptionFor, groupByDevice, mergeDevice, parseTxt, pickPreferred, serviceUri, type ServiceRecord } from '../runtime/discovery/merge.js';
import { ROOT } from './peers/netns.js';

interface Fixture {
  answers: Answer[];
  additionals: Answer[];
}
const fixture = (name: string): Fixture => JSON.parse(readFileSync(path.join(ROOT, 'test/fixtures/discovery', `${name}.json`), 'utf8'));

/** Round-trips records through the DNS wire format, as multicast-dns would deliver them. */
function wire(f: Partial<Fixture>): MdnsPacket {
  const p = packet.decode(packet.encode({ type: 'response', flags: packet.AUTHORITATIVE_ANSWER, answers: f.answers ?? [], additionals: f.additionals ?? [] }));
  return { id: 0, questions: [], answers: p.answers ?? [], additionals: p.additionals ?? [] };
}

/** Stands in for the UDP socket: records queries, lets the test deliver responses. */
class FakeMdns implements MdnsSocket {
  queries: MdnsQuestion[][] = [];
  private onResp: ((p: MdnsPacket, from: any) => void)[] = [];
  query(q: MdnsQuestion[]) {
    this.queries.push(q);
  }
  respond() {}
  onResponse(fn: (p: MdnsPacket, from: any) => void) {
    this.onResp.push(fn);
  }
  onQuery() {}
  async close() {}
  deliver(f: Partial<Fixture>) {
    const p = wire(f);
    for (const fn of this.onResp) fn(p, { address: '192.168.1.40', port: 5353 });
  }
  asked(type: string, name: string): boolean {
    return this.queries.some((qs) => qs.some((q) => q.type === type && q.name.toLowerCase() === name.toLowerCase()));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function browserWith(opts: { goneAfterMs?: number; removeAfterMs?: number; schemes?: string[] } = {}) {
  const mdns = new FakeMdns();
  const d = new PrinterDiscovery({ mdns, requeryMs: 60_000, goneAfterMs: opts.goneAfterMs ?? 60_000, removeAfterMs: opts.removeAfterMs ?? 60_000, schemes: opts.schemes });
  const events: DiscoveryChange[] = [];
  d.on('change', (e) => events.push(e));
  await d.start();
  return { mdns, d, events };
}

async function until(check: () => boolean, ms: number, what: string) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function records(f: Fixture): ServiceRecord[] {
  // Direct use of the pure merge functions, without the browser's cache.
  const all = [...f.answers, ...f.additionals] as any[];
  return all
    .filter((r) => r.type === 'SRV')
    .map((srv) => ({
      instance: srv.name,
      type: srv.name.match(/(_[a-z-]+\._tcp)\.local$/)[1],
      host: srv.data.target,
      port: srv.data.port,
      addresses: all.filter((a) => (a.type === 'A' || a.type === 'AAAA') && a.name === srv.data.target).map((a) => a.data),
      txt: parseTxt(all.find((t) => t.type === 'TXT' && t.name === srv.name)?.data),
    }));
}

test('TXT keys are case-insensitive, the first of a repeated key wins, a bare key is present with an empty value', () => {
  assert.deepEqual(parseTxt([Buffer.from('Color=T'), Buffer.from('color=F'), Buffer.from('Duplex'), Buffer.from('note=a=b'), Buffer.from('')]), {
    color: 'T',
    duplex: '',
    note: 'a=b',
  });
});

test('each service type becomes the URI its driver takes', () => {
  const base = { instance: 'x', host: 'p.local', addresses: ['10.0.0.9', 'fe80::1'], txt: { rp: 'ipp/print' } };
  assert.equal(serviceUri({ ...base, type: '_ipps._tcp', port: 443 }).uri, 'ipps://10.0.0.9:443/ipp/print');
  assert.equal(serviceUri({ ...base, type: '_ipp._tcp', port: 631 }).uri, 'ipp://10.0.0.9:631/ipp/print');
  assert.equal(serviceUri({ ...base, type: '_pdl-datastream._tcp', port: 9100 }).uri, 'raw://10.0.0.9:9100');
  assert.equal(serviceUri({ ...base, type: '_printer._tcp', port: 515, txt: { rp: 'BINPS' } }).uri, 'lpr://10.0.0.9/BINPS');
  assert.equal(serviceUri({ ...base, type: '_ipp._tcp', port: 631, txt: {} }).uri, 'ipp://10.0.0.9:631/ipp/print', 'rp defaults to ipp/print');
  assert.equal(serviceUri({ ...base, addresses: ['2001:db8::5'], type: '_pdl-datastream._tcp', port: 9100 }).uri, 'raw://[2001:db8::5]:9100');
  assert.equal(serviceUri({ ...base, addresses: ['fe80::1'], type: '_pdl-datastream._tcp', port: 9100 }).uri, 'raw://p.local:9100', 'no zone-less link-local URIs');
});

test('the preferred wire is ipps > ipp > raw > lpr, among the drivers this box has', () => {
  const uris = ['lpr', 'raw', 'ipp', 'ipps'].map((driver) => ({ uri: `${driver}://h`, driver, service: '' }));
  assert.equal(pickPreferred(uris)?.driver, 'ipps');
  assert.equal(pickPreferred(uris, ['raw', 'lpr', 'ipp'])?.driver, 'ipp');
  assert.equal(pickPreferred(uris, ['lpr', 'raw'])?.driver, 'raw');
  assert.equal(pickPreferred(uris, ['serial']), null);
});

test('an HP advertising IPP, IPPS, RAW and LPD (UUID only on the IPP ones) is one printer with four URIs', () => {
  const groups = groupByDevice(records(fixture('hp-laserjet')));
  assert.equal(groups.size, 1);
  const [id, recs] = [...groups][0];
  assert.equal(id, '564e4333-4a32-4b4a-4c4d-a0b1c2d3e4f5');
  const p = mergeDevice(id, recs);
  assert.equal(p.name, 'HP LaserJet Pro M404dn [A1B2C3]');
  assert.equal(p.model, 'HP LaserJet Pro M404-M405');
  assert.deepEqual(p.preferred, { uri: 'ipps://192.168.1.40:443/ipp/print', driver: 'ipps' });
  assert.deepEqual(
    p.uris.map((u) => u.uri),
    ['ipps://192.168.1.40:443/ipp/print', 'ipp://192.168.1.40:631/ipp/print', 'raw://192.168.1.40:9100', 'lpr://192.168.1.40/BINPS'],
  );
  assert.deepEqual(p.addresses, ['192.168.1.40', 'fe80::9657:a5ff:fea1:b2c3']);
  assert.equal(p.color, false);
  assert.equal(p.duplex, true);
  assert.equal(p.tls, '1.2');
  assert.equal(p.note, '2nd floor, copy room');
  assert.equal(p.adminurl, 'http://NPIA1B2C3.local./#hId-pgAirPrint');
  assert.deepEqual(p.contentTypes.sort(), ['pcl', 'pdf', 'postscript', 'pwg-raster']);
  assert.ok(p.languages.includes('image/urf'), 'languages keep what printbox has no content type for');
});

test('a print server with two queues (two UUIDs, one host) stays two printers; urn:uuid: prefixes are normalised', () => {
  const groups = groupByDevice(records(fixture('print-server')));
  assert.deepEqual([...groups.keys()].sort(), ['a1c2e3f4-0000-3000-8000-00000000000a', 'a1c2e3f4-0000-3000-8000-00000000000b']);
  const labels = mergeDevice('b', groups.get('a1c2e3f4-0000-3000-8000-00000000000b')!);
  assert.equal(labels.preferred?.uri, 'ipp://192.168.1.5:631/printers/labels');
  assert.deepEqual(labels.contentTypes, ['raw']);
});

test('services without any UUID merge by host name, and the id comes from the host', () => {
  const groups = groupByDevice(records(fixture('raw-only')));
  assert.deepEqual([...groups.keys()], ['km1370.local']);
  const p = mergeDevice('km1370.local', groups.get('km1370.local')!);
  assert.equal(p.model, 'Kyocera FS-1370DN', 'model from usb_MFG + usb_MDL');
  assert.deepEqual(p.preferred, { uri: 'raw://192.168.1.77:9100', driver: 'raw' });
  assert.equal(p.uris[1].uri, 'lpr://192.168.1.77/lp1');
  assert.equal(p.color, null, 'unknown stays unknown');
});

test('adopting a discovered printer creates it under its name on the preferred URI; with no usable driver it is refused with a code', () => {
  const p = { ...mergeDevice('x', records(fixture('raw-only'))), state: 'present' as const, firstSeen: '', lastSeen: '' };
  assert.deepEqual(adoptionFor(p), { name: 'Kyocera FS-1370DN', uri: 'raw://192.168.1.77:9100' });
  const none = { ...p, preferred: null };
  assert.throws(() => adoptionFor(none), (e: any) => e.code === 'printer_not_adoptable' && /offers no wire printbox has a driver for \(raw, lpr\)/.test(e.message));
});

test('the browser asks for all four printer types and their _universal subtypes in one query', async () => {
  const { mdns, d } = await browserWith();
  try {
    const first = mdns.queries[0].map((q) => `${q.type} ${q.name}`).sort();
    assert.deepEqual(first, [
      'PTR _ipp._tcp.local',
      'PTR _ipps._tcp.local',
      'PTR _pdl-datastream._tcp.local',
      'PTR _printer._tcp.local',
      'PTR _universal._sub._ipp._tcp.local',
      'PTR _universal._sub._ipps._tcp.local',
      'PTR _universal._sub._pdl-datastream._tcp.local',
      'PTR _universal._sub._printer._tcp.local',
    ]);
  } finally {
    await d.stop();
  }
});

test('one response burst gives one "added" event; the same answers again change nothing; goodbyes mark it gone, then it is removed after the grace', async () => {
  const { mdns, d, events } = await browserWith({ removeAfterMs: 400 });
  try {
    const hp = fixture('hp-laserjet');
    mdns.deliver(hp);
    await until(() => events.length > 0, 2000, 'added');
    await sleep(300);
    assert.deepEqual(events.map((e) => e.type), ['added']);
    assert.equal(d.list().length, 1);
    const id = events[0].printer.id;

    mdns.deliver(hp); // a re-query's answers: lastSeen moves, no event
    await sleep(300);
    assert.deepEqual(events.map((e) => e.type), ['added']);
    assert.ok(d.get(id)!.lastSeen >= events[0].printer.lastSeen);

    // The RAW service withdraws alone: still present, one URI fewer.
    mdns.deliver({ answers: hp.answers.filter((a) => a.name === '_pdl-datastream._tcp.local').map((a) => ({ ...a, ttl: 0 }) as Answer) });
    await until(() => events.length === 2, 2000, 'updated');
    assert.equal(events[1].type, 'updated');
    assert.equal(events[1].printer.state, 'present');
    assert.equal(events[1].printer.uris.length, 3);

    mdns.deliver({ answers: hp.answers.map((a) => ({ ...a, ttl: 0 }) as Answer) });
    await until(() => events.length === 3, 2000, 'gone');
    assert.equal(events[2].type, 'gone');
    assert.equal(d.get(id)?.state, 'gone', 'still listed while gone');
    await until(() => events.length === 4, 3000, 'removed');
    assert.equal(events[3].type, 'removed');
    assert.equal(d.get(id), undefined);
  } finally {
    await d.stop();
  }
});

test('a printer that stops answering re-queries (no goodbye) is marked gone after goneAfterMs; it comes back as "updated"', async () => {
  const { mdns, d, events } = await browserWith({ goneAfterMs: 400 });
  try {
    mdns.deliver(fixture('raw-only'));
    await until(() => events.length === 1, 2000, 'added');
    const t0 = Date.now();
    await until(() => events.length === 2, 3000, 'gone');
    assert.equal(events[1].type, 'gone');
    assert.ok(Date.now() - t0 >= 250, 'not before goneAfterMs');
    mdns.deliver(fixture('raw-only'));
    await until(() => events.length === 3, 2000, 'back');
    assert.equal(events[2].type, 'updated');
    assert.equal(events[2].printer.state, 'present');
  } finally {
    await d.stop();
  }
});

test('a PTR-only answer makes the browser ask for SRV and TXT, then for the host address, and the printer appears once resolved', async () => {
  const { mdns, d, events } = await browserWith();
  try {
    const f = fixture('raw-only');
    const instance = 'Kyocera FS-1370DN._pdl-datastream._tcp.local';
    mdns.deliver({ answers: f.answers.filter((a) => a.name === '_pdl-datastream._tcp.local') });
    assert.ok(mdns.asked('SRV', instance) && mdns.asked('TXT', instance), 'asked SRV and TXT');
    mdns.deliver({ answers: f.additionals.filter((a) => a.name === instance) });
    assert.ok(mdns.asked('A', 'KM1370.local'), 'asked the host address');
    await sleep(250);
    assert.equal(events.length, 0, 'not listed before it has an address');
    mdns.deliver({ answers: f.additionals.filter((a) => a.type === 'A') });
    await until(() => events.length === 1, 2000, 'added');
    assert.equal(events[0].printer.preferred?.uri, 'raw://192.168.1.77:9100');
  } finally {
    await d.stop();
  }
});

test("a driver's discover() joins the same list; a rescan that no longer yields a port marks it gone", async () => {
  const { d, events } = await browserWith({ schemes: ['raw', 'serial'] });
  try {
    let ports = ['/dev/ttyUSB0', '/dev/ttyS1'];
    async function* discover(): AsyncIterable<FoundPrinter> {
      for (const p of ports) yield { id: p, name: `Serial ${p}`, uri: `serial://${p}?baud=9600`, driver: 'serial', info: { model: 'TM-T88' } };
    }
    await d.addSource(discover, { name: 'serial', everyMs: 150 });
    assert.deepEqual(d.list().map((p) => p.id).sort(), ['serial-dev-ttys1', 'serial-dev-ttyusb0']);
    const usb = d.get('serial-dev-ttyusb0')!;
    assert.deepEqual(usb.preferred, { uri: 'serial:///dev/ttyUSB0?baud=9600', driver: 'serial' });
    assert.equal(usb.model, 'TM-T88');
    ports = ['/dev/ttyS1']; // cable unplugged
    await until(() => events.some((e) => e.type === 'gone'), 2000, 'gone');
    assert.deepEqual(events.filter((e) => e.type === 'gone').map((e) => e.printer.id), ['serial-dev-ttyusb0']);
    assert.equal(d.get('serial-dev-ttys1')?.state, 'present');
  } finally {
    await d.stop();
  }
});
