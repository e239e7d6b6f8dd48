// What a printbox printer offers to senders (formats, colour, sides, media), as data: the IPP printer attributes
// and the mDNS TXT record are both generated from this one place, never from two lists kept in step by hand.
import type { ContentType } from '../../drivers/contract-types.js';
import type { PrinterRecord } from './state.js';

/** The IPP Everywhere formats: accepted for every printer, converted where the printer does not take them. */
export const EVERYWHERE_FORMATS = ['application/pdf', 'image/pwg-raster', 'image/jpeg'] as const;

/** MIME type ↔ printbox content type; `application/octet-stream` means "look at the first bytes". */
const MIME_TO_CONTENT: Record<string, ContentType | undefined> = {
  'application/pdf': 'pdf',
  'application/postscript': 'postscript',
  'application/vnd.hp-pcl': 'pcl',
  'image/pwg-raster': 'pwg-raster',
  'application/vnd.zebra-zpl': 'zpl',
  'text/plain': 'text',
  'application/vnd.escpos': 'escpos',
  'application/octet-stream': undefined,
  'image/jpeg': undefined, // no content type of its own yet: sniffed (raw) until the conversion stage names it
};

export function contentTypeOfMime(mime: string): ContentType | undefined {
  return MIME_TO_CONTENT[mime.toLowerCase().split(';')[0].trim()];
}

export function mimeOfContentType(ct: ContentType): string {
  return Object.entries(MIME_TO_CONTENT).find(([, c]) => c === ct)?.[0] ?? 'application/octet-stream';
}

/**
 * What printbox can deliver to this printer, as MIME types. Until the conversion stage lists what it makes from
 * a printer's `accepts`, this is the IPP Everywhere set, the printer's own default format, and octet-stream
 * (passed through as it is): the one function to switch over.
 */
export function deliverableFormats(p: PrinterRecord): string[] {
  const own = p.defaults.contentType ? [mimeOfContentType(p.defaults.contentType)] : [];
  return [...new Set(['application/octet-stream', ...EVERYWHERE_FORMATS, ...own])].sort();
}

/** Media offered to senders (PWG self-describing names) with their sizes in hundredths of a millimetre. */
export const MEDIA: Record<string, [number, number]> = {
  iso_a4_210x297mm: [21000, 29700],
  na_letter_8_5x11in: [21590, 27940],
  na_legal_8_5x14in: [21590, 35560],
  iso_a5_148x210mm: [14800, 21000],
  'na_index-4x6_4x6in': [10160, 15240],
};
/** PWG names use a dot in fractional inches ("na_letter_8.5x11in"); the table's keys cannot, so they are mapped here. */
export const mediaName = (key: string) => key.replace(/_(\d+)_(\d+)x/, '_$1.$2x');
export const MEDIA_NAMES = Object.keys(MEDIA).map(mediaName);
export const mediaSize = (name: string): [number, number] | undefined => MEDIA[name.replace(/_(\d+)\.(\d+)x/, '_$1_$2x')];

export interface PrinterCapabilities {
  /** Stable identity (the printer's id is a UUID): printer-uuid and the TXT `UUID`. */
  uuid: string;
  name: string;
  formats: string[];
  color: boolean;
  duplex: boolean;
  media: string[];
  mediaDefault: string;
  resolutions: number[];
  makeAndModel: string;
}

export function capabilitiesOf(p: PrinterRecord): PrinterCapabilities {
  const d = p.defaults;
  const mediaDefault = d.media && mediaSize(d.media) ? d.media : 'iso_a4_210x297mm';
  return {
    uuid: p.id,
    name: p.name,
    formats: deliverableFormats(p),
    color: d.color !== false,
    duplex: true,
    media: MEDIA_NAMES,
    mediaDefault,
    resolutions: [300, 600],
    makeAndModel: 'printbox queue',
  };
}
