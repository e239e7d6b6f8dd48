// Who is asking: the principal on every API request, how a token is read from the request, the site id check,
// the anonymous-submit ranges (shared with every intake protocol), and the admin check.
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../system/errors.js';
import { AddressRanges } from '../system/address-ranges.js';

export interface Principal {
  id: string;
  name: string;
  scope: 'submit' | 'admin';
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

/**
 * The token a request carries: `Bearer <token>`, HTTP Basic with the token as the password (Vasion on-prem clients,
 * any user name), or the raw token with no scheme (Vasion Cloud Link clients send `Authorization: <API key>`;
 * quotes copied from Vasion's documentation are taken off).
 */
export function credentials(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization?.trim();
  if (!h) return undefined;
  const [kind, value] = h.split(/\s+/, 2);
  if (value === undefined) return h.replace(/^"(.*)"$/, '$1') || undefined;
  if (/^bearer$/i.test(kind)) return value.trim().replace(/^"(.*)"$/, '$1');
  if (/^basic$/i.test(kind)) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    return i >= 0 ? decoded.slice(i + 1) : decoded;
  }
  return undefined;
}

/** X-Site-ID is accepted always; when the config names a site, a request that sends another one is refused. */
export function checkSiteId(req: FastifyRequest, siteId: string | undefined): void {
  const sent = req.headers['x-site-id'];
  if (!siteId || sent === undefined) return;
  const value = (Array.isArray(sent) ? sent[0] : sent).trim().replace(/^"(.*)"$/, '$1');
  if (value !== siteId) throw new ApiError(403, 'wrong_site', `X-Site-ID "${value.slice(0, 64)}" is not this appliance's site`);
}

const rangesOf = new WeakMap<readonly string[], AddressRanges>();

/**
 * The one decision on anonymous submit for every intake protocol (HTTP API, IPP, …): a principal with submit scope
 * when the config's `anonymousSubmit` ranges hold the peer's address, otherwise undefined. Off when the list is empty.
 */
export function anonymousSubmitter(ranges: readonly string[] | undefined, address: string | undefined): Principal | undefined {
  if (!ranges?.length || !address) return undefined;
  let r = rangesOf.get(ranges);
  if (!r) rangesOf.set(ranges, (r = new AddressRanges(ranges)));
  if (!r.has(address)) return undefined;
  return { id: 'anonymous', name: `anonymous (${address.replace(/^::ffff:/i, '')})`, scope: 'submit' };
}

/** The warning the log and the setup page show while anonymous submit is on. */
export function anonymousWarning(ranges: readonly string[] | undefined): string | undefined {
  if (!ranges?.length) return undefined;
  return `anonymous submit is on: any client in ${ranges.join(', ')} may print without a token (config "anonymousSubmit")`;
}

export function requireAdmin(req: FastifyRequest): void {
  if (req.principal.scope !== 'admin') throw new ApiError(403, 'forbidden', 'this needs an admin token');
}
