// The appliance's log goes to stdout through an asynchronous writer (issue 20): no line is lost when it stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Api } from './helpers/api.js';
import { addRawPrinter, freePort, spawnAppliance, tempDir } from './helpers/appliance.js';
import { startSink } from './peers/tcp-sink.js';

test('every line logged up to a stop reaches stdout: the jobs accepted and delivered, then the stop itself', async () => {
  const dir = await tempDir('pbx-20s-log-');
  const sink = await startSink();
  const child = await spawnAppliance(path.join(dir, 'data'), await freePort());
  try {
    const api = new Api(`https://127.0.0.1:${child.port}`, await fs.readFile(path.join(dir, 'data/tls/cert.pem'), 'utf8'), child.token);
    await addRawPrinter(api, 'front', sink.port);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await api.postJob({ printer: 'front' }, Buffer.from(`job ${i}\n`));
      assert.equal(r.status, 201, r.text);
      ids.push(r.json.jobID);
    }
    await sink.waitForJobs(20, 20000);
    api.agent.destroy();
    await child.stop();
    assert.equal(child.proc.exitCode, 0);
    const lines = child.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    for (const id of ids) {
      assert.ok(lines.some((l) => l.msg === 'job accepted' && l.jobID === id), `job ${id} accepted`);
      assert.ok(lines.some((l) => l.msg === 'job delivered' && l.jobID === id), `job ${id} delivered`);
    }
    assert.equal(lines.filter((l) => l.msg === 'stopping').length, 1);
  } finally {
    await child.stop();
    await sink.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
