// Document formats: printbox content types ↔ MIME types, and which target a job converts to for a printer's `accepts`.
import { MIME_TYPES, type ContentType } from '../../drivers/contract-types.js'; // no Node types: the IPP server and web/ may use this file

/** MIME type of each content type (shared with the IPP driver). */
export const MIME = MIME_TYPES;

/** Other names printers use for the same languages (mDNS pdl, PJL INFO, IPP). */
const ALIASES: Record<string, ContentType> = {
  'application/pcl': 'pcl',
  'application/vnd.hp-pclxl': 'pcl',
  'application/x-pcl': 'pcl',
  'application/x-zpl': 'zpl',
  'application/zpl': 'zpl',
  'image/jpg': 'jpeg',
  'application/x-postscript': 'postscript',
};

export function contentTypeOf(mime: string): ContentType | undefined {
  const m = mime.toLowerCase().split(';')[0].trim();
  return (Object.keys(MIME) as ContentType[]).find((t) => MIME[t] === m) ?? ALIASES[m];
}

/** What Ghostscript and printbox's own small converters can turn each input into. */
const CONVERTS: Partial<Record<ContentType, ContentType[]>> = {
  pdf: ['pcl', 'postscript', 'pwg-raster', 'urf', 'zpl'],
  postscript: ['pdf', 'pcl', 'pwg-raster', 'urf', 'zpl'],
  text: ['pdf', 'postscript', 'pcl', 'pwg-raster', 'urf', 'zpl'],
  jpeg: ['pdf', 'postscript', 'pcl', 'pwg-raster', 'urf', 'zpl'],
  png: ['pdf', 'postscript', 'pcl', 'pwg-raster', 'urf', 'zpl'],
  'pwg-raster': ['pdf', 'postscript', 'pcl', 'urf', 'zpl'],
  urf: ['pdf', 'postscript', 'pcl', 'pwg-raster', 'zpl'],
};

/**
 * Targets in order of preference: vector page languages first (smallest on the wire, printer renders at its
 * own resolution), then raster, ZPL last (a label printer takes only that).
 */
const PREFERENCE: ContentType[] = ['pdf', 'postscript', 'pcl', 'pwg-raster', 'urf', 'zpl'];

/** Content types a printer accepts, read from its `accepts` MIME list (unknown types are ignored). */
export function acceptedTypes(accepts: readonly string[]): ContentType[] {
  const out: ContentType[] = [];
  for (const m of accepts) {
    const t = contentTypeOf(m);
    if (t && !out.includes(t)) out.push(t);
  }
  return out;
}

export type Target = { convert: false } | { convert: true; to: ContentType } | { convert: false; unsupported: string };

/**
 * What a job of type `from` becomes on a printer accepting `accepts`. No list (nothing known) or a type the
 * printer takes: sent as it is. `raw` is never converted (printbox cannot know what it is).
 */
export function targetFor(from: ContentType, accepts: readonly string[] | undefined): Target {
  if (!accepts?.length) return { convert: false };
  const taken = acceptedTypes(accepts);
  if (taken.includes(from) || from === 'raw') return { convert: false }; // octet-stream in a list means auto-sense among the rest
  const to = PREFERENCE.find((t) => taken.includes(t) && CONVERTS[from]?.includes(t));
  if (to) return { convert: true, to };
  return { convert: false, unsupported: `printbox cannot convert ${MIME[from]} (${from}) into what this printer accepts (${accepts.join(', ')})` };
}

/**
 * Every MIME type printbox can deliver to a printer with these `accepts`: what it takes as it is, plus what
 * printbox converts into one of those (for IPP document-format-supported, the setup page, mDNS pdl).
 */
export function deliverableFormats(accepts: readonly string[] | undefined): string[] {
  if (!accepts?.length) return [];
  const out = new Set<string>(accepts.map((m) => m.toLowerCase()));
  for (const from of Object.keys(CONVERTS) as ContentType[]) if (targetFor(from, accepts).convert) out.add(MIME[from]);
  return [...out];
}
