// Plain text, JPEG and PNG as PostScript pages, so that Ghostscript (or a PostScript printer) takes them like any document.
import { deflateSync, inflateSync } from 'node:zlib';

/** Fits the image drawn in a unit square onto whatever page the output device has, keeping its aspect ratio. */
function fitPage(w: number, h: number): string {
  return `currentpagedevice /PageSize get aload pop /ph exch def /pw exch def
/m pw ph lt { pw } { ph } ifelse 0.04 mul def
/s pw m 2 mul sub ${w} div ph m 2 mul sub ${h} div 2 copy gt { exch } if pop def
pw ${w} s mul sub 2 div ph ${h} s mul sub 2 div translate ${w} s mul ${h} s mul scale
`;
}

/* ------------------------------------------------------------------ text */

const LINES = 64;
const COLUMNS = 80;

/** Escapes a line for a PostScript string; characters outside Latin-1 print as "?". */
function psString(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '(' || ch === ')' || ch === '\\') out += `\\${ch}`;
    else if (c >= 0x20 && c < 0x7f) out += ch;
    else if (c >= 0xa0 && c <= 0xff) out += `\\${c.toString(8).padStart(3, '0')}`;
    else out += '?';
  }
  return out;
}

/** Text pages: form feeds start a page, long lines wrap at 80 columns, tabs every 8. */
export function textPages(text: string): string[][] {
  const pages: string[][] = [[]];
  for (const [pi, block] of text.replace(/\r\n?/g, '\n').split('\f').entries()) {
    if (pi > 0) pages.push([]);
    const lines = block.endsWith('\n') ? block.slice(0, -1).split('\n') : block.split('\n');
    for (const raw of lines) {
      let line = '';
      for (const ch of raw) line += ch === '\t' ? ' '.repeat(8 - (line.length % 8)) : ch;
      const parts = line.length ? (line.match(new RegExp(`.{1,${COLUMNS}}`, 'gu')) ?? ['']) : [''];
      for (const p of parts) {
        if (pages[pages.length - 1].length === LINES) pages.push([]);
        pages[pages.length - 1].push(p);
      }
    }
  }
  // A document that ends with a form feed has no blank page after it.
  const last = pages[pages.length - 1];
  if (pages.length > 1 && (last.length === 0 || (last.length === 1 && last[0] === ''))) pages.pop();
  return pages;
}

export function textToPostScript(text: string): { ps: string; pages: number } {
  const pages = textPages(text);
  const out = [
    '%!PS-Adobe-3.0',
    `%%Pages: ${pages.length}`,
    '%%EndComments',
    '/Courier findfont dup length dict begin { 1 index /FID ne { def } { pop pop } ifelse } forall /Encoding ISOLatin1Encoding def currentdict end /Courier-L1 exch definefont pop',
    // 80 columns of Courier and 64 lines fit any page: the font size follows the page's width and height.
    '/pbpage { currentpagedevice /PageSize get aload pop /ph exch def /pw exch def /fs pw 0.88 mul 48 div ph 0.9 mul 64 div 2 copy gt { exch } if pop def /Courier-L1 findfont fs scalefont setfont /x pw 0.06 mul def /y ph ph 0.05 mul sub fs sub def } def',
    '/pbline { x y moveto show /y y fs sub def } def',
  ];
  pages.forEach((lines, i) => {
    out.push(`%%Page: ${i + 1} ${i + 1}`, 'pbpage');
    for (const l of lines) out.push(`(${psString(l)}) pbline`);
    out.push('showpage');
  });
  out.push('%%EOF', '');
  return { ps: out.join('\n'), pages: pages.length };
}

/* ------------------------------------------------------------------ JPEG */

/** Width, height and components from a JPEG's frame header (SOFn). */
export function jpegInfo(b: Buffer): { width: number; height: number; components: number } {
  if (b[0] !== 0xff || b[1] !== 0xd8) throw new Error('not a JPEG file');
  let i = 2;
  while (i + 9 < b.length) {
    if (b[i] !== 0xff) throw new Error('damaged JPEG: a marker was expected');
    const marker = b[i + 1];
    if (marker === 0xff) {
      i++;
      continue;
    }
    const len = b.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7), components: b[i + 9] };
    }
    i += 2 + len;
  }
  throw new Error('damaged JPEG: no frame header');
}

/** A one-page PostScript program that draws the JPEG (DCTDecode, the JPEG bytes unchanged) fitted to the page. */
export function jpegToPostScript(jpeg: Buffer): Buffer {
  const { width, height, components } = jpegInfo(jpeg);
  const space = components === 1 ? '/DeviceGray' : components === 4 ? '/DeviceCMYK' : '/DeviceRGB';
  // Adobe's CMYK JPEGs are stored inverted.
  const decode = components === 4 ? '[1 0 1 0 1 0 1 0]' : `[${Array(components).fill('0 1').join(' ')}]`;
  const head = `%!PS-Adobe-3.0\n%%Pages: 1\n%%EndComments\n%%Page: 1 1\ngsave\n${fitPage(width, height)}${space} setcolorspace\n<< /ImageType 1 /Width ${width} /Height ${height} /BitsPerComponent 8 /Decode ${decode} /ImageMatrix [${width} 0 0 -${height} 0 ${height}] /DataSource currentfile /DCTDecode filter >> image\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), jpeg, Buffer.from('\ngrestore showpage\n%%EOF\n', 'latin1')]);
}

/* ------------------------------------------------------------------ PNG */

/** Decodes a non-interlaced PNG to 8-bit gray or RGB, alpha composited over white paper. */
export function decodePng(b: Buffer): { width: number; height: number; channels: 1 | 3; pixels: Buffer } {
  if (b.subarray(0, 8).toString('latin1') !== '\x89PNG\r\n\x1a\n') throw new Error('not a PNG file');
  let i = 8;
  let width = 0, height = 0, depth = 0, type = 0, interlace = 0;
  let palette: Buffer | null = null;
  let trns: Buffer | null = null;
  const idat: Buffer[] = [];
  while (i + 8 <= b.length) {
    const len = b.readUInt32BE(i);
    const kind = b.subarray(i + 4, i + 8).toString('latin1');
    const data = b.subarray(i + 8, i + 8 + len);
    if (data.length !== len) throw new Error('damaged PNG: a chunk is cut short');
    if (kind === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      depth = data[8];
      type = data[9];
      interlace = data[12];
    } else if (kind === 'PLTE') palette = data;
    else if (kind === 'tRNS') trns = data;
    else if (kind === 'IDAT') idat.push(data);
    else if (kind === 'IEND') break;
    i += 12 + len;
  }
  if (!width || !height || ![0, 2, 3, 4, 6].includes(type)) throw new Error('damaged PNG: no usable image header');
  if (interlace) throw new Error('interlaced PNG images are not supported; save it without interlacing');
  if (width * height > 100_000_000) throw new Error(`PNG image of ${width}×${height} pixels is too large`);
  const samples = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[type]!;
  const bpp = Math.max(1, (samples * depth) >> 3);
  const stride = Math.ceil((width * samples * depth) / 8);
  const raw = inflateSync(Buffer.concat(idat));
  if (raw.length < height * (stride + 1)) throw new Error('damaged PNG: the image data is cut short');
  const rows = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = rows.subarray(y * stride, (y + 1) * stride);
    const up = y ? rows.subarray((y - 1) * stride, y * stride) : null;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[x - bpp] : 0;
      const c = up && x >= bpp ? up[x - bpp] : 0;
      const u = up ? up[x] : 0;
      let v = src[x];
      if (f === 1) v += a;
      else if (f === 2) v += u;
      else if (f === 3) v += (a + u) >> 1;
      else if (f === 4) {
        const p = a + u - c, pa = Math.abs(p - a), pb = Math.abs(p - u), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? u : c;
      } else if (f !== 0) throw new Error('damaged PNG: unknown row filter');
      out[x] = v & 0xff;
    }
  }
  const channels: 1 | 3 = type === 0 || type === 4 ? 1 : 3;
  const pixels = Buffer.alloc(width * height * channels);
  const sample = (row: Buffer, n: number): number => {
    // The n-th sample of a row at the image's bit depth, scaled to 0–255 (palette indexes are not scaled).
    if (depth === 8) return row[n];
    if (depth === 16) return row[n * 2];
    const perByte = 8 / depth;
    const v = (row[Math.floor(n / perByte)] >> (8 - depth * ((n % perByte) + 1))) & ((1 << depth) - 1);
    return type === 3 ? v : Math.round((v * 255) / ((1 << depth) - 1));
  };
  const over = (v: number, alpha: number) => Math.round((v * alpha + 255 * (255 - alpha)) / 255);
  for (let y = 0; y < height; y++) {
    const row = rows.subarray(y * stride, (y + 1) * stride);
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * channels;
      if (type === 3) {
        const idx = sample(row, x);
        const alpha = trns && idx < trns.length ? trns[idx] : 255;
        for (let k = 0; k < 3; k++) pixels[o + k] = over(palette?.[idx * 3 + k] ?? 0, alpha);
      } else {
        const alpha = type === 4 || type === 6 ? sample(row, x * samples + samples - 1) : 255;
        for (let k = 0; k < channels; k++) pixels[o + k] = over(sample(row, x * samples + k), alpha);
      }
    }
  }
  return { width, height, channels, pixels };
}

export function pngToPostScript(png: Buffer): Buffer {
  const { width, height, channels, pixels } = decodePng(png);
  const space = channels === 1 ? '/DeviceGray' : '/DeviceRGB';
  const data = deflateSync(pixels, { level: 1 });
  const head = `%!PS-Adobe-3.0\n%%Pages: 1\n%%EndComments\n%%Page: 1 1\ngsave\n${fitPage(width, height)}${space} setcolorspace\n<< /ImageType 1 /Width ${width} /Height ${height} /BitsPerComponent 8 /Decode [${Array(channels).fill('0 1').join(' ')}] /ImageMatrix [${width} 0 0 -${height} 0 ${height}] /DataSource currentfile /FlateDecode filter >> image\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), data, Buffer.from('\ngrestore showpage\n%%EOF\n', 'latin1')]);
}
