// The setup page's server side: first-run setup, password sessions, live events (SSE), the certificate, and web/dist.
import fs from 'node:fs/promises';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { X509Certificate, createPrivateKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Appliance } from '../appliance.js';
import { requireAdmin, type Principal } from './auth.js';
import { ApiError, badRequest } from '../system/errors.js';
import { isFinal, jobView, type JobRecord } from '../spool/jobs.js';
import { writeFileAtomic } from '../system/fsutil.js';
import { TLS_POLICY, boxNames, certNames, fingerprintOf, generateIdentity, type TlsIdentity } from '../system/tls.js';
import { hashPassword, passwordProblem, verifyPassword } from '../system/password.js';
import { LoginLimiter } from './login-limit.js';
import { printerViewFor } from './guards.js';
import { checkSetupProof, finishSetup, readSetupCode, setupWindow, webSettings, type WebSettings } from './first-run.js';

export { webSettings, type WebSettings };

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Reachable without a token or session (the page itself, sign-in, first-run setup). */
    printboxPublic?: boolean;
  }
}

export const SESSION_COOKIE = 'pbx_session';
export const CSRF_HEADER = 'x-printbox-csrf';
const DEFAULT_IDLE_MS = 12 * 3600 * 1000;
const MAX_SESSION_MS = 7 * 24 * 3600 * 1000;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** web/dist of the app root: the nearest folder above this file (runtime/api/ from source, dist/ in the bundle) with package.json. */
const DIST = path.join(appRoot(import.meta.dirname), 'web/dist');

function appRoot(from: string): string {
  for (let dir = from, i = 0; i < 8; i++, dir = path.dirname(dir)) if (existsSync(path.join(dir, 'package.json'))) return dir;
  return path.resolve(from, '..');
}

interface Session {
  csrf: string;
  createdAt: number;
  lastSeen: number;
}

/** Sessions live in memory only: a restart signs everyone out, and no session secret ever touches the disk. */
class Sessions {
  private byId = new Map<string, Session>();
  constructor(private idleMs: () => number) {}

  create(): { id: string; session: Session } {
    this.sweep();
    const id = randomBytes(32).toString('base64url');
    const now = Date.now();
    const session = { csrf: randomBytes(24).toString('base64url'), createdAt: now, lastSeen: now };
    this.byId.set(id, session);
    return { id, session };
  }

  /** The live session for this id (its idle clock restarted), or undefined when unknown or expired. */
  touch(id: string): Session | undefined {
    const s = this.byId.get(id);
    if (!s) return undefined;
    const now = Date.now();
    if (now - s.lastSeen > this.idleMs() || now - s.createdAt > MAX_SESSION_MS) {
      this.byId.delete(id);
      return undefined;
    }
    s.lastSeen = now;
    return s;
  }

  drop(id: string): void {
    this.byId.delete(id);
  }

  dropAll(): void {
    this.byId.clear();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, s] of this.byId) if (now - s.lastSeen > this.idleMs() || now - s.createdAt > MAX_SESSION_MS) this.byId.delete(id);
  }
}

const stores = new WeakMap<Appliance, Sessions>();

function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

const sameSecret = (a: string | undefined, b: string) => typeof a === 'string' && a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** True for the routes anyone may reach (the page's files, sign-in, first-run setup); the auth hook lets them through. */
export function isPublicWebRoute(req: FastifyRequest): boolean {
  return req.routeOptions.config?.printboxPublic === true;
}

/**
 * The principal of a signed-in browser, for requests without an Authorization header.
 * undefined: no session cookie. Throws 401 session_expired for a stale cookie, 403 csrf_failed for a
 * state-changing request without the session's CSRF header (SameSite=Strict is the first wall, this the second).
 */
export function principalFromSession(req: FastifyRequest, app: Appliance): Principal | undefined {
  const sessions = stores.get(app);
  const id = readCookie(req.headers.cookie, SESSION_COOKIE);
  if (!sessions || !id) return undefined;
  const s = sessions.touch(id);
  if (!s) throw new ApiError(401, 'session_expired', 'your sign-in has expired; sign in again');
  if (!SAFE_METHODS.has(req.method) && !sameSecret(req.headers[CSRF_HEADER] as string | undefined, s.csrf)) {
    throw new ApiError(403, 'csrf_failed', `a change from the setup page must carry the "${CSRF_HEADER}" header of its session; reload the page`);
  }
  return { id: 'web-session', name: 'web', scope: 'admin' };
}

function sessionCookie(value: string, clear = false): string {
  return `${SESSION_COOKIE}=${value}; HttpOnly; Secure; SameSite=Strict; Path=/${clear ? '; Max-Age=0' : ''}`;
}

const HOST_OR_IP = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^[0-9.]{7,15}$|^[0-9A-Fa-f:]{2,39}$/;

export interface WebOptions {
  tls: TlsIdentity;
  /** Idle time after which a session ends; default 12 h, or cfg.webSessionIdleMs (read on each request). */
  sessionIdleMs?: number;
}

export async function registerWeb(server: FastifyInstance, app: Appliance, opts: WebOptions): Promise<void> {
  const idleMs = () => opts.sessionIdleMs ?? (app.cfg as { webSessionIdleMs?: number }).webSessionIdleMs ?? DEFAULT_IDLE_MS;
  const sessions = new Sessions(idleMs);
  stores.set(app, sessions);
  const limiter = new LoginLimiter();
  const pub = { printboxPublic: true };
  const needsSetup = () => !webSettings(app).passwordHash;

  const startSession = (reply: FastifyReply) => {
    const { id, session } = sessions.create();
    reply.header('set-cookie', sessionCookie(id));
    return { signedIn: true, csrf: session.csrf, idleMinutes: Math.round(idleMs() / 60000) };
  };

  // ---- first-run setup (who may run it: first-run.ts)
  server.get('/v1/setup', { config: pub, schema: { tags: ['web'], summary: 'Is the first-run setup still to be done? (no auth)', security: [] } }, async () => ({
    needsSetup: needsSetup(),
    setupWindow: setupWindow(app, await readSetupCode(app.cfg.dataDir)),
    name: app.state.data.settings.name,
    fingerprint: opts.tls.fingerprint,
    names: opts.tls.names,
  }));

  server.post('/v1/setup', {
    config: pub,
    schema: {
      tags: ['web'],
      summary: 'First-run setup with the setup code from the console: the admin password and the appliance name (only once)',
      security: [],
      body: { type: 'object', required: ['password'], properties: { password: { type: 'string', maxLength: 1024 }, name: { type: 'string' }, setupCode: { type: 'string', maxLength: 256 } } },
    },
  }, async (req, reply) => {
    await checkSetupProof(app, req);
    await finishSetup(app, req.body as { password: string; name?: string });
    req.log.info('first-run setup done from the web page');
    return reply.status(201).send(startSession(reply));
  });

  // ---- sessions
  server.get('/v1/session', { config: pub, schema: { tags: ['web'], summary: 'Am I signed in? (no auth)', security: [] } }, async (req) => {
    const id = readCookie(req.headers.cookie, SESSION_COOKIE);
    const s = id ? sessions.touch(id) : undefined;
    if (!s) return { signedIn: false, expired: Boolean(id), needsSetup: needsSetup() };
    return { signedIn: true, csrf: s.csrf, idleMinutes: Math.round(idleMs() / 60000), needsSetup: false };
  });

  server.post('/v1/session', {
    config: pub,
    schema: { tags: ['web'], summary: 'Sign in with the admin password; sets the pbx_session cookie', security: [], body: { type: 'object', required: ['password'], properties: { password: { type: 'string', maxLength: 1024 } } } },
  }, async (req, reply) => {
    if (needsSetup()) throw new ApiError(409, 'setup_needed', 'this appliance has no admin password yet; finish the first-run setup');
    const password = (req.body as { password: string }).password;
    if (!(await limiter.check(req.ip, () => verifyPassword(password, webSettings(app).passwordHash!)))) {
      req.log.warn({ ip: req.ip }, 'wrong admin password on the web page');
      throw new ApiError(401, 'wrong_password', 'that password is not right');
    }
    return startSession(reply);
  });

  server.delete('/v1/session', { config: pub, schema: { tags: ['web'], summary: 'Sign out', security: [] } }, async (req, reply) => {
    const id = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (id) sessions.drop(id);
    reply.header('set-cookie', sessionCookie('', true));
    return { signedIn: false };
  });

  // A signed-in browser proves the current password; an admin API token (the CLI's way in) may reset a forgotten one.
  server.post('/v1/session/password', {
    schema: { tags: ['web'], summary: 'Change the admin password (signs out every browser); with an admin token, "current" may be left out', body: { type: 'object', required: ['password'], properties: { current: { type: 'string' }, password: { type: 'string' } } } },
  }, async (req, reply) => {
    requireAdmin(req);
    const { current, password } = req.body as { current?: string; password: string };
    if (req.principal.id === 'web-session') {
      if (!(await limiter.check(req.ip, () => verifyPassword(current ?? '', webSettings(app).passwordHash ?? '')))) {
        throw new ApiError(401, 'wrong_password', 'the current password is not right');
      }
    }
    const problem = passwordProblem(password);
    if (problem) throw badRequest('weak_password', problem);
    const passwordHash = await hashPassword(password);
    await app.state.change((d) => {
      (d as unknown as { web: WebSettings }).web = { passwordHash, passwordSetAt: new Date().toISOString() };
    });
    sessions.dropAll();
    req.log.info({ by: req.principal.name }, 'admin password of the web page changed');
    return req.principal.id === 'web-session' ? startSession(reply) : { signedIn: false, changed: true };
  });

  registerEvents(server, app);
  registerCertificate(server, app, opts.tls);
  registerStatic(server);
}

// ---- live events

function printersView(app: Appliance) {
  return app.printers.list().map((p) => printerViewFor(app, p, 'admin'));
}

/** The newest finished jobs plus every unfinished one: what the queue screen shows. */
async function recentJobs(app: Appliance, keep = 200) {
  const recent = (await app.spool.list({ newestFirst: true, limit: keep })).jobs.reverse();
  const from = recent.length ? recent[0].seq : Infinity;
  // Bounded: a huge backlog shows its oldest thousand; the rest stay reachable through GET /v1/jobs.
  const older = app.spool.all().filter((j) => j.seq < from && !isFinal(j.state)).slice(0, 1000);
  return [...older, ...recent].map(jobView);
}

function registerEvents(server: FastifyInstance, app: Appliance): void {
  const hub = new EventEmitter<{ event: [string, unknown] }>();
  hub.setMaxListeners(0);
  let printersTimer: NodeJS.Timeout | null = null;
  // Printer state follows job changes; a burst of job events sends one printer update.
  const printersChanged = () => {
    printersTimer ??= setTimeout(() => {
      printersTimer = null;
      hub.emit('event', 'printers', { printers: printersView(app) });
    }, 100);
  };
  app.queue.on('job', (job: JobRecord) => {
    if (hub.listenerCount('event') === 0) return;
    hub.emit('event', 'job', jobView(job));
    printersChanged();
  });
  server.addHook('onResponse', async (req, reply) => {
    if (!SAFE_METHODS.has(req.method) && reply.statusCode < 400 && /^\/v1\/(printers|discovered)/.test(req.url) && hub.listenerCount('event') > 0) printersChanged();
  });
  app.onClose(async () => {
    if (printersTimer) clearTimeout(printersTimer);
  });

  server.get('/v1/events', { schema: { tags: ['web'], summary: 'Server-Sent Events: a snapshot, then job and printer changes' } }, (req, reply) => {
    requireAdmin(req);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const send = (event: string, data: unknown) => {
      // A client that stops reading is cut off rather than buffered without bound; it reconnects and gets a snapshot.
      if (res.writableLength > 4 * 1024 * 1024) return void res.destroy();
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    res.write('retry: 2000\n\n');
    // Events that happen while the snapshot is read wait for it, so the page never sees a change before the state it changes.
    const early: [string, unknown][] = [];
    const hold = (event: string, data: unknown) => void early.push([event, data]);
    hub.on('event', hold);
    void recentJobs(app).then((jobs) => {
      hub.off('event', hold);
      if (res.destroyed) return;
      send('snapshot', { printers: printersView(app), jobs });
      for (const [e, d] of early) send(e, d);
      hub.on('event', send);
    }, (err) => {
      hub.off('event', hold);
      res.destroy(err);
    });
    const ping = setInterval(() => res.write(': keep-alive\n\n'), 25000);
    res.on('close', () => {
      clearInterval(ping);
      hub.off('event', send);
    });
  });
}

// ---- certificate

function certificateView(tls: TlsIdentity, custom: boolean) {
  const x = new X509Certificate(tls.cert);
  return {
    names: tls.names,
    fingerprint: tls.fingerprint,
    subject: x.subject,
    issuer: x.issuer,
    validFrom: new Date(x.validFrom).toISOString(),
    validTo: new Date(x.validTo).toISOString(),
    selfSigned: x.issuer === x.subject,
    custom,
  };
}

const certError = (code: string, message: string) => new ApiError(400, code, message);

/** Checks an uploaded certificate chain and key before anything is written; every refusal says why in words. */
export function validateUpload(certPem: string, keyPem: string, now = new Date()): { chain: X509Certificate[]; key: KeyObject; names: string[]; warnings: string[] } {
  const blocks = certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) throw certError('certificate_unreadable', 'that is not a PEM certificate: paste the text from "-----BEGIN CERTIFICATE-----" to "-----END CERTIFICATE-----"');
  const chain = blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch {
      throw certError('certificate_unreadable', `certificate ${i + 1} of ${blocks.length} cannot be read (damaged or not a certificate)`);
    }
  });
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    const encrypted = /ENCRYPTED|passphrase/i.test(keyPem + (err as Error).message);
    throw certError('key_unreadable', encrypted ? 'the private key is protected by a passphrase; upload it without one (openssl pkey -in key.pem -out plain.pem)' : 'the private key cannot be read: paste a PEM key ("-----BEGIN PRIVATE KEY-----" …)');
  }
  const leaf = chain[0];
  if (!leaf.checkPrivateKey(key)) throw certError('key_mismatch', 'the private key does not belong to this certificate (the first certificate must be the server certificate)');
  if (new Date(leaf.validTo) < now) throw certError('certificate_expired', `the certificate expired on ${new Date(leaf.validTo).toISOString().slice(0, 10)}`);
  if (new Date(leaf.validFrom) > now) throw certError('certificate_not_yet_valid', `the certificate is valid only from ${new Date(leaf.validFrom).toISOString().slice(0, 10)}`);
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i].checkIssued(chain[i + 1])) throw certError('chain_out_of_order', `certificate ${i + 1} was not issued by certificate ${i + 2}: put the server certificate first, then each issuer in order`);
  }
  if (!leaf.subjectAltName) throw certError('certificate_without_names', 'the certificate names no host (no subjectAltName); browsers refuse such certificates');
  try {
    createSecureContext({ cert: certPem, key: keyPem });
  } catch (err) {
    throw certError('certificate_rejected', `the TLS library refuses this certificate and key: ${(err as Error).message}`);
  }
  const names = certNames(certPem);
  const wanted = boxNames();
  const warnings: string[] = [];
  if (!names.some((n) => [...wanted.dns, ...wanted.ips].includes(n))) warnings.push(`none of the certificate's names (${names.join(', ')}) is a name or address of this box; browsers will warn unless you reach it by one of those names`);
  if (leaf.issuer === leaf.subject) warnings.push('the certificate is self-signed: browsers will still ask to trust it');
  return { chain, key, names, warnings };
}

function registerCertificate(server: FastifyInstance, app: Appliance, tls: TlsIdentity): void {
  const dir = path.join(app.cfg.dataDir, 'tls');
  const marker = path.join(dir, 'custom');
  const isCustom = () => fs.stat(marker).then(() => true, () => false);

  /** Writes the pair and switches the listening server to it: new connections use it at once, no restart. */
  const install = async (certPem: string, keyPem: string, custom: boolean) => {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(path.join(dir, 'key.pem'), keyPem, 0o600);
    await writeFileAtomic(path.join(dir, 'cert.pem'), certPem, 0o644);
    if (custom) await writeFileAtomic(marker, `uploaded ${new Date().toISOString()}\n`, 0o644);
    else await fs.rm(marker, { force: true });
    (server.server as unknown as TlsServer).setSecureContext?.({ key: keyPem, cert: certPem, ...TLS_POLICY });
    Object.assign(tls, { key: keyPem, cert: certPem, fingerprint: fingerprintOf(certPem), names: certNames(certPem) });
  };

  server.get('/v1/certificate', { schema: { tags: ['web'], summary: "The appliance's TLS certificate: names, fingerprint, validity" } }, async (req) => {
    requireAdmin(req);
    return certificateView(tls, await isCustom());
  });

  // Public on purpose: every TLS handshake hands this certificate out anyway; the page links to it for download.
  server.get('/v1/certificate.pem', { config: { printboxPublic: true }, schema: { tags: ['web'], summary: 'Download the certificate (PEM)', security: [] } }, async (_req, reply) => {
    return reply.type('application/x-pem-file').header('content-disposition', 'attachment; filename="printbox.pem"').send(tls.cert);
  });

  server.post('/v1/certificate/regenerate', {
    schema: { tags: ['web'], summary: 'Issue a new self-signed certificate, with extra host names or addresses', body: { type: ['object', 'null'], properties: { extraNames: { type: 'array', maxItems: 32, items: { type: 'string', maxLength: 253 } } } } },
  }, async (req) => {
    requireAdmin(req);
    const extra = ((req.body as { extraNames?: string[] } | null)?.extraNames ?? []).map((n) => n.trim()).filter(Boolean);
    const bad = extra.find((n) => !HOST_OR_IP.test(n));
    if (bad) throw badRequest('bad_host_name', `"${bad}" is not a host name or an IP address`);
    const { key, cert } = await generateIdentity(boxNames(extra));
    await install(cert, key, false);
    req.log.info({ fingerprint: tls.fingerprint }, 'new self-signed certificate issued from the web page');
    return { ...certificateView(tls, false), appliedLive: true };
  });

  server.post('/v1/certificate', {
    schema: { tags: ['web'], summary: 'Install your own certificate (PEM chain, server certificate first) and private key', body: { type: 'object', required: ['cert', 'key'], properties: { cert: { type: 'string', maxLength: 262144 }, key: { type: 'string', maxLength: 65536 } } } },
  }, async (req) => {
    requireAdmin(req);
    const { cert, key } = req.body as { cert: string; key: string };
    const { warnings } = validateUpload(cert, key);
    await install(cert.trim() + '\n', key.trim() + '\n', true);
    req.log.info({ fingerprint: tls.fingerprint }, 'uploaded certificate installed from the web page');
    return { ...certificateView(tls, true), warnings, appliedLive: true };
  });
}

// ---- the page's files

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
};

// Nothing but the box itself: no CDN, no fonts, no frames.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>printbox</title><body>
<h1>printbox</h1><p>The setup page is not built. In the checkout run <code>npm run build:web</code> (or <code>npm start</code>, which builds it), then reload.</p>
<p>The API works without it: see <a href="/v1/openapi.json">/v1/openapi.json</a>.</p>`;

function registerStatic(server: FastifyInstance): void {
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const pathname = decodeURIComponent(new URL(req.url, 'https://box').pathname);
    // API paths that reach here are unknown routes: JSON 404s, never the page.
    if (/^\/(v1|metrics)(\/|$)/.test(pathname)) return reply.callNotFound();
    reply.header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer').header('content-security-policy', CSP);
    let file = path.join(DIST, pathname);
    if (file !== DIST && !file.startsWith(DIST + path.sep)) return reply.callNotFound();
    let stat = await fs.stat(file).catch(() => null);
    if (!stat?.isFile()) {
      // Client-side screens (#/…, /printers) all load the page; a missing asset is a real 404.
      if (path.extname(pathname)) return reply.callNotFound();
      file = path.join(DIST, 'index.html');
      stat = await fs.stat(file).catch(() => null);
      if (!stat) return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(NOT_BUILT);
    }
    const hashed = pathname.startsWith('/assets/');
    return reply
      .type(TYPES[path.extname(file)] ?? 'application/octet-stream')
      .header('cache-control', hashed ? 'public, max-age=31536000, immutable' : 'no-cache')
      .send(await fs.readFile(file));
  };
  server.get('/', { config: { printboxPublic: true }, schema: { hide: true } }, handler);
  server.get('/*', { config: { printboxPublic: true }, schema: { hide: true } }, handler);
}
