// mDNS across two network namespaces made by the test: a fake printer is found and merged, goes away and is
// marked gone; printbox's announcement is found and resolved by a client, its TXT fingerprint matches the TLS cert;
// and all of it still works with a real avahi-daemon bound to UDP 5353 in the same namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createNetnsPair, netnsUnavailable, selfSignedCert, type NetnsPair } from './peers/netns.js';
import { avahiUnavailable, startAvahi, type Avahi } from './peers/avahi.js';
import { printerServices } from '../runtime/discovery/printer-services.js';
import type { PrinterRecord } from '../runtime/system/state.js';

const unavailable = netnsUnavailable();
const BROWSE_OPTS = JSON.stringify({ requeryMs: 1000, goneAfterMs: 3000, removeAfterMs: 60_000 });

describe('mDNS between two network namespaces', () => {
  let pair: NetnsPair;
  let tmp: string;

  before(async () => {
    if (unavailable) return;
    pair = await createNetnsPair();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'pbx-mdns-'));
  });
  after(async () => {
    await pair?.cleanup();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('a printer advertising RAW and IPP with one UUID is one printer, preferring IPP, reachable at its address; it is marked gone when it leaves', async (t) => {
    if (unavailable) return t.skip(`SKIPPED: ${unavailable}`);
    const tag = randomBytes(3).toString('hex');
    const uuid = randomUUID();
    const printer = pair.node(pair.a, 'test/fixtures/discovery/fake-printer.ts', [
      JSON.stringify({
        name: `Fake Laser ${tag}`,
        host: `fake-${tag}.local`,
        address: pair.a.address,
        services: [
          { type: '_pdl-datastream._tcp', port: 9100, txt: { txtvers: '1', ty: 'Fake Laser 1000', product: '(Fake Laser 1000)', pdl: 'application/vnd.hp-pcl,application/postscript', UUID: uuid } },
          {
            type: '_ipp._tcp',
            port: 6310,
            subtypes: ['_universal'],
            txt: { txtvers: '1', rp: 'ipp/print', ty: 'Fake Laser 1000', pdl: 'application/pdf,image/pwg-raster', UUID: uuid, Color: 'T', Duplex: 'T', note: 'Room 12', adminurl: `http://fake-${tag}.local/` },
          },
        ],
      }),
    ]);
    // A second printer on the same address with its own UUID, killed without goodbye later.
    const uuid2 = randomUUID();
    const silent = pair.node(pair.a, 'test/fixtures/discovery/fake-printer.ts', [
      JSON.stringify({ name: `Label ${tag}`, host: `label-${tag}.local`, address: pair.a.address, services: [{ type: '_printer._tcp', port: 5515, txt: { rp: 'zebra', UUID: uuid2 } }] }),
    ]);
    await printer.waitFor((m) => m.ready, 10_000, 'fake printer ready');
    await silent.waitFor((m) => m.ready, 10_000, 'second fake printer ready');

    const browser = pair.node(pair.b, 'test/fixtures/discovery/browse.ts', [BROWSE_OPTS]);
    const started = Date.now();
    const found = await browser.waitFor((m) => m.printer?.id === uuid && m.printer.uris.length === 2, 10_000, 'the merged printer with both URIs');
    t.diagnostic(`merged printer found after ${Date.now() - started} ms`);
    const p = found.printer;
    assert.equal(p.state, 'present');
    assert.equal(p.name, `Fake Laser ${tag}`);
    assert.deepEqual(p.addresses, [pair.a.address]);
    assert.deepEqual(p.preferred, { uri: `ipp://${pair.a.address}:6310/ipp/print`, driver: 'ipp' });
    assert.deepEqual(
      p.uris.map((u: { uri: string }) => u.uri).sort(),
      [`ipp://${pair.a.address}:6310/ipp/print`, `raw://${pair.a.address}:9100`].sort(),
    );
    assert.equal(p.color, true);
    assert.equal(p.note, 'Room 12');
    assert.deepEqual(p.contentTypes.sort(), ['pcl', 'pdf', 'postscript', 'pwg-raster']);
    // Never two entries for the fake laser: every event about it carries the one id.
    const lpr = await browser.waitFor((m) => m.printer?.id === uuid2, 5000, 'the LPR printer on the same address');
    assert.equal(lpr.printer.preferred.uri, `lpr://${pair.a.address}:5515/zebra`);
    assert.equal(browser.messages.filter((m) => m.printer?.name === `Fake Laser ${tag}` && m.printer.id !== uuid).length, 0);

    // The resolved address and port really reach the printer: send bytes from B to the RAW URI.
    const payload = randomBytes(50_000);
    const sender = pair.exec(pair.b, process.execPath, ['-e', `const s=require('net').connect(9100,'${pair.a.address}',()=>{s.end(Buffer.from('${payload.toString('base64')}','base64'))});s.on('close',()=>process.exit(0))`]);
    await sender.exited;
    const got = await printer.waitFor((m) => m.received?.port === 9100, 5000, 'bytes at the printer sink');
    assert.equal(got.received.sha256, createHash('sha256').update(payload).digest('hex'));

    // Goodbye packet (TTL 0): gone at once, not deleted.
    const byeAt = Date.now();
    printer.signal('SIGTERM');
    const gone = await browser.waitFor((m) => m.change === 'gone' && m.printer.id === uuid, 3000, 'gone after goodbye');
    t.diagnostic(`gone ${Date.now() - byeAt} ms after goodbye`);
    assert.equal(gone.printer.state, 'gone');
    assert.equal(gone.printer.uris.length, 2, 'a gone printer keeps its last known URIs');
    assert.equal(gone.count, 2, 'still listed');

    // No goodbye (power cut): gone once it misses re-queries (goneAfterMs 3 s, re-query 1 s).
    const killAt = Date.now();
    silent.signal('SIGKILL');
    await browser.waitFor((m) => m.change === 'gone' && m.printer.id === uuid2, 8000, 'gone after silence');
    const silentMs = Date.now() - killAt;
    t.diagnostic(`gone ${silentMs} ms after the printer fell silent`);
    assert.ok(silentMs >= 2000, `not before goneAfterMs (${silentMs} ms)`);
    assert.equal(browser.messages.filter((m) => m.change === 'removed').length, 0, 'nothing removed within the grace period');
  });

  test('the appliance announced in B is found from A: _printbox._tcp, its .local name resolves to B, TXT fp equals the TLS certificate', async (t) => {
    if (unavailable) return t.skip(`SKIPPED: ${unavailable}`);
    const tag = randomBytes(3).toString('hex');
    const host = `pbx-b-${tag}.local`;
    const { cert, key, fingerprint } = await selfSignedCert(host);
    await writeFile(path.join(tmp, 'cert.pem'), cert);
    await writeFile(path.join(tmp, 'key.pem'), key);
    const appliance = pair.node(pair.b, 'test/fixtures/discovery/announce.ts', [
      JSON.stringify({ name: `printbox ${tag}`, host, certFile: path.join(tmp, 'cert.pem'), keyFile: path.join(tmp, 'key.pem'), version: '0.1.0-test' }),
    ]);
    const ready = await appliance.waitFor((m) => m.ready, 10_000, 'announcer ready');
    assert.equal(ready.fingerprint, fingerprint);

    const client = pair.node(pair.a, 'test/fixtures/discovery/find-printbox.ts');
    const res = await client.waitFor((m) => m.found || m.error, 20_000, 'the client to find printbox');
    assert.ok(res.found, `client failed: ${res.error}`);
    const f = res.found;
    assert.equal(f.instance, `printbox ${tag}._printbox._tcp.local`);
    assert.equal(f.httpsInstance, `printbox ${tag}._https._tcp.local`);
    assert.equal(f.host, host);
    assert.equal(f.port, ready.port);
    assert.deepEqual(f.addresses, [pair.b.address], 'A query for the host name answered with B’s address');
    assert.deepEqual(f.unicast, [pair.b.address], 'a legacy unicast A query is answered too');
    assert.equal(f.txt.path, '/v1');
    assert.equal(f.txt.version, '0.1.0-test');
    assert.equal(f.txt.fp, fingerprint, 'TXT fp is the certificate fingerprint');
    assert.equal(f.tlsFingerprint, fingerprint, 'the TLS server at the resolved address presents that certificate');

    appliance.signal('SIGTERM');
    await client.waitFor((m) => m.goodbye === f.instance, 5000, 'goodbye seen by the client');
  });
});

describe('printbox mDNS beside a running avahi-daemon (same namespace, both on UDP 5353)', () => {
  const why = unavailable ?? avahiUnavailable();
  let pair: NetnsPair;
  let tmp: string;
  let avahi: Avahi | undefined;

  before(async () => {
    if (why) return;
    pair = await createNetnsPair();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'pbx-avahi-test-'));
  });
  after(async () => {
    await avahi?.stop();
    await pair?.cleanup();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('avahi advertises a printer our browser finds (in its namespace and across), while our announcement is answered and seen by avahi', async (t) => {
    if (why) return t.skip(`SKIPPED: ${why}`);
    const tag = randomBytes(3).toString('hex');
    avahi = await startAvahi(pair, pair.b, `pbx-avahi-${tag}`);
    const uuid = randomUUID();
    await avahi.publish(`Avahi Printer ${tag}`, '_ipp._tcp', 631, ['rp=ipp/print', `UUID=${uuid}`, 'pdl=application/pdf', 'Color=F'], '_universal._sub._ipp._tcp');

    // Our announcer binds 5353 in the same namespace while avahi holds it.
    const host = `pbx-b-${tag}.local`;
    const { cert, key, fingerprint } = await selfSignedCert(host);
    await writeFile(path.join(tmp, 'cert.pem'), cert);
    await writeFile(path.join(tmp, 'key.pem'), key);
    const appliance = pair.node(pair.b, 'test/fixtures/discovery/announce.ts', [
      JSON.stringify({ name: `printbox ${tag}`, host, certFile: path.join(tmp, 'cert.pem'), keyFile: path.join(tmp, 'key.pem'), version: '0.1.0-test' }),
    ]);
    const ready = await appliance.waitFor((m) => m.ready, 10_000, 'announcer ready beside avahi');

    // Our browser beside avahi (same namespace) and one across the veth both find avahi's printer.
    const local = pair.node(pair.b, 'test/fixtures/discovery/browse.ts', [BROWSE_OPTS]);
    const remote = pair.node(pair.a, 'test/fixtures/discovery/browse.ts', [BROWSE_OPTS]);
    for (const [where, browser] of [['same namespace as avahi', local], ['other namespace', remote]] as const) {
      const hit = await browser.waitFor((m) => m.printer?.id === uuid, 10_000, `avahi's printer (${where})`);
      assert.equal(hit.printer.name, `Avahi Printer ${tag}`);
      assert.equal(hit.printer.host, `pbx-avahi-${tag}.local`);
      assert.deepEqual(hit.printer.preferred, { uri: `ipp://${pair.b.address}:631/ipp/print`, driver: 'ipp' }, where);
    }

    // Our announcement is still answered (an independent client in A) …
    const client = pair.node(pair.a, 'test/fixtures/discovery/find-printbox.ts');
    const res = await client.waitFor((m) => m.found || m.error, 20_000, 'the client to find printbox');
    assert.ok(res.found, `client failed: ${res.error}`);
    assert.deepEqual(res.found.addresses, [pair.b.address]);
    assert.equal(res.found.port, ready.port);
    assert.equal(res.found.txt.fp, fingerprint);

    // … and avahi itself, in the same namespace, sees and resolves it.
    const seen = await avahi.browse('_printbox._tcp');
    const row = seen.find((r) => r[3] === `printbox\\032${tag}`);
    assert.ok(row, `avahi-browse did not list our service: ${JSON.stringify(seen)}`);
    assert.equal(row[6], host);
    assert.equal(row[7], pair.b.address);
    assert.equal(row[8], String(ready.port));
    assert.match(row[9], new RegExp(`"fp=${fingerprint}"`));
  });
});

describe('printbox printers on mDNS as IPP Everywhere printers, seen by avahi', () => {
  const why = unavailable ?? avahiUnavailable();
  let pair: NetnsPair;
  let tmp: string;
  let avahi: Avahi | undefined;

  before(async () => {
    if (why) return;
    pair = await createNetnsPair();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'pbx-ipps-mdns-'));
  });
  after(async () => {
    await avahi?.stop();
    await pair?.cleanup();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('each printer is _ipps._tcp with the _print and _universal subtypes and the TXT keys clients read; announce:false hides one', async (t) => {
    if (why) return t.skip(`SKIPPED: ${why}`);
    const tag = randomBytes(3).toString('hex');
    avahi = await startAvahi(pair, pair.a, `pbx-ipps-avahi-${tag}`);
    const host = `pbx-ipps-${tag}.local`;
    const { cert, key } = await selfSignedCert(host);
    await writeFile(path.join(tmp, 'cert.pem'), cert);
    await writeFile(path.join(tmp, 'key.pem'), key);
    const printer = (name: string, extra: Partial<PrinterRecord> = {}): PrinterRecord => ({ id: randomUUID(), name, uri: 'raw://10.0.0.9:9100', enabled: true, errorPolicy: 'retry-job', retry: { limit: 1, baseMs: 1, maxMs: 1, heldRetryMs: 1 }, defaults: {}, createdAt: new Date().toISOString(), ...extra });
    const front = printer('front');
    const services = printerServices([front, printer('quiet', { announce: false }), printer('mono', { defaults: { color: false } })], { port: 31990, adminUrl: `https://${host}:31990/`, location: `ward ${tag}` });
    const appliance = pair.node(pair.b, 'test/fixtures/discovery/announce.ts', [
      JSON.stringify({ name: `printbox ${tag}`, host, certFile: path.join(tmp, 'cert.pem'), keyFile: path.join(tmp, 'key.pem'), version: '0.1.0-test', services }),
    ]);
    await appliance.waitFor((m) => m.ready, 10_000, 'announcer ready');

    const rows = await avahi.browse('_ipps._tcp');
    const row = rows.find((r) => r[3] === 'front');
    assert.ok(row, `avahi-browse did not list printer "front": ${JSON.stringify(rows)}`);
    assert.equal(row[6], host);
    assert.equal(row[7], pair.b.address);
    assert.equal(row[8], '31990');
    const txt = new Map([...row[9].matchAll(/"([^"=]+)=([^"]*)"/g)].map((m) => [m[1], m[2]]));
    assert.equal(txt.get('rp'), 'ipp/print/front');
    assert.equal(txt.get('UUID'), front.id);
    // The same list as the IPP printer's document-format-supported: both come from the capabilities.
    assert.equal(txt.get('pdl'), 'application/octet-stream,application/pdf,image/jpeg,image/pwg-raster');
    for (const [k, v] of [['txtvers', '1'], ['qtotal', '1'], ['TLS', '1.2'], ['Color', 'T'], ['Duplex', 'T'], ['URF', 'none'], ['kind', 'document'], ['note', `ward ${tag}`], ['adminurl', `https://${host}:31990/`], ['ty', 'printbox queue'], ['product', '(printbox queue)'], ['printer-type', '0x58']]) assert.equal(txt.get(k), v, k);
    assert.equal(new Map([...rows.find((r) => r[3] === 'mono')![9].matchAll(/"([^"=]+)=([^"]*)"/g)].map((m) => [m[1], m[2]])).get('Color'), 'F');
    assert.ok(!rows.some((r) => r[3] === 'quiet'), 'announce:false is not advertised');
    for (const sub of ['_print', '_universal']) {
      const subRows = await avahi.browse(`${sub}._sub._ipps._tcp`);
      assert.ok(subRows.some((r) => r[3] === 'front'), `${sub} subtype: ${JSON.stringify(subRows)}`);
    }
    // A printer removed from the box says goodbye: avahi forgets it at once, the others stay.
    appliance.signal('SIGUSR2');
    await appliance.waitFor((m) => m.refreshed, 5000, 'the announcer refreshed');
    // RFC 6762 §10.1: a record said goodbye to (TTL 0) is kept one more second before it is dropped.
    await new Promise((r) => setTimeout(r, 2000));
    const after = await avahi.browse('_ipps._tcp');
    assert.ok(!after.some((r) => r[3] === 'front'), `front is still listed after its goodbye: ${JSON.stringify(after)}`);
    assert.ok(after.some((r) => r[3] === 'mono'));
  });
});
