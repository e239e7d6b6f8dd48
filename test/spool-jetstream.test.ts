// The spool contract (test/spool-contract.ts) on the replicated backend: a real 3-node JetStream cluster on loopback.
import { after, before } from 'node:test';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from 'nats';
import { JetStreamSpool, JOBS_BUCKET, DOCS_BUCKET } from '../runtime/cluster/jetstream-spool.js';
import { reopenable, spoolContract } from './spool-contract.js';
import { startNatsCluster, type NatsCluster } from './peers/nats.js';

let cluster: NatsCluster;
let nc: NatsConnection;

before(async () => {
  cluster = await startNatsCluster(3, { prefix: 'pbx19-spool-' });
  nc = await connect({ servers: cluster.urls });
});

after(async () => {
  await nc?.close();
  await cluster?.stop();
});

spoolContract('JetStream spool (R3)', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx19-js-spool-'));
  const key = randomBytes(32);
  const open = async () => {
    const s = new JetStreamSpool({ nc, key, stagingDir: dir, historyLimit: 1000, replicas: 3 });
    await s.open();
    return s;
  };
  return reopenable(open, async () => {
    // Every test starts on empty buckets.
    const jsm = await nc.jetstreamManager();
    for (const s of [`KV_${JOBS_BUCKET}`, `OBJ_${DOCS_BUCKET}`]) await jsm.streams.delete(s).catch(() => {});
    await fs.rm(dir, { recursive: true, force: true });
  });
});

// ---- what only a replicated spool must do: two nodes, each with its own connection to its own server

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { jobFields } from './spool-contract.js';
import { filesUnder } from './helpers/appliance.js';

async function twoNodes(t: { after(fn: () => Promise<void>): void }) {
  const key = randomBytes(32);
  const seen: string[] = [];
  const nodes = await Promise.all([0, 1].map(async (i) => {
    const conn = await connect({ servers: [cluster.urls[i]] });
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx19-js-node-'));
    const spool = new JetStreamSpool({ nc: conn, key, stagingDir: dir, historyLimit: 1000, replicas: 3, onRemote: (j) => i === 1 && seen.push(j.id) });
    await spool.open();
    return { conn, dir, spool };
  }));
  t.after(async () => {
    for (const n of nodes) {
      await n.spool.close();
      await n.conn.close();
      await fs.rm(n.dir, { recursive: true, force: true });
    }
    const jsm = await nc.jetstreamManager();
    for (const s of [`KV_${JOBS_BUCKET}`, `OBJ_${DOCS_BUCKET}`]) await jsm.streams.delete(s).catch(() => {});
  });
  return { a: nodes[0].spool, b: nodes[1].spool, seen };
}

const until = async (what: string, fn: () => boolean) => {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(fn(), what);
};

test('a job accepted on one node is seen on another, document included, in the same order', async (t) => {
  const { a, b, seen } = await twoNodes(t);
  const docs = [randomBytes(1000), randomBytes(200 * 1024)];
  const ids: string[] = [];
  for (const d of docs) ids.push((await a.accept(jobFields(), await a.receive(Readable.from([d]), 1 << 30))).id);
  await until('node b saw both jobs', () => ids.every((id) => b.get(id)));
  assert.deepEqual(seen, ids, 'in acceptance order');
  for (let i = 0; i < 2; i++) assert.ok(Buffer.concat(await b.readDocument(ids[i])).equals(docs[i]));
  await b.update(ids[0], { state: 'sent' });
  await until('node a saw the state change', () => a.get(ids[0])?.state === 'sent');
  assert.equal(a.get(ids[0])!.hasDocument, false);
});

test('the same jobID accepted on two nodes at the same moment makes one job; the other is told job_exists', async (t) => {
  const { a, b } = await twoNodes(t);
  const fields = jobFields();
  const doc = randomBytes(500);
  const [ra, rb] = await Promise.all([a.receive(Readable.from([doc]), 1 << 30), b.receive(Readable.from([doc]), 1 << 30)]);
  const results = await Promise.allSettled([a.accept(fields, ra), b.accept({ ...fields }, rb)]);
  const ok = results.filter((r) => r.status === 'fulfilled');
  const refused = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
  assert.equal(ok.length, 1, 'exactly one accept wins');
  assert.equal(refused[0].reason.code, 'job_exists');
  await until('both nodes know the job', () => !!a.get(fields.id) && !!b.get(fields.id));
});

test('no document plaintext reaches the JetStream store (sealed before it leaves the node, store encrypted)', async (t) => {
  const { a } = await twoNodes(t);
  const marker = Buffer.from(`PLAINTEXT-MARKER-${randomBytes(8).toString('hex')}`);
  const big = Buffer.concat(Array.from({ length: 4000 }, () => marker));
  await a.accept(jobFields({ title: marker.toString() }), await a.receive(Readable.from([marker]), 1 << 30));
  await a.accept(jobFields(), await a.receive(Readable.from([big]), 1 << 30));
  for (const n of cluster.nodes) {
    for (const f of await filesUnder(n.dir)) {
      const bytes = await fs.readFile(f).catch(() => Buffer.alloc(0));
      assert.equal(bytes.includes(marker.subarray(0, 24)), false, `plaintext found in ${f}`);
    }
  }
});

test('a write from a node whose view is stale is refused (job_changed): a printed job is never set back', async (t) => {
  const { a, b } = await twoNodes(t);
  const job = await a.accept(jobFields(), await a.receive(Readable.from([randomBytes(100)]), 1 << 30));
  await until('node b has the job', () => !!b.get(job.id));
  // A third node sees the job, then hears nothing more (its watch stopped: cut off, or just slow).
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx19-js-stale-'));
  const stale = new JetStreamSpool({ nc, key: (a as unknown as { opts: { key: Uint8Array } }).opts.key, stagingDir: dir, historyLimit: 1000, replicas: 3 });
  await stale.open();
  await until('the stale node has the job', () => !!stale.get(job.id));
  await stale.close();
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  await b.update(job.id, { state: 'sending' });
  await b.update(job.id, { state: 'sent' });
  await assert.rejects(stale.update(job.id, { state: 'queued', reason: 'a late retry' }), (e: { code?: string }) => e.code === 'job_changed');
  await until('node a has the final state', () => a.get(job.id)?.state === 'sent');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(a.get(job.id)!.state, 'sent', 'still sent after the refused write');
});
