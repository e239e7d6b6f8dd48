// Moving from Vasion: a client written from Vasion's published request shapes only (raw https, its own multipart)
// prints through printbox unchanged; every field and value alias lands; nothing unknown is silently dropped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { addRawPrinter, freePort, spawnAppliance, startAppliance, tempDir, until, type TestAppliance } from './helpers/appliance.js';

let box: TestAppliance;
let printer: Sink;
const callbacks: { path: string; body: any }[] = [];
let receiver: http.Server;
let callbackBase = '';

before(async () => {
  printer = await startSink();
  box = await startAppliance({
    fieldAliases: { printerPath: 'printer', collate: null },
    anonymousSubmit: ['127.0.0.2/32'],
    siteId: 'st-mary',
    callbacks: { allow: ['127.0.0.1/32'] }, // the callback receiver listens on loopback
  });
  // Exactly one printer: the case where a wrong `queue` used to print here anyway.
  await addRawPrinter(box.api, 'ward-3', printer.port);
  receiver = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      callbacks.push({ path: req.url ?? '', body: JSON.parse(text) });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  callbackBase = `http://127.0.0.1:${(receiver.address() as import('node:net').AddressInfo).port}`;
});

after(async () => {
  await box.stop();
  await printer.close();
  receiver.close();
});

// ---- the Vasion-style client: only what Vasion's OpenAPI files and public clients show, nothing of printbox's helpers

interface Reply {
  status: number;
  type: string;
  text: string;
  json: any;
}

function vasionRequest(method: string, url: string, opts: { headers?: Record<string, string>; body?: Buffer | string; localAddress?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(url, `https://127.0.0.1:${box.running.port}`), { method, headers: opts.headers, ca: box.running.tls.cert, localAddress: opts.localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text, json });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** multipart/form-data as Python's MultipartEncoder sends it: text fields, then `file` with a filename. */
function form(fields: Record<string, string>, file: Buffer, filename = 'report.pdf') {
  const boundary = `vasion${randomBytes(8).toString('hex')}`;
  const parts = Object.entries(fields).map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`);
  const body = Buffer.concat([
    Buffer.from(parts.join('')),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/pdf\r\n\r\n`),
    file,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

/** Cloud Link's Print Job Request: POST /v1/print, `Authorization: <API key>` (no scheme) and `X-Site-ID`. */
function printJob(key: string | undefined, fields: Record<string, string>, file: Buffer, extra: { localAddress?: string; site?: string } = {}) {
  const { body, contentType } = form(fields, file);
  const headers: Record<string, string> = { 'Content-Type': contentType, 'X-Site-ID': extra.site ?? 'st-mary' };
  if (key) headers.Authorization = key;
  return vasionRequest('POST', '/v1/print', { headers, body, localAddress: extra.localAddress });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const pdf = (label: string) => Buffer.from(`%PDF-1.4\n% ${label} |\n`.padEnd(400, '.') + '\n%%EOF\n');
const printedLabels = () => printer.jobs.map((j) => /% (\S+) \|/.exec(j.data!.toString('latin1'))?.[1]);
const jobView = async (id: string) => (await box.api.request('GET', `/v1/jobs/${id}`)).json;

test('a Cloud Link client prints through POST /v1/print with queue, username, copies and a raw Authorization key', async () => {
  const r = await printJob(box.token, { queue: 'Hospital/Floor 2/ward-3', username: 'nurse.jones', copies: '2' }, pdf('cloudlink-1'));
  assert.equal(r.status, 201, r.text);
  assert.match(r.json.jobID, UUID, 'PrintJobResponse: jobID at the top level');
  const job = await jobView(r.json.jobID);
  assert.equal(job.printer, box.running.app.printers.find('ward-3')!.id);
  assert.equal(job.user, 'nurse.jones');
  assert.equal(job.options.copies, 2);
  await until('the job printed', () => printedLabels().includes('cloudlink-1'));
  // The same key with "Bearer" and as the Basic password (the on-prem API's two schemes) works too.
  const basic = Buffer.from(`any:${box.token}`).toString('base64');
  for (const auth of [`Bearer ${box.token}`, `Basic ${basic}`, `"${box.token}"`]) {
    const { body, contentType } = form({ queue: 'ward-3' }, pdf('auth'));
    const a = await vasionRequest('POST', '/v1/print', { headers: { Authorization: auth, 'Content-Type': contentType }, body });
    assert.equal(a.status, 201, `${auth.split(' ')[0]}: ${a.text}`);
  }
});

test('GET /healthcheck answers 200 "OK" without a token', async () => {
  const r = await vasionRequest('GET', '/healthcheck');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'OK');
  assert.match(r.type, /^text\/plain/);
});

test('a Vasion batch: string batchID and an unknown property, jobs posted in reverse, body-carrying close, printed in listed order, callbacks in JobStatusCallback shape', async () => {
  const jobIDs = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
  const before = printer.jobs.length;
  const open = await vasionRequest('POST', '/v1/batches', {
    headers: { Authorization: box.token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ batchID: 'batch-2024-001', jobIDs, requireAllJobs: false, name: 'Morning print run', priority: 'high' }),
  });
  assert.equal(open.status, 201, open.text);
  assert.equal(open.json.batchID, 'batch-2024-001');
  assert.deepEqual(open.json.warnings, ['Batch Open property "priority" is not one printbox knows; it was ignored']);
  for (const [i, id] of [...jobIDs.entries()].reverse()) {
    const r = await printJob(box.token, { jobID: id, batchID: 'batch-2024-001', queue: 'ward-3', username: 'clerk', statusURL: `${callbackBase}/status` }, pdf(`batch-${i}`));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.jobID, id);
    assert.equal(r.json.state, 'waiting-for-batch');
  }
  assert.equal(printer.jobs.length, before, 'nothing prints before Batch Close');
  const close = await vasionRequest('POST', '/v1/batches/close', { headers: { Authorization: box.token, 'Content-Type': 'application/json' }, body: JSON.stringify({ batchID: 'batch-2024-001' }) });
  assert.equal(close.status, 200, close.text);
  await printer.waitForJobs(before + 4, 20000);
  assert.deepEqual(printedLabels().slice(before), ['batch-0', 'batch-1', 'batch-2', 'batch-3']);
  const mine = await until('four status callbacks', () => {
    const got = callbacks.filter((c) => jobIDs.includes(c.body.jobID));
    return got.length === 4 ? got : undefined;
  });
  for (const c of mine!) {
    // JobStatusCallback: required jobID (uuid), status (success|fail), message (string); nothing else.
    assert.deepEqual(Object.keys(c.body).sort(), ['jobID', 'message', 'status']);
    assert.match(c.body.jobID, UUID);
    assert.equal(c.body.status, 'success');
    assert.equal(typeof c.body.message, 'string');
    assert.equal(c.path, '/status');
  }
});

test('a Batch Close that names no batch, and a batchID outside [A-Za-z0-9._:-], are 400 with their reason', async () => {
  const close = await box.api.json('POST', '/v1/batches/close', {});
  assert.equal(close.status, 400);
  assert.equal(close.json.error.code, 'missing_batch_id');
  const job = await printJob(box.token, { queue: 'ward-3', jobID: randomUUID(), batchID: 'ward 3 batch' }, pdf('bad-batch'));
  assert.equal(job.status, 400);
  assert.equal(job.json.error.code, 'bad_batch_id');
  const open = await box.api.json('POST', '/v1/batches', { batchID: 'ward 3 batch', jobIDs: [randomUUID()] });
  assert.equal(open.status, 400);
});

test('each field alias lands on its printbox field', async () => {
  const jobID = randomUUID();
  const r = await printJob(box.token, {
    printerPath: 'Hospital\\Floor 2\\ward-3', // a site alias from the config
    collate: 'true', // accepted and ignored on purpose (fieldAliases null)
    userName: 'dr.who',
    jobName: 'Discharge letter',
    copyCount: '3',
    sides: 'two-sided-short-edge',
    colorMode: 'monochrome',
    paperSize: 'legal',
    pageRange: '1-2',
    mediaSource: 'tray-2',
    documentFormat: 'application/pdf',
    callbackURL: `${callbackBase}/alias`,
    jobId: jobID,
  }, pdf('aliases'));
  assert.equal(r.status, 201, r.text);
  const j = await jobView(jobID);
  assert.equal(j.user, 'dr.who');
  assert.equal(j.title, 'Discharge letter');
  assert.equal(j.contentType, 'pdf');
  assert.equal(j.statusURL, `${callbackBase}/alias`);
  assert.deepEqual(j.options, { copies: 3, duplex: 'short-edge', color: false, media: 'na_legal_8.5x14in', pageRanges: '1-2', tray: 'tray-2' });
  // A later job with the Cloud Link batch field spelled batchId joins its batch like batchID.
  const id2 = randomUUID();
  await box.api.json('POST', '/v1/batches', { batchID: 'alias-batch', jobIDs: [id2] });
  const b = await printJob(box.token, { queue: 'ward-3', jobID: id2, batchId: 'alias-batch' }, pdf('alias-batch'));
  assert.equal(b.status, 201, b.text);
  assert.equal(b.json.batchID, 'alias-batch');
});

test('each value alias of duplex, color and media maps to one printbox value', async () => {
  const cases: [Record<string, string>, Record<string, unknown>][] = [
    ...(
      [
        ['simplex', 'none'], ['one-sided', 'none'], ['false', 'none'], ['duplex', 'long-edge'], ['true', 'long-edge'],
        ['long-edge', 'long-edge'], ['two-sided-long-edge', 'long-edge'], ['short-edge', 'short-edge'], ['two-sided-short-edge', 'short-edge'],
      ] as const
    ).map(([v, want]): [Record<string, string>, Record<string, unknown>] => [{ duplex: v }, { duplex: want }]),
    ...(
      [['color', true], ['true', true], ['monochrome', false], ['grayscale', false], ['false', false]] as const
    ).map(([v, want]): [Record<string, string>, Record<string, unknown>] => [{ color: v }, { color: want }]),
    ...(
      [
        ['letter', 'na_letter_8.5x11in'], ['Letter', 'na_letter_8.5x11in'], ['legal', 'na_legal_8.5x14in'], ['a4', 'iso_a4_210x297mm'], ['A3', 'iso_a3_297x420mm'],
        ['na_letter_8.5x11in', 'na_letter_8.5x11in'], ['iso_a4_210x297mm', 'iso_a4_210x297mm'],
      ] as const
    ).map(([v, want]): [Record<string, string>, Record<string, unknown>] => [{ media: v }, { media: want }]),
  ];
  for (const [fields, want] of cases) {
    const r = await printJob(box.token, { queue: 'ward-3', ...fields }, pdf('values'));
    assert.equal(r.status, 201, `${JSON.stringify(fields)}: ${r.text}`);
    const [k, v] = Object.entries(want)[0];
    assert.equal((await jobView(r.json.jobID)).options[k], v, JSON.stringify(fields));
  }
  const bad = await printJob(box.token, { queue: 'ward-3', media: 'napkin' }, pdf('bad-media'));
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'bad_media');
});

test('an unknown field is 400 unknown_field naming it, in a form field and in a metadata JSON part', async () => {
  const r = await printJob(box.token, { queue: 'ward-3', stapleCorner: 'top-left' }, pdf('unknown'));
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'unknown_field');
  assert.equal(r.json.error.field, 'stapleCorner');
  assert.match(r.json.error.message, /unknown field "stapleCorner".*fieldAliases/);
  const m = await printJob(box.token, { metadata: JSON.stringify({ queue: 'ward-3', patientRoom: '12' }) }, pdf('unknown'));
  assert.equal(m.status, 400);
  assert.equal(m.json.error.field, 'patientRoom');
  const twice = await printJob(box.token, { queue: 'ward-3', printer: 'ward-4' }, pdf('unknown'));
  assert.equal(twice.status, 400);
  assert.equal(twice.json.error.code, 'conflicting_fields');
});

test('an unknown queue with exactly one printer configured is 404 listing the printers, and nothing prints', async () => {
  const before = printer.jobs.length;
  const r = await printJob(box.token, { queue: 'Hospital/Floor 2/ward-4', username: 'nurse' }, pdf('wrong-ward'));
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, 'printer_not_found');
  assert.deepEqual(r.json.error.printers, ['ward-3']);
  assert.match(r.json.error.message, /ward-4.*ward-3/);
  // A job that does print afterwards is the only one that reaches the printer.
  const ok = await printJob(box.token, { queue: 'ward-3' }, pdf('after-wrong-ward'));
  assert.equal(ok.status, 201);
  await printer.waitForJobs(before + 1, 20000);
  assert.equal(printer.jobs.length, before + 1);
  assert.ok(!printedLabels().includes('wrong-ward'));
});

test('X-Site-ID is accepted when it names this site and refused when it names another', async () => {
  assert.equal((await printJob(box.token, { queue: 'ward-3' }, pdf('site'), { site: 'st-mary' })).status, 201);
  const other = await printJob(box.token, { queue: 'ward-3' }, pdf('site'), { site: 'st-elsewhere' });
  assert.equal(other.status, 403);
  assert.equal(other.json.error.code, 'wrong_site');
});

test('anonymous submit prints from its configured range and refuses an address outside it', async () => {
  const inside = await printJob(undefined, { queue: 'ward-3', username: 'kiosk' }, pdf('anon-in'), { localAddress: '127.0.0.2' });
  assert.equal(inside.status, 201, inside.text);
  const outside = await printJob(undefined, { queue: 'ward-3' }, pdf('anon-out'), { localAddress: '127.0.0.1' });
  assert.equal(outside.status, 401);
  assert.equal(outside.json.error.code, 'unauthorized');
  // Only submission: an anonymous client reads nothing.
  const list = await vasionRequest('GET', '/v1/jobs', { localAddress: '127.0.0.2' });
  assert.equal(list.status, 401);
  const status = await box.api.request('GET', '/v1/status');
  assert.match(status.json.warnings.join('\n'), /anonymous submit is on: any client in 127\.0\.0\.2\/32/);
});

test('printbox token import keeps a key the clients already hold: read from stdin, stored hashed, and it prints', async () => {
  const key = `vasion-${randomBytes(18).toString('base64url')}`;
  const cli = spawn(process.execPath, [path.resolve(import.meta.dirname, '../bin/printbox.mjs'), 'token', 'import', '--name', 'ward-app', '--scope', 'submit', '--data', box.dataDir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  cli.stdout.on('data', (c) => (out += c));
  cli.stderr.on('data', (c) => (out += c));
  cli.stdin.end(`${key}\n`);
  const code = await new Promise((r) => cli.on('exit', r));
  assert.equal(code, 0, out);
  assert.match(out, /imported ward-app/);
  assert.ok(!out.includes(key), 'the secret is never printed');
  const state = await fs.readFile(path.join(box.dataDir, 'state.json'), 'utf8');
  assert.ok(!state.includes(key), 'only the hash is stored');
  const r = await printJob(key, { queue: 'ward-3', username: 'ward-app' }, pdf('imported'));
  assert.equal(r.status, 201, r.text);
  const again = await box.api.json('POST', '/v1/tokens/import', { name: 'twice', token: key });
  assert.equal(again.status, 409);
  assert.equal(again.json.error.code, 'token_exists');
  const short = await box.api.json('POST', '/v1/tokens/import', { name: 'short', token: 'abc' });
  assert.equal(short.status, 400);
  assert.equal(short.json.error.code, 'bad_token_secret');
});

// It moves the batch clock past the open timeout (open batches expire): no test after it opens a batch.
test('a job naming a batch before its Batch Open waits for it; one whose open never comes is cancelled after the open timeout', async () => {
  const early = randomUUID();
  const r = await printJob(box.token, { queue: 'ward-3', jobID: early, batchID: 'opened-late' }, pdf('early'));
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.state, 'waiting-for-batch');
  assert.match(r.json.reason, /waiting for the Batch Open of "opened-late"/);
  const later = randomUUID();
  const open = await box.api.json('POST', '/v1/batches', { batchID: 'opened-late', jobIDs: [early, later] });
  assert.equal(open.status, 201, open.text);
  assert.equal((await printJob(box.token, { queue: 'ward-3', jobID: later, batchID: 'opened-late' }, pdf('later'))).status, 201);
  const before = printer.jobs.length;
  assert.equal((await box.api.json('POST', '/v1/batches/opened-late/close')).status, 200);
  await printer.waitForJobs(before + 2, 20000);
  assert.deepEqual(printedLabels().slice(before), ['early', 'later']);

  const orphan = randomUUID();
  assert.equal((await printJob(box.token, { queue: 'ward-3', jobID: orphan, batchID: 'never-opened', statusURL: `${callbackBase}/orphan` }, pdf('orphan'))).status, 201);
  await box.running.app.batches.tick(Date.now() + 2 * 3600 * 1000);
  const j = await jobView(orphan);
  assert.equal(j.state, 'cancelled');
  assert.match(j.reason, /batch "never-opened" was never opened/);
  const told = await until('the fail callback', () => callbacks.find((c) => c.body.jobID === orphan));
  assert.equal(told!.body.status, 'fail');
  assert.match(told!.body.message, /never opened/);
  const late = await box.api.json('POST', '/v1/batches', { batchID: 'never-opened', jobIDs: [orphan] });
  assert.equal(late.status, 409);
});

test('with two printers and no queue given, the 400 names the printers that exist', async () => {
  const second = await startSink();
  try {
    await addRawPrinter(box.api, 'ward-4', second.port);
    const r = await printJob(box.token, { username: 'nurse' }, pdf('no-queue'));
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'missing_printer');
    assert.deepEqual(r.json.error.printers, ['ward-3', 'ward-4']);
    assert.match(r.json.error.message, /this box has 2: ward-3, ward-4/);
  } finally {
    await second.close();
  }
});

test('a fieldAliases entry naming no job field, or an anonymousSubmit entry that is no range, stops the start with its reason', async () => {
  await assert.rejects(startAppliance({ fieldAliases: { printerPath: 'printr' } }), /fieldAliases: "printerPath" maps to "printr", which is not a job field/);
  await assert.rejects(startAppliance({ anonymousSubmit: ['10.20.0.0/33'] }), /anonymousSubmit: "10.20.0.0\/33" is not an IP address or CIDR range/);
});

test('anonymous submit and fieldAliases come from the config file, and the log warns at start while anonymous submit is on', async () => {
  const dir = await tempDir('pbx-16-cfg-');
  const config = path.join(dir, 'config.json');
  await fs.writeFile(config, JSON.stringify({ anonymousSubmit: ['10.20.0.0/16'], fieldAliases: { printerPath: 'printer' } }));
  const child = await spawnAppliance(path.join(dir, 'data'), await freePort(), { PRINTBOX_CONFIG: config });
  try {
    assert.match(child.output(), /anonymous submit is on: any client in 10\.20\.0\.0\/16 may print without a token/);
  } finally {
    await child.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
