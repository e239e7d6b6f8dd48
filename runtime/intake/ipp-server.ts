// IPP operations (RFC 8011, IPP Everywhere) on printbox printers: decodes a request with the streaming codec,
// dispatches it to the printer or job it addresses, and ends every job-creating operation in JobIntake.accept.
import type { Logger } from 'pino';
import { GROUP, TAG, attr, encodeMessage, readRequest, type IppAttribute, type IppGroup, type IppMessage, type IppValue } from '../../drivers/ipp-codec.js';
import { ApiError } from '../system/errors.js';
import { isFinal, type JobRecord } from '../spool/jobs.js';
import type { Spool } from '../spool/contract.js';
import type { PrinterRecord } from '../system/state.js';
import { senderFormats } from '../system/printer-capabilities.js';
import { contentTypeOf, deliverableFormats } from '../convert/formats.js';

/** What a sender may send this printer (document-format-supported). */
const formatsFor = (p: PrinterRecord) => senderFormats(deliverableFormats(p.accepts));
/** octet-stream means "look at the first bytes" (sniffed at accept), not the content type raw. */
const contentTypeOfMime = (mime: string) => (mime === 'application/octet-stream' ? undefined : contentTypeOf(mime));
import type { JobIntake } from './accept.js';
import type { JobFields, PrinterDirectory, ValidJob } from './options.js';
import { COMPRESSIONS, decoded } from './compression.js';
import { FINISHINGS, OPERATIONS_SUPPORTED, SIDES, printerAttributes, selectAttributes, type PrinterView } from './ipp-printer-attributes.js';
import { IppJobIds, JOB_CREATED_ATTRIBUTES, jobAttributes, openedJobAttributes, type OpenedJob } from './ipp-jobs.js';

const OP = { cupsGetDefault: 0x4001, cupsGetPrinters: 0x4002, printJob: 0x02, printUri: 0x03, validateJob: 0x04, createJob: 0x05, sendDocument: 0x06, sendUri: 0x07, cancelJob: 0x08, getJobAttributes: 0x09, getJobs: 0x0a, getPrinterAttributes: 0x0b, cancelMyJobs: 0x39, closeJob: 0x3b, identifyPrinter: 0x3c };
export const STATUS = {
  ok: 0x0000,
  okIgnored: 0x0001,
  badRequest: 0x0400,
  forbidden: 0x0401,
  notAuthorized: 0x0403,
  notPossible: 0x0404,
  notFound: 0x0406,
  tooLarge: 0x0408,
  formatNotSupported: 0x040a,
  attributesNotSupported: 0x040b,
  compressionNotSupported: 0x040f,
  compressionError: 0x0410,
  internal: 0x0500,
  operationNotSupported: 0x0501,
  versionNotSupported: 0x0503,
  busy: 0x0507,
  multipleDocumentsNotSupported: 0x0509,
} as const;
/** Operations a caller without credentials may use: what a client reads before it decides to print. */
const OPEN_OPERATIONS = new Set<number>([OP.getPrinterAttributes]);
const OPENED_JOB_TIMEOUT_MS = 60_000; // multiple-operation-time-out

export interface IppCaller {
  /** Who the credentials (or an anonymous address range) say is asking; absent: nobody. */
  principal?: { id: string; name: string; scope: 'submit' | 'admin' };
}

export interface IppExchange {
  /** The printer the request's path names; absent (a POST to "/", as CUPS clients send) it comes from printer-uri. */
  printerName?: string;
  /** ipps://host:port/ipp/print as the client reached it: a printer's URI is this plus its name. */
  uriBase: string;
  webBase: string;
  caller: IppCaller;
  body: AsyncIterable<Buffer>;
  /** The HTTP body was content-encoded (already decoded): the IPP `compression` attribute is then informational. */
  httpDecoded: boolean;
}

export type IppOutcome = { kind: 'reply'; body: Buffer; status: number } | { kind: 'unauthorized' } | { kind: 'malformed'; message: string };

export interface IppDeps {
  intake: JobIntake;
  spool: Pick<Spool, 'get' | 'records' | 'allocSeq' | 'list'>;
  printers: PrinterDirectory;
  /** Live state of a printer's queue, for printer-state and queued-job-count. */
  printerStatus(p: PrinterRecord): Pick<PrinterView, 'state' | 'reasons' | 'message' | 'queued'>;
  cancel(jobId: string, owner?: string): Promise<JobRecord>;
  startedAt: number;
  location(): string;
  log: Logger;
}

class IppError extends Error {
  constructor(readonly status: number, message: string, readonly unsupported: IppAttribute[] = []) {
    super(message);
  }
}

/** A coded printbox error as the IPP status a client understands. */
function fromApiError(err: ApiError): IppError {
  const status =
    err.status === 404 ? STATUS.notFound
    : err.status === 413 ? STATUS.tooLarge
    : err.status === 507 || err.status === 503 ? STATUS.busy
    : err.status === 409 ? STATUS.notPossible
    : err.status === 401 || err.status === 403 ? STATUS.notAuthorized
    : err.status === 400 ? STATUS.attributesNotSupported
    : STATUS.internal;
  return new IppError(status, `${err.code}: ${err.message}`);
}

type Values = Map<string, { tag: number; values: IppValue[] }>;

function groupOf(msg: IppMessage, tag: number): Values {
  const out: Values = new Map();
  for (const g of msg.groups) if (g.tag === tag) for (const a of g.attributes) out.set(a.name, { tag: a.tag, values: a.values });
  return out;
}

const one = (v: Values, name: string) => v.get(name)?.values[0];
const asText = (x: IppValue | undefined) => (typeof x === 'string' ? x : x && typeof x === 'object' && 'text' in x ? x.text : undefined);

export class IppServer {
  readonly ids = new IppJobIds();

  constructor(private deps: IppDeps) {}

  /** Answers one HTTP POST of application/ipp. */
  async handle(ex: IppExchange): Promise<IppOutcome> {
    let msg: IppMessage;
    let document: AsyncIterable<Buffer>;
    try {
      ({ message: msg, document } = await readRequest(ex.body));
    } catch (err) {
      return { kind: 'malformed', message: (err as Error).message };
    }
    try {
      const groups = await this.dispatch(msg, document, ex);
      return this.reply(msg, STATUS.ok, groups);
    } catch (err) {
      if (err === UNAUTHORIZED) {
        await drain(document);
        return { kind: 'unauthorized' };
      }
      const e = err instanceof IppError ? err : err instanceof ApiError ? fromApiError(err) : undefined;
      if (!e) {
        this.deps.log.error({ err, operation: msg.code }, 'IPP request failed');
        return this.reply(msg, STATUS.internal, [], 'internal error; see the appliance log');
      }
      const groups: IppGroup[] = e.unsupported.length ? [{ tag: GROUP.unsupported, attributes: e.unsupported }] : [];
      return this.reply(msg, e.status, groups, e.message);
    }
  }

  private reply(msg: IppMessage, status: number, groups: IppGroup[], message?: string): IppOutcome {
    const op: IppAttribute[] = [attr(TAG.charset, 'attributes-charset', 'utf-8'), attr(TAG.naturalLanguage, 'attributes-natural-language', 'en')];
    if (message) op.push(attr(TAG.textWithoutLanguage, 'status-message', message.slice(0, 255)));
    const version = msg.version >> 8 === 1 || msg.version >> 8 === 2 ? msg.version : 0x0101;
    const body = encodeMessage({ version, code: status, requestId: msg.requestId, groups: [{ tag: GROUP.operation, attributes: op }, ...groups] });
    return { kind: 'reply', body, status };
  }

  private async dispatch(msg: IppMessage, document: AsyncIterable<Buffer>, ex: IppExchange): Promise<IppGroup[]> {
    const major = msg.version >> 8;
    if (major !== 1 && major !== 2) throw new IppError(STATUS.versionNotSupported, `IPP version ${major}.${msg.version & 0xff} is not supported; use 1.1 or 2.0`);
    if (msg.requestId === 0) throw new IppError(STATUS.badRequest, 'request-id must not be 0');
    checkOperationGroup(msg);
    const op = groupOf(msg, GROUP.operation);
    if (ex.printerName === undefined && msg.code === OP.cupsGetPrinters) return this.cupsGetPrinters(msg, op, ex);
    if (ex.printerName === undefined && msg.code === OP.cupsGetDefault) throw new IppError(STATUS.notFound, 'no default printer: name one');
    if (!op.has('printer-uri') && !op.has('job-uri')) throw new IppError(STATUS.badRequest, 'the request has no printer-uri');
    const name = ex.printerName ?? printerNameIn(asText(one(op, 'printer-uri')) ?? asText(one(op, 'job-uri'))) ?? this.printerOfCupsJobUri(asText(one(op, 'job-uri')));
    const printer = name === undefined ? undefined : this.deps.printers.find(name);
    if (!printer || printer.name !== name) throw new IppError(STATUS.notFound, `no printer "${name ?? ''}"`);
    if (!OPERATIONS_SUPPORTED.includes(msg.code)) throw new IppError(STATUS.operationNotSupported, `operation 0x${msg.code.toString(16).padStart(4, '0')} is not supported`);
    if (!OPEN_OPERATIONS.has(msg.code) && !ex.caller.principal) throw UNAUTHORIZED;
    const ctx: Ctx = { msg, op, printer, ex, document, uri: `${ex.uriBase}/${encodeURIComponent(printer.name)}` };
    switch (msg.code) {
      case OP.getPrinterAttributes:
        return this.getPrinterAttributes(ctx);
      case OP.validateJob:
        this.jobFromRequest(ctx);
        return [];
      case OP.printJob:
        return this.printJob(ctx);
      case OP.createJob:
        return this.createJob(ctx);
      case OP.sendDocument:
        return this.sendDocument(ctx);
      case OP.cancelJob:
        return this.cancelJob(ctx);
      case OP.cancelMyJobs:
        return this.cancelMyJobs(ctx);
      case OP.closeJob:
        return this.closeJob(ctx);
      case OP.getJobAttributes:
        return this.getJobAttributes(ctx);
      case OP.getJobs:
        return this.getJobs(ctx);
      case OP.identifyPrinter:
        this.deps.log.info({ printer: printer.name, by: ex.caller.principal?.name }, 'IPP Identify-Printer');
        return [];
      default:
        throw new IppError(STATUS.operationNotSupported, 'operation not supported');
    }
  }

  /** CUPS names jobs ipp://host/jobs/N (lprm, cancel): the printer is the job's. */
  private printerOfCupsJobUri(uri: string | undefined): string | undefined {
    const m = uri ? /\/jobs\/(\d+)$/.exec(uri) : null;
    if (!m) return undefined;
    const id = Number(m[1]);
    const printerId = this.ids.opened.get(id)?.printerId ?? this.ids.find(id, (x) => this.deps.spool.get(x), () => this.deps.spool.records())?.printerId;
    return printerId ? this.deps.printers.find(printerId)?.name : undefined;
  }

  /** CUPS-Get-Printers: what a CUPS client (lpr, lpq, lpstat) asks the server it was pointed at. */
  private cupsGetPrinters(msg: IppMessage, op: Values, ex: IppExchange): IppGroup[] {
    const requested = op.get('requested-attributes')?.values.map(String);
    return this.deps.printers.list().map((printer) => {
      const view = this.view({ msg, op, printer, ex, document: emptyDocument(), uri: `${ex.uriBase}/${encodeURIComponent(printer.name)}` });
      return { tag: GROUP.printer, attributes: selectAttributes([...printerAttributes(view), attr(TAG.enum, 'printer-type', 0x804c)], requested) };
    });
  }

  private view(ctx: Ctx): PrinterView {
    const { printer, ex } = ctx;
    return {
      printer,
      uri: ctx.uri,
      webBase: ex.webBase,
      ...this.deps.printerStatus(printer),
      upSeconds: Math.round((Date.now() - this.deps.startedAt) / 1000),
      startedAt: new Date(this.deps.startedAt),
      configChangedAt: new Date(printer.createdAt),
      location: this.deps.location(),
    };
  }

  private getPrinterAttributes(ctx: Ctx): IppGroup[] {
    const requested = ctx.op.get('requested-attributes')?.values.map(String);
    return [{ tag: GROUP.printer, attributes: selectAttributes(printerAttributes(this.view(ctx)), requested) }];
  }

  /** Job template and operation attributes → printbox job fields, through the one shared validation. */
  private jobFromRequest(ctx: Ctx): { valid: ValidJob; format?: string; compression: string } {
    const { op, printer, ex, msg } = ctx;
    const job = groupOf(msg, GROUP.job);
    const format = asText(one(op, 'document-format'))?.toLowerCase();
    if (format && !formatsFor(printer).includes(format)) {
      throw new IppError(STATUS.formatNotSupported, `document-format ${format} is not supported by ${printer.name}`, [attr(TAG.mimeMediaType, 'document-format', format)]);
    }
    const compression = asText(one(op, 'compression')) ?? 'none';
    if (!(COMPRESSIONS as readonly string[]).includes(compression)) {
      throw new IppError(STATUS.compressionNotSupported, `compression ${compression} is not supported (none, gzip, deflate)`, [attr(TAG.keyword, 'compression', compression)]);
    }
    const fields: JobFields = {
      printer: printer.id,
      title: asText(one(op, 'job-name')) ?? asText(one(op, 'document-name')),
      user: asText(one(op, 'requesting-user-name')) ?? ex.caller.principal?.name,
      contentType: format ? contentTypeOfMime(format) : undefined,
    };
    const bad = (name: string, tag: number, value: IppValue, why: string) => new IppError(STATUS.attributesNotSupported, `${name}: ${why}`, [attr(tag, name, value)]);
    for (const [name, { tag, values }] of job) {
      const v = values[0];
      switch (name) {
        case 'copies':
          fields.copies = v as number;
          break;
        case 'sides':
          if (!(String(v) in SIDES)) throw bad(name, tag, v, 'must be one-sided, two-sided-long-edge or two-sided-short-edge');
          fields.duplex = SIDES[String(v)];
          break;
        case 'print-color-mode':
          fields.color = v === 'color' ? true : v === 'auto' ? undefined : false;
          break;
        case 'media':
          fields.media = asText(v);
          break;
        case 'media-col':
          Object.assign(fields, mediaColFields(v));
          break;
        case 'orientation-requested': {
          const o = { 3: 'portrait', 4: 'landscape', 5: 'reverse-landscape', 6: 'reverse-portrait' }[v as number];
          if (!o) throw bad(name, tag, v, 'must be 3, 4, 5 or 6');
          fields.orientation = o;
          break;
        }
        case 'page-ranges':
          fields.pageRanges = values.map((r) => `${(r as { lower: number }).lower}-${(r as { upper: number }).upper}`).join(',');
          break;
        case 'finishings': {
          const names = values.map((x) => FINISHINGS[x as number]).filter(Boolean);
          if (names.length) fields.finishings = names;
          break;
        }
        default:
          // Other template attributes (print-quality, printer-resolution, output-bin …) are the printer's business.
          break;
      }
    }
    let valid: ValidJob;
    try {
      valid = this.deps.intake.validate(fields);
    } catch (err) {
      if (err instanceof ApiError && err.status === 400) {
        const name = { bad_copies: 'copies', bad_page_ranges: 'page-ranges', bad_duplex: 'sides', bad_orientation: 'orientation-requested' }[err.code];
        throw new IppError(STATUS.attributesNotSupported, `${err.code}: ${err.message}`, name && job.has(name) ? [{ name, tag: job.get(name)!.tag, values: job.get(name)!.values }] : []);
      }
      throw err;
    }
    return { valid, format, compression: ex.httpDecoded ? 'none' : compression };
  }

  private owner(ctx: Ctx): string {
    return ctx.ex.caller.principal!.id;
  }

  /** Seals the document and makes it a job: the answer goes out only once it is durable. */
  private async accept(ctx: Ctx, valid: ValidJob, compression: string): Promise<JobRecord> {
    const { intake } = this.deps;
    let received;
    try {
      received = await intake.receive(decoded(ctx.document, compression));
    } catch (err) {
      if (err instanceof ApiError) throw err; // the disk floor's 507: answered like every API error
      const code = (err as { code?: string }).code;
      if (code === 'document_too_large') throw new IppError(STATUS.tooLarge, `the document is larger than the limit of ${intake.maxDocumentBytes} bytes`);
      if (code === 'insufficient_storage') throw new IppError(STATUS.busy, (err as Error).message);
      if (code?.startsWith('Z_') || /incorrect header check|invalid|unexpected end of file/i.test((err as Error).message)) {
        throw new IppError(STATUS.compressionError, `the document does not decompress as ${compression}: ${(err as Error).message}`);
      }
      throw err;
    }
    const { job } = await intake.accept(valid, received, this.owner(ctx));
    return job;
  }

  private async printJob(ctx: Ctx): Promise<IppGroup[]> {
    const { valid, compression } = this.jobFromRequest(ctx);
    const job = await this.accept(ctx, valid, compression);
    return this.jobGroup(ctx, job, JOB_CREATED_ATTRIBUTES);
  }

  private createJob(ctx: Ctx): IppGroup[] {
    const { valid, format, compression } = this.jobFromRequest(ctx);
    const ippId = this.deps.spool.allocSeq();
    const timer = setTimeout(() => this.ids.opened.delete(ippId), OPENED_JOB_TIMEOUT_MS);
    timer.unref();
    const opened: OpenedJob = { ippId, printerId: ctx.printer.id, valid, owner: this.owner(ctx), documentFormat: format, compression, createdAt: new Date(), timer };
    this.ids.opened.set(ippId, opened);
    return [{ tag: GROUP.job, attributes: selectAttributes(openedJobAttributes(opened, ctx.uri, this.deps.startedAt), JOB_CREATED_ATTRIBUTES) }];
  }

  private async sendDocument(ctx: Ctx): Promise<IppGroup[]> {
    const ippId = this.jobId(ctx);
    const opened = this.ids.opened.get(ippId);
    if (!opened || opened.printerId !== ctx.printer.id || !this.mayTouch(ctx, opened.owner)) {
      const existing = await this.findJob(ctx, ippId);
      if (existing) throw new IppError(STATUS.multipleDocumentsNotSupported, `job ${ippId} already has its document; one document per job`);
      throw new IppError(STATUS.notFound, `no job ${ippId} waiting for a document`);
    }
    const last = one(ctx.op, 'last-document');
    if (typeof last !== 'boolean') throw new IppError(STATUS.badRequest, 'Send-Document needs last-document');
    if (!last) throw new IppError(STATUS.multipleDocumentsNotSupported, 'one document per job: send it with last-document true');
    const format = asText(one(ctx.op, 'document-format'))?.toLowerCase() ?? opened.documentFormat;
    if (format && !formatsFor(ctx.printer).includes(format)) throw new IppError(STATUS.formatNotSupported, `document-format ${format} is not supported`, [attr(TAG.mimeMediaType, 'document-format', format)]);
    const compression = ctx.ex.httpDecoded ? 'none' : (asText(one(ctx.op, 'compression')) ?? 'none');
    if (!(COMPRESSIONS as readonly string[]).includes(compression)) throw new IppError(STATUS.compressionNotSupported, `compression ${compression} is not supported`, [attr(TAG.keyword, 'compression', compression)]);
    this.ids.opened.delete(ippId);
    clearTimeout(opened.timer);
    const valid = { ...opened.valid, contentType: format ? contentTypeOfMime(format) : opened.valid.contentType };
    const job = await this.accept(ctx, valid, compression);
    this.ids.alias(ippId, job.id);
    return this.jobGroup(ctx, job, JOB_CREATED_ATTRIBUTES);
  }

  private async cancelJob(ctx: Ctx): Promise<IppGroup[]> {
    const ippId = this.jobId(ctx);
    const opened = this.ids.opened.get(ippId);
    if (opened && this.mayTouch(ctx, opened.owner)) {
      clearTimeout(opened.timer);
      this.ids.opened.delete(ippId);
      return [];
    }
    const job = await this.findJob(ctx, ippId);
    if (!job) throw new IppError(STATUS.notFound, `no job ${ippId}`);
    if (!this.mayTouch(ctx, job.owner)) throw new IppError(STATUS.notAuthorized, `job ${ippId} belongs to someone else`);
    if (isFinal(job.state)) throw new IppError(STATUS.notPossible, `job ${ippId} is already ${job.state}`);
    await this.deps.cancel(job.id, this.ownerFilter(ctx));
    return [];
  }

  private async cancelMyJobs(ctx: Ctx): Promise<IppGroup[]> {
    const user = asText(one(ctx.op, 'requesting-user-name'));
    const mine = [...this.deps.spool.records()].filter((j) => j.printerId === ctx.printer.id && !isFinal(j.state) && j.owner === this.owner(ctx) && (!user || j.user === user));
    for (const j of mine) await this.deps.cancel(j.id, this.ownerFilter(ctx)).catch(() => undefined);
    for (const [id, o] of this.ids.opened) if (o.owner === this.owner(ctx) && o.printerId === ctx.printer.id) {
      clearTimeout(o.timer);
      this.ids.opened.delete(id);
    }
    return [];
  }

  /** Close-Job: no more documents. An opened job that never got one is dropped (nothing to print). */
  private async closeJob(ctx: Ctx): Promise<IppGroup[]> {
    const ippId = this.jobId(ctx);
    const opened = this.ids.opened.get(ippId);
    if (opened && this.mayTouch(ctx, opened.owner)) {
      clearTimeout(opened.timer);
      this.ids.opened.delete(ippId);
      return [];
    }
    if (!(await this.findJob(ctx, ippId))) throw new IppError(STATUS.notFound, `no job ${ippId}`);
    return [];
  }

  private async getJobAttributes(ctx: Ctx): Promise<IppGroup[]> {
    const ippId = this.jobId(ctx);
    const requested = ctx.op.get('requested-attributes')?.values.map(String);
    const opened = this.ids.opened.get(ippId);
    if (opened && opened.printerId === ctx.printer.id) return [{ tag: GROUP.job, attributes: selectAttributes(openedJobAttributes(opened, ctx.uri, this.deps.startedAt), requested) }];
    const job = await this.findJob(ctx, ippId);
    if (!job || (this.ownerFilter(ctx) && job.owner !== this.ownerFilter(ctx))) throw new IppError(STATUS.notFound, `no job ${ippId}`);
    return this.jobGroup(ctx, job, requested);
  }

  private async getJobs(ctx: Ctx): Promise<IppGroup[]> {
    const which = asText(one(ctx.op, 'which-jobs')) ?? 'not-completed';
    if (!['completed', 'not-completed', 'all'].includes(which)) throw new IppError(STATUS.attributesNotSupported, `which-jobs ${which} is not supported`, [attr(TAG.keyword, 'which-jobs', which)]);
    const limit = (one(ctx.op, 'limit') as number | undefined) ?? Infinity;
    const myJobs = one(ctx.op, 'my-jobs') === true;
    const user = asText(one(ctx.op, 'requesting-user-name'));
    const requested = ctx.op.get('requested-attributes')?.values.map(String) ?? ['job-id', 'job-uri'];
    const owner = this.ownerFilter(ctx);
    const out: JobRecord[] = [];
    // Finished jobs live in the spool's history (on disk): a page of the newest; unfinished ones are in memory.
    const source = which === 'not-completed' ? this.deps.spool.records() : (await this.deps.spool.list({ printerId: ctx.printer.id, owner, newestFirst: true, limit: Math.min(Number.isFinite(limit) ? limit : 500, 500) })).jobs;
    for (const j of source) {
      if (j.printerId !== ctx.printer.id || (owner && j.owner !== owner) || (myJobs && user && j.user !== user)) continue;
      const done = isFinal(j.state);
      if ((which === 'completed' && !done) || (which === 'not-completed' && done)) continue;
      out.push(j);
    }
    // Newest first for finished jobs (what a client shows as history), oldest first for the queue.
    out.sort((a, b) => (which === 'completed' ? b.seq - a.seq : a.seq - b.seq));
    const groups = out.slice(0, limit).map((j) => ({ tag: GROUP.job, attributes: selectAttributes(this.jobAttrs(ctx, j), requested) }));
    if (which !== 'completed') {
      for (const o of this.ids.opened.values()) {
        if (o.printerId !== ctx.printer.id || (owner && o.owner !== owner) || (myJobs && user && o.valid.user !== user)) continue;
        if (groups.length < limit) groups.push({ tag: GROUP.job, attributes: selectAttributes(openedJobAttributes(o, ctx.uri, this.deps.startedAt), requested) });
      }
    }
    return groups;
  }

  private jobAttrs(ctx: Ctx, j: JobRecord): IppAttribute[] {
    return jobAttributes(j, this.ids.idOf(j), ctx.uri, this.deps.startedAt);
  }

  private jobGroup(ctx: Ctx, j: JobRecord, requested?: string[]): IppGroup[] {
    return [{ tag: GROUP.job, attributes: selectAttributes(this.jobAttrs(ctx, j), requested) }];
  }

  /** job-id, or the number at the end of job-uri. */
  private jobId(ctx: Ctx): number {
    const id = one(ctx.op, 'job-id');
    if (typeof id === 'number') return id;
    const uri = asText(one(ctx.op, 'job-uri'));
    const m = uri ? /\/(\d+)$/.exec(uri) : null;
    if (m) return Number(m[1]);
    throw new IppError(STATUS.badRequest, 'the request names no job: send job-id (with printer-uri) or job-uri');
  }

  /** An unfinished job from memory; a finished one from the spool's history (read from disk). */
  private async findJob(ctx: Ctx, ippId: number): Promise<JobRecord | undefined> {
    let j = this.ids.find(ippId, (id) => this.deps.spool.get(id), () => this.deps.spool.records());
    if (!j && !this.ids.isAlias(ippId)) {
      const page = await this.deps.spool.list({ printerId: ctx.printer.id, after: ippId - 1, limit: 1 });
      j = page.jobs[0]?.seq === ippId ? page.jobs[0] : undefined;
    }
    return j && j.printerId === ctx.printer.id ? j : undefined;
  }

  /** Submit tokens see and touch their own jobs only, as on the HTTP API. */
  private ownerFilter(ctx: Ctx): string | undefined {
    return ctx.ex.caller.principal!.scope === 'admin' ? undefined : ctx.ex.caller.principal!.id;
  }

  private mayTouch(ctx: Ctx, owner: string): boolean {
    const f = this.ownerFilter(ctx);
    return !f || f === owner;
  }
}

type Ctx = { msg: IppMessage; op: Values; printer: PrinterRecord; ex: IppExchange; document: AsyncIterable<Buffer>; uri: string };

/** The printer a URI names: …/ipp/print/NAME, …/printers/NAME, with a job number after it or not. */
function printerNameIn(uri: string | undefined): string | undefined {
  const m = uri ? /\/(?:ipp\/print|printers)\/([^/?#]+)/.exec(uri) : null;
  if (!m) return undefined;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return undefined;
  }
}

async function* emptyDocument(): AsyncGenerator<Buffer> {}

const UNAUTHORIZED = Symbol('unauthorized');

/** RFC 8011 §4.1.4: the operation group comes first, with attributes-charset then attributes-natural-language. */
function checkOperationGroup(msg: IppMessage): void {
  const g = msg.groups[0];
  if (!g || g.tag !== GROUP.operation) throw new IppError(STATUS.badRequest, 'the request has no operation attributes');
  const [a, b] = g.attributes;
  if (a?.name !== 'attributes-charset' || a.tag !== TAG.charset) throw new IppError(STATUS.badRequest, 'attributes-charset must be the first operation attribute');
  if (b?.name !== 'attributes-natural-language' || b.tag !== TAG.naturalLanguage) throw new IppError(STATUS.badRequest, 'attributes-natural-language must be the second operation attribute');
  const cs = String(a.values[0]).toLowerCase();
  if (cs !== 'utf-8' && cs !== 'us-ascii') throw new IppError(0x040d, `charset ${cs} is not supported (utf-8)`);
}

/** media-col → media (by size name, or by size when it is one printbox knows) and tray (media-source). */
function mediaColFields(v: IppValue): Partial<JobFields> {
  const c = v as { members?: IppAttribute[] };
  const get = (name: string) => c.members?.find((m) => m.name === name)?.values[0];
  const out: Partial<JobFields> = {};
  const sizeName = asText(get('media-size-name'));
  if (sizeName) out.media = sizeName;
  else {
    const size = get('media-size') as { members?: IppAttribute[] } | undefined;
    const x = size?.members?.find((m) => m.name === 'x-dimension')?.values[0];
    const y = size?.members?.find((m) => m.name === 'y-dimension')?.values[0];
    if (typeof x === 'number' && typeof y === 'number') out.media = `custom_${x}x${y}_${Math.round(x / 100)}x${Math.round(y / 100)}mm`;
  }
  const source = asText(get('media-source'));
  if (source && source !== 'auto') out.tray = source;
  return out;
}

/** Reads what is left of a request we will not use, so the client gets to read the answer (bounded). */
async function drain(document: AsyncIterable<Buffer>, limit = 64 * 1024 * 1024): Promise<void> {
  let n = 0;
  try {
    for await (const c of document) if ((n += c.length) > limit) return;
  } catch {
    /* the client went away */
  }
}
