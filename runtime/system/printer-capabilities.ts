// What a printbox printer offers to senders (formats, colour, sides, media), as data: the IPP printer attributes
// and the mDNS TXT record are both generated from this one place, never from two lists kept in step by hand.
import type { PrinterRecord } from './state.js';

/** The IPP Everywhere formats: accepted for every printer, converted where the printer does not take them. */
export const EVERYWHERE_FORMATS = ['application/pdf', 'image/pwg-raster', 'image/jpeg'] as const;

/**
 * What senders may send to this printer, as MIME types: what printbox can deliver to it (`delivered`, the conversion
 * stage's list for the printer's `accepts`: runtime/convert/formats.ts deliverableFormats), plus the IPP Everywhere
 * formats (accepted for every printer, converted where it does not take them) and octet-stream (looked at, then
 * passed as it is).
 */
export function senderFormats(delivered: readonly string[]): string[] {
  return [...new Set(['application/octet-stream', ...EVERYWHERE_FORMATS, ...delivered.map((m) => m.toLowerCase())])].sort();
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

/** `delivered`: what the conversion stage can deliver to this printer (see senderFormats). */
export function capabilitiesOf(p: PrinterRecord, delivered: readonly string[]): PrinterCapabilities {
  const d = p.defaults;
  const mediaDefault = d.media && mediaSize(d.media) ? d.media : 'iso_a4_210x297mm';
  return {
    uuid: p.id,
    name: p.name,
    formats: senderFormats(delivered),
    color: p.color !== false && d.color !== false,
    duplex: p.duplex !== false,
    media: MEDIA_NAMES,
    mediaDefault,
    resolutions: [300, 600],
    makeAndModel: 'printbox queue',
  };
}
