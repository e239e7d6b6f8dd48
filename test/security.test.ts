// An attacker on the LAN against the real server on loopback: first-run takeover, login floods, callback SSRF, what tokens see.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startAppliance, type TestAppliance } from './helpers/appliance.js';
import { SERVER_NODE_FLAGS } from './helpers/node-flags.js';

const ROOT = path.resolve(import.meta.dirname, '..');

/** A request over the appliance's admin socket (0600: being on the box as its user is the proof). */
function overAdminSocket(box: TestAppliance, method: string, url: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath: box.running.app.adminSocketPath(), method, path: url, headers: data ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function withBox<T>(fn: (box: TestAppliance) => Promise<T>, overrides: Parameters<typeof startAppliance>[0] = {}): Promise<T> {
  const box = await startAppliance(overrides);
  try {
    return await fn(box);
  } finally {
    await box.stop();
  }
}

// ---- first-run setup

test('first-run setup over HTTPS needs the setup code the box shows at its console; it runs once', async () => {
  await withBox(async (box) => {
    const info = await box.api.json('GET', '/v1/setup', undefined, null);
    assert.equal(info.json.needsSetup, true);
    assert.equal(info.json.setupWindow, 'open');
    // The attack of the issue: no proof at all.
    const bare = await box.api.json('POST', '/v1/setup', { password: 'attacker-pw-1', name: 'x' }, null);
    assert.equal(bare.status, 401, bare.text);
    assert.equal(bare.json.error.code, 'setup_code_required');
    const wrong = await box.api.json('POST', '/v1/setup', { password: 'attacker-pw-1', name: 'x', setupCode: 'pbx_guess' }, null);
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error.code, 'setup_code_wrong');
    assert.equal((await box.api.json('POST', '/v1/session', { password: 'attacker-pw-1' }, null)).json.error.code, 'setup_needed', 'no password was set');

    // On the box, `printbox setup-code` shows the code (through the admin socket of the running server).
    const { stdout } = await promisify(execFile)(process.execPath, [...SERVER_NODE_FLAGS, path.join(ROOT, 'bin/printbox.mjs'), 'setup-code', '--data', box.dataDir], { timeout: 60000 });
    assert.equal(stdout.trim(), box.token, 'the setup code is the bootstrap admin token printed at first start');
    assert.equal((await fs.stat(path.join(box.dataDir, 'setup-code'))).mode & 0o777, 0o600);

    const ok = await box.api.json('POST', '/v1/setup', { password: 'the owner password', name: 'Front', setupCode: stdout.trim() }, null);
    assert.equal(ok.status, 201, ok.text);
    await assert.rejects(fs.stat(path.join(box.dataDir, 'setup-code')), 'a used setup code leaves the disk');
    const again = await box.api.json('POST', '/v1/setup', { password: 'attacker-pw-1', setupCode: box.token }, null);
    assert.equal(again.status, 409);
    assert.equal(again.json.error.code, 'setup_done');
  });
});

test('the setup window closes as soon as another admin credential exists; the admin socket still sets the password', async () => {
  await withBox(async (box) => {
    // A box managed through the API alone: an admin token made by its operator.
    assert.equal((await box.api.json('POST', '/v1/tokens', { name: 'ops', scope: 'admin' })).status, 201);
    assert.equal((await box.api.json('GET', '/v1/setup', undefined, null)).json.setupWindow, 'closed');
    const late = await box.api.json('POST', '/v1/setup', { password: 'attacker-pw-1', name: 'x', setupCode: box.token }, null);
    assert.equal(late.status, 403, late.text);
    assert.equal(late.json.error.code, 'setup_closed');
    assert.match(late.json.error.message, /admin token|admin socket/);

    const local = await overAdminSocket(box, 'POST', '/v1/setup', { password: 'set on the box' });
    assert.equal(local.status, 201, JSON.stringify(local.json));
    assert.equal((await box.api.json('POST', '/v1/session', { password: 'set on the box' }, null)).status, 200);
    assert.equal((await overAdminSocket(box, 'POST', '/v1/setup', { password: 'set on the box' })).json.error.code, 'setup_done');
  });
});

test('the console unit shows the setup code on the console only, never in the journal', async () => {
  const unit = await fs.readFile(path.join(ROOT, 'image/systemd/printbox-console.service'), 'utf8');
  const out = /^StandardOutput=(.*)$/m.exec(unit)?.[1];
  assert.equal(out, 'tty');
  assert.doesNotMatch(unit, /^Standard(Output|Error)=.*journal/m);
});
