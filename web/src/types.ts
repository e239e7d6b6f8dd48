// Shapes of the API's answers, as the page uses them (the API's OpenAPI document is the full truth).
// Jobs and driver schemas are the runtime's own types (type-only imports: no runtime code in the page).
export type { JobState, JobView as Job } from '../../runtime/spool/jobs';
export type { UriParam, DriverSchema } from '../../drivers/contract-types';

export interface JobDefaults {
  copies?: number;
  color?: boolean;
  duplex?: 'none' | 'long-edge' | 'short-edge';
  media?: string;
  orientation?: string;
  tray?: string;
  contentType?: string;
}

export interface Printer {
  id: string;
  name: string;
  uri: string;
  enabled: boolean;
  errorPolicy: 'retry-job' | 'hold-job' | 'stop-printer';
  retry: { limit: number; baseMs: number; maxMs: number; heldRetryMs: number };
  defaults: JobDefaults;
  stopped?: { reason: string; at: string };
  accepts?: string[];
  acceptsFrom?: 'admin' | 'ipp' | 'mdns' | 'pjl';
  resolution?: number;
  formats?: string[];
  /** Legacy intake: LPD queue of this name and/or a RAW port, from the `allow` ranges only. */
  intake?: { lpd?: boolean; raw?: { port: number }; allow: string[] };
  /** Advertised on mDNS as an IPP Everywhere printer (default true). */
  announce?: boolean;
  queue: { state: 'idle' | 'printing' | 'waiting' | 'stopped' | 'disabled'; queued: number; current: string | null; lastError: string | null };
}

export interface Discovered {
  id: string;
  name: string;
  model: string | null;
  host: string | null;
  addresses: string[];
  preferred: { uri: string; driver: string } | null;
  state: 'present' | 'gone';
  note: string | null;
}

export interface Token {
  id: string;
  name: string;
  scope: 'submit' | 'admin';
  createdAt: string;
  lastUsedAt?: string;
}

export interface SetupInfo {
  needsSetup: boolean;
  setupWindow?: 'open' | 'done' | 'closed';
  name: string;
  fingerprint: string;
  names: string[];
}

export interface Batch {
  batchID: string;
  name: string;
  state: 'open' | 'expired' | 'printing' | 'done' | 'failed' | 'cancelled';
  jobIDs: string[];
  jobs: { jobID: string; state: string; printer?: string; reason?: string }[];
  createdAt: string;
  replays: { at: string; fromJobID: string }[];
  documentsDeleted?: boolean;
}

export interface Certificate {
  names: string[];
  fingerprint: string;
  subject: string;
  issuer: string;
  validFrom: string;
  validTo: string;
  selfSigned: boolean;
  custom: boolean;
  warnings?: string[];
}
