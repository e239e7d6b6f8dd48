// Cluster mode's face on the API: GET /v1/cluster (nodes, their health, who drives which printer), and the
// gate that answers 503 for every change while this node is cut off from the quorum.
import type { FastifyInstance } from 'fastify';
import type { Appliance } from '../appliance.js';
import { ApiError } from '../system/errors.js';

export function registerClusterRoutes(server: FastifyInstance, app: Appliance): void {
  // A change needs the quorum (it is written to JetStream); reads are served from this node's copy.
  server.addHook('preHandler', async (req) => {
    if (!app.cluster || req.method === 'GET' || req.method === 'HEAD' || app.cluster.ready()) return;
    throw new ApiError(503, 'cluster_unavailable', app.cluster.reason());
  });

  server.get('/v1/cluster', { schema: { tags: ['system'], summary: 'The cluster: nodes, their health, and which node drives which printer' } }, async () => {
    if (!app.cluster) return { clustered: false, node: app.state.data.settings.name };
    return app.cluster.view(app.printers.list());
  });
}
