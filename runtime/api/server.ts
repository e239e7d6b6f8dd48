// HTTP API v1: one set of routes, served over HTTPS (tokens) and over the local admin socket (file permissions).
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import { ApiError, notFound } from '../system/errors.js';
import { JOB_STATES, jobView, type JobState } from '../spool/jobs.js';
import { FIELD_LIMIT, readUpload } from '../intake/multipart.js';
import { ERROR_POLICIES } from '../system/state.js';
import { VERSION, type Appliance } from '../appliance.js';
import { TLS_POLICY, type TlsIdentity } from '../system/tls.js';
import { registerLanRoutes } from './lan-routes.js';
import { continueInOrder } from './continue-in-order.js';
import { registerBatchRoutes } from './batch-routes.js';
import { registerPrinterTrustRoutes } from './printer-trust-routes.js';
import { registerClusterRoutes } from './cluster-routes.js';
import { isPublicWebRoute, principalFromSession, registerWeb } from './setup-page.js';
import { anonymousSubmitter, checkSiteId, credentials, requireAdmin, tokenPrincipal, type Principal } from './auth.js';
import { ANONYMOUS_ROUTES, VASION_PUBLIC_ROUTES, registerVasionRoutes } from './vasion-routes.js';
import { registerLocalSetup } from './first-run.js';
import { limitConnections } from './connection-limits.js';
import { checkStatusUrl, printerViewFor } from './guards.js';
import { registerIppRoutes } from './ipp-routes.js';

const PUBLIC = new Set(['/v1/health', '/v1/openapi.json', ...VASION_PUBLIC_ROUTES]);
const METRICS = '/metrics';

const errorSchema = {
  type: 'object',
  // additionalProperties: an error's details (the printers that exist, the field refused) reach the client too.
  properties: { error: { type: 'object', additionalProperties: true, properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } },
};
const idParam = { type: 'object', properties: { id: { type: 'string', maxLength: 128 } }, required: ['id'] };
const printerBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    uri: { type: 'string' },
    enabled: { type: 'boolean' },
    errorPolicy: { type: 'string', enum: [...ERROR_POLICIES] },
    retry: {
      type: 'object',
      additionalProperties: false,
      properties: { limit: { type: 'integer', minimum: 0 }, baseMs: { type: 'integer', minimum: 0 }, maxMs: { type: 'integer', minimum: 0 }, heldRetryMs: { type: 'integer', minimum: 0 } },
    },
    defaults: { type: 'object' },
    accepts: { type: 'array', maxItems: 32, items: { type: 'string', maxLength: 128 }, description: 'Document formats the printer takes (MIME types); other formats are converted. [] hands the list back to what the printer reports' },
    resolution: { type: 'integer', description: 'Dots per inch for raster output (PWG raster, URF, ZPL, PCL)' },
    // LPD / RAW intake; checked by Printers (checkIntake) so every caller gets the same coded errors. null turns it off.
    intake: { type: ['object', 'null'] },
    announce: { type: 'boolean' },
  },
};

/** The owner filter for job reads: submit tokens see their own jobs only. */
const ownerOf = (req: FastifyRequest) => (req.principal.scope === 'admin' ? undefined : req.principal.id);

export async function buildServer(app: Appliance, opts: { mode: 'https' | 'local'; tls?: TlsIdentity }): Promise<FastifyInstance> {
  const server = Fastify({
    loggerInstance: app.log.child({ api: opts.mode }),
    // Fastify's two lines per request (with whole req/res objects) were ~5% of the CPU of a small job; one
    // line per answered request below, at info only when it failed.
    logController: new LogController({ disableRequestLogging: true }),
    ...(opts.mode === 'https' ? { https: { key: opts.tls!.key, cert: opts.tls!.cert, ...TLS_POLICY } } : {}),
    bodyLimit: 1024 * 1024,
    keepAliveTimeout: 30000,
    forceCloseConnections: true, // a stopping appliance must not wait for idle keep-alive clients
    requestTimeout: 0, // big uploads on slow links; idle sockets are still closed by the connection timeout
    connectionTimeout: 120000,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  }) as unknown as FastifyInstance;
  continueInOrder(server.server);

  await server.register(swagger, {
    openapi: {
      info: { title: 'printbox API', version: VERSION, description: 'Print jobs over HTTPS, sealed at rest, delivered in order.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, basic: { type: 'http', scheme: 'basic' } } },
      security: [{ bearer: [] }, { basic: [] }],
    },
  });
  await server.register(multipart, {
    limits: { fileSize: app.cfg.maxDocumentBytes + 1, files: 2, fields: 40, fieldSize: FIELD_LIMIT, parts: 50, headerPairs: 50, fieldNameSize: 100 },
  });

  // Before the auth hook: an unauthenticated dribble is cut as surely as any other.
  if (opts.mode === 'https') limitConnections(server, app.cfg, app.log);
  server.decorateRequest('principal', null as unknown as Principal);
  server.addHook('onRequest', async (req) => {
    if (opts.mode === 'local') {
      req.principal = { id: 'local', name: 'local admin socket', scope: 'admin' };
      return;
    }
    if (PUBLIC.has(req.routeOptions.url ?? '') || isPublicWebRoute(req) || (app.cfg.metricsOpen && req.routeOptions.url === METRICS)) return;
    checkSiteId(req, app.cfg.siteId);
    const token = credentials(req);
    if (!token) {
      const session = req.headers.authorization ? undefined : principalFromSession(req, app);
      if (session) {
        req.principal = session;
        return;
      }
      // Opt-in anonymous submit (config "anonymousSubmit"): only job and batch submission, only from its ranges.
      const anonymous = ANONYMOUS_ROUTES.has(`${req.method} ${req.routeOptions.url}`) ? anonymousSubmitter(app.cfg.anonymousSubmit, req.socket.remoteAddress) : undefined;
      if (anonymous) {
        req.principal = anonymous;
        return;
      }
      throw new ApiError(401, 'unauthorized', 'send an API token: "Authorization: Bearer <token>"');
    }
    const principal = tokenPrincipal(app.tokens, app.tokenGuesses, token, req.socket.remoteAddress);
    if (!principal) throw new ApiError(401, 'unauthorized', 'the API token is not valid (wrong or revoked)');
    req.principal = principal;
  });

  server.addHook('onResponse', async (req, reply) => {
    const failed = reply.statusCode >= 400;
    if (!failed && !app.log.isLevelEnabled('debug')) return;
    const line = { method: req.method, route: req.routeOptions.url ?? req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, by: req.principal?.name };
    if (failed) req.log.info(line, 'request answered with an error');
    else req.log.debug(line, 'request answered');
  });

  server.setErrorHandler((err: any, req, reply) => {
    // A failed upload may leave part of its body unread: never reuse that connection.
    if (req.method === 'POST' && req.isMultipart?.()) reply.header('connection', 'close');
    if (err instanceof ApiError) {
      const wait = err.details?.retryAfterSeconds;
      if (typeof wait === 'number') reply.header('retry-after', String(wait));
      return reply.status(err.status).send({ error: { code: err.code, message: err.message, ...err.details } });
    }
    if (err.validation) return reply.status(400).send({ error: { code: 'bad_request', message: `${err.validationContext ?? 'request'} ${err.message}` } });
    if (err.statusCode && err.statusCode < 500) {
      const code = err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'unsupported_media_type' : err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'body_too_large' : 'bad_request';
      return reply.status(err.statusCode).send({ error: { code, message: err.message } });
    }
    req.log.error({ err }, 'request failed');
    return reply.status(500).send({ error: { code: 'internal', message: 'internal error; see the appliance log' } });
  });
  server.setNotFoundHandler((req, reply) => reply.status(404).send({ error: { code: 'route_not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }));

  // ---- health & description
  server.get('/v1/health', { schema: { tags: ['system'], summary: 'Liveness and readiness (no auth)', security: [] } }, async (_req, reply) => {
    const base = { status: 'ok', ready: true, version: VERSION, uptimeSeconds: Math.round((Date.now() - app.startedAt) / 1000) };
    // Cluster mode: a node cut off from the quorum is alive but not ready, so the load balancer stops sending to it.
    if (app.cluster && !app.cluster.ready()) return reply.status(503).send({ ...base, ready: false, reason: app.cluster.reason() });
    return base;
  });
  server.get('/v1/openapi.json', { schema: { hide: true } }, async () => server.swagger());

  // ---- jobs (the same handler answers Vasion's POST /v1/print: the reply's top-level jobID is its PrintJobResponse)
  const submitSchema = {
    tags: ['jobs'],
    summary: 'Submit a print job (multipart/form-data: a "file" part plus fields or a "metadata" JSON part)',
    consumes: ['multipart/form-data'],
    response: { 201: { type: 'object', additionalProperties: true }, 200: { type: 'object', additionalProperties: true }, '4xx': errorSchema, 503: errorSchema, 507: errorSchema },
  };
  const submitJob = async (req: FastifyRequest, reply: FastifyReply) => {
    await app.intake.checkDiskSpace();
    const { job: valid, received } = await readUpload(app.intake, req);
    await checkStatusUrl(app, valid.statusURL, () => app.intake.discard(received));
    const { job, created } = await app.intake.accept(valid, received, req.principal.id);
    return reply.status(created ? 201 : 200).send(jobView(job));
  };
  server.post('/v1/jobs', { schema: submitSchema }, submitJob);

  server.get('/v1/jobs/:id', { schema: { tags: ['jobs'], params: idParam } }, async (req) => jobView(app.job((req.params as { id: string }).id, ownerOf(req))));

  server.get('/v1/jobs', {
    schema: {
      tags: ['jobs'],
      querystring: {
        type: 'object',
        properties: { printer: { type: 'string' }, state: { type: 'string', enum: [...JOB_STATES] }, minPages: { type: 'integer', minimum: 0 }, maxPages: { type: 'integer', minimum: 0 }, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }, cursor: { type: 'integer', minimum: 0 } },
      },
    },
  }, async (req) => {
    const q = req.query as { printer?: string; state?: JobState; minPages?: number; maxPages?: number; limit: number; cursor?: number };
    const byPages = q.minPages !== undefined || q.maxPages !== undefined;
    // A job whose page count is not known matches no page filter.
    const pagesOut = (j: { pages?: number }) => byPages && (j.pages === undefined || j.pages < (q.minPages ?? 0) || j.pages > (q.maxPages ?? Infinity));
    const printerId = q.printer ? app.printers.get(q.printer).id : undefined;
    const owner = ownerOf(req);
    if (!byPages) {
      const page = await app.spool.list({ printerId, state: q.state, owner, after: q.cursor, limit: q.limit });
      return { jobs: page.jobs.map(jobView), nextCursor: page.nextCursor };
    }
    // Page counts are not in the history index: pages of the listing are read until the filter has filled one
    // (bounded: at most 50 reads of 1,000 jobs; the cursor says where to go on).
    const out = [];
    let after = q.cursor;
    let more = true;
    for (let reads = 0; reads < 50 && more && out.length < q.limit; reads++) {
      const page = await app.spool.list({ printerId, state: q.state, owner, after, limit: 1000 });
      more = page.nextCursor !== null;
      for (const j of page.jobs) {
        after = j.seq;
        if (pagesOut(j)) continue;
        out.push(j);
        if (out.length === q.limit) break;
      }
      if (out.length === q.limit && after !== page.jobs[page.jobs.length - 1]?.seq) more = true; // stopped mid-page
    }
    return { jobs: out.map(jobView), nextCursor: more ? (after ?? null) : null };
  });

  server.delete('/v1/jobs/:id', { schema: { tags: ['jobs'], summary: 'Cancel a job (removes its sealed document)', params: idParam } }, async (req) => jobView(await app.cancelJob((req.params as { id: string }).id, ownerOf(req))));

  server.post('/v1/jobs/:id/release', { schema: { tags: ['jobs'], summary: 'Put a held job back in line', params: idParam } }, async (req) => {
    requireAdmin(req);
    const job = app.job((req.params as { id: string }).id);
    if (job.state !== 'held') throw new ApiError(409, 'job_not_held', `job ${job.id} is ${job.state}, not held`);
    return jobView((await app.queue.release(job.id))!);
  });

  server.post('/v1/jobs/:id/move', {
    schema: { tags: ['jobs'], summary: 'Move an unfinished job to another printer', params: idParam, body: { type: 'object', required: ['printer'], properties: { printer: { type: 'string' } } } },
  }, async (req) => {
    requireAdmin(req);
    const job = app.job((req.params as { id: string }).id);
    const target = app.printers.get((req.body as { printer: string }).printer);
    if (!['held', 'queued'].includes(job.state)) throw new ApiError(409, 'job_not_movable', `job ${job.id} is ${job.state}; only held or queued jobs move`);
    return jobView((await app.queue.move(job.id, target.id))!);
  });

  // ---- printers
  const printerView = (p: ReturnType<typeof app.printers.get>) => printerViewFor(app, p, 'admin');
  server.get('/v1/printers', { schema: { tags: ['printers'] } }, async (req) => ({ printers: app.printers.list().map((p) => printerViewFor(app, p, req.principal.scope)) }));
  server.get('/v1/printers/:id', { schema: { tags: ['printers'], params: idParam } }, async (req) => printerViewFor(app, app.printers.get((req.params as { id: string }).id), req.principal.scope));
  server.post('/v1/printers', { schema: { tags: ['printers'], body: { ...printerBody, required: ['name', 'uri'] } } }, async (req, reply) => {
    requireAdmin(req);
    const added = await app.printers.add(req.body as never);
    if (!added.accepts) void app.learnCapabilities(added.id); // fills accepts from the printer (IPP, PJL INFO) when the admin gave none
    return reply.status(201).send(printerView(added));
  });
  server.patch('/v1/printers/:id', { schema: { tags: ['printers'], params: idParam, body: printerBody } }, async (req) => {
    requireAdmin(req);
    const p = await app.printers.update((req.params as { id: string }).id, req.body as never);
    if ((req.body as { accepts?: string[] })?.accepts?.length === 0) void app.learnCapabilities(p.id); // handed back to the printer
    if (p.enabled && !p.stopped) app.queue.wakePrinter(p.id);
    return printerView(p);
  });
  server.post('/v1/printers/:id/resume', { schema: { tags: ['printers'], summary: 'Resume a stopped printer; its held head job goes first', params: idParam } }, async (req) => {
    requireAdmin(req);
    const p = app.printers.get((req.params as { id: string }).id);
    await app.queue.resumePrinter(p.id);
    return printerView(app.printers.get(p.id));
  });
  server.delete('/v1/printers/:id', { schema: { tags: ['printers'], params: idParam } }, async (req) => {
    requireAdmin(req);
    const p = app.printers.get((req.params as { id: string }).id);
    const waiting = app.spool.live().filter((j) => j.printerId === p.id).length;
    if (waiting) throw new ApiError(409, 'printer_has_jobs', `printer "${p.name}" still has ${waiting} unfinished jobs; cancel or move them first`);
    return printerView(await app.printers.remove(p.id));
  });
  server.get('/v1/printers/:id/status', { schema: { tags: ['printers'], summary: 'Ask the printer itself (driver probe)', params: idParam } }, async (req) => {
    requireAdmin(req); // a probe reaches out to the printer's address: not for submit tokens
    const p = app.printers.get((req.params as { id: string }).id);
    const st = await app.probePrinter(p);
    if (!st) throw new ApiError(501, 'probe_unsupported', `the ${new URL(p.uri).protocol.slice(0, -1)} driver cannot ask the printer for its state`);
    return { printer: p.id, ...st };
  });
  server.get('/v1/drivers', { schema: { tags: ['printers'], summary: 'Drivers and the URI parameters each accepts' } }, async () => ({
    drivers: app.drivers.all().map((d) => d.schema),
    problems: app.drivers.problems,
  }));

  // ---- tokens
  server.get('/v1/tokens', { schema: { tags: ['tokens'] } }, async (req) => {
    requireAdmin(req);
    return { tokens: app.tokens.list().map(({ hash: _h, ...t }) => t) };
  });
  server.post('/v1/tokens', {
    schema: { tags: ['tokens'], body: { type: 'object', properties: { name: { type: 'string', minLength: 1, maxLength: 64 }, scope: { type: 'string', enum: ['submit', 'admin'] } } } },
  }, async (req, reply) => {
    requireAdmin(req);
    const b = (req.body ?? {}) as { name?: string; scope?: 'submit' | 'admin' };
    const { token, record } = await app.tokens.create(b.name ?? 'token', b.scope ?? 'submit');
    const { hash: _h, ...view } = record;
    return reply.status(201).send({ ...view, token });
  });
  server.delete('/v1/tokens/:id', { schema: { tags: ['tokens'], params: idParam } }, async (req) => {
    requireAdmin(req);
    const id = (req.params as { id: string }).id;
    const rec = await app.tokens.revoke(id);
    if (!rec) throw notFound('token', id);
    const { hash: _h, ...view } = rec;
    return view;
  });

  // ---- appliance
  server.get('/v1/status', { schema: { tags: ['system'] } }, async (req) => {
    requireAdmin(req);
    return app.status();
  });
  server.get('/v1/settings/callback-secret', { schema: { tags: ['system'], summary: 'The HMAC secret that signs statusURL callbacks' } }, async (req) => {
    requireAdmin(req);
    return { algorithm: 'HMAC-SHA256 over "<x-printbox-timestamp>.<token id>.<body>", the token id being your client\'s own (also sent as x-printbox-token-id)', header: 'x-printbox-signature', secret: app.callbackSecret.toString('hex') };
  });

  registerLanRoutes(server, app);
  registerBatchRoutes(server, app);
  registerVasionRoutes(server, app, { submitJob, submitSchema });
  registerPrinterTrustRoutes(server, app);
  registerClusterRoutes(server, app);
  if (opts.mode === 'https') registerIppRoutes(server, app, { scheme: 'ipps' });
  if (opts.mode === 'https') await registerWeb(server, app, { tls: opts.tls! });
  else registerLocalSetup(server, app);
  return server;
}
