// The conversion stage between the queue and the driver: a job in a format its printer does not take is rendered
// (Ghostscript) into one it does, streamed to the driver, and started ahead of its turn while the previous job prints.
//
// Choices, and why:
// - The result streams to the printer; it is not sealed into the spool. Sealing would write and fsync every
//   rendered byte (a 20-page PWG raster job is ~170 MB at 300 dpi) before the printer sees its first one.
//   The first bytes are rendered ahead and held in RAM, so the printer gets them at once; the rest follows at
//   Ghostscript's pace, with back-pressure (a slow printer pauses gs, it does not grow a buffer).
// - A retry replays the output from RAM when the whole of it was kept (up to `keepBytes`), else renders again.
// - Plaintext exists only in RAM: the decrypted document in an unlinked 0600 tmpfs file (ramfile.ts), the output
//   in pipes and buffers. Tools run with TMPDIR on the same tmpfs.
// - A converter that produces nothing for timeoutMs while its output is wanted is killed and the job fails;
//   time spent paused by a slow printer does not count.
import { Readable } from 'node:stream';
import type { ContentType, JobOptions } from '../../drivers/contract-types.js';
import type { JobRecord } from '../spool/jobs.js';
import type { PrinterRecord } from '../system/state.js';
import { MIME, targetFor } from './formats.js';
import { gsArgs, orientationTurn, pageCounts, paperPoints, type RenderSpec } from './gs.js';
import { dscPages, pdfPages } from './pages.js';
import { jpegToPostScript, pngToPostScript, textToPostScript } from './postscript.js';
import { RamFile } from './ramfile.js';
import { ConvertError, runTool, type ToolRun } from './tool.js';
import { PbmToZpl } from './zpl.js';

export interface ConvertConfig {
  timeoutMs: number;
  concurrency: number;
  memoryBudgetBytes: number;
  ramDir: string;
}

/** What the driver gets instead of the stored document. */
export interface Prepared {
  contentType: ContentType;
  /** The job's options minus those applied in the document (so the driver neither repeats nor warns about them). */
  options: JobOptions;
  /** -1 while the output is still being rendered. */
  size: number;
  bytes?: readonly Buffer[];
  open(): Readable;
  /** The conversion error that broke the stream the driver read, if any (the job then fails with it). */
  error(): Error | null;
  pages?: number;
  sheets?: number;
  /** One line for the job's warnings: what was converted into what. */
  note: string;
}

const RASTERTOPDF = '/usr/lib/cups/filter/rastertopdf';

type Source = () => AsyncIterable<Buffer> | readonly Buffer[];

/**
 * What one running converter costs the box, counted in the render-ahead budget beside documents and output:
 * Ghostscript's own resident size at 300 dpi, measured here at 25 MiB (pxlmono), 27 MiB (ljet4) and 40 MiB
 * (pwgraster, 8-bit grey) for a 20-page office PDF. Without it, two printers rendered four gs at once (two heads,
 * two ahead) while the budget saw only the few MiB of buffers.
 */
const CONVERTER_BYTES = 40 * 1024 * 1024;

/** Wires that need a size before the first byte (LPR's data-file header): their output is rendered whole first. */
const STREAMING = new Set(['raw:', 'ipp:', 'ipps:', 'serial:', 'file:']);

/** One conversion of one job: a gs process, its output so far, and who reads it. */
class Render {
  private chunks: (Buffer | undefined)[] = [];
  private produced = 0;
  private consumed = 0;
  private ended = false;
  private failure: Error | null = null;
  private waiters: (() => void)[] = [];
  private run: ToolRun | null = null;
  private ram: RamFile | null = null;
  private idle: NodeJS.Timeout | null = null;
  private paused = false;
  private reading = false;
  /** Every chunk is still held (output small enough): it can be read again without rendering again. */
  keptAll = true;
  docPages?: number;
  readonly started: Promise<void>;
  readonly key: string;

  constructor(readonly job: JobRecord, readonly spec: RenderSpec, private source: Source, private stage: ConvertStage, readonly ahead: boolean) {
    this.key = renderKey(job, spec);
    stage.converterStarts();
    this.started = this.start().catch((err) => this.fail(err));
  }

  private async start(): Promise<void> {
    const cfg = this.stage.cfg;
    const from = this.job.contentType;
    let input: AsyncIterable<Buffer> | readonly Buffer[] = this.source();
    if (from === 'text' || from === 'jpeg' || from === 'png') {
      const whole = await collect(input, this.stage.cfg.memoryBudgetBytes);
      try {
        if (from === 'text') {
          const t = textToPostScript(whole.toString('utf8'));
          input = [Buffer.from(t.ps, 'latin1')];
          this.docPages = t.pages;
        } else {
          input = [from === 'jpeg' ? jpegToPostScript(whole) : pngToPostScript(whole)];
          this.docPages = 1;
        }
      } catch (err) {
        throw new ConvertError('convert_failed', `the ${from} document cannot be read: ${(err as Error).message}`);
      }
    }
    if (this.spec.to === 'postscript' && from === 'text' && !this.spec.pageList && this.spec.times === 1 && !this.spec.paper && this.spec.duplex === undefined && !this.spec.rotate) {
      // printbox wrote this PostScript itself: nothing left for gs to do.
      for (const b of input as Buffer[]) this.push(b);
      this.finish();
      return;
    }
    let pdfIn = from === 'pdf';
    if (from === 'pwg-raster' || from === 'urf') {
      // What IPP Everywhere and AirPrint senders send: cups-filters' rastertopdf (stdin → stdout, no files) makes a PDF.
      this.ram = await this.rasterToPdf(input);
      pdfIn = true;
    } else {
      this.ram = await RamFile.from(cfg.ramDir, input, cfg.memoryBudgetBytes);
    }
    if (this.spec.rotate) {
      // Turned as a PDF (/Rotate, set by qpdf), so gs fits the turned page to the paper as it does any page.
      // Not held by the render while it goes through the tools (they close it): nothing to release if they fail.
      let ram = this.ram;
      this.ram = null;
      if (!pdfIn) ram = await this.through(ram, 'gs', ['-q', '-dSAFER', '-dBATCH', '-dNOPAUSE', '-sDEVICE=pdfwrite', '-sOutputFile=-', '/dev/fd/3'], `Ghostscript (${from} → PDF, to turn its pages)`);
      pdfIn = true;
      // Flattened into the page (content and box turned, no /Rotate left): gs's page fitting ignores /Rotate.
      this.ram = await this.through(ram, 'qpdf', [`--rotate=+${this.spec.rotate}`, '--flatten-rotation', '/dev/fd/3', '-'], 'qpdf (turning the pages)').catch((err) => {
        throw new ConvertError('convert_failed', `the PDF cannot be read: ${(err as Error).message.replace(/\/dev\/fd\/3: ?/g, '')}`);
      });
    }
    this.stage.hold(this.ram.size);
    // qpdf reads the PDF while gs starts on it: it tells a damaged or locked PDF (gs prints those as blank pages and
    // exits 0) and counts the pages; the output is not complete until it has said yes.
    let checks: Promise<void> = Promise.resolve();
    if (pdfIn) {
      const head = await this.ram.head(1024);
      if (!head.includes('%PDF-')) throw new ConvertError('convert_failed', `the ${from === 'pdf' ? 'document' : 'PDF made from the raster'} is not a PDF (no %PDF- header in its first ${head.length} bytes)`);
      const ram = this.ram;
      checks = pdfPages(ram, cfg.timeoutMs, cfg.ramDir).then(
        (n) => {
          if (n === 0) throw new ConvertError('convert_failed', 'the PDF has no pages');
          this.docPages = n;
        },
        (err) => {
          throw new ConvertError('convert_failed', `the PDF cannot be read: ${(err as Error).message}`);
        },
      );
      checks.catch(() => {});
    } else if (from === 'postscript') {
      this.docPages = dscPages(await this.ram.head(4096), await this.ram.tail(4096));
    }
    if (this.stopped) throw new ConvertError('convert_cancelled', 'conversion cancelled');
    if (this.spec.to === 'pdf' && pdfIn && !this.spec.pageList && this.spec.times === 1 && !this.spec.paper) {
      await checks;
      for await (const b of this.ram.stream()) this.push(b as Buffer);
      this.finish();
      return;
    }
    this.run = runTool('gs', gsArgs(this.spec), { fd3: this.ram.fd, timeoutMs: 24 * 3600 * 1000, what: `Ghostscript (${from} → ${this.spec.to})`, tmpDir: cfg.ramDir });
    let out: Readable = this.run.stdout;
    if (this.spec.to === 'zpl') out = this.run.stdout.pipe(new PbmToZpl(this.job.options.copies > 1 && this.spec.times === 1 ? this.job.options.copies : 1));
    out.on('data', (c: Buffer) => this.push(c));
    out.on('error', (err) => this.fail(new ConvertError('convert_failed', `the ${this.spec.to} output is malformed: ${err.message}`)));
    const ended = new Promise<void>((r) => out.once('end', () => r()));
    this.outStream = out;
    this.armIdle();
    Promise.all([this.run.done, ended, checks]).then(
      () => this.finish(),
      (err) => this.fail(err),
    );
    await checks;
  }

  private async rasterToPdf(input: AsyncIterable<Buffer> | readonly Buffer[]): Promise<RamFile> {
    const cfg = this.stage.cfg;
    // The raster goes in from a RAM file too: fed through a pipe, rastertopdf now and then wrote an empty PDF.
    const raster = await RamFile.from(cfg.ramDir, input, cfg.memoryBudgetBytes);
    const pdf = await this.through(raster, RASTERTOPDF, ['1', 'printbox', 'job', '1', ''], `rastertopdf (${this.job.contentType} → PDF)`, 'stdin');
    if (!pdf.size) {
      await pdf.close();
      throw new ConvertError('convert_failed', 'rastertopdf made no PDF from the raster (no page in it?)');
    }
    return pdf;
  }

  /** Runs one tool over a RAM file (as /dev/fd/3, or its stdin) into a new RAM file; the input is closed either way. */
  private async through(input: RamFile, cmd: string, args: string[], what: string, as: 'fd3' | 'stdin' = 'fd3'): Promise<RamFile> {
    const cfg = this.stage.cfg;
    try {
      const run = runTool(cmd, args, { ...(as === 'fd3' ? { fd3: input.fd } : { stdin: input.fd }), timeoutMs: cfg.timeoutMs, what, tmpDir: cfg.ramDir });
      this.run = run;
      const out = await RamFile.from(cfg.ramDir, run.stdout, cfg.memoryBudgetBytes).catch((err) => {
        run.kill();
        throw err;
      });
      try {
        await run.done;
      } catch (err) {
        await out.close();
        throw err;
      }
      return out;
    } finally {
      await input.close();
    }
  }

  private outStream: Readable | null = null;
  private stopped = false;

  /** Kills gs when it has produced nothing for timeoutMs while its output was wanted. */
  private armIdle(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    if (this.paused || this.ended || this.failure) return;
    this.idle = setTimeout(() => {
      this.fail(new ConvertError('convert_timeout', `Ghostscript (${this.job.contentType} → ${this.spec.to}) produced nothing for ${Math.round(this.stage.cfg.timeoutMs / 1000)} s and was killed`));
    }, this.stage.cfg.timeoutMs);
  }

  private push(c: Buffer): void {
    this.chunks.push(c);
    this.produced += c.length;
    this.stage.hold(c.length);
    if (this.keptAll && this.produced > this.stage.keepBytes && this.reading) this.dropConsumed();
    // Back-pressure: more than the render-ahead share waiting to be read → pause gs (it blocks on its pipe).
    if (this.produced - this.consumed > this.stage.aheadBytes && this.outStream && !this.paused) {
      this.paused = true;
      this.outStream.pause();
    }
    this.armIdle();
    this.notify();
  }

  private dropConsumed(): void {
    this.keptAll = false;
    for (let i = 0; i < this.chunks.length; i++) {
      const c = this.chunks[i];
      if (!c) continue;
      if (this.readAt <= i) break;
      this.stage.release(c.length);
      this.chunks[i] = undefined;
    }
  }

  private readAt = 0;

  private finish(): void {
    if (this.failure || this.ended) return;
    this.ended = true;
    this.stage.converterEnds();
    if (this.idle) clearTimeout(this.idle);
    this.closeInput();
    this.notify();
  }

  fail(err: unknown): void {
    if (this.ended || this.failure) return;
    this.failure = err instanceof Error ? err : new Error(String(err));
    this.stage.converterEnds();
    if (this.idle) clearTimeout(this.idle);
    this.run?.kill();
    this.closeInput();
    this.notify();
  }

  private closeInput(): void {
    if (this.ram) {
      this.stage.release(this.ram.size);
      void this.ram.close();
      this.ram = null;
    }
  }

  private notify(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  get error(): Error | null {
    return this.failure;
  }

  get complete(): boolean {
    return this.ended;
  }

  get size(): number {
    return this.ended && this.keptAll ? this.produced : -1;
  }

  get kept(): Buffer[] | undefined {
    return this.ended && this.keptAll ? (this.chunks as Buffer[]) : undefined;
  }

  /**
   * Waits until the document is known good (qpdf has read the PDF, text and images are decoded) and the converter
   * runs, or has failed: a document that cannot convert opens no printer connection, and the printer hears from
   * us (job ticket, IPP request) while the first page renders, not after.
   */
  async ready(): Promise<void> {
    await this.started;
  }

  /** Waits for the whole output (wires that need its size first). */
  async whole(): Promise<void> {
    await this.started;
    if (this.outStream && this.paused) this.resume();
    for (let i = 0; !this.ended && !this.failure; i++) {
      await new Promise<void>((r) => this.waiters.push(r));
      if (this.paused && this.produced <= this.stage.keepBytes) this.resume();
      if (this.produced > this.stage.keepBytes) this.fail(new ConvertError('convert_too_large', `the converted document is larger than ${Math.round(this.stage.keepBytes / 1048576)} MiB, too large to hold for a printer that needs its size first (LPR)`));
    }
  }

  private resume(): void {
    this.paused = false;
    this.outStream?.resume();
    this.armIdle();
  }

  /** The output as the driver reads it: what is already rendered, then the rest as gs makes it. */
  async *read(): AsyncGenerator<Buffer> {
    this.reading = true;
    if (this.produced > this.stage.keepBytes) this.dropConsumed();
    await this.started;
    for (let i = 0; ; ) {
      if (i < this.chunks.length) {
        const c = this.chunks[i]!;
        if (!this.keptAll) {
          this.chunks[i] = undefined;
          this.stage.release(c.length);
        }
        i++;
        if (i > this.readAt) {
          this.readAt = i;
          this.consumed += c.length;
        }
        if (this.paused && this.produced - this.consumed <= this.stage.aheadBytes / 2) this.resume();
        yield c;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) return;
      if (this.paused) this.resume();
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  get wasRead(): boolean {
    return this.readAt > 0;
  }

  stop(): void {
    this.stopped = true;
    this.fail(new ConvertError('convert_cancelled', 'conversion cancelled'));
    for (const c of this.chunks) if (c) this.stage.release(c.length);
    this.chunks = [];
  }
}

async function collect(src: AsyncIterable<Buffer> | readonly Buffer[], max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of src as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw new ConvertError('convert_too_large', `the document is larger than the conversion memory budget (${Math.round(max / 1048576)} MiB)`);
    parts.push(c);
  }
  return Buffer.concat(parts);
}

function renderKey(job: JobRecord, spec: RenderSpec): string {
  return JSON.stringify([job.id, job.contentType, spec]);
}

export class ConvertStage {
  private renders = new Map<string, Render>(); // by job id: the head's and those rendered ahead
  private held = 0;
  /** Renders whose converter (gs, and the qpdf/rastertopdf steps before it) has not ended yet. */
  private converters = 0;
  readonly aheadBytes: number;
  readonly keepBytes: number;

  constructor(readonly cfg: ConvertConfig) {
    // A few pages of raster: enough that the printer never waits on a job rendered ahead; more only costs memory.
    this.aheadBytes = Math.max(1 << 20, Math.min(8 << 20, Math.floor(cfg.memoryBudgetBytes / (2 * Math.max(1, cfg.concurrency)))));
    this.keepBytes = Math.max(this.aheadBytes, Math.floor(cfg.memoryBudgetBytes / 4));
  }

  hold(n: number): void {
    this.held += n;
  }

  release(n: number): void {
    this.held -= n;
  }

  /** Bytes of plaintext documents and rendered output held in RAM now (for /metrics and tests). */
  converterStarts(): void {
    this.converters++;
  }

  converterEnds(): void {
    this.converters--;
  }

  /** What conversion costs in RAM now: documents and output held, and the converters still running. */
  get committedBytes(): number {
    return this.held + this.converters * CONVERTER_BYTES;
  }

  get heldBytes(): number {
    return this.held;
  }

  get rendering(): number {
    return this.renders.size;
  }

  /** The render this job needs on this printer, or why it cannot be printed there; null: sent as it is. */
  plan(job: JobRecord, printer: PrinterRecord): { spec: RenderSpec } | { fail: string } | null {
    const t = targetFor(job.contentType, printer.accepts);
    if ('unsupported' in t) return { fail: t.unsupported };
    if (!t.convert) return null;
    const o = job.options;
    const carries = carriesTicket(printer, t.to);
    const label = t.to === 'zpl';
    const paper = paperPoints(o.media ?? printer.defaults.media);
    const color = o.color === true || (o.color === undefined && !label && t.to !== 'pcl' && colorCapable(printer));
    const bilevel = t.to === 'pwg-raster' && onlyBlack1(printer.rasterTypes, color);
    const spec: RenderSpec = {
      to: t.to,
      pclxl: (printer.accepts ?? []).includes('application/vnd.hp-pclxl'),
      dpi: printer.resolution ?? (label ? 203 : 300),
      color: color && !bilevel,
      ...(bilevel && { bilevel }),
      paper,
      pageList: o.pageRanges,
      duplex: o.duplex === 'long-edge' || o.duplex === 'short-edge' ? o.duplex : undefined,
      ...(pageTurn(o.orientation, paper) && { rotate: pageTurn(o.orientation, paper) }),
      // ZPL carries copies itself (^PQ); elsewhere the document is rendered again for each copy the wire cannot ask for.
      times: carries || label ? 1 : Math.max(1, Math.min(o.copies, 999)),
    };
    return { spec };
  }

  /** Starts (or finds, if it was rendered ahead) the conversion of the job at the head of its printer's queue. */
  async prepare(job: JobRecord, printer: PrinterRecord, source: Source, signal: AbortSignal): Promise<Prepared | { fail: string } | null> {
    const plan = this.plan(job, printer);
    if (!plan || 'fail' in plan) return plan;
    const { spec } = plan;
    let r = this.renders.get(job.id);
    if (r && (r.key !== renderKey(job, spec) || r.error)) {
      this.forget(job.id);
      r = undefined;
    }
    if (r && r.wasRead && !(r.complete && r.keptAll)) {
      this.forget(job.id); // read once already and not kept: render again
      r = undefined;
    }
    if (!r) {
      r = new Render(job, spec, source, this, false);
      this.renders.set(job.id, r);
    }
    const onAbort = () => this.forget(job.id);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (STREAMING.has(new URL(printer.uri).protocol)) await r.ready();
      else await r.whole();
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    if (r.error) {
      const reason = r.error.message;
      this.forget(job.id);
      return { fail: `cannot convert the ${job.contentType} document to ${MIME[spec.to]} for this printer: ${reason}` };
    }
    const counts = r.docPages !== undefined ? pageCounts(r.docPages, job.options) : undefined;
    const options = strippedOptions(job.options, spec, carriesTicket(printer, spec.to));
    let first = true;
    const render = r;
    let current: Render = r;
    return {
      contentType: spec.to,
      options,
      size: render.size,
      bytes: render.kept,
      pages: counts?.pages,
      sheets: counts?.sheets,
      note: `converted from ${job.contentType} to ${spec.to}${spec.to === 'pcl' ? (spec.pclxl ? ' (PCL XL)' : ' (PCL 5)') : ''}${spec.bilevel ? ' (black_1)' : ''} at ${spec.dpi} dpi`,
      error: () => current.error,
      open: () => {
        // A second read (retry, copies repeated by the driver) replays kept output or renders again.
        if (!first && !(current.complete && current.keptAll)) {
          current.stop();
          current = new Render(job, spec, source, this, false);
          this.renders.set(job.id, current);
        }
        first = false;
        return Readable.from(current.read(), { objectMode: false });
      },
    };
  }

  /** Renders a job that is next in line while the one before it prints; bounded by concurrency and the memory budget. */
  ahead(job: JobRecord, printer: PrinterRecord, source: Source): void {
    if (this.renders.has(job.id)) return;
    let aheadNow = 0;
    for (const r of this.renders.values()) if (r.ahead && !r.complete && !r.error) aheadNow++;
    // Room for all it will take: its converter, its document, the output it may buffer before it is read.
    if (aheadNow >= this.cfg.concurrency || this.committedBytes + CONVERTER_BYTES + job.size + this.aheadBytes > this.cfg.memoryBudgetBytes) return;
    const plan = this.plan(job, printer);
    if (!plan || 'fail' in plan) return;
    this.renders.set(job.id, new Render(job, plan.spec, source, this, true));
  }

  /** Lets go of a job's render (finished, cancelled, moved). */
  forget(jobId: string): void {
    const r = this.renders.get(jobId);
    if (!r) return;
    this.renders.delete(jobId);
    r.stop();
  }

  close(): void {
    for (const id of [...this.renders.keys()]) this.forget(id);
  }
}

/** The printer's wire carries copies/duplex/media itself: IPP attributes, or a PJL ticket around PCL/PostScript/PDF on RAW. */
function carriesTicket(printer: PrinterRecord, to: ContentType): boolean {
  const u = new URL(printer.uri);
  if (u.protocol === 'ipp:' || u.protocol === 'ipps:') return true;
  return u.protocol === 'raw:' && ['pcl', 'postscript', 'pdf'].includes(to) && u.searchParams.get('pjl') !== 'false';
}

/**
 * The turn a job's orientation gives its pages. On the page's own size, the whole turn (gs renders the turned page
 * at its turned size). On a fixed paper size, gs fits each page and turns a page whose shape differs from the
 * paper's a quarter anticlockwise to fill it (that is landscape already); there only the upside-down part of a
 * reverse-* orientation is added, as a quarter turn more would shrink the page to 71 %.
 */
function pageTurn(o: JobOptions['orientation'], paper: RenderSpec['paper']): RenderSpec['rotate'] {
  if (!paper) return orientationTurn(o);
  return o === 'reverse-portrait' || o === 'reverse-landscape' ? 180 : undefined;
}

/**
 * PWG raster in 1-bit black when that is what the printer lists and the 8-bit type we would send is not there
 * (a black_1-only printer refuses sgray_8). An unknown list keeps sgray_8/srgb_8, which IPP Everywhere requires.
 */
function onlyBlack1(types: readonly string[] | undefined, color: boolean): boolean {
  if (!types?.includes('black_1')) return false;
  return !types.includes('sgray_8') && !(color && types.includes('srgb_8'));
}

/** Colour output only where the printer says it can: a raster or PCL job in colour for a mono printer only wastes bytes. */
function colorCapable(printer: PrinterRecord): boolean {
  return printer.color ?? printer.defaults.color !== false;
}

function strippedOptions(o: JobOptions, spec: RenderSpec, carries: boolean): JobOptions {
  const out: JobOptions = { ...o };
  delete out.pageRanges; // always applied in the document
  // Rendered here, so turned here (pageTurn): a ticket's orientation would not reach pages already imaged.
  delete out.orientation;
  if (!carries || spec.to === 'zpl') {
    out.copies = 1;
    if (spec.duplex || spec.to === 'zpl') delete out.duplex;
    if (spec.paper) delete out.media;
    if (o.color === false) delete out.color;
  }
  return out;
}
