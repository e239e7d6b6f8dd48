// Loads a driver plug-in (npm package or local file), checks it against the driver contract, and never lets a bad one crash the appliance.
//
// A plug-in module exports, as `printboxDriver` or `default`:
//   { scheme: 'file', contractVersion: 1 | '^1' | '>=1 <3', create: DriverFactory }
// `create` must be cheap and free of side effects: it is called once here, with a throw-away context, to check its shape.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CONTRACT_VERSION, type Driver, type DriverContext, type DriverFactory, type Outcome } from './contract.js';

export type PluginErrorCode = 'plugin_invalid' | 'plugin_not_found';

export class PluginError extends Error {
  constructor(
    readonly code: PluginErrorCode,
    readonly spec: string,
    message: string,
  ) {
    super(message);
    this.name = 'PluginError';
  }
}

/** Schemes of the built-in drivers and of URLs that mean something else; a plug-in may not take them unless allowed. */
export const RESERVED_SCHEMES = ['raw', 'socket', 'lpr', 'lpd', 'ipp', 'ipps', 'http', 'https', 'serial', 'usb'];

export interface LoadOptions {
  /** Schemes a plug-in must not claim (default RESERVED_SCHEMES). */
  reserved?: Iterable<string>;
  /** Let a plug-in replace a reserved scheme (an admin's explicit choice). */
  allowOverride?: boolean;
}

export async function loadPlugin(spec: string, baseDir: string, opts: LoadOptions = {}): Promise<{ scheme: string; factory: DriverFactory }> {
  const file = resolvePlugin(spec, baseDir);
  let mod: Record<string, unknown>;
  try {
    // The bundled runtime (dist/) runs without tsx; a TypeScript plug-in brings it in on demand.
    if (/\.[cm]?ts$/.test(file) && !import.meta.url.endsWith('.ts')) await import('tsx/esm/api').then((t) => t.register()).catch(() => {});
    mod = await import(pathToFileURL(file).href);
  } catch (err) {
    throw new PluginError('plugin_invalid', spec, `driver plug-in "${spec}" failed to load: ${(err as Error)?.message ?? String(err)}`);
  }
  const decl = pickDeclaration(mod);
  if (!decl) throw new PluginError('plugin_invalid', spec, `driver plug-in "${spec}" exports no driver: export "printboxDriver" or a default { scheme, contractVersion, create }`);
  const { scheme, contractVersion, create } = decl as { scheme?: unknown; contractVersion?: unknown; create?: unknown };

  const bad = (why: string) => new PluginError('plugin_invalid', spec, `driver plug-in "${spec}" ${why}`);
  if (typeof scheme !== 'string' || !/^[a-z][a-z0-9+.-]*$/.test(scheme)) throw bad(`has scheme ${JSON.stringify(scheme)}; a scheme is lower-case letters, digits, "+", "-" or "." starting with a letter`);
  const reserved = new Set(opts.reserved ?? RESERVED_SCHEMES);
  if (reserved.has(scheme) && !opts.allowOverride) throw bad(`wants scheme "${scheme}", which belongs to a built-in driver`);
  const versionProblem = checkContractVersion(contractVersion);
  if (versionProblem) throw bad(versionProblem);
  if (typeof create !== 'function') throw bad('has no create function (create: (ctx) => Driver)');

  const factory: DriverFactory = (ctx) => guardDriver(spec, scheme, checkDriver(spec, scheme, create as DriverFactory, ctx));
  factory(trialContext()); // shape check now, at load time, rather than when the first job arrives
  return { scheme, factory };
}

/** The file to import: a path relative to baseDir (or absolute), or an npm package installed under baseDir. */
function resolvePlugin(spec: string, baseDir: string): string {
  const local = spec.startsWith('.') || path.isAbsolute(spec) || spec.startsWith('file:');
  if (local) {
    const file = spec.startsWith('file:') ? new URL(spec).pathname : path.resolve(baseDir, spec);
    if (!existsSync(file)) throw new PluginError('plugin_not_found', spec, `driver plug-in "${spec}" not found: no file ${file}`);
    return file;
  }
  const req = createRequire(path.join(path.resolve(baseDir), 'package.json'));
  try {
    return req.resolve(spec);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') {
      const file = esmEntry(spec, baseDir);
      if (file) return file;
    }
    throw new PluginError('plugin_not_found', spec, `driver plug-in "${spec}" not found: no npm package of that name is installed under ${baseDir} (npm i ${spec})`);
  }
}

/** Entry of an ESM-only package (exports with "import" but no "require"), which require.resolve cannot see. */
function esmEntry(name: string, baseDir: string): string | undefined {
  for (let dir = path.resolve(baseDir); ; dir = path.dirname(dir)) {
    const pkgDir = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(pkgDir, 'package.json'))) {
      const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
      const dot = typeof pkg.exports === 'object' && pkg.exports !== null && '.' in pkg.exports ? pkg.exports['.'] : pkg.exports;
      const entry = typeof dot === 'string' ? dot : (dot?.import ?? dot?.default ?? pkg.module ?? pkg.main ?? 'index.js');
      return typeof entry === 'string' ? path.join(pkgDir, entry) : undefined;
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

function pickDeclaration(mod: Record<string, unknown>): unknown {
  const def = mod.default as Record<string, unknown> | undefined;
  // ESM named export, ESM default, or a CommonJS module.exports = { printboxDriver } seen as default.
  const decl = mod.printboxDriver ?? (def && typeof def === 'object' && 'printboxDriver' in def ? def.printboxDriver : def);
  return decl && typeof decl === 'object' ? decl : undefined;
}

/**
 * CONTRACT_VERSION is a whole number; a plug-in names the version it was written for as a number or a
 * semver-style range ("1", "^1", "~1.0", "1.x", ">=1 <3", "1 || 2"). Returns what is wrong, or undefined.
 */
export function checkContractVersion(v: unknown, current = CONTRACT_VERSION): string | undefined {
  if (typeof v === 'number') return v === current ? undefined : `was written for driver contract ${v}; this printbox has contract ${current}`;
  if (typeof v !== 'string' || !v.trim()) return `has no contractVersion; say which driver contract it was written for (this printbox has ${current})`;
  const ok = v.split('||').some((alt) => {
    const parts = alt.trim().split(/\s+/).filter(Boolean);
    return parts.length > 0 && parts.every((c) => satisfies(c, current));
  });
  return ok ? undefined : `was written for driver contract "${v}"; this printbox has contract ${current}`;
}

function satisfies(comparator: string, current: number): boolean {
  const m = /^(\^|~|>=|<=|>|<|=)?v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/i.exec(comparator.toLowerCase());
  if (!m) return false; // '*' and nonsense say nothing about the contract: refuse
  const op = m[1] ?? '=';
  const want = [Number(m[2]), num(m[3]), num(m[4])];
  const have = [current, 0, 0];
  const cmp = compare(have, want);
  const wild = (x: string | undefined) => x === undefined || x === 'x' || x === '*';
  switch (op) {
    case '^':
    case '~': // for a contract N = N.0.0 both mean: same major, not older than asked
      return have[0] === want[0] && cmp >= 0;
    case '=':
      if (wild(m[3])) return have[0] === want[0];
      if (wild(m[4])) return have[0] === want[0] && have[1] === want[1];
      return cmp === 0;
    case '>=':
      return cmp >= 0;
    case '>':
      return cmp > 0;
    case '<=':
      return cmp <= 0;
    default:
      return cmp < 0;
  }
}

const num = (s: string | undefined) => (s === undefined || s === 'x' || s === '*' ? 0 : Number(s));

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function checkDriver(spec: string, scheme: string, create: DriverFactory, ctx: DriverContext): Driver {
  let d: Driver;
  try {
    d = create(ctx);
  } catch (err) {
    throw new PluginError('plugin_invalid', spec, `driver plug-in "${spec}" failed in create(): ${(err as Error)?.message ?? String(err)}`);
  }
  const bad = (why: string) => new PluginError('plugin_invalid', spec, `driver plug-in "${spec}" ${why}`);
  if (!d || typeof d !== 'object') throw bad('create() returned no driver object');
  if (typeof d.send !== 'function') throw bad('create() returned a driver without a send function');
  if (!d.schema || typeof d.schema !== 'object' || !Array.isArray(d.schema.params) || typeof d.schema.title !== 'string') {
    throw bad('create() returned a driver without a schema { scheme, title, uriTemplate, params: [] }');
  }
  if (d.scheme !== scheme || d.schema.scheme !== scheme) throw bad(`declares scheme "${scheme}" but its driver says "${d.scheme}" (schema "${d.schema.scheme}")`);
  return d;
}

const KINDS = new Set(['sent', 'confirmed', 'retry', 'fail']);

/** A plug-in that throws or answers nonsense turns into an Outcome the queue understands. */
function guardDriver(spec: string, scheme: string, d: Driver): Driver {
  const send = d.send.bind(d);
  return Object.assign(Object.create(d) as Driver, {
    scheme,
    async send(job, signal): Promise<Outcome> {
      let out: Outcome;
      try {
        out = await send(job, signal);
      } catch (err) {
        return { kind: 'retry', reason: `driver plug-in "${spec}" threw: ${(err as Error)?.message ?? String(err)}` };
      }
      if (!out || !KINDS.has(out.kind)) return { kind: 'fail', reason: `driver plug-in "${spec}" returned no valid outcome (${JSON.stringify(out)})` };
      return out;
    },
  } satisfies Partial<Driver>);
}

function trialContext(): DriverContext {
  const mem = new Map<string, unknown>();
  const quiet = () => {};
  return {
    store: { get: <T>(k: string) => mem.get(k) as T | undefined, set: async (k, v) => void mem.set(k, v) },
    log: { info: quiet, warn: quiet, debug: quiet },
  };
}
