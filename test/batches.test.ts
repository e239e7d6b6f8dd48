// Ordered batches end to end: held until close, listed order, contiguous per printer, gaps, expiry, crash, replay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { isPjlQuestion } from './peers/pjl-printer.js';
import { Api } from './helpers/api.js';
import { addRawPrinter, freePort, spawnAppliance, startAppliance, tempDir, until, type TestAppliance } from './helpers/appliance.js';

let box: TestAppliance;
const cleanups: (() => Promise<unknown>)[] = [];
before(async () => {
  box = await startAppliance({ batches: { openTimeoutMs: 3600000, missingTimeoutMs: 2000, retentionMs: 3600000 }, callbacks: { allow: ['127.0.0.1/32'] } });
});
after(async () => {
  await box.stop();
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

async function sink(opts = {}) {
  const s = await startSink(opts);
  cleanups.push(() => s.close());
  return s;
}
const ids = (n: number) => Array.from({ length: n }, () => randomUUID());
const doc = (label: string) => Buffer.from(`${label}|`.padEnd(300, '.'));
// PJL questions (a RAW printer added without accepts is asked what it takes) are not jobs; a kill -9 can leave one at a sink.
const labels = (s: Sink) => s.jobs.filter((j) => !isPjlQuestion(j.data!)).map((j) => j.data!.toString().split('|')[0]);
const job = async (api: Api, id: string) => (await api.request('GET', `/v1/jobs/${id}`)).json;

test('Batch Open validates, is idempotent for the same body and 409 for another', async () => {
  const jobIDs = ids(3);
  const r = await box.api.json('POST', '/v1/batches', { batchID: 'open-1', jobIDs, name: 'patient 1' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.state, 'open');
  assert.deepEqual(r.json.missing, jobIDs);
  assert.equal((await box.api.json('POST', '/v1/batches', { batchID: 'open-1', jobIDs, name: 'patient 1' })).status, 200);
  const other = await box.api.json('POST', '/v1/batches', { batchID: 'open-1', jobIDs: jobIDs.slice(1), name: 'patient 1' });
  assert.equal(other.status, 409);
  assert.equal(other.json.error.code, 'batch_conflict');
  const dup = await box.api.json('POST', '/v1/batches', { batchID: 'dup', jobIDs: [jobIDs[0], jobIDs[0]] });
  assert.equal(dup.status, 400);
  assert.equal((await box.api.json('POST', '/v1/batches', { batchID: 'empty', jobIDs: [] })).status, 400);
  assert.equal((await box.api.json('POST', '/v1/batches', { batchID: 'x'.repeat(129), jobIDs: ids(1) })).status, 400);
  assert.equal((await box.api.json('POST', '/v1/batches', { batchID: 'bad', jobIDs: ['not-a-uuid'] })).status, 400);
});

test('a job naming a batch that does not list it is 409; one naming a batch not opened yet waits for its Batch Open', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'naming', s.port);
  await box.api.json('POST', '/v1/batches', { batchID: 'names', jobIDs: ids(2) });
  const r = await box.api.postJob({ printer: 'naming', jobID: randomUUID(), batchID: 'names' }, doc('x'));
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'job_not_in_batch');
  // Issue 16: a job may arrive before its Batch Open (Vasion clients do not wait for the open's reply).
  const u = await box.api.postJob({ printer: 'naming', jobID: randomUUID(), batchID: 'not-opened-yet' }, doc('x'));
  assert.equal(u.status, 201, u.text);
  assert.equal(u.json.state, 'waiting-for-batch');
  const other = await box.api.json('POST', '/v1/batches', { batchID: 'not-opened-yet', jobIDs: ids(1) });
  assert.equal(other.status, 409, 'an open that leaves out a job already posted for it is refused');
  assert.equal(other.json.error.code, 'batch_missing_posted_jobs');
  assert.equal((await box.api.request('DELETE', `/v1/jobs/${u.json.jobID}`)).status, 200);
});

test('50 batch jobs from 8 concurrent clients in random order plus 50 other jobs: the batch prints contiguous and in listed order', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'ward', s.port);
  const jobIDs = ids(50);
  assert.equal((await box.api.json('POST', '/v1/batches', { batchID: 'ward-batch', jobIDs, name: 'discharge' })).status, 201);
  const shuffled = jobIDs.map((id, i) => ({ id, i })).sort(() => Math.random() - 0.5);
  const batchPosts = Array.from({ length: 8 }, async (_, c) => {
    for (let k = c; k < shuffled.length; k += 8) {
      const { id, i } = shuffled[k];
      const r = await box.api.postJob({ printer: 'ward', jobID: id, batchID: 'ward-batch' }, doc(`b${i}`));
      assert.equal(r.status, 201, r.text);
      assert.equal(r.json.state, 'waiting-for-batch');
    }
  });
  const others = (async () => {
    for (let i = 0; i < 50; i++) assert.equal((await box.api.postJob({ printer: 'ward' }, doc(`o${i}`))).status, 201);
  })();
  await Promise.all([...batchPosts, others]);
  await until('the 50 other jobs', () => s.jobs.length >= 50, 20000);
  assert.ok(labels(s).every((l) => l.startsWith('o')), 'nothing of the open batch printed');
  const closed = await box.api.request('POST', '/v1/batches/ward-batch/close');
  assert.equal(closed.status, 200, closed.text);
  for (let i = 0; i < 10; i++) await box.api.postJob({ printer: 'ward' }, doc(`late${i}`)); // posted after close: must not interleave
  await s.waitForJobs(110, 30000);
  const got = labels(s);
  const first = got.indexOf('b0');
  assert.deepEqual(got.slice(first, first + 50), jobIDs.map((_, i) => `b${i}`), 'contiguous and in listed order');
  await until('batch done', async () => (await box.api.request('GET', '/v1/batches/ward-batch')).json.state === 'done');
});

test('Batch Close with requireAllJobs and jobs missing is 409 with the missing jobIDs, and the batch stays open', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'strict', s.port);
  const jobIDs = ids(3);
  await box.api.json('POST', '/v1/batches', { batchID: 'strict', jobIDs, requireAllJobs: true });
  await box.api.postJob({ printer: 'strict', jobID: jobIDs[0] }, doc('s0'));
  const r = await box.api.request('POST', '/v1/batches/strict/close');
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'batch_incomplete');
  assert.deepEqual(r.json.error.missing, jobIDs.slice(1));
  assert.equal((await box.api.request('GET', '/v1/batches/strict')).json.state, 'open');
  for (const [i, id] of jobIDs.slice(1).entries()) await box.api.postJob({ printer: 'strict', jobID: id }, doc(`s${i + 1}`));
  assert.equal((await box.api.request('POST', '/v1/batches/strict/close')).status, 200);
  await s.waitForJobs(3, 10000);
  assert.deepEqual(labels(s), ['s0', 's1', 's2']);
});

test('a job missing at close stops the jobs behind it, and no other job interleaves, until it arrives', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'gap', s.port);
  const jobIDs = ids(4);
  await box.api.json('POST', '/v1/batches', { batchID: 'gap', jobIDs });
  for (const i of [0, 1, 3]) await box.api.postJob({ printer: 'gap', jobID: jobIDs[i] }, doc(`g${i}`));
  await box.api.request('POST', '/v1/batches/gap/close');
  await s.waitForJobs(2, 10000);
  await box.api.postJob({ printer: 'gap' }, doc('other'));
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(labels(s), ['g0', 'g1'], 'the gap holds both the rest of the batch and other jobs');
  assert.deepEqual((await box.api.request('GET', '/v1/batches/gap')).json.missing, [jobIDs[2]]);
  await box.api.postJob({ printer: 'gap', jobID: jobIDs[2] }, doc('g2'));
  await s.waitForJobs(5, 10000);
  assert.deepEqual(labels(s), ['g0', 'g1', 'g2', 'g3', 'other']);
});

test('a job still missing when the batch timeout passes is skipped and reported; the rest go on in order', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'skip', s.port);
  const jobIDs = ids(3);
  await box.api.json('POST', '/v1/batches', { batchID: 'skip', jobIDs });
  await box.api.postJob({ printer: 'skip', jobID: jobIDs[0] }, doc('k0'));
  await box.api.postJob({ printer: 'skip', jobID: jobIDs[2] }, doc('k2'));
  await box.api.request('POST', '/v1/batches/skip/close');
  await s.waitForJobs(2, 10000);
  assert.deepEqual(labels(s), ['k0', 'k2']);
  const b = await until('batch finished', async () => {
    const v = (await box.api.request('GET', '/v1/batches/skip')).json;
    return v.state === 'failed' ? v : null;
  });
  assert.deepEqual(b.skipped, [jobIDs[1]]);
  assert.equal(b.jobs[1].state, 'skipped');
  const late = await box.api.postJob({ printer: 'skip', jobID: jobIDs[1] }, doc('k1'));
  assert.equal(late.status, 409);
});

test('two batches on two printers print at the same time', async () => {
  const slow = await sink({ behaviour: 'stall' });
  const fast = await sink();
  await addRawPrinter(box.api, 'slowp', slow.port);
  await addRawPrinter(box.api, 'fastp', fast.port);
  const a = ids(2);
  const b = ids(3);
  await box.api.json('POST', '/v1/batches', { batchID: 'par-a', jobIDs: a });
  await box.api.json('POST', '/v1/batches', { batchID: 'par-b', jobIDs: b });
  for (const [i, id] of a.entries()) await box.api.postJob({ printer: 'slowp', jobID: id }, doc(`a${i}`));
  for (const [i, id] of b.entries()) await box.api.postJob({ printer: 'fastp', jobID: id }, doc(`b${i}`));
  await box.api.request('POST', '/v1/batches/par-a/close');
  await box.api.request('POST', '/v1/batches/par-b/close');
  await fast.waitForJobs(3, 10000);
  assert.deepEqual(labels(fast), ['b0', 'b1', 'b2']);
  assert.equal((await job(box.api, a[0])).state, 'sending', 'batch A is still printing on its jammed printer');
  const del = await box.api.request('DELETE', '/v1/batches/par-a');
  assert.equal(del.status, 200, del.text);
  assert.equal((await job(box.api, a[1])).state, 'cancelled');
});

test('an open batch that is never closed expires: its jobs are held, not printed, and can be released', async () => {
  const quick = await startAppliance({ batches: { openTimeoutMs: 300, missingTimeoutMs: 2000, retentionMs: 3600000 } });
  cleanups.push(() => quick.stop());
  const s = await sink();
  await addRawPrinter(quick.api, 'exp', s.port);
  const jobIDs = ids(2);
  await quick.api.json('POST', '/v1/batches', { batchID: 'forgotten', jobIDs });
  await quick.api.postJob({ printer: 'exp', jobID: jobIDs[0] }, doc('e0'));
  await until('expired', async () => (await quick.api.request('GET', '/v1/batches/forgotten')).json.state === 'expired', 5000);
  const j = await job(quick.api, jobIDs[0]);
  assert.equal(j.state, 'waiting-for-batch');
  assert.match(j.reason, /expired before it was closed/);
  const listed = (await quick.api.request('GET', '/v1/batches')).json.batches.find((b: any) => b.batchID === 'forgotten');
  assert.equal(listed.state, 'expired', 'the setup API shows it');
  await quick.api.postJob({ printer: 'exp', jobID: jobIDs[1] }, doc('e1'));
  assert.equal(s.jobs.length, 0);
  assert.equal((await quick.api.request('POST', '/v1/batches/forgotten/close')).status, 200);
  await s.waitForJobs(2, 10000);
  assert.deepEqual(labels(s), ['e0', 'e1']);
});

test('a printer that goes offline mid-batch: the batch waits and resumes in order when it is back', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'offline', s.port);
  const jobIDs = ids(6);
  await box.api.json('POST', '/v1/batches', { batchID: 'offline', jobIDs });
  for (const [i, id] of jobIDs.entries()) await box.api.postJob({ printer: 'offline', jobID: id }, doc(`f${i}`));
  await s.setBehaviour('refuse');
  await box.api.request('POST', '/v1/batches/offline/close');
  await new Promise((r) => setTimeout(r, 800)); // several refused attempts, the job held at the head
  assert.equal(s.jobs.length, 0);
  await s.setBehaviour('normal');
  await s.waitForJobs(6, 15000);
  assert.deepEqual(labels(s), jobIDs.map((_, i) => `f${i}`));
});

test('replay prints a finished batch again in the same order, whole or from one job on; a cancelled batch keeps nothing', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'again', s.port);
  const jobIDs = ids(3);
  await box.api.json('POST', '/v1/batches', { batchID: 'again', jobIDs });
  for (const [i, id] of jobIDs.entries()) await box.api.postJob({ printer: 'again', jobID: id }, doc(`r${i}`));
  await box.api.request('POST', '/v1/batches/again/close');
  await until('done', async () => (await box.api.request('GET', '/v1/batches/again')).json.state === 'done');
  const whole = await box.api.json('POST', '/v1/batches/again/replay', {});
  assert.equal(whole.status, 200, whole.text);
  await s.waitForJobs(6, 10000);
  await until('done again', async () => (await box.api.request('GET', '/v1/batches/again')).json.state === 'done');
  const part = await box.api.json('POST', '/v1/batches/again/replay', { fromJobID: jobIDs[1] });
  assert.equal(part.status, 200);
  await s.waitForJobs(8, 10000);
  assert.deepEqual(labels(s), ['r0', 'r1', 'r2', 'r0', 'r1', 'r2', 'r1', 'r2']);
  assert.equal(part.json.replays.length, 2);
});

test('a replay ends when its last copy has printed, not when its first copies have: the batch is never seen done without it', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'replay-end', s.port);
  const n = 200;
  const jobIDs = ids(n);
  await box.api.json('POST', '/v1/batches', { batchID: 'replay-end', jobIDs });
  for (const [i, id] of jobIDs.entries()) await box.api.postJob({ printer: 'replay-end', jobID: id }, doc(`e${i}`));
  await box.api.request('POST', '/v1/batches/replay-end/close');
  const first = await until('done', async () => {
    const v = (await box.api.json('GET', '/v1/batches/replay-end')).json;
    return v.state === 'done' ? v : null;
  });
  // While the replay is made (its first copies print meanwhile), the batch is looked at again and again.
  let replaying = true;
  const seen: { state: string; finishedAt?: string; replays: number }[] = [];
  const watch = (async () => {
    for (let i = 0; replaying && i < 10000; i++) {
      const v = (await box.api.json('GET', '/v1/batches/replay-end')).json;
      seen.push({ state: v.state, finishedAt: v.finishedAt, replays: v.replays.length });
    }
  })();
  const replayed = await box.api.json('POST', '/v1/batches/replay-end/replay', {});
  replaying = false;
  await watch;
  assert.equal(replayed.status, 200, replayed.text);
  await s.waitForJobs(2 * n, 30000);
  assert.deepEqual(labels(s), [...jobIDs, ...jobIDs].map((_, i) => `e${i % n}`));
  const ended = seen.filter((v) => v.state === 'done' && v.finishedAt !== first.finishedAt);
  assert.deepEqual(ended.filter((v) => v.replays !== 1), [], 'done again only with the replay in it');
  assert.ok(seen.some((v) => v.state === 'printing'), 'the replay was seen being made');
  await until('done again', async () => (await box.api.json('GET', '/v1/batches/replay-end')).json.state === 'done');
});

test('a restart while a replay was being made finishes it: each copy prints once, in order, and the batch ends done', async () => {
  const dataDir = await tempDir('pbx-batch-replay-crash-');
  const s = await sink();
  const opts = { dataDir, batches: { openTimeoutMs: 3600000, missingTimeoutMs: 60000, retentionMs: 3600000 } };
  const first = await startAppliance(opts);
  cleanups.push(() => fs.rm(dataDir, { recursive: true, force: true }));
  await addRawPrinter(first.api, 'remade', s.port);
  const jobIDs = ids(3);
  await first.api.json('POST', '/v1/batches', { batchID: 'remade', jobIDs });
  for (const [i, id] of jobIDs.entries()) await first.api.postJob({ printer: 'remade', jobID: id }, doc(`m${i}`));
  await first.api.request('POST', '/v1/batches/remade/close');
  await until('done', async () => (await first.api.json('GET', '/v1/batches/remade')).json.state === 'done');
  // What a replay had done when the process stopped: its record written, one of its three copies made.
  assert.equal((await first.api.json('PATCH', '/v1/printers/remade', { enabled: false })).status, 200);
  const batches = (first.running.app as any).batches;
  const copies = ids(3);
  await batches.write('remade', (cur: any) => ({ ...cur, state: 'printing', finishedAt: undefined, replays: [{ at: new Date().toISOString(), fromJobID: jobIDs[0], jobIDs: copies, sources: jobIDs, making: true }] }));
  await batches.copyOnce(copies[0], jobIDs[0]);
  const token = first.token;
  await first.stop();

  const second = await startAppliance(opts);
  const api = new Api(`https://127.0.0.1:${second.running.port}`, second.running.tls.cert, token);
  cleanups.push(() => second.stop());
  await api.json('PATCH', '/v1/printers/remade', { enabled: true });
  await until('the batch done again', async () => (await api.json('GET', '/v1/batches/remade')).json.state === 'done', 20000);
  await s.waitForJobs(6, 10000);
  assert.deepEqual(labels(s), ['m0', 'm1', 'm2', 'm0', 'm1', 'm2']);
  const v = (await api.json('GET', '/v1/batches/remade')).json;
  assert.deepEqual(v.replays.map((r: any) => r.jobs.map((j: any) => [j.jobID, j.state])), [copies.map((id) => [id, 'sent'])]);
  api.close();
});

test('re-posting a member of a finished batch is idempotent: the same job for the same content, 409 for other content, nothing printed again', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'repost', s.port);
  const jobIDs = ids(2);
  await box.api.json('POST', '/v1/batches', { batchID: 'repost', jobIDs });
  for (const [i, id] of jobIDs.entries()) assert.equal((await box.api.postJob({ printer: 'repost', jobID: id }, doc(`p${i}`))).status, 201);
  await box.api.request('POST', '/v1/batches/repost/close');
  await until('done', async () => (await box.api.request('GET', '/v1/batches/repost')).json.state === 'done');
  // A client that lost the first answer retries, with or without the batchID.
  const again = await box.api.postJob({ printer: 'repost', jobID: jobIDs[0] }, doc('p0'));
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.jobID, jobIDs[0]);
  assert.equal(again.json.state, 'sent');
  assert.equal((await box.api.postJob({ printer: 'repost', jobID: jobIDs[1], batchID: 'repost' }, doc('p1'))).status, 200);
  const other = await box.api.postJob({ printer: 'repost', jobID: jobIDs[0] }, doc('changed'));
  assert.equal(other.status, 409);
  assert.equal(other.json.error.code, 'job_conflict');
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(labels(s), ['p0', 'p1']);
});

test('after the retention time the documents are deleted and replay says so', async () => {
  const short = await startAppliance({ batches: { openTimeoutMs: 3600000, missingTimeoutMs: 2000, retentionMs: 200 } });
  cleanups.push(() => short.stop());
  const s = await sink();
  await addRawPrinter(short.api, 'ret', s.port);
  const jobIDs = ids(2);
  await short.api.json('POST', '/v1/batches', { batchID: 'ret', jobIDs });
  for (const [i, id] of jobIDs.entries()) await short.api.postJob({ printer: 'ret', jobID: id }, doc(`t${i}`));
  await short.api.request('POST', '/v1/batches/ret/close');
  await until('documents deleted', async () => (await short.api.request('GET', '/v1/batches/ret')).json.documentsDeleted === true, 5000);
  const docs = await fs.readdir(path.join(short.dataDir, 'spool', 'docs'));
  assert.deepEqual(docs, []);
  const r = await short.api.json('POST', '/v1/batches/ret/replay', {});
  assert.equal(r.status, 410);
  assert.equal(r.json.error.code, 'batch_documents_expired');
});

test('the batch statusURL gets one callback when the whole batch has printed; each job statusURL still fires', async () => {
  const s = await sink();
  await addRawPrinter(box.api, 'notify', s.port);
  const got: any[] = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ path: req.url, ...JSON.parse(body) });
      res.end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  cleanups.push(async () => receiver.close());
  const base = `http://127.0.0.1:${(receiver.address() as import('node:net').AddressInfo).port}`;
  const jobIDs = ids(3);
  await box.api.json('POST', '/v1/batches', { batchID: 'notify', jobIDs, statusURL: `${base}/batch` });
  for (const [i, id] of jobIDs.entries()) await box.api.postJob({ printer: 'notify', jobID: id, statusURL: `${base}/job` }, doc(`n${i}`));
  await box.api.request('POST', '/v1/batches/notify/close');
  await until('4 callbacks', () => got.length >= 4, 10000);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(got.filter((g) => g.path === '/batch'), [{ path: '/batch', batchID: 'notify', status: 'success', message: 'batch printed: 3 jobs in order' }]);
  assert.deepEqual(got.filter((g) => g.path === '/job').map((g) => g.jobID).sort(), [...jobIDs].sort());
});

test('kill -9 in the middle of a batch: after restart it resumes at the first job not yet printed, in order', async () => {
  const dataDir = await tempDir('pbx-batch-crash-');
  const s = await sink();
  const port = await freePort();
  let child = await spawnAppliance(dataDir, port);
  cleanups.push(() => child.stop(), () => fs.rm(dataDir, { recursive: true, force: true }));
  const api = new Api(`https://127.0.0.1:${port}`, await fs.readFile(`${dataDir}/tls/cert.pem`, 'utf8'), child.token);
  await addRawPrinter(api, 'crash', s.port);
  const jobIDs = ids(40);
  await api.json('POST', '/v1/batches', { batchID: 'crash', jobIDs });
  for (const [i, id] of jobIDs.entries()) await api.postJob({ printer: 'crash', jobID: id }, Buffer.concat([Buffer.from(`c${i}|`), Buffer.alloc(400_000, 46)]));
  await api.request('POST', '/v1/batches/crash/close');
  await until('part of the batch printed', () => s.jobs.length >= 8, 20000, 2);
  await child.kill9();
  const before = s.jobs.length;
  assert.ok(before < 40, 'killed mid-batch');
  child = await spawnAppliance(dataDir, port);
  await until('the rest of the batch', () => new Set(labels(s)).size >= 40, 60000);
  const got = labels(s).filter((l) => l);
  const dedup = got.filter((l, i) => l !== got[i - 1]); // the job in flight at the kill may repeat, right after itself
  assert.deepEqual(dedup, jobIDs.map((_, i) => `c${i}`));
  assert.ok(got.length - dedup.length <= 1);
  api.close();
});

test('a batch record saved by the previous version (no base position) mid-release: after an upgrade the rest is released behind the part already queued, in order', async () => {
  const dataDir = await tempDir('pbx-batch-legacy-');
  const s = await sink();
  const opts = { dataDir, batches: { openTimeoutMs: 3600000, missingTimeoutMs: 60000, retentionMs: 3600000 } };
  const first = await startAppliance(opts);
  cleanups.push(() => fs.rm(dataDir, { recursive: true, force: true }));
  await addRawPrinter(first.api, 'legacy', s.port, { enabled: false });
  const jobIDs = ids(4);
  await first.api.json('POST', '/v1/batches', { batchID: 'legacy', jobIDs });
  for (const [i, id] of jobIDs.entries()) await first.api.postJob({ printer: 'legacy', jobID: id, batchID: 'legacy' }, doc(`l${i}`));
  // What the previous version's Batch Close left when it stopped after releasing two members: each at its own
  // allocSeq() position, `released: 2`, and no `base` in the record.
  const { batches, spool } = first.running.app as any;
  for (const id of jobIDs.slice(0, 2)) await spool.update(id, { state: 'queued', reason: undefined, queuePos: spool.allocSeq() });
  const b = batches.get('legacy');
  await batches.write('legacy', () => ({ ...b, state: 'printing', released: 2, closedAt: new Date().toISOString(), missingDeadline: new Date(Date.now() + 60000).toISOString() }));
  assert.equal(batches.get('legacy').base, undefined);
  const token = first.token;
  await first.stop();

  const second = await startAppliance(opts);
  const api = new Api(`https://127.0.0.1:${second.running.port}`, second.running.tls.cert, token);
  cleanups.push(() => second.stop());
  await api.json('PATCH', '/v1/printers/legacy', { enabled: true });
  await until('the batch', () => s.jobs.length >= 4, 20000);
  assert.deepEqual(labels(s), jobIDs.map((_, i) => `l${i}`));
  const done = await until('the batch done', async () => ((await api.json('GET', '/v1/batches/legacy')).json?.state === 'done' ? true : null), 20000);
  assert.ok(done);
  const positions = jobIDs.map((id) => (second.running.app as any).spool.get(id).queuePos as number);
  assert.deepEqual([...positions].sort((x, y) => x - y), positions, 'queue positions in listed order');
  api.close();
});

test('a restart between Batch Close saving the batch and releasing its jobs resumes the release: the batch prints in order and the printer is not left locked', async () => {
  const dataDir = await tempDir('pbx-batch-close-crash-');
  const s = await sink();
  const first = await startAppliance({ dataDir, batches: { openTimeoutMs: 3600000, missingTimeoutMs: 60000, retentionMs: 3600000 } });
  cleanups.push(() => fs.rm(dataDir, { recursive: true, force: true }));
  await addRawPrinter(first.api, 'resume', s.port, { enabled: false });
  const jobIDs = ids(6);
  await first.api.json('POST', '/v1/batches', { batchID: 'resume', jobIDs });
  for (const [i, id] of [...jobIDs.entries()].reverse()) await first.api.postJob({ printer: 'resume', jobID: id, batchID: 'resume' }, doc(`r${i}`));
  // What Batch Close does first (the batch saved as printing), then the process ends before any job is released.
  const batches = (first.running.app as any).batches;
  const b = batches.get('resume');
  await batches.write('resume', () => ({ ...b, state: 'printing', closedAt: new Date().toISOString(), missingDeadline: new Date(Date.now() + 60000).toISOString() }));
  const token = first.token;
  await first.stop();

  const second = await startAppliance({ dataDir, batches: { openTimeoutMs: 3600000, missingTimeoutMs: 60000, retentionMs: 3600000 } });
  const api = new Api(`https://127.0.0.1:${second.running.port}`, second.running.tls.cert, token);
  cleanups.push(() => second.stop());
  await api.json('PATCH', '/v1/printers/resume', { enabled: true });
  const after = randomUUID();
  await api.postJob({ printer: 'resume', jobID: after }, doc('after'));
  await until('the batch and the job after it', () => s.jobs.length >= 7, 20000);
  assert.deepEqual(labels(s), [...jobIDs.map((_, i) => `r${i}`), 'after']);
  assert.equal((await api.request('GET', '/v1/batches/resume')).json.state, 'done');
  api.close();
});
