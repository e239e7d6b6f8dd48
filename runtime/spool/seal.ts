// Sealed stream format: NaCl secretbox chunks with counter nonces and a final-chunk flag (see README "Spool").
import { Transform, type TransformCallback } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import nacl from 'tweetnacl';

export const MAGIC = Buffer.from('PBXSEAL1'); // 8 bytes
export const HEADER_BYTES = MAGIC.length + 16; // magic + 16-byte nonce prefix
export const CHUNK_BYTES = 64 * 1024;
const MAC_BYTES = 16;
const LEN_BYTES = 4;
const FINAL = 0x80; // top bit of the counter's first byte marks the last chunk; it is inside the nonce, so authenticated

export class SealError extends Error {
  code = 'seal_broken';
}

/** One secretbox implementation; every one gives the same bytes. */
export interface SecretBox {
  name: string;
  /** Writes the sealed box (plain.length + 16 bytes) into `out`. */
  sealInto(out: Uint8Array, plain: Uint8Array, nonce: Uint8Array, key: Uint8Array): void;
  open(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Buffer | null;
  /** Opens into `out` (box.length - 16 bytes); false, and `out` not to be used, when the MAC does not check. */
  openInto(out: Uint8Array, box: Uint8Array, nonce: Uint8Array, key: Uint8Array): boolean;
}

export const tweetnaclBox: SecretBox = {
  name: 'tweetnacl',
  sealInto: (out, plain, nonce, key) => out.set(nacl.secretbox(plain, nonce, key)),
  open(box, nonce, key) {
    const out = nacl.secretbox.open(box, nonce, key);
    return out ? Buffer.from(out.buffer, out.byteOffset, out.byteLength) : null;
  },
  openInto(out, box, nonce, key) {
    const plain = nacl.secretbox.open(box, nonce, key);
    if (!plain) return false;
    out.set(plain);
    return true;
  },
};

function loadSodium(): SecretBox | null {
  try {
    const sodium = createRequire(import.meta.url)('sodium-native');
    return {
      name: 'sodium-native',
      sealInto(out, plain, nonce, key) {
        sodium.crypto_secretbox_easy(out, plain, nonce, key);
      },
      open(box, nonce, key) {
        if (box.length < MAC_BYTES) return null;
        const out = Buffer.allocUnsafe(box.length - MAC_BYTES);
        return sodium.crypto_secretbox_open_easy(out, box, nonce, key) ? out : null;
      },
      openInto(out, box, nonce, key) {
        return box.length >= MAC_BYTES && out.length === box.length - MAC_BYTES && sodium.crypto_secretbox_open_easy(out, box, nonce, key);
      },
    };
  } catch {
    return null; // not installed or no prebuilt binary for this machine: tweetnacl is always there
  }
}

export const sodiumBox = loadSodium();
export const defaultBox: SecretBox = process.env.PRINTBOX_CRYPTO === 'tweetnacl' ? tweetnaclBox : (sodiumBox ?? tweetnaclBox);

function chunkNonce(prefix: Buffer, counter: number, final: boolean): Buffer {
  const nonce = Buffer.alloc(24);
  prefix.copy(nonce, 0);
  nonce.writeBigUInt64BE(BigInt(counter), 16);
  if (final) nonce[16] |= FINAL;
  return nonce;
}

/** Plaintext in, sealed bytes out, without a stream around it (intake writes the output itself). Holds at most one chunk. */
export class Sealer {
  private prefix = randomBytes(16);
  /** The chunk being filled: a view of the caller's buffer while it comes from one piece, else `stage`. */
  private pending: Buffer | null = null;
  private pendingBytes = 0;
  /** Reused for chunks that arrive in pieces (sealing copies its input, so the stage is free again at once). */
  private stage: Buffer | null = null;
  private counter = 0;
  private headerSent = false;

  /**
   * `alloc` gives the memory each sealed chunk (length prefix + box) is written into; a caller that writes the
   * output away in batches can hand out slices of a reused buffer instead of one new allocation per chunk.
   */
  constructor(
    private key: Uint8Array,
    private box: SecretBox = defaultBox,
    private alloc: (bytes: number) => Buffer = Buffer.allocUnsafe,
  ) {}

  /** Sealed bytes that this plaintext completes (a full chunk is only sealed once more data proves it is not the last). */
  push(data: Buffer, out: Buffer[] = []): Buffer[] {
    this.header(out);
    let offset = 0;
    while (offset < data.length) {
      if (this.pendingBytes === CHUNK_BYTES) this.emitChunk(false, out);
      const take = Math.min(CHUNK_BYTES - this.pendingBytes, data.length - offset);
      if (this.pendingBytes === 0) {
        this.pending = take === data.length ? data : data.subarray(offset, offset + take);
      } else {
        const stage = (this.stage ??= Buffer.allocUnsafe(CHUNK_BYTES));
        if (this.pending !== stage) this.pending!.copy(stage, 0, 0, this.pendingBytes);
        data.copy(stage, this.pendingBytes, offset, offset + take);
        this.pending = stage;
      }
      this.pendingBytes += take;
      offset += take;
    }
    return out;
  }

  /** The last chunk, flagged final (an empty document is one empty final chunk). */
  finish(out: Buffer[] = []): Buffer[] {
    this.header(out);
    this.emitChunk(true, out);
    return out;
  }

  private header(out: Buffer[]): void {
    if (this.headerSent) return;
    out.push(Buffer.concat([MAGIC, this.prefix]));
    this.headerSent = true;
  }

  private emitChunk(final: boolean, out: Buffer[]): void {
    const plain = this.pending ? this.pending.subarray(0, this.pendingBytes) : Buffer.alloc(0);
    const chunk = this.alloc(LEN_BYTES + plain.length + MAC_BYTES);
    chunk.writeUInt32BE(plain.length + MAC_BYTES, 0);
    this.box.sealInto(chunk.subarray(LEN_BYTES), plain, chunkNonce(this.prefix, this.counter++, final), this.key);
    out.push(chunk);
    this.pending = null;
    this.pendingBytes = 0;
  }
}

/** Plaintext in, sealed stream out. Holds at most one chunk in memory. */
export class SealStream extends Transform {
  private sealer: Sealer;

  constructor(key: Uint8Array, box: SecretBox = defaultBox) {
    super();
    this.sealer = new Sealer(key, box);
  }

  override _transform(data: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    for (const b of this.sealer.push(data)) this.push(b);
    done();
  }

  override _flush(done: TransformCallback): void {
    for (const b of this.sealer.finish()) this.push(b);
    done();
  }
}

/**
 * Sealed bytes in, verified plaintext out, without a stream around it. Emits only bytes whose MAC checked;
 * truncation, reordering and tampering fail with SealError. Holds at most one partial chunk.
 */
export class Opener {
  private buf: Buffer = Buffer.alloc(0);
  private prefix: Buffer | null = null;
  private counter = 0;
  private finished = false;

  constructor(private key: Uint8Array, private box: SecretBox = defaultBox) {}

  /**
   * Opens every whole chunk in `data` (plus what was left over). `atEnd`: no bytes follow, so the last
   * chunk is tried as the final one first (one secretbox open instead of two for a one-chunk document).
   */
  push(data: Buffer, out: Buffer[] = [], atEnd = false): Buffer[] {
    let buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    if (!this.prefix) {
      if (buf.length < HEADER_BYTES) {
        this.buf = Buffer.from(buf);
        return out;
      }
      if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new SealError('not a sealed printbox document (bad magic)');
      this.prefix = Buffer.from(buf.subarray(MAGIC.length, HEADER_BYTES));
      buf = buf.subarray(HEADER_BYTES);
    }
    // Every whole chunk of this push is opened into one buffer (sealed bytes outnumber their plaintext), handed
    // on only once all of them checked: a 1 MiB read of a large document leaves as one buffer, one socket write,
    // instead of 16 allocations and 16 writes of 64 KiB.
    let plain: Buffer | null = null;
    let at = 0;
    while (buf.length >= LEN_BYTES) {
      if (this.finished) throw new SealError('sealed document has data after its final chunk');
      const len = buf.readUInt32BE(0);
      if (len < MAC_BYTES || len > CHUNK_BYTES + MAC_BYTES) throw new SealError('sealed document has a corrupt chunk length');
      if (buf.length < LEN_BYTES + len) break;
      const sealed = buf.subarray(LEN_BYTES, LEN_BYTES + len);
      buf = buf.subarray(LEN_BYTES + len);
      plain ??= Buffer.allocUnsafe(sealed.length + buf.length);
      const into = plain.subarray(at, at + len - MAC_BYTES);
      // The final flag lives in the authenticated nonce: try the likelier one first, then the other.
      const likelyFinal = atEnd && buf.length === 0;
      let final = likelyFinal;
      if (!this.box.openInto(into, sealed, chunkNonce(this.prefix, this.counter, likelyFinal), this.key)) {
        final = !likelyFinal;
        if (!this.box.openInto(into, sealed, chunkNonce(this.prefix, this.counter, final), this.key)) {
          throw new SealError(`sealed document failed authentication at chunk ${this.counter} (tampered or wrong key)`);
        }
      }
      if (final) this.finished = true;
      this.counter++;
      at += into.length;
    }
    if (this.finished && buf.length) throw new SealError('sealed document has data after its final chunk');
    if (at) out.push(plain!.subarray(0, at));
    // Keep the partial chunk as a copy: `data` may be a reused read buffer.
    this.buf = buf.length ? Buffer.from(buf) : Buffer.alloc(0);
    return out;
  }

  /** Throws unless the final chunk was seen and nothing is left over. */
  end(): void {
    if (!this.finished || this.buf.length) throw new SealError('sealed document is truncated: the final chunk is missing');
  }
}

/** Sealed stream in, verified plaintext out (a Transform around Opener). */
export class OpenStream extends Transform {
  private opener: Opener;

  constructor(key: Uint8Array, box: SecretBox = defaultBox) {
    super();
    this.opener = new Opener(key, box);
  }

  override _transform(data: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      for (const p of this.opener.push(data)) this.push(p);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      this.opener.end();
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/** Opens a whole sealed document held in memory (small documents). */
export function openSealed(buf: Buffer, key: Uint8Array, box: SecretBox = defaultBox): Buffer[] {
  const opener = new Opener(key, box);
  const out = opener.push(buf, [], true);
  opener.end();
  return out;
}

// Record nonces come from a pool filled by one CSPRNG call: a syscall per journal line showed in profiles.
let noncePool = Buffer.alloc(0);
let nonceAt = 0;
function randomNonce(): Buffer {
  if (nonceAt + 24 > noncePool.length) {
    noncePool = randomBytes(24 * 512);
    nonceAt = 0;
  }
  return noncePool.subarray(nonceAt, (nonceAt += 24));
}

/** Bytes a sealed record adds to its plaintext: the nonce and the MAC. */
export const RECORD_OVERHEAD = 24 + MAC_BYTES;

/** Seals one small record (journal lines): random 24-byte nonce + box. */
export function sealRecord(plain: Buffer, key: Uint8Array, box: SecretBox = defaultBox): Buffer {
  const out = Buffer.allocUnsafe(RECORD_OVERHEAD + plain.length);
  sealRecordInto(out, plain, key, box);
  return out;
}

/** sealRecord into memory the caller owns (`out` holds at least RECORD_OVERHEAD + plain.length bytes). */
export function sealRecordInto(out: Buffer, plain: Buffer, key: Uint8Array, box: SecretBox = defaultBox): void {
  const nonce = randomNonce();
  nonce.copy(out, 0);
  box.sealInto(out.subarray(nonce.length, RECORD_OVERHEAD + plain.length), plain, nonce, key);
}

export function openRecord(sealed: Buffer, key: Uint8Array, box: SecretBox = defaultBox): Buffer {
  if (sealed.length < 24 + MAC_BYTES) throw new SealError('sealed record too short');
  const plain = box.open(sealed.subarray(24), sealed.subarray(0, 24), key);
  if (!plain) throw new SealError('sealed record failed authentication');
  return plain;
}
