// Pages in a document: qpdf for PDF (which also tells a broken or encrypted file), DSC comments, headers, label marks.
import type { ContentType } from '../../drivers/contract-types.js';
import { RamFile } from './ramfile.js';
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

/** Pages of a document sent as it is, from bytes already in memory; undefined where it cannot be told cheaply. */
export async function countPassthrough(type: ContentType, bytes: readonly Buffer[], ram: { dir: string; timeoutMs: number }): Promise<number | undefined> {
  const size = bytes.reduce((n, b) => n + b.length, 0);
  switch (type) {
    case 'pdf': {
      const f = await RamFile.from(ram.dir, bytes, size + 1);
      try {
        return await pdfPages(f, ram.timeoutMs, ram.dir);
      } finally {
        await f.close();
      }
    }
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
