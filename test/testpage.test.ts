// Test pages: each language's page is well-formed, and Ghostscript / poppler read the PostScript and PDF ones back.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { testPage, testPageKindFor } from '../drivers/testpage.js';

const info = { printerName: 'Front desk (Zébra) ^XZ "quoted"', appliance: 'printbox-7f3a', time: new Date('2025-03-04T05:06:07.890Z') };
const has = (bin: string) => ['/usr/bin', '/usr/local/bin', '/bin'].some((d) => existsSync(path.join(d, bin)));
const dir = mkdtempSync(path.join(tmpdir(), 'printbox-testpage-'));

/** Checks a PDF's skeleton the way a reader finds objects: header, xref entries pointing at "n 0 obj", startxref, %%EOF. */
function checkPdfStructure(pdf: Buffer): void {
  const s = pdf.toString('latin1');
  assert.ok(s.startsWith('%PDF-1.'), 'starts with %PDF-');
  assert.ok(s.endsWith('%%EOF\n'), 'ends with %%EOF');
  const startxref = Number(/startxref\n(\d+)\n%%EOF\n$/.exec(s)?.[1]);
  assert.equal(s.slice(startxref, startxref + 5), 'xref\n', 'startxref points at the xref table');
  const [, first, count] = /^xref\n(\d+) (\d+)\n/.exec(s.slice(startxref))!.map(Number);
  assert.equal(first, 0);
  const entries = s.slice(startxref).split('\n').slice(2, 2 + count);
  entries.forEach((e, i) => {
    assert.equal(e.length + 1, 20, 'each xref entry is 20 bytes');
    if (i === 0) return assert.equal(e, '0000000000 65535 f ');
    const off = Number(e.slice(0, 10));
    assert.equal(s.slice(off, off + `${i} 0 obj`.length), `${i} 0 obj`, `xref entry ${i} points at its object`);
  });
  assert.match(s, new RegExp(`trailer\\n<< /Size ${count} /Root 1 0 R`));
  const len = Number(/\/Length (\d+) >>\nstream\n/.exec(s)?.[1]);
  const at = s.indexOf('stream\n') + 'stream\n'.length;
  assert.equal(s.slice(at + len, at + len + 'endstream'.length), 'endstream', 'stream /Length is exact');
}

describe('test pages', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('PostScript starts with %!PS, has one page and ends with showpage and %%EOF', () => {
    const { contentType, data } = testPage('postscript', info);
    assert.equal(contentType, 'postscript');
    const s = data.toString('latin1');
    assert.ok(s.startsWith('%!PS-Adobe-3.0\n'));
    assert.match(s, /%%Pages: 1\n/);
    assert.match(s, /showpage\n%%Trailer\n%%EOF\n$/);
    assert.ok(s.includes('(Printer:   Front desk \\(Zebra\\) ^XZ "quoted") show'), 'parentheses escaped, accents folded');
  });

  test('Ghostscript renders the PostScript page and its text reads back', { skip: !has('gs') && 'ghostscript (gs) not installed' }, () => {
    const file = path.join(dir, 'page.ps');
    writeFileSync(file, testPage('postscript', info).data);
    const text = execFileSync('gs', ['-q', '-dSAFER', '-dBATCH', '-dNOPAUSE', '-sDEVICE=txtwrite', '-sOutputFile=-', file], { encoding: 'latin1', timeout: 20_000 });
    assert.match(text, /printbox test page/);
    assert.match(text, /Front desk \(Zebra\) \^XZ "quoted"/);
    assert.match(text, /2025-03-04T05:06:07.890Z/);
  });

  test('the PDF is well-formed, and poppler and Ghostscript read one page with our text', () => {
    const { contentType, data } = testPage('pdf', info);
    assert.equal(contentType, 'pdf');
    checkPdfStructure(data);
    const file = path.join(dir, 'page.pdf');
    writeFileSync(file, data);
    if (has('pdfinfo')) {
      const meta = execFileSync('pdfinfo', [file], { encoding: 'latin1', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] });
      assert.match(meta, /Pages:\s+1\n/);
      assert.match(meta, /Title:\s+printbox test page/);
    }
    if (has('gs')) {
      const text = execFileSync('gs', ['-q', '-dSAFER', '-dBATCH', '-dNOPAUSE', '-sDEVICE=txtwrite', '-sOutputFile=-', file], { encoding: 'latin1', timeout: 20_000 });
      assert.match(text, /printbox test page/);
      assert.match(text, /Appliance: printbox-7f3a/);
      assert.doesNotMatch(text, /error/i);
    }
  });

  test('the ZPL label is one ^XA…^XZ format, and field data cannot end it early', () => {
    const { contentType, data } = testPage('zpl', info);
    assert.equal(contentType, 'zpl');
    const s = data.toString('latin1');
    assert.ok(s.startsWith('^XA\n'));
    assert.ok(s.trimEnd().endsWith('^XZ'));
    assert.equal(s.split('^XA').length - 1, 1);
    assert.equal(s.split('^XZ').length - 1, 1, 'the ^XZ inside the printer name is hex-escaped');
    assert.ok(s.includes('_5eXZ'), 'caret escaped as _5e under ^FH');
    assert.match(s, /\^BCN,60,Y,N,N\^FD20250304050607\^FS/);
    for (const field of s.match(/\^FD[^^]*\^FS/g) ?? []) assert.doesNotMatch(field.slice(3, -3), /[\^~]/);
  });

  test('the ESC/POS receipt initialises, stays within 32 columns and ends with a cut', () => {
    const { contentType, data } = testPage('escpos', info);
    assert.equal(contentType, 'escpos');
    assert.deepEqual([...data.subarray(0, 2)], [0x1b, 0x40]);
    assert.deepEqual([...data.subarray(-4)], [0x1d, 0x56, 0x42, 0x00]);
    const textLines = data
      .toString('latin1')
      .split('\n')
      .filter((l) => !l.includes('\x1b') && !l.includes('\x1d'));
    assert.ok(textLines.length > 5);
    for (const l of textLines) assert.ok(l.length <= 32, `"${l}" is wider than 58 mm paper`);
  });

  test('the PCL page resets, draws, and resets again to eject; plain text ends with a form feed', () => {
    const p = testPage('pcl', info).data.toString('latin1');
    assert.ok(p.startsWith('\x1bE'));
    assert.ok(p.endsWith('\x1bE'));
    assert.ok(p.includes('printbox test page'));
    assert.ok(p.includes('\x1b*c1800a6b0P'));
    const t = testPage('text', info);
    assert.equal(t.contentType, 'text');
    assert.ok(t.data.toString('latin1').endsWith('\r\n\f'));
    assert.match(t.data.toString('latin1'), /Printer: {3}Front desk \(Zebra\)/);
    assert.ok([...t.data].every((b) => b === 0x0c || b === 0x0d || b === 0x0a || (b >= 0x20 && b < 0x7f)), 'printable ASCII only');
  });

  test('the language is picked from a hint first, then from the printer URI', () => {
    const u = (s: string) => new URL(s);
    assert.equal(testPageKindFor(u('serial:///dev/ttyUSB0?baud=9600')), 'escpos');
    assert.equal(testPageKindFor(u('raw://10.0.0.5:9100')), 'pcl');
    assert.equal(testPageKindFor(u('socket://10.0.0.5')), 'pcl');
    assert.equal(testPageKindFor(u('raw://10.0.0.5:6101')), 'zpl');
    assert.equal(testPageKindFor(u('lpr://10.0.0.5/queue')), 'pcl');
    assert.equal(testPageKindFor(u('ipp://10.0.0.5/ipp/print')), 'pdf');
    assert.equal(testPageKindFor(u('ipps://10.0.0.5/ipp/print')), 'pdf');
    assert.equal(testPageKindFor(u('somethingelse://x')), 'text');
    assert.equal(testPageKindFor(u('raw://10.0.0.5:9100'), 'Zebra ZD421'), 'zpl');
    assert.equal(testPageKindFor(u('raw://10.0.0.5:9100'), 'EPSON TM-T88VI'), 'escpos');
    assert.equal(testPageKindFor(u('raw://10.0.0.5:9100'), 'application/vnd.hp-PCL,application/postscript'), 'postscript');
    assert.equal(testPageKindFor(u('serial:///dev/ttyS0'), 'text'), 'text');
  });
});
