// Small, rarely-changing state in lowdb: settings, printers, token hashes, driver state.
import fs from 'node:fs/promises';
import path from 'node:path';
import { Low, type Adapter } from 'lowdb';
import { writeFileAtomic } from './fsutil.js';
import type { JobOptions, ContentType } from '../../drivers/contract.js';

export const ERROR_POLICIES = ['retry-job', 'hold-job', 'stop-printer'] as const;
export type ErrorPolicy = (typeof ERROR_POLICIES)[number];

export interface PrinterRecord {
  id: string;
  name: string;
  uri: string;
  enabled: boolean;
  errorPolicy: ErrorPolicy;
  retry: { limit: number; baseMs: number; maxMs: number; heldRetryMs: number };
  defaults: Partial<JobOptions> & { contentType?: ContentType };
  stopped?: { reason: string; at: string };
  /** Document formats the printer takes, as MIME types; others are converted (runtime/convert/). */
  accepts?: string[];
  /** Who set `accepts` (and `resolution`): the admin's word is never overwritten by what a printer reports. */
  acceptsFrom?: CapabilitySource;
  /** Dots per inch for raster output (PWG raster, URF, ZPL, PCL); from IPP or the admin. */
  resolution?: number;
  /** The printer prints in colour (IPP print-color-mode-supported); false: conversions render grey, a third of the bytes. */
  color?: boolean;
  /** The printer has a duplex unit (PJL INFO CONFIG lists DUPLEX); false: printbox offers senders one-sided only. */
  duplex?: boolean;
  /** PWG raster types it takes (IPP pwg-raster-document-type-supported, e.g. ["black_1", "sgray_8"]). */
  rasterTypes?: string[];
  /** Legacy intake (no authentication, so `allow` is required): the LPD queue of this name, a RAW listener port. */
  intake?: LegacyIntake;
  /** Advertise this printer on mDNS as an IPP Everywhere printer (default true). */
  announce?: boolean;
  createdAt: string;
}

export const CAPABILITY_SOURCES = ['admin', 'ipp', 'mdns', 'pjl'] as const;
export type CapabilitySource = (typeof CAPABILITY_SOURCES)[number];

export interface LegacyIntake {
  lpd?: boolean;
  raw?: { port: number };
  /** Addresses and CIDR ranges that may send (system/address-ranges.ts). */
  allow: string[];
}

export interface TokenRecord {
  id: string;
  name: string;
  scope: 'submit' | 'admin';
  hash: string; // sha256 of the token; the token itself is shown once and never stored
  createdAt: string;
  lastUsedAt?: string;
}

export interface StateData {
  version: 1;
  settings: { name: string };
  printers: PrinterRecord[];
  tokens: TokenRecord[];
  drivers: Record<string, Record<string, unknown>>;
}

/** lowdb adapter that writes through temp file → fsync → rename → fsync dir, mode 0600. */
class DurableJsonFile<T> implements Adapter<T> {
  constructor(private file: string) {}
  async read(): Promise<T | null> {
    try {
      return JSON.parse(await fs.readFile(this.file, 'utf8')) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }
  async write(data: T): Promise<void> {
    await writeFileAtomic(this.file, JSON.stringify(data, null, 2) + '\n');
  }
}

export class State {
  private db: Low<StateData>;
  private writing: Promise<void> = Promise.resolve();

  constructor(dataDir: string, defaultName: string) {
    this.db = new Low<StateData>(new DurableJsonFile(path.join(dataDir, 'state.json')), {
      version: 1,
      settings: { name: defaultName },
      printers: [],
      tokens: [],
      drivers: {},
    });
  }

  async load(): Promise<void> {
    await this.db.read();
  }

  get data(): StateData {
    return this.db.data;
  }

  /** Applies a change and persists it; writes are serialised so none is lost. */
  async change(fn: (d: StateData) => void): Promise<void> {
    fn(this.db.data);
    const next = this.writing.then(() => this.db.write());
    this.writing = next.catch(() => {});
    await next;
  }
}
