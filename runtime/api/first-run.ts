// First-run setup: who may set the first admin password (the setup code over HTTPS, or the admin socket) and until when.
import fs from 'node:fs/promises';
import path from 'node:path';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Appliance } from '../appliance.js';
import { ApiError, badRequest } from '../system/errors.js';
import { writeFileAtomic } from '../system/fsutil.js';
import { hashPassword, passwordProblem } from '../system/password.js';

/**
 * The one-time setup code is the bootstrap admin token (the image's first-start names it "setup"; a checkout's
 * first `serve` names it "first-admin"), kept 0600 in the data dir so that the console, the first-start output
 * and `printbox setup-code` can show it to someone who is at the box.
 */
export const setupCodePath = (dataDir: string) => path.join(dataDir, 'setup-code');

/** What the setup page keeps in state.json under "web". */
export interface WebSettings {
  passwordHash?: string;
  passwordSetAt?: string;
}

export const webSettings = (app: Appliance): WebSettings => ((app.state.data as unknown as { web?: WebSettings }).web ??= {});

const NAME_OK = /^[^\x00-\x1f\x7f]{1,48}$/;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export async function readSetupCode(dataDir: string): Promise<string | undefined> {
  const text = await fs.readFile(setupCodePath(dataDir), 'utf8').catch(() => undefined);
  return text?.trim() || undefined;
}

/** Keeps the bootstrap token as the setup code, unless a setup code is already there (the image made one). */
export async function keepSetupCode(dataDir: string, code: string): Promise<void> {
  if (await readSetupCode(dataDir)) return;
  await writeFileAtomic(setupCodePath(dataDir), code + '\n', 0o600);
}

export type SetupWindow = 'open' | 'done' | 'closed';

/**
 * 'done' once a web password exists; 'closed' when there is no setup code or any admin credential other than
 * the setup code itself exists (a box run with tokens alone must not stay claimable); else 'open'.
 */
export function setupWindow(app: Appliance, code: string | undefined): SetupWindow {
  if (webSettings(app).passwordHash) return 'done';
  if (!code) return 'closed';
  const bootstrap = sha256(code);
  return app.tokens.list().some((t) => t.scope === 'admin' && t.hash !== bootstrap) ? 'closed' : 'open';
}

function sameCode(given: unknown, code: string): boolean {
  if (typeof given !== 'string') return false;
  // Compared as hashes: equal lengths for timingSafeEqual whatever was sent.
  return timingSafeEqual(Buffer.from(sha256(given.trim())), Buffer.from(sha256(code)));
}

/** Throws unless this HTTPS request may run the first-run setup now. */
export async function checkSetupProof(app: Appliance, req: FastifyRequest): Promise<void> {
  const code = await readSetupCode(app.cfg.dataDir);
  const window = setupWindow(app, code);
  if (window === 'done') throw new ApiError(409, 'setup_done', 'this appliance is already set up; sign in with its admin password');
  if (window === 'closed') {
    throw new ApiError(403, 'setup_closed', 'first-run setup is closed: this appliance already has admin credentials. Set the web password with an admin token (POST /v1/session/password) or on the box over the admin socket');
  }
  const given = (req.body as { setupCode?: unknown } | undefined)?.setupCode;
  if (given === undefined || given === '') throw new ApiError(401, 'setup_code_required', 'first-run setup needs the setup code: it is shown on the box\'s console, in its first-start output, and by "printbox setup-code" on the box');
  if (!sameCode(given, code!)) {
    req.log.warn({ ip: req.ip }, 'first-run setup tried with a wrong setup code');
    throw new ApiError(401, 'setup_code_wrong', 'that is not the setup code of this appliance');
  }
}

/** Sets the first admin password and the name; the setup code has done its job and leaves the disk. */
export async function finishSetup(app: Appliance, body: { password?: unknown; name?: unknown }): Promise<void> {
  const problem = passwordProblem(body.password);
  if (problem) throw badRequest('weak_password', problem);
  const newName = typeof body.name === 'string' ? body.name.trim() : undefined;
  if (newName !== undefined && !NAME_OK.test(newName)) throw badRequest('bad_appliance_name', 'the name needs 1 to 48 characters, no control characters');
  const passwordHash = await hashPassword(body.password as string);
  if (webSettings(app).passwordHash) throw new ApiError(409, 'setup_done', 'this appliance was set up a moment ago from elsewhere');
  await app.state.change((d) => {
    (d as unknown as { web: WebSettings }).web = { passwordHash, passwordSetAt: new Date().toISOString() };
    if (newName) d.settings.name = newName;
  });
  await fs.rm(setupCodePath(app.cfg.dataDir), { force: true });
}

/** The admin socket's side: the file permissions of the socket are the proof, so no setup code is asked for. */
export function registerLocalSetup(server: FastifyInstance, app: Appliance): void {
  server.get('/v1/setup-code', { schema: { hide: true } }, async () => {
    const code = await readSetupCode(app.cfg.dataDir);
    const window = setupWindow(app, code);
    if (window === 'done') throw new ApiError(409, 'setup_done', 'this appliance is already set up; the setup code is no longer needed');
    if (!code) throw new ApiError(404, 'setup_code_not_found', 'this appliance has no setup code; set the web password with an admin token (POST /v1/session/password)');
    return { setupCode: code, window };
  });
  server.post('/v1/setup', {
    schema: { hide: true, body: { type: 'object', required: ['password'], properties: { password: { type: 'string' }, name: { type: 'string' } } } },
  }, async (req, reply) => {
    if (webSettings(app).passwordHash) throw new ApiError(409, 'setup_done', 'this appliance is already set up; change the password with POST /v1/session/password');
    await finishSetup(app, req.body as { password: string; name?: string });
    req.log.info('first-run setup done over the admin socket');
    return reply.status(201).send({ setUp: true });
  });
}
