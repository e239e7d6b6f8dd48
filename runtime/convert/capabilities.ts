// What a printer reports about itself (driver probe: IPP attributes, PJL INFO; mDNS pdl) turned into its
// `accepts`, `resolution`, colour and duplex, and which printers may be asked at all.
import type { PrinterStatus } from '../../drivers/contract.js';
import type { CapabilitySource, PrinterRecord } from '../system/state.js';
import type { LearnedCapabilities } from '../system/printers.js';
import { canCarryPjl } from '../../drivers/pjl.js';
import { acceptedTypes } from './formats.js';

/** 300 dpi where offered (text stays sharp, raster stays small), else the nearest the printer offers. */
export function pickResolution(offered: readonly number[]): number | undefined {
  if (!offered.length) return undefined;
  return [...offered].sort((a, b) => Math.abs(a - 300) - Math.abs(b - 300) || a - b)[0];
}

export function fromProbe(st: PrinterStatus): LearnedCapabilities {
  const s = st.supported ?? {};
  const accepts = st.formats?.filter((f) => typeof f === 'string' && f.includes('/'));
  if (s.pjl === true) {
    // PJL INFO CONFIG / INQUIRE (drivers/raw.ts): each value only where the printer said so.
    return {
      accepts,
      resolution: typeof s.resolution === 'number' ? s.resolution : undefined,
      color: typeof s.color === 'boolean' ? s.color : undefined,
      duplex: typeof s.duplex === 'boolean' ? s.duplex : undefined,
    };
  }
  const res = s.rasterResolutions;
  const modes = s.colorModes;
  return {
    color: Array.isArray(modes) && modes.length ? modes.some((m) => typeof m === 'string' && /color/.test(m) && m !== 'bi-level') : undefined,
    accepts,
    resolution: Array.isArray(res) ? pickResolution(res.filter((n): n is number => typeof n === 'number')) : undefined,
    rasterTypes: Array.isArray(s.rasterTypes) && s.rasterTypes.length ? s.rasterTypes.filter((t): t is string => typeof t === 'string') : undefined,
  };
}

/** Whose word a probe of this printer is: IPP attributes, or PJL INFO on a RAW printer; undefined: it says nothing. */
export function capabilitySource(uri: string): Exclude<CapabilitySource, 'admin' | 'mdns'> | undefined {
  const scheme = new URL(uri).protocol;
  if (scheme === 'ipp:' || scheme === 'ipps:') return 'ipp';
  if (scheme === 'raw:') return 'pjl';
  return undefined;
}

/** Jobs for label and receipt printers: a printer whose jobs default to these is not sent a PJL question. */
const NO_PJL = new Set(['zpl', 'escpos', 'text']);

/**
 * The URI to probe a printer with. A RAW printer is asked with PJL INFO only where PJL is expected: not with
 * `pjl=false` (the admin said it prints PJL as text), not when what it is known to take (admin, mDNS) holds no
 * PJL language (a label or receipt printer would print the question), not when its jobs default to such a type.
 */
export function probeUri(p: PrinterRecord): URL {
  const u = new URL(p.uri);
  if (u.protocol !== 'raw:' || u.searchParams.get('pjl') === 'false') return u;
  const known = acceptedTypes(p.accepts ?? []);
  const noPjl = (known.length > 0 && !known.some(canCarryPjl)) || (p.defaults.contentType !== undefined && NO_PJL.has(p.defaults.contentType));
  if (noPjl) u.searchParams.set('pjl', 'false');
  return u;
}
