// First start of a cluster: three `printbox serve` processes started at the same moment on an empty 3-server
// JetStream cluster make exactly one first admin token (and setup code) between them, and every node takes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startNatsCluster } from './peers/nats.js';
import { clusterDataDirs, until } from './helpers/cluster.js';
import { freePort, spawnAppliance, type ChildAppliance } from './helpers/appliance.js';
import { Api } from './helpers/api.js';

test('three nodes started at once on an empty cluster: exactly one prints a first admin token, and all three accept it', { timeout: 180_000 }, async (t) => {
  const nats = await startNatsCluster(3, { prefix: 'pbx19a-first-nats-' });
  t.after(() => nats.stop());
  const dirs = await clusterDataDirs(3, 'pbx19a-first-');
  t.after(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });
  for (const d of dirs.slice(1)) await fs.copyFile(path.join(dirs[0], 'cluster.key'), path.join(d, 'cluster.key'));
  const ports = await Promise.all(dirs.map(() => freePort()));
  const configs = await Promise.all(
    dirs.map(async (d, i) => {
      const file = path.join(d, 'config.json');
      await fs.writeFile(file, JSON.stringify({ cluster: { servers: [nats.urls[i]], node: `node${i + 1}`, leaseMs: 2000 } }));
      return file;
    }),
  );
  const children: ChildAppliance[] = [];
  t.after(async () => {
    for (const ch of children) await ch.stop();
  });
  // All three at the same moment: none of them knows of another's token when it starts.
  const started = await Promise.allSettled(dirs.map((d, i) => spawnAppliance(d, ports[i], { PRINTBOX_CONFIG: configs[i] })));
  for (const s of started) if (s.status === 'fulfilled') children.push(s.value);
  for (const s of started) if (s.status === 'rejected') throw s.reason;
  const tokens = children.map((ch) => ch.token).filter((x): x is string => !!x);
  assert.equal(tokens.length, 1, `exactly one node printed a first admin token (printed by ${children.map((ch, i) => (ch.token ? `node${i + 1}` : '')).filter(Boolean).join(', ')})`);
  const setupCodes = (await Promise.all(dirs.map((d) => fs.readFile(path.join(d, 'setup-code'), 'utf8').catch(() => null)))).filter(Boolean);
  assert.deepEqual(setupCodes.map((s) => s!.trim()), tokens, 'one setup code, and it is that token');
  for (const [i, d] of dirs.entries()) {
    const cert = await fs.readFile(path.join(d, 'tls', 'cert.pem'), 'utf8');
    const api = new Api(`https://127.0.0.1:${ports[i]}`, cert, tokens[0]);
    t.after(() => api.close());
    await until(`node${i + 1} takes the token`, async () => (await api.json('GET', '/v1/status')).status === 200, 30000);
    const list = (await api.json('GET', '/v1/tokens')).json;
    assert.equal((Array.isArray(list) ? list : list.tokens).length, 1, `node${i + 1} sees one token`);
  }
});
