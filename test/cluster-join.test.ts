// `printbox cluster join`: the files it writes, and the nats-server configuration it writes forming a real
// 3-server JetStream cluster over TLS routes (each end's certificate verified) with its store encrypted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { joinCluster, makeBundle, natsServerConfig } from '../runtime/cluster/join.js';
import { freePort, tempDir, until } from './helpers/appliance.js';
import { stopProcess } from './peers/ports.js';
import http from 'node:http';

const healthz = (port: number) =>
  new Promise<number>((resolve) => {
    http.get({ host: '127.0.0.1', port, path: '/healthz' }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', () => resolve(0));
  });

test('the nats-server configuration from the join helper forms a JetStream cluster over verified TLS routes', async (t) => {
  const dir = await tempDir('pbx19-join-nats-');
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const bundle = await makeBundle(['127.0.0.1']);
  const tlsDir = path.join(dir, 'tls');
  await fs.mkdir(tlsDir);
  await fs.writeFile(path.join(tlsDir, 'route-cert.pem'), bundle.route.cert);
  await fs.writeFile(path.join(tlsDir, 'route-key.pem'), bundle.route.key, { mode: 0o600 });
  const ports = await Promise.all([0, 1, 2].map(async () => ({ client: await freePort(), route: await freePort(), monitor: await freePort() })));
  const procs: ReturnType<typeof spawn>[] = [];
  for (const [i, p] of ports.entries()) {
    const conf = path.join(dir, `n${i}.conf`);
    const peers = ports.filter((_, j) => j !== i).map((q) => `127.0.0.1:${q.route}`);
    await fs.writeFile(conf, natsServerConfig({ node: `n${i}`, address: '127.0.0.1', peers, storeDir: path.join(dir, `store${i}`), storeKey: 'k'.repeat(32), tlsDir, clientPort: p.client, routePort: p.route, monitorPort: p.monitor }));
    const check = spawn('nats-server', ['-c', conf, '-t'], { stdio: 'ignore' });
    assert.equal(await new Promise((r) => check.on('exit', r)), 0, 'nats-server -t accepts the configuration');
    procs.push(spawn('nats-server', ['-c', conf], { stdio: 'ignore' }));
  }
  t.after(async () => {
    for (const p of procs) await stopProcess(p);
  });
  // /healthz is 200 only once JetStream has a meta leader: the three servers found each other over TLS.
  await until('JetStream healthy on all three', async () => (await Promise.all(ports.map((p) => healthz(p.monitor)))).every((s) => s === 200), 30000, 200);
});

test('join --first writes the secrets, the configs and a bundle; join --bundle on another node shares the cluster key', async (t) => {
  const base = await tempDir('pbx19-join-');
  t.after(() => fs.rm(base, { recursive: true, force: true }));
  const nodeDirs = (n: string) => ({ etcDir: path.join(base, n, 'etc'), dataDir: path.join(base, n, 'data'), natsStoreDir: path.join(base, n, 'nats'), configFile: path.join(base, n, 'etc', 'config.json') });
  await assert.rejects(joinCluster({ node: 'b', address: '10.0.0.12', peers: ['10.0.0.11'], first: false, ...nodeDirs('b') }), /--bundle FILE/);
  await assert.rejects(joinCluster({ node: 'a', address: '10.0.0.11', peers: [], first: true, ...nodeDirs('a') }), /three voters/);
  const a = await joinCluster({ node: 'a', address: '10.0.0.11', peers: ['10.0.0.12', '10.0.0.13'], names: ['print.example'], first: true, ...nodeDirs('a') });
  assert.ok(a.bundleFile);
  const bundle = JSON.parse(await fs.readFile(a.bundleFile!, 'utf8'));
  await joinCluster({ node: 'b', address: '10.0.0.12', peers: ['10.0.0.11', '10.0.0.13'], first: false, bundle, ...nodeDirs('b') });
  const key = (n: string) => fs.readFile(path.join(base, n, 'data', 'cluster.key'));
  assert.deepEqual(await key('a'), await key('b'), 'one cluster key');
  assert.equal((await key('a')).length, 32);
  for (const f of ['data/cluster.key', 'data/cluster-join.json', 'data/tls/key.pem', 'etc/nats-server.conf', 'etc/cluster-tls/route-key.pem']) {
    assert.equal((await fs.stat(path.join(base, 'a', f))).mode & 0o777, 0o600, `${f} is 0600`);
  }
  const cfg = JSON.parse(await fs.readFile(path.join(base, 'b', 'etc', 'config.json'), 'utf8'));
  assert.deepEqual(cfg.cluster, { servers: ['nats://127.0.0.1:4222'], node: 'b', url: 'https://10.0.0.12:31990' });
  const conf = await fs.readFile(path.join(base, 'b', 'etc', 'nats-server.conf'), 'utf8');
  assert.match(conf, /listen: 127\.0\.0\.1:4222/, 'clients only from this box');
  assert.match(conf, /routes: \[nats-route:\/\/10\.0\.0\.11:6222, nats-route:\/\/10\.0\.0\.13:6222\]/);
  assert.match(conf, /verify: true/);
  assert.match(conf, /cipher: chachapoly/);
});
