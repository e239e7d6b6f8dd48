// Job intake: reads a multipart upload (fields before or after the file), seals the file, validates, accepts.
import type { FastifyRequest } from 'fastify';
import type { MultipartFile, MultipartValue } from '@fastify/multipart';
import { CONTENT_TYPES, DUPLEX, ORIENTATIONS, type ContentType, type JobOptions } from '../../drivers/contract.js';
import { ApiError, badRequest, conflict } from '../system/errors.js';
import type { JobRecord } from '../spool/jobs.js';
import type { Received } from '../spool/local-spool.js';
import type { Appliance } from '../appliance.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PAGE_RANGES = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;
const FIELDS = ['jobID', 'printer', 'title', 'user', 'copies', 'color', 'duplex', 'media', 'orientation', 'pageRanges', 'finishings', 'tray', 'contentType', 'statusURL', 'batchID'] as const;
type Meta = Partial<Record<(typeof FIELDS)[number], unknown>>;

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

/** Checks every metadata field; unknown printer is 404, everything else malformed is 400. */
export function validateMeta(app: Appliance, meta: Meta): ValidJob {
  const jobID = str(meta.jobID, 'jobID', 64);
  if (jobID !== undefined && !UUID.test(jobID)) throw badRequest('bad_job_id', `jobID must be a UUID like 3f2c8a4e-5b7d-4c1a-9e2f-0a1b2c3d4e5f, got "${jobID.slice(0, 64)}"`);
  const printerName = str(meta.printer, 'printer', 128) ?? app.defaultPrinter()?.id;
  if (!printerName) throw badRequest('missing_printer', 'no printer given and no printer is configured; add one first');
  const printer = app.printers.find(printerName);
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

function addField(meta: Meta, name: string, value: unknown): void {
  if (name === 'metadata') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(String(value));
    } catch {
      throw badRequest('bad_metadata', 'the metadata part is not valid JSON');
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw badRequest('bad_metadata', 'the metadata part must be a JSON object');
    for (const [k, v] of Object.entries(parsed)) addField(meta, k, v);
    return;
  }
  if ((FIELDS as readonly string[]).includes(name)) meta[name as keyof Meta] = value;
  // Unknown fields are ignored, as Vasion's API does, so clients can send extra metadata.
}

/** Past an error, the rest of the body is read and thrown away up to this much, so the client can read our reply. */
const DRAIN_LIMIT = 64 * 1024 * 1024;

async function drain(stream: AsyncIterable<Buffer>, budget: { left: number }): Promise<void> {
  for await (const chunk of stream) {
    budget.left -= chunk.length;
    if (budget.left < 0) throw new Error('drain limit reached');
  }
}

/** Reads the whole multipart request. Returns the validated job and the sealed upload. */
export async function readUpload(app: Appliance, req: FastifyRequest): Promise<{ job: ValidJob; received: Received; head: Buffer }> {
  if (!req.isMultipart()) throw new ApiError(415, 'not_multipart', 'post the job as multipart/form-data with a "file" part');
  const meta: Meta = {};
  let received: Received | undefined;
  let head: Buffer = Buffer.alloc(0);
  let failure: unknown;
  const budget = { left: DRAIN_LIMIT };
  try {
    for await (const part of req.parts()) {
      const file = part.type === 'file' ? (part as MultipartFile) : undefined;
      if (failure) {
        // Already failed: keep reading so the client finishes sending and sees the JSON error.
        if (file) await drain(file.file, budget);
        continue;
      }
      try {
        if (!file) {
          addField(meta, part.fieldname, (part as MultipartValue).value);
          continue;
        }
        if (file.fieldname === 'metadata') {
          addField(meta, 'metadata', (await file.toBuffer()).toString('utf8'));
          continue;
        }
        if (file.fieldname !== 'file') throw badRequest('unexpected_file', `unexpected file part "${file.fieldname.slice(0, 64)}"; the document goes in "file"`);
        if (received) throw badRequest('too_many_files', 'one job takes exactly one "file" part');
        if (Object.keys(meta).length) validateMeta(app, meta); // fail fast when the fields came first
        await app.checkDiskSpace();
        received = await app.spool.receive(file.file, app.cfg.maxDocumentBytes);
        head = received.head;
        if (file.file.truncated) throw new ApiError(413, 'document_too_large', `document is larger than the limit of ${app.cfg.maxDocumentBytes} bytes`);
      } catch (err) {
        failure = err;
        if (file && !file.file.readableEnded) await drain(file.file, budget);
      }
    }
    if (failure) throw failure;
    if (!received) throw badRequest('missing_file', 'the request has no "file" part');
    return { job: validateMeta(app, meta), received, head };
  } catch (err) {
    if (received) await app.spool.discard(received);
    throw mapUploadError(failure ?? err);
  }
}

function mapUploadError(err: unknown): unknown {
  const e = err as { code?: string; message?: string; statusCode?: number };
  if (err instanceof ApiError) return err;
  if (e.code === 'document_too_large' || e.code === 'FST_REQ_FILE_TOO_LARGE') return new ApiError(413, 'document_too_large', e.message ?? 'document too large');
  if (e.code === 'insufficient_storage') return new ApiError(507, 'insufficient_storage', e.message!);
  if (e.code === 'FST_PARTS_LIMIT' || e.code === 'FST_FILES_LIMIT' || e.code === 'FST_FIELDS_LIMIT') return badRequest('too_many_parts', e.message ?? 'too many parts');
  if (e.code?.startsWith('FST_') || /multipart|boundary|Unexpected end of form|Malformed part header/i.test(e.message ?? '')) {
    return badRequest('bad_multipart', `the multipart body is malformed: ${e.message}`);
  }
  if (e.code === 'ECONNRESET' || e.code === 'ERR_STREAM_PREMATURE_CLOSE' || /aborted/i.test(e.message ?? '')) return new ApiError(400, 'upload_aborted', 'the upload ended before it was complete');
  return err;
}

/** Same jobID again: the same job when content and metadata match, otherwise a conflict. */
export function sameJob(existing: JobRecord, digest: string, metaDigest: string): JobRecord {
  if (existing.digest === digest && existing.metaDigest === metaDigest) return existing;
  throw conflict('job_conflict', `job ${existing.id} already exists with different content`);
}
