// One validation of job options for every intake protocol: fields as received in, a ValidJob (or a coded error) out.
import { CONTENT_TYPES, DUPLEX, ORIENTATIONS, type ContentType, type Duplex, type JobOptions } from '../../drivers/contract.js';
import { ApiError, badRequest } from '../system/errors.js';
import type { PrinterRecord } from '../system/state.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Batch IDs: Vasion's on-prem examples use names ("batch-2024-001"), Cloud Link uses UUIDs; both fit. */
export const BATCH_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const PAGE_RANGES = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;
export const JOB_FIELDS = ['jobID', 'printer', 'title', 'user', 'copies', 'color', 'duplex', 'media', 'orientation', 'pageRanges', 'finishings', 'tray', 'contentType', 'statusURL', 'batchID'] as const;
export type JobField = (typeof JOB_FIELDS)[number];
/** A job's fields as a protocol received them, before validation. */
export type JobFields = Partial<Record<JobField, unknown>>;

/** The printers a job may name: looked up by id or name. */
export interface PrinterDirectory {
  find(idOrName: string): PrinterRecord | undefined;
  list(): PrinterRecord[];
}

export interface ValidJob {
  jobID?: string;
  printerId: string;
  title: string;
  user: string;
  contentType?: ContentType;
  options: JobOptions;
  statusURL?: string;
  batchID?: string;
}

function str(v: unknown, field: string, max = 256): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' && typeof v !== 'number') throw badRequest('bad_field', `${field} must be text`);
  const s = String(v);
  if (s.length > max) throw badRequest('bad_field', `${field} is longer than ${max} characters`);
  if (/[\x00-\x1f\x7f]/.test(s)) throw badRequest('bad_field', `${field} must not contain control characters`);
  return s;
}

function bool(v: unknown, field: string): boolean | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (['true', '1', 'yes', 'color', 'colour'].includes(s)) return true;
  if (['false', '0', 'no', 'monochrome', 'grayscale', 'greyscale', 'mono', 'black-and-white', 'bw'].includes(s)) return false;
  throw badRequest('bad_field', `${field} must be true or false (or color, monochrome, grayscale)`);
}

/** Duplex as other APIs name it (Vasion, IPP `sides`, true/false): every spelling maps onto one of DUPLEX. */
const DUPLEX_ALIASES: Readonly<Record<string, Duplex>> = {
  none: 'none', simplex: 'none', 'one-sided': 'none', false: 'none', off: 'none', no: 'none', '0': 'none',
  'long-edge': 'long-edge', duplex: 'long-edge', 'two-sided-long-edge': 'long-edge', true: 'long-edge', on: 'long-edge', yes: 'long-edge', '1': 'long-edge', 'two-sided': 'long-edge',
  'short-edge': 'short-edge', 'two-sided-short-edge': 'short-edge', tumble: 'short-edge',
};

function duplexOf(v: unknown): Duplex | undefined {
  if (typeof v === 'boolean') return v ? 'long-edge' : 'none';
  const s = str(v, 'duplex', 64);
  if (s === undefined) return undefined;
  const d = DUPLEX_ALIASES[s.toLowerCase()];
  if (!d) throw badRequest('bad_duplex', `duplex must be one of ${DUPLEX.join(', ')} (or simplex, duplex, one-sided, two-sided-long-edge, two-sided-short-edge, true, false)`);
  return d;
}

/** Media short names mapped to PWG 5101.1 self-describing names, which every driver understands. */
const MEDIA_NAMES: Readonly<Record<string, string>> = {
  a3: 'iso_a3_297x420mm', a4: 'iso_a4_210x297mm', a5: 'iso_a5_148x210mm', a6: 'iso_a6_105x148mm', b5: 'iso_b5_176x250mm',
  letter: 'na_letter_8.5x11in', legal: 'na_legal_8.5x14in', tabloid: 'na_ledger_11x17in', ledger: 'na_ledger_11x17in',
  executive: 'na_executive_7.25x10.5in', dl: 'iso_dl_110x220mm', com10: 'na_number-10_4.125x9.5in', c5: 'iso_c5_162x229mm',
  usletter: 'na_letter_8.5x11in', uslegal: 'na_legal_8.5x14in',
};
const PWG_MEDIA = /^[a-z0-9]+_[a-z0-9.-]+_\d+(\.\d+)?x\d+(\.\d+)?(mm|in)$/;

function mediaOf(v: unknown): string | undefined {
  const s = str(v, 'media', 64);
  if (s === undefined) return undefined;
  const short = MEDIA_NAMES[s.toLowerCase().replace(/[\s_-]/g, '')];
  if (short) return short;
  if (PWG_MEDIA.test(s.toLowerCase())) return s.toLowerCase();
  throw badRequest('bad_media', `media "${s.slice(0, 64)}" is not a paper name printbox knows: use ${Object.keys(MEDIA_NAMES).slice(0, 13).join(', ')} or a PWG self-describing name like iso_a4_210x297mm`);
}

/** Content types as MIME types (what IPP and many HTTP clients say) mapped onto printbox's names. */
const CONTENT_TYPE_ALIASES: Readonly<Record<string, ContentType>> = {
  'application/pdf': 'pdf', 'application/postscript': 'postscript', 'application/vnd.hp-pcl': 'pcl', 'application/pcl': 'pcl',
  'image/pwg-raster': 'pwg-raster', 'application/x-zpl': 'zpl', 'text/plain': 'text', 'application/octet-stream': 'raw', 'application/vnd.cups-raw': 'raw',
};

function contentTypeOf(v: unknown): ContentType | undefined {
  const s = str(v, 'contentType', 64);
  if (s === undefined) return undefined;
  const t = s.toLowerCase().split(';')[0].trim();
  const c = (CONTENT_TYPES as readonly string[]).includes(t) ? (t as ContentType) : CONTENT_TYPE_ALIASES[t];
  if (!c) throw badRequest('bad_contenttype', `contentType must be one of ${CONTENT_TYPES.join(', ')} (or its MIME type, e.g. application/pdf)`);
  return c;
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], field: string): T | undefined {
  const s = str(v, field, 64);
  if (s === undefined) return undefined;
  if (!allowed.includes(s as T)) throw badRequest(`bad_${field.toLowerCase()}`, `${field} must be one of ${allowed.join(', ')}`);
  return s as T;
}

/** "1-3,5": the shape, pages counted from 1, and every range going upwards. */
function validPageRanges(s: string): boolean {
  if (!PAGE_RANGES.test(s)) return false;
  return s.split(',').every((r) => {
    const [a, b = a] = r.split('-').map(Number);
    return a >= 1 && b >= a;
  });
}

/** With exactly one printer, a job that names none goes to it. */
export function defaultPrinter(printers: PrinterDirectory): PrinterRecord | undefined {
  const list = printers.list();
  return list.length === 1 ? list[0] : undefined;
}

/** Checks every metadata field; unknown printer is 404, everything else malformed is 400. */
export function validateJob(printers: PrinterDirectory, meta: JobFields): ValidJob {
  const jobID = str(meta.jobID, 'jobID', 64);
  if (jobID !== undefined && !UUID.test(jobID)) throw badRequest('bad_job_id', `jobID must be a UUID like 3f2c8a4e-5b7d-4c1a-9e2f-0a1b2c3d4e5f, got "${jobID.slice(0, 64)}"`);
  const named = str(meta.printer, 'printer', 512);
  const printerName = named ?? defaultPrinter(printers)?.id;
  const names = () => printers.list().map((p) => p.name);
  if (!printerName) {
    if (!printers.list().length) throw badRequest('missing_printer', 'no printer given and no printer is configured; add one first');
    throw badRequest('missing_printer', `no printer given, and this box has ${names().length}: ${names().join(', ')}; name one in "printer" (or "queue")`, { printers: names() });
  }
  const printer = printers.find(printerName);
  // Never the default printer for a name that matches nothing: a job meant for another ward must not print here.
  if (!printer) throw new ApiError(404, 'printer_not_found', `no printer "${printerName.slice(0, 128)}"; the printers are: ${names().join(', ') || '(none)'}`, { printers: names() });
  const copiesRaw = meta.copies ?? printer.defaults.copies ?? 1;
  const copies = Number(copiesRaw);
  if (!Number.isInteger(copies) || copies < 1 || copies > 999) throw badRequest('bad_copies', 'copies must be a whole number from 1 to 999');
  const pageRanges = str(meta.pageRanges, 'pageRanges', 256) ?? printer.defaults.pageRanges;
  if (pageRanges !== undefined && !validPageRanges(pageRanges.replace(/\s/g, ''))) throw badRequest('bad_page_ranges', 'pageRanges must look like "1-3,5": pages from 1, each range upwards');
  const statusURL = str(meta.statusURL, 'statusURL', 2048);
  if (statusURL !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(statusURL);
    } catch {
      /* reported below */
    }
    if (!u || !['http:', 'https:'].includes(u.protocol)) throw badRequest('bad_status_url', 'statusURL must be an http or https URL');
  }
  let finishings: string[] | undefined;
  if (meta.finishings !== undefined && meta.finishings !== '') {
    const list = Array.isArray(meta.finishings) ? meta.finishings : String(meta.finishings).split(',');
    finishings = list.map((f, i) => str(String(f).trim(), `finishings[${i}]`, 64)!).filter(Boolean);
  }
  const options: JobOptions = {
    copies,
    color: bool(meta.color, 'color') ?? printer.defaults.color,
    duplex: duplexOf(meta.duplex) ?? printer.defaults.duplex,
    media: mediaOf(meta.media) ?? printer.defaults.media,
    orientation: oneOf(meta.orientation, ORIENTATIONS, 'orientation') ?? printer.defaults.orientation,
    pageRanges: pageRanges?.replace(/\s/g, ''),
    finishings: finishings ?? printer.defaults.finishings,
    tray: str(meta.tray, 'tray', 64) ?? printer.defaults.tray,
  };
  for (const k of Object.keys(options) as (keyof JobOptions)[]) if (options[k] === undefined) delete options[k];
  return {
    jobID: jobID?.toLowerCase(),
    printerId: printer.id,
    title: str(meta.title, 'title') ?? 'untitled',
    user: str(meta.user, 'user', 128) ?? 'anonymous',
    contentType: contentTypeOf(meta.contentType) ?? printer.defaults.contentType,
    options,
    statusURL,
    batchID: batchIdOf(meta.batchID),
  };
}

function batchIdOf(v: unknown): string | undefined {
  const s = str(v, 'batchID', 128);
  if (s !== undefined && !BATCH_ID.test(s)) throw badRequest('bad_batch_id', 'batchID must be 1–128 letters, digits, ".", "_", ":" or "-" (a UUID fits)');
  return s;
}

/** Guesses the language from the first bytes when the client did not say. */
export function sniff(head: Buffer): ContentType {
  const s = head.toString('latin1');
  if (s.startsWith('%PDF-')) return 'pdf';
  if (s.startsWith('%!')) return 'postscript';
  if (s.startsWith('\x1b%-12345X') || s.startsWith('\x1bE')) return 'pcl';
  if (s.startsWith('RaS2')) return 'pwg-raster';
  if (s.startsWith('UNIRAST')) return 'urf';
  if (s.startsWith('\xff\xd8\xff')) return 'jpeg';
  if (s.startsWith('\x89PNG\r\n\x1a\n')) return 'png';
  if (/^\s*\^XA/.test(s)) return 'zpl';
  return 'raw';
}
