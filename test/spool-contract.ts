// The spool contract: what intake, the queue and batches rely on, run against any Spool implementation
// (test/spool-local.test.ts: the one-box journal; a replicated backend runs the same suite on its own peers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { NewJob, Spool } from '../runtime/spool/contract.js';
import type { JobRecord } from '../runtime/spool/jobs.js';

export interface SpoolUnderTest {
  spool: Spool;
  /** Closes this spool and opens another on the same store, as a restart would. */
  reopen(): Promise<Spool>;
  /** Closes whatever is open and removes the store. */
  cleanup(): Promise<void>;
}

const SMALL = 2 * 1024; // rides inline in the local journal
const LARGE = 300 * 1024; // gets a sealed file of its own in the local spool

/** A SpoolUnderTest from a function that opens the backend on its store, and what removes the store afterwards. */
export async function reopenable(open: () => Promise<Spool>, removeStore: () => Promise<void>): Promise<SpoolUnderTest> {
  let current = await open();
  return {
    get spool() {
      return current;
    },
    async reopen() {
      await current.close();
      current = await open();
      return current;
    },
    async cleanup() {
      await current.close();
      await removeStore();
    },
  };
}

export function jobFields(over: Partial<NewJob> = {}): NewJob {
  const now = new Date().toISOString();
  return { id: randomUUID(), printerId: 'p1', title: 'contract', user: 'tester', contentType: 'raw', options: { copies: 1 }, owner: 'tok', metaDigest: 'm', state: 'queued', warnings: [], attempts: 0, createdAt: now, updatedAt: now, ...over };
}

async function post(spool: Spool, doc: Buffer, over: Partial<NewJob> = {}) {
  const r = await spool.receive(Readable.from([doc]), 1 << 30);
  return spool.accept(jobFields(over), r);
}

async function read(spool: Spool, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of spool.openDocument(id)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export function spoolContract(name: string, make: () => Promise<SpoolUnderTest>): void {
  const withSpool = (title: string, fn: (u: SpoolUnderTest) => Promise<void>) =>
    test(`${name}: ${title}`, async () => {
      const u = await make();
      try {
        await fn(u);
      } finally {
        await u.cleanup();
      }
    });

  withSpool('an accepted document reads back byte for byte, small or large, streamed or whole, with its size and first bytes', async ({ spool }) => {
    for (const size of [0, 1, SMALL, LARGE]) {
      const doc = randomBytes(size);
      const r = await spool.receive(Readable.from([doc.subarray(0, size >> 1), doc.subarray(size >> 1)]), 1 << 30);
      assert.equal(r.size, size);
      assert.deepEqual(r.head, doc.subarray(0, 16), 'head is the first bytes');
      const job = await spool.accept(jobFields(), r);
      assert.equal(job.size, size);
      assert.equal(job.hasDocument, true);
      assert.ok((await read(spool, job.id)).equals(doc), `stream of ${size} bytes`);
      assert.ok(Buffer.concat(await spool.readDocument(job.id)).equals(doc), `whole read of ${size} bytes`);
    }
  });

  withSpool('the same document gives the same digest and another gives another; metadata digests likewise', async ({ spool }) => {
    const doc = randomBytes(SMALL);
    const a = await spool.receive(Readable.from([doc]), 1 << 30);
    const b = await spool.receive(Readable.from([Buffer.from(doc)]), 1 << 30);
    const c = await spool.receive(Readable.from([randomBytes(SMALL)]), 1 << 30);
    assert.equal(a.digest, b.digest);
    assert.notEqual(a.digest, c.digest);
    assert.notEqual(a.digest, createHash('sha256').update(doc).digest('hex'), 'not the plain SHA-256 of the document');
    for (const r of [a, b, c]) await spool.discard(r);
    assert.equal(spool.metaDigest({ printer: 'x', copies: 2 }), spool.metaDigest({ printer: 'x', copies: 2 }));
    assert.notEqual(spool.metaDigest({ printer: 'x', copies: 2 }), spool.metaDigest({ printer: 'x', copies: 3 }));
  });

  withSpool('an upload received without its digest gets the same digest read back, inline and in a file', async ({ spool }) => {
    for (const size of [SMALL, LARGE]) {
      const doc = randomBytes(size);
      const hashed = await spool.receive(Readable.from([doc]), 1 << 30);
      const bare = await spool.receive(Readable.from([Buffer.from(doc)]), 1 << 30, { digest: false });
      assert.equal(bare.digest, undefined, `no digest computed for ${size} bytes`);
      assert.equal(await spool.digestOf(bare), hashed.digest, `digest read back for ${size} bytes`);
      const other = await spool.receive(Readable.from([randomBytes(size)]), 1 << 30, { digest: false });
      assert.notEqual(await spool.digestOf(other), hashed.digest);
      for (const r of [hashed, bare, other]) await spool.discard(r);
    }
  });

  withSpool('a document over the limit is refused with document_too_large and leaves no job', async ({ spool }) => {
    await assert.rejects(spool.receive(Readable.from([randomBytes(LARGE)]), LARGE - 1), (e: { code?: string }) => e.code === 'document_too_large');
    assert.equal([...spool.records()].length, 0);
  });

  withSpool('a discarded upload never becomes a job', async ({ spool, reopen }) => {
    const r = await spool.receive(Readable.from([randomBytes(LARGE)]), 1 << 30);
    await spool.discard(r);
    assert.equal([...spool.records()].length, 0);
    const again = await reopen();
    assert.equal(again.all().length, 0, 'nothing after a restart either');
  });

  withSpool('accepted jobs survive a restart: records, documents and acceptance order, unfinished ones in live()', async ({ spool, reopen }) => {
    const docs = [randomBytes(SMALL), randomBytes(LARGE), randomBytes(SMALL)];
    const ids: string[] = [];
    for (const d of docs) ids.push((await post(spool, d, { title: `t${ids.length}` })).id);
    const seqs = ids.map((id) => spool.get(id)!.seq);
    assert.deepEqual([...seqs].sort((a, b) => a - b), seqs, 'seq follows acceptance');
    const again = await reopen();
    assert.deepEqual(again.live().map((j) => j.id), ids, 'live() in acceptance order');
    assert.deepEqual(again.all().map((j) => j.id), ids);
    for (let i = 0; i < ids.length; i++) {
      assert.equal(again.get(ids[i])!.title, `t${i}`);
      assert.ok((await read(again, ids[i])).equals(docs[i]), `document ${i} after restart`);
    }
  });

  withSpool('a state change is durable; a final state drops the document unless told to keep it', async ({ spool, reopen }) => {
    const done = await post(spool, randomBytes(LARGE));
    const kept = await post(spool, randomBytes(SMALL));
    const held = await post(spool, randomBytes(SMALL));
    await spool.update(done.id, { state: 'sending' });
    const sent = await spool.update(done.id, { state: 'sent' });
    assert.equal(sent.hasDocument, false, 'a finished job has no document');
    assert.ok(sent.finishedAt, 'finishedAt set when the job became final');
    await spool.update(kept.id, { state: 'sent' }, { keepDocument: true });
    await spool.update(held.id, { state: 'held', reason: 'printer offline' });
    const again = await reopen();
    assert.equal(again.get(done.id)!.state, 'sent');
    assert.equal(again.get(done.id)!.hasDocument, false);
    assert.equal(again.get(kept.id)!.hasDocument, true, 'kept document still there');
    assert.equal((await read(again, kept.id)).length, SMALL);
    assert.deepEqual([again.get(held.id)!.state, again.get(held.id)!.reason], ['held', 'printer offline']);
    assert.deepEqual(again.live().map((j) => j.id), [held.id], 'only the unfinished job is live');
  });

  withSpool('updateNow changes a job at once, before anything is awaited', async ({ spool }) => {
    const job = await post(spool, randomBytes(SMALL));
    const changed = spool.updateNow(job.id, { attempts: 3, reason: 'retrying' });
    assert.equal(changed.attempts, 3);
    assert.equal(spool.get(job.id)!.reason, 'retrying');
  });

  withSpool('allocSeq gives positions after every accepted job, also after a restart', async ({ spool, reopen }) => {
    const a = await post(spool, randomBytes(SMALL));
    const p1 = spool.allocSeq();
    assert.ok(p1 > a.seq);
    await spool.update(a.id, { queuePos: p1 });
    const again = await reopen();
    const b = await post(again, randomBytes(SMALL));
    assert.ok(b.seq > p1, 'a new job goes behind a placed position');
    assert.ok(again.allocSeq() > b.seq);
  });

  withSpool('a copy is a new job on the same document, and outlives the original finishing', async ({ spool, reopen }) => {
    const doc = randomBytes(LARGE);
    const src = await post(spool, doc, { batchID: 'b2' });
    const now = new Date().toISOString();
    const copy = await spool.copy({ ...src, id: randomUUID(), seq: 0, state: 'queued', createdAt: now, updatedAt: now, replayOf: src.id }, src.id);
    assert.notEqual(copy.id, src.id);
    assert.ok(copy.seq > src.seq);
    assert.equal(copy.replayOf, src.id);
    await spool.update(src.id, { state: 'sent' }, { keepDocument: false });
    await spool.dropDocument(src.id);
    const again = await reopen();
    assert.ok((await read(again, copy.id)).equals(doc));
  });

  withSpool('dropDocument removes the document and says so on the record, durably', async ({ spool, reopen }) => {
    const job = await post(spool, randomBytes(LARGE));
    await spool.dropDocument(job.id);
    assert.equal(spool.get(job.id)!.hasDocument, false);
    const again = await reopen();
    assert.equal(again.get(job.id)!.hasDocument, false);
    await assert.rejects(read(again, job.id));
  });

  withSpool('counts() and stats() count every job; records() and all() hold at least every unfinished job, all() in acceptance order', async ({ spool }) => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await post(spool, randomBytes(64))).id);
    await spool.update(ids[1], { state: 'failed', reason: 'rejected' });
    assert.deepEqual(spool.counts(), { queued: 4, failed: 1 });
    assert.equal(spool.stats().jobs, 5);
    const unfinished = [ids[0], ids[2], ids[3], ids[4]];
    // A backend may keep finished history out of memory (the local one does): records() and all() need not list it.
    const inMemory = [...spool.records()].map((j) => j.id);
    for (const id of unfinished) assert.ok(inMemory.includes(id), `${id} in records()`);
    assert.deepEqual(spool.all().map((j) => j.id).filter((id) => id !== ids[1]), unfinished);
    assert.deepEqual(spool.live().map((j) => j.id), unfinished);
    assert.equal(spool.get(ids[1])!.reason, 'rejected', 'a finished job is still found by id');
  });

  withSpool('list() pages through unfinished and finished jobs in acceptance order or newest first, filtered, also after a restart', async ({ spool, reopen }) => {
    const jobs: JobRecord[] = [];
    for (let i = 0; i < 12; i++) jobs.push(await post(spool, randomBytes(64), { printerId: i % 2 ? 'p1' : 'p2', owner: i % 3 ? 'tok' : 'other' }));
    for (let i = 0; i < 12; i += 2) await spool.update(jobs[i].id, { state: 'sent' });
    const all = async (s: Spool, q: { printerId?: string; owner?: string; state?: 'sent' | 'queued' }) => {
      const out: string[] = [];
      let after: number | undefined;
      for (let k = 0; k < 100; k++) {
        const page = await s.list({ ...q, after, limit: 5 });
        out.push(...page.jobs.map((j) => j.id));
        if (page.nextCursor === null) return out;
        after = page.nextCursor;
      }
      throw new Error('listing never ended');
    };
    const check = async (s: Spool) => {
      assert.deepEqual(await all(s, {}), jobs.map((j) => j.id));
      assert.deepEqual(await all(s, { printerId: 'p2' }), jobs.filter((_, i) => i % 2 === 0).map((j) => j.id));
      assert.deepEqual(await all(s, { state: 'sent', owner: 'other' }), jobs.filter((_, i) => i % 2 === 0 && i % 3 === 0).map((j) => j.id));
      const newest = await s.list({ newestFirst: true, limit: 3 });
      assert.deepEqual(newest.jobs.map((j) => j.id), jobs.slice(-3).reverse().map((j) => j.id));
      assert.deepEqual((await s.list({ newestFirst: true, before: newest.nextCursor!, limit: 3 })).jobs.map((j) => j.id), jobs.slice(-6, -3).reverse().map((j) => j.id));
    };
    await check(spool);
    await check(await reopen());
  });

  withSpool('callbacksDue() gives finished jobs whose statusURL callback never ended, and forgets them once it has', async ({ spool, reopen }) => {
    const a = await post(spool, randomBytes(64), { statusURL: 'https://example.invalid/a' });
    const b = await post(spool, randomBytes(64), { statusURL: 'https://example.invalid/b' });
    await post(spool, randomBytes(64), { statusURL: 'https://example.invalid/c' }); // unfinished: not due
    await spool.update(a.id, { state: 'sent' });
    await spool.update(b.id, { state: 'failed' });
    assert.deepEqual((await spool.callbacksDue(0)).map((j) => j.id), [a.id, b.id]);
    await spool.update(a.id, { callback: { result: 'delivered', attempts: 1, at: new Date().toISOString() } });
    const again = await reopen();
    assert.deepEqual((await again.callbacksDue(0)).map((j) => j.id), [b.id]);
    assert.deepEqual(await again.callbacksDue(Date.now() + 60000), [], 'none finished after the given time');
  });
}
