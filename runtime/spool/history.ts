// Finished-job history on disk: sealed records in append-only segment files, found through a compact index kept in typed arrays (off the JS heap).
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { openRecord, sealRecord } from './seal.js';
import { JOB_STATES, type JobRecord, type JobState } from './jobs.js';
import type { JobQuery } from './contract.js';
import { fsyncDir } from '../system/fsutil.js';
import { releaseBuffers } from './gc.js';

/** A segment is closed (and gets its index file) once it holds this many bytes: ~25,000 finished jobs. */
const SEGMENT_BYTES = 16 * 1024 * 1024;
/** One index entry on disk: seq f64, offset u32, length u32, printer u32, owner u32, state u8, flags u8, pad u16, finished u32, id hash u32. */
const ENTRY_BYTES = 36;
const DEAD = 255;
const FLAG_CALLBACK_DUE = 1;
/** A full arena is rewritten without its dead slots when at least this share of it is dead, and grown otherwise. */
const REBUILD_SHARE = 1 / 8;

export interface HistoryOptions {
  dir: string;
  key: Uint8Array;
  /** Finished jobs kept (the newest by acceptance order). */
  limit: number;
  /** Finished jobs older than this (by finishedAt) are dropped; 0 keeps them until `limit` drops them. */
  maxAgeMs: number;
  /** Bytes after which a segment is closed (default 16 MiB; tests use small ones). */
  segmentBytes?: number;
}

/** Filters of a history listing: the spool's query without its page size. */
export type HistoryQuery = Omit<JobQuery, 'limit'>;

/** FNV-1a over the id's characters: the id's place in the hash table (verified against seq or the record itself). */
function idHash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A growable string ↔ small-number table: printer and token ids in the index. */
class Dictionary {
  readonly names: string[] = [];
  private byName = new Map<string, number>();
  code(name: string): number {
    let c = this.byName.get(name);
    if (c === undefined) {
      c = this.names.length;
      this.names.push(name);
      this.byName.set(name, c);
    }
    return c;
  }
  find(name: string): number | undefined {
    return this.byName.get(name);
  }
}

/** The hash table has a power of two of places, at least 1.25 per arena slot (at most 80% full; usually 40–60%). */
const tableSize = (cap: number) => 2 ** Math.ceil(Math.log2(cap * 1.25));

const segName = (n: number) => String(n).padStart(8, '0');

/**
 * Layout under <data>/spool/history: `NNNNNNNN.seg` (records: u32 length, then nonce ‖ secretbox(JSON), as journal
 * lines are sealed) and, for a closed segment, `NNNNNNNN.idx` (its index entries and the printer/token names they
 * use, sealed as one record). A record that changes later (a callback outcome) is appended again and the index
 * points at the newest copy. A segment is deleted once none of its records is the newest copy of a kept job.
 *
 * In memory, per job: ~38 bytes in typed arrays plus its share of an order array and a hash table, never a
 * JavaScript object; 1,000,000 jobs take ~50 MiB outside the V8 heap instead of ~700 MiB inside it.
 */
export class HistoryStore {
  // ---- the arena: one slot per kept job (and dead slots until a rebuild)
  private cap = 0;
  private n = 0; // slots used
  private dead = 0;
  private seq = new Float64Array(0);
  private seg = new Uint32Array(0);
  private off = new Uint32Array(0);
  private len = new Uint32Array(0);
  private printer = new Uint32Array(0);
  private owner = new Uint32Array(0);
  private state = new Uint8Array(0);
  private flags = new Uint8Array(0);
  private fin = new Uint32Array(0);
  private hash = new Uint32Array(0);
  // ---- slots in acceptance (seq) order, between head and tail
  private order = new Uint32Array(0);
  private head = 0;
  private tail = 0;
  // ---- open addressing by id hash: slot + 1, 0 = empty
  private table = new Uint32Array(0);
  private mask = 0;

  private printers = new Dictionary();
  private owners = new Dictionary();
  private byState = new Array<number>(JOB_STATES.length).fill(0);
  private segLive = new Map<number, number>();
  private readers = new Map<number, number>(); // segment → read fd
  private cur = 0; // segment being appended to
  private curFd = -1;
  private curBytes = 0;
  private curIndex: Buffer = Buffer.alloc(0); // index entries of the current segment, written when it closes
  private curEntries = 0;
  private sealing = new Set<Promise<void>>();
  private unsynced = false;
  /** The highest seq ever loaded or put: the spool never hands it out again. */
  maxSeq = 0;
  bytes = 0;

  constructor(private opts: HistoryOptions) {}

  get size(): number {
    return this.tail - this.head;
  }

  // ---------------------------------------------------------------- loading

  /** Reads the index files of closed segments and scans segments without one (cut at a torn or damaged record). */
  async load(): Promise<void> {
    await fsp.mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
    const files = await fsp.readdir(this.opts.dir);
    const segs = files.filter((f) => /^\d{8}\.seg$/.test(f)).map((f) => Number(f.slice(0, 8))).sort((a, b) => a - b);
    const indexed = new Set(files.filter((f) => /^\d{8}\.idx$/.test(f)).map((f) => Number(f.slice(0, 8))));
    for (const f of files) {
      if (f.endsWith('.tmp')) await fsp.rm(path.join(this.opts.dir, f), { force: true }); // an index file being written at a crash
      else if (f.endsWith('.idx') && !segs.includes(Number(f.slice(0, 8)))) await fsp.rm(path.join(this.opts.dir, f), { force: true });
    }
    // The arrays are sized once from the files (an index entry is 36 bytes, a record ~600): growing them by doubling
    // left the outgrown copies for the collector, ~25 MiB of dead arrays at 1,000,000 jobs.
    let estimate = 1024;
    for (const n of segs) {
      const st = await fsp.stat(path.join(this.opts.dir, `${segName(n)}.${indexed.has(n) ? 'idx' : 'seg'}`)).catch(() => null);
      estimate += st ? Math.ceil(st.size / (indexed.has(n) ? ENTRY_BYTES : 400)) : 0;
    }
    this.grow(Math.min(estimate, Math.ceil(this.opts.limit * 1.1) + 1024));
    let appending = false;
    for (const n of segs) {
      const file = path.join(this.opts.dir, `${segName(n)}.seg`);
      let done = false;
      if (indexed.has(n)) done = await this.loadIndex(n).then(() => true, () => false); // unreadable index: scan instead
      if (!done) appending = await this.scan(n, file, n === segs[segs.length - 1] && !indexed.has(n)) || appending;
      releaseBuffers(); // the file just read and its plaintext (1–16 MiB) are garbage now: freed at once, not at some later GC
    }
    this.maxSeq = this.tail > this.head ? Math.max(this.maxSeq, this.seq[this.order[this.tail - 1]]) : this.maxSeq;
    // The last segment goes on taking records if it had no index file (it was not closed: scan() opened it), else a new one starts.
    if (!appending) this.startSegment((segs[segs.length - 1] ?? 0) + 1);
    this.retain(Date.now());
    this.bytes = 0;
    for (const n of this.segLive.keys()) this.bytes += await fsp.stat(path.join(this.opts.dir, `${segName(n)}.seg`)).then((st) => st.size, () => 0);
  }

  private async loadIndex(n: number): Promise<void> {
    const sealed = await fsp.readFile(path.join(this.opts.dir, `${segName(n)}.idx`));
    const plain = openRecord(sealed, this.opts.key);
    const jsonLen = plain.readUInt32LE(0);
    const names = JSON.parse(plain.subarray(4, 4 + jsonLen).toString('utf8')) as { printers: string[]; owners: string[] };
    const pc = names.printers.map((p) => this.printers.code(p));
    const oc = names.owners.map((o) => this.owners.code(o));
    const v = new DataView(plain.buffer, plain.byteOffset, plain.length); // ~3× faster here than Buffer's readUInt32LE
    for (let at = 4 + jsonLen; at + ENTRY_BYTES <= plain.length; at += ENTRY_BYTES) {
      this.apply(
        v.getFloat64(at, true), n, v.getUint32(at + 8, true), v.getUint32(at + 12, true),
        pc[v.getUint32(at + 16, true)], oc[v.getUint32(at + 20, true)], v.getUint8(at + 24), v.getUint8(at + 25), v.getUint32(at + 28, true), v.getUint32(at + 32, true),
      );
    }
  }

  /**
   * Reads a segment record by record. A record that is torn or fails authentication ends the segment: it is cut
   * there. That is safe: records not yet fsync'd here are still in the journal (the spool fsyncs history before a
   * journal compaction drops anything), and the journal puts them back at the next start.
   */
  private async scan(n: number, file: string, appendable: boolean): Promise<boolean> {
    const data = await fsp.readFile(file);
    let at = 0;
    const entries: Buffer[] = [];
    while (at + 4 <= data.length) {
      const l = data.readUInt32LE(at);
      if (l === 0 || at + 4 + l > data.length) break;
      let rec: JobRecord;
      try {
        rec = JSON.parse(openRecord(data.subarray(at + 4, at + 4 + l), this.opts.key).toString('utf8'));
      } catch {
        break;
      }
      const e = this.entryOf(rec, at + 4, l);
      this.apply(rec.seq, n, at + 4, l, e.p, e.o, e.s, e.f, e.fin, e.h);
      if (appendable) entries.push(this.encodeEntry(rec.seq, at + 4, l, e.p, e.o, e.s, e.f, e.fin, e.h));
      at += 4 + l;
    }
    if (at < data.length) await fsp.truncate(file, at);
    if (appendable) {
      this.curFd = fs.openSync(file, 'a', 0o600);
      this.cur = n;
      this.curBytes = at;
      this.curIndex = Buffer.concat(entries);
      this.curEntries = entries.length;
      this.segLive.set(n, this.segLive.get(n) ?? 0);
    }
    return appendable;
  }

  private entryOf(rec: JobRecord, _off: number, _len: number) {
    return {
      p: this.printers.code(rec.printerId),
      o: this.owners.code(rec.owner),
      s: Math.max(0, JOB_STATES.indexOf(rec.state)),
      f: rec.statusURL && !rec.callback ? FLAG_CALLBACK_DUE : 0,
      fin: Math.floor(Date.parse(rec.finishedAt ?? rec.updatedAt) / 1000) || 0,
      h: idHash(rec.id),
    };
  }

  private encodeEntry(seq: number, off: number, len: number, p: number, o: number, s: number, f: number, fin: number, h: number): Buffer {
    const b = Buffer.alloc(ENTRY_BYTES);
    b.writeDoubleLE(seq, 0);
    b.writeUInt32LE(off, 8);
    b.writeUInt32LE(len, 12);
    b.writeUInt32LE(p, 16);
    b.writeUInt32LE(o, 20);
    b[24] = s;
    b[25] = f;
    b.writeUInt32LE(fin, 28);
    b.writeUInt32LE(h, 32);
    return b;
  }

  /** Puts an index entry in place: a newer copy of a kept job (same id hash and seq) replaces the older one. */
  private apply(seq: number, n: number, off: number, len: number, p: number, o: number, s: number, f: number, fin: number, h: number): void {
    this.maxSeq = Math.max(this.maxSeq, seq);
    // Counted before the older copy is let go: when both are in the same segment, it must not look empty.
    this.segLive.set(n, (this.segLive.get(n) ?? 0) + 1);
    if (this.n === this.cap) this.makeRoom();
    // One probe finds the older copy or the free place for a new one (each probe is a cache miss at 1,000,000 jobs).
    let i = h & this.mask;
    let slot = -1;
    for (; this.table[i] !== 0; i = (i + 1) & this.mask) {
      const s = this.table[i] - 1;
      if (this.hash[s] === h && this.seq[s] === seq && this.state[s] !== DEAD) {
        slot = s;
        break;
      }
    }
    if (slot >= 0) {
      this.release(slot);
    } else {
      slot = this.n++;
      this.hash[slot] = h;
      this.seq[slot] = seq;
      this.insertOrder(slot);
      this.table[i] = slot + 1;
    }
    this.seg[slot] = n;
    this.off[slot] = off;
    this.len[slot] = len;
    this.printer[slot] = p;
    this.owner[slot] = o;
    this.state[slot] = s;
    this.flags[slot] = f;
    this.fin[slot] = fin;
    this.byState[s]++;
  }

  /** Takes a slot's current copy out of the counts (it is replaced or dropped). */
  private release(slot: number): void {
    this.byState[this.state[slot]]--;
    const n = this.seg[slot];
    const left = (this.segLive.get(n) ?? 1) - 1;
    this.segLive.set(n, left);
    if (left <= 0 && n !== this.cur) this.removeSegment(n);
  }

  // ---------------------------------------------------------------- arrays

  /** New per-slot columns of `cap` slots, each filled from its old one by `fill` (growth copies, compaction gathers). */
  private remake(cap: number, fill: (from: Float64Array | Uint32Array | Uint8Array, to: Float64Array | Uint32Array | Uint8Array) => void): void {
    const make = <T extends Float64Array | Uint32Array | Uint8Array>(a: T, ctor: new (n: number) => T): T => {
      const b = new ctor(cap);
      fill(a, b);
      return b;
    };
    this.seq = make(this.seq, Float64Array);
    this.seg = make(this.seg, Uint32Array);
    this.off = make(this.off, Uint32Array);
    this.len = make(this.len, Uint32Array);
    this.printer = make(this.printer, Uint32Array);
    this.owner = make(this.owner, Uint32Array);
    this.state = make(this.state, Uint8Array);
    this.flags = make(this.flags, Uint8Array);
    this.fin = make(this.fin, Uint32Array);
    this.hash = make(this.hash, Uint32Array);
  }

  private grow(cap: number): void {
    this.remake(cap, (a, b) => b.set(a.subarray(0, Math.min(a.length, cap)) as never));
    const order = new Uint32Array(cap);
    order.set(this.order.subarray(this.head, this.tail));
    this.order = order;
    this.tail -= this.head;
    this.head = 0;
    this.cap = cap;
    this.rehash(tableSize(cap));
  }

  private rehash(size: number): void {
    this.table = new Uint32Array(size);
    this.mask = size - 1;
    for (let k = this.head; k < this.tail; k++) this.insertTable(this.order[k]);
  }

  private insertTable(slot: number): void {
    let i = this.hash[slot] & this.mask;
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = slot + 1;
  }

  /** Linear probing's deletion: later entries of the same run move back, so no lookup stops early. */
  private deleteTable(slot: number): void {
    let i = this.hash[slot] & this.mask;
    while (this.table[i] !== slot + 1) i = (i + 1) & this.mask;
    this.table[i] = 0;
    for (let j = (i + 1) & this.mask; this.table[j] !== 0; j = (j + 1) & this.mask) {
      const k = this.hash[this.table[j] - 1] & this.mask;
      const between = i <= j ? i < k && k <= j : i < k || k <= j;
      if (!between) {
        this.table[i] = this.table[j];
        this.table[j] = 0;
        i = j;
      }
    }
  }

  /** Slots go in seq order; jobs mostly finish in that order, so this is nearly always an append. */
  private insertOrder(slot: number): void {
    if (this.tail === this.order.length) {
      this.order.copyWithin(0, this.head, this.tail);
      this.tail -= this.head;
      this.head = 0;
    }
    const s = this.seq[slot];
    let lo = this.head;
    let hi = this.tail;
    if (hi > lo && this.seq[this.order[hi - 1]] < s) lo = hi;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seq[this.order[mid]] < s) lo = mid + 1;
      else hi = mid;
    }
    if (lo < this.tail) this.order.copyWithin(lo + 1, lo, this.tail);
    this.order[lo] = slot;
    this.tail++;
  }

  /** First position in order whose seq is > `seq`. */
  private positionAfter(seq: number): number {
    let lo = this.head;
    let hi = this.tail;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seq[this.order[mid]] <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // ---------------------------------------------------------------- segments

  /** The next segment; its file is created by the first record put into it (a spool with no history has no file). */
  private startSegment(n: number): void {
    this.cur = n;
    this.curFd = -1;
    this.curBytes = 0;
    this.curIndex = Buffer.alloc(64 * 1024);
    this.curEntries = 0;
    this.segLive.set(n, this.segLive.get(n) ?? 0);
  }

  private reader(n: number): number {
    let fd = this.readers.get(n);
    if (fd === undefined) {
      fd = fs.openSync(path.join(this.opts.dir, `${segName(n)}.seg`), 'r');
      this.readers.set(n, fd);
    }
    return fd;
  }

  private removeSegment(n: number): void {
    const fd = this.readers.get(n);
    if (fd !== undefined) fs.closeSync(fd);
    this.readers.delete(n);
    this.segLive.delete(n);
    for (const ext of ['seg', 'idx']) {
      const f = path.join(this.opts.dir, `${segName(n)}.${ext}`);
      try {
        if (ext === 'seg') this.bytes -= fs.statSync(f).size;
        fs.rmSync(f, { force: true });
      } catch {
        // already gone
      }
    }
  }

  /** Closes the current segment: fsync, then its index file (temp → fsync → rename), in the background. */
  private roll(): void {
    const n = this.cur;
    const fd = this.curFd;
    const index = this.curIndex.subarray(0, this.curEntries * ENTRY_BYTES);
    this.curFd = -1;
    this.startSegment(n + 1);
    const names = Buffer.from(JSON.stringify({ printers: this.printers.names, owners: this.owners.names }));
    const job = this.writeIndex(n, fd, names, index).finally(() => this.sealing.delete(job));
    this.sealing.add(job);
    job.catch(() => {}); // a segment without an index file is scanned at the next start
  }

  private async writeIndex(n: number, fd: number, names: Buffer, index: Buffer): Promise<void> {
    try {
      await new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())));
    } finally {
      fs.close(fd, () => {});
    }
    const head = Buffer.alloc(4);
    head.writeUInt32LE(names.length);
    const sealed = sealRecord(Buffer.concat([head, names, index]), this.opts.key);
    const file = path.join(this.opts.dir, `${segName(n)}.idx`);
    const tmp = `${file}.tmp`;
    const fh = await fsp.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(sealed);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (!this.segLive.has(n)) return void (await fsp.rm(tmp, { force: true })); // the segment was dropped meanwhile
    await fsp.rename(tmp, file);
    await fsyncDir(this.opts.dir);
  }

  // ---------------------------------------------------------------- writing

  /**
   * Writes a finished job's record (a newer copy replaces the older one). Not fsync'd here: the journal still holds
   * the record until sync() has made history durable. Throws on a full disk, leaving the segment as it was.
   */
  put(rec: JobRecord): void {
    const body = sealRecord(Buffer.from(JSON.stringify(rec)), this.opts.key);
    const frame = Buffer.allocUnsafe(4 + body.length);
    frame.writeUInt32LE(body.length, 0);
    body.copy(frame, 4);
    let done = 0;
    if (this.curFd === -1) this.curFd = fs.openSync(path.join(this.opts.dir, `${segName(this.cur)}.seg`), 'a', 0o600);
    try {
      while (done < frame.length) {
        const w = fs.writeSync(this.curFd, frame, done, frame.length - done);
        if (w <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
        done += w;
      }
    } catch (err) {
      if (done) fs.ftruncateSync(this.curFd, this.curBytes);
      throw err;
    }
    const at = this.curBytes + 4;
    this.curBytes += frame.length;
    this.bytes += frame.length;
    this.unsynced = true;
    const e = this.entryOf(rec, at, body.length);
    this.apply(rec.seq, this.cur, at, body.length, e.p, e.o, e.s, e.f, e.fin, e.h);
    if ((this.curEntries + 1) * ENTRY_BYTES > this.curIndex.length) {
      const bigger = Buffer.alloc(this.curIndex.length * 2 || 64 * 1024);
      this.curIndex.copy(bigger);
      this.curIndex = bigger;
    }
    this.encodeEntry(rec.seq, at, body.length, e.p, e.o, e.s, e.f, e.fin, e.h).copy(this.curIndex, this.curEntries++ * ENTRY_BYTES);
    if (this.curBytes >= (this.opts.segmentBytes ?? SEGMENT_BYTES)) this.roll();
    this.retain(Date.now());
  }

  /** Makes every record put so far durable (before the journal lets go of them). */
  async sync(): Promise<void> {
    await Promise.all([...this.sealing]);
    if (!this.unsynced || this.curFd === -1) return;
    this.unsynced = false;
    const fd = this.curFd;
    await new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res()))).catch((e) => {
      this.unsynced = true;
      throw e;
    });
  }

  /** Drops the oldest jobs past the count limit and those finished before the age limit. */
  retain(now: number): void {
    const cutoff = this.opts.maxAgeMs > 0 ? Math.floor((now - this.opts.maxAgeMs) / 1000) : 0;
    while (this.tail > this.head && (this.tail - this.head > this.opts.limit || this.fin[this.order[this.head]] < cutoff)) {
      const slot = this.order[this.head++];
      this.deleteTable(slot);
      this.release(slot);
      this.state[slot] = DEAD;
      this.dead++;
    }
  }

  /**
   * A full arena: with retention dropping as many jobs as arrive, most of it is dead slots and it is rewritten at the
   * same size; otherwise it grows by half. Either way a kept history costs ~1.25× its live slots, not 2× or more.
   */
  private makeRoom(): void {
    if (this.dead >= this.cap * REBUILD_SHARE) this.rebuild();
    else this.grow(Math.ceil(this.cap * 1.5));
  }

  /** Slots in the arena (live and dead): what the index's memory is proportional to. */
  get slots(): number {
    return this.cap;
  }

  /** Rewrites the arena in seq order without dead slots (amortised: only after many drops). */
  private rebuild(): void {
    const live = this.tail - this.head;
    const cap = Math.ceil(live * 1.25) + 1024;
    this.remake(cap, (a, b) => {
      for (let k = 0; k < live; k++) b[k] = a[this.order[this.head + k]];
    });
    this.order = new Uint32Array(cap);
    for (let k = 0; k < live; k++) this.order[k] = k;
    this.head = 0;
    this.tail = live;
    this.n = live;
    this.cap = cap;
    this.dead = 0;
    this.rehash(tableSize(cap));
  }

  // ---------------------------------------------------------------- reading

  private read(slot: number): JobRecord {
    const buf = Buffer.allocUnsafe(this.len[slot]);
    const got = fs.readSync(this.reader(this.seg[slot]), buf, 0, buf.length, this.off[slot]);
    if (got !== buf.length) throw new Error(`history segment ${this.seg[slot]} is shorter than its index says`);
    return JSON.parse(openRecord(buf, this.opts.key).toString('utf8'));
  }

  /** A kept job by id: one read of its record (a few hundred bytes, usually from the page cache). */
  get(id: string): JobRecord | undefined {
    const h = idHash(id);
    for (let i = h & this.mask; this.table[i] !== 0; i = (i + 1) & this.mask) {
      const s = this.table[i] - 1;
      if (this.hash[s] !== h || this.state[s] === DEAD) continue;
      const rec = this.read(s);
      if (rec.id === id) return rec;
    }
    return undefined;
  }

  /**
   * Up to `limit` kept jobs matching `q`, in seq order (or newest first), reading only the records returned; the
   * filters run over the index. The seq of each is in the record.
   */
  list(q: HistoryQuery, limit: number): JobRecord[] {
    const p = q.printerId === undefined ? -1 : this.printers.find(q.printerId);
    const o = q.owner === undefined ? -1 : this.owners.find(q.owner);
    if (p === undefined || o === undefined) return [];
    const s = q.state === undefined ? -1 : JOB_STATES.indexOf(q.state);
    const out: JobRecord[] = [];
    const lo = q.after === undefined ? this.head : this.positionAfter(q.after);
    const hi = q.before === undefined ? this.tail : this.positionAfter(q.before - 1);
    const match = (slot: number) => (p < 0 || this.printer[slot] === p) && (o < 0 || this.owner[slot] === o) && (s < 0 || this.state[slot] === s);
    if (q.newestFirst) {
      for (let k = hi - 1; k >= lo && out.length < limit; k--) if (match(this.order[k])) out.push(this.read(this.order[k]));
    } else {
      for (let k = lo; k < hi && out.length < limit; k++) if (match(this.order[k])) out.push(this.read(this.order[k]));
    }
    return out;
  }

  /** Kept jobs finished at or after `sinceMs` whose statusURL callback never ended (sent again after a restart). */
  callbacksDue(sinceMs: number): JobRecord[] {
    const since = Math.floor(sinceMs / 1000);
    const out: JobRecord[] = [];
    for (let k = this.head; k < this.tail; k++) {
      const slot = this.order[k];
      if (this.flags[slot] & FLAG_CALLBACK_DUE && this.fin[slot] >= since) out.push(this.read(slot));
    }
    return out;
  }

  /** Kept jobs by state. */
  counts(): Partial<Record<JobState, number>> {
    const out: Partial<Record<JobState, number>> = {};
    JOB_STATES.forEach((st, i) => {
      if (this.byState[i]) out[st] = this.byState[i];
    });
    return out;
  }

  /** Writes the current segment's index file, so the next start reads no record; the next start opens a new segment. */
  async close(): Promise<void> {
    await Promise.all([...this.sealing]);
    if (this.curFd !== -1) {
      const fd = this.curFd;
      this.curFd = -1;
      if (this.curEntries) {
        const names = Buffer.from(JSON.stringify({ printers: this.printers.names, owners: this.owners.names }));
        await this.writeIndex(this.cur, fd, names, this.curIndex.subarray(0, this.curEntries * ENTRY_BYTES)).catch(() => {});
      } else {
        fs.closeSync(fd);
      }
    }
    for (const fd of this.readers.values()) fs.closeSync(fd);
    this.readers.clear();
  }
}
