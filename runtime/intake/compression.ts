// Compressed uploads (IPP `compression`, HTTP Content-Encoding): gzip and deflate decoded as the bytes stream in.
import zlib from 'node:zlib';
import { Readable } from 'node:stream';
import { withHead } from '../../drivers/streams.js';

export const COMPRESSIONS = ['none', 'gzip', 'deflate'] as const;

/** A zlib-wrapped deflate stream starts with CMF/FLG bytes whose 16-bit value is a multiple of 31 (RFC 1950). */
const isZlib = (b: Buffer) => b.length >= 2 && (b[0] & 0x0f) === 8 && ((b[0] << 8) | b[1]) % 31 === 0;

/**
 * The plaintext of `source` under `coding`, as a stream. "deflate" is taken both ways it is sent in practice
 * (zlib-wrapped, as HTTP means it, or raw RFC 1951), told apart by the first two bytes.
 */
export function decoded(source: AsyncIterable<Buffer>, coding: string | undefined): Readable {
  if (!coding || coding === 'none' || coding === 'identity') return Readable.from(source, { objectMode: false });
  async function* run(): AsyncGenerator<Buffer> {
    const it = source[Symbol.asyncIterator]();
    const first = await it.next();
    const head = first.done ? Buffer.alloc(0) : first.value;
    const inflater = coding === 'gzip' ? zlib.createGunzip() : isZlib(head) ? zlib.createInflate() : zlib.createInflateRaw();
    const src = Readable.from(withHead(head, it), { objectMode: false });
    src.on('error', (err) => inflater.destroy(err));
    src.pipe(inflater);
    yield* inflater;
  }
  return Readable.from(run(), { objectMode: false });
}
