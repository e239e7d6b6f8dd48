// Pages in a document: qpdf for PDF (which also tells a broken or encrypted file), DSC comments, headers, label marks.
import { inflateSync } from 'node:zlib';
import type { ContentType } from '../../drivers/contract-types.js';
import type { RamFile } from './ramfile.js';
import { toolOutput } from './tool.js';
import { textPages } from './postscript.js';

/** qpdf reads the PDF from its RAM file; a damaged or password-protected PDF fails here, with qpdf's words. */
export async function pdfPages(ram: RamFile, timeoutMs: number, tmpDir: string, signal?: AbortSignal): Promise<number> {
  const out = await toolOutput('qpdf', ['--show-npages', '/dev/fd/3'], { fd3: ram.fd, timeoutMs, signal, what: 'qpdf (reading the PDF)', tmpDir }).catch((err) => {
    // qpdf exits 3 for "worked, with warnings" (e.g. a repaired cross-reference table): the count is still good.
    if (/exit 3\)/.test(err.message)) return null;
    throw Object.assign(err, { message: err.message.replace(/\/dev\/fd\/3: ?/g, '') });
  });
  if (out === null) return pdfPagesAfterWarnings(ram, timeoutMs, tmpDir, signal);
  const n = Number(out.trim());
  if (!Number.isInteger(n) || n < 0) throw new Error(`qpdf gave no page count (${out.trim().slice(0, 80)})`);
  return n;
}

async function pdfPagesAfterWarnings(ram: RamFile, timeoutMs: number, tmpDir: string, signal?: AbortSignal): Promise<number> {
  const out = await toolOutput('sh', ['-c', 'qpdf --show-npages /dev/fd/3 2>/dev/null; exit 0'], { fd3: ram.fd, timeoutMs, signal, what: 'qpdf (reading the PDF)', tmpDir });
  return Number(out.trim()) || 0;
}

/** %%Pages: N from a PostScript file's DSC comments (head, or tail for "(atend)"); undefined if not there. */
export function dscPages(head: Buffer, tail: Buffer): number | undefined {
  for (const part of [head, tail]) {
    const m = /%%Pages:\s*(\d+)/.exec(part.toString('latin1'));
    if (m) return Number(m[1]);
  }
  return undefined;
}

/**
 * The page count of a PDF read in-process, for documents sent as they are: the largest /Count of a /Type /Pages
 * dictionary (the root of the page tree), in the file or in its object streams. No process per job (a qpdf run
 * costs ~10 ms of CPU, ten times what printbox spends on a small job); undefined when it cannot be told.
 */
export function pdfPagesInProcess(b: Buffer): number | undefined {
  if (b.length > 4 * 1024 * 1024) return undefined; // a scan of a large file would hold up the event loop
  const file = b.toString('latin1');
  const texts = [file];
  for (const m of file.matchAll(/\/Type\s*\/ObjStm[^]{0,600}?stream\r?\n/g)) {
    const start = m.index! + m[0].length;
    const end = file.indexOf('endstream', start);
    if (end < 0) continue;
    try {
      texts.push(inflateSync(b.subarray(start, end)).toString('latin1'));
    } catch {
      /* not Flate, or damaged: its pages stay uncounted */
    }
  }
  let max = 0;
  for (const t of texts) {
    for (const m of t.matchAll(/\/Type\s*\/Pages(?![A-Za-z])/g)) {
      const from = t.lastIndexOf('<<', m.index!);
      const to = t.indexOf('>>', m.index!);
      const dict = t.slice(from < 0 ? m.index! : from, to < 0 ? m.index! + 200 : to);
      const c = /\/Count\s+(\d+)/.exec(dict);
      if (c) max = Math.max(max, Number(c[1]));
    }
  }
  return max || undefined;
}

/** Pages of a document sent as it is, from bytes already in memory; undefined where it cannot be told cheaply. */
export async function countPassthrough(type: ContentType, bytes: readonly Buffer[]): Promise<number | undefined> {
  switch (type) {
    case 'pdf':
      return pdfPagesInProcess(Buffer.concat(bytes as Buffer[]));
    case 'postscript': {
      const all = Buffer.concat(bytes as Buffer[]);
      return dscPages(all.subarray(0, 4096), all.subarray(-4096));
    }
    case 'zpl':
      return (Buffer.concat(bytes as Buffer[]).toString('latin1').match(/\^XZ/gi) ?? []).length || undefined;
    case 'text':
      return textPages(Buffer.concat(bytes as Buffer[]).toString('utf8')).length;
    case 'jpeg':
    case 'png':
      return 1;
    case 'urf': {
      const h = Buffer.concat(bytes as Buffer[]).subarray(0, 12);
      return h.length === 12 && h.toString('latin1', 0, 7) === 'UNIRAST' ? h.readUInt32BE(8) : undefined;
    }
    default:
      return undefined;
  }
}
