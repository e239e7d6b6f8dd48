// Append-only, encrypted, group-committed journal of job records: the spool's memory across restarts.
import fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fsyncDir, writeFully, writeFullySync } from '../system/fsutil.js';
import { openRecord, RECORD_OVERHEAD, sealRecordInto, SealError } from './seal.js';

/**
 * The first bytes of a journal file. After them, records: `u32 length ‖ u32 ~length ‖ nonce ‖ secretbox(plain)`
 * (little-endian), where plain is `u32 jsonLength ‖ JSON ‖ attachment` (an attachment: the sealed bytes of a small
 * document riding with its job's record). The length's complement tells a torn tail from damage.
 * A file without the magic is the first format (one base64 line per record): loaded, then rewritten in this one.
 */
export const JOURNAL_MAGIC = Buffer.from('PBXJRNL2');
const HEAD = 8;
/** Bytes of a journal read per step at load. */
const READ_BYTES = 1024 * 1024;

export type OnRecord = (rec: any, attachment?: Buffer) => void;

/** A record and the bytes that ride with it, as compact() takes them. */
export class Attached {
  constructor(readonly rec: object, readonly attachment: Buffer) {}
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
 * the document, the sealed frame; measured in-process with the JSON of a real job record).
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
  sealRecordInto(out.subarray(HEAD), plain, key);
  return out;
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
    for (let p = at; p < this.size; p += READ_BYTES) {
      const b = await this.get(p, Math.min(READ_BYTES, this.size - p));
      if (!b || b.some((x) => x !== 0)) return false;
    }
    return true;
  }
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
  bytes = 0;
  linesWritten = 0;

  constructor(readonly file: string, private key: Uint8Array) {}

  /**
   * Reads every record (with its attachment, if any); a torn last record (crash mid-write) is cut off, damage
   * elsewhere is an error. A journal in the first format (base64 lines) is rewritten in this one as it is read.
   */
  async load(onRecord: OnRecord): Promise<number> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(this.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let reader: StepReader;
    try {
      reader = new StepReader(fh, (await fh.stat()).size);
      const head = await reader.get(0, Math.min(reader.size, JOURNAL_MAGIC.length));
      if (head && head.length === JOURNAL_MAGIC.length && head.equals(JOURNAL_MAGIC)) return await this.loadRecords(reader, onRecord);
      if (head && JOURNAL_MAGIC.subarray(0, head.length).equals(head)) {
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
    const damaged = (why: string) => new SealError(`journal ${this.file} is damaged at record ${n} (byte ${at}): ${why}`);
    while (at < r.size) {
      n++;
      const head = await r.get(at, HEAD);
      if (!head) break; // torn inside the length
      const len = head.readUInt32LE(0);
      if (((head.readUInt32LE(4) ^ len) >>> 0) !== 0xffffffff) {
        if (await r.zeroFrom(at)) break;
        throw damaged('bad record length');
      }
      if (at + HEAD + len > r.size) break; // torn: the crash came before the record's end
      const body = (await r.get(at + HEAD, len))!;
      let dec: { rec: any; attachment?: Buffer };
      try {
        dec = decodeRecord(body, this.key);
      } catch (err) {
        if (at + HEAD + len === r.size) break; // the last record, unreadable: torn (or garbled) by a crash
        throw damaged((err as Error).message);
      }
      onRecord(dec.rec, dec.attachment);
      at += HEAD + len;
    }
    // Cut before anything is appended after it: otherwise a torn record would become damage in the middle.
    if (at < r.size) await fs.truncate(this.file, at);
    return n - (at < r.size ? 1 : 0);
  }

  /**
   * The first format: base64(nonce ‖ secretbox(JSON)) per line. Each readable line is handed on and copied into a
   * new journal in this format, which then replaces the file (temp → fsync → rename → fsync dir). A torn last line
   * is left out; damage elsewhere is an error and leaves the old file as it was.
   */
  private async migrateLines(onRecord: OnRecord): Promise<number> {
    let count = 0;
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
        count++;
      }
    }
    await this.replaceWith('migrate', frames());
    return count;
  }

  /**
   * A new copy of the journal made of `frames` (temp → fsync → rename → fsync dir); returns its size. A copy cut
   * short (an error, a full disk) is removed and must not keep the space it took: the old journal stays in use.
   */
  private async replaceWith(suffix: string, frames: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<number> {
    const tmp = `${this.file}.${suffix}`;
    const out = await fs.open(tmp, 'w', 0o600);
    let size = 0;
    let written = false;
    try {
      let bufs: Buffer[] = [JOURNAL_MAGIC];
      let bytes = JOURNAL_MAGIC.length;
      const write = async () => {
        await writeFully(out, bufs);
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
      if (!written) await fs.rm(tmp, { force: true });
    }
    await fs.rename(tmp, this.file);
    await fsyncDir(path.dirname(this.file));
    return size;
  }

  async open(): Promise<void> {
    this.fh = await fs.open(this.file, 'a', 0o600);
    this.bytes = (await this.fh.stat()).size;
    if (this.bytes === 0) {
      // A new journal: its magic goes first (made durable with the first record's sync).
      await writeFully(this.fh, [JOURNAL_MAGIC]);
      this.bytes = JOURNAL_MAGIC.length;
    }
    await fsyncDir(path.dirname(this.file));
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
          let size = 0;
          for (const p of batch) size += p.data.length;
          try {
            // A group commit's records (a few KB) are copied into the page cache here, on this thread: a trip
            // through the thread pool cost more than the copy and one more turn of a busy event loop before
            // the fdatasync could even start. A large batch (a burst of inline documents) still goes there.
            if (size <= SYNC_WRITE_MAX) writeFullySync(this.fh!.fd, batch.length === 1 ? batch[0].data : Buffer.concat(batch.map((p) => p.data), size));
            else await writeFully(this.fh!, batch.map((p) => p.data));
          } catch (err) {
            // A partly written batch (full disk) would leave a torn record that the next ones land after:
            // cut the file back to its last whole record, so the journal stays loadable.
            await this.fh!.truncate(this.bytes).catch(() => {});
            throw err;
          }
          this.bytes += size;
          this.linesWritten += batch.length;
          if (batch.some((p) => p.durable)) await this.fh!.datasync();
          for (const p of batch) p.resolve();
        } catch (err) {
          for (const p of batch) p.reject(err as Error);
        }
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
    function* frames(): Generator<Buffer> {
      for (const rec of records) yield rec instanceof Attached ? encodeRecord(rec.rec, key, rec.attachment) : encodeRecord(rec, key);
    }
    const size = await this.replaceWith('compact', frames());
    await this.fh?.close();
    this.fh = await fs.open(this.file, 'a', 0o600);
    this.bytes = size;
  }

  async close(): Promise<void> {
    while (this.flushing || this.queue.length) await new Promise((r) => setTimeout(r, 1));
    await this.fh?.close();
    this.fh = null;
  }
}
