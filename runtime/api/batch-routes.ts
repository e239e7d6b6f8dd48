// Batch API (Vasion's Batch Open / Batch Close): open, close, inspect, cancel, replay.
import type { FastifyInstance } from 'fastify';
import { requireAdmin } from './auth.js';
import { ApiError } from '../system/errors.js';
import type { Appliance } from '../appliance.js';

const UUID = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const batchParam = { type: 'object', properties: { batchID: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['batchID'] };

export function registerBatchRoutes(server: FastifyInstance, app: Appliance): void {
  const own = (req: { principal: { id: string; scope: string } }, batchID: string) => {
    const b = app.batches.get(batchID);
    if (req.principal.scope !== 'admin' && b.owner !== req.principal.id) throw new ApiError(404, 'batch_not_found', `no batch "${batchID}"`);
    return b;
  };

  server.post('/v1/batches', {
    schema: {
      tags: ['batches'],
      summary: 'Batch Open: the ordered list of jobs that will print together',
      body: {
        type: 'object',
        required: ['batchID', 'jobIDs'],
        additionalProperties: false,
        properties: {
          batchID: { type: 'string', minLength: 1, maxLength: 128 },
          jobIDs: { type: 'array', minItems: 1, maxItems: 10000, items: { type: 'string', pattern: UUID } },
          requireAllJobs: { type: 'boolean', default: false },
          name: { type: 'string', maxLength: 256 },
          statusURL: { type: 'string', maxLength: 2048, pattern: '^https?://' },
        },
      },
    },
  }, async (req, reply) => {
    const { batch, created } = await app.batches.create(req.body as never, req.principal.id);
    return reply.status(created ? 201 : 200).send(app.batches.view(batch));
  });

  server.get('/v1/batches', { schema: { tags: ['batches'] } }, async (req) => ({
    batches: app.batches.list().filter((b) => req.principal.scope === 'admin' || b.owner === req.principal.id).map((b) => app.batches.view(b)),
  }));

  server.get('/v1/batches/:batchID', { schema: { tags: ['batches'], params: batchParam } }, async (req) => app.batches.view(own(req, (req.params as { batchID: string }).batchID)));

  server.post('/v1/batches/:batchID/close', { schema: { tags: ['batches'], summary: 'Batch Close: release the batch to print in listed order', params: batchParam } }, async (req) => {
    const b = own(req, (req.params as { batchID: string }).batchID);
    return app.batches.view(await app.batches.closeBatch(b.batchID));
  });

  server.delete('/v1/batches/:batchID', { schema: { tags: ['batches'], summary: 'Cancel every job of the batch not yet printed', params: batchParam } }, async (req) => {
    const b = own(req, (req.params as { batchID: string }).batchID);
    return app.batches.view(await app.batches.cancel(b.batchID));
  });

  server.post('/v1/batches/:batchID/replay', {
    schema: { tags: ['batches'], summary: 'Print a finished batch again, whole or from one job on', params: batchParam, body: { type: ['object', 'null'], properties: { fromJobID: { type: 'string', pattern: UUID } } } },
  }, async (req) => {
    requireAdmin(req);
    const b = own(req, (req.params as { batchID: string }).batchID);
    return app.batches.view(await app.batches.replay(b.batchID, (req.body as { fromJobID?: string } | null)?.fromJobID));
  });
}
