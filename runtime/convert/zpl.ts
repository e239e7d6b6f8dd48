// PBM (P4, one page after another, as Ghostscript's pbmraw writes them) → ZPL II labels: one ^XA ^GF…^FS ^XZ per page.
import { Transform, type TransformCallback } from 'node:stream';

/**
 * ^GFA hex rows use ZPL's own shortcuts, which every ZPL II printer reads: ":" repeats the row above, "," fills the
 * rest of a row with white. Labels are mostly white, so a 4×6 in label at 203 dpi shrinks from ~250 KB of hex to
 * a few KB. (Z64 — deflate in base64 — is smaller still but older printers lack it.)
 */
export function gfRows(bits: Buffer, bytesPerRow: number, height: number): string {
  const out: string[] = [];
  let prev = '';
  for (let y = 0; y < height; y++) {
    const row = bits.subarray(y * bytesPerRow, (y + 1) * bytesPerRow);
    let end = row.length;
    while (end > 0 && row[end - 1] === 0) end--;
    const hex = row.subarray(0, end).toString('hex').toUpperCase();
    if (y > 0 && hex === prev) out.push(':');
    else out.push(end === row.length ? hex : `${hex},`);
    prev = hex;
  }
  return out.join('');
}

export function zplLabel(bits: Buffer, width: number, height: number, copies: number): string {
  const bpr = Math.ceil(width / 8);
  const total = bpr * height;
  return `^XA^PW${width}^LL${height}^LH0,0^FO0,0^GFA,${total},${total},${bpr},${gfRows(bits, bpr, height)}^FS${copies > 1 ? `^PQ${copies}` : ''}^XZ\n`;
}

/** Streams P4 pages in, ZPL labels out; counts pages. */
export class PbmToZpl extends Transform {
  private buf: Buffer = Buffer.alloc(0);
  pages = 0;

  constructor(private copies: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    try {
      this.drain();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    cb(this.buf.length ? new Error('the rendered label ended in the middle of a page') : null);
  }

  private drain(): void {
    for (;;) {
      const head = parseP4Header(this.buf);
      if (!head) return;
      const size = Math.ceil(head.width / 8) * head.height;
      if (this.buf.length < head.offset + size) return;
      this.push(zplLabel(this.buf.subarray(head.offset, head.offset + size), head.width, head.height, this.copies));
      this.pages++;
      this.buf = this.buf.subarray(head.offset + size);
    }
  }
}

/** "P4", whitespace/comments, width, height, one whitespace byte; null until the header is complete. */
export function parseP4Header(b: Buffer): { width: number; height: number; offset: number } | null {
  if (b.length < 2) return null;
  if (b[0] !== 0x50 || b[1] !== 0x34) throw new Error('the renderer did not produce a PBM (P4) page');
  const nums: number[] = [];
  let i = 2;
  while (nums.length < 2) {
    while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09 || b[i] === 0x23)) {
      if (b[i] === 0x23) while (i < b.length && b[i] !== 0x0a) i++; // comment to end of line
      else i++;
    }
    const start = i;
    while (i < b.length && b[i] >= 0x30 && b[i] <= 0x39) i++;
    if (i >= b.length) return null; // the number may go on in the next chunk
    if (i === start) throw new Error('malformed PBM header from the renderer');
    nums.push(Number(b.subarray(start, i).toString('latin1')));
  }
  if (i >= b.length) return null;
  return { width: nums[0], height: nums[1], offset: i + 1 };
}
