// The box's vital signs (CPU, memory, temperature, disk, network, versions), refreshed in the background, read instantly.
import fs from 'node:fs';
import os from 'node:os';
import si from 'systeminformation';

export interface HealthSnapshot {
  /** True until the first background refresh has completed, or when the last one is overdue (3 × refreshMs). */
  stale: boolean;
  /** When the slow probes last completed (ISO), null before the first refresh. */
  takenAt: string | null;
  cpu: { model: string; cores: number; physicalCores: number | null; speedGHz: number | null; loadPercent: number | null };
  loadAverage: [number, number, number];
  memory: { totalBytes: number; availableBytes: number; usedBytes: number; freeBytes: number };
  /** CPU/SoC temperature in °C; null where there is no sensor (most VMs). */
  temperatureC: number | null;
  /** The filesystem holding the data dir; null until measured. */
  disk: { dir: string; totalBytes: number; freeBytes: number; availableBytes: number } | null;
  network: { name: string; mac: string; up: boolean | null; speedMbps: number | null; addresses: { address: string; family: 'IPv4' | 'IPv6'; cidr: string | null; internal: boolean }[] }[];
  uptimeSeconds: number;
  processUptimeSeconds: number;
  versions: { node: string; os: string; kernel: string; printbox: string };
  /** Probes that failed or timed out in the last refresh; their fields keep the previous values. */
  problems: { probe: string; code: 'probe_failed' | 'probe_timeout'; message: string }[];
}

export interface HealthOptions {
  dataDir: string;
  version: string;
  /** Background refresh interval. */
  refreshMs?: number;
  /** A probe slower than this is abandoned for this round (systeminformation shells out on some platforms). */
  probeTimeoutMs?: number;
  /** Replace probes (tests, unusual platforms). */
  probes?: Partial<Probes>;
}

type Probes = {
  cpu: () => Promise<Pick<HealthSnapshot['cpu'], 'model' | 'physicalCores' | 'speedGHz'>>;
  load: () => Promise<number | null>;
  memory: () => Promise<HealthSnapshot['memory']>;
  temperature: () => Promise<number | null>;
  interfaces: () => Promise<Map<string, { up: boolean | null; speedMbps: number | null }>>;
  os: () => Promise<{ os: string; kernel: string }>;
  disk: (dir: string) => Promise<NonNullable<HealthSnapshot['disk']>>;
};

/** Bytes an unprivileged writer may still use on the filesystem holding `dir` (statfs: cheap and exact). */
export async function freeBytes(dir: string): Promise<number> {
  const s = await fs.promises.statfs(dir);
  return s.bavail * s.bsize;
}

export function freeBytesSync(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

async function diskOf(dir: string): Promise<NonNullable<HealthSnapshot['disk']>> {
  const s = await fs.promises.statfs(dir);
  return { dir, totalBytes: s.blocks * s.bsize, freeBytes: s.bfree * s.bsize, availableBytes: s.bavail * s.bsize };
}

/** CPU busy percent since the previous call, from the first line of /proc/stat (the first call: since boot). */
function procStatLoad(): () => Promise<number | null> {
  let last: { busy: number; total: number } | undefined;
  return async () => {
    const text = await fs.promises.readFile('/proc/stat', 'utf8').catch(() => '');
    const f = /^cpu\s+(.*)$/m.exec(text)?.[1].trim().split(/\s+/).map(Number);
    if (!f || f.length < 4 || f.some((n) => !Number.isFinite(n))) return null;
    // user nice system idle iowait irq softirq steal (guest is already inside user)
    const idle = f[3] + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const now = { busy: total - idle, total };
    const prev = last ?? { busy: 0, total: 0 };
    last = now;
    const dt = now.total - prev.total;
    return dt > 0 ? Math.round(((now.busy - prev.busy) / dt) * 1000) / 10 : null;
  };
}

const realProbes: Probes = {
  async cpu() {
    const c = await si.cpu();
    return { model: [c.manufacturer, c.brand].filter(Boolean).join(' '), physicalCores: c.physicalCores || null, speedGHz: c.speed || null };
  },
  // /proc/stat and sysfs read here rather than si.currentLoad() and si.cpuTemperature(): on Linux both run a shell
  // with execSync on the event loop, every refresh (2.7% of a loaded server's CPU in a profile, and a stall).
  load: procStatLoad(),
  async memory() {
    const m = await si.mem();
    return { totalBytes: m.total, availableBytes: m.available, usedBytes: m.total - m.available, freeBytes: m.free };
  },
  async temperature() {
    const zones = await fs.promises.readdir('/sys/class/thermal').catch(() => [] as string[]);
    const read = (z: string, f: string) => fs.promises.readFile(`/sys/class/thermal/${z}/${f}`, 'utf8').then((t) => t.trim(), () => '');
    const found = await Promise.all(zones.filter((z) => z.startsWith('thermal_zone')).map(async (z) => ({ type: await read(z, 'type'), c: Number(await read(z, 'temp')) / 1000 })));
    const valid = found.filter((f) => Number.isFinite(f.c) && f.c > -50 && f.c < 200);
    // The CPU's own zone where one is named (x86_pkg_temp, cpu-thermal on a Pi), else the hottest.
    const cpu = valid.find((f) => /cpu|x86_pkg|soc/i.test(f.type));
    return cpu ? cpu.c : valid.length ? Math.max(...valid.map((f) => f.c)) : null;
  },
  // Read from sysfs rather than si.networkInterfaces(), which runs several execSync per interface on the
  // event loop (milliseconds of stalled intake every refresh).
  async interfaces() {
    const names = await fs.promises.readdir('/sys/class/net').catch(() => Object.keys(os.networkInterfaces()));
    const read = (iface: string, f: string) => fs.promises.readFile(`/sys/class/net/${iface}/${f}`, 'utf8').then((t) => t.trim(), () => '');
    const entries = await Promise.all(
      names.map(async (iface) => {
        const [state, speed] = await Promise.all([read(iface, 'operstate'), read(iface, 'speed')]);
        const mbps = Number(speed);
        return [iface, { up: state === 'up' ? true : state === 'down' ? false : null, speedMbps: speed && mbps > 0 ? mbps : null }] as const;
      }),
    );
    return new Map(entries);
  },
  // /etc/os-release rather than si.osInfo(), which also runs `hostname --fqdn` and more with execSync on the
  // event loop: ~50 ms of a blocked loop (and CPU) right after every start, for fields nobody shows.
  async os() {
    const text = await fs.promises.readFile('/etc/os-release', 'utf8').catch(() => fs.promises.readFile('/usr/lib/os-release', 'utf8'));
    const v = Object.fromEntries([...text.matchAll(/^([A-Z_]+)=("?)(.*)\2$/gm)].map((m) => [m[1], m[3]]));
    const name = [v.NAME, v.VERSION_ID, v.VERSION_CODENAME && `(${v.VERSION_CODENAME})`].filter(Boolean).join(' ') || v.PRETTY_NAME || 'Linux';
    return { os: name, kernel: os.release() };
  },
  disk: diskOf,
};

export class SystemHealth {
  private readonly opts: Required<Omit<HealthOptions, 'probes'>>;
  private readonly probes: Probes;
  private slow: Omit<HealthSnapshot, 'stale' | 'loadAverage' | 'network' | 'uptimeSeconds' | 'processUptimeSeconds'> & {
    linkState: Map<string, { up: boolean | null; speedMbps: number | null }>;
  };
  private lastRefresh = 0;
  private running?: Promise<void>;
  private timer?: NodeJS.Timeout;

  constructor(options: HealthOptions) {
    this.opts = { refreshMs: 10_000, probeTimeoutMs: 5000, ...options };
    this.probes = { ...realProbes, ...options.probes };
    // What the os module knows costs nothing: the first snapshot has sane values, marked stale.
    const cpus = os.cpus();
    this.slow = {
      takenAt: null,
      cpu: { model: cpus[0]?.model?.trim() ?? 'unknown', cores: os.availableParallelism(), physicalCores: null, speedGHz: null, loadPercent: null },
      memory: { totalBytes: os.totalmem(), availableBytes: os.freemem(), usedBytes: os.totalmem() - os.freemem(), freeBytes: os.freemem() },
      temperatureC: null,
      disk: null,
      versions: { node: process.version, os: `${os.type()} ${os.release()}`, kernel: os.release(), printbox: options.version },
      problems: [],
      linkState: new Map(),
    };
  }

  /** Starts the background refresh (first one at once). */
  start(): this {
    if (this.timer) return this;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.opts.refreshMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  get refreshing(): boolean {
    return this.running !== undefined;
  }

  /** Never waits: the last values, plus the always-cheap ones (load average, addresses, uptime) read now. */
  snapshot(): HealthSnapshot {
    const { linkState, ...slow } = this.slow;
    const la = os.loadavg();
    return {
      ...slow,
      stale: this.lastRefresh === 0 || Date.now() - this.lastRefresh > 3 * this.opts.refreshMs,
      loadAverage: [la[0], la[1], la[2]],
      network: Object.entries(os.networkInterfaces()).map(([name, addrs]) => ({
        name,
        mac: addrs?.[0]?.mac ?? '',
        up: linkState.get(name)?.up ?? null,
        speedMbps: linkState.get(name)?.speedMbps ?? null,
        addresses: (addrs ?? []).map((a) => ({ address: a.address, family: a.family, cidr: a.cidr, internal: a.internal })),
      })),
      uptimeSeconds: Math.round(os.uptime()),
      processUptimeSeconds: Math.round(process.uptime()),
    };
  }

  /** Runs the slow probes once; concurrent callers share the running refresh. */
  refresh(): Promise<void> {
    this.running ??= this.collect().finally(() => (this.running = undefined));
    return this.running;
  }

  private async collect(): Promise<void> {
    const problems: HealthSnapshot['problems'] = [];
    const settle = <T>(probe: string, work: () => Promise<T>): Promise<T | undefined> =>
      this.bounded(probe, Promise.resolve().then(work)).catch((e: HealthSnapshot['problems'][number]) => (problems.push(e), undefined));
    const p = this.probes;
    // CPU model and OS release do not change while we run (and si's cpu() blocks the event loop): once.
    const once = this.lastRefresh === 0 || this.slow.problems.some((x) => x.probe === 'cpu' || x.probe === 'os');
    const [cpu, load, memory, temperature, links, osv, disk] = await Promise.all([
      once ? settle('cpu', p.cpu) : undefined,
      settle('load', p.load),
      settle('memory', p.memory),
      settle('temperature', p.temperature),
      settle('interfaces', p.interfaces),
      once ? settle('os', p.os) : undefined,
      settle('disk', () => p.disk(this.opts.dataDir)),
    ]);
    const s = this.slow;
    this.slow = {
      ...s,
      takenAt: new Date().toISOString(),
      cpu: { ...s.cpu, ...(cpu && { model: cpu.model || s.cpu.model, physicalCores: cpu.physicalCores, speedGHz: cpu.speedGHz }), loadPercent: load !== undefined ? load : s.cpu.loadPercent },
      memory: memory ?? s.memory,
      temperatureC: temperature !== undefined ? temperature : s.temperatureC,
      linkState: links ?? s.linkState,
      versions: osv ? { ...s.versions, ...osv } : s.versions,
      disk: disk ?? s.disk,
      problems,
    };
    this.lastRefresh = Date.now();
  }

  private bounded<T>(probe: string, work: Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject({ probe, code: 'probe_timeout', message: `${probe} probe took longer than ${this.opts.probeTimeoutMs} ms` }), this.opts.probeTimeoutMs);
      work.then(
        (v) => (clearTimeout(t), resolve(v)),
        (e) => (clearTimeout(t), reject({ probe, code: 'probe_failed', message: (e as Error)?.message ?? String(e) })),
      );
    });
  }
}
