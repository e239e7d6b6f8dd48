// Configuration: embedded defaults, then /etc/printbox/config.json (or $PRINTBOX_CONFIG), then environment.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Config {
  dataDir: string;
  host: string;
  port: number;
  maxDocumentBytes: number;
  minFreeBytes: number; // intake stops (507) below this much free space on the data dir's filesystem
  maxQueuedJobs: number; // intake answers 503 queue_full (Retry-After) while this many jobs wait in the printers' lines; 0 = no limit
  historyLimit: number; // finished jobs kept in history (on disk), newest first
  historyMaxAgeMs: number; // finished jobs older than this are dropped from history (0: count only)
  name: string;
  logLevel: string;
  plugins: string[];
  defaultRetry: { limit: number; baseMs: number; maxMs: number; heldRetryMs: number };
  preverifyBytes: number; // documents up to this size are fully authenticated before the first byte is sent
  mdns: boolean; // browse for printers and announce the appliance (multicast on the LAN)
  metricsOpen: boolean; // serve /metrics without a token (bind the API to a trusted address if you set this)
  configDir: string; // plug-in paths in the config are relative to this
  batches: { openTimeoutMs: number; missingTimeoutMs: number; retentionMs: number };
  fieldAliases: Record<string, string | null>; // a site's own job field names: {"printerPath": "printer", "collate": null}
  anonymousSubmit: string[]; // address ranges that may submit jobs without a token (off when empty)
  siteId?: string; // when set, a request that sends X-Site-ID must send this one (Vasion Cloud Link clients send it)
  /** statusURL targets: when `allow` is set, only these ranges, addresses, origins or host names are called back. */
  callbacks: { allow?: string[] };
  maxConnections: number; // HTTPS connections in all
  maxConnectionsPerAddress: number; // HTTPS connections from one client address
  bodyTimeoutMs: number; // a JSON request body must arrive whole within this time (uploads are exempt)
  /**
   * Conversion (runtime/convert/): a converter past timeoutMs is killed and its job fails; at most `concurrency`
   * jobs render ahead of their turn, and only while documents, output (in RAM: ramDir, a tmpfs) and the running
   * converters (40 MiB each) stay within memoryBudgetBytes.
   */
  convert: { timeoutMs: number; concurrency: number; memoryBudgetBytes: number; ramDir: string };
  lpdPort: number; // the LPD server's port, listening as soon as one printer has intake.lpd on
  ippPort: number; // a plain (no TLS) ipp:// listener for IPP clients that cannot do TLS; 0 = off (the default)
  /** Cluster mode (absent: one box). `servers` from PRINTBOX_CLUSTER (comma-separated NATS URLs) or the config file. */
  cluster?: ClusterSettings;
}

export interface ClusterSettings {
  servers: string[];
  /** This node's name in the cluster (default: the host name; PRINTBOX_CLUSTER_NODE). */
  node?: string;
  /** The address clients and the setup page reach this node at (shown by GET /v1/cluster). */
  url?: string;
  /** Copies JetStream keeps of the cluster's data (default 3: survives the loss of one of three nodes). */
  replicas?: number;
  /** A printer's lease lapses this long after its holder's last renewal (default 5,000 ms). */
  leaseMs?: number;
}

export const DEFAULTS: Omit<Config, 'dataDir' | 'name' | 'configDir'> = {
  host: '::',
  port: 31990, // Vasion's on-prem API Print Service port: existing integrations switch by changing the host only
  maxDocumentBytes: 1024 * 1024 * 1024,
  minFreeBytes: 256 * 1024 * 1024,
  // Each waiting job holds its record in memory (~1–2 KiB): 10,000 keep a backlog within ~20 MiB on a small box.
  maxQueuedJobs: 10000,
  // History lives on disk (spool/history.ts), ~650 bytes per job: 100,000 jobs take ~65 MB of disk and ~5 MiB of memory.
  historyLimit: 100000,
  historyMaxAgeMs: 30 * 86400000,
  logLevel: 'info',
  plugins: [],
  defaultRetry: { limit: 8, baseMs: 1000, maxMs: 60000, heldRetryMs: 300000 },
  preverifyBytes: 16 * 1024 * 1024,
  mdns: true,
  metricsOpen: false,
  // An open batch expires after 1 h; after close, a missing job is waited for 15 min; documents kept 24 h for replay.
  batches: { openTimeoutMs: 3600000, missingTimeoutMs: 900000, retentionMs: 86400000 },
  fieldAliases: {},
  anonymousSubmit: [],
  callbacks: {},
  maxConnections: 1024,
  maxConnectionsPerAddress: 128,
  bodyTimeoutMs: 15000,
  convert: { timeoutMs: 300000, concurrency: os.availableParallelism(), memoryBudgetBytes: 256 * 1024 * 1024, ramDir: '/dev/shm' },
  lpdPort: 515,
  ippPort: 0,
};

function defaultDataDir(): string {
  if (process.env.PRINTBOX_DATA) return process.env.PRINTBOX_DATA;
  if (process.env.PRINTBOX_INSTALLED === '1') return '/var/lib/printbox';
  return path.resolve('.printbox');
}

function num(v: string | undefined): number | undefined {
  return v === undefined || v === '' ? undefined : Number(v);
}

export function loadConfig(overrides: Partial<Config> = {}): Config {
  const file = process.env.PRINTBOX_CONFIG ?? (process.env.PRINTBOX_INSTALLED === '1' ? '/etc/printbox/config.json' : '');
  let fromFile: Partial<Config> = {};
  if (file && fs.existsSync(file)) fromFile = JSON.parse(fs.readFileSync(file, 'utf8'));
  const env: Partial<Config> = {
    host: process.env.PRINTBOX_HOST,
    port: num(process.env.PRINTBOX_PORT),
    maxDocumentBytes: num(process.env.PRINTBOX_MAX_DOCUMENT_BYTES),
    minFreeBytes: num(process.env.PRINTBOX_MIN_FREE_BYTES),
    maxQueuedJobs: num(process.env.PRINTBOX_MAX_QUEUED_JOBS),
    lpdPort: num(process.env.PRINTBOX_LPD_PORT),
    ippPort: num(process.env.PRINTBOX_IPP_PORT),
    logLevel: process.env.PRINTBOX_LOG_LEVEL,
    callbacks: process.env.PRINTBOX_CALLBACKS_ALLOW === undefined ? undefined : { allow: process.env.PRINTBOX_CALLBACKS_ALLOW.split(',').map((s) => s.trim()).filter(Boolean) },
    mdns: process.env.PRINTBOX_MDNS === undefined ? undefined : !['0', 'false', 'off'].includes(process.env.PRINTBOX_MDNS),
  };
  const clean = (o: Partial<Config>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const cfg = {
    ...DEFAULTS,
    dataDir: defaultDataDir(),
    name: os.hostname(),
    configDir: file ? path.dirname(path.resolve(file)) : process.cwd(),
    ...clean(fromFile),
    ...clean(env),
    ...clean(overrides),
  } as Config;
  cfg.dataDir = path.resolve(cfg.dataDir);
  const servers = process.env.PRINTBOX_CLUSTER?.split(',').map((s) => s.trim()).filter(Boolean);
  if (servers?.length) cfg.cluster = { ...cfg.cluster, servers };
  if (cfg.cluster && !cfg.cluster.servers?.length) delete cfg.cluster;
  if (cfg.cluster && process.env.PRINTBOX_CLUSTER_NODE) cfg.cluster.node = process.env.PRINTBOX_CLUSTER_NODE;
  const convertTimeout = num(process.env.PRINTBOX_CONVERT_TIMEOUT_MS);
  cfg.convert = { ...DEFAULTS.convert, ...cfg.convert, ...(convertTimeout !== undefined && { timeoutMs: convertTimeout }) };
  return cfg;
}
