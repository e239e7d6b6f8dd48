// Batch API (Vasion's Batch Open / Batch Close): open, close, inspect, cancel, replay.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { requireAdmin } from './auth.js';
import { ApiError, badRequest } from '../system/errors.js';
import { BATCH_ID } from '../intake/options.js';
import { checkStatusUrl } from './guards.js';
import type { Appliance } from '../appliance.js';
import type { OpenBatch } from '../queue/batches.js';

const UUID = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const batchParam = { type: 'object', properties: { batchID: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['batchID'] };
const OPEN_FIELDS = ['batchID', 'jobIDs', 'requireAllJobs', 'name', 'statusURL'];

/** Batch Open's known properties under any case (`batchId`, `jobIds`); the rest become the batch's warnings. */
function splitOpenBody(req: FastifyRequest): void {
  const body = req.body as Record<string, unknown> | null;
  if (!body || typeof body !== 'object' || Array.isArray(body)) return;
  const known: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(body)) {
    const field = OPEN_FIELDS.find((f) => f.toLowerCase() === k.toLowerCase());
    if (field) known[field] = v;
    else unknown.push(k.slice(0, 64));
  }
  req.body = known;
  (req as FastifyRequest & { unknownProperties?: string[] }).unknownProperties = unknown.slice(0, 20);
}

/** The batch a Batch Close names: in the path, or `{"batchID": …}` in a JSON body (or `?batchID=`). */
function closeTarget(req: FastifyRequest): string {
  const fromParams = (req.params as { batchID?: string }).batchID;
  const body = (req.body ?? {}) as Record<string, unknown>;
  const fromBody = typeof body === 'object' ? Object.entries(body).find(([k]) => k.toLowerCase() === 'batchid')?.[1] : undefined;
  const fromQuery = Object.entries((req.query ?? {}) as Record<string, unknown>).find(([k]) => k.toLowerCase() === 'batchid')?.[1];
  const id = fromParams ?? fromBody ?? fromQuery;
  if (typeof id !== 'string' || !id || id.length > 128) throw badRequest('missing_batch_id', 'Batch Close needs the batch: POST /v1/batches/{batchID}/close, or POST /v1/batches/close with {"batchID": "…"}');
  return id;
}

export function registerBatchRoutes(server: FastifyInstance, app: Appliance): void {
  const own = (req: { principal: { id: string; scope: string } }, batchID: string) => {
    const b = app.batches.get(batchID);
    if (req.principal.scope !== 'admin' && b.owner !== req.principal.id) throw new ApiError(404, 'batch_not_found', `no batch "${batchID}"`);
    return b;
  };

  server.post('/v1/batches', {
    preValidation: async (req) => splitOpenBody(req),
    schema: {
      tags: ['batches'],
      summary: 'Batch Open: the ordered list of jobs that will print together (unknown properties are kept as warnings)',
      body: {
        type: 'object',
        required: ['batchID', 'jobIDs'],
        additionalProperties: true,
        properties: {
          batchID: { type: 'string', pattern: BATCH_ID.source },
          jobIDs: { type: 'array', minItems: 1, maxItems: 10000, items: { type: 'string', pattern: UUID } },
          requireAllJobs: { type: 'boolean', default: false },
          name: { type: 'string', maxLength: 256 },
          statusURL: { type: 'string', maxLength: 2048, pattern: '^https?://' },
        },
      },
    },
  }, async (req, reply) => {
    await checkStatusUrl(app, (req.body as { statusURL?: string }).statusURL);
    const unknown = (req as FastifyRequest & { unknownProperties?: string[] }).unknownProperties ?? [];
    const warnings = unknown.map((k) => `Batch Open property "${k}" is not one printbox knows; it was ignored`);
    const { batch, created } = await app.batches.create({ ...(req.body as OpenBatch), warnings }, req.principal.id);
    return reply.status(created ? 201 : 200).send(app.batches.view(batch));
  });

  server.get('/v1/batches', { schema: { tags: ['batches'] } }, async (req) => ({
    batches: app.batches.list().filter((b) => req.principal.scope === 'admin' || b.owner === req.principal.id).map((b) => app.batches.view(b)),
  }));

  server.get('/v1/batches/:batchID', { schema: { tags: ['batches'], params: batchParam } }, async (req) => app.batches.view(own(req, (req.params as { batchID: string }).batchID)));

  // A change to a batch opened on another node a moment ago: this node learns of it first (cluster mode).
  const close = async (req: FastifyRequest) => {
    await app.batches.caughtUp();
    const b = own(req, closeTarget(req));
    return app.batches.view(await app.batches.closeBatch(b.batchID));
  };
  server.post('/v1/batches/:batchID/close', { schema: { tags: ['batches'], summary: 'Batch Close: release the batch to print in listed order', params: batchParam } }, close);
  server.post('/v1/batches/close', { schema: { tags: ['batches'], summary: 'Batch Close with {"batchID": …} in the body' } }, close);

  server.delete('/v1/batches/:batchID', { schema: { tags: ['batches'], summary: 'Cancel every job of the batch not yet printed', params: batchParam } }, async (req) => {
    await app.batches.caughtUp();
    const b = own(req, (req.params as { batchID: string }).batchID);
    return app.batches.view(await app.batches.cancel(b.batchID));
  });

  server.post('/v1/batches/:batchID/replay', {
    schema: { tags: ['batches'], summary: 'Print a finished batch again, whole or from one job on', params: batchParam, body: { type: ['object', 'null'], properties: { fromJobID: { type: 'string', pattern: UUID } } } },
  }, async (req) => {
    requireAdmin(req);
    await app.batches.caughtUp();
    const b = own(req, (req.params as { batchID: string }).batchID);
    return app.batches.view(await app.batches.replay(b.batchID, (req.body as { fromJobID?: string } | null)?.fromJobID));
  });
}
