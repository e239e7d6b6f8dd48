// Legacy senders over RAW (9100-style) listeners: one connection is one job, accepted when the sender closes;
// a reset throws the job away; eight senders at once keep their own order; outside `allow` is refused.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import net from 'node:net';
import { existsSync } from 'node:fs';
import { addRawPrinter, filesUnder, freePort, startAppliance, until, type TestAppliance } from './helpers/appliance.js';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { run } from './peers/ipptool.js';
import path from 'node:path';

const skip = existsSync('/usr/bin/socat') ? false : 'socat is not installed';

let app: TestAppliance;
let sink: Sink;
let rawPort: number;

/** Sends one job as a RAW sender does and waits for the server to close (the job is durable by then). */
function send(port: number, data: Buffer): Promise<'closed' | 'refused'> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(data));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? resolve('refused') : reject(err)));
    s.resume();
    s.on('end', () => resolve('closed'));
  });
}

describe('RAW intake', { skip }, () => {
  before(async () => {
    sink = await startSink();
    rawPort = await freePort();
    app = await startAppliance();
    await addRawPrinter(app.api, 'labels', sink.port, { intake: { raw: { port: rawPort }, allow: ['127.0.0.1'] } });
    await app.running.legacy.sync(app.running.app.printers.list());
  });
  after(async () => {
    await app?.stop();
    await sink?.close();
  });

  test('socat sends a file to the printer\'s RAW port; it prints byte for byte', async () => {
    const before = sink.jobs.length;
    const r = await run('bash', ['-c', `printf '^XA^FDward 3^FS^XZ\\n' | socat -t 10 - TCP:127.0.0.1:${rawPort}`]);
    assert.equal(r.code, 0, r.stderr);
    const job = (await app.api.json('GET', '/v1/jobs?limit=1000')).json.jobs.at(-1);
    assert.equal(job.user, 'raw');
    assert.equal(job.contentType, 'zpl');
    const [got] = (await sink.waitForJobs(before + 1, 20000)).slice(before);
    assert.equal(got.data!.toString(), '^XA^FDward 3^FS^XZ\n');
  });

  test('eight senders at once: every job prints, and each sender\'s jobs print in the order it sent them', async () => {
    const before = sink.jobs.length;
    const senders = 8;
    const each = 12;
    await Promise.all(
      Array.from({ length: senders }, async (_, s) => {
        for (let k = 0; k < each; k++) assert.equal(await send(rawPort, Buffer.from(`sender ${s} job ${k}\n`)), 'closed');
      }),
    );
    const got = (await sink.waitForJobs(before + senders * each, 60000)).slice(before).map((j) => j.data!.toString());
    assert.equal(got.length, senders * each);
    for (let s = 0; s < senders; s++) {
      const mine = got.filter((t) => t.startsWith(`sender ${s} `)).map((t) => Number(/job (\d+)/.exec(t)![1]));
      assert.deepEqual(mine, Array.from({ length: each }, (_, k) => k), `sender ${s} order`);
    }
  });

  test('a connection reset in the middle of a job is discarded: nothing prints, nothing stays on disk', async () => {
    const before = (await app.api.json('GET', '/v1/jobs?limit=1000')).json.jobs.length;
    const s = net.connect(rawPort, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.on('error', () => undefined);
    s.write(Buffer.alloc(300_000, 0x42)); // past the inline limit: a temp file exists while it arrives
    await new Promise((r) => setTimeout(r, 200));
    s.resetAndDestroy();
    await until('the partial upload is removed', async () => (await filesUnder(path.join(app.dataDir, 'spool/tmp'))).length === 0);
    // A job sent after it still arrives, and it is the only new one.
    assert.equal(await send(rawPort, Buffer.from('after the reset\n')), 'closed');
    const list = (await app.api.json('GET', '/v1/jobs?limit=1000')).json.jobs;
    assert.equal(list.length, before + 1);
    assert.equal(list.at(-1).size, 'after the reset\n'.length);
  });

  test('an address outside allow is refused before a byte is taken; the listener follows the printer\'s intake', async () => {
    const before = (await app.api.json('GET', '/v1/jobs?limit=1000')).json.jobs.length;
    const patched = await app.api.json('PATCH', '/v1/printers/labels', { intake: { raw: { port: rawPort }, allow: ['10.0.0.0/8'] } });
    assert.equal(patched.status, 200);
    assert.equal(await send(rawPort, Buffer.from('from the wrong place\n')), 'refused');
    assert.equal((await app.api.json('GET', '/v1/jobs?limit=1000')).json.jobs.length, before);
    const off = await app.api.json('PATCH', '/v1/printers/labels', { intake: null });
    assert.equal(off.status, 200);
    assert.equal(off.json.intake, undefined);
    await app.running.legacy.sync(app.running.app.printers.list());
    await assert.rejects(send(rawPort, Buffer.from('x')), /ECONNREFUSED/);
  });
});
