// The cluster kill test (bench/torture-cluster.ts): 3 nats-server + 3 printbox + HAProxy, 8 clients, 4 printers;
// a printbox, a nats-server and a whole node killed with -9 mid-load, while 4 batches run across the nodes. PRINTBOX_CLUSTER_JOBS sets the job count
// (default 400 here; `npm run torture` runs 2,000).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { clusterKill } from '../bench/torture-cluster.js';

test('cluster: kill -9 a printbox, a nats-server, a whole node under load: 0 lost, order kept, repeats only in flight, batches whole and in order', { timeout: 600_000 }, async () => {
  const jobs = Number(process.env.PRINTBOX_CLUSTER_JOBS ?? 400);
  const r = await clusterKill({ jobs, canary: `PBX-CANARY-${randomBytes(12).toString('hex')}` });
  assert.deepEqual(r.failures, []);
  assert.equal(r.accepted, jobs);
  assert.equal(r.takeovers.length >= 3, true, 'a takeover was seen after each kill');
  assert.deepEqual([r.batchesDone, r.batchesInOrder], [4, 4], 'every batch done, in listed order and contiguous');
});
