// Status callbacks in a cluster: one still due when the node that was sending it dies is sent again by one node
// only — the one that takes the printer over — not by every node that starts. Three `printbox serve` processes
// (kill -9) on a real 3-server JetStream cluster; a receiver on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { startProcessCluster, until } from './helpers/cluster.js';
import type { Api } from './helpers/api.js';
import { addRawPrinter } from './helpers/appliance.js';
import { startSink } from './peers/tcp-sink.js';

test('a job and a batch callback in flight when the driving node is killed are sent again once, by the node that takes the printer over; nodes starting later do not send them again', { timeout: 300_000 }, async (t) => {
  // The receiver keeps the first request of the two callbacks unanswered (the driving node dies while sending it);
  // every other request is answered 200. `got` counts the requests per job or batch.
  const jobID = randomUUID();
  const got = new Map<string, number>();
  const held: http.ServerResponse[] = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const b = JSON.parse(body);
      const key = b.jobID ?? b.batchID;
      got.set(key, (got.get(key) ?? 0) + 1);
      if (got.get(key) === 1 && (key === jobID || key === 'due')) held.push(res);
      else res.end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  t.after(() => {
    for (const res of held) res.destroy();
    receiver.close();
  });
  const statusURL = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/cb`;

  const { nodes, apis } = await startProcessCluster(t, 'pbx19c-cb-', { env: { PRINTBOX_CALLBACKS_ALLOW: '127.0.0.1/32' } });
  const sink = await startSink();
  t.after(() => sink.close());
  // Off until the batch is closed and released: both callbacks then come from the node driving the printer.
  await addRawPrinter(apis[0], 'front', sink.port, { enabled: false });
  const drivenBy = async (api: Api) => (await api.json('GET', '/v1/cluster')).json?.printers?.find((p: { name: string }) => p.name === 'front')?.drivenBy as string | null;
  const driver = Number(/node(\d)/.exec((await until('front driven', () => drivenBy(apis[0]), 30000))!)![1]) - 1;
  const others = [0, 1, 2].filter((i) => i !== driver);
  const [restarted, survivor] = others;

  const job = await apis[survivor].postJob({ printer: 'front', jobID, statusURL }, Buffer.from('call me back'));
  assert.equal(job.status, 201, job.text);
  const member = randomUUID();
  assert.equal((await apis[survivor].json('POST', '/v1/batches', { batchID: 'due', jobIDs: [member], statusURL })).status, 201);
  assert.equal((await apis[survivor].postJob({ printer: 'front', jobID: member, batchID: 'due' }, Buffer.from('member'))).status, 201);
  assert.equal((await apis[survivor].json('POST', '/v1/batches/due/close')).status, 200);
  assert.equal((await apis[survivor].json('GET', '/v1/batches/due')).json.released, 1);
  assert.equal((await apis[survivor].json('PATCH', '/v1/printers/front', { enabled: true })).status, 200);
  await until('both callbacks in flight', () => got.get(jobID) === 1 && got.get('due') === 1, 30000);

  // The driving node dies mid-callback, and so does a second one: the third takes the printer over and is the only
  // node running. It sends both callbacks again; before, a callback due waited for some node to start.
  await Promise.all([nodes[driver].child!.kill9(), nodes[restarted].child!.kill9()]);
  await until('the survivor drives front', async () => ((await drivenBy(apis[survivor])) === `node${survivor + 1}` ? true : null), 30000);
  const ended = async (path: string) => (await apis[survivor].json('GET', path)).json?.callback?.result as string | undefined;
  assert.equal(await until('the job callback delivered again', () => ended(`/v1/jobs/${jobID}`), 30000), 'delivered');
  assert.equal(await until('the batch callback delivered again', () => ended('/v1/batches/due'), 30000), 'delivered');

  // The two nodes start again: neither sends them once more.
  await Promise.all([nodes[driver].start(), nodes[restarted].start()]);
  await until('every node up', async () => ((await apis[survivor].json('GET', '/v1/cluster')).json.nodes.filter((n: { state: string }) => n.state === 'up').length === 3 ? true : null), 30000);
  // A later job's callback (through the same receiver) comes after anything a starting node sent at its start.
  const later = await apis[survivor].postJob({ printer: 'front', statusURL }, Buffer.from('later'));
  await until('a later callback', () => got.get(later.json.jobID) === 1, 30000);
  assert.equal(got.get(jobID), 2, 'the job callback: the request cut by the kill, then one more');
  assert.equal(got.get('due'), 2, 'the batch callback: the request cut by the kill, then one more');
});
