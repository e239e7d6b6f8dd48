// The setup page end to end in headless Chromium: first run, a printer, a test page, the queue, tokens, the certificate, sessions.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { connect as tlsConnect } from 'node:tls';
import { fingerprintOf, generateIdentity, loadOrCreateIdentity } from '../runtime/system/tls.js';
import { startAppliance, until, type TestAppliance } from './helpers/appliance.js';
import { Api } from './helpers/api.js';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { chromiumAvailable, launchBrowser, type TestBrowser } from './peers/browser.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const SHOTS = path.join(ROOT, 'test-artifacts/web');
const PASSWORD = 'correct horse battery';

let box: TestAppliance;
let sink: Sink;
let browser: TestBrowser | undefined;
let base = '';

before(async () => {
  // The page is built from web/ when missing or stale, exactly as `npm start` does.
  await promisify(execFile)(process.execPath, [path.join(ROOT, 'web/ensure-built.mjs')], { cwd: ROOT, timeout: 60000 });
  await fs.mkdir(SHOTS, { recursive: true });
  sink = await startSink();
  box = await startAppliance();
  base = `https://127.0.0.1:${box.running.port}`;
});

after(async () => {
  await browser?.close();
  await box?.stop();
  await sink?.close();
});

const shot = async (name: string) => {
  await browser!.page.evaluate(() => window.scrollTo(0, 0));
  await browser!.page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
};

test('the server side answers without a browser: setup state, public files, JSON 404s, no admin without a password', async () => {
  const setup = await box.api.json('GET', '/v1/setup', undefined, null);
  assert.equal(setup.status, 200);
  assert.equal(setup.json.needsSetup, true);
  assert.equal(setup.json.fingerprint, box.running.tls.fingerprint);
  const page = await box.api.request('GET', '/printers', { token: null });
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /text\/html/);
  assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
  const unknown = await box.api.request('GET', '/v1/nothing-here', { token: null });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.json.error.code, 'route_not_found');
  const missingAsset = await box.api.request('GET', '/assets/nope.js', { token: null });
  assert.equal(missingAsset.status, 404);
  const signIn = await box.api.json('POST', '/v1/session', { password: 'whatever-it-is' }, null);
  assert.equal(signIn.status, 409);
  assert.equal(signIn.json.error.code, 'setup_needed');
  // Admin tokens (the CLI's way in) keep working before the web setup.
  assert.equal((await box.api.json('GET', '/v1/tokens')).status, 200);
});

test('an admin sets the box up from the page and uses it', { timeout: 90000 }, async (t) => {
  if (!(await chromiumAvailable())) return t.skip('no /usr/bin/chromium (apt-get install chromium)');
  browser = await launchBrowser();
  const { page } = browser;
  page.on('dialog', (d) => void d.accept());

  // ---- first run: fingerprint, name, password
  await page.goto(base);
  await page.getByRole('heading', { name: 'Welcome to printbox' }).waitFor();
  assert.equal((await page.getByTestId('fingerprint').textContent())?.trim(), box.running.tls.fingerprint);
  await page.getByLabel('Setup code').fill(box.token);
  await page.getByLabel('Appliance name').fill('Front Desk');
  await page.getByLabel('Admin password').fill(PASSWORD);
  await page.getByLabel('The same password again').fill('something else');
  await page.getByRole('button', { name: 'Finish setup' }).click();
  await page.getByTestId('setup-error').getByText('not the same').waitFor();
  await shot('01-onboarding');
  await page.getByLabel('The same password again').fill(PASSWORD);
  await page.getByRole('button', { name: 'Finish setup' }).click();
  await page.getByTestId('appliance-name').getByText('Front Desk').waitFor();
  await page.getByTestId('live').getByText('Live').waitFor();
  assert.equal((await box.api.json('GET', '/v1/setup', undefined, null)).json.needsSetup, false);
  assert.equal((await box.api.json('POST', '/v1/setup', { password: 'another password', name: 'x' }, null)).status, 409, 'setup runs once');
  await shot('02-printers-empty');

  // ---- add a printer with the form rendered from the RAW driver's schema
  await page.getByTestId('add-printer').click();
  const form = page.getByTestId('printer-form');
  await form.getByRole('textbox', { name: /^Name/ }).fill('desk-raw');
  await form.getByLabel('How the box talks to it').selectOption('raw');
  await form.getByLabel('Address').fill(`127.0.0.1:${sink.port}`);
  await form.getByText('More settings for').click();
  await form.locator('input[name="connectTimeout"]').fill('5000');
  await form.locator('input[name="pjl"]').uncheck();
  const uri = `raw://127.0.0.1:${sink.port}?connectTimeout=5000&pjl=false`;
  assert.equal(await form.getByTestId('uri-preview').textContent(), uri);
  await shot('03-add-printer-form');
  await form.getByRole('button', { name: 'Add printer' }).click();
  const card = page.getByTestId('printer-desk-raw');
  await card.getByTestId('printer-state').getByText('Ready').waitFor();
  const printers = (await box.api.json('GET', '/v1/printers')).json.printers;
  assert.equal(printers.length, 1);
  assert.equal(printers[0].uri, uri);

  // ---- print a test page: the job shows as sent and the sink has it
  await card.getByTestId('test-page').click();
  await card.getByTestId('test-page-state').getByText('Sent to the printer').waitFor();
  const [received] = await sink.waitForJobs(1, 10000);
  assert.ok(received.data!.toString('latin1').includes('desk-raw'), 'the test page names the printer');
  await shot('04-test-page-sent');

  // ---- the queue: a job held on a dead printer is moved to the good one, live
  const dead = await box.api.json('POST', '/v1/printers', { name: 'dead-raw', uri: 'raw://127.0.0.1:9?connectTimeout=500', errorPolicy: 'hold-job', retry: { limit: 1, baseMs: 50, maxMs: 100, heldRetryMs: 600000 } });
  assert.equal(dead.status, 201);
  const doc = Buffer.from('moved job: ' + 'x'.repeat(2000) + '\n');
  const posted = await box.api.postJob({ printer: 'dead-raw', title: 'quarterly report', contentType: 'text' }, doc);
  assert.equal(posted.status, 201, posted.text);
  await page.getByTestId('tab-queue').click();
  const heldRow = page.locator(`[data-job-id="${posted.json.jobID}"]`);
  await page.locator(`[data-job-id="${posted.json.jobID}"][data-state="held"]`).waitFor({ timeout: 15000 });
  await page.locator('[data-testid="job"][data-state="sent"]').first().waitFor();
  await shot('05-queue-held');
  await heldRow.getByLabel('Move to printer').selectOption({ label: 'desk-raw' });
  await heldRow.getByRole('button', { name: 'Move' }).click();
  await page.locator(`[data-job-id="${posted.json.jobID}"][data-state="sent"]`).waitFor({ timeout: 15000 });
  const jobs = await sink.waitForJobs(2, 10000);
  assert.equal(jobs[1].sha256, createHash('sha256').update(doc).digest('hex'), 'the moved job arrived byte for byte');
  await shot('06-queue-moved');

  // ---- tokens: create (shown once), use it, revoke it
  await page.getByTestId('tab-tokens').click();
  await page.getByLabel('Name').fill('e2e-app');
  await page.getByLabel('Can').selectOption('submit');
  await page.getByRole('button', { name: 'Create token' }).click();
  const token = await page.getByTestId('new-token').inputValue();
  assert.match(token, /^pbx_/);
  await shot('07-token-created');
  const client = new Api(base, box.running.tls.cert, token);
  try {
    assert.equal((await client.json('GET', '/v1/jobs')).status, 200, 'the new token works with the API');
    await page.getByTestId('token-e2e-app').getByTestId('revoke').click();
    await page.getByTestId('token-e2e-app').waitFor({ state: 'detached' });
    const refused = await client.json('GET', '/v1/jobs');
    assert.equal(refused.status, 401, 'a revoked token is refused');
  } finally {
    client.close();
  }
  await shot('08-token-revoked');

  // ---- certificate: names and fingerprint; a bad upload says why
  await page.getByTestId('tab-certificate').click();
  assert.equal((await page.getByTestId('cert-fingerprint').textContent())?.trim(), box.running.tls.fingerprint);
  await shot('09-certificate');
  const upload = page.getByTestId('cert-upload');
  const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  await upload.getByLabel(/^Certificate \(PEM/).fill(box.running.tls.cert);
  await upload.getByLabel(/^Private key/).fill(otherKey);
  await upload.getByRole('button', { name: 'Check and install' }).click();
  await upload.getByTestId('cert-error').getByText('does not belong to this certificate').waitFor();
  await shot('10-certificate-bad-upload');
  await upload.getByLabel(/^Certificate \(PEM/).fill('hello');
  await upload.getByRole('button', { name: 'Check and install' }).click();
  await upload.getByTestId('cert-error').getByText('not a PEM certificate').waitFor();
  assert.equal((await box.api.json('GET', '/v1/certificate')).json.fingerprint, box.running.tls.fingerprint, 'nothing was installed');

  // ---- system; while anonymous submit is on (issue 16) the page says so
  box.running.app.cfg.anonymousSubmit = ['10.20.0.0/16'];
  await page.getByTestId('tab-system').click();
  await page.getByTestId('version').getByText('0.1.0').waitFor();
  await page.getByTestId('appliance-warning').getByText('anonymous submit is on: any client in 10.20.0.0/16').waitFor();
  await page.getByTestId('cluster-single').getByText('Single box').waitFor(); // one box: no cluster, and no error
  box.running.app.cfg.anonymousSubmit = [];
  await shot('11-system');

  // ---- a cookie-authenticated change without the CSRF header is refused
  const csrf = await page.evaluate(async () => {
    const r = await fetch('/v1/tokens', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"sneaky"}' });
    return { status: r.status, body: await r.json() };
  });
  assert.equal(csrf.status, 403);
  assert.equal(csrf.body.error.code, 'csrf_failed');

  // ---- an expired session: the next action lands on the sign-in with a message
  (box.running.app.cfg as { webSessionIdleMs?: number }).webSessionIdleMs = 300;
  await new Promise((r) => setTimeout(r, 700));
  await page.getByTestId('tab-tokens').click();
  await page.getByTestId('login-notice').getByText('expired').waitFor();
  delete (box.running.app.cfg as { webSessionIdleMs?: number }).webSessionIdleMs;
  await shot('12-session-expired');

  // ---- a wrong password, then the right one
  await page.getByLabel('Admin password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('login-error').getByText('That password is not right').waitFor();
  await shot('13-wrong-password');
  await page.getByLabel('Admin password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('appliance-name').waitFor();

  // ---- a phone-sized screen
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByTestId('tab-printers').click();
  await page.getByTestId('printer-desk-raw').waitFor();
  await shot('14-phone-printers');
  await page.setViewportSize({ width: 1024, height: 768 });
  await page.getByTestId('tab-printers').click();
  await page.getByTestId('printer-desk-raw').getByTestId('printer-state').waitFor();
  await shot('15-printers');

  // The page asked nobody but the box.
  const foreign = browser.requests.filter((u) => !u.startsWith(`${base}/`));
  assert.deepEqual(foreign, []);
  assert.deepEqual(browser.errors, [], 'no uncaught errors in the page');
});

test('an admin token resets a forgotten password; signing in sets a strict session cookie', async () => {
  if ((await box.api.json('GET', '/v1/setup', undefined, null)).json.needsSetup) {
    assert.equal((await box.api.json('POST', '/v1/setup', { password: PASSWORD, setupCode: box.token }, null)).status, 201);
  }
  const weak = await box.api.json('POST', '/v1/session/password', { password: 'short' });
  assert.equal(weak.status, 400);
  assert.equal(weak.json.error.code, 'weak_password');
  assert.equal((await box.api.json('POST', '/v1/session/password', { password: 'a brand new secret' })).status, 200);
  assert.equal((await box.api.json('POST', '/v1/session', { password: PASSWORD }, null)).status, 401, 'the old password is gone');
  const signIn = await box.api.json('POST', '/v1/session', { password: 'a brand new secret' }, null);
  assert.equal(signIn.status, 200);
  const cookie = String(signIn.headers['set-cookie']);
  assert.match(cookie, /^pbx_session=[\w-]{40,};/);
  for (const attr of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) assert.ok(cookie.includes(attr), `cookie has ${attr}`);
  const session = cookie.split(';')[0];
  // The cookie alone reads; a change also needs the session's CSRF header.
  assert.equal((await box.api.request('GET', '/v1/tokens', { token: null, headers: { cookie: session } })).status, 200);
  const noHeader = await box.api.request('POST', '/v1/tokens', { token: null, body: '{"name":"x"}', headers: { cookie: session, 'content-type': 'application/json' } });
  assert.equal(noHeader.status, 403);
  assert.equal(noHeader.json.error.code, 'csrf_failed');
  const withHeader = await box.api.request('POST', '/v1/tokens', { token: null, body: '{"name":"from-cookie"}', headers: { cookie: session, 'content-type': 'application/json', 'x-printbox-csrf': signIn.json.csrf } });
  assert.equal(withHeader.status, 201, withHeader.text);
  const logout = await box.api.request('DELETE', '/v1/session', { token: null, headers: { cookie: session } });
  assert.equal(logout.status, 200);
  const after = await box.api.request('GET', '/v1/tokens', { token: null, headers: { cookie: session } });
  assert.equal(after.status, 401);
  assert.equal(after.json.error.code, 'session_expired');
});

test('sign-in attempts are limited per address: the sixth wrong password in a minute is 429', async () => {
  if ((await box.api.json('GET', '/v1/setup', undefined, null)).json.needsSetup) {
    assert.equal((await box.api.json('POST', '/v1/setup', { password: PASSWORD, setupCode: box.token }, null)).status, 201);
  }
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push((await box.api.json('POST', '/v1/session', { password: `wrong-${i}` }, null)).status);
  assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
  const last = await box.api.json('POST', '/v1/session', { password: PASSWORD }, null);
  assert.equal(last.status, 429);
  assert.equal(last.json.error.code, 'too_many_attempts');
  assert.match(last.json.error.message, /try again in \d+ s/);
});

/** The certificate a fresh TLS connection to the box is handed now. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()!.fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}

test('a regenerated or uploaded certificate is checked, written, and served at once', async () => {
  const dataDir = box.dataDir;
  const before = box.running.tls.fingerprint;
  const regen = await box.api.json('POST', '/v1/certificate/regenerate', { extraNames: ['printbox.test.lan', '10.9.8.7'] });
  assert.equal(regen.status, 200, regen.text);
  assert.ok(regen.json.names.includes('printbox.test.lan') && regen.json.names.includes('10.9.8.7'));
  assert.notEqual(regen.json.fingerprint, before);
  assert.equal(await servedFingerprint(box.running.port), regen.json.fingerprint, 'served without a restart');
  assert.equal(fingerprintOf(await fs.readFile(path.join(dataDir, 'tls/cert.pem'), 'utf8')), regen.json.fingerprint, 'written to the data dir');

  const api = new Api(base, box.running.tls.cert, box.token);
  try {
    const bad = await api.json('POST', '/v1/certificate/regenerate', { extraNames: ['not a name!'] });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'bad_host_name');

    const own = await generateIdentity({ dns: ['custom.test'], ips: ['127.0.0.1'] });
    const mismatched = await api.json('POST', '/v1/certificate', { cert: own.cert, key: box.running.tls.key });
    assert.equal(mismatched.status, 400);
    assert.equal(mismatched.json.error.code, 'key_mismatch');
    const up = await api.json('POST', '/v1/certificate', own);
    assert.equal(up.status, 200, up.text);
    assert.equal(up.json.custom, true);
    assert.ok(up.json.warnings.some((w: string) => /self-signed/.test(w)));
    assert.equal(await servedFingerprint(box.running.port), fingerprintOf(own.cert));
    await fs.access(path.join(dataDir, 'tls/custom'));
    assert.equal(await fs.readFile(path.join(dataDir, 'tls/key.pem'), 'utf8'), own.key.trim() + '\n');
    // Reloading the identity (what a restart does) keeps the uploaded certificate.
    assert.equal((await loadOrCreateIdentity(dataDir)).fingerprint, fingerprintOf(own.cert));
  } finally {
    api.close();
  }
});
