// The appliance process core: owns config, state, spool, queue, drivers and callbacks, and their lifecycle.
import fs from 'node:fs/promises';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { DriverRegistry, BUILTIN_DRIVERS } from '../drivers/registry.js';
import type { DriverContext, PrinterStatus } from '../drivers/contract.js';
import type { Config } from './system/config.js';
import { CALLBACK_REDO_MS, StatusCallbacks } from './queue/callbacks.js';
import { CallbackTargets } from './queue/callback-target.js';
import { Dispatcher } from './queue/dispatcher.js';
import { isFinal, type CallbackOutcome, type JobRecord } from './spool/jobs.js';
import { loadCallbackSecret, loadSpoolKey } from './spool/keys.js';
import { Printers } from './system/printers.js';
import { LocalSpool } from './spool/local-spool.js';
import type { Spool } from './spool/contract.js';
import { State } from './system/state.js';
import { Tokens } from './system/tokens.js';
import { redactUri } from './system/redact.js';
import { ApiError, notFound } from './system/errors.js';
import { JobIntake } from './intake/accept.js';
import { checkFieldAliases } from './intake/vasion.js';
import { AddressRanges } from './system/address-ranges.js';
import { anonymousWarning } from './api/auth.js';
import { LoginLimiter, TOKEN_GUESS_LIMITS } from './api/login-limit.js';
import { DataDirLock } from './system/lock.js';
import { Metrics } from './system/metrics.js';
import { Batches } from './queue/batches.js';
import { loadPlugin } from '../drivers/plugins.js';
import type { PrinterDiscovery } from './discovery/browser.js';
import type { SystemHealth } from './system/health.js';
import type { Cluster } from './cluster/cluster.js';
import type { PrinterRecord } from './system/state.js';
import { capabilitySource, fromProbe, probeUri } from './convert/capabilities.js';
import { ConvertStage } from './convert/stage.js';

export const VERSION = '0.1.0';

/** The local admin socket (0600) through which the CLI reaches a running server. */
export const adminSocketPath = (dataDir: string) => path.join(dataDir, 'admin.sock');

export class Appliance {
  readonly log: Logger;
  state: State; // cluster mode swaps in the shared configuration at open()
  readonly drivers: DriverRegistry;
  printers: Printers;
  /** Cluster mode only (PRINTBOX_CLUSTER or config `cluster.servers`); one box never loads NATS. */
  cluster?: Cluster;
  spool!: Spool;
  queue!: Dispatcher;
  tokens!: Tokens;
  /** Wrong API tokens per address, for every protocol that takes tokens (api/auth.ts tokenPrincipal). */
  readonly tokenGuesses = new LoginLimiter(TOKEN_GUESS_LIMITS);
  callbacks!: StatusCallbacks;
  callbackSecret!: Buffer;
  batches!: Batches;
  intake!: JobIntake;
  convert!: ConvertStage;
  private lock: DataDirLock;
  readonly startedAt = Date.now();
  readonly metrics = new Metrics();
  discovery?: PrinterDiscovery;
  health?: SystemHealth;
  batchCounts?: () => Record<string, number>;

  constructor(readonly cfg: Config, log?: Logger) {
    // Lines are written by libuv's pool, not by a write(2) per line on the event loop (2 lines per job: ~80 µs of a
    // busy loop's time per job on the bench's disk); pino flushes what is pending when the process exits.
    this.log = log ?? pino({ level: cfg.logLevel, redact: ['req.headers.authorization', 'headers.authorization'] }, pino.destination({ dest: 1, sync: false }));
    this.state = new State(cfg.dataDir, cfg.name);
    this.drivers = new DriverRegistry((scheme) => this.driverContext(scheme));
    this.printers = new Printers(this.state, this.drivers, cfg);
    this.lock = new DataDirLock(cfg.dataDir);
  }

  private driverContext(scheme: string): DriverContext {
    return {
      log: this.log.child({ driver: scheme }),
      store: {
        get: <T>(key: string) => this.state.data.drivers[scheme]?.[key] as T | undefined,
        set: async <T>(key: string, value: T) => {
          await this.state.change((d) => {
            d.drivers[scheme] = { ...d.drivers[scheme], [key]: value };
          });
        },
      },
    };
  }

  /** Opens everything; `serving` appliances also start the queues. Only one process may own a data dir. */
  async open(opts: { startQueues: boolean }): Promise<void> {
    // A config mistake in these stops the start with its reason, before anything is opened.
    const fieldAliases = checkFieldAliases(this.cfg.fieldAliases);
    try {
      new AddressRanges(this.cfg.anonymousSubmit ?? []);
    } catch (err) {
      throw new Error(`anonymousSubmit: ${(err as Error).message}`);
    }
    await fs.mkdir(this.cfg.dataDir, { recursive: true, mode: 0o700 });
    await this.lock.acquire();
    await this.state.load();
    const key = await loadSpoolKey(this.cfg.dataDir);
    this.callbackSecret = await loadCallbackSecret(this.cfg.dataDir);
    for (const [scheme, factory] of Object.entries(BUILTIN_DRIVERS)) this.drivers.register(scheme, factory);
    await this.loadPlugins();
    if (this.cfg.cluster) await this.openCluster();
    this.tokens = new Tokens(this.state);
    this.spool = this.cluster?.spool ?? new LocalSpool({ dataDir: this.cfg.dataDir, key, historyLimit: this.cfg.historyLimit, historyMaxAgeMs: this.cfg.historyMaxAgeMs, minFreeBytes: this.cfg.minFreeBytes });
    await this.spool.open();
    this.callbacks = new StatusCallbacks(this.callbackSecret, this.log, new CallbackTargets(this.cfg.callbacks?.allow));
    this.convert = new ConvertStage(this.cfg.convert);
    this.queue = new Dispatcher({
      convert: this.convert,
      spool: this.spool,
      drivers: this.drivers,
      printer: (id) => this.printers.find(id),
      setStopped: (id, reason) => this.printers.setStopped(id, reason),
      pinPrinter: (p) => this.printers.pinIfNeeded(p),
      preverifyBytes: this.cfg.preverifyBytes,
      log: this.log,
      holdsPrinter: (b, p) => this.batches.holdsPrinter(b, p),
      batchJobDone: (b) => this.batches.settle(b),
      batchStartedOn: (p) => this.batches.startedOn(p),
      batchTurn: (j) => this.batches.turnOf(j),
      mayDrive: this.cluster ? (p) => this.cluster!.drives(p) : undefined,
    });
    this.batches = new Batches(this.cfg.dataDir, key, this.spool, this.queue, this.callbacks, this.cfg.batches, this.log, this.cluster?.batchJournal((b) => this.batches.remote(b)), this.cluster?.batchPeers());
    await this.batches.open();
    this.batchCounts = () => this.batches.counts();
    this.intake = new JobIntake({
      spool: this.spool,
      printers: this.printers,
      batches: this.batches,
      enqueue: (job) => this.queue.enqueue(job),
      backlog: () => this.queue.backlog(),
      counted: (job) => {
        this.metrics.jobsAccepted++;
        this.metrics.bytesIn += job.size;
      },
      log: this.log,
      limits: this.cfg,
      fieldAliases,
      refuse: this.cluster ? () => (this.cluster!.ready() ? undefined : this.cluster!.reason()) : undefined,
    });
    const anonymous = anonymousWarning(this.cfg.anonymousSubmit);
    if (anonymous) this.log.warn({ anonymousSubmit: this.cfg.anonymousSubmit }, anonymous);
    this.queue.on('job', (job) => this.onJobChange(job));
    this.queue.on('sendDone', (e) => this.metrics.onSend(e));
    if (opts.startQueues) {
      await this.queue.restore({ keepSending: !!this.cluster });
      await this.batches.resume();
      // A cluster node sends them when it takes a printer's lease (openCluster's takeOver), for that printer only.
      if (!this.cluster) await this.resendDueCallbacks();
      await this.cluster?.start();
    }
  }

  /** Cluster mode: the configuration, the jobs and the printer leases live in NATS JetStream (runtime/cluster/). */
  private async openCluster(): Promise<void> {
    const { Cluster } = await import('./cluster/cluster.js');
    this.cluster = new Cluster(this.cfg.cluster!, this.cfg.dataDir, this.log, {
      onRemoteJob: (job) => {
        this.queue?.follow(job);
        // A batch member accepted on another node may fill the gap a batch closed here is waiting at.
        if (job.batchID && job.state === 'waiting-for-batch') this.batches?.arrived(job).catch((err) => this.log.warn({ jobID: job.id, err: (err as Error).message }, 'batch release after a remote job failed'));
      },
      onRemoteState: (before, after) => {
        this.tokens?.reload();
        this.queue?.wakeAll();
        // A printer added, edited or removed on another node: this node's LPD/RAW listeners and mDNS follow now.
        if (JSON.stringify(before.printers) === JSON.stringify(after.printers)) return;
        try {
          this.printers.changed();
        } catch (err) {
          // Called from the configuration's watch: a listener's error must not stop this node following the cluster.
          this.log.warn({ err: (err as Error).message }, 'a printer change from another node was not applied here');
        }
      },
      printers: () => this.printers.list().map((p) => p.id),
      takeOver: async (printerId, from) => {
        await this.queue.takeOver(printerId, from);
        this.resendDueCallbacks(printerId).catch((err) => this.log.warn({ printerId, err: (err as Error).message }, 'could not look for status callbacks still due'));
      },
      wake: (printerId) => this.queue.wakePrinter(printerId),
      idle: (printerId) => !this.queue.busy(printerId),
      standDown: (printerId) => this.queue.standDown(printerId),
    });
    await this.cluster.open(this.state, this.cfg.historyLimit);
    this.state = this.cluster.state;
    this.printers = new Printers(this.state, this.drivers, this.cfg);
  }

  /**
   * Callbacks are at least once: a job or batch that finished but whose callback never ended (the appliance stopped
   * or crashed while it was being sent or retried) gets it again after a start. Only those finished in the last
   * CALLBACK_REDO_MS: a receiver that was told about a job long ago is not told again. In a cluster every node
   * holds every record: the callbacks of a printer's jobs are sent again by the node that takes its lease
   * (`printerId`), the one that sends them and fires their timers, not by every node that starts.
   */
  private async resendDueCallbacks(printerId?: string): Promise<void> {
    const mine = (p: string | undefined) => printerId === undefined || this.cluster?.timersOf(p) === printerId;
    let n = 0;
    for (const job of await this.spool.callbacksDue(Date.now() - CALLBACK_REDO_MS)) {
      if (!mine(job.printerId)) continue;
      this.onJobChange(job);
      n++;
    }
    n += this.batches.resendDue(mine);
    if (n) this.log.info({ callbacks: n, printerId }, 'sending status callbacks that were due when the appliance stopped');
  }

  /** Plug-in drivers named in the config; a broken one is reported on GET /v1/drivers, never a crash. */
  private async loadPlugins(): Promise<void> {
    for (const spec of this.cfg.plugins) {
      try {
        const { scheme, factory } = await loadPlugin(spec, this.cfg.configDir);
        this.drivers.register(scheme, factory);
        this.log.info({ plugin: spec, scheme }, 'plug-in driver loaded');
      } catch (err) {
        this.drivers.problems.push({ source: spec, error: (err as Error).message });
        this.log.warn({ plugin: spec, err: (err as Error).message }, 'plug-in driver not loaded');
      }
    }
  }

  private closers: (() => Promise<void>)[] = [];
  private calling = new Set<string>(); // jobs whose status callback is being sent

  onClose(fn: () => Promise<void>): void {
    this.closers.push(fn);
  }

  async close(): Promise<void> {
    await this.discovery?.stop();
    for (const fn of this.closers.reverse()) await fn().catch((err) => this.log.warn({ err: (err as Error).message }, 'error while stopping'));
    this.health?.stop();
    await this.queue?.stopAll();
    this.convert?.close();
    for (const d of this.drivers.all()) {
      if (typeof d.close !== 'function') continue;
      await Promise.resolve()
        .then(() => d.close!())
        .catch((err) => this.log.warn({ err: (err as Error).message, driver: d.scheme }, 'error while closing a driver'));
    }
    await this.batches?.close();
    await this.callbacks?.drain();
    await this.spool?.close();
    await this.cluster?.close();
    await this.lock.release();
  }

  private onJobChange(job: JobRecord): void {
    if (!job.statusURL || !isFinal(job.state) || job.callback || this.calling.has(job.id)) return;
    this.calling.add(job.id);
    const ok = job.state === 'sent' || job.state === 'confirmed';
    // The outcome is journaled (not fsync'd: losing it only means one more callback after a crash).
    const record = (callback: CallbackOutcome) => {
      this.calling.delete(job.id);
      this.spool.update(job.id, { callback }, { durable: false }).catch((err) => this.log.warn({ jobID: job.id, err: (err as Error).message }, 'could not record the status callback outcome'));
    };
    const pages = job.pages !== undefined ? ` (${job.pages} ${job.pages === 1 ? 'page' : 'pages'}, ${job.sheets} ${job.sheets === 1 ? 'sheet' : 'sheets'})` : '';
    this.callbacks.send(job.statusURL, { jobID: job.id, status: ok ? 'success' : 'fail', message: ok ? `job ${job.state}${pages}` : (job.reason ?? job.state) }, job.owner, record);
  }

  /**
   * Asks a printer about itself through its driver's probe (IPP Get-Printer-Attributes; PJL INFO on a RAW printer,
   * where PJL is expected: see probeUri) and records what it takes unless the admin set that.
   */
  async probePrinter(p: PrinterRecord, signal = AbortSignal.timeout(10000)): Promise<PrinterStatus | undefined> {
    const uri = probeUri(p);
    const driver = this.drivers.forUri(uri);
    if (!driver?.probe) return undefined;
    const st = await driver.probe(uri, signal);
    const from = capabilitySource(p.uri);
    if (st.reachable && from) await this.printers.learn(p.id, fromProbe(st), from);
    return st;
  }

  /**
   * Fills a printer's formats from what it reports (on add, adopt, or when the admin hands the list back).
   * Never throws: a printer that does not answer keeps what was known.
   */
  async learnCapabilities(printerId: string, signal = AbortSignal.timeout(10000)): Promise<PrinterRecord | undefined> {
    const p = this.printers.find(printerId);
    if (!p || p.acceptsFrom === 'admin' || !capabilitySource(p.uri)) return p;
    try {
      await this.probePrinter(p, signal);
    } catch (err) {
      this.log.debug({ printer: p.name, err: (err as Error).message }, 'could not learn the printer\'s formats');
    }
    return this.printers.find(printerId);
  }

  job(id: string, owner?: string): JobRecord {
    const job = this.spool.get(id.toLowerCase());
    // A submit token sees only its own jobs; others are reported as absent, not forbidden.
    if (!job || (owner && job.owner !== owner)) throw notFound('job', id);
    return job;
  }

  async cancelJob(id: string, owner?: string): Promise<JobRecord> {
    const job = this.job(id, owner);
    if (isFinal(job.state)) throw new ApiError(409, 'job_finished', `job ${id} is already ${job.state}`);
    const cancelled = (await this.queue.cancel(job.id))!;
    await this.spool.dropDocument(job.id);
    if (job.batchID) await this.batches.settle(job.batchID);
    return this.spool.get(job.id) ?? cancelled;
  }

  status() {
    const printers = this.printers.list().map((p) => ({ id: p.id, name: p.name, uri: redactUri(p.uri), enabled: p.enabled, stopped: p.stopped ?? null, ...this.queue.printerState(p.id) }));
    const counts = this.spool.counts();
    const warnings = [anonymousWarning(this.cfg.anonymousSubmit)].filter((w): w is string => !!w);
    return { name: this.state.data.settings.name, version: VERSION, uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000), printers, jobs: counts, spool: this.spool.stats(), warnings };
  }

  adminSocketPath(): string {
    return adminSocketPath(this.cfg.dataDir);
  }
}
