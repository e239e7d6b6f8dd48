// Driver plug-ins: the example file:// plug-in loads and stores jobs intact; broken plug-ins give a PluginError, never a crash.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { checkContractVersion, loadPlugin, PluginError } from '../drivers/plugins.js';
import { testJob } from './peers/outbound-job.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const ctx = { store: { get: () => undefined, set: async () => {} }, log: { info() {}, warn() {}, debug() {} } };
const never = () => new AbortController().signal;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A plug-in module body in plain JS, with a driver whose parts a test can break. */
const plugin = (o: { scheme?: string; version?: unknown; send?: string; schema?: string; extra?: string } = {}) => `
${o.extra ?? ''}
export const printboxDriver = {
  scheme: ${JSON.stringify(o.scheme ?? 'demo')},
  contractVersion: ${JSON.stringify(o.version ?? 1)},
  create: () => ({
    scheme: ${JSON.stringify(o.scheme ?? 'demo')},
    schema: ${o.schema ?? `{ scheme: ${JSON.stringify(o.scheme ?? 'demo')}, title: 'Demo', uriTemplate: 'demo://x', params: [] }`},
    ${o.send ?? "async send() { return { kind: 'sent' }; },"}
  }),
};
`;

async function rejection(p: Promise<unknown>): Promise<PluginError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof PluginError, `expected a PluginError, got ${err}`);
    return err;
  }
  assert.fail('expected loadPlugin to reject');
}

describe('driver plug-ins', () => {
  let dir: string;
  let out: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'printbox-plugins-'));
    out = path.join(dir, 'out');
    mkdirSync(out);
    const w = (name: string, body: string) => writeFileSync(path.join(dir, name), body);
    w('no-send.mjs', plugin({ send: '' }));
    w('old-contract.mjs', plugin({ version: 99 }));
    w('throws.mjs', "throw new Error('boom: missing native library');\n");
    w('raw-thief.mjs', plugin({ scheme: 'raw' }));
    w('bad-scheme.mjs', plugin({ scheme: 'My Printer' }));
    w('no-schema.mjs', plugin({ schema: 'undefined' }));
    w('nothing.mjs', 'export const hello = 1;\n');
    w('throws-in-send.mjs', plugin({ send: "async send() { throw new Error('socket exploded'); }," }));
    w('nonsense-outcome.mjs', plugin({ send: "async send() { return { kind: 'printed-probably' }; }," }));
    // npm packages: one ESM-only (exports.import only), one CommonJS.
    const esm = path.join(dir, 'node_modules', 'printbox-driver-esm');
    mkdirSync(esm, { recursive: true });
    writeFileSync(path.join(esm, 'package.json'), JSON.stringify({ name: 'printbox-driver-esm', type: 'module', exports: { '.': { import: './main.js' } } }));
    writeFileSync(path.join(esm, 'main.js'), plugin({ scheme: 'esmdemo', version: '^1' }));
    const cjs = path.join(dir, 'node_modules', 'printbox-driver-cjs');
    mkdirSync(cjs, { recursive: true });
    writeFileSync(path.join(cjs, 'package.json'), JSON.stringify({ name: 'printbox-driver-cjs', main: 'index.js' }));
    writeFileSync(
      path.join(cjs, 'index.js'),
      "module.exports = { printboxDriver: { scheme: 'cjsdemo', contractVersion: '1.x', create: () => ({ scheme: 'cjsdemo', schema: { scheme: 'cjsdemo', title: 'C', uriTemplate: 'cjsdemo://', params: [] }, async send() { return { kind: 'sent' }; } }) } };\n",
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the file:// example plug-in loads and a job sent through it lands in the folder intact', async () => {
    const { scheme, factory } = await loadPlugin('../drivers/file.ts', here);
    assert.equal(scheme, 'file');
    const driver = factory(ctx);
    assert.equal(driver.schema.scheme, 'file');
    const doc = randomBytes(3 * 1024 * 1024 + 5);
    const job = testJob(pathToFileURL(out).href, doc, { id: 'job-0007', contentType: 'pdf', options: { copies: 2 } });
    const res = await driver.send(job, never());
    assert.equal(res.kind, 'sent', JSON.stringify(res));
    assert.deepEqual(readdirSync(out), ['job-0007.pdf']);
    assert.equal(sha(readFileSync(path.join(out, 'job-0007.pdf'))), sha(doc));
    assert.deepEqual(job.warnings, ['the file printer stores the document as sent; not applied: copies=2']);
    assert.deepEqual(await driver.probe!(pathToFileURL(out)), { reachable: true, state: 'idle', formats: ['pdf', 'postscript', 'pcl', 'pwg-raster', 'urf', 'jpeg', 'png', 'zpl', 'escpos', 'text', 'raw'] });
  });

  test('a job id cannot write outside the folder, and a damaged document leaves no file behind', async () => {
    const { factory } = await loadPlugin(path.resolve(here, '../drivers/file.ts'), '/');
    const driver = factory(ctx);
    const res = await driver.send(testJob(pathToFileURL(out).href, Buffer.from('hi'), { id: '../../escape', contentType: 'text' }), never());
    assert.equal(res.kind, 'sent');
    assert.ok(readdirSync(out).includes('__.._escape.txt'), readdirSync(out).join(' '));
    const before = readdirSync(out).sort();
    const broken = await driver.send(testJob(pathToFileURL(out).href, randomBytes(300_000), { id: 'broken', contentType: 'raw', failAfter: 65536 }), never());
    assert.equal(broken.kind, 'fail');
    assert.deepEqual(readdirSync(out).sort(), before);
    const missing = await driver.send(testJob(pathToFileURL(path.join(dir, 'nope')).href, Buffer.from('x')), never());
    assert.equal(missing.kind, 'retry');
    assert.match((missing as { reason: string }).reason, /cannot write to .*nope/);
  });

  test('npm packages load by name, ESM-only and CommonJS alike', async () => {
    const esm = await loadPlugin('printbox-driver-esm', dir);
    assert.equal(esm.scheme, 'esmdemo');
    assert.deepEqual(await esm.factory(ctx).send(testJob('esmdemo://x', Buffer.from('x')), never()), { kind: 'sent' });
    const cjs = await loadPlugin('printbox-driver-cjs', dir);
    assert.equal(cjs.scheme, 'cjsdemo');
  });

  const broken: [string, string, 'plugin_invalid' | 'plugin_not_found', RegExp][] = [
    ['missing send', './no-send.mjs', 'plugin_invalid', /returned a driver without a send function/],
    ['wrong contract version', './old-contract.mjs', 'plugin_invalid', /was written for driver contract 99; this printbox has contract 1/],
    ['throws on import', './throws.mjs', 'plugin_invalid', /failed to load: boom: missing native library/],
    ['nonexistent path', './not-there.mjs', 'plugin_not_found', /not found: no file .*not-there\.mjs/],
    ['nonexistent package', 'printbox-driver-nowhere', 'plugin_not_found', /no npm package of that name is installed/],
    ['built-in scheme', './raw-thief.mjs', 'plugin_invalid', /wants scheme "raw", which belongs to a built-in driver/],
    ['bad scheme', './bad-scheme.mjs', 'plugin_invalid', /has scheme "My Printer"/],
    ['no schema', './no-schema.mjs', 'plugin_invalid', /without a schema/],
    ['no declaration', './nothing.mjs', 'plugin_invalid', /exports no driver/],
  ];
  for (const [what, spec, code, message] of broken) {
    test(`a plug-in with ${what} is refused with a PluginError (${code})`, async () => {
      const err = await rejection(loadPlugin(spec, dir));
      assert.equal(err.code, code);
      assert.equal(err.spec, spec);
      assert.match(err.message, message);
    });
  }

  test('an admin may let a plug-in replace a built-in scheme', async () => {
    assert.equal((await loadPlugin('./raw-thief.mjs', dir, { allowOverride: true })).scheme, 'raw');
  });

  test('a plug-in that throws in send or answers nonsense gives an outcome, not a crash', async () => {
    const thrower = (await loadPlugin('./throws-in-send.mjs', dir)).factory(ctx);
    assert.deepEqual(await thrower.send(testJob('demo://x', Buffer.from('x')), never()), { kind: 'retry', reason: 'driver plug-in "./throws-in-send.mjs" threw: socket exploded' });
    const nonsense = (await loadPlugin('./nonsense-outcome.mjs', dir)).factory(ctx);
    assert.equal((await nonsense.send(testJob('demo://x', Buffer.from('x')), never())).kind, 'fail');
  });

  test('contract versions: numbers and semver-style ranges', () => {
    for (const ok of [1, '1', '^1', '^1.0.0', '~1.0', '1.x', '1.X', '>=1', '>=1 <2', '0 || 1', '=1', 'v1']) assert.equal(checkContractVersion(ok, 1), undefined, String(ok));
    for (const no of [2, 0, '2', '^2', '^1.2', '>=2', '<1', '*', '', 'latest', undefined, null]) assert.ok(checkContractVersion(no, 1), String(no));
  });
});
