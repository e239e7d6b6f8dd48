// Debian's cups-bsd commands against printbox's optional plain ipp:// listener (config ippPort): `lpr -H`, `lpq`,
// `lprm` are IPP clients of a CUPS server (not LPD), so printbox answers them as one, from the anonymousSubmit ranges.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { addRawPrinter, freePort, startAppliance, tempDir, type TestAppliance } from './helpers/appliance.js';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { run } from './peers/ipptool.js';

const skip = ['/usr/bin/lpr', '/usr/bin/lpq', '/usr/bin/lprm'].every(existsSync) ? false : 'cups-bsd (lpr, lpq, lprm) is not installed';

describe('cups-bsd lpr, lpq and lprm print through the plain IPP listener', { skip }, () => {
  let app: TestAppliance;
  let sink: Sink;
  let dir: string;
  let ippPort: number;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    sink = await startSink();
    ippPort = await freePort();
    app = await startAppliance({ ippPort, anonymousSubmit: ['127.0.0.1/32'] });
    await addRawPrinter(app.api, 'front', sink.port);
    await addRawPrinter(app.api, 'stuck', await freePort(), { retry: { limit: 1000, baseMs: 60000, maxMs: 60000, heldRetryMs: 60000 } });
    dir = await tempDir('pbx-cups-bsd-');
    // No client.conf or ~/.cups of the machine's: the commands talk only to -H/-h.
    env = { ...process.env, HOME: dir, CUPS_SERVER: `127.0.0.1:${ippPort}` };
  });
  after(async () => {
    await app?.stop();
    await sink?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  test('lpr -H 127.0.0.1:PORT -P front -J title file prints the file with its title', async () => {
    const file = path.join(dir, 'note.txt');
    await fs.writeFile(file, 'discharge note\n');
    const r = await run('lpr', ['-H', `127.0.0.1:${ippPort}`, '-P', 'front', '-J', 'discharge note', file], { env, timeout: 30000 });
    assert.equal(r.code, 0, r.stderr);
    const [got] = await sink.waitForJobs(1, 20000);
    assert.equal(got.data!.toString(), 'discharge note\n');
    const job = (await app.api.json('GET', '/v1/jobs')).json.jobs.find((j: { title: string }) => j.title === 'discharge note');
    assert.ok(job);
  });

  test('lpq lists a waiting job; lprm cancels it', async () => {
    const file = path.join(dir, 'wait.txt');
    await fs.writeFile(file, 'waits\n');
    assert.equal((await run('lpr', ['-H', `127.0.0.1:${ippPort}`, '-P', 'stuck', '-J', 'waiting chart', file], { env, timeout: 30000 })).code, 0);
    const q = await run('lpq', ['-h', `127.0.0.1:${ippPort}`, '-P', 'stuck'], { env, timeout: 30000 });
    assert.equal(q.code, 0, q.stderr);
    const row = q.stdout.split('\n').find((l) => l.includes('waiting chart'));
    assert.ok(row, q.stdout);
    const id = /^\S+\s+\S+\s+(\d+)\s/.exec(row)![1];
    const rm = await run('lprm', ['-h', `127.0.0.1:${ippPort}`, '-P', 'stuck', id], { env, timeout: 30000 });
    assert.equal(rm.code, 0, rm.stderr);
    const job = (await app.api.json('GET', '/v1/jobs')).json.jobs.find((j: { title: string }) => j.title === 'waiting chart');
    assert.equal(job.state, 'cancelled');
    assert.match((await run('lpq', ['-h', `127.0.0.1:${ippPort}`, '-P', 'stuck'], { env, timeout: 30000 })).stdout, /no entries/);
  });

  test('the plain listener serves IPP only: anything else is a JSON 404', async () => {
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      http.get(`http://127.0.0.1:${ippPort}/v1/jobs`, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      }).on('error', reject);
    });
    assert.equal(r.status, 404);
    assert.equal(JSON.parse(r.body).error.code, 'route_not_found');
    assert.match(JSON.parse(r.body).error.message, /serves IPP at \/ipp\/print\/NAME/);
  });

  test('the plain listener is off unless the config names a port', async () => {
    const plain = await startAppliance();
    try {
      assert.equal(plain.running.ippPort, undefined);
    } finally {
      await plain.stop();
    }
  });
});
