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
import { FRAME_HEAD, Journal, JOURNAL_MAGIC } from '../runtime/spool/journal.js';
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
  const garbled = Buffer.from(whole.subarray(JOURNAL_MAGIC.length, JOURNAL_MAGIC.length + FRAME_HEAD + whole.readUInt32LE(JOURNAL_MAGIC.length)));
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
  const second = JOURNAL_MAGIC.length + FRAME_HEAD + whole.readUInt32LE(JOURNAL_MAGIC.length);
  const flipped = Buffer.from(whole);
  flipped[second + FRAME_HEAD + 30] ^= 1; // inside the second record's box
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
  // Its length, not the file's size: past it the file may hold zeros written ahead.
  const before = spool.journal.bytes;
  await spool.journal.compact((spool as any).compactionRecords());
  const after = spool.journal.bytes;
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

/** The records' offsets and sync numbers in a journal file of the current format (its zeros end the walk). */
function frames(file: Buffer): { at: number; len: number; sync: number }[] {
  const out = [];
  for (let at = JOURNAL_MAGIC.length; at + FRAME_HEAD <= file.length; ) {
    const len = file.readUInt32LE(at);
    if (!len) break;
    out.push({ at, len: FRAME_HEAD + len, sync: file.readUInt32LE(at + 8) });
    at += FRAME_HEAD + len;
  }
  return out;
}

/** A preallocated journal (64 KiB steps) that has stepped into its first zero-filled file, holding job-0 … job-(n-1). */
async function preallocated(file: string, n: number, opts = { segmentBytes: 64 * 1024, freeFactor: 0 }): Promise<Journal> {
  const j = new Journal(file, key, opts);
  await j.load(() => {});
  await j.open();
  await until('a spare journal file', () => j.wantsRotation(), 5000, 10);
  await j.compact([]);
  for (let i = 0; i < n; i++) await j.append({ id: `job-${i}` });
  return j;
}

test('a preallocated journal: records overwrite zeros written ahead, the zeros end the log, a compaction steps into the next zero-filled file', async () => {
  const dir = await tmp();
  const file = path.join(dir, 'journal.log');
  const j = await preallocated(file, 0);
  const size = (await fs.stat(file)).size;
  assert.equal(size, 64 * 1024, 'the compaction wrote into a zero-filled file');
  for (let i = 0; i < 10; i++) await j.append({ id: `job-${i}` }, { attachment: randomBytes(2000) });
  assert.equal((await fs.stat(file)).size, size, 'appends did not grow the file');
  assert.ok(j.bytes > 20_000 && j.bytes < size);
  await j.close();
  const again = new Journal(file, key, { segmentBytes: 64 * 1024, freeFactor: 0 });
  const seen: any[] = [];
  assert.equal(await again.load((r) => seen.push(r.id)), 10);
  assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => `job-${i}`));
  assert.equal((await fs.stat(file)).size, size, 'the zeros after the last record are kept');
  // Past the zeros written ahead, records grow the file as before; the next compaction steps into a new spare.
  await again.open();
  for (let i = 10; i < 40; i++) await again.append({ id: `job-${i}` }, { attachment: randomBytes(2000) });
  assert.ok((await fs.stat(file)).size > size, 'grew past its zeros');
  await until('the next spare journal file', () => again.wantsRotation(), 5000, 10);
  await again.compact([{ id: 'job-39' }]);
  assert.equal((await fs.stat(file)).size, 64 * 1024, 'a new zero-filled file');
  await again.append({ id: 'job-40' });
  await again.close();
  assert.deepEqual((await loadAll(file)).map((r) => r.id), ['job-39', 'job-40']);
  assert.deepEqual(await fs.readdir(dir), ['journal.log'], 'no spare until half of the zeros are used, no temp files');
  await fs.rm(dir, { recursive: true, force: true });
});

test('a crash in the middle of a write to a preallocated journal: what the write left is cut, even a whole record of it after a hole; a record of a later sync after a hole is damage', async () => {
  const dir = await tmp();
  const file = path.join(dir, 'journal.log');
  const j = await preallocated(file, 3);
  await j.close();
  const clean = await fs.readFile(file);
  const written = frames(clean);
  const end = written.at(-1)!.at + written.at(-1)!.len;
  const last = written.at(-1)!.sync;
  assert.deepEqual(written.map((f) => f.sync), [last - 2, last - 1, last], 'one sync number per fdatasync');
  // The next write held two records; the page with the first never reached the disk, the second did, whole.
  const second = Buffer.from(clean.subarray(written[0].at, written[0].at + written[0].len));
  const withSync = (sync: number) => {
    second.writeUInt32LE(sync, 8);
    second.writeUInt32LE(~sync >>> 0, 12);
    const f = Buffer.from(clean);
    second.copy(f, end + 500);
    return f;
  };
  const reopen = async (bytes: Buffer) => {
    await fs.writeFile(file, bytes);
    const k = new Journal(file, key, { segmentBytes: 64 * 1024, freeFactor: 0 });
    const n = await k.load(() => {});
    return { k, n };
  };
  for (const [what, bytes] of [
    ['a whole record of the torn write after its lost first page', withSync(last + 1)],
    ['a torn write without its fdatasync, after the last one', withSync(last)],
    ['garbage', Buffer.concat([clean.subarray(0, end), randomBytes(300), clean.subarray(end + 300)])],
  ] as const) {
    const { k, n } = await reopen(bytes);
    assert.equal(n, 3, what);
    const after = await fs.readFile(file);
    assert.ok(after.equals(clean), `${what}: overwritten with zeros, the file keeps its size`);
    await k.open();
    await k.append({ id: 'job-3' });
    await k.close();
    assert.deepEqual((await loadAll(file)).map((r) => r.id), ['job-0', 'job-1', 'job-2', 'job-3'], what);
  }
  // A record written after a later fdatasync behind a hole: that fdatasync covered the hole, so it is damage.
  const damaged = withSync(last + 2);
  await fs.writeFile(file, damaged);
  await assert.rejects(loadAll(file), /damaged at record 4 .*zeros where a record should be/);
  assert.ok((await fs.readFile(file)).equals(damaged), 'a damaged journal is left as it was');
  await fs.rm(dir, { recursive: true, force: true });
});

test('preallocation on a full disk fails cleanly: no spare file keeps the space, and the journal appends as before and loses nothing', async (t) => {
  const dir = await smallTmpfs(t);
  if (!dir) return;
  try {
    const file = path.join(dir, 'journal.log');
    const j = new Journal(file, key, { segmentBytes: 4 * 1024 * 1024, freeFactor: 0 }); // more than the disk holds
    await j.load(() => {});
    await j.open();
    await until('the spare to fail', () => (j as any).spare.state === 'failed', 5000, 10);
    assert.deepEqual(await fs.readdir(dir), ['journal.log'], 'the half-written spare is gone');
    assert.equal(j.wantsRotation(), false);
    for (let i = 0; i < 20; i++) await j.append({ id: `job-${i}` }, { attachment: randomBytes(2000) });
    await j.close();
    assert.equal((await loadAll(file)).length, 20);
    // And with room for a spare but a disk that fills up before the next record: refused, nothing half written.
    const small = new Journal(file, key, { segmentBytes: 64 * 1024, freeFactor: 0 });
    await small.load(() => {});
    await small.open();
    await until('a spare journal file', () => small.wantsRotation(), 5000, 10);
    await small.compact((await loadAll(file)).slice(0, 5));
    const filler = await fs.open(path.join(dir, 'filler'), 'w');
    try {
      for (;;) await filler.write(Buffer.alloc(4096));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    await filler.close();
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 60; i++) {
      try {
        await small.append({ id: `late-${i}` }, { attachment: randomBytes(2000) });
        accepted++;
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
        refused++;
      }
    }
    assert.ok(accepted >= 20 && refused >= 1, `the zeros written ahead took records on a full disk (${accepted}), past them the disk refused (${refused})`);
    await small.close();
    const back = await loadAll(file);
    assert.deepEqual(back.map((r) => r.id), [...Array.from({ length: 5 }, (_, i) => `job-${i}`), ...Array.from({ length: accepted }, (_, i) => `late-${i}`)]);
  } finally {
    execFileSync('umount', ['-l', dir]);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a journal of the previous binary format (PBXJRNL2) loads with its documents, its torn tail is cut, and it is rewritten in the current one; damage in it is reported', async () => {
  const dir = await tmp();
  const file = path.join(dir, 'journal.log');
  const v2 = (rec: object, attachment = Buffer.alloc(0)) => {
    const json = Buffer.from(JSON.stringify(rec));
    const sealed = sealRecord(Buffer.concat([Buffer.from(Uint32Array.of(json.length).buffer), json, attachment]), key);
    const head = Buffer.alloc(8);
    head.writeUInt32LE(sealed.length, 0);
    head.writeUInt32LE(~sealed.length >>> 0, 4);
    return Buffer.concat([head, sealed]);
  };
  const doc = randomBytes(3000);
  const records = [v2({ id: 'job-0' }), v2({ id: 'job-1' }, doc), v2({ id: 'job-2' })];
  const old = Buffer.concat([Buffer.from('PBXJRNL2'), ...records]);
  await fs.writeFile(file, Buffer.concat([old, v2({ id: 'torn' }).subarray(0, 30)]));
  const j = new Journal(file, key, { segmentBytes: 64 * 1024, freeFactor: 0 });
  const seen: [string, Buffer | undefined][] = [];
  assert.equal(await j.load((r, a) => seen.push([r.id, a])), 3);
  assert.deepEqual(seen.map(([id]) => id), ['job-0', 'job-1', 'job-2']);
  assert.ok(seen[1][1]?.equals(doc), 'the document rides along');
  assert.ok((await fs.readFile(file)).subarray(0, JOURNAL_MAGIC.length).equals(JOURNAL_MAGIC), 'rewritten in the current format');
  await j.open();
  await j.append({ id: 'job-3' });
  await j.close();
  assert.deepEqual((await loadAll(file)).map((r) => r.id), ['job-0', 'job-1', 'job-2', 'job-3']);
  const flipped = Buffer.from(old);
  flipped[8 + records[0].length + 8 + 30] ^= 1; // inside the second record's box
  await fs.writeFile(file, flipped);
  await assert.rejects(loadAll(file), /damaged at record 2 .*authentication/);
  assert.ok((await fs.readFile(file)).equals(flipped), 'left as it was');
  assert.deepEqual((await fs.readdir(dir)).filter((f) => f.includes('migrate')), [], 'no half-made copy left');
  await fs.rm(dir, { recursive: true, force: true });
});

test('the spool steps into a preallocated journal at a compaction once the spare is ready, and keeps every unfinished job across a restart', async () => {
  const dir = await tmp();
  const fields = (i: number) => ({ id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, printerId: 'p', title: '', user: '', contentType: 'raw', options: { copies: 1 }, owner: 't', metaDigest: '', state: 'queued', warnings: [], attempts: 0, createdAt: '', updatedAt: '' }) as any;
  const spool = new LocalSpool({ dataDir: dir, key, historyLimit: 100 });
  await spool.open();
  const docs = Array.from({ length: 10 }, (_, i) => Buffer.from(`document ${i} `.repeat(100)));
  for (const [i, d] of docs.entries()) await spool.accept(fields(i), await spool.receive(Readable.from([d]), 1 << 30));
  const file = spool.journal.file;
  assert.equal((await fs.stat(file)).size, spool.journal.bytes, 'a new journal appends until its spare is ready');
  await until('the spare journal file', () => spool.journal.wantsRotation(), 10000, 20);
  assert.equal((await fs.stat(file)).size, spool.journal.bytes, 'nothing stepped yet');
  // A finished job is when the spool looks at the journal: the compaction it starts writes into the spare.
  const i = 1;
  await spool.update(fields(0).id, { state: 'sent' });
  await until('the journal to step into its preallocated file', async () => (await fs.stat(file)).size >= 16 * 1024 * 1024, 10000, 20);
  assert.ok(spool.journal.bytes < 1024 * 1024, 'the records, then zeros');
  await spool.update(fields(9).id, { state: 'held', reason: 'after the step' });
  await spool.close();
  const again = new LocalSpool({ dataDir: dir, key, historyLimit: 100 });
  await again.open();
  for (let k = i; k < 10; k++) assert.ok(Buffer.concat(await again.readDocument(fields(k).id)).equals(docs[k]), `document ${k} after the step and a restart`);
  assert.equal(again.get(fields(9).id)?.state, 'held');
  await again.close();
  await fs.rm(dir, { recursive: true, force: true });
});
