// IPP / IPPS driver (ipp://host:631/ipp/print): Print-Job over HTTP(S), options checked against the printer, job state polled to completion.
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGzip } from 'node:zlib';
import { MIME_TYPES, type ContentType, type Driver, type DriverFactory, type JobOptions, type OutboundJob, type Outcome, type PrinterStatus } from './contract.js';
import {
  attr,
  collection,
  decodeMessage,
  encodeMessage,
  findAttribute,
  GROUP,
  groupValues,
  OPERATION,
  statusName,
  TAG,
  type IppAttribute,
  type IppMessage,
  type IppRange,
  type IppValue,
} from './ipp-codec.js';
import { networkOutcome } from './raw.js';
import { hostPort, readParams } from './uri.js';

const PARAMS = [
  { name: 'confirmTimeout', type: 'integer', default: 120000, description: 'Milliseconds to wait for the printer to report the job completed before settling for "sent" (0 = do not wait)' },
  { name: 'pollInterval', type: 'integer', default: 2000, description: 'Milliseconds between job-state queries while waiting for completion' },
  { name: 'requestTimeout', type: 'integer', default: 30000, description: 'Milliseconds an IPP request may stall (no bytes either way) before it is given up' },
  { name: 'capsMaxAge', type: 'integer', default: 60000, description: 'Milliseconds the printer\'s capabilities (Get-Printer-Attributes) are reused before asking again' },
  { name: 'gzip', type: 'boolean', default: true, description: 'Send PWG and Apple raster gzip\'d where the printer lists gzip in compression-supported, as CUPS does (a 13 MiB raster job becomes ~1 MiB on the wire); turn off for a printer on a fast link that is slow to inflate' },
  { name: 'chunked', type: 'boolean', default: false, description: 'Send the document with chunked transfer encoding instead of a Content-Length' },
  { name: 'tlsVerify', type: 'boolean', default: false, description: 'ipps only: verify the printer\'s TLS certificate (printers usually ship self-signed ones)' },
  { name: 'tlsFingerprint', type: 'string', description: 'ipps only: the SHA-256 fingerprint the printer\'s certificate must have (printbox pins it when the printer is added: trust on first use)' },
] as const satisfies Driver['schema']['params'];

/** IPP document-format for each printbox content type; anything not listed goes as application/octet-stream. */
export const DOCUMENT_FORMATS: Partial<Record<ContentType, string>> = Object.fromEntries(
  (['pdf', 'postscript', 'pcl', 'pwg-raster', 'urf', 'jpeg', 'png', 'text'] as const).map((t) => [t, MIME_TYPES[t]]),
);

const SIDES = { none: 'one-sided', 'long-edge': 'two-sided-long-edge', 'short-edge': 'two-sided-short-edge' } as const;
const ORIENTATION = { portrait: 3, landscape: 4, 'reverse-landscape': 5, 'reverse-portrait': 6 } as const;
/** finishings enum values (RFC 8011 §5.2.6, PWG 5100.1). */
export const FINISHINGS: Record<string, number> = {
  none: 3, staple: 4, punch: 5, cover: 6, bind: 7, 'saddle-stitch': 8, 'edge-stitch': 9, fold: 10, trim: 11, bale: 12,
  'booklet-maker': 13, 'jog-offset': 14, coat: 15, laminate: 16,
  'staple-top-left': 20, 'staple-bottom-left': 21, 'staple-top-right': 22, 'staple-bottom-right': 23,
  'edge-stitch-left': 24, 'edge-stitch-top': 25, 'edge-stitch-right': 26, 'edge-stitch-bottom': 27,
  'staple-dual-left': 28, 'staple-dual-top': 29, 'staple-dual-right': 30, 'staple-dual-bottom': 31,
  'punch-top-left': 70, 'punch-bottom-left': 71, 'punch-top-right': 72, 'punch-bottom-right': 73,
  'punch-dual-left': 74, 'punch-dual-top': 75, 'punch-dual-right': 76, 'punch-dual-bottom': 77,
};
/** Common paper names → PWG 5101.1 self-describing media names. */
const MEDIA_ALIASES: Record<string, string> = {
  a3: 'iso_a3_297x420mm', a4: 'iso_a4_210x297mm', a5: 'iso_a5_148x210mm', a6: 'iso_a6_105x148mm', b5: 'iso_b5_176x250mm',
  letter: 'na_letter_8.5x11in', legal: 'na_legal_8.5x14in', tabloid: 'na_ledger_11x17in', ledger: 'na_ledger_11x17in',
  executive: 'na_executive_7.25x10.5in', dl: 'iso_dl_110x220mm', com10: 'na_number-10_4.125x9.5in',
};
const JOB_STATES: Record<number, string> = { 3: 'pending', 4: 'pending-held', 5: 'processing', 6: 'processing-stopped', 7: 'canceled', 8: 'aborted', 9: 'completed' };
const PRINTER_STATES: Record<number, string> = { 3: 'idle', 4: 'processing', 5: 'stopped' };

/** IPP status codes after which the same request may well succeed later. */
const TRANSIENT_STATUS = new Set([0x0405, 0x0500, 0x0502, 0x0504, 0x0505, 0x0506, 0x0507]);
const MAX_RESPONSE = 16 * 1024 * 1024;

/** An IPP-level failure as a value: `code` says which, `status` carries the IPP or HTTP status. */
export class IppError extends Error {
  constructor(public code: string, message: string, public status?: number) {
    super(message);
  }
}

/** Where a printer URI points: the HTTP(S) endpoint and the printer-uri to name in requests. */
interface PrinterTarget {
  printerUri: string;
  host: string;
  port: number;
  path: string;
  tls: boolean;
}

interface Io {
  timeoutMs: number;
  tlsVerify: boolean;
  /** ipps: the pinned certificate fingerprint; a connection to any other certificate carries no byte. */
  pin?: string;
  signal: AbortSignal;
}

export function printerTarget(uri: URL): PrinterTarget {
  const tls = uri.protocol === 'ipps:';
  const { host, port } = hostPort(uri, 631);
  const path = uri.pathname && uri.pathname !== '' ? uri.pathname : '/ipp/print';
  // printer-uri names the printer as the printer itself knows it: no printbox parameters, no fragment.
  return { printerUri: `${tls ? 'ipps' : 'ipp'}://${uri.host}${path}`, host, port, path, tls };
}

/* ------------------------------------------------------------------ HTTP transport */

const bareFingerprint = (f: string) => f.replace(/[^0-9a-f]/gi, '').toUpperCase();

/**
 * An agent that hands a connection to the request only once the printer's certificate matched the pin, so
 * neither the IPP request nor the document goes to an impostor.
 */
function pinnedAgent(pin: string, verify: boolean): https.Agent {
  const agent = new https.Agent({ keepAlive: false });
  type Done = (err: Error | null, socket?: tls.TLSSocket) => void;
  (agent as unknown as { createConnection: (o: tls.ConnectionOptions, done: Done) => undefined }).createConnection = (o, done) => {
    const socket = tls.connect({ ...o, rejectUnauthorized: verify });
    const fail = (err: Error) => {
      socket.destroy();
      done(err);
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      socket.off('error', fail);
      const now = socket.getPeerCertificate().fingerprint256 ?? '';
      if (bareFingerprint(now) !== bareFingerprint(pin)) return fail(Object.assign(new Error(`the printer's TLS certificate changed: pinned ${pin}, now ${now}`), { code: 'tls_fingerprint_changed' }));
      done(null, socket);
    });
    return undefined;
  };
  return agent;
}

/** One IPP request/response over HTTP(S) POST; the document (if any) streams after the IPP header, never buffered. */
export function ippRequest(t: PrinterTarget, msg: IppMessage, io: Io, document?: { open(): Readable; size: number; chunked: boolean }): Promise<IppMessage> {
  const header = encodeMessage(msg);
  const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/ipp', Accept: 'application/ipp' };
  if (!document?.chunked) headers['Content-Length'] = header.length + (document?.size ?? 0);
  return new Promise((resolve, reject) => {
    let settled = false;
    let response: http.IncomingMessage | undefined;
    const options: https.RequestOptions = { host: t.host, port: t.port, path: t.path, method: 'POST', headers, agent: false, signal: io.signal };
    if (t.tls) options.rejectUnauthorized = io.tlsVerify;
    if (t.tls && io.pin) options.agent = pinnedAgent(io.pin, io.tlsVerify);
    const req = (t.tls ? https : http).request(options);
    const settle = (err: Error | undefined, value?: IppMessage) => {
      if (settled) return;
      settled = true;
      req.destroy(); // one connection per request: nothing lingers, and an early answer stops the upload
      if (err) reject(err);
      else resolve(value!);
    };
    req.setTimeout(io.timeoutMs, () => settle(Object.assign(new Error(`printer did not answer within ${io.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (err) => {
      // A printer may answer (e.g. with an error status) and close before taking the whole document: its answer wins.
      if (!response) settle(err);
    });
    req.on('response', (res) => {
      response = res;
      if (res.statusCode !== 200) {
        res.resume();
        return settle(new IppError('ipp_http_status', `printer answered HTTP ${res.statusCode} ${res.statusMessage ?? ''}`.trim(), res.statusCode));
      }
      const chunks: Buffer[] = [];
      let length = 0;
      res.on('data', (c: Buffer) => {
        length += c.length;
        if (length > MAX_RESPONSE) settle(new IppError('ipp_response_too_large', `IPP response larger than ${MAX_RESPONSE} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => {
        try {
          settle(undefined, decodeMessage(Buffer.concat(chunks)));
        } catch (err) {
          settle(err as Error);
        }
      });
      res.on('error', (err) => settle(err));
      res.on('close', () => {
        if (!res.complete) settle(Object.assign(new Error('printer closed the connection in the middle of its answer'), { code: 'ECONNRESET' }));
      });
    });
    if (!document) {
      req.end(header);
      return;
    }
    req.write(header);
    // A size of -1 (a document still being converted) goes chunked and has no recorded size to hold it to.
    (document.size >= 0 ? pipeline(document.open(), sizeGuard(document.size), req) : pipeline(document.open(), req)).catch((err) => {
      if (!response) settle(err);
    });
  });
}

/** Passes the document through and fails if it is not exactly the size the spool recorded (a Content-Length must not lie). */
function sizeGuard(expected: number): Transform {
  let seen = 0;
  const mismatch = () => new IppError('document_size_mismatch', `document has ${seen} bytes, the spool recorded ${expected}`);
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      seen += chunk.length;
      if (seen > expected) return cb(mismatch());
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      cb(seen === expected ? null : mismatch());
    },
  });
}

/**
 * Raster goes gzip'd (IPP `compression`) where the printer lists it, as CUPS sends it: its pages are mostly runs of
 * white and shrink several times over; PDF, PostScript and PCL are already compressed inside or barely shrink.
 */
function compressible(type: OutboundJob['contentType']): boolean {
  return type === 'pwg-raster' || type === 'urf';
}

/** The document gzip'd as it streams; still held to its recorded size first, and an error in it breaks the upload. */
function gzipped(job: OutboundJob): Readable {
  const src = job.open();
  // Level 1: raster is mostly runs of one value, which the fastest level already folds (13 MiB → ~1 MiB); level 6
  // made it ~7× smaller again but cost a fifth of the pages per minute in bench/convert.ts (loopback).
  const gz = createGzip({ level: 1, chunkSize: 64 * 1024 });
  const fail = (err: Error) => gz.destroy(err);
  src.on('error', fail);
  if (job.size >= 0) {
    const guard = sizeGuard(job.size);
    guard.on('error', fail);
    src.pipe(guard).pipe(gz);
  } else src.pipe(gz);
  return gz;
}

function operation(code: number, version: number, t: PrinterTarget, user: string | undefined, extra: IppAttribute[] = [], jobGroup: IppAttribute[] = []): IppMessage {
  const op = [
    attr(TAG.charset, 'attributes-charset', 'utf-8'),
    attr(TAG.naturalLanguage, 'attributes-natural-language', 'en'),
    attr(TAG.uri, 'printer-uri', t.printerUri),
  ];
  if (user) op.push(attr(TAG.nameWithoutLanguage, 'requesting-user-name', ippName(user)));
  const groups: IppMessage['groups'] = [{ tag: GROUP.operation, attributes: [...op, ...extra] }];
  if (jobGroup.length) groups.push({ tag: GROUP.job, attributes: jobGroup });
  return { version, code, requestId: nextRequestId(), groups };
}

let requestCounter = Math.floor(Math.random() * 0x7fff0000);
function nextRequestId(): number {
  requestCounter = (requestCounter % 0x7ffffffe) + 1;
  return requestCounter;
}

/** name(MAX) is at most 255 octets; cut on a character boundary. */
function ippName(s: string): string {
  let out = s;
  while (Buffer.byteLength(out) > 255) out = out.slice(0, -1);
  return out || 'untitled';
}

/* ------------------------------------------------------------------ printer capabilities */

export interface PrinterCaps {
  state: string;
  reasons: string[];
  acceptingJobs: boolean;
  formats: string[];
  version: number;
  attrs: Map<string, IppValue[]>;
}

async function getPrinterAttributes(t: PrinterTarget, io: Io): Promise<PrinterCaps> {
  let resp: IppMessage | undefined;
  for (const version of [0x0101, 0x0200]) {
    const req = operation(OPERATION.getPrinterAttributes, version, t, undefined, [attr(TAG.keyword, 'requested-attributes', 'all', 'media-col-database')]);
    resp = await ippRequest(t, req, io);
    if (resp.code !== 0x0503) break; // server-error-version-not-supported: try IPP/2.0
  }
  if (!resp || resp.code >= 0x0100) throw statusError(resp!, 'Get-Printer-Attributes');
  const attrs = groupValues(resp, GROUP.printer);
  const versions = strings(attrs.get('ipp-versions-supported'));
  return {
    state: PRINTER_STATES[attrs.get('printer-state')?.[0] as number] ?? 'unknown',
    reasons: strings(attrs.get('printer-state-reasons')).filter((r) => r !== 'none'),
    acceptingJobs: attrs.get('printer-is-accepting-jobs')?.[0] !== false,
    formats: strings(attrs.get('document-format-supported')),
    version: versions.includes('2.0') ? 0x0200 : 0x0101,
    attrs,
  };
}

function strings(values: IppValue[] | undefined): string[] {
  return (values ?? []).filter((v): v is string => typeof v === 'string');
}

function statusError(resp: IppMessage, what: string): IppError {
  const message = findAttribute(resp, 'status-message', GROUP.operation)?.values[0];
  return new IppError('ipp_status', `${what}: ${statusName(resp.code)}${typeof message === 'string' && message ? ` (${message})` : ''}`, resp.code);
}

/* ------------------------------------------------------------------ job ticket */

/** Normalises a paper name to a PWG media keyword ('A4' → 'iso_a4_210x297mm'). */
export function mediaKeyword(media: string): string {
  return MEDIA_ALIASES[media.toLowerCase().replace(/[\s_-]/g, '')] ?? media;
}

/** media-size in hundredths of a millimetre, read from a PWG self-describing name ('iso_a4_210x297mm'). */
export function mediaSize(keyword: string): { x: number; y: number } | undefined {
  const m = /_(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)(mm|in)$/.exec(keyword);
  if (!m) return undefined;
  const scale = m[3] === 'mm' ? 100 : 2540;
  return { x: Math.round(Number(m[1]) * scale), y: Math.round(Number(m[2]) * scale) };
}

/** '1-3,5' → [{1,3},{5,5}]; undefined if not ascending, overlapping or malformed (RFC 8011 §5.2.7). */
export function parsePageRanges(s: string): IppRange[] | undefined {
  const out: IppRange[] = [];
  for (const part of s.split(',').map((p) => p.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return undefined;
    const lower = Number(m[1]);
    const upper = m[2] === undefined ? lower : Number(m[2]);
    if (lower < 1 || upper < lower || (out.length && lower <= out[out.length - 1].upper)) return undefined;
    out.push({ lower, upper });
  }
  return out.length ? out : undefined;
}

/**
 * Job template attributes for the options, keeping only values the printer says it supports
 * (`*-supported`); every option left out is reported through `warn`.
 */
export function jobTicket(options: JobOptions, supported: Map<string, IppValue[]>, warn: (m: string) => void): IppAttribute[] {
  const out: IppAttribute[] = [];
  const list = (name: string) => supported.get(name) ?? [];
  const offers = (name: string, value: IppValue) => list(name).includes(value);
  const shown = (name: string) => {
    const v = list(name);
    return v.length ? v.map((x) => (typeof x === 'object' && x && 'lower' in x ? `${x.lower}-${x.upper}` : String(x))).join(', ') : 'nothing';
  };

  if (options.copies !== 1) {
    const range = list('copies-supported')[0] as IppRange | undefined;
    if (range && typeof range === 'object' && options.copies >= range.lower && options.copies <= range.upper) out.push(attr(TAG.integer, 'copies', options.copies));
    else warn(`copies=${options.copies} not sent: the printer supports copies ${shown('copies-supported')}`);
  }
  if (options.duplex) {
    const sides = SIDES[options.duplex];
    if (offers('sides-supported', sides)) out.push(attr(TAG.keyword, 'sides', sides));
    else warn(`duplex=${options.duplex} not sent: the printer supports sides ${shown('sides-supported')}`);
  }
  if (options.color !== undefined) {
    const mode = options.color ? 'color' : 'monochrome';
    if (offers('print-color-mode-supported', mode)) out.push(attr(TAG.keyword, 'print-color-mode', mode));
    else warn(`color=${options.color} not sent: the printer supports print-color-mode ${shown('print-color-mode-supported')}`);
  }
  let media: string | undefined;
  if (options.media) {
    const keyword = mediaKeyword(options.media);
    if (offers('media-supported', keyword)) media = keyword;
    else warn(`media=${options.media} not sent: the printer supports media ${shown('media-supported')}`);
  }
  let source: string | undefined;
  if (options.tray) {
    if (offers('media-source-supported', options.tray) && supported.has('media-col-supported')) source = options.tray;
    else warn(`tray=${options.tray} not sent: the printer supports media-source ${shown('media-source-supported')}`);
  }
  if (source) out.push(attr(TAG.begCollection, 'media-col', mediaCol(source, media, list('media-col-supported'))));
  else if (media) out.push(attr(TAG.keyword, 'media', media));
  if (options.orientation) {
    const value = ORIENTATION[options.orientation];
    if (offers('orientation-requested-supported', value)) out.push(attr(TAG.enum, 'orientation-requested', value));
    else warn(`orientation=${options.orientation} not sent: the printer does not support it`);
  }
  if (options.pageRanges) {
    const ranges = parsePageRanges(options.pageRanges);
    if (!ranges) warn(`pageRanges="${options.pageRanges}" not sent: not an ascending list like 1-3,5`);
    else if (list('page-ranges-supported')[0] === true) out.push(attr(TAG.rangeOfInteger, 'page-ranges', ...ranges));
    else warn(`pageRanges=${options.pageRanges} not sent: the printer does not support page-ranges`);
  }
  if (options.finishings?.length) {
    const values: number[] = [];
    for (const name of options.finishings) {
      const value = FINISHINGS[name];
      if (value !== undefined && offers('finishings-supported', value)) values.push(value);
      else warn(`finishing ${name} not sent: the printer does not support it`);
    }
    if (values.length) out.push(attr(TAG.enum, 'finishings', ...values));
  }
  return out;
}

/** media and media-col exclude each other, so a tray request carries the paper size inside media-col. */
function mediaCol(source: string, media: string | undefined, members: IppValue[]) {
  const col = collection(attr(TAG.keyword, 'media-source', source));
  const size = media ? mediaSize(media) : undefined;
  if (size) col.members.unshift(attr(TAG.begCollection, 'media-size', collection(attr(TAG.integer, 'x-dimension', size.x), attr(TAG.integer, 'y-dimension', size.y))));
  if (media && members.includes('media-size-name')) col.members.push(attr(TAG.keyword, 'media-size-name', media));
  return col;
}

/* ------------------------------------------------------------------ outcomes */

function statusOutcome(resp: IppMessage, what: string): Outcome {
  const reason = statusError(resp, what).message;
  if (TRANSIENT_STATUS.has(resp.code) || (resp.code >= 0x0500 && ![0x0501, 0x0503, 0x0508, 0x0509].includes(resp.code))) return { kind: 'retry', reason };
  return { kind: 'fail', reason };
}

function errorOutcome(err: unknown, what: string): Outcome {
  const e = err as IppError;
  if (e?.code === 'ipp_status' && e.status !== undefined) {
    const reason = `${what}: ${e.message}`;
    return TRANSIENT_STATUS.has(e.status) || e.status >= 0x0500 ? { kind: 'retry', reason } : { kind: 'fail', reason };
  }
  if (e?.code === 'ipp_http_status') {
    const s = e.status ?? 0;
    // 426 = the printer wants TLS: ipp:// will never work, the URI must say ipps://.
    const permanent = s >= 400 && s < 500 && s !== 408 && s !== 429;
    return { kind: permanent ? 'fail' : 'retry', reason: `${what}: ${e.message}${s === 426 ? ' (use ipps://)' : ''}` };
  }
  // Not retried by itself: someone else may be answering at the printer's address. An admin looks, then accepts the new certificate.
  if ((e as { code?: string })?.code === 'tls_fingerprint_changed') return { kind: 'retry', reason: `${what}: ${e.message}; an admin must accept the new certificate`, stop: true };
  if (e?.code === 'document_size_mismatch' || e?.code === 'ipp_unencodable') return { kind: 'fail', reason: `${what}: ${e.message}` };
  return networkOutcome(err, what);
}

interface JobStatus {
  state: number;
  reasons: string[];
  message?: string;
}

function jobStatus(resp: IppMessage): JobStatus | undefined {
  const job = groupValues(resp, GROUP.job);
  const state = job.get('job-state')?.[0];
  if (typeof state !== 'number') return undefined;
  const message = job.get('job-state-message')?.[0];
  return { state, reasons: strings(job.get('job-state-reasons')).filter((r) => r !== 'none'), message: typeof message === 'string' && message ? message : undefined };
}

function describe(jobId: number, s: JobStatus): string {
  const reasons = s.reasons.length ? `: ${s.reasons.join(', ')}` : '';
  return `job ${jobId} ${JOB_STATES[s.state] ?? `state ${s.state}`}${reasons}${s.message ? ` (${s.message})` : ''}`;
}

/** A final job state as an outcome; undefined while the job is still on its way. */
function finalOutcome(jobId: number, s: JobStatus): Outcome | undefined {
  if (s.state === 9) return { kind: 'confirmed', detail: describe(jobId, s) };
  if (s.state === 7 || s.state === 8) return { kind: 'fail', reason: `printer ${describe(jobId, s)}` };
  return undefined;
}

/* ------------------------------------------------------------------ the driver */

export const createIppDriver: DriverFactory = (ctx) => {
  const capsCache = new Map<string, { caps: PrinterCaps; at: number }>();

  async function capabilities(t: PrinterTarget, io: Io, maxAge: number): Promise<PrinterCaps> {
    const hit = capsCache.get(t.printerUri);
    // A stopped printer is asked again every time: it may have been started meanwhile.
    if (hit && Date.now() - hit.at < maxAge && hit.caps.acceptingJobs && hit.caps.state !== 'stopped') return hit.caps;
    const caps = await getPrinterAttributes(t, io);
    capsCache.set(t.printerUri, { caps, at: Date.now() });
    return caps;
  }

  /** Polls Get-Job-Attributes until a final state, the deadline, or cancellation; never claims more than it saw. */
  async function awaitCompletion(t: PrinterTarget, jobId: number, first: JobStatus | undefined, version: number, p: Params, signal: AbortSignal): Promise<Outcome> {
    const deadline = Date.now() + p.confirmTimeout;
    let last = first;
    let lastError: string | undefined;
    for (let polls = 0; ; polls++) {
      const final = last && finalOutcome(jobId, last);
      if (final) return final;
      const seen = last ? `last seen: ${describe(jobId, last)}` : lastError ? `last error: ${lastError}` : 'no job state seen';
      if (signal.aborted) return { kind: 'sent', detail: `job ${jobId} accepted by the printer; stopped waiting for completion (${seen})` };
      const left = deadline - Date.now();
      if (left <= 0) return { kind: 'sent', detail: `job ${jobId} accepted by the printer; not completed within ${p.confirmTimeout} ms (${seen})` };
      try {
        // Soon at first (a printer that spools completes most jobs within a moment), then every pollInterval.
        await sleep(Math.min(p.pollInterval, 250 * 2 ** polls, left), undefined, { signal });
      } catch {
        continue; // aborted: reported on the next turn
      }
      const req = operation(OPERATION.getJobAttributes, version, t, undefined, [
        attr(TAG.integer, 'job-id', jobId),
        attr(TAG.keyword, 'requested-attributes', 'job-state', 'job-state-reasons', 'job-state-message'),
      ]);
      try {
        const resp = await ippRequest(t, req, { timeoutMs: Math.max(1000, Math.min(p.requestTimeout, deadline - Date.now())), tlsVerify: p.tlsVerify, pin: p.tlsFingerprint, signal });
        if (resp.code === 0x0406 || resp.code === 0x0407) return { kind: 'sent', detail: `job ${jobId} accepted by the printer, which no longer knows it (${statusName(resp.code)})` };
        if (resp.code >= 0x0100) lastError = statusError(resp, 'Get-Job-Attributes').message;
        else last = jobStatus(resp) ?? last;
      } catch (err) {
        // The job is already at the printer: a hiccup while asking about it must not resend it.
        lastError = (err as Error).message;
      }
    }
  }

  const driver: Driver = {
    scheme: 'ipp',
    schema: { scheme: 'ipp', title: 'IPP / IPPS (Internet Printing Protocol)', uriTemplate: 'ipp://host:631/ipp/print', params: [...PARAMS] },

    async send(job: OutboundJob, signal: AbortSignal): Promise<Outcome> {
      let p: Params;
      let t: PrinterTarget;
      try {
        p = readParams(job.uri, [...PARAMS]) as unknown as Params;
        t = printerTarget(job.uri);
      } catch (err) {
        return { kind: 'fail', reason: (err as Error).message };
      }
      const io: Io = { timeoutMs: p.requestTimeout, tlsVerify: p.tlsVerify, pin: p.tlsFingerprint, signal };
      let caps: PrinterCaps;
      try {
        caps = await capabilities(t, io, p.capsMaxAge);
      } catch (err) {
        return errorOutcome(err, `cannot ask ${t.printerUri} for its attributes`);
      }
      const reasons = caps.reasons.length ? ` (${caps.reasons.join(', ')})` : '';
      if (!caps.acceptingJobs) return { kind: 'retry', reason: `printer ${t.printerUri} is not accepting jobs${reasons}` };
      if (caps.state === 'stopped') return { kind: 'retry', reason: `printer ${t.printerUri} is stopped${reasons}` };

      const format = DOCUMENT_FORMATS[job.contentType] ?? 'application/octet-stream';
      if (caps.formats.length && !caps.formats.includes(format)) {
        return { kind: 'fail', reason: `printer does not accept ${format} (${job.contentType}) documents; it accepts ${caps.formats.join(', ')}` };
      }
      const ticket = jobTicket(job.options, caps.attrs, (m) => job.warn(m));
      const gzip = p.gzip && compressible(job.contentType) && strings(caps.attrs.get('compression-supported')).includes('gzip');
      const request = operation(
        OPERATION.printJob,
        caps.version,
        t,
        job.user,
        [attr(TAG.nameWithoutLanguage, 'job-name', ippName(job.title)), ...(gzip ? [attr(TAG.keyword, 'compression', 'gzip')] : []), attr(TAG.mimeMediaType, 'document-format', format)],
        ticket,
      );
      const document = gzip ? { open: () => gzipped(job), size: -1, chunked: true } : { open: () => job.open(), size: job.size, chunked: p.chunked || job.size < 0 };
      let resp: IppMessage;
      try {
        resp = await ippRequest(t, request, io, document);
      } catch (err) {
        return errorOutcome(err, `sending to ${t.printerUri} failed`);
      }
      if (resp.code >= 0x0100) {
        if (resp.code === 0x040a) capsCache.delete(t.printerUri);
        return statusOutcome(resp, `printer refused the job`);
      }
      for (const a of resp.groups.filter((g) => g.tag === GROUP.unsupported).flatMap((g) => g.attributes)) {
        job.warn(`printer ignored or substituted ${a.name}`);
      }
      const jobId = findAttribute(resp, 'job-id', GROUP.job)?.values[0];
      if (typeof jobId !== 'number') return { kind: 'sent', detail: 'printer accepted the job but named no job-id' };
      ctx.log.debug({ printer: t.printerUri, jobId }, 'ipp job accepted');
      return awaitCompletion(t, jobId, jobStatus(resp), caps.version, p, signal);
    },

    async probe(uri: URL, signal = AbortSignal.timeout(10000)): Promise<PrinterStatus> {
      let t: PrinterTarget;
      let p: Params;
      try {
        t = printerTarget(uri);
        p = readParams(uri, [...PARAMS]) as unknown as Params;
      } catch (err) {
        return { reachable: false, detail: (err as Error).message };
      }
      let caps: PrinterCaps;
      try {
        caps = await getPrinterAttributes(t, { timeoutMs: Math.min(p.requestTimeout, 10000), tlsVerify: p.tlsVerify, pin: p.tlsFingerprint, signal });
      } catch (err) {
        const e = err as IppError;
        return { reachable: e?.code === 'ipp_status' || e?.code === 'ipp_http_status', detail: e?.message ?? String(err) };
      }
      capsCache.set(t.printerUri, { caps, at: Date.now() });
      return {
        reachable: true,
        state: caps.state,
        reasons: caps.reasons,
        formats: caps.formats,
        supported: supportedSummary(caps),
        detail: [caps.attrs.get('printer-make-and-model')?.[0], caps.attrs.get('printer-state-message')?.[0]].filter(Boolean).join(' — ') || undefined,
      };
    },
  };
  return driver;
};

interface Params {
  confirmTimeout: number;
  pollInterval: number;
  requestTimeout: number;
  capsMaxAge: number;
  gzip: boolean;
  chunked: boolean;
  tlsVerify: boolean;
  tlsFingerprint?: string;
}

/** The capabilities a setup page cares about, in printbox's own words where they differ from IPP's. */
function supportedSummary(caps: PrinterCaps): Record<string, unknown> {
  const a = caps.attrs;
  const copies = a.get('copies-supported')?.[0] as IppRange | undefined;
  const finishingNames = Object.fromEntries(Object.entries(FINISHINGS).map(([k, v]) => [v, k]));
  const orientationNames = Object.fromEntries(Object.entries(ORIENTATION).map(([k, v]) => [v, k]));
  return {
    copies: copies && typeof copies === 'object' ? { min: copies.lower, max: copies.upper } : undefined,
    sides: strings(a.get('sides-supported')),
    colorModes: strings(a.get('print-color-mode-supported')),
    media: strings(a.get('media-supported')),
    mediaSources: strings(a.get('media-source-supported')),
    orientations: (a.get('orientation-requested-supported') ?? []).map((v) => orientationNames[v as number] ?? v),
    finishings: (a.get('finishings-supported') ?? []).map((v) => finishingNames[v as number] ?? v),
    pageRanges: a.get('page-ranges-supported')?.[0] === true,
    ippVersions: strings(a.get('ipp-versions-supported')),
    tls: strings(a.get('uri-security-supported')).includes('tls'),
    rasterResolutions: rasterResolutions(a),
    rasterTypes: strings(a.get('pwg-raster-document-type-supported')),
    urf: strings(a.get('urf-supported')),
  };
}

/** Dots per inch the printer takes raster at (PWG raster resolutions, URF's RSnnn[-nnn]), lowest first. */
function rasterResolutions(a: Map<string, IppValue[]>): number[] {
  const out = new Set<number>();
  for (const v of a.get('pwg-raster-document-resolution-supported') ?? []) {
    const r = v as { x?: number; units?: string };
    if (typeof r?.x === 'number') out.add(r.units === 'dpcm' ? Math.round(r.x * 2.54) : r.x);
  }
  for (const u of strings(a.get('urf-supported'))) if (/^RS\d/.test(u)) for (const n of u.slice(2).split('-')) if (Number(n) > 0) out.add(Number(n));
  return [...out].sort((x, y) => x - y);
}
