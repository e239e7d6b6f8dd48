// The HTTP API's intake: reads a multipart upload (fields before or after the file) and seals the file as it arrives.
import type { FastifyRequest } from 'fastify';
import type { MultipartFile, MultipartValue } from '@fastify/multipart';
import { ApiError, badRequest } from '../system/errors.js';
import type { Received } from '../spool/contract.js';
import type { JobFields, ValidJob } from './options.js';
import type { JobIntake } from './accept.js';

/** Sets one received field on the job, under its printbox name. An unknown name is a 400: nothing is silently dropped. */
function addField(intake: JobIntake, meta: JobFields, name: string, value: unknown): void {
  if (name === 'metadata') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(String(value));
    } catch {
      throw badRequest('bad_metadata', 'the metadata part is not valid JSON');
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw badRequest('bad_metadata', 'the metadata part must be a JSON object');
    for (const [k, v] of Object.entries(parsed)) addField(intake, meta, k, v);
    return;
  }
  const field = intake.fieldFor(name);
  if (field === null) return; // the site's fieldAliases says: accept this one and ignore it
  if (field === undefined) {
    throw badRequest('unknown_field', `unknown field "${name.slice(0, 64)}"; printbox takes ${intake.knownFields().join(', ')}. To accept it, map it in the config's fieldAliases (e.g. {"${name.slice(0, 64)}": null} to ignore it)`, { field: name.slice(0, 64) });
  }
  const prev = meta[field];
  if (prev !== undefined && JSON.stringify(prev) !== JSON.stringify(value)) {
    throw badRequest('conflicting_fields', `the job's ${field} is given twice with different values (field "${name.slice(0, 64)}")`, { field: name.slice(0, 64) });
  }
  meta[field] = value;
}

/** A form field or the metadata part: job metadata is small, so anything bigger is refused while it streams in. */
export const FIELD_LIMIT = 64 * 1024;

async function readMetadataPart(stream: AsyncIterable<Buffer>, budget: { left: number }): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += chunk.length;
    if (total <= FIELD_LIMIT) chunks.push(chunk);
    else {
      // Keep nothing more; read on (within the drain budget) so that the client gets to read the 413.
      chunks.length = 0;
      budget.left -= chunk.length;
      if (budget.left < 0) break;
    }
  }
  if (total > FIELD_LIMIT) throw new ApiError(413, 'metadata_too_large', `the metadata part is larger than ${FIELD_LIMIT / 1024} KiB`);
  return Buffer.concat(chunks).toString('utf8');
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
export async function readUpload(intake: JobIntake, req: FastifyRequest): Promise<{ job: ValidJob; received: Received }> {
  if (!req.isMultipart()) throw new ApiError(415, 'not_multipart', 'post the job as multipart/form-data with a "file" part');
  const meta: JobFields = {};
  let received: Received | undefined;
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
          // busboy stops at fieldSize (FIELD_LIMIT) and says so; a cut field is refused, never used cut.
          if ((part as MultipartValue).valueTruncated) throw new ApiError(413, 'field_too_large', `form field "${part.fieldname.slice(0, 64)}" is larger than ${FIELD_LIMIT / 1024} KiB`);
          addField(intake, meta, part.fieldname, (part as MultipartValue).value);
          continue;
        }
        if (file.fieldname === 'metadata') {
          addField(intake, meta, 'metadata', await readMetadataPart(file.file, budget));
          continue;
        }
        if (file.fieldname !== 'file') throw badRequest('unexpected_file', `unexpected file part "${file.fieldname.slice(0, 64)}"; the document goes in "file"`);
        if (received) throw badRequest('too_many_files', 'one job takes exactly one "file" part');
        const fieldsFirst = Object.keys(meta).length > 0;
        if (fieldsFirst) intake.validate(meta); // fail fast when the fields came first
        // Hashed on the way in when a jobID is given or may still come (fields after the file); a job whose
        // fields came first without one gets its ID here, and no repeat can name it.
        received = await intake.receive(file.file, { digest: !fieldsFirst || meta.jobID !== undefined });
        if (file.file.truncated) throw new ApiError(413, 'document_too_large', `document is larger than the limit of ${intake.maxDocumentBytes} bytes`);
      } catch (err) {
        failure = err;
        if (file && !file.file.readableEnded) await drain(file.file, budget);
      }
    }
    if (failure) throw failure;
    if (!received) throw badRequest('missing_file', 'the request has no "file" part');
    return { job: intake.validate(meta), received };
  } catch (err) {
    if (received) await intake.discard(received);
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
