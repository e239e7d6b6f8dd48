// Who is asking: the principal on every API request, how a token is read from the request, the site id check,
// the anonymous-submit ranges (shared with every intake protocol), and the admin check.
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../system/errors.js';
import { AddressRanges } from '../system/address-ranges.js';
import type { Tokens } from '../system/tokens.js';
import type { LoginLimiter } from './login-limit.js';

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

/**
 * The principal a token names, for every protocol that takes tokens (HTTP API, IPP): undefined for a wrong or revoked
 * token, which counts against the peer's address; an address with too many wrong tokens in the window gets 429 for
 * every token it sends until the window has passed — right ones too, or the answer would tell a guess that hit.
 */
export function tokenPrincipal(tokens: Tokens, guesses: LoginLimiter, token: string, address: string | undefined): Principal | undefined {
  const ip = (address ?? '').replace(/^::ffff:/i, '');
  const wait = guesses.blocked(ip);
  if (wait) throw new ApiError(429, 'too_many_attempts', `too many wrong API tokens from this address; try again in ${wait} s`, { retryAfterSeconds: wait });
  const rec = tokens.verify(token);
  if (!rec) {
    guesses.fail(ip);
    return undefined;
  }
  return { id: rec.id, name: rec.name, scope: rec.scope };
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
