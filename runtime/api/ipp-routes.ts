// IPP over the HTTPS port: POSTs of application/ipp to /ipp/print/NAME (and Vasion's /v1/ipp/print/NAME) go to
// the IPP server (intake/ipp-server.ts), with HTTP Basic (token as password) or Bearer credentials.
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Appliance } from '../appliance.js';
import { IppServer, type IppCaller } from '../intake/ipp-server.js';
import { decoded } from '../intake/compression.js';
import type { PrinterRecord } from '../system/state.js';
import { anonymousSubmitter, credentials, tokenPrincipal } from './auth.js';
import { continueInOrder } from './continue-in-order.js';

export const IPP_PATHS = ['/ipp/print/:name', '/v1/ipp/print/:name'];
/** On the plain ipp:// listener, CUPS' own printer path and "/" too: `lpr -H box:631 -P front` and friends post there. */
const CUPS_PATH = '/printers/:name';

/** printer-state from the queue: stopped, processing while a job is being sent, idle otherwise. */
function printerStatus(app: Appliance, p: PrinterRecord) {
  const q = app.queue.printerState(p.id);
  if (p.stopped) return { state: 'stopped' as const, reasons: ['paused'], message: `stopped: ${p.stopped.reason}`.slice(0, 255), queued: q.queued };
  if (!p.enabled) return { state: 'stopped' as const, reasons: ['paused'], message: 'disabled by the administrator', queued: q.queued };
  if (q.state === 'printing' || q.state === 'waiting') return { state: 'processing' as const, reasons: q.lastError ? ['other-warning'] : [], message: q.lastError ? String(q.lastError).slice(0, 255) : 'printing', queued: q.queued };
  return { state: 'idle' as const, reasons: [], message: 'idle', queued: q.queued };
}

/** Who is asking: a valid token (Basic password or Bearer), or an anonymous submitter; wrong credentials are refused. */
function callerOf(app: Appliance, req: FastifyRequest): IppCaller | 'refused' {
  const token = credentials(req);
  // No credentials: the config's anonymousSubmit ranges (as on the HTTP API) make the caller anonymous, else nobody.
  if (!token) return { principal: anonymousSubmitter(app.cfg.anonymousSubmit, req.socket.remoteAddress) };
  const principal = tokenPrincipal(app.tokens, app.tokenGuesses, token, req.socket.remoteAddress);
  return principal ? { principal } : 'refused';
}

function unauthorized(reply: FastifyReply, message: string) {
  // The Basic challenge makes CUPS, macOS and Windows clients ask for (or send) the token as a password.
  return reply.status(401).header('www-authenticate', 'Basic realm="printbox", charset="UTF-8"').header('connection', 'close').send({ error: { code: 'unauthorized', message } });
}

export function registerIppRoutes(server: FastifyInstance, app: Appliance, opts: { scheme: 'ipps' | 'ipp' }): IppServer {
  const ipp = new IppServer({
    intake: app.intake,
    spool: app.spool,
    printers: app.printers,
    printerStatus: (p) => printerStatus(app, p),
    cancel: (id, owner) => app.cancelJob(id, owner),
    startedAt: app.startedAt,
    location: () => app.state.data.settings.name,
    log: app.log.child({ intake: 'ipp' }),
  });
  // The body stays a stream: the IPP reader takes the attributes and hands the document to the sealer.
  server.addContentTypeParser('application/ipp', (_req, payload, done) => done(null, payload));

  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const caller = callerOf(app, req);
    if (caller === 'refused') return unauthorized(reply, 'the API token is not valid (wrong or revoked)');
    const ct = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (ct !== 'application/ipp') return reply.status(415).send({ error: { code: 'not_ipp', message: 'post IPP requests as application/ipp' } });
    const encoding = String(req.headers['content-encoding'] ?? '').toLowerCase();
    if (encoding && !['gzip', 'deflate', 'identity'].includes(encoding)) return reply.status(415).send({ error: { code: 'unsupported_encoding', message: `Content-Encoding ${encoding} is not supported (gzip, deflate)` } });
    const host = req.headers.host ?? `${req.socket.localAddress}:${req.socket.localPort}`;
    const name = (req.params as { name?: string }).name;
    // A POST to "/" (CUPS clients) names its printer in printer-uri; it is answered with CUPS' /printers/ URIs.
    const base = req.url.startsWith('/v1/') ? '/v1/ipp/print' : req.url.startsWith('/printers/') || name === undefined ? '/printers' : '/ipp/print';
    // One iterator over the request for the IPP reader and for finishing the body below (see restOfBody).
    const rest = (req.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const body: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => rest };
    const out = await ipp.handle({
      printerName: name,
      uriBase: `${opts.scheme}://${host}${base}`,
      webBase: `${opts.scheme === 'ipps' ? 'https' : 'http'}://${host}`,
      caller,
      body: encoding && encoding !== 'identity' ? decoded(body, encoding) : body,
      httpDecoded: !!encoding && encoding !== 'identity',
    });
    // A request not read to its end (an error before the document was taken) cannot share its connection. What the
    // IPP reader left is read first: often nothing but the end of the message, which Node marks (req.complete) only
    // after the last body bytes reached the reader, so an answer to a request whose body is all attributes
    // (Validate-Job, Get-Printer-Attributes) would otherwise close the client's keep-alive connection at random.
    if (out.kind !== 'malformed' && !(await restOfBody(req, rest))) reply.header('connection', 'close');
    if (out.kind === 'unauthorized') return unauthorized(reply, 'send an API token as the Basic password (any user name) or as a Bearer token');
    if (out.kind === 'malformed') return reply.status(400).header('connection', 'close').send({ error: { code: 'ipp_malformed', message: out.message } });
    return reply.status(200).header('content-type', 'application/ipp').send(out.body);
  };
  // printboxPublic: the hook's token check is skipped; this handler does its own, since Get-Printer-Attributes is open.
  for (const url of opts.scheme === 'ipp' ? [...IPP_PATHS, CUPS_PATH, '/', '/jobs', '/jobs/', '/jobs/:id'] : IPP_PATHS) server.post(url, { schema: { hide: true }, config: { printboxPublic: true } }, handler);
  return ipp;
}

/**
 * At most this much of a request the IPP server did not read is read and dropped to keep its connection open, and
 * for at most this long (a client that stops sending gets its answer, and the connection is closed).
 */
const REST_OF_BODY_MAX = 256 * 1024;
const REST_OF_BODY_WAIT_MS = 2000;

/** Reads what is left of the request (within the bounds above): true when it was read to its end. */
async function restOfBody(req: FastifyRequest, rest: AsyncIterator<Buffer>): Promise<boolean> {
  if (req.raw.readableEnded) return true;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), REST_OF_BODY_WAIT_MS)));
  const read = (async () => {
    let n = 0;
    try {
      for (;;) {
        const next = await rest.next();
        if (next.done) return req.raw.complete;
        if ((n += next.value.length) > REST_OF_BODY_MAX) return false;
      }
    } catch {
      return false; // the client went away or the body is broken: nothing to keep open
    }
  })();
  try {
    return await Promise.race([read, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The optional plain ipp:// listener (config `ippPort`, off by default): IPP only, no API, no setup page. Tokens
 * would cross the LAN in clear here, so it is meant for the anonymousSubmit ranges of old clients.
 */
export async function buildPlainIppServer(app: Appliance): Promise<FastifyInstance> {
  const server = Fastify({
    loggerInstance: app.log.child({ api: 'ipp' }),
    logController: new LogController({ disableRequestLogging: true }),
    keepAliveTimeout: 30000,
    forceCloseConnections: true,
    requestTimeout: 0,
    connectionTimeout: 120000,
  }) as unknown as FastifyInstance;
  continueInOrder(server.server);
  registerIppRoutes(server, app, { scheme: 'ipp' });
  server.setNotFoundHandler((req, reply) => reply.status(404).send({ error: { code: 'route_not_found', message: `no route ${req.method} ${req.url.split('?')[0]}; this port serves IPP at /ipp/print/NAME` } }));
  return server;
}
