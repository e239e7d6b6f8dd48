// Reads a driver's declared URI parameters from a printer URI, with defaults and type checks.
import type { UriParam } from './contract.js';

export class UriParamError extends Error {
  code = 'bad_printer_uri';
}

export function readParams(uri: URL, params: UriParam[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const p of params) {
    const raw = uri.searchParams.get(p.name);
    if (raw === null) {
      if (p.default !== undefined) out[p.name] = p.default;
      continue;
    }
    out[p.name] = parseParam(p, raw);
  }
  return out;
}

function parseParam(p: UriParam, raw: string): string | number | boolean {
  switch (p.type) {
    case 'integer': {
      const n = Number(raw);
      if (!Number.isInteger(n)) throw new UriParamError(`URI parameter ${p.name} must be a whole number, got "${raw}"`);
      return n;
    }
    case 'boolean':
      if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
      if (['0', 'false', 'no', 'off'].includes(raw)) return false;
      throw new UriParamError(`URI parameter ${p.name} must be true or false, got "${raw}"`);
    case 'enum':
      if (!p.values?.includes(raw)) throw new UriParamError(`URI parameter ${p.name} must be one of ${p.values?.join(', ')}, got "${raw}"`);
      return raw;
    default:
      return raw;
  }
}

/** Host and port of a network printer URI, with IPv6 brackets removed. */
export function hostPort(uri: URL, defaultPort: number): { host: string; port: number } {
  const host = uri.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new UriParamError(`printer URI ${uri.href} has no host`);
  return { host, port: uri.port ? Number(uri.port) : defaultPort };
}
