// Walks printer-language output the way a printer would: PWG raster and URF page by page (decoding every line),
// PCL 5 escape sequences (skipping binary raster data), so a test counts real pages, not lucky byte patterns.

export interface RasterPage {
  width: number;
  height: number;
  dpi: number;
  bitsPerPixel: number;
}

/** One page's compressed lines (PWG 5102.4 / URF share the scheme): line-repeat byte, then pixel runs. */
function skipLines(b: Buffer, at: number, height: number, bytesPerLine: number, pixelBytes: number, urf: boolean): number {
  let y = 0;
  let i = at;
  while (y < height) {
    if (i >= b.length) throw new Error(`raster ends inside a page (line ${y} of ${height})`);
    const repeat = b[i++] + 1;
    let x = 0;
    while (x < bytesPerLine) {
      if (i >= b.length) throw new Error('raster ends inside a line');
      const n = b[i++];
      if (urf && n === 0x80) {
        x = bytesPerLine; // rest of the line is white
      } else if (n < 128) {
        x += (n + 1) * pixelBytes;
        i += pixelBytes;
      } else {
        const count = (257 - n) * pixelBytes;
        x += count;
        i += count;
      }
    }
    if (x !== bytesPerLine) throw new Error(`a line decodes to ${x} bytes, not ${bytesPerLine}`);
    y += repeat;
  }
  if (y !== height) throw new Error('line repeats run past the page');
  return i;
}

export function pwgPages(b: Buffer): RasterPage[] {
  if (b.toString('latin1', 0, 4) !== 'RaS2') throw new Error(`not PWG raster (starts with ${JSON.stringify(b.toString('latin1', 0, 4))})`);
  const pages: RasterPage[] = [];
  let i = 4;
  while (i < b.length) {
    const h = b.subarray(i, i + 1796);
    if (h.length < 1796 || h.toString('latin1', 0, 9) !== 'PwgRaster') throw new Error(`page ${pages.length + 1}: no PWG page header`);
    const p = { dpi: h.readUInt32BE(276), width: h.readUInt32BE(372), height: h.readUInt32BE(376), bitsPerPixel: h.readUInt32BE(388) };
    const bytesPerLine = h.readUInt32BE(392);
    // Below 8 bits a pixel, runs count whole bytes (PWG 5102.4 section 4.3).
    i = skipLines(b, i + 1796, p.height, bytesPerLine, Math.max(1, p.bitsPerPixel / 8), false);
    pages.push(p);
  }
  return pages;
}

export function urfPages(b: Buffer): { declared: number; pages: RasterPage[] } {
  if (b.toString('latin1', 0, 8) !== 'UNIRAST\0') throw new Error('not URF (no UNIRAST header)');
  const declared = b.readUInt32BE(8);
  const pages: RasterPage[] = [];
  let i = 12;
  while (i < b.length) {
    const h = b.subarray(i, i + 32);
    if (h.length < 32) throw new Error('URF ends inside a page header');
    const p = { bitsPerPixel: h[0], width: h.readUInt32BE(12), height: h.readUInt32BE(16), dpi: h.readUInt32BE(20) };
    i = skipLines(b, i + 32, p.height, (p.width * p.bitsPerPixel) / 8, p.bitsPerPixel / 8, true);
    pages.push(p);
  }
  return { declared, pages };
}

/** Form feeds (page ends) in PCL 5, outside the binary data of raster rows (ESC * b # W). */
export function pcl5Pages(b: Buffer): number {
  let pages = 0;
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    if (c === 0x0c) {
      pages++;
      i++;
    } else if (c === 0x1b && i + 1 < b.length && b[i + 1] >= 0x21 && b[i + 1] <= 0x2f && b[i + 1] !== 0x25) {
      // Parameterized sequence: ESC, parameter char, group char, then value+letter pairs; uppercase letter ends it.
      let j = i + 3;
      for (;;) {
        const start = j;
        while (j < b.length && /[0-9.+-]/.test(String.fromCharCode(b[j]))) j++;
        const value = Number(b.toString('latin1', start, j)) || 0;
        const letter = b[j++];
        if (letter === 0x57) {
          j += value; // W: binary data follows
          break;
        }
        if (letter === undefined || (letter >= 0x40 && letter <= 0x5e)) break;
      }
      i = j;
    } else i++;
  }
  return pages;
}

/** Where the ink is on each page of PWG raster in sgray_8 or srgb_8 (255 is white): the bounding box of dark pixels. */
export function pwgInk(b: Buffer): { width: number; height: number; ink?: { x0: number; y0: number; x1: number; y1: number } }[] {
  const out: ReturnType<typeof pwgInk> = [];
  let i = 4;
  while (i < b.length) {
    const h = b.subarray(i, i + 1796);
    const width = h.readUInt32BE(372);
    const height = h.readUInt32BE(376);
    const px = h.readUInt32BE(388) / 8;
    if (px !== 1 && px !== 3) throw new Error('pwgInk reads 8-bit grey or 24-bit colour');
    i += 1796;
    let ink: { x0: number; y0: number; x1: number; y1: number } | undefined;
    const line = Buffer.alloc(width * px);
    for (let y = 0; y < height; ) {
      const repeat = b[i++] + 1;
      for (let x = 0; x < width; ) {
        const n = b[i++];
        if (n < 128) {
          for (let k = 0; k <= n; k++) b.copy(line, (x + k) * px, i, i + px);
          i += px;
          x += n + 1;
        } else {
          const count = 257 - n;
          b.copy(line, x * px, i, i + count * px);
          i += count * px;
          x += count;
        }
      }
      for (let x = 0; x < width; x++) {
        let sum = 0;
        for (let k = 0; k < px; k++) sum += line[x * px + k];
        if (sum / px >= 128) continue;
        ink ??= { x0: x, y0: y, x1: x, y1: y };
        ink.x0 = Math.min(ink.x0, x);
        ink.x1 = Math.max(ink.x1, x);
        ink.y0 = Math.min(ink.y0, y);
        ink.y1 = Math.max(ink.y1, y + repeat - 1);
      }
      y += repeat;
    }
    out.push({ width, height, ink });
  }
  return out;
}
