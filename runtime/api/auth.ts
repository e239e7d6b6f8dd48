// Who is asking: the principal on every API request, how a token is read from the request, and the admin check.
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../system/errors.js';

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

export function credentials(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const [kind, value] = h.split(' ', 2);
  if (/^bearer$/i.test(kind)) return value?.trim();
  if (/^basic$/i.test(kind) && value) {
    // Vasion clients send the token as the Basic password (any user name).
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    return i >= 0 ? decoded.slice(i + 1) : decoded;
  }
  return undefined;
}

export function requireAdmin(req: FastifyRequest): void {
  if (req.principal.scope !== 'admin') throw new ApiError(403, 'forbidden', 'this needs an admin token');
}
