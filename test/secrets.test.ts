// No document content on disk or in logs; a tampered sealed file fails its job and sends the printer nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { Api } from './helpers/api.js';
import { addRawPrinter, filesUnder, freePort, spawnAppliance, startAppliance, tempDir, until } from './helpers/appliance.js';

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

test('a canary inside 100 documents and their metadata appears nowhere under the data dir or in the logs', async () => {
  const CANARY = `CANARY-${randomBytes(8).toString('hex')}`;
  const dataDir = await tempDir('pbx-canary-');
  const sink = await startSink();
  const box = await spawnAppliance(dataDir, await freePort(), { PRINTBOX_LOG_LEVEL: 'debug' });
  cleanups.push(() => sink.close(), () => box.stop(), () => fs.rm(dataDir, { recursive: true, force: true }));
  const api = new Api(`https://127.0.0.1:${box.port}`, await fs.readFile(`${dataDir}/tls/cert.pem`, 'utf8'), box.token);
  await addRawPrinter(api, 'out', sink.port);
  await addRawPrinter(api, 'parked', sink.port, { enabled: false }); // these stay sealed in the spool
  for (let i = 0; i < 100; i++) {
    const doc = Buffer.concat([randomBytes(3000), Buffer.from(`patient ${CANARY} page ${i}`), randomBytes(70000)]);
    const r = await api.postJob({ printer: i % 2 ? 'out' : 'parked', title: `${CANARY} report`, user: `dr-${CANARY}` }, doc, { filename: `${CANARY}.pdf` });
    assert.equal(r.status, 201, r.text);
  }
  await sink.waitForJobs(50, 20000);
  assert.ok(sink.jobs.every((j) => j.data!.includes(CANARY)), 'the printer does get the content');
  const files = await filesUnder(dataDir);
  assert.ok(files.some((f) => f.endsWith('.sealed')), 'parked documents are on disk, sealed');
  for (const f of files) {
    const bytes = await fs.readFile(f).catch(() => Buffer.alloc(0));
    assert.equal(bytes.includes(CANARY), false, `${f} holds the canary`);
    assert.equal(bytes.includes(Buffer.from(CANARY, 'utf16le')), false, `${f} holds the canary (UTF-16)`);
  }
  const logs = box.output();
  assert.ok(logs.length > 1000, 'the server did log (debug level)');
  assert.equal(logs.includes(CANARY), false, 'the logs hold the canary');
  const state = await fs.readFile(`${dataDir}/state.json`, 'utf8');
  assert.equal(state.includes(box.token!), false, 'tokens are stored hashed');
  assert.equal(((await fs.stat(`${dataDir}/spool.key`)).mode & 0o777).toString(8), '600');
  api.close();
});

for (const [label, preverifyBytes] of [['small document (verified before sending)', 16 * 1024 * 1024], ['large document (verified while streaming)', 0]] as const) {
  test(`a tampered sealed file fails its job with a reason and no garbage reaches the printer: ${label}`, async () => {
    const sink: Sink = await startSink();
    const box = await startAppliance({ preverifyBytes });
    cleanups.push(() => sink.close(), () => box.stop());
    await addRawPrinter(box.api, 'p', sink.port, { enabled: false });
    const doc = randomBytes(300_000);
    const bad = await box.api.postJob({ printer: 'p' }, doc);
    const good = await box.api.postJob({ printer: 'p' }, Buffer.from('intact document'));
    const file = `${box.dataDir}/spool/docs/${bad.json.jobID}.sealed`;
    const sealed = await fs.readFile(file);
    sealed[200_000] ^= 0x40; // inside the fourth chunk
    await fs.writeFile(file, sealed);
    await box.api.json('PATCH', '/v1/printers/p', { enabled: true });
    const failed = await until('the tampered job to fail', async () => {
      const j = (await box.api.request('GET', `/v1/jobs/${bad.json.jobID}`)).json;
      return j.state === 'failed' ? j : null;
    });
    assert.match(failed.reason, /cannot be opened.*authentication/);
    const [first] = await sink.waitForJobs(1, 10000);
    assert.equal(first.data!.toString(), 'intact document', 'the next job prints; nothing of the damaged one was recorded as a job');
    assert.equal(sink.jobs.length, 1);
  });
}
