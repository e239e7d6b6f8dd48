// The journal and the spool on the edge of a full disk and after torn writes: nothing acknowledged is lost, the journal stays loadable.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import { Journal, JOURNAL_MAGIC } from '../runtime/spool/journal.js';
import { sealRecord } from '../runtime/spool/seal.js';
import { LocalSpool } from '../runtime/spool/local-spool.js';
import { until } from './helpers/appliance.js';

const key = randomBytes(32);
const tmp = () => fs.mkdtemp(path.join(os.tmpdir(), 'pbx-journal-'));

async function loadAll(file: string): Promise<any[]> {
  const recs: any[] = [];
  await new Journal(file, key).load((r) => recs.push(r));
  return recs;
}

/** A 1 MiB tmpfs on a fresh directory (the caller unmounts it), or null with the test skipped when mounting is not allowed. */
async function smallTmpfs(t: TestContext): Promise<string | null> {
  const dir = await tmp();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    t.skip('cannot mount a small tmpfs here (needs root)');
    return null;
  }
}

/** A fresh journal holding the records job-0, job-1, job-2. */
async function threeRecords(): Promise<{ dir: string; file: string }> {
  const dir = await tmp();
  const file = path.join(dir, 'journal.log');
  const j = new Journal(file, key);
  await j.load(() => {});
  await j.open();
  for (let i = 0; i < 3; i++) await j.append({ id: `job-${i}` });
  await j.close();
  return { dir, file };
}

test('a torn last record is cut off at load, so records appended after it never make the journal unloadable', async () => {
  const { dir, file } = await threeRecords();
  const whole = await fs.readFile(file);
  assert.ok(whole.subarray(0, JOURNAL_MAGIC.length).equals(JOURNAL_MAGIC), 'a new journal is in the binary format');
  // A crash in the middle of a write: the first 40 bytes of a record, no more.
  await fs.appendFile(file, whole.subarray(JOURNAL_MAGIC.length, JOURNAL_MAGIC.length + 40));
  const j2 = new Journal(file, key);
  const seen: any[] = [];
  assert.equal(await j2.load((r) => seen.push(r)), 3);
  assert.equal((await fs.stat(file)).size, whole.length, 'the torn tail was removed');
  await j2.open();
  await j2.append({ id: 'job-3' });
  await j2.close();
  assert.deepEqual((await loadAll(file)).map((r) => r.id), ['job-0', 'job-1', 'job-2', 'job-3']);
  // The file grew but its data never came (zeros), or the last record is whole in length but garbled: cut too.
  const size = (await fs.stat(file)).size;
  await fs.appendFile(file, Buffer.alloc(300));
  assert.equal(await new Journal(file, key).load(() => {}), 4);
  assert.equal((await fs.stat(file)).size, size);
  const garbled = Buffer.from(whole.subarray(JOURNAL_MAGIC.length, JOURNAL_MAGIC.length + 8 + whole.readUInt32LE(JOURNAL_MAGIC.length)));
  garbled[garbled.length - 1] ^= 1;
  await fs.appendFile(file, garbled);
  const j3 = new Journal(file, key);
  assert.equal(await j3.load(() => {}), 4);
  await j3.open();
  await j3.append({ id: 'job-4' });
  await j3.close();
  assert.deepEqual((await loadAll(file)).map((r) => r.id), ['job-0', 'job-1', 'job-2', 'job-3', 'job-4']);
  await fs.rm(dir, { recursive: true, force: true });
});

test('damage in the middle of the journal is reported, not skipped', async () => {
  const { dir, file } = await threeRecords();
  const whole = await fs.readFile(file);
  const second = JOURNAL_MAGIC.length + 8 + whole.readUInt32LE(JOURNAL_MAGIC.length);
  const flipped = Buffer.from(whole);
  flipped[second + 8 + 30] ^= 1; // inside the second record's box
  await fs.writeFile(file, flipped);
  await assert.rejects(loadAll(file), /damaged at record 2 .*authentication/);
  const badLength = Buffer.from(whole);
  badLength[second] ^= 1; // its length no longer matches the complement
  await fs.writeFile(file, badLength);
  await assert.rejects(loadAll(file), /damaged at record 2 .*bad record length/);
  assert.ok((await fs.readFile(file)).equals(badLength), 'a damaged journal is left as it was');
  await fs.rm(dir, { recursive: true, force: true });
});

test('a journal of the first format (base64 lines) loads, is rewritten in the binary format, and keeps its small documents', async () => {
  const dir = await tmp();
  // Written by the spool before the binary format: an accept line with the sealed document in `doc`, a later
  // line of the same job without it, another job, and a torn last line.
  const first = new LocalSpool({ dataDir: dir, key, historyLimit: 100 });
  await first.open();
  const doc = Buffer.from('a small document of the first format '.repeat(20));
  const sealed = (await first.receive(Readable.from([doc]), 1 << 30)).sealed!;
  await first.close();
  const id = '00000000-0000-4000-8000-000000000001';
  const job = { id, seq: 1, printerId: 'p', title: 't', user: 'u', contentType: 'raw', options: { copies: 1 }, owner: 't', size: doc.length, digest: '', metaDigest: '', state: 'queued', warnings: [], attempts: 0, createdAt: '', updatedAt: '', hasDocument: true, inline: true };
  const line = (rec: object) => sealRecord(Buffer.from(JSON.stringify(rec)), key).toString('base64') + '\n';
  const file = path.join(dir, 'spool', 'journal.log');
  const held = { ...job, state: 'held', reason: 'before the upgrade' };
  const other = { ...job, id: '00000000-0000-4000-8000-000000000002', seq: 2, inline: false, hasDocument: false, state: 'sent' };
  await fs.writeFile(file, line({ ...job, doc: sealed.toString('base64') }) + line(held) + line(other) + line(other).slice(0, 30));
  const spool = new LocalSpool({ dataDir: dir, key, historyLimit: 100 });
  await spool.open();
  assert.equal(spool.get(id)?.state, 'held');
  assert.equal(spool.get(other.id)?.state, 'sent');
  assert.ok(Buffer.concat(await spool.readDocument(id)).equals(doc), 'the document of the first format reads back');
  assert.ok((await fs.readFile(file)).subarray(0, JOURNAL_MAGIC.length).equals(JOURNAL_MAGIC), 'rewritten in the binary format');
  await spool.update(id, { state: 'queued', reason: undefined });
  await spool.close();
  const again = new LocalSpool({ dataDir: dir, key, historyLimit: 100 });
  await again.open();
  assert.equal(again.get(id)?.state, 'queued');
  assert.ok(Buffer.concat(await again.readDocument(id)).equals(doc), 'and after the next start');
  await again.close();
  // Damage in the middle of an old journal is reported as before, and the file is left as it was.
  const bad = line(job).replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
  const damaged = line(held) + bad + line(other);
  await fs.writeFile(file, damaged);
  await assert.rejects(loadAll(file), /damaged at line 2/);
  assert.equal(await fs.readFile(file, 'utf8'), damaged, 'left as it was');
  assert.deepEqual((await fs.readdir(path.dirname(file))).filter((f) => f.includes('migrate')), [], 'no half-made copy left');
  await fs.rm(dir, { recursive: true, force: true });
});

test('on a nearly full disk an upload is refused whole: never a short write acknowledged, and the journal stays loadable', async (t) => {
  const dir = await smallTmpfs(t);
  if (!dir) return;
  try {
    const spool = new LocalSpool({ dataDir: dir, key, historyLimit: 100 });
    await spool.open();
    const accepted: string[] = [];
    let refused = 0;
    // Fill the disk with 100 KB documents (each written by one write call, so the write that meets the
    // full disk is a document's last); the one that does not fit must fail, not come back short.
    for (let i = 0; i < 16; i++) {
      const doc = randomBytes(100_000);
      try {
        const r = await spool.receive(Readable.from([doc]), 1 << 30);
        assert.equal(r.size, doc.length);
        const job = await spool.accept({ id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, printerId: 'p', title: '', user: '', contentType: 'raw', options: { copies: 1 } as any, owner: 't', metaDigest: '', state: 'queued', warnings: [], attempts: 0, createdAt: '', updatedAt: '' } as any, r);
        const back = Buffer.concat(await spool.readDocument(job.id));
        assert.ok(back.equals(doc), `job ${i} reads back whole`);
        accepted.push(job.id);
      } catch (err) {
        assert.match(String((err as any).code), /insufficient_storage|ENOSPC/, String(err));
        refused++;
      }
    }
    assert.ok(accepted.length >= 1 && refused >= 1, `accepted ${accepted.length}, refused ${refused}`);
    assert.deepEqual(await fs.readdir(spool.tmpDir), [], 'no temp file left behind');
    await spool.close();
    const again = new LocalSpool({ dataDir: dir, key, historyLimit: 100 });
    await again.open(); // the journal loads after the disk filled up
    for (const id of accepted) assert.equal(Buffer.concat(await again.readDocument(id)).length, 100_000);
    await again.close();
  } finally {
    execFileSync('umount', ['-l', dir]);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('small documents ride in the journal: they survive a restart and a compaction, and a finished one leaves the journal at the next compaction', async () => {
  const dir = await tmp();
  const fields = (i: number) => ({ id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, printerId: 'p', title: '', user: '', contentType: 'raw', options: { copies: 1 }, owner: 't', metaDigest: '', state: 'queued', warnings: [], attempts: 0, createdAt: '', updatedAt: '' }) as any;
  const spool = new LocalSpool({ dataDir: dir, key, historyLimit: 100 });
  await spool.open();
  const docs = Array.from({ length: 20 }, (_, i) => Buffer.from(`document ${i} `.repeat(200)));
  for (const [i, d] of docs.entries()) await spool.accept(fields(i), await spool.receive(Readable.from([d]), 1 << 30));
  assert.deepEqual(await fs.readdir(spool.docsDir), [], 'no files for small documents');
  // Half of them print; then a compaction (what the spool does when the journal has grown).
  for (let i = 0; i < 10; i++) await spool.update(fields(i).id, { state: 'sent' });
  const before = (await fs.stat(spool.journal.file)).size;
  await spool.journal.compact((spool as any).compactionRecords());
  const after = (await fs.stat(spool.journal.file)).size;
  assert.ok(after < before * 0.75, `the printed documents left the journal (${before} → ${after} bytes)`);
  await spool.close();
  const again = new LocalSpool({ dataDir: dir, key, historyLimit: 100 });
  await again.open();
  for (let i = 10; i < 20; i++) assert.ok(Buffer.concat(await again.readDocument(fields(i).id)).equals(docs[i]), `document ${i} after compaction and restart`);
  await assert.rejects(again.readDocument(fields(3).id), 'a printed document is gone');
  // A line appended after the compaction (a state change, without the document) keeps it.
  await again.update(fields(12).id, { state: 'held', reason: 'test' });
  await again.close();
  const third = new LocalSpool({ dataDir: dir, key, historyLimit: 100 });
  await third.open();
  assert.ok(Buffer.concat(await third.readDocument(fields(12).id)).equals(docs[12]));
  await third.close();
  await fs.rm(dir, { recursive: true, force: true });
});

test('a cancelled small document is purged from the journal soon after the cancel, not at some later compaction', async () => {
  const dir = await tmp();
  const spool = new LocalSpool({ dataDir: dir, key, historyLimit: 100, purgeAfterMs: 50 });
  await spool.open();
  const ids = ['a', 'b'].map((x) => `00000000-0000-4000-8000-00000000000${x}`);
  for (const id of ids) {
    const r = await spool.receive(Readable.from([Buffer.from(`wrong patient ${id}`)]), 1 << 30);
    await spool.accept({ id, printerId: 'p', title: '', user: '', contentType: 'raw', options: { copies: 1 }, owner: 't', metaDigest: '', state: 'queued', warnings: [], attempts: 0, createdAt: '', updatedAt: '' } as any, r);
  }
  const withDoc = async () => {
    const has = new Set<string>();
    await new Journal(spool.journal.file, key).load((r, doc) => doc && has.add(r.id));
    return has;
  };
  assert.deepEqual([...(await withDoc())].sort(), ids);
  await spool.update(ids[0], { state: 'cancelled' });
  await until('the cancelled document to leave the journal', async () => !(await withDoc()).has(ids[0]), 5000, 20);
  assert.ok((await withDoc()).has(ids[1]), 'the other, still queued, keeps its document');
  await spool.close();
  await fs.rm(dir, { recursive: true, force: true });
});

test('a compaction that meets a full disk leaves no partial copy behind, and the purge it was for happens once there is room', async (t) => {
  const dir = await smallTmpfs(t);
  if (!dir) return;
  const spool = new LocalSpool({ dataDir: dir, key, historyLimit: 100, purgeAfterMs: 300 });
  try {
    await spool.open();
    const ids = ['a', 'b'].map((x) => `00000000-0000-4000-8000-00000000000${x}`);
    for (const id of ids) {
      const r = await spool.receive(Readable.from([randomBytes(20_000)]), 1 << 30);
      await spool.accept({ id, printerId: 'p', title: '', user: '', contentType: 'raw', options: { copies: 1 }, owner: 't', metaDigest: '', state: 'queued', warnings: [], attempts: 0, createdAt: '', updatedAt: '' } as any, r);
    }
    const withDoc = async () => {
      const has = new Set<string>();
      await new Journal(spool.journal.file, key).load((r, doc) => doc && has.add(r.id));
      return has;
    };
    await spool.update(ids[0], { state: 'cancelled' }); // on disk; its purge is due in 300 ms
    // Fill what is left before then, so the compaction's new copy of the journal cannot be written.
    const filler = path.join(dir, 'filler');
    const fh = await fs.open(filler, 'w');
    try {
      for (;;) await fh.write(Buffer.alloc(4096));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    await fh.close();
    await new Promise((r) => setTimeout(r, 1000)); // the purge meets the full disk
    const left = (await fs.readdir(dir, { recursive: true })).filter((f) => f.includes('compact'));
    assert.deepEqual(left, [], 'no partial journal copy holds on to the little space there is');
    assert.ok((await withDoc()).has(ids[0]), 'the purge could not have happened yet');
    await fs.rm(filler);
    await until('the cancelled document to leave the journal once there is room', async () => !(await withDoc()).has(ids[0]), 5000, 20);
    assert.ok((await withDoc()).has(ids[1]), 'the other, still queued, keeps its document');
  } finally {
    await spool.close();
    execFileSync('umount', [dir]);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('receive() ends as its upload ends: every byte in order, a stream that errors or closes before its end (or before receive() began) is refused with no temp file left, an over-limit one is destroyed', async () => {
  const dir = await tmp();
  const spool = new LocalSpool({ dataDir: dir, key, historyLimit: 100 });
  await spool.open();
  // 3 MiB in uneven chunks: many batches, with batch borders falling anywhere.
  const doc = randomBytes(3 * 1024 * 1024);
  const chunks: Buffer[] = [];
  for (let at = 0, k = 0; at < doc.length; k++) chunks.push(doc.subarray(at, (at += 1000 + ((k * 7919) % 70000))));
  const id = '00000000-0000-4000-8000-000000000001';
  const fields = { id, printerId: 'p', title: '', user: '', contentType: 'raw', options: { copies: 1 }, owner: 't', metaDigest: '', state: 'queued', warnings: [], attempts: 0, createdAt: '', updatedAt: '' } as any;
  await spool.accept(fields, await spool.receive(Readable.from(chunks), 1 << 30));
  assert.ok(Buffer.concat(await spool.readDocument(id)).equals(doc), 'the document reads back byte for byte');

  const cutOff = (end: (s: Readable) => void) => {
    const s = new Readable({ read() {} });
    s.push(randomBytes(300 * 1024)); // past the inline limit: a temp file is open when the stream ends
    setTimeout(() => end(s), 50);
    return s;
  };
  await assert.rejects(spool.receive(cutOff((s) => s.destroy()), 1 << 30), { code: 'ERR_STREAM_PREMATURE_CLOSE' }, 'closed without an end is not a whole document');
  await assert.rejects(spool.receive(cutOff((s) => s.destroy(new Error('connection reset'))), 1 << 30), /connection reset/);
  assert.deepEqual(await fs.readdir(spool.tmpDir), [], 'no temp file left behind');
  // A stream that failed or closed before receive() began listening (a truncated multipart body can fail its file
  // stream that early): refused at once, not waited on forever. Found by the torture suite: 5 of 3,000 hung.
  const hangs = (p: Promise<unknown>) => Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error('receive() never settled')), 3000))]);
  const failedEarly = new Readable({ read() {} });
  failedEarly.on('error', () => {});
  failedEarly.destroy(new Error('failed before receive'));
  await new Promise((r) => failedEarly.on('close', r));
  await assert.rejects(hangs(spool.receive(failedEarly, 1 << 30)), /failed before receive/);
  const closedEarly = new Readable({ read() {} });
  closedEarly.destroy();
  await once(closedEarly, 'close');
  await assert.rejects(hangs(spool.receive(closedEarly, 1 << 30)), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

  let pushed = 0;
  const endless = new Readable({ read() { this.push(pushed++ < 1024 ? Buffer.alloc(64 * 1024) : null); } }); // 64 MiB, over a 1 MiB limit
  await assert.rejects(spool.receive(endless, 1024 * 1024), { code: 'document_too_large' });
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(endless.destroyed && pushed < 1024, `a stream given up on is destroyed, not read on to its end for nothing (${pushed} of 1024 chunks read)`);
  assert.deepEqual(await fs.readdir(spool.tmpDir), []);
  await spool.close();
  await fs.rm(dir, { recursive: true, force: true });
});
