// Compare-and-set on the cluster's key-value buckets (runtime/cluster/nats.ts casPut) against three real
// nats-servers: writers expecting the same revision at the same moment — exactly one wins, the others are refused;
// writes to other keys of the bucket never refuse a write whose own key did not move.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type NatsConnection } from 'nats';
import { startNatsCluster } from './peers/nats.js';
import { casDelete, casPut, isWrongSequence } from '../runtime/cluster/nats.js';

const enc = (s: string) => new TextEncoder().encode(s);

test('casPut: three nodes writing one key at once expecting the same revision — one wins each round, the others are refused, the winner is what is stored', async (t) => {
  const cl = await startNatsCluster(3, { prefix: 'pbx19-cas-nats-' });
  t.after(() => cl.stop());
  const ncs: NatsConnection[] = await Promise.all(cl.urls.map((u) => connect({ servers: u })));
  t.after(async () => {
    for (const nc of ncs) await nc.close();
  });
  const kv = await ncs[0].jetstream().views.kv('castest', { replicas: 3, history: 1 });
  let rev = await casPut(ncs[0], 'castest', 'state', enc('start'), 0);
  await assert.rejects(casPut(ncs[1], 'castest', 'state', enc('again'), 0), (err) => isWrongSequence(err), 'a create of a key that has a value is refused');
  const rounds = 60;
  for (let round = 0; round < rounds; round++) {
    const expected = rev;
    const res = await Promise.allSettled(ncs.map((nc, i) => casPut(nc, 'castest', 'state', enc(`${round}/${i}`), expected)));
    const won = res.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, rev: r.value }] : []));
    for (const r of res) if (r.status === 'rejected') assert.ok(isWrongSequence(r.reason), `a loser is refused as a stale revision, not with ${r.reason}`);
    assert.equal(won.length, 1, `round ${round}: exactly one writer wins (winners: ${won.map((w) => w.i).join(', ')})`);
    const stored = await kv.get('state');
    assert.equal(new TextDecoder().decode(stored!.value), `${round}/${won[0].i}`);
    rev = won[0].rev;
  }
});

test('casPut: writes to other keys of the bucket in between do not refuse a write whose own key is unchanged', async (t) => {
  const cl = await startNatsCluster(3, { prefix: 'pbx19-cas2-nats-' });
  t.after(() => cl.stop());
  const ncs: NatsConnection[] = await Promise.all(cl.urls.map((u) => connect({ servers: u })));
  t.after(async () => {
    for (const nc of ncs) await nc.close();
  });
  await ncs[0].jetstream().views.kv('castest2', { replicas: 3, history: 1 });
  const revs = new Map<string, number>();
  for (const k of ['a', 'b', 'c']) revs.set(k, await casPut(ncs[0], 'castest2', k, enc(`${k}0`), 0));
  // Each node keeps changing its own key, all at once: every write must land (its key moved only by itself).
  await Promise.all(
    ['a', 'b', 'c'].map(async (k, i) => {
      for (let n = 1; n <= 20; n++) revs.set(k, await casPut(ncs[i], 'castest2', k, enc(`${k}${n}`), revs.get(k)!));
    }),
  );
  const kv = await ncs[0].jetstream().views.kv('castest2', { bindOnly: true });
  for (const k of ['a', 'b', 'c']) assert.equal(new TextDecoder().decode((await kv.get(k))!.value), `${k}20`);
  // A delete at a stale revision is refused; at the key's revision it lands, and the key can be created again.
  await assert.rejects(casDelete(ncs[1], 'castest2', 'a', revs.get('a')! - 1), (err) => isWrongSequence(err));
  await casDelete(ncs[1], 'castest2', 'a', revs.get('a')!);
  assert.equal((await kv.get('a'))?.operation, 'DEL');
  await casPut(ncs[2], 'castest2', 'a', enc('a again'), 0);
  assert.equal(new TextDecoder().decode((await kv.get('a'))!.value), 'a again');
});
