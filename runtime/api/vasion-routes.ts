// Vasion's routes on printbox: POST /v1/print (Cloud Link's job path, the same handler as /v1/jobs), GET /healthcheck,
// and the import of the API keys a site's Vasion clients already hold.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, badRequest } from '../system/errors.js';
import { requireAdmin } from './auth.js';
import type { Appliance } from '../appliance.js';

/** Answered without a token: Cloud Link clients probe /healthcheck and look for "OK". */
export const VASION_PUBLIC_ROUTES = ['/healthcheck'];

/** What an anonymous client (config "anonymousSubmit", from its ranges only) may do: submit jobs and batches. */
export const ANONYMOUS_ROUTES: ReadonlySet<string> = new Set(['POST /v1/jobs', 'POST /v1/print', 'POST /v1/batches', 'POST /v1/batches/:batchID/close', 'POST /v1/batches/close']);

/** An imported secret is sent in a header: printable ASCII without spaces, long enough not to be guessed. */
const SECRET = /^[\x21-\x7e]{16,512}$/;

export function registerVasionRoutes(
  server: FastifyInstance,
  app: Appliance,
  jobs: { submitJob: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>; submitSchema: Record<string, unknown> },
): void {
  server.post('/v1/print', { schema: { ...jobs.submitSchema, summary: "Vasion's Print Job Request (API Cloud Link path): the same as POST /v1/jobs" } }, jobs.submitJob);

  server.get('/healthcheck', { schema: { tags: ['system'], summary: 'Liveness in Vasion Cloud Link style: 200 "OK" (no auth)', security: [] } }, async (_req, reply) => reply.type('text/plain').send('OK'));

  server.post('/v1/tokens/import', {
    schema: {
      tags: ['tokens'],
      summary: 'Keep an existing API key (e.g. one Vasion clients hold) as a printbox token; the secret is stored hashed and never shown',
      body: {
        type: 'object',
        required: ['name', 'token'],
        additionalProperties: false,
        properties: { name: { type: 'string', minLength: 1, maxLength: 64 }, scope: { type: 'string', enum: ['submit', 'admin'] }, token: { type: 'string' } },
      },
    },
  }, async (req, reply) => {
    requireAdmin(req);
    const b = req.body as { name: string; scope?: 'submit' | 'admin'; token: string };
    const secret = b.token.trim();
    if (!SECRET.test(secret)) throw badRequest('bad_token_secret', 'an imported secret is 16–512 printable characters without spaces');
    const rec = await app.tokens.import(b.name, b.scope ?? 'submit', secret);
    if (rec === 'exists') throw new ApiError(409, 'token_exists', 'this secret is already a token on this appliance');
    const { hash: _h, ...view } = rec;
    app.log.info({ tokenId: rec.id, name: rec.name, scope: rec.scope }, 'API token imported');
    return reply.status(201).send(view);
  });
}
