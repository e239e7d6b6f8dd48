// Configured printers: validation, lookup by id or name, and changes persisted through State.
import { randomUUID } from 'node:crypto';
import { CONTENT_TYPES, DUPLEX, ORIENTATIONS } from '../../drivers/contract.js';
import type { DriverRegistry } from '../../drivers/registry.js';
import { readParams } from '../../drivers/uri.js';
import { ApiError, badRequest, conflict, notFound } from './errors.js';
import { ERROR_POLICIES, type CapabilitySource, type LegacyIntake, type PrinterRecord, type State } from './state.js';
import type { Config } from './config.js';
import { restoreSecrets } from './redact.js';
import { pinOnFirstUse, wantsPin } from './printer-pin.js';
import { AddressRanges } from './address-ranges.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface PrinterInput {
  name?: string;
  uri?: string;
  enabled?: boolean;
  errorPolicy?: string;
  retry?: Partial<PrinterRecord['retry']>;
  defaults?: PrinterRecord['defaults'];
  accepts?: string[];
  resolution?: number;
  intake?: LegacyIntake | null;
  announce?: boolean;
}

/** What a printer itself reported about its languages and resolution (IPP attributes, mDNS pdl, PJL INFO). */
export interface LearnedCapabilities {
  accepts?: string[];
  resolution?: number;
  color?: boolean;
  duplex?: boolean;
  rasterTypes?: string[];
}

/** `intake`: lpd on/off, a RAW port, and the required allow list (those protocols carry no credentials). */
export function checkIntake(v: unknown): LegacyIntake | undefined {
  if (v === null || v === undefined) return undefined;
  const bad = (m: string) => badRequest('bad_intake', `intake ${m}, e.g. {"lpd": true, "raw": {"port": 9101}, "allow": ["10.0.0.0/8"]}`);
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('must be an object');
  const { lpd, raw, allow, ...rest } = v as Record<string, unknown>;
  if (Object.keys(rest).length) throw bad(`has unknown fields: ${Object.keys(rest).join(', ')}`);
  if (lpd !== undefined && typeof lpd !== 'boolean') throw bad('lpd must be true or false');
  let port: number | undefined;
  if (raw !== undefined && raw !== null) {
    port = (raw as { port?: unknown }).port as number;
    if (typeof raw !== 'object' || !Number.isInteger(port) || port < 1 || port > 65535) throw bad('raw.port must be a TCP port from 1 to 65535');
  }
  if (!Array.isArray(allow) || allow.length === 0 || !allow.every((a) => typeof a === 'string')) throw bad('needs "allow": the addresses or CIDR ranges that may send (LPD and RAW have no authentication)');
  try {
    new AddressRanges(allow as string[]);
  } catch (err) {
    throw badRequest('bad_intake', `intake.allow: ${(err as Error).message}`);
  }
  return { ...(lpd !== undefined && { lpd }), ...(port !== undefined && { raw: { port } }), allow: allow as string[] };
}

export class Printers {
  private listeners: (() => void)[] = [];

  constructor(private state: State, private drivers: DriverRegistry, private cfg: Config) {}

  /** Called after every change to the printers (the legacy intake listeners follow them). */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Tells the listeners; called after every change here, and by the cluster when another node changed the printers. */
  changed(): void {
    for (const fn of this.listeners) fn();
  }

  /** A RAW intake port belongs to one printer, and is not the API's or the LPD server's. */
  private checkRawPort(intake: LegacyIntake | undefined, selfId?: string): void {
    const port = intake?.raw?.port;
    if (!port) return;
    if (port === this.cfg.port || port === this.cfg.lpdPort) throw conflict('raw_port_in_use', `port ${port} is the appliance's own ${port === this.cfg.port ? 'HTTPS' : 'LPD'} port`);
    const other = this.list().find((p) => p.id !== selfId && p.intake?.raw?.port === port);
    if (other) throw conflict('raw_port_in_use', `port ${port} is already the RAW intake of printer "${other.name}"`);
  }

  list(): PrinterRecord[] {
    return this.state.data.printers;
  }

  find(idOrName: string): PrinterRecord | undefined {
    return this.state.data.printers.find((p) => p.id === idOrName) ?? this.state.data.printers.find((p) => p.name === idOrName);
  }

  get(idOrName: string): PrinterRecord {
    const p = this.find(idOrName);
    if (!p) throw notFound('printer', idOrName);
    return p;
  }

  private checkUri(uri: string): void {
    let u: URL;
    try {
      u = new URL(uri);
    } catch {
      throw badRequest('bad_printer_uri', `"${uri}" is not a URI; use e.g. raw://192.168.1.20:9100`);
    }
    const driver = this.drivers.forUri(u);
    if (!driver) throw badRequest('unknown_driver', `no driver for "${u.protocol}" printers; known: ${this.drivers.schemes().join(', ')}`);
    try {
      readParams(u, driver.schema.params);
    } catch (err) {
      throw badRequest('bad_printer_uri', (err as Error).message);
    }
  }

  private checkFields(p: PrinterInput): void {
    if (p.name !== undefined && (typeof p.name !== 'string' || !NAME.test(p.name))) throw badRequest('bad_printer_name', 'printer names are 1–64 letters, digits, "_", "-" or ".", starting with a letter or digit');
    if (p.uri !== undefined) this.checkUri(p.uri);
    if (p.errorPolicy !== undefined && !ERROR_POLICIES.includes(p.errorPolicy as never)) throw badRequest('bad_error_policy', `errorPolicy must be one of ${ERROR_POLICIES.join(', ')}`);
    const d = p.defaults ?? {};
    if (d.contentType && !CONTENT_TYPES.includes(d.contentType)) throw badRequest('bad_content_type', `contentType must be one of ${CONTENT_TYPES.join(', ')}`);
    if (d.duplex && !DUPLEX.includes(d.duplex)) throw badRequest('bad_duplex', `duplex must be one of ${DUPLEX.join(', ')}`);
    if (d.orientation && !ORIENTATIONS.includes(d.orientation)) throw badRequest('bad_orientation', `orientation must be one of ${ORIENTATIONS.join(', ')}`);
    if (p.accepts !== undefined) {
      const problem = acceptsProblem(p.accepts);
      if (problem) throw badRequest('bad_accepts', problem);
    }
    if (p.resolution !== undefined && (!Number.isInteger(p.resolution) || p.resolution < 72 || p.resolution > 2400)) throw badRequest('bad_resolution', 'resolution is a whole number of dots per inch from 72 to 2400');
    for (const [k, v] of Object.entries(p.retry ?? {})) {
      if (!Number.isInteger(v) || (v as number) < 0) throw badRequest('bad_retry', `retry.${k} must be a whole number ≥ 0`);
    }
    if (p.intake !== undefined) p.intake = checkIntake(p.intake) ?? null;
    if (p.announce !== undefined && typeof p.announce !== 'boolean') throw badRequest('bad_announce', 'announce must be true or false');
  }

  /** A valid, unused printer name made from what a printer calls itself ("HP LaserJet M404 (Ward 3)" → "HP-LaserJet-M404-Ward-3"). */
  nameFrom(advertised: string): string {
    const base = advertised.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+|-+$/g, '').slice(0, 60) || 'printer';
    let name = base;
    for (let i = 2; this.find(name); i++) name = `${base}-${i}`;
    return name;
  }

  async add(input: PrinterInput): Promise<PrinterRecord> {
    if (!input.name || !input.uri) throw badRequest('missing_field', 'a printer needs a name and a uri');
    this.checkFields(input);
    if (this.find(input.name)) throw conflict('printer_exists', `a printer named "${input.name}" already exists`);
    // ipps: the certificate seen now is the one trusted from now on (a printer that is off is pinned when edited later).
    const { uri } = await pinOnFirstUse(input.uri);
    const rec: PrinterRecord = {
      id: randomUUID(),
      name: input.name,
      uri,
      enabled: input.enabled ?? true,
      errorPolicy: (input.errorPolicy as PrinterRecord['errorPolicy']) ?? 'retry-job',
      retry: { ...this.cfg.defaultRetry, ...input.retry },
      defaults: input.defaults ?? {},
      ...capabilityFields(input),
      ...(input.intake && { intake: input.intake }),
      ...(input.announce === false && { announce: false }),
      createdAt: new Date().toISOString(),
    };
    this.checkRawPort(rec.intake);
    await this.state.change((d) => d.printers.push(rec));
    this.changed();
    return rec;
  }

  async update(idOrName: string, input: PrinterInput): Promise<PrinterRecord> {
    const cur = this.get(idOrName);
    // The page edits what it was shown: "***" in the URI keeps the stored secret.
    if (input.uri !== undefined) input = { ...input, uri: restoreSecrets(input.uri, cur.uri) };
    this.checkFields(input);
    if (input.name && input.name !== cur.name && this.find(input.name)) throw conflict('printer_exists', `a printer named "${input.name}" already exists`);
    // A URI without a pin (a new address, or the pin removed on purpose) is pinned to what the printer shows now.
    const uri = input.uri !== undefined ? (await pinOnFirstUse(input.uri)).uri : undefined;
    const next: PrinterRecord = {
      ...cur,
      ...(input.name !== undefined && { name: input.name }),
      ...(uri !== undefined && { uri }),
      ...(input.enabled !== undefined && { enabled: input.enabled }),
      ...(input.errorPolicy !== undefined && { errorPolicy: input.errorPolicy as PrinterRecord['errorPolicy'] }),
      retry: { ...cur.retry, ...input.retry },
      defaults: input.defaults !== undefined ? input.defaults : cur.defaults,
      ...capabilityFields(input),
      intake: input.intake !== undefined ? (input.intake ?? undefined) : cur.intake,
      ...(input.announce !== undefined && { announce: input.announce }),
    };
    if (!next.intake) delete next.intake;
    this.checkRawPort(next.intake, cur.id);
    await this.state.change((d) => {
      d.printers = d.printers.map((p) => (p.id === cur.id ? next : p));
    });
    this.changed();
    return next;
  }

  /**
   * Trust on first use for an ipps printer that was off when added: its first reachable certificate is pinned.
   * Every other printer is answered at once, without a promise: delivery reaches the printer in the same turn.
   */
  pinIfNeeded(p: PrinterRecord): PrinterRecord | Promise<PrinterRecord> {
    return wantsPin(p.uri) ? this.pin(p) : p;
  }

  private async pin(p: PrinterRecord): Promise<PrinterRecord> {
    const { uri, unpinned } = await pinOnFirstUse(p.uri);
    if (unpinned || !this.find(p.id)) return p;
    const next = { ...p, uri };
    await this.state.change((d) => {
      d.printers = d.printers.map((x) => (x.id === p.id ? { ...x, uri } : x));
    });
    return next;
  }

  /**
   * Records what the printer says it takes. The admin has the last word: a list the admin set is kept, and an
   * admin who clears it (accepts: []) hands it back to the printer's own reports.
   */
  async learn(id: string, caps: LearnedCapabilities, from: Exclude<CapabilitySource, 'admin'>): Promise<PrinterRecord | undefined> {
    const p = this.find(id);
    if (!p || p.acceptsFrom === 'admin' || (!caps.accepts?.length && !caps.resolution)) return p;
    const accepts = caps.accepts?.length ? [...new Set(caps.accepts.map((m) => m.toLowerCase()))].slice(0, 32) : p.accepts;
    if (acceptsProblem(accepts ?? []) !== null) return p;
    const resolution = caps.resolution ?? p.resolution;
    const color = caps.color ?? p.color;
    const duplex = caps.duplex ?? p.duplex;
    const rasterTypes = caps.rasterTypes?.slice(0, 16) ?? p.rasterTypes;
    const same = String(p.accepts) === String(accepts) && p.resolution === resolution && p.color === color && p.duplex === duplex && String(p.rasterTypes) === String(rasterTypes);
    if (p.acceptsFrom === from && same) return p;
    const next = { ...p, accepts, resolution, color, duplex, rasterTypes, acceptsFrom: from };
    await this.state.change((d) => {
      d.printers = d.printers.map((x) => (x.id === id ? next : x));
    });
    return next;
  }

  async setStopped(id: string, reason: string | null): Promise<void> {
    const p = this.find(id);
    if (!p) return;
    if (!reason && !p.stopped) return;
    await this.state.change((d) => {
      d.printers = d.printers.map((x) => (x.id === id ? { ...x, stopped: reason ? { reason, at: new Date().toISOString() } : undefined } : x));
    });
  }

  async remove(idOrName: string): Promise<PrinterRecord> {
    const cur = this.get(idOrName);
    await this.state.change((d) => {
      d.printers = d.printers.filter((p) => p.id !== cur.id);
    });
    this.changed();
    return cur;
  }
}

const MIME_SYNTAX = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/;

/** Checks an `accepts` list from an admin or a printer; returns an error message or null. */
export function acceptsProblem(v: unknown): string | null {
  if (!Array.isArray(v)) return 'accepts must be a list of MIME types, e.g. ["application/vnd.hp-pcl"]';
  if (v.length > 32) return 'accepts lists at most 32 MIME types';
  for (const m of v) if (typeof m !== 'string' || !MIME_SYNTAX.test(m.toLowerCase())) return `accepts: "${String(m).slice(0, 80)}" is not a MIME type such as application/pdf`;
  return null;
}

/** accepts/resolution as the admin gives them; an empty list means "ask the printer again". */
function capabilityFields(input: PrinterInput): Partial<PrinterRecord> {
  const out: Partial<PrinterRecord> = {};
  if (input.accepts !== undefined) {
    const list = [...new Set(input.accepts.map((m) => m.toLowerCase()))];
    out.accepts = list.length ? list : undefined;
    out.acceptsFrom = list.length ? 'admin' : undefined;
  }
  if (input.resolution !== undefined) out.resolution = input.resolution;
  return out;
}

export function assertEnum<T extends string>(value: unknown, allowed: readonly T[], code: string, field: string): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) throw new ApiError(400, code, `${field} must be one of ${allowed.join(', ')}`);
  return value as T;
}
