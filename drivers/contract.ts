// The driver contract: what every transport (raw, lpr, ipp, serial, plug-ins) implements.
import type { Readable } from 'node:stream';

export const CONTENT_TYPES = ['pdf', 'postscript', 'pcl', 'pwg-raster', 'zpl', 'escpos', 'text', 'raw'] as const;
export type ContentType = (typeof CONTENT_TYPES)[number];
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

export interface OutboundJob {
  id: string;
  title: string;
  user: string;
  contentType: ContentType;
  /** Plaintext size of the document in bytes (known from the spool record). */
  size: number;
  options: JobOptions;
  /** The destination printer's URI (scheme picks the driver). */
  uri: URL;
  /** Opens the decrypted document as a stream; each call starts again from the first byte. */
  open(): Readable;
  /**
   * The whole decrypted document, already authenticated, when it is small (at most the queue's pre-verify
   * size); drivers may write it directly instead of calling open(). Undefined for large documents.
   */
  bytes?: readonly Buffer[];
  /** Reports an option the wire or document type could not carry (shown on the job, never dropped silently). */
  warn(message: string): void;
  /**
   * Reports what holds the job up while it is being sent ("the printer has taken no data for 30 s"),
   * shown as the job's reason; null when it moves again. Optional for callers; drivers may always call it.
   */
  status?(message: string | null): void;
}

export type Outcome =
  | { kind: 'sent'; detail?: string } // all bytes accepted by the peer
  | { kind: 'confirmed'; detail?: string } // the printer said it printed
  | { kind: 'retry'; reason: string } // transient: retry this job, keep order
  | { kind: 'fail'; reason: string }; // permanent for this job

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

/** Small persistent key-value store a driver may use (e.g. LPR job numbers 000–999). */
export interface DriverStore {
  get<T>(key: string): T | undefined;
  set<T>(key: string, value: T): Promise<void>;
}

export interface DriverContext {
  store: DriverStore;
  log: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void; debug(o: object, msg?: string): void };
}

export interface Driver {
  scheme: string;
  schema: DriverSchema;
  /** Sends one job. Never retries or sleeps on its own: the queue owns policy. Must honour `signal`. */
  send(job: OutboundJob, signal: AbortSignal): Promise<Outcome>;
  probe?(uri: URL, signal?: AbortSignal): Promise<PrinterStatus>;
  discover?(): AsyncIterable<FoundPrinter>;
  /** Lets go of what the driver keeps between jobs (open ports, connections); called when the appliance stops. */
  close?(): Promise<void>;
}

export type DriverFactory = (ctx: DriverContext) => Driver;

export const CONTRACT_VERSION = 1;
