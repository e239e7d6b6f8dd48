// The driver contract's plain data shapes: job options, printer status, URI parameters. No Node types here,
// so the setup page (web/) type-checks against the same definitions the runtime uses.

export const CONTENT_TYPES = ['pdf', 'postscript', 'pcl', 'pwg-raster', 'urf', 'jpeg', 'png', 'zpl', 'escpos', 'text', 'raw'] as const;
export type ContentType = (typeof CONTENT_TYPES)[number];
/** MIME type of each content type (IPP document-format, mDNS `pdl`, a printer's `accepts`). */
export const MIME_TYPES: Record<ContentType, string> = {
  pdf: 'application/pdf',
  postscript: 'application/postscript',
  pcl: 'application/vnd.hp-pcl',
  'pwg-raster': 'image/pwg-raster',
  urf: 'image/urf',
  jpeg: 'image/jpeg',
  png: 'image/png',
  zpl: 'application/vnd.zebra-zpl',
  escpos: 'application/vnd.escpos',
  text: 'text/plain',
  raw: 'application/octet-stream',
};
export const DUPLEX = ['none', 'long-edge', 'short-edge'] as const;
export type Duplex = (typeof DUPLEX)[number];
export const ORIENTATIONS = ['portrait', 'landscape', 'reverse-portrait', 'reverse-landscape'] as const;
export type Orientation = (typeof ORIENTATIONS)[number];

/** Job-ticket options as the client asked for them; a driver carries what its wire can. */
export interface JobOptions {
  copies: number;
  color?: boolean;
  duplex?: Duplex;
  media?: string; // e.g. 'iso_a4_210x297mm', 'na_letter_8.5x11in', 'A4', 'Letter'
  orientation?: Orientation;
  pageRanges?: string; // e.g. '1-3,5'
  finishings?: string[]; // e.g. ['staple', 'punch']
  tray?: string; // e.g. 'tray-1', 'manual'
}

export interface PrinterStatus {
  reachable: boolean;
  state?: string; // 'idle' | 'processing' | 'stopped' | driver's own words
  reasons?: string[];
  formats?: string[];
  supported?: Record<string, unknown>;
  detail?: string;
}

export interface FoundPrinter {
  id: string;
  name: string;
  uri: string;
  driver: string;
  info?: Record<string, unknown>;
}

/** One URI parameter a driver accepts, declared so the setup page can render a form for it. */
export interface UriParam {
  name: string;
  type: 'string' | 'integer' | 'boolean' | 'enum';
  values?: string[];
  default?: string | number | boolean;
  description: string;
}

export interface DriverSchema {
  scheme: string;
  title: string;
  uriTemplate: string; // e.g. 'raw://host:9100'
  params: UriParam[];
}
