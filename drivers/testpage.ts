// Test pages in each printer language (PCL, PostScript, ZPL, ESC/POS, text, PDF), and a guess at which one a printer takes.
import type { ContentType } from './contract.js';

export type TestPageKind = 'pcl' | 'postscript' | 'zpl' | 'escpos' | 'text' | 'pdf';

export interface TestPageInfo {
  printerName: string;
  appliance: string;
  time: Date;
}

/** Printer languages differ in what characters they can show; test pages stay in printable ASCII. */
function ascii(s: string, max = 60): string {
  return s
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, max);
}

function pageLines(info: TestPageInfo): string[] {
  return [
    `Printer:   ${ascii(info.printerName)}`,
    `Appliance: ${ascii(info.appliance)}`,
    `Time:      ${info.time.toISOString()}`,
    '',
    'If you can read this, printbox reaches this printer',
    'and the printer understands this language.',
    '',
    'ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz',
    '0123456789 !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~',
  ];
}

const TITLE = 'printbox test page';

export function testPage(kind: TestPageKind, info: TestPageInfo): { contentType: ContentType; data: Buffer } {
  switch (kind) {
    case 'pcl':
      return { contentType: 'pcl', data: Buffer.from(pcl(info), 'latin1') };
    case 'postscript':
      return { contentType: 'postscript', data: Buffer.from(postscript(info), 'latin1') };
    case 'zpl':
      return { contentType: 'zpl', data: Buffer.from(zpl(info), 'latin1') };
    case 'escpos':
      return { contentType: 'escpos', data: Buffer.from(escpos(info), 'latin1') };
    case 'text':
      return { contentType: 'text', data: Buffer.from([TITLE, '='.repeat(TITLE.length), '', ...pageLines(info)].join('\r\n') + '\r\n\f', 'latin1') };
    case 'pdf':
      return { contentType: 'pdf', data: pdf(info) };
  }
}

const ESC = '\x1b';

/** PCL 5: reset, a bold title, a rule, Courier body lines placed in 300-dpi units, reset again to eject the page. */
function pcl(info: TestPageInfo): string {
  const at = (x: number, y: number) => `${ESC}*p${x}x${y}Y`;
  const body = pageLines(info)
    .map((l, i) => `${at(300, 600 + i * 60)}${l}`)
    .join('');
  return (
    `${ESC}E${ESC}&l0O${ESC}&l0E` + // reset, portrait, no top margin
    `${ESC}(s1p24v0s3b4148T${at(300, 360)}${TITLE}` + // Univers bold 24 pt
    `${at(300, 420)}${ESC}*c1800a6b0P` + // a 6-dot rule, 6 inches wide
    `${ESC}(s0p10h12v0s0b3T${body}` + // Courier 10 cpi
    `${ESC}E`
  );
}

function psString(s: string): string {
  return `(${s.replace(/[\\()]/g, '\\$&')})`;
}

/** DSC-conforming one-page PostScript; the layout fits both A4 and Letter. */
function postscript(info: TestPageInfo): string {
  const body = pageLines(info)
    .map((l, i) => `72 ${640 - i * 16} moveto ${psString(l)} show`)
    .join('\n');
  return [
    '%!PS-Adobe-3.0',
    `%%Title: ${TITLE}`,
    '%%Creator: printbox',
    `%%CreationDate: ${info.time.toISOString()}`,
    '%%Pages: 1',
    '%%BoundingBox: 36 36 559 756',
    '%%EndComments',
    '%%Page: 1 1',
    '/Helvetica-Bold findfont 24 scalefont setfont',
    `72 700 moveto ${psString(TITLE)} show`,
    '2 setlinewidth 72 685 moveto 523 685 lineto stroke',
    '1 setlinewidth 36 36 moveto 559 36 lineto 559 756 lineto 36 756 lineto closepath stroke',
    '/Courier findfont 11 scalefont setfont',
    body,
    'showpage',
    '%%Trailer',
    '%%EOF',
    '',
  ].join('\n');
}

/** ZPL field data with ^FH: everything but letters, digits and a few safe marks goes as _hh, so ^ and ~ cannot end the field. */
function zplField(s: string): string {
  return `^FH^FD${[...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9 .,:/-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `_${b.toString(16).padStart(2, '0')}`)).join('')}^FS`;
}

/** A label that fits a 2-inch wide stock at 203 dpi: title, the facts, and a Code 128 barcode of the time. */
function zpl(info: TestPageInfo): string {
  const stamp = info.time.toISOString().replace(/\D/g, '').slice(0, 14);
  const facts = [ascii(info.printerName, 30), ascii(info.appliance, 30), info.time.toISOString().slice(0, 19) + 'Z'];
  return [
    '^XA',
    '^CI28',
    '^LH0,0',
    `^FO20,20^A0N,36,36${zplField(TITLE)}`,
    `^FO20,62^GB370,3,3^FS`,
    ...facts.map((f, i) => `^FO20,${80 + i * 30}^A0N,24,24${zplField(f)}`),
    `^FO20,180^BY2^BCN,60,Y,N,N^FD${stamp}^FS`,
    '^PQ1',
    '^XZ',
    '',
  ].join('\n');
}

/** A receipt for 58 mm paper (32 columns): centred title, facts, feed, and a partial cut. */
function escpos(info: TestPageInfo): string {
  const wrap = (l: string) => (l.length <= 32 ? [l] : (l.match(/.{1,32}/g) ?? []));
  const body = pageLines(info).flatMap((l) => wrap(l.replace(/\s+/g, ' ')));
  return (
    `${ESC}@` + // initialise
    `${ESC}a\x01${ESC}!\x30printbox\n${ESC}!\x00test page\n${ESC}a\x00` + // centred, double size title
    `${'-'.repeat(32)}\n${body.join('\n')}\n${'-'.repeat(32)}\n` +
    `${ESC}d\x04` + // feed 4 lines past the cutter
    '\x1dV\x42\x00' // GS V 66 0: feed and partial cut
  );
}

function pdfString(s: string): string {
  return `(${s.replace(/[\\()]/g, '\\$&')})`;
}

/** A minimal valid PDF 1.4 written by hand: catalog, pages, one page, Helvetica and Courier, a content stream, exact xref. */
function pdf(info: TestPageInfo): Buffer {
  const text = pageLines(info)
    .map((l, i) => `BT /F2 11 Tf 72 ${640 - i * 16} Td ${pdfString(l)} Tj ET`)
    .join('\n');
  const content = `BT /F1 24 Tf 72 700 Td ${pdfString(TITLE)} Tj ET\n2 w 72 685 m 523 685 l S\n1 w 36 36 523 720 re S\n${text}\n`;
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 792] /Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>',
    `<< /Length ${Buffer.byteLength(content, 'latin1')} >>\nstream\n${content}endstream`,
    `<< /Title ${pdfString(TITLE)} /Producer (printbox) /CreationDate (D:${info.time.toISOString().replace(/\D/g, '').slice(0, 14)}Z) >>`,
  ];
  let out = '%PDF-1.4\n%\xe2\xe3\xcf\xd3\n'; // binary comment marks the file as binary for transfer tools
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(Buffer.byteLength(out, 'latin1'));
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out, 'latin1');
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R /Info ${objects.length} 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

/**
 * The language a printer most likely takes, from what is known about it: `contentHint` may be a format list
 * (IPP document-format-supported, a probe's formats), a model name or a content type; otherwise the URI decides.
 */
export function testPageKindFor(uri: URL, contentHint?: string): TestPageKind {
  const hint = contentHint?.toLowerCase() ?? '';
  const byHint: [RegExp, TestPageKind][] = [
    [/zpl|zebra/, 'zpl'],
    [/esc\/?pos|receipt|\btm-|thermal/, 'escpos'],
    [/pdf/, 'pdf'],
    [/postscript|\bps\b/, 'postscript'],
    [/pcl/, 'pcl'],
    [/text\/plain|^text$/, 'text'],
  ];
  for (const [re, kind] of byHint) if (re.test(hint)) return kind;
  const scheme = uri.protocol.replace(/:$/, '');
  switch (scheme) {
    case 'serial':
      return 'escpos'; // serial printers today are mostly receipt printers
    case 'ipp':
    case 'ipps':
    case 'http':
    case 'https':
    case 'file':
      return 'pdf'; // IPP Everywhere requires PDF or PWG raster; PDF is the one a test page can be written in
    case 'raw':
    case 'socket':
    case 'lpr':
    case 'lpd':
      // 6101 is Zebra's second raw port; otherwise an office printer, and PCL is the language they almost all speak.
      return uri.port === '6101' ? 'zpl' : 'pcl';
    default:
      return 'text';
  }
}
