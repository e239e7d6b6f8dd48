// The whole appliance on a LAN made of two network namespaces: it finds a printer by mDNS, adopts it in one
// call, prints to it, sees it go; and a client in the other namespace finds the appliance and pins its certificate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID, createHash } from 'node:crypto';
import { createNetnsPair, netnsUnavailable, ROOT, type NetnsPair, type NsProcess } from './peers/netns.js';
import { multipart } from './helpers/api.js';
import { until } from './helpers/appliance.js';

const unavailable = netnsUnavailable();
let pair: NetnsPair;
let dataDir: string;
let appliance: NsProcess;

/** HTTP over the appliance's admin socket: reachable from the root namespace through the shared filesystem. */
function admin(method: string, url: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: path.join(dataDir, 'admin.sock'), method, path: url, headers }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

before(async () => {
  if (unavailable) return;
  pair = await createNetnsPair();
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx-lan-'));
  appliance = pair.exec(pair.b, process.execPath, [path.join(ROOT, 'bin/printbox.mjs'), 'serve', '--data', dataDir, '--port', '31990', '--host', '0.0.0.0'], {
    PRINTBOX_MDNS: '1',
    PRINTBOX_MIN_FREE_BYTES: '0',
  });
  await until('the appliance admin socket', async () => (await admin('GET', '/v1/health').catch(() => ({ status: 0 }))).status === 200, 30000, 100);
});
after(async () => {
  await pair?.cleanup();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

test('the appliance discovers a RAW printer in the other namespace, adopts it in one call, prints to it, and marks it gone', async (t) => {
  if (unavailable) return t.skip(`SKIPPED: ${unavailable}`);
  const uuid = randomUUID();
  const name = `Ward Printer ${randomBytes(2).toString('hex')}`;
  const printer = pair.node(pair.a, 'test/fixtures/discovery/fake-printer.ts', [
    JSON.stringify({ name, host: `ward-${uuid.slice(0, 6)}.local`, address: pair.a.address, services: [{ type: '_pdl-datastream._tcp', port: 9100, txt: { txtvers: '1', ty: 'Ward 9100', pdl: 'application/vnd.hp-pcl', UUID: uuid } }] }),
  ]);
  await printer.waitFor((m) => m.ready, 10000, 'fake printer ready');
  const found = await until('the printer in GET /v1/discovered', async () => {
    const r = await admin('GET', '/v1/discovered');
    return r.json?.printers?.find((p: any) => p.id === uuid && p.state === 'present');
  }, 20000, 200);
  assert.equal(found.preferred.uri, `raw://${pair.a.address}:9100`);
  const adopted = await admin('POST', `/v1/discovered/${uuid}/adopt`, '{}', { 'content-type': 'application/json' });
  assert.equal(adopted.status, 201, JSON.stringify(adopted.json));
  assert.equal(adopted.json.uri, `raw://${pair.a.address}:9100`);
  const doc = randomBytes(50000);
  const { contentType, body } = multipart({ printer: adopted.json.id, contentType: 'raw' }, doc);
  const posted = await admin('POST', '/v1/jobs', body as Buffer, { 'content-type': contentType });
  assert.equal(posted.status, 201, JSON.stringify(posted.json));
  const got = await printer.waitFor((m) => m.received?.port === 9100, 15000, 'the job at the printer');
  assert.equal(got.received.sha256, createHash('sha256').update(doc).digest('hex'));
  printer.child.kill('SIGTERM'); // sends goodbye packets
  await until('the printer marked gone', async () => (await admin('GET', '/v1/discovered')).json.printers.find((p: any) => p.id === uuid)?.state === 'gone', 15000, 200);
});

test('a client in the other namespace finds the appliance, resolves its name, and the TXT fingerprint is the certificate it presents', async (t) => {
  if (unavailable) return t.skip(`SKIPPED: ${unavailable}`);
  const client = pair.node(pair.a, 'test/fixtures/discovery/find-printbox.ts');
  const res = await client.waitFor((m) => m.found || m.error, 20000, 'the client to find printbox');
  assert.ok(res.found, `client failed: ${res.error}`);
  assert.equal(res.found.port, 31990);
  assert.deepEqual(res.found.addresses, [pair.b.address]);
  const cert = await fs.readFile(path.join(dataDir, 'tls', 'cert.pem'), 'utf8');
  const { X509Certificate } = await import('node:crypto');
  const fp = createHash('sha256').update(new X509Certificate(cert).raw).digest('hex');
  assert.equal(res.found.txt.fp, fp);
  if (res.found.tlsFingerprint) assert.equal(res.found.tlsFingerprint.replace(/:/g, '').toLowerCase(), fp, 'the server presents that certificate');
  const names = new X509Certificate(cert).subjectAltName ?? '';
  assert.ok(names.includes(`DNS:${res.found.host.replace(/\.$/, '')}`), `the advertised host ${res.found.host} is a name in the certificate (${names})`);
});
