// The IPP printer object of a printbox printer: its description and status attributes (RFC 8011, PWG 5100.12 and
// 5100.14 IPP Everywhere), generated from the printer's capabilities (system/printer-capabilities.ts).
import { TAG, attr, collection, type IppAttribute, type IppValue } from '../../drivers/ipp-codec.js';
import { capabilitiesOf, mediaSize } from '../system/printer-capabilities.js';
import { deliverableFormats } from '../convert/formats.js';
import type { PrinterRecord } from '../system/state.js';

export const OPERATIONS_SUPPORTED = [0x0002, 0x0004, 0x0005, 0x0006, 0x0008, 0x0009, 0x000a, 0x000b, 0x0039, 0x003b, 0x003c];
export const IPP_STATE = { idle: 3, processing: 4, stopped: 5 } as const;
export const ORIENTATION_ENUM: Record<string, number> = { portrait: 3, landscape: 4, 'reverse-landscape': 5, 'reverse-portrait': 6 };
export const SIDES: Record<string, 'none' | 'long-edge' | 'short-edge'> = { 'one-sided': 'none', 'two-sided-long-edge': 'long-edge', 'two-sided-short-edge': 'short-edge' };
/** finishings enum values (PWG 5100.1) printbox passes on by name; 3 = none. */
export const FINISHINGS: Record<number, string> = { 4: 'staple', 5: 'punch', 6: 'cover', 7: 'bind', 8: 'saddle-stitch', 9: 'edge-stitch', 10: 'fold', 11: 'trim' };
export const JOB_CREATION_ATTRIBUTES = ['copies', 'finishings', 'job-name', 'media', 'media-col', 'orientation-requested', 'page-ranges', 'print-color-mode', 'sides', 'document-format', 'document-name', 'ipp-attribute-fidelity', 'output-bin', 'print-quality', 'printer-resolution', 'job-priority'];
const MARGIN = 423; // hundredths of a mm: what a typical office printer cannot reach

/** What the printer object's attributes depend on besides the printer record. */
export interface PrinterView {
  printer: PrinterRecord;
  /** ipps://host:port/ipp/print/NAME as the client reached it. */
  uri: string;
  /** https://host:port of the box (setup page, icons). */
  webBase: string;
  state: keyof typeof IPP_STATE;
  reasons: string[];
  message: string;
  queued: number;
  upSeconds: number;
  startedAt: Date;
  configChangedAt: Date;
  location: string;
}

const kw = (name: string, ...v: string[]) => attr(TAG.keyword, name, ...v);
const int = (name: string, ...v: number[]) => attr(TAG.integer, name, ...v);
const en = (name: string, ...v: number[]) => attr(TAG.enum, name, ...v);
const bool = (name: string, v: boolean) => attr(TAG.boolean, name, v);
const text = (name: string, ...v: string[]) => attr(TAG.textWithoutLanguage, name, ...v);
const uri = (name: string, ...v: string[]) => attr(TAG.uri, name, ...v);
const mime = (name: string, ...v: string[]) => attr(TAG.mimeMediaType, name, ...v);
const date = (name: string, d: Date) => attr(TAG.dateTime, name, d);
const range = (name: string, lower: number, upper: number) => attr(TAG.rangeOfInteger, name, { lower, upper });
const res = (name: string, ...dpi: number[]) => attr(TAG.resolution, name, ...dpi.map((x) => ({ x, y: x, units: 'dpi' as const })));

function mediaCol(name: string, extra: IppAttribute[] = []): IppValue {
  const [x, y] = mediaSize(name) ?? [21000, 29700];
  return collection(
    attr(TAG.begCollection, 'media-size', collection(int('x-dimension', x), int('y-dimension', y))),
    kw('media-size-name', name),
    int('media-bottom-margin', MARGIN),
    int('media-left-margin', MARGIN),
    int('media-right-margin', MARGIN),
    int('media-top-margin', MARGIN),
    ...extra,
  );
}

/** Every attribute of the printer object, in the printer-attributes group. */
export function printerAttributes(v: PrinterView): IppAttribute[] {
  const cap = capabilitiesOf(v.printer, deliverableFormats(v.printer.accepts));
  const d = v.printer.defaults;
  const colorModes = cap.color ? ['monochrome', 'color'] : ['monochrome'];
  const ready = [cap.mediaDefault];
  const readyCol = ready.map((m) => mediaCol(m, [kw('media-source', 'auto'), kw('media-type', 'stationery')]));
  const sidesDefault = Object.entries(SIDES).find(([, s]) => s === d.duplex)?.[0] ?? 'one-sided';
  return [
    // description
    uri('printer-uri-supported', v.uri),
    kw('uri-authentication-supported', 'basic'),
    kw('uri-security-supported', v.uri.startsWith('ipps:') ? 'tls' : 'none'),
    attr(TAG.nameWithoutLanguage, 'printer-name', cap.name),
    text('printer-info', `printbox queue ${cap.name}`),
    text('printer-location', v.location),
    text('printer-make-and-model', cap.makeAndModel),
    uri('printer-more-info', `${v.webBase}/`),
    text('printer-device-id', `MFG:printbox;MDL:queue;CMD:${cap.formats.map((f) => f.split('/')[1].toUpperCase()).join(',')};`),
    uri('printer-uuid', `urn:uuid:${cap.uuid}`),
    attr(TAG.unknown, 'printer-geo-location', null),
    text('printer-organization', ''),
    text('printer-organizational-unit', ''),
    uri('printer-icons', `${v.webBase}/favicon.svg`),
    uri('printer-supply-info-uri', `${v.webBase}/`),
    attr(TAG.octetString, 'printer-supply', Buffer.from('index=1;class=unknown;type=other;unit=percent;maxcapacity=100;level=-2;colorantname=unknown;')),
    text('printer-supply-description', 'Supplies of the printer behind this queue'),
    attr(TAG.charset, 'charset-configured', 'utf-8'),
    attr(TAG.charset, 'charset-supported', 'utf-8', 'us-ascii'),
    attr(TAG.naturalLanguage, 'natural-language-configured', 'en'),
    attr(TAG.naturalLanguage, 'generated-natural-language-supported', 'en'),
    kw('ipp-versions-supported', '1.1', '2.0'),
    kw('ipp-features-supported', 'ipp-everywhere'),
    en('operations-supported', ...OPERATIONS_SUPPORTED),
    kw('compression-supported', 'none', 'deflate', 'gzip'),
    mime('document-format-default', 'application/octet-stream'),
    mime('document-format-supported', ...cap.formats),
    kw('pdl-override-supported', 'attempted'),
    kw('printer-get-attributes-supported', 'document-format'),
    kw('job-creation-attributes-supported', ...JOB_CREATION_ATTRIBUTES),
    bool('job-ids-supported', true),
    bool('preferred-attributes-supported', false),
    bool('multiple-document-jobs-supported', false),
    int('multiple-operation-time-out', 60),
    kw('multiple-operation-time-out-action', 'abort-job'),
    kw('which-jobs-supported', 'completed', 'not-completed', 'all'),
    kw('identify-actions-default', 'display'),
    kw('identify-actions-supported', 'display'),
    kw('overrides-supported', 'document-number', 'document-numbers', 'pages'),
    range('job-k-octets-supported', 0, 2147483647),
    int('job-priority-default', 50),
    int('job-priority-supported', 1),
    attr(TAG.nameWithoutLanguage, 'job-sheets-default', 'none'),
    attr(TAG.nameWithoutLanguage, 'job-sheets-supported', 'none'),
    attr(TAG.uriScheme, 'reference-uri-schemes-supported', 'http', 'https'),
    int('pages-per-minute', 20),
    ...(cap.color ? [int('pages-per-minute-color', 20)] : []),
    // job template
    bool('color-supported', cap.color),
    int('copies-default', d.copies ?? 1),
    range('copies-supported', 1, 999),
    en('finishings-default', 3),
    en('finishings-supported', 3, ...Object.keys(FINISHINGS).map(Number)),
    bool('page-ranges-supported', true),
    kw('media-default', cap.mediaDefault),
    kw('media-supported', ...cap.media),
    kw('media-ready', ...ready),
    attr(TAG.begCollection, 'media-col-default', readyCol[0]),
    attr(TAG.begCollection, 'media-col-ready', ...readyCol),
    attr(TAG.begCollection, 'media-col-database', ...cap.media.map((m) => mediaCol(m))),
    kw('media-col-supported', 'media-bottom-margin', 'media-left-margin', 'media-right-margin', 'media-size', 'media-size-name', 'media-source', 'media-top-margin', 'media-type'),
    attr(TAG.begCollection, 'media-size-supported', ...cap.media.map((m) => collection(int('x-dimension', mediaSize(m)![0]), int('y-dimension', mediaSize(m)![1])))),
    int('media-bottom-margin-supported', MARGIN),
    int('media-left-margin-supported', MARGIN),
    int('media-right-margin-supported', MARGIN),
    int('media-top-margin-supported', MARGIN),
    kw('media-source-supported', 'auto'),
    kw('media-type-supported', 'stationery'),
    en('orientation-requested-default', ORIENTATION_ENUM[d.orientation ?? 'portrait']),
    en('orientation-requested-supported', 3, 4, 5, 6),
    kw('output-bin-default', 'face-down'),
    kw('output-bin-supported', 'face-down'),
    kw('print-color-mode-default', cap.color ? 'color' : 'monochrome'),
    kw('print-color-mode-supported', ...colorModes),
    kw('print-content-optimize-default', 'auto'),
    kw('print-content-optimize-supported', 'auto'),
    kw('print-rendering-intent-default', 'auto'),
    kw('print-rendering-intent-supported', 'auto'),
    en('print-quality-default', 4),
    en('print-quality-supported', 3, 4, 5),
    res('printer-resolution-default', cap.resolutions[cap.resolutions.length - 1]),
    res('printer-resolution-supported', ...cap.resolutions),
    kw('sides-default', sidesDefault),
    kw('sides-supported', ...(cap.duplex ? Object.keys(SIDES) : ['one-sided'])),
    res('pwg-raster-document-resolution-supported', ...cap.resolutions),
    kw('pwg-raster-document-sheet-back', 'normal'),
    kw('pwg-raster-document-type-supported', 'black_1', 'sgray_8', ...(cap.color ? ['srgb_8'] : [])),
    // status
    en('printer-state', IPP_STATE[v.state]),
    kw('printer-state-reasons', ...(v.reasons.length ? v.reasons : ['none'])),
    text('printer-state-message', v.message),
    bool('printer-is-accepting-jobs', true),
    int('queued-job-count', v.queued),
    int('printer-up-time', Math.max(1, v.upSeconds)),
    date('printer-current-time', new Date()),
    date('printer-state-change-date-time', v.startedAt),
    int('printer-state-change-time', 1),
    date('printer-config-change-date-time', v.configChangedAt),
    int('printer-config-change-time', 1),
    text('printer-dns-sd-name', cap.name),
    kw('printer-kind', 'document'),
  ];
}

/** Attribute group names a client may ask for (RFC 8011 §4.2.5.1): each stands for the whole set here. */
const GROUP_NAMES = new Set(['all', 'printer-description', 'job-template', 'printer-defaults']);

/** Filters by `requested-attributes`; none asked means all. */
export function selectAttributes(all: IppAttribute[], requested: string[] | undefined): IppAttribute[] {
  if (!requested || requested.some((r) => GROUP_NAMES.has(r))) return all;
  const want = new Set(requested);
  return all.filter((a) => want.has(a.name));
}
