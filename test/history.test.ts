// Finished-job history on disk: paging and filters, retention by count and age, restarts, crashes mid-write, nothing readable on disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { LocalSpool } from '../runtime/spool/local-spool.js';
import { HistoryStore } from '../runtime/spool/history.js';
import type { JobRecord } from '../runtime/spool/jobs.js';

const key = randomBytes(32);
const tmp = () => fs.mkdtemp(path.join(os.tmpdir(), 'pbx-history-'));
const CANARY = 'CANARY-7f3e-history';

async function acceptJob(spool: LocalSpool, printerId: string, owner: string, extra: Partial<JobRecord> = {}): Promise<JobRecord> {
  const r = await spool.receive(Readable.from([Buffer.from(`document ${CANARY}`)]), 1 << 20);
  const now = new Date().toISOString();
  return spool.accept({ id: randomUUID(), printerId, title: `title ${CANARY}`, user: `user ${CANARY}`, contentType: 'raw', options: { copies: 1 } as never, owner, metaDigest: '', state: 'queued', warnings: [], attempts: 0, createdAt: now, updatedAt: now, ...extra } as never, r);
}

/** Every job the listing gives, page by page (bounded), with its filter. */
async function pages(spool: LocalSpool, q: { printerId?: string; owner?: string; state?: JobRecord['state'] }, limit: number): Promise<JobRecord[]> {
  const out: JobRecord[] = [];
  let cursor: number | undefined;
  for (let i = 0; i < 1000; i++) {
    const page = await spool.list({ ...q, after: cursor, limit });
    out.push(...page.jobs);
    if (page.nextCursor === null) return out;
    cursor = page.nextCursor;
  }
  throw new Error('listing never ended');
}

function record(seq: number, finishedAt: string, extra: Partial<JobRecord> = {}): JobRecord {
  return { id: randomUUID(), seq, printerId: 'p', title: CANARY, user: CANARY, contentType: 'raw', options: { copies: 1 } as never, owner: 't', size: 1, digest: '', metaDigest: '', state: 'sent', warnings: [], attempts: 1, createdAt: finishedAt, updatedAt: finishedAt, finishedAt, hasDocument: false, ...extra };
}

test('finished jobs leave memory for history: one listing pages through finished and unfinished jobs in order, filtered by printer, owner and state, before and after a restart', async () => {
  const dir = await tmp();
  const spool = new LocalSpool({ dataDir: dir, key, historyLimit: 1000 });
  await spool.open();
  const jobs: JobRecord[] = [];
  for (let i = 0; i < 60; i++) jobs.push(await acceptJob(spool, i % 3 === 0 ? 'pa' : 'pb', i % 2 ? 'alice' : 'bob'));
  // Finish them out of order (printers do), all but every fifth, the newest among the finished.
  const finishing = jobs.filter((_, i) => i % 5 !== 0).reverse();
  for (const j of finishing) await spool.update(j.id, { state: 'sent' }, { lazyRemoval: false });
  assert.equal(spool.all().length, 12, 'only the unfinished jobs stay in memory');
  assert.equal(spool.stats().historyJobs, 48);
  const check = async (s: LocalSpool) => {
    assert.deepEqual((await pages(s, {}, 7)).map((j) => j.id), jobs.map((j) => j.id), 'every job once, in acceptance order');
    assert.deepEqual((await pages(s, { printerId: 'pa' }, 4)).map((j) => j.id), jobs.filter((_, i) => i % 3 === 0).map((j) => j.id));
    assert.deepEqual((await pages(s, { owner: 'alice', state: 'sent' }, 5)).map((j) => j.id), jobs.filter((_, i) => i % 2 && i % 5 !== 0).map((j) => j.id));
    assert.deepEqual((await pages(s, { state: 'queued' }, 100)).map((j) => j.id), jobs.filter((_, i) => i % 5 === 0).map((j) => j.id));
    assert.deepEqual(await pages(s, { printerId: 'nobody' }, 10), []);
    const newest = await s.list({ newestFirst: true, limit: 5 });
    assert.deepEqual(newest.jobs.map((j) => j.id), jobs.slice(-5).reverse().map((j) => j.id));
    const next = await s.list({ newestFirst: true, before: newest.nextCursor!, limit: 5 });
    assert.deepEqual(next.jobs.map((j) => j.id), jobs.slice(-10, -5).reverse().map((j) => j.id));
    assert.equal(s.get(jobs[1].id)?.state, 'sent', 'a finished job is found by id');
    assert.equal(s.get(jobs[1].id)?.title, `title ${CANARY}`);
    assert.equal(s.get(randomUUID()), undefined);
    assert.deepEqual(s.counts(), { sent: 48, queued: 12 });
  };
  await check(spool);
  await spool.close();
  const again = new LocalSpool({ dataDir: dir, key, historyLimit: 1000 });
  await again.open();
  await check(again);
  // Positions of jobs that are only in history are never handed out again.
  const later = await acceptJob(again, 'pa', 'bob');
  assert.ok(later.seq > jobs[jobs.length - 1].seq, `seq ${later.seq} comes after ${jobs[jobs.length - 1].seq}`);
  await again.close();
  await fs.rm(dir, { recursive: true, force: true });
});

test('a change to a job already in history (its callback outcome) is kept across a restart, and the journal still wins after a crash', async () => {
  const dir = await tmp();
  const spool = new LocalSpool({ dataDir: dir, key, historyLimit: 1000 });
  await spool.open();
  const j = await acceptJob(spool, 'p', 't', { statusURL: 'https://example.invalid/cb' });
  await spool.update(j.id, { state: 'sent' });
  assert.equal((await spool.callbacksDue(0)).map((x) => x.id).join(), j.id, 'its callback is due');
  await spool.update(j.id, { callback: { result: 'delivered', attempts: 1, at: new Date().toISOString() } });
  assert.deepEqual(await spool.callbacksDue(0), []);
  // A crash: no close(), and the history segment lost what the page cache had not written (it was never fsync'd).
  const histDir = path.join(dir, 'spool', 'history');
  for (const f of await fs.readdir(histDir)) await fs.truncate(path.join(histDir, f), 0);
  const again = new LocalSpool({ dataDir: dir, key, historyLimit: 1000 });
  await again.open();
  assert.equal(again.get(j.id)?.callback?.result, 'delivered', 'the journal puts the newest copy back into history');
  assert.deepEqual(await again.callbacksDue(0), []);
  await again.close();
  const third = new LocalSpool({ dataDir: dir, key, historyLimit: 1000 });
  await third.open();
  assert.equal(third.get(j.id)?.callback?.result, 'delivered');
  await third.close();
  await fs.rm(dir, { recursive: true, force: true });
});

test('a record torn by a crash mid-write is cut off at the next start; the records before it and the ones written after stay readable', async () => {
  const dir = await tmp();
  const h = new HistoryStore({ dir, key, limit: 1000, maxAgeMs: 0 });
  await h.load();
  const now = new Date().toISOString();
  const recs = [1, 2, 3].map((s) => record(s, now));
  for (const r of recs) h.put(r);
  // No close(): the segment has no index file. Half a record follows the last whole one.
  const seg = path.join(dir, (await fs.readdir(dir)).find((f) => f.endsWith('.seg'))!);
  const whole = (await fs.stat(seg)).size;
  const data = await fs.readFile(seg);
  await fs.appendFile(seg, data.subarray(0, 100));
  const h2 = new HistoryStore({ dir, key, limit: 1000, maxAgeMs: 0 });
  await h2.load();
  assert.equal((await fs.stat(seg)).size, whole, 'the torn record was cut off');
  assert.equal(h2.size, 3);
  const r4 = record(4, now);
  h2.put(r4);
  await h2.close();
  const h3 = new HistoryStore({ dir, key, limit: 1000, maxAgeMs: 0 });
  await h3.load();
  assert.deepEqual(h3.list({}, 10).map((r) => r.id), [...recs, r4].map((r) => r.id));
  // Damage inside a record (not only a torn tail) is refused by its MAC: the segment is cut there, never misread.
  await h3.close();
  const h4 = new HistoryStore({ dir, key, limit: 1000, maxAgeMs: 0 });
  await h4.load();
  const r5 = record(5, now);
  const r6 = record(6, now);
  h4.put(r5);
  h4.put(r6);
  const seg2 = path.join(dir, (await fs.readdir(dir)).filter((f) => f.endsWith('.seg')).sort().pop()!); // a new segment, without an index file
  const bytes = await fs.readFile(seg2);
  bytes[bytes.length - 10] ^= 1; // r6's MAC no longer holds
  await fs.writeFile(seg2, bytes);
  const h5 = new HistoryStore({ dir, key, limit: 1000, maxAgeMs: 0 });
  await h5.load();
  assert.deepEqual(h5.list({}, 10).map((r) => r.seq), [1, 2, 3, 4, 5]);
  await h5.close();
  await fs.rm(dir, { recursive: true, force: true });
});

test('retention keeps the newest jobs by count and drops those finished before the age limit; segments nobody needs are deleted', async () => {
  const dir = await tmp();
  const h = new HistoryStore({ dir, key, limit: 50, maxAgeMs: 0, segmentBytes: 4096 });
  await h.load();
  const now = Date.now();
  for (let s = 1; s <= 200; s++) h.put(record(s, new Date(now).toISOString()));
  assert.equal(h.size, 50);
  assert.deepEqual(h.list({}, 100).map((r) => r.seq), Array.from({ length: 50 }, (_, i) => 151 + i));
  const segs = (await fs.readdir(dir)).filter((f) => f.endsWith('.seg'));
  assert.ok(segs.length <= 50 * 700 / 4096 + 3, `${segs.length} segments left for 50 jobs`);
  await h.close();
  const again = new HistoryStore({ dir, key, limit: 50, maxAgeMs: 0, segmentBytes: 4096 });
  await again.load();
  assert.deepEqual(again.list({}, 100).map((r) => r.seq), Array.from({ length: 50 }, (_, i) => 151 + i), 'the same 50 after a restart');
  // Steady churn (as many dropped as put) keeps the index's memory at its size, not at what has passed through it.
  for (let s = 201; s <= 6000; s++) again.put(record(s, new Date(now).toISOString()));
  assert.equal(again.size, 50);
  assert.ok(again.slots < 2048, `${again.slots} index slots for 50 kept jobs after 6,000`);
  assert.deepEqual(again.list({}, 100).map((r) => r.seq), Array.from({ length: 50 }, (_, i) => 5951 + i));
  assert.equal(again.get(again.list({}, 1)[0].id)?.seq, 5951, 'found by id after the index was rewritten');
  await again.close();
  // Age: jobs finished 40 days ago go, jobs finished an hour ago stay (30 days kept).
  const aged = await tmp();
  const old = new HistoryStore({ dir: aged, key, limit: 1000, maxAgeMs: 30 * 86400000 });
  await old.load();
  for (let s = 1; s <= 10; s++) old.put(record(s, new Date(now - (s <= 4 ? 40 * 86400000 : 3600000)).toISOString()));
  assert.deepEqual(old.list({}, 100).map((r) => r.seq), [5, 6, 7, 8, 9, 10]);
  await old.close();
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rm(aged, { recursive: true, force: true });
});

test('history on disk is sealed: no title, user or statusURL in any file, with and without index files', async () => {
  const dir = await tmp();
  const spool = new LocalSpool({ dataDir: dir, key, historyLimit: 1000 });
  await spool.open();
  for (let i = 0; i < 20; i++) {
    const j = await acceptJob(spool, 'p', 't', { statusURL: `https://${CANARY}.example/cb` });
    await spool.update(j.id, { state: 'sent' });
  }
  const scan = async () => {
    const histDir = path.join(dir, 'spool', 'history');
    const files = await fs.readdir(histDir);
    assert.ok(files.some((f) => f.endsWith('.seg')));
    for (const f of files) {
      const text = (await fs.readFile(path.join(histDir, f))).toString('latin1');
      assert.ok(!text.includes(CANARY) && !text.includes('"printerId"'), `${f} holds plaintext`);
    }
    return files;
  };
  await scan();
  await spool.close();
  assert.ok((await scan()).some((f) => f.endsWith('.idx')), 'closing wrote an index file');
  await fs.rm(dir, { recursive: true, force: true });
});

test('a journal written before history existed moves its finished jobs into history at the first start', async () => {
  const dir = await tmp();
  const { seedHistory } = await import('../bench/history.js');
  // The legacy format: finished records straight in journal.log. The spool key is the data dir's.
  await seedHistory(dir, 300, { legacy: true });
  const { loadSpoolKey } = await import('../runtime/spool/keys.js');
  const k = await loadSpoolKey(dir);
  const spool = new LocalSpool({ dataDir: dir, key: k, historyLimit: 1000 });
  await spool.open();
  assert.equal(spool.all().length, 0);
  assert.equal(spool.stats().historyJobs, 300);
  assert.equal((await pages(spool, {}, 100)).length, 300);
  await spool.close();
  await fs.rm(dir, { recursive: true, force: true });
});

test("a delivered job moves to history one turn after its outcome is recorded, once, and is found all along", async () => {
  const dir = await tmp();
  const spool = new LocalSpool({ dataDir: dir, key, historyLimit: 1000 });
  await spool.open();
  try {
    const jobs = [await acceptJob(spool, 'p', 'o'), await acceptJob(spool, 'p', 'o')];
    // Delivery's outcome (lazyRemoval): the printer's next job waits for this update, not for the history write.
    for (const j of jobs) await spool.update(j.id, { state: 'sending' }, { durable: false });
    const sent = await spool.update(jobs[0].id, { state: 'sent' }, { lazyRemoval: true });
    assert.equal(spool.history.size, 0, 'not in history yet when the update resolves');
    assert.equal(spool.get(jobs[0].id)!.state, 'sent');
    assert.deepEqual((await pages(spool, {}, 10)).map((j) => [j.id, j.state]), [[jobs[0].id, 'sent'], [jobs[1].id, 'sending']]);
    await new Promise((r) => setImmediate(r));
    assert.equal(spool.history.size, 1);
    // A cancel is not delivery: its job moves when its update resolves.
    await spool.update(jobs[1].id, { state: 'cancelled' });
    assert.equal(spool.history.size, 2);
    assert.deepEqual(spool.history.get(jobs[0].id), sent);
    assert.deepEqual((await pages(spool, {}, 10)).map((j) => [j.id, j.state]), [[jobs[0].id, 'sent'], [jobs[1].id, 'cancelled']]);
  } finally {
    await spool.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a job whose outcome is waiting to move to history is kept by a close in between', async () => {
  const dir = await tmp();
  let spool = new LocalSpool({ dataDir: dir, key, historyLimit: 1000 });
  await spool.open();
  const job = await acceptJob(spool, 'p', 'o');
  await spool.update(job.id, { state: 'sending' }, { durable: false });
  await spool.update(job.id, { state: 'sent' }, { lazyRemoval: true });
  await spool.close();
  spool = new LocalSpool({ dataDir: dir, key, historyLimit: 1000 });
  await spool.open();
  try {
    assert.equal(spool.get(job.id)!.state, 'sent');
    assert.equal(spool.history.size, 1);
  } finally {
    await spool.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
