// PJL job tickets for RAW/LPR jobs: wraps PDF/PostScript/PCL in a PJL envelope and reads USTATUS JOB replies.
import type { ContentType, JobOptions, OutboundJob } from './contract.js';

/** Universal Exit Language: returns the printer to PJL between jobs and languages. */
export const UEL = '\x1b%-12345X';

const PJL_LANGUAGE: Partial<Record<ContentType, string>> = { pdf: 'PDF', postscript: 'POSTSCRIPT', pcl: 'PCL' };

/** Document types that stay valid when their bytes are sent several times in a row (labels, receipts, text). */
const REPEATABLE: ReadonlySet<ContentType> = new Set(['zpl', 'escpos', 'text']);

/** PJL names (HP PJL reference, PAPER variable) keyed by the lower-case words media names are made of. */
const PAPER: Record<string, string> = {
  a3: 'A3', a4: 'A4', a5: 'A5', b5: 'B5', jisb4: 'JISB4', jisb5: 'JISB5', letter: 'LETTER', legal: 'LEGAL',
  ledger: 'LEDGER', tabloid: 'LEDGER', executive: 'EXECUTIVE', com10: 'COM10', 'number-10': 'COM10', monarch: 'MONARCH', c5: 'C5', dl: 'DL',
};

/** PJL limits JOB NAME to 80 characters; longer names are truncated by some printers and then never match. */
const NAME_MAX = 80;

export interface JobTicket {
  /** The name in JOB and EOJ; the printer echoes it in USTATUS JOB, which is how a reply is matched to this job. */
  name: string;
  header: Buffer;
  trailer: Buffer;
}

export function canCarryPjl(type: ContentType): boolean {
  return type in PJL_LANGUAGE;
}

export function isRepeatable(type: ContentType): boolean {
  return REPEATABLE.has(type);
}

/** A PJL string: printable ASCII without quotes, at most 80 characters, always ending with the job id so it is unique. */
export function pjlJobName(title: string, id: string): string {
  const clean = (s: string) =>
    s
      .normalize('NFKD')
      .replace(/[\u0300-\u036f]/g, '') // drop accents, keep the letters
      .replace(/[^\x20-\x7e]|"/g, ' ')
      .replace(/\s+/g, ' ')
      .trim();
  const tag = `[${clean(id).slice(0, 40)}]`;
  const room = NAME_MAX - tag.length - 1;
  const t = clean(title).slice(0, room).trim();
  return t ? `${t} ${tag}` : tag;
}

/** PJL PAPER value for a media name such as 'iso_a4_210x297mm', 'na_letter_8.5x11in', 'A4' or 'Letter'. */
export function pjlPaper(media: string): string | undefined {
  const m = media.toLowerCase();
  if (PAPER[m]) return PAPER[m];
  // PWG self-describing names: class_name_size, e.g. iso_a4_210x297mm, na_number-10_4.125x9.5in
  const parts = m.split('_');
  if (parts.length >= 3 && PAPER[parts[1]]) return PAPER[parts[1]];
  return undefined;
}

/** PJL lines for the job's options in a document of `language`; what PJL cannot carry is returned as warnings. */
export function pjlSettings(o: JobOptions, language = 'PCL'): { lines: string[]; warnings: string[] } {
  const lines: string[] = [];
  const warnings: string[] = [];
  // QTY = collated copies (whole document n times), what an application means by "copies"; COPIES would repeat each page.
  if (o.copies > 1) lines.push(`@PJL SET QTY=${o.copies}`);
  if (o.duplex === 'none') lines.push('@PJL SET DUPLEX=OFF');
  else if (o.duplex) lines.push('@PJL SET DUPLEX=ON', `@PJL SET BINDING=${o.duplex === 'short-edge' ? 'SHORTEDGE' : 'LONGEDGE'}`);
  if (o.color !== undefined) lines.push(`@PJL SET RENDERMODE=${o.color ? 'COLOR' : 'GRAYSCALE'}`);
  if (o.tray) {
    const t = o.tray.toLowerCase();
    const n = /^tray-?(\d{1,2})$/.exec(t);
    if (n) lines.push(`@PJL SET MEDIASOURCE=TRAY${Number(n[1])}`);
    else if (t === 'manual' || t === 'manual-feed' || t === 'bypass-tray') lines.push('@PJL SET MANUALFEED=ON');
    else if (t !== 'auto') warnings.push(`tray "${o.tray}" has no PJL equivalent; the printer picks the tray`);
  }
  if (o.media) {
    const paper = pjlPaper(o.media);
    if (paper) lines.push(`@PJL SET PAPER=${paper}`);
    else warnings.push(`media "${o.media}" has no PJL paper name; the printer's default paper is used`);
  }
  if (o.orientation && language !== 'PCL') {
    // ORIENTATION is a default for PCL pages (Brother's PJL reference lists it among the PCL-specific variables);
    // PDF and PostScript pages carry their own geometry, so sending it there would drop the option silently.
    // (printbox turns the pages itself whenever it converts a job.)
    if (o.orientation !== 'portrait') warnings.push(`orientation ${o.orientation} not carried: PJL sets it for PCL only, and a ${language} document sent as it is keeps the orientation of its pages`);
  } else if (o.orientation) {
    const landscape = o.orientation.endsWith('landscape');
    lines.push(`@PJL SET ORIENTATION=${landscape ? 'LANDSCAPE' : 'PORTRAIT'}`);
    if (o.orientation.startsWith('reverse-')) warnings.push(`orientation ${o.orientation} sent as ${landscape ? 'landscape' : 'portrait'}: PJL has no reverse orientations`);
  }
  if (o.pageRanges) warnings.push(`pageRanges "${o.pageRanges}" not carried: PJL has no page selection, all pages print`);
  if (o.finishings?.length) warnings.push(`finishings ${o.finishings.join(', ')} not carried: PJL finishing commands differ per vendor`);
  return { lines, warnings };
}

/**
 * The PJL envelope around one document (HP PJL reference, ch. 5 and 7):
 * UEL @PJL / [USTATUS JOB=ON] / JOB NAME / SET… / ENTER LANGUAGE, document, UEL @PJL EOJ NAME UEL.
 */
export function buildJobTicket(job: Pick<OutboundJob, 'id' | 'title' | 'contentType' | 'options'>, confirm: boolean): JobTicket & { warnings: string[] } {
  const language = PJL_LANGUAGE[job.contentType];
  if (!language) throw Object.assign(new Error(`${job.contentType} documents cannot be wrapped in PJL`), { code: 'pjl_unsupported' });
  const name = pjlJobName(job.title, job.id);
  const { lines, warnings } = pjlSettings(job.options, language);
  const head = [`${UEL}@PJL`, ...(confirm ? ['@PJL USTATUS JOB=ON'] : []), `@PJL JOB NAME="${name}"`, ...lines, `@PJL ENTER LANGUAGE=${language}`];
  const header = Buffer.from(head.join('\r\n') + '\r\n', 'latin1');
  const trailer = Buffer.from(`${UEL}@PJL\r\n@PJL EOJ NAME="${name}"\r\n${UEL}`, 'latin1');
  return { name, header, trailer, warnings };
}

/** Warnings for options a document type without a job ticket (ZPL, ESC/POS, text, raw, PWG raster) cannot carry. */
export function unticketedWarnings(type: ContentType, o: JobOptions, why: string): string[] {
  const w: string[] = [];
  const not = (what: string) => w.push(`${what} not carried: ${why}`);
  if (o.duplex && o.duplex !== 'none') not(`duplex=${o.duplex}`);
  if (o.color) not('color');
  if (o.media) not(`media "${o.media}"`);
  if (o.tray) not(`tray "${o.tray}"`);
  if (o.orientation && o.orientation !== 'portrait') not(`orientation ${o.orientation}`);
  if (o.pageRanges) not(`pageRanges "${o.pageRanges}"`);
  if (o.finishings?.length) not(`finishings ${o.finishings.join(', ')}`);
  if (o.copies > 1 && !isRepeatable(type)) w.push(`copies=${o.copies} not carried by a ${type} document without a job ticket; sent once`);
  return w;
}

/** One unsolicited PJL status message, e.g. `@PJL USTATUS JOB\r\nEND\r\nNAME="x"\r\nPAGES=3\r\n`. */
export interface UStatus {
  category: string; // JOB, PAGE, DEVICE, TIMED
  event?: string; // START, END, CANCELED… (first line after the header for JOB)
  fields: Record<string, string>;
}

export function parseUStatus(message: string): UStatus | undefined {
  const lines = message
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  const head = /^@PJL\s+USTATUS\s+(\w+)/i.exec(lines[0] ?? '');
  if (!head) return undefined;
  const fields: Record<string, string> = {};
  let event: string | undefined;
  for (const line of lines.slice(1)) {
    const kv = /^(\w+)\s*=\s*(.*)$/.exec(line);
    if (kv) fields[kv[1].toUpperCase()] = kv[2].replace(/^"(.*)"$/, '$1');
    else event ??= line.toUpperCase();
  }
  return { category: head[1].toUpperCase(), event, fields };
}

/**
 * Collects the printer's back-channel bytes and calls `onStatus` for each complete message.
 * PJL replies end with a form feed; a bounded buffer keeps a chatty printer from growing memory.
 */
export class PjlReader {
  private pending = '';
  constructor(private onStatus: (s: UStatus, raw: string) => void) {}

  push(chunk: Buffer): void {
    this.pending += chunk.toString('latin1');
    let ff: number;
    while ((ff = this.pending.indexOf('\f')) >= 0) {
      const msg = this.pending.slice(0, ff);
      this.pending = this.pending.slice(ff + 1);
      const at = msg.search(/@PJL\s+USTATUS/i);
      const s = at >= 0 ? parseUStatus(msg.slice(at)) : undefined;
      if (s) this.onStatus(s, msg.slice(at));
    }
    if (this.pending.length > 65536) this.pending = this.pending.slice(-4096);
  }
}

/**
 * What a printer says about itself through PJL status readback (HP PJL reference, ch. 7): `INFO ID` (model),
 * `INFO CONFIG` (installed languages, duplex unit), `INQUIRE RESOLUTION`, `INQUIRE RENDERMODE` (colour printers
 * only) and `INFO STATUS`.
 */
export interface PjlInfo {
  model?: string;
  /** Printer languages as the printer names them (LANGUAGES in INFO CONFIG), e.g. PCL, PCLXL, POSTSCRIPT. */
  languages: string[];
  duplex?: boolean;
  resolution?: number;
  color?: boolean;
  online?: boolean;
  display?: string;
}

/** MIME type of each PJL language name (INFO CONFIG LANGUAGES); names not listed here are not documents printbox makes. */
const PJL_LANGUAGE_MIME: [RegExp, string][] = [
  [/^PCL\s*(XL|6)$/, 'application/vnd.hp-pclxl'],
  [/^PCL(\s*5[EC]?)?$/, 'application/vnd.hp-pcl'],
  [/^(POSTSCRIPT\d?|PS\d?|BR-SCRIPT\d?|KPDL\d?)$/, 'application/postscript'],
  [/^PDF$/, 'application/pdf'],
  [/^ZPL(\s*II|2)?$/, 'application/vnd.zebra-zpl'],
];

export function pjlLanguageMime(language: string): string | undefined {
  const l = language.trim().toUpperCase();
  return PJL_LANGUAGE_MIME.find(([re]) => re.test(l))?.[1];
}

/**
 * The probe's request: one PJL-only job (no ENTER LANGUAGE, so nothing prints) whose last command, ECHO with a
 * fresh tag, tells us when every answer is in without waiting for a timeout.
 */
export function pjlInfoRequest(tag: string): Buffer {
  const lines = ['@PJL INFO ID', '@PJL INFO CONFIG', '@PJL INFO STATUS', '@PJL INQUIRE RESOLUTION', '@PJL INQUIRE RENDERMODE', `@PJL ECHO ${tag}`];
  return Buffer.from(`${UEL}@PJL\r\n${lines.join('\r\n')}\r\n${UEL}`, 'latin1');
}

/** Lines of one INFO CONFIG answer grouped by feature ("LANGUAGES [3 ENUMERATED]" followed by its options). */
function configFeatures(lines: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*([A-Z][A-Z0-9 ]*?)\s*(?:=\s*([^[]*?))?\s*(?:\[\s*(\d+)\s+ENUMERATED\s*\])?\s*$/i.exec(lines[i]);
    if (!m || /^\s/.test(lines[i])) continue; // an option line not claimed by a count
    const options: string[] = [];
    const count = m[3] ? Math.min(Number(m[3]), 256) : 0;
    for (let k = 0; k < count && i + 1 < lines.length; k++) options.push(lines[++i].trim());
    // Options without a count, by indentation (some printers leave the count out).
    while (!count && i + 1 < lines.length && /^\s/.test(lines[i + 1])) options.push(lines[++i].trim());
    out.set(m[1].toUpperCase(), options);
  }
  return out;
}

/** Reads the answers to pjlInfoRequest; `done` once the ECHO with our tag came back. */
export class PjlInfoReader {
  private pending = '';
  private answered = false;
  readonly info: PjlInfo = { languages: [] };
  done = false;

  constructor(private tag: string) {}

  /** Whether the printer answered any of our questions (an ECHO alone proves it speaks PJL too). */
  get spoke(): boolean {
    return this.answered;
  }

  push(chunk: Buffer): void {
    this.pending += chunk.toString('latin1');
    let ff: number;
    while ((ff = this.pending.indexOf('\f')) >= 0) {
      this.take(this.pending.slice(0, ff));
      this.pending = this.pending.slice(ff + 1);
    }
    if (this.pending.length > 65536) this.pending = this.pending.slice(-4096);
  }

  private take(msg: string): void {
    const at = msg.search(/@PJL\s+(INFO|INQUIRE|ECHO)\b/i);
    if (at < 0) return;
    const lines = msg.slice(at).split(/\r?\n/).filter((l) => l.trim());
    const head = lines[0].trim().toUpperCase().replace(/\s+/g, ' ');
    const body = lines.slice(1);
    const value = (body[0] ?? '').trim().replace(/^"(.*)"$/, '$1');
    this.answered = true;
    if (head === `@PJL ECHO ${this.tag.toUpperCase()}`) this.done = true;
    else if (head === '@PJL INFO ID') this.info.model = value || undefined;
    else if (head === '@PJL INFO CONFIG') {
      const f = configFeatures(body);
      this.info.languages = (f.get('LANGUAGES') ?? []).map((l) => l.split(/\s+/)[0].toUpperCase()).filter(Boolean);
      this.info.duplex = [...f.keys()].some((k) => /^DUPLEX\b/.test(k));
    } else if (head === '@PJL INQUIRE RESOLUTION') {
      const n = Number.parseInt(value, 10);
      if (n >= 72 && n <= 2400) this.info.resolution = n;
    } else if (head === '@PJL INQUIRE RENDERMODE') {
      // Only colour printers have RENDERMODE; the others answer "?" (HP PJL reference, INQUIRE/DINQUIRE).
      if (value === '?') this.info.color = false;
      else if (/^(COLOR|GRAYSCALE)$/i.test(value)) this.info.color = true;
    } else if (head === '@PJL INFO STATUS') {
      const kv = Object.fromEntries(body.map((l) => /^\s*(\w+)\s*=\s*(.*?)\s*$/.exec(l)).filter((m): m is RegExpExecArray => !!m).map((m) => [m[1].toUpperCase(), m[2].replace(/^"(.*)"$/, '$1')]));
      if (kv.ONLINE) this.info.online = kv.ONLINE.toUpperCase() === 'TRUE';
      if (kv.DISPLAY) this.info.display = kv.DISPLAY;
    }
  }
}
