// Append-only, encrypted, group-committed journal of job records: the spool's memory across restarts.
import fs from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fsyncDir, writeFully, writeFullySync } from '../system/fsutil.js';
import { openRecord, sealRecord, SealError } from './seal.js';

/** Batches up to this size are written with write(2) on the event loop's thread (see flush). */
const SYNC_WRITE_MAX = 256 * 1024;

interface Pending {
  line: string;
  durable: boolean;
  dirs: string[];
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Each line is base64(nonce ‖ secretbox(JSON)). Appends that arrive while a write is in flight are
 * written and fsync'd together (group commit); `append` resolves only after its line is durable.
 */
export class Journal {
  private fh: fs.FileHandle | null = null;
  private queue: Pending[] = [];
  private flushing = false;
  private compactRequest: { records: Iterable<object>; resolve: () => void; reject: (e: Error) => void } | null = null;
  bytes = 0;
  linesWritten = 0;

  constructor(readonly file: string, private key: Uint8Array) {}

  /** Reads every record; a torn last line (crash mid-write) is ignored, damage elsewhere is an error. */
  async load(onRecord: (rec: any) => void): Promise<number> {
    let count = 0;
    try {
      await fs.access(this.file);
    } catch {
      return 0;
    }
    const rl = readline.createInterface({ input: createReadStream(this.file), crlfDelay: Infinity });
    let bad: { line: number; err: Error } | null = null;
    let n = 0;
    let good = 0; // bytes up to the end of the last whole, readable line
    for await (const line of rl) {
      n++;
      if (bad) throw new SealError(`journal ${this.file} is damaged at line ${bad.line}: ${bad.err.message}`);
      if (!line) {
        good += 1;
        continue;
      }
      try {
        onRecord(JSON.parse(openRecord(Buffer.from(line, 'base64'), this.key).toString('utf8')));
        count++;
        good += line.length + 1; // base64 is ASCII: one byte per character, plus the newline
      } catch (err) {
        bad = { line: n, err: err as Error }; // tolerated only if it turns out to be the last line
      }
    }
    // A torn last line (or a last line without its newline) is cut off now, before anything is appended
    // after it: otherwise it would become a damaged line in the middle at the next start.
    // A readable last line that lost only its newline is whole: the newline is put back, so the next line
    // does not run into it.
    const size = (await fs.stat(this.file)).size;
    if (size > good) await fs.truncate(this.file, good);
    else if (size < good) await fs.appendFile(this.file, '\n');
    return count;
  }

  async open(): Promise<void> {
    this.fh = await fs.open(this.file, 'a', 0o600);
    this.bytes = (await this.fh.stat()).size;
    await fsyncDir(path.dirname(this.file));
  }

  /** Appends a record. `durable`: resolve only after fsync. `dirs`: directories to fsync first (renames). */
  append(rec: object, opts: { durable?: boolean; dirs?: string[] } = {}): Promise<void> {
    const line = sealRecord(Buffer.from(JSON.stringify(rec)), this.key).toString('base64') + '\n';
    return new Promise((resolve, reject) => {
      this.queue.push({ line, durable: opts.durable ?? true, dirs: opts.dirs ?? [], resolve, reject });
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
          const data = Buffer.from(batch.map((p) => p.line).join(''));
          try {
            // A group commit's lines (a few KB) are copied into the page cache here, on this thread: a trip
            // through the thread pool cost more than the copy and one more turn of a busy event loop before
            // the fdatasync could even start. A large batch (a burst of inline documents) still goes there.
            if (data.length <= SYNC_WRITE_MAX) writeFullySync(this.fh!.fd, data);
            else await writeFully(this.fh!, [data]);
          } catch (err) {
            // A partly written batch (full disk) would leave a torn line that the next lines land after:
            // cut the file back to its last whole line, so the journal stays loadable.
            await this.fh!.truncate(this.bytes).catch(() => {});
            throw err;
          }
          this.bytes += data.length;
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
   * Replaces the journal with `records` (temp → fsync → rename → fsync dir). Records are whole-job
   * upserts, so a line queued before the snapshot and appended after it is harmless.
   */
  compact(records: Iterable<object>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.compactRequest = { records, resolve, reject };
      if (!this.flushing) setImmediate(() => void this.flush());
    });
  }

  private async rewrite(records: Iterable<object>): Promise<void> {
    const tmp = `${this.file}.compact`;
    const out = await fs.open(tmp, 'w', 0o600);
    let size = 0;
    let written = false;
    try {
      let buf: string[] = [];
      const write = async () => {
        const s = buf.join('');
        buf = [];
        await out.write(s);
        size += Buffer.byteLength(s);
      };
      for (const rec of records) {
        buf.push(sealRecord(Buffer.from(JSON.stringify(rec)), this.key).toString('base64') + '\n');
        if (buf.length >= 512) await write();
      }
      await write();
      await out.sync();
      written = true;
    } finally {
      await out.close();
      // A copy cut short (full disk) must not keep the space it took: the old journal stays in use.
      if (!written) await fs.rm(tmp, { force: true });
    }
    await fs.rename(tmp, this.file);
    await fsyncDir(path.dirname(this.file));
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
