// One validation of job options for every intake protocol: fields as received in, a ValidJob (or a coded error) out.
import { CONTENT_TYPES, DUPLEX, ORIENTATIONS, type ContentType, type JobOptions } from '../../drivers/contract.js';
import { ApiError, badRequest } from '../system/errors.js';
import type { PrinterRecord } from '../system/state.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
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
  if (['false', '0', 'no', 'monochrome', 'grayscale', 'mono'].includes(s)) return false;
  throw badRequest('bad_field', `${field} must be true or false`);
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
  const printerName = str(meta.printer, 'printer', 128) ?? defaultPrinter(printers)?.id;
  if (!printerName) throw badRequest('missing_printer', 'no printer given and no printer is configured; add one first');
  const printer = printers.find(printerName);
  if (!printer) throw new ApiError(404, 'printer_not_found', `no printer "${printerName}"`);
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
    duplex: oneOf(meta.duplex, DUPLEX, 'duplex') ?? printer.defaults.duplex,
    media: str(meta.media, 'media', 64) ?? printer.defaults.media,
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
    contentType: oneOf(meta.contentType, CONTENT_TYPES, 'contentType') ?? printer.defaults.contentType,
    options,
    statusURL,
    batchID: str(meta.batchID, 'batchID', 128),
  };
}

/** Guesses the language from the first bytes when the client did not say. */
export function sniff(head: Buffer): ContentType {
  const s = head.toString('latin1');
  if (s.startsWith('%PDF-')) return 'pdf';
  if (s.startsWith('%!')) return 'postscript';
  if (s.startsWith('\x1b%-12345X') || s.startsWith('\x1bE')) return 'pcl';
  if (s.startsWith('RaS2')) return 'pwg-raster';
  if (/^\s*\^XA/.test(s)) return 'zpl';
  return 'raw';
}
