// Append-only, encrypted, group-committed journal of job records (preallocated on request): the spool's memory across restarts.
import fs from 'node:fs/promises';
import fsSync, { createReadStream } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fsyncDir, writeFully, writeFullySync } from '../system/fsutil.js';
import { openRecord, RECORD_OVERHEAD, sealRecordInto, SealError } from './seal.js';

/**
 * The first bytes of a journal file. After them, records: `u32 length ‖ u32 ~length ‖ u32 sync ‖ u32 ~sync ‖ nonce ‖
 * secretbox(plain)` (little-endian), where plain is `u32 jsonLength ‖ JSON ‖ attachment` (an attachment: the sealed
 * bytes of a small document riding with its job's record) and `sync` numbers the fdatasync that made the record
 * durable (every record written between two fdatasyncs carries the same number). After the last record: zeros, up
 * to the end of the file when it was preallocated (see JournalOptions). The complements tell a record from zeros
 * and garbage; the sync numbers tell the remains of the one write a crash cut short from damage in the middle.
 * `PBXJRNL2` (the same without the sync words) and the first format (one base64 line per record) are loaded, then
 * rewritten in this one.
 */
export const JOURNAL_MAGIC = Buffer.from('PBXJRNL3');
const MAGIC_V2 = Buffer.from('PBXJRNL2');
/** Bytes of a record's header (length, sync number and their complements). */
export const FRAME_HEAD = 16;
const HEAD = FRAME_HEAD;
const HEAD_V2 = 8;
/** Bytes of a journal read per step at load, and of zeros written per step when preallocating. */
const READ_BYTES = 1024 * 1024;
const ZEROS = Buffer.alloc(READ_BYTES);

export type OnRecord = (rec: any, attachment?: Buffer) => void;

/** A record and the bytes that ride with it, as compact() takes them. */
export class Attached {
  constructor(readonly rec: object, readonly attachment: Buffer) {}
}

export interface JournalOptions {
  /**
   * Preallocation: records overwrite zeros written ahead of them instead of growing the file. An fdatasync after
   * an append must also commit the file's new size (on ext4 it waits for a commit of the filesystem's journal: p50
   * 0.13–0.17 ms for a 2.2 KB record here); after an overwrite of blocks already written it need not (0.09 ms).
   * A compaction writes the records into a spare file of at least this many bytes of zeros, written and fsync'd in
   * the background before it is needed. 0 (the default): plain appends.
   */
  segmentBytes?: number;
  /** A spare is written only while the disk has this many times its size free (a full disk keeps appending). */
  freeFactor?: number;
  /** ... and only when it leaves this much free (intake's floor: zeros written ahead must not cause a 507). */
  keepFreeBytes?: number;
}

/** Batches up to this size are written with write(2) on the event loop's thread (see flush). */
const SYNC_WRITE_MAX = 256 * 1024;

interface Pending {
  data: Buffer;
  durable: boolean;
  dirs: string[];
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * One framed record. Binary, not base64(JSON with the document in base64): the accept record of a 2 KiB job made
 * ~25 KB of strings and Buffers that way (a base64 copy of the document inside the JSON, the JSON, its bytes, their
 * seal, the seal's base64, the line; then the batch's join and its bytes), now ~8 KB (the JSON, the plaintext with
 * the document, the sealed frame; measured in-process with the JSON of a real job record). Its sync number is
 * stamped when it is written.
 */
export function encodeRecord(rec: object, key: Uint8Array, attachment?: Buffer): Buffer {
  const json = JSON.stringify(rec);
  const jsonLen = Buffer.byteLength(json);
  const plain = Buffer.allocUnsafe(4 + jsonLen + (attachment?.length ?? 0));
  plain.writeUInt32LE(jsonLen, 0);
  plain.write(json, 4, 'utf8');
  attachment?.copy(plain, 4 + jsonLen);
  return frame(plain, key);
}

function frame(plain: Buffer, key: Uint8Array): Buffer {
  const len = RECORD_OVERHEAD + plain.length;
  const out = Buffer.allocUnsafe(HEAD + len);
  out.writeUInt32LE(len, 0);
  out.writeUInt32LE(~len >>> 0, 4);
  stamp(out, 0);
  sealRecordInto(out.subarray(HEAD), plain, key);
  return out;
}

/** A frame of this format around a sealed record of PBXJRNL2 (the box is kept as it is). */
function reframe(sealed: Buffer, sync: number): Buffer {
  const out = Buffer.allocUnsafe(HEAD + sealed.length);
  out.writeUInt32LE(sealed.length, 0);
  out.writeUInt32LE(~sealed.length >>> 0, 4);
  stamp(out, sync);
  sealed.copy(out, HEAD);
  return out;
}

function stamp(framed: Buffer, sync: number): void {
  framed.writeUInt32LE(sync, 8);
  framed.writeUInt32LE(~sync >>> 0, 12);
}

/** The length and sync number of the frame header at `at`, or null where there is none (zeros, garbage). */
function readHead(b: Buffer, at: number): { len: number; sync: number } | null {
  if ((b.readUInt32LE(at) ^ b.readUInt32LE(at + 4)) !== -1 || (b.readUInt32LE(at + 8) ^ b.readUInt32LE(at + 12)) !== -1) return null;
  return { len: b.readUInt32LE(at), sync: b.readUInt32LE(at + 8) };
}

function decodeRecord(sealed: Buffer, key: Uint8Array): { rec: any; attachment?: Buffer } {
  const plain = openRecord(sealed, key);
  const jsonLen = plain.readUInt32LE(0);
  if (4 + jsonLen > plain.length) throw new SealError('journal record has a bad length');
  const rec = JSON.parse(plain.toString('utf8', 4, 4 + jsonLen));
  return { rec, attachment: plain.length > 4 + jsonLen ? plain.subarray(4 + jsonLen) : undefined };
}

/** Reads a file in steps of READ_BYTES: views of `n` bytes at any offset, or null past the end. */
class StepReader {
  private buf = Buffer.alloc(0);
  private bufAt = 0;

  constructor(private fh: fs.FileHandle, readonly size: number) {}

  async get(at: number, n: number): Promise<Buffer | null> {
    if (at + n > this.size) return null;
    if (at < this.bufAt || at + n > this.bufAt + this.buf.length) {
      const len = Math.min(this.size - at, Math.max(n, READ_BYTES));
      const b = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await this.fh.read(b, got, len - got, at + got);
        if (!bytesRead) break;
        got += bytesRead;
      }
      if (got < n) return null;
      this.buf = b.subarray(0, got);
      this.bufAt = at;
    }
    return this.buf.subarray(at - this.bufAt, at - this.bufAt + n);
  }

  /** True when every byte from `at` to the end is zero (a crash after the file's size grew, before its data). */
  async zeroFrom(at: number): Promise<boolean> {
    return (await this.dirtyEnd(at)) === at;
  }

  /** Where the bytes after `at` that are not zero end (`at` when there are none). Reads to the end of the file. */
  async dirtyEnd(at: number): Promise<number> {
    let end = at;
    for (let p = at; p < this.size; p += READ_BYTES) {
      const b = (await this.get(p, Math.min(READ_BYTES, this.size - p)))!;
      if (b.equals(ZEROS.subarray(0, b.length))) continue;
      let i = b.length - 1;
      while (b[i] === 0) i--;
      end = p + i + 1;
    }
    return end;
  }
}

/** Where a load stopped: the first bytes after the last readable record that are not one. */
interface Stop {
  at: number;
  /** The sync number of the unreadable record there, when its header was whole. */
  sync?: number;
  why: string;
}

/**
 * Appends that arrive while a write is in flight are written and fsync'd together (group commit); `append`
 * resolves only after its record is durable.
 */
export class Journal {
  private fh: fs.FileHandle | null = null;
  private queue: Pending[] = [];
  private flushing = false;
  private compactRequest: { records: Iterable<object>; resolve: () => void; reject: (e: Error) => void } | null = null;
  /** Where the next record goes: the end of the last one (after a load, of the last readable one). */
  bytes = 0;
  linesWritten = 0;
  private loaded = false;
  /** The file's size: past `bytes`, zeros written ahead (preallocated). */
  private allocated = 0;
  /** The sync number of the last fdatasync done; records written after it carry the next one. */
  private synced = 0;
  /** The size of the journal after its last rewrite: what a spare must hold, twice over. */
  private rewritten = 0;
  private spare: { state: 'none' | 'preparing' | 'ready' | 'using' | 'failed'; size: number; done?: Promise<void>; failedAt?: number } = { state: 'none', size: 0 };
  private readonly spareFile: string;
  private readonly segmentBytes: number;
  private readonly freeFactor: number;
  private readonly keepFreeBytes: number;

  constructor(readonly file: string, private key: Uint8Array, opts: JournalOptions = {}) {
    this.spareFile = `${file}.spare`;
    this.segmentBytes = opts.segmentBytes ?? 0;
    this.freeFactor = opts.freeFactor ?? 4;
    this.keepFreeBytes = opts.keepFreeBytes ?? 0;
  }

  /**
   * Reads every record (with its attachment, if any); a torn last write (crash mid-write) is cut off, damage
   * elsewhere is an error. A journal of an earlier format is rewritten in this one as it is read.
   */
  async load(onRecord: OnRecord): Promise<number> {
    this.loaded = true;
    this.bytes = 0;
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(this.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    try {
      const reader = new StepReader(fh, (await fh.stat()).size);
      const head = await reader.get(0, Math.min(reader.size, JOURNAL_MAGIC.length));
      if (head && head.length === JOURNAL_MAGIC.length && head.equals(JOURNAL_MAGIC)) return await this.loadRecords(reader, onRecord);
      if (head && head.length === MAGIC_V2.length && head.equals(MAGIC_V2)) return await this.migrate(this.framesV2(reader, onRecord));
      if (head && (JOURNAL_MAGIC.subarray(0, head.length).equals(head) || MAGIC_V2.subarray(0, head.length).equals(head))) {
        // Empty, or only part of the magic written before a crash: nothing was ever recorded.
        if (reader.size) await fs.truncate(this.file, 0);
        return 0;
      }
    } finally {
      await fh.close();
    }
    return this.migrateLines(onRecord);
  }

  private async loadRecords(r: StepReader, onRecord: OnRecord): Promise<number> {
    let at = JOURNAL_MAGIC.length;
    let n = 0;
    let last: number | undefined;
    let stop: Stop | null = null;
    while (at < r.size) {
      const head = await r.get(at, HEAD);
      const h = head && readHead(head, 0);
      if (!h) {
        stop = { at, why: head && !head.equals(ZEROS.subarray(0, HEAD)) ? 'bad record length' : 'end' };
        break;
      }
      const body = await r.get(at + HEAD, h.len);
      let dec: { rec: any; attachment?: Buffer };
      try {
        if (!body) throw new SealError('the record runs past the end of the file');
        dec = decodeRecord(body, this.key);
      } catch (err) {
        stop = { at, sync: h.sync, why: (err as Error).message };
        break;
      }
      onRecord(dec.rec, dec.attachment);
      n++;
      last = h.sync;
      at += HEAD + h.len;
    }
    if (stop) await this.cutAt(r, stop, n + 1, last);
    this.synced = last ?? 0;
    this.bytes = this.rewritten = at;
    return n;
  }

  /**
   * The end of the log. Zeros are its normal end (preallocated, or a crash after the file grew and before its data
   * came). Other bytes after the last readable record are the remains of the one write that a crash cut short —
   * pages of it may reach the disk in any order, so whole records of it can lie after a hole — or damage. Every
   * record of one write carries the same sync number, the one after the last record's (or that number again: a
   * write without its fdatasync): a readable record after the hole with another number was written after an
   * fdatasync that covered the hole, so the hole is damage, reported with its place; the journal is left as it is.
   * Remains of a torn write are cut: truncated, or overwritten with zeros when the zeros after them are kept.
   */
  private async cutAt(r: StepReader, stop: Stop, recNo: number, last: number | undefined): Promise<void> {
    const dirty = await r.dirtyEnd(stop.at);
    if (dirty > stop.at) {
      const later = await this.syncsIn(r, stop.at + 1, dirty);
      const torn = stop.sync ?? later[0];
      const damaged = later.some((s) => s !== torn) || (later.length > 0 && last !== undefined && ((torn! - last) >>> 0) > 1);
      if (damaged) {
        const why = stop.why === 'end' ? 'zeros where a record should be, and records after them' : stop.why;
        throw new SealError(`journal ${this.file} is damaged at record ${recNo} (byte ${stop.at}): ${why}`);
      }
    }
    // Cut before anything is appended after it: otherwise a torn write would become damage in the middle.
    if (!this.segmentBytes) {
      if (stop.at < r.size) await fs.truncate(this.file, stop.at);
    } else if (dirty > stop.at) {
      const fh = await fs.open(this.file, 'r+');
      try {
        for (let p = stop.at; p < dirty; p += READ_BYTES) await writeFully(fh, [ZEROS.subarray(0, Math.min(READ_BYTES, dirty - p))], p);
        await fh.datasync();
      } finally {
        await fh.close();
      }
    }
  }

  /** The sync numbers of the readable records that start between `from` and `to` (byte by byte: lengths may be lost). */
  private async syncsIn(r: StepReader, from: number, to: number): Promise<number[]> {
    const found: number[] = [];
    let p = from;
    while (p < to) {
      const chunk = await r.get(p, Math.min(READ_BYTES, r.size - p));
      if (!chunk || chunk.length < HEAD) break;
      const lim = Math.min(chunk.length - HEAD, to - p - 1);
      let i = 0;
      while (i <= lim && !readHead(chunk, i)) i++;
      if (i > lim) {
        p += lim + 1;
        continue;
      }
      const h = readHead(chunk, i)!;
      const body = await r.get(p + i + HEAD, h.len);
      try {
        if (body) {
          decodeRecord(body, this.key);
          found.push(h.sync);
          p += i + HEAD + h.len;
          continue;
        }
      } catch {
        // not a record after all
      }
      p += i + 1;
    }
    return found;
  }

  /**
   * The records of a PBXJRNL2 journal, in frames of this format (the boxes as they are). Its rules: a torn last
   * record is left out (its length's complement tells it from damage, which is an error).
   */
  private async *framesV2(r: StepReader, onRecord: OnRecord): AsyncGenerator<Buffer> {
    let at = MAGIC_V2.length;
    let n = 0;
    const damaged = (why: string) => new SealError(`journal ${this.file} is damaged at record ${n} (byte ${at}): ${why}`);
    while (at < r.size) {
      n++;
      const head = await r.get(at, HEAD_V2);
      if (!head) break; // torn inside the length
      const len = head.readUInt32LE(0);
      if (((head.readUInt32LE(4) ^ len) >>> 0) !== 0xffffffff) {
        if (await r.zeroFrom(at)) break;
        throw damaged('bad record length');
      }
      if (at + HEAD_V2 + len > r.size) break; // torn: the crash came before the record's end
      const body = (await r.get(at + HEAD_V2, len))!;
      let dec: { rec: any; attachment?: Buffer };
      try {
        dec = decodeRecord(body, this.key);
      } catch (err) {
        if (at + HEAD_V2 + len === r.size) break; // the last record, unreadable: torn (or garbled) by a crash
        throw damaged((err as Error).message);
      }
      yield reframe(body, 0);
      onRecord(dec.rec, dec.attachment);
      at += HEAD_V2 + len;
    }
  }

  /** A journal of an earlier format, rewritten in this one (temp → fsync → rename → fsync dir). */
  private async migrate(frames: AsyncIterable<Buffer>): Promise<number> {
    let count = 0;
    async function* counted(): AsyncGenerator<Buffer> {
      for await (const f of frames) {
        count++;
        yield f;
      }
    }
    const { size } = await this.replaceWith('migrate', counted());
    this.bytes = this.rewritten = size;
    this.synced = 0;
    return count;
  }

  /**
   * The first format: base64(nonce ‖ secretbox(JSON)) per line. Each readable line is handed on and copied into a
   * new journal in this format, which then replaces the file (temp → fsync → rename → fsync dir). A torn last line
   * is left out; damage elsewhere is an error and leaves the old file as it was.
   */
  private async migrateLines(onRecord: OnRecord): Promise<number> {
    const file = this.file;
    const key = this.key;
    async function* frames(): AsyncGenerator<Buffer> {
      const rl = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
      let bad: { line: number; err: Error } | null = null;
      let n = 0;
      for await (const line of rl) {
        n++;
        if (bad) throw new SealError(`journal ${file} is damaged at line ${bad.line}: ${bad.err.message}`);
        if (!line) continue;
        let json: Buffer;
        try {
          json = openRecord(Buffer.from(line, 'base64'), key);
        } catch (err) {
          bad = { line: n, err: err as Error }; // tolerated only if it turns out to be the last line
          continue;
        }
        const plain = Buffer.allocUnsafe(4 + json.length);
        plain.writeUInt32LE(json.length, 0);
        json.copy(plain, 4);
        yield frame(plain, key);
        onRecord(JSON.parse(json.toString('utf8')));
      }
    }
    return this.migrate(frames());
  }

  /**
   * A new copy of the journal made of `frames` (temp → fsync → rename → fsync dir); returns its size and the
   * file's. Written into the spare when one is ready (its zeros stay after the records), else into a new file. A
   * copy cut short (an error, a full disk) is removed and must not keep the space it took: the old journal stays.
   */
  private async replaceWith(suffix: string, frames: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<{ size: number; allocated: number }> {
    const intoSpare = this.spare.state === 'ready' && suffix === 'compact';
    const tmp = intoSpare ? this.spareFile : `${this.file}.${suffix}`;
    const spareSize = this.spare.size;
    // In use: no new spare may be started under this name until the rename; then it is used up, whatever happened.
    if (intoSpare) this.spare = { state: 'using', size: 0 };
    let size: number;
    try {
      size = await this.writeCopy(tmp, intoSpare, frames);
      await fs.rename(tmp, this.file);
    } finally {
      if (intoSpare) this.spare = { state: 'none', size: 0 };
    }
    await fsyncDir(path.dirname(this.file));
    return { size, allocated: intoSpare ? Math.max(size, spareSize) : size };
  }

  /** The magic and `frames` written from the start of `file` (over a spare's zeros, or into a new file), synced. */
  private async writeCopy(file: string, overZeros: boolean, frames: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<number> {
    const out = await fs.open(file, overZeros ? 'r+' : 'w', 0o600);
    let size = 0;
    let written = false;
    try {
      let bufs: Buffer[] = [JOURNAL_MAGIC];
      let bytes = JOURNAL_MAGIC.length;
      const write = async () => {
        await writeFully(out, bufs, size);
        size += bytes;
        bufs = [];
        bytes = 0;
      };
      for await (const b of frames) {
        bufs.push(b);
        bytes += b.length;
        if (bytes >= READ_BYTES) await write();
      }
      await write();
      await out.sync();
      written = true;
    } finally {
      await out.close();
      if (!written) await fs.rm(file, { force: true });
    }
    return size;
  }

  async open(): Promise<void> {
    if (!this.loaded) await this.load(() => {});
    this.fh = await fs.open(this.file, fsSync.constants.O_RDWR | fsSync.constants.O_CREAT, 0o600);
    this.allocated = (await this.fh.stat()).size;
    if (this.allocated === 0) {
      // A new journal: its magic goes first (made durable with the first record's sync).
      await writeFully(this.fh, [JOURNAL_MAGIC], 0);
      this.bytes = this.allocated = this.rewritten = JOURNAL_MAGIC.length;
    }
    await fsyncDir(path.dirname(this.file));
    if (this.segmentBytes) {
      await fs.rm(this.spareFile, { force: true }); // a crash may have left it half written, or half used
      this.spareDue();
    }
  }

  /** Bytes of zeros written ahead of the next record. */
  get room(): number {
    return Math.max(0, this.allocated - this.bytes);
  }

  /**
   * True when a compaction should come now for the journal to stay preallocated: a spare is ready and less than a
   * quarter of a segment is left (past it, records grow the file, as without preallocation).
   */
  wantsRotation(): boolean {
    if (!this.segmentBytes || this.room >= this.segmentBytes / 4) return false;
    this.spareDue();
    return this.spare.state === 'ready';
  }

  /** Starts writing a spare when less than half a segment is left (a failed try is repeated after a minute). */
  private spareDue(): void {
    if (!this.segmentBytes || !this.fh || this.room >= this.segmentBytes / 2) return;
    const { state, failedAt = 0 } = this.spare;
    if (state === 'preparing' || state === 'ready' || state === 'using' || (state === 'failed' && Date.now() - failedAt < 60_000)) return;
    const size = Math.max(this.segmentBytes, Math.ceil((2 * this.rewritten) / 4096) * 4096);
    const done = this.writeSpare(size).then(
      () => void (this.spare = { state: 'ready', size }),
      () => void (this.spare = { state: 'failed', size: 0, failedAt: Date.now() }),
    );
    this.spare = { state: 'preparing', size, done };
  }

  /** `size` bytes of zeros in the spare file, fdatasync'd (size and data) before it is ever used. */
  private async writeSpare(size: number): Promise<void> {
    const st = await fs.statfs(path.dirname(this.file));
    const free = st.bavail * st.bsize;
    if (free < size * this.freeFactor || free - size < this.keepFreeBytes) throw Object.assign(new Error('too little free space for a spare journal'), { code: 'ENOSPC' });
    const fh = await fs.open(this.spareFile, 'w', 0o600);
    let ok = false;
    try {
      for (let p = 0; p < size; p += READ_BYTES) await writeFully(fh, [ZEROS.subarray(0, Math.min(READ_BYTES, size - p))], p);
      await fh.datasync();
      ok = true;
    } finally {
      await fh.close();
      if (!ok) await fs.rm(this.spareFile, { force: true });
    }
  }

  /**
   * Appends a record. `durable`: resolve only after fsync. `dirs`: directories to fsync first (renames).
   * `attachment`: bytes that ride with the record (a small sealed document), handed back by load().
   */
  append(rec: object, opts: { durable?: boolean; dirs?: string[]; attachment?: Buffer } = {}): Promise<void> {
    const data = encodeRecord(rec, this.key, opts.attachment);
    return new Promise((resolve, reject) => {
      this.queue.push({ data, durable: opts.durable ?? true, dirs: opts.dirs ?? [], resolve, reject });
      if (!this.flushing) setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      // Compaction runs here, between batches, so no write ever lands in a file being replaced.
      while (this.queue.length || this.compactRequest) {
        if (this.compactRequest) {
          const req = this.compactRequest;
          this.compactRequest = null;
          await this.rewrite(req.records).then(req.resolve, req.reject);
          continue;
        }
        const batch = this.queue;
        this.queue = [];
        try {
          const dirs = new Set(batch.flatMap((p) => p.dirs));
          await Promise.all([...dirs].map(fsyncDir));
          const sync = this.synced + 1;
          let size = 0;
          for (const p of batch) {
            stamp(p.data, sync);
            size += p.data.length;
          }
          try {
            // A group commit's records (a few KB) are copied into the page cache here, on this thread: a trip
            // through the thread pool cost more than the copy and one more turn of a busy event loop before
            // the fdatasync could even start. A large batch (a burst of inline documents) still goes there.
            if (size <= SYNC_WRITE_MAX) writeFullySync(this.fh!.fd, batch.length === 1 ? batch[0].data : Buffer.concat(batch.map((p) => p.data), size), this.bytes);
            else await writeFully(this.fh!, batch.map((p) => p.data), this.bytes);
          } catch (err) {
            // A partly written batch (full disk) would leave a torn record that the next ones land after:
            // cut the file back to its last whole record, so the journal stays loadable (and appends from now on).
            await this.fh!.truncate(this.bytes).catch(() => {});
            this.allocated = this.bytes;
            throw err;
          }
          this.bytes += size;
          this.allocated = Math.max(this.allocated, this.bytes);
          this.linesWritten += batch.length;
          if (batch.some((p) => p.durable)) {
            await this.fh!.datasync();
            this.synced = sync;
          }
          for (const p of batch) p.resolve();
        } catch (err) {
          for (const p of batch) p.reject(err as Error);
        }
        this.spareDue();
      }
    } finally {
      this.flushing = false;
    }
  }

  /**
   * Replaces the journal with `records` (temp → fsync → rename → fsync dir); an Attached one keeps its attachment.
   * Records are whole-job upserts, so a record queued before the snapshot and appended after it is harmless.
   */
  compact(records: Iterable<object>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.compactRequest = { records, resolve, reject };
      if (!this.flushing) setImmediate(() => void this.flush());
    });
  }

  private async rewrite(records: Iterable<object>): Promise<void> {
    const key = this.key;
    const sync = this.synced + 1;
    function* frames(): Generator<Buffer> {
      for (const rec of records) {
        const f = rec instanceof Attached ? encodeRecord(rec.rec, key, rec.attachment) : encodeRecord(rec, key);
        stamp(f, sync);
        yield f;
      }
    }
    const { size, allocated } = await this.replaceWith('compact', frames());
    this.synced = sync;
    await this.fh?.close();
    this.fh = await fs.open(this.file, 'r+');
    this.bytes = this.rewritten = size;
    this.allocated = allocated;
    this.spareDue();
  }

  async close(): Promise<void> {
    while (this.flushing || this.queue.length) await new Promise((r) => setTimeout(r, 1));
    await this.spare.done;
    await this.fh?.close();
    this.fh = null;
  }
}
