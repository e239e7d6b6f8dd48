// What a printer reports about itself (driver probe, mDNS pdl) turned into its `accepts` and `resolution`.
import type { PrinterStatus } from '../../drivers/contract.js';
import type { LearnedCapabilities } from '../system/printers.js';

/** 300 dpi where offered (text stays sharp, raster stays small), else the nearest the printer offers. */
export function pickResolution(offered: readonly number[]): number | undefined {
  if (!offered.length) return undefined;
  return [...offered].sort((a, b) => Math.abs(a - 300) - Math.abs(b - 300) || a - b)[0];
}

export function fromProbe(st: PrinterStatus): LearnedCapabilities {
  const res = st.supported?.rasterResolutions;
  const modes = st.supported?.colorModes;
  return {
    color: Array.isArray(modes) && modes.length ? modes.some((m) => typeof m === 'string' && /color/.test(m) && m !== 'bi-level') : undefined,
    accepts: st.formats?.filter((f) => typeof f === 'string' && f.includes('/')),
    resolution: Array.isArray(res) ? pickResolution(res.filter((n): n is number => typeof n === 'number')) : undefined,
  };
}
