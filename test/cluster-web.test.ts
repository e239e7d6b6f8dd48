// The setup page of a cluster node in headless Chromium: three `printbox serve` processes on a real 3-server
// JetStream cluster; the System screen lists the nodes, who drives the printer and the quorum, and follows a
// kill -9 of the driving node (that node gone, the printer's new driver) without a reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startProcessCluster, until } from './helpers/cluster.js';
import { startSink } from './peers/tcp-sink.js';
import { chromiumAvailable, launchBrowser } from './peers/browser.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const SHOTS = path.join(ROOT, 'test-artifacts/web');
const PASSWORD = 'correct horse battery';

test('a node\'s setup page shows the three nodes, who drives the printer and the quorum; after kill -9 of the driver, that node gone and the new driver', { timeout: 300_000 }, async (t) => {
  if (!(await chromiumAvailable())) return t.skip('no /usr/bin/chromium (apt-get install chromium)');
  await promisify(execFile)(process.execPath, [path.join(ROOT, 'web/ensure-built.mjs')], { cwd: ROOT, timeout: 60000 });
  await fs.mkdir(SHOTS, { recursive: true });
  const { nodes, apis } = await startProcessCluster(t, 'pbx19b-web-');
  const sink = await startSink();
  t.after(() => sink.close());
  const added = await apis[0].json('POST', '/v1/printers', { name: 'front', uri: `raw://127.0.0.1:${sink.port}` });
  assert.equal(added.status, 201, added.text);
  assert.equal((await apis[0].json('POST', '/v1/session/password', { password: PASSWORD })).status, 200);
  const driver = await until('the printer driven and every node heard', async () => {
    const v = (await apis[0].json('GET', '/v1/cluster')).json;
    return v.nodes.filter((n: { state: string }) => n.state === 'up').length === 3 ? (v.printers[0].drivenBy as string | null) : null;
  }, 30000);
  const d = Number(driver!.slice(4)) - 1;
  const viewer = (d + 1) % 3; // the page is open on a node that stays

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const { page } = browser;
  await page.goto(`https://127.0.0.1:${nodes[viewer].port}/#/system`);
  await page.getByLabel('Admin password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('appliance-name').waitFor();
  await page.getByTestId('tab-system').click();
  for (const n of ['node1', 'node2', 'node3']) await page.locator(`[data-testid="cluster-node-${n}"][data-state="up"]`).waitFor({ timeout: 20000 });
  await page.locator(`[data-testid="cluster-printer-front"][data-driver="${driver}"]`).waitFor();
  await page.locator('[data-testid="cluster-quorum"][data-ready="true"]').waitFor();
  assert.match((await page.getByTestId('cluster-quorum').textContent())!, new RegExp(`This node \\(node${viewer + 1}\\) is in the quorum`));
  assert.match((await page.getByTestId(`cluster-node-${driver}`).textContent())!, /drives front/);
  await page.screenshot({ path: path.join(SHOTS, 'cluster-1-three-nodes.png'), fullPage: true });

  await nodes[d].child!.kill9();
  // The page reads the cluster again by itself: no reload, no click.
  await page.locator(`[data-testid="cluster-node-${driver}"][data-state="gone"]`).waitFor({ timeout: 30000 });
  const next = await until('the page names a new driver', async () => {
    const v = await page.getByTestId('cluster-printer-front').getAttribute('data-driver');
    return v && v !== driver ? v : null;
  }, 30000);
  assert.notEqual(next, driver);
  assert.equal((await apis[viewer].json('GET', '/v1/cluster')).json.printers[0].drivenBy, next, 'the page says what the API says');
  const others = ['node1', 'node2', 'node3'].filter((n) => n !== driver);
  for (const n of others) assert.equal(await page.getByTestId(`cluster-node-${n}`).getAttribute('data-state'), 'up');
  await page.screenshot({ path: path.join(SHOTS, 'cluster-2-node-gone.png'), fullPage: true });
  assert.deepEqual(browser.errors, [], 'no uncaught errors in the page');
});
