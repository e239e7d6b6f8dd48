// Back-pressure: once maxQueuedJobs wait for their printers, intake answers 503 queue_full with Retry-After; nothing accepted is lost, nothing refused is kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { startAppliance, addRawPrinter, until } from './helpers/appliance.js';
import { startSink } from './peers/tcp-sink.js';

test('a burst larger than maxQueuedJobs is pushed back with 503 and Retry-After, and the job sent again later prints with the others, in order', async () => {
  const sink = await startSink({ behaviour: 'refuse' }); // the printer is off: every accepted job waits in its line
  const box = await startAppliance({ maxQueuedJobs: 3 });
  try {
    await addRawPrinter(box.api, 'front', sink.port);
    const docs = Array.from({ length: 4 }, (_, i) => Buffer.from(`job ${i} `.repeat(100)));
    const ids = docs.map(() => randomUUID());
    for (let i = 0; i < 3; i++) {
      const r = await box.api.postJob({ printer: 'front', jobID: ids[i] }, docs[i]);
      assert.equal(r.status, 201, r.text);
    }
    const refused = await box.api.postJob({ printer: 'front', jobID: ids[3] }, docs[3]);
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.json.error.code, 'queue_full');
    assert.match(refused.json.error.message, /3 jobs are waiting .*maxQueuedJobs.*send it again after Retry-After/);
    assert.equal(refused.headers['retry-after'], '2');
    // Refused means not kept: no job, no sealed bytes anywhere.
    assert.equal((await box.api.json('GET', `/v1/jobs/${ids[3]}`)).status, 404);
    assert.deepEqual(await fs.readdir(path.join(box.dataDir, 'spool', 'tmp')), []);
    assert.deepEqual(await fs.readdir(path.join(box.dataDir, 'spool', 'docs')), []);
    // The printer comes back: the line drains, and the sender's second try is accepted and prints last.
    await sink.setBehaviour('normal');
    await sink.waitForJobs(3, 20000);
    await until('the line to empty', async () => (await box.api.json('GET', `/v1/jobs/${ids[2]}`)).json.state === 'sent', 10000);
    const again = await box.api.postJob({ printer: 'front', jobID: ids[3] }, docs[3]);
    assert.equal(again.status, 201, again.text);
    const printed = await sink.waitForJobs(4, 20000);
    assert.deepEqual(printed.map((j) => j.data!.toString()), docs.map((d) => d.toString()), 'every job once, in the order accepted');
  } finally {
    await box.stop();
    await sink.close();
  }
});
