// The spine through the real HTTPS server and real TCP sinks: order, concurrency, idempotency, cancel, callbacks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { addRawPrinter, filesUnder, startAppliance, until, type TestAppliance } from './helpers/appliance.js';

let box: TestAppliance;
const sinks: Sink[] = [];

before(async () => {
  box = await startAppliance({ callbacks: { allow: ['127.0.0.1/32'] } }); // the callback receivers listen on loopback
});
after(async () => {
  await box.stop();
  for (const s of sinks) await s.close();
});

async function sink(opts = {}) {
  const s = await startSink(opts);
  sinks.push(s);
  return s;
}

test('100 jobs to one RAW printer arrive complete and in submission order', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'order', s.port);
  const docs = Array.from({ length: 100 }, (_, i) => Buffer.concat([Buffer.from(`job ${String(i).padStart(3, '0')}\n`), randomBytes(2000)]));
  for (const d of docs) {
    const r = await box.api.postJob({ printer: 'order', contentType: 'raw' }, d);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.state, 'queued');
  }
  const got = await s.waitForJobs(100, 30000);
  assert.deepEqual(got.map((j) => j.sha256), docs.map((d) => createHash('sha256').update(d).digest('hex')));
});

test('jobs to two printers run concurrently: a jammed printer does not hold up another', async () => {
  const jammed = await sink({ behaviour: 'stall' });
  const fine = await sink();
  await addRawPrinter(box.api, 'jammed', jammed.port);
  await addRawPrinter(box.api, 'fine', fine.port);
  const stuck = await box.api.postJob({ printer: 'jammed' }, Buffer.from('waits'));
  assert.equal(stuck.status, 201);
  await until('the jammed job to be sending', async () => (await box.api.request('GET', `/v1/jobs/${stuck.json.jobID}`)).json.state === 'sending');
  for (let i = 0; i < 5; i++) assert.equal((await box.api.postJob({ printer: 'fine' }, Buffer.from(`doc ${i}`))).status, 201);
  const got = await fine.waitForJobs(5, 10000);
  assert.equal(got.length, 5);
  assert.equal((await box.api.request('GET', `/v1/jobs/${stuck.json.jobID}`)).json.state, 'sending');
  assert.equal((await box.api.request('DELETE', `/v1/jobs/${stuck.json.jobID}`)).json.state, 'cancelled');
});

test('the same jobID with the same content is the same job; with other content it is a conflict', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'idem', s.port);
  const jobID = randomUUID();
  const doc = randomBytes(5000);
  const first = await box.api.postJob({ printer: 'idem', jobID, title: 'report' }, doc);
  assert.equal(first.status, 201);
  const again = await box.api.postJob({ printer: 'idem', jobID, title: 'report' }, doc, { fieldsAfter: true });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.jobID, jobID);
  const other = await box.api.postJob({ printer: 'idem', jobID, title: 'report' }, randomBytes(5000));
  assert.equal(other.status, 409);
  assert.equal(other.json.error.code, 'job_conflict');
  await s.waitForJobs(1, 10000);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(s.jobs.length, 1, 'printed exactly once');
});

test('a jobID sent after the document, the other fields before it, still tells a repeat from a conflict', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'idem-late', s.port);
  // 5,000 bytes ride in the journal; 300 KiB get a sealed file of their own: both are read back for their digest.
  for (const size of [5000, 300 * 1024]) {
    const jobID = randomUUID();
    const doc = randomBytes(size);
    const first = await box.api.postJob({ printer: 'idem-late', title: 'late id' }, doc, { afterFile: { jobID } });
    assert.equal(first.status, 201, first.text);
    assert.equal(first.json.jobID, jobID);
    const again = await box.api.postJob({ printer: 'idem-late', title: 'late id', jobID }, doc);
    assert.equal(again.status, 200, again.text);
    const other = await box.api.postJob({ printer: 'idem-late', title: 'late id' }, randomBytes(size), { afterFile: { jobID } });
    assert.equal(other.status, 409, other.text);
    assert.equal(other.json.error.code, 'job_conflict');
  }
  const got = await s.waitForJobs(2, 10000);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(s.jobs.length, 2, 'each printed exactly once');
  assert.equal(got.length, 2);
});

test('a job posted without a jobID cannot be repeated by naming the ID printbox gave it', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'no-id', s.port);
  const doc = randomBytes(3000);
  const first = await box.api.postJob({ printer: 'no-id' }, doc);
  assert.equal(first.status, 201);
  const again = await box.api.postJob({ printer: 'no-id', jobID: first.json.jobID }, doc);
  assert.equal(again.status, 409, again.text);
  assert.equal(again.json.error.code, 'job_conflict');
  assert.match(again.json.error.message, /without a jobID/);
  await s.waitForJobs(1, 10000);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(s.jobs.length, 1, 'printed once');
});

test('metadata may come as one JSON part, before or after the file, and is kept on the job', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'meta', s.port);
  const metadata = JSON.stringify({ title: 'Lab results', user: 'nurse7', copies: 2, duplex: 'long-edge', color: false, media: 'iso_a4_210x297mm', orientation: 'landscape', pageRanges: '1-3,5', finishings: ['staple'], tray: 'tray-2', contentType: 'pdf', printer: 'meta' });
  const r = await box.api.postJob({ metadata }, Buffer.from('%PDF-1.4 fake'), { fieldsAfter: true });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(
    { title: r.json.title, user: r.json.user, contentType: r.json.contentType, options: r.json.options },
    { title: 'Lab results', user: 'nurse7', contentType: 'pdf', options: { copies: 2, duplex: 'long-edge', color: false, media: 'iso_a4_210x297mm', orientation: 'landscape', pageRanges: '1-3,5', finishings: ['staple'], tray: 'tray-2' } },
  );
  const sniffed = await box.api.postJob({ printer: 'meta' }, Buffer.from('%!PS-Adobe-3.0\nshowpage\n'));
  assert.equal(sniffed.json.contentType, 'postscript');
});

test('cancelling a queued job removes its sealed document and it never prints', async () => {
  const s = await sink({ behaviour: 'refuse' });
  await addRawPrinter(box.api, 'cancel', s.port, { enabled: false });
  // 100 KB: a document of its own in docs/ (small documents ride inside the journal record instead).
  const r = await box.api.postJob({ printer: 'cancel' }, randomBytes(100_000));
  const docs = () => filesUnder(`${box.dataDir}/spool/docs`);
  assert.ok((await docs()).some((f) => f.includes(r.json.jobID)));
  const small = await box.api.postJob({ printer: 'cancel' }, randomBytes(1000));
  assert.equal((await docs()).some((f) => f.includes(small.json.jobID)), false, 'a 1 KB document has no file');
  assert.equal((await box.api.request('DELETE', `/v1/jobs/${small.json.jobID}`)).json.state, 'cancelled');
  const c = await box.api.request('DELETE', `/v1/jobs/${r.json.jobID}`);
  assert.equal(c.json.state, 'cancelled');
  assert.equal((await docs()).some((f) => f.includes(r.json.jobID)), false);
  const again = await box.api.request('DELETE', `/v1/jobs/${r.json.jobID}`);
  assert.equal(again.status, 409);
  assert.equal(again.json.error.code, 'job_finished');
});

test('statusURL receives a signed success callback', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'cb', s.port);
  const got: { body: string; sig: string; ts: string }[] = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ body, sig: String(req.headers['x-printbox-signature']), ts: String(req.headers['x-printbox-timestamp']) });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  try {
    const url = `http://127.0.0.1:${(receiver.address() as import('node:net').AddressInfo).port}/cb`;
    const r = await box.api.postJob({ printer: 'cb', statusURL: url }, Buffer.from('hello'));
    await until('the callback', () => got.length > 0, 10000);
    const payload = JSON.parse(got[0].body);
    const tokenID = (await box.api.json('GET', '/v1/tokens')).json.tokens.find((t: { name: string }) => t.name === 'first-admin').id;
    assert.deepEqual(payload, { jobID: r.json.jobID, status: 'success', message: 'job sent' });
    const secret = Buffer.from((await box.api.request('GET', '/v1/settings/callback-secret')).json.secret, 'hex');
    // The owner's token id is part of what is signed (security.test.ts shows why).
    assert.equal(got[0].sig, 'sha256=' + createHmac('sha256', secret).update(`${got[0].ts}.${tokenID}.${got[0].body}`).digest('hex'));
  } finally {
    receiver.close();
  }
});

test('a printer that refuses: retries with back-off, then the job is held and the printer stopped; resume prints in order', async () => {
  const s = await sink({ behaviour: 'refuse' });
  await addRawPrinter(box.api, 'flaky', s.port, { errorPolicy: 'stop-printer' });
  const a = await box.api.postJob({ printer: 'flaky' }, Buffer.from('first'));
  const b = await box.api.postJob({ printer: 'flaky' }, Buffer.from('second'));
  const held = await until('job held', async () => {
    const j = (await box.api.request('GET', `/v1/jobs/${a.json.jobID}`)).json;
    return j.state === 'held' ? j : null;
  });
  assert.match(held.reason, /held after 3 attempts/);
  assert.equal(held.attempts, 3);
  const p = (await box.api.request('GET', '/v1/printers/flaky')).json;
  assert.ok(p.stopped, 'printer is stopped');
  assert.equal((await box.api.request('GET', `/v1/jobs/${b.json.jobID}`)).json.state, 'queued');
  await s.setBehaviour('normal');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(s.jobs.length, 0, 'nothing prints while stopped');
  assert.equal((await box.api.request('POST', '/v1/printers/flaky/resume')).status, 200);
  const got = await s.waitForJobs(2, 10000);
  assert.deepEqual(got.map((j) => j.data!.toString()), ['first', 'second']);
});

test('the job list pages with a cursor and filters by printer and state', async () => {
  const all = (await box.api.request('GET', '/v1/jobs?limit=1000')).json.jobs;
  assert.ok(all.length >= 100);
  const p1 = (await box.api.request('GET', '/v1/jobs?limit=40&printer=order')).json;
  assert.equal(p1.jobs.length, 40);
  const p2 = (await box.api.request('GET', `/v1/jobs?limit=100&printer=order&cursor=${p1.nextCursor}`)).json;
  assert.equal(p2.jobs.length, 60);
  assert.equal(new Set([...p1.jobs, ...p2.jobs].map((j: any) => j.jobID)).size, 100);
  const cancelled = (await box.api.request('GET', '/v1/jobs?state=cancelled')).json.jobs;
  assert.ok(cancelled.length >= 1 && cancelled.every((j: any) => j.state === 'cancelled'));
});

test('a submit token sees only its own jobs and cannot administer', async () => {
  const t = (await box.api.json('POST', '/v1/tokens', { name: 'ehr', scope: 'submit' })).json.token;
  const s = await sink();
  await addRawPrinter(box.api, 'scoped', s.port);
  const mine = await box.api.postJob({ printer: 'scoped' }, Buffer.from('x'), { token: t });
  assert.equal(mine.status, 201);
  const list = (await box.api.request('GET', '/v1/jobs', { token: t })).json.jobs;
  assert.deepEqual(list.map((j: any) => j.jobID), [mine.json.jobID]);
  const forbidden = await box.api.json('POST', '/v1/printers', { name: 'x', uri: 'raw://127.0.0.1:1' }, t);
  assert.equal(forbidden.status, 403);
  assert.equal(forbidden.json.error.code, 'forbidden');
  // Vasion clients send the token as the HTTP Basic password.
  const basic = await box.api.request('GET', `/v1/jobs/${mine.json.jobID}`, { token: null, headers: { authorization: `Basic ${Buffer.from(`any:${t}`).toString('base64')}` } });
  assert.equal(basic.status, 200);
});

test('the OpenAPI document is generated from the routes', async () => {
  const r = await box.api.request('GET', '/v1/openapi.json', { token: null });
  assert.equal(r.status, 200);
  assert.ok(r.json.openapi.startsWith('3.'));
  for (const p of ['/v1/jobs', '/v1/jobs/{id}', '/v1/printers', '/v1/tokens', '/v1/health']) assert.ok(r.json.paths[p], `has ${p}`);
});
