// The driver contract: what every transport (raw, lpr, ipp, serial, plug-ins) implements.
import type { Readable } from 'node:stream';
import type { ContentType, JobOptions, PrinterStatus, FoundPrinter, DriverSchema } from './contract-types.js';

// The plain data shapes live in contract-types.ts (no Node types, so the setup page shares them).
export * from './contract-types.js';

export interface OutboundJob {
  id: string;
  title: string;
  user: string;
  contentType: ContentType;
  /** Plaintext size of the document in bytes (known from the spool record); -1 when it is not known before the last byte (a document streaming out of its converter). */
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
  /**
   * Present while the previous job's outcome is being made durable (only for a driver that `connectsEarly`): no
   * byte of this job may leave before it resolves. If it rejects, send nothing, close any connection with a reset,
   * and return (any outcome: the queue handles the failure).
   */
  ready?: Promise<void>;
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
  | { kind: 'retry'; reason: string; stop?: boolean } // transient: retry this job, keep order; stop: only after an admin acts (printer stopped, job held)
  | { kind: 'fail'; reason: string }; // permanent for this job

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
  /**
   * send() may be called before the previous job's outcome is durable, with `job.ready` to wait on before the
   * first byte: the driver opens its connection meanwhile (a printer may then see an idle connection, closed empty
   * if printbox dies in between; an abandoned one is reset).
   */
  connectsEarly?: boolean;
  probe?(uri: URL, signal?: AbortSignal): Promise<PrinterStatus>;
  discover?(): AsyncIterable<FoundPrinter>;
  /** Lets go of what the driver keeps between jobs (open ports, connections); called when the appliance stops. */
  close?(): Promise<void>;
}

export type DriverFactory = (ctx: DriverContext) => Driver;

export const CONTRACT_VERSION = 1;
