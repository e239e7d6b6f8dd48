// RAW driver against a real TCP sink on loopback: exact bytes on the wire, PJL tickets, and retry on a bad connection.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Driver } from '../drivers/contract.js';
import { UEL } from '../drivers/pjl.js';
import { createRawDriver } from '../drivers/raw.js';
import { testJob } from './peers/outbound-job.js';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { until } from './peers/ports.js';

const ctx = { store: { get: () => undefined, set: async () => {} }, log: { info() {}, warn() {}, debug() {} } };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const never = () => new AbortController().signal;

describe('raw driver', () => {
  let sink: Sink;
  let driver: Driver;
  const sinks: Sink[] = [];
  before(async () => {
    sink = await startSink();
    sinks.push(sink);
    driver = createRawDriver(ctx);
  });
  after(async () => {
    for (const s of sinks) await s.close();
  });

  test('a PDF arrives inside a PJL job ticket, ticket and document byte-exact; orientation, which PJL sets for PCL only, is a warning', async () => {
    const doc = Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(1024 * 1024 + 17)]);
    const job = testJob(`raw://127.0.0.1:${sink.port}`, doc, {
      id: 'j-42',
      title: 'Quarterly "report"\n2024',
      contentType: 'pdf',
      options: { copies: 2, duplex: 'long-edge', color: false, tray: 'tray-2', media: 'iso_a4_210x297mm', orientation: 'landscape' },
    });
    const before = sink.jobs.length;
    const out = await driver.send(job, never());
    assert.deepEqual(out, { kind: 'sent' });
    const [, got] = await sink.waitForJobs(before + 1, 5000).then((j) => [null, j[before]] as const);
    const name = 'Quarterly report 2024 [j-42]';
    const header =
      `${UEL}@PJL\r\n@PJL JOB NAME="${name}"\r\n@PJL SET QTY=2\r\n@PJL SET DUPLEX=ON\r\n@PJL SET BINDING=LONGEDGE\r\n` +
      `@PJL SET RENDERMODE=GRAYSCALE\r\n@PJL SET MEDIASOURCE=TRAY2\r\n@PJL SET PAPER=A4\r\n@PJL ENTER LANGUAGE=PDF\r\n`;
    const trailer = `${UEL}@PJL\r\n@PJL EOJ NAME="${name}"\r\n${UEL}`;
    const expected = Buffer.concat([Buffer.from(header, 'latin1'), doc, Buffer.from(trailer, 'latin1')]);
    assert.equal(got.size, expected.length);
    assert.equal(got.sha256, sha(expected));
    assert.equal(job.warnings.length, 1);
    assert.match(job.warnings[0], /orientation landscape not carried: PJL sets it for PCL only/);
  });

  test('PostScript and PCL enter their own PJL language', async () => {
    for (const [type, lang] of [['postscript', 'POSTSCRIPT'], ['pcl', 'PCL']] as const) {
      const doc = Buffer.from(type === 'pcl' ? '\x1bEhello\x0c\x1bE' : '%!PS\nshowpage\n', 'latin1');
      const n = sink.jobs.length;
      assert.equal((await driver.send(testJob(`raw://127.0.0.1:${sink.port}`, doc, { contentType: type }), never())).kind, 'sent');
      const got = (await sink.waitForJobs(n + 1, 5000))[n].data!.toString('latin1');
      assert.ok(got.includes(`@PJL ENTER LANGUAGE=${lang}\r\n${doc.toString('latin1')}${UEL}`), got);
    }
  });

  test('ZPL, ESC/POS, text and raw go out unwrapped and byte-identical', async () => {
    for (const type of ['zpl', 'escpos', 'text', 'raw', 'pwg-raster'] as const) {
      const doc = randomBytes(200_000);
      const n = sink.jobs.length;
      const job = testJob(`raw://127.0.0.1:${sink.port}`, doc, { contentType: type });
      assert.equal((await driver.send(job, never())).kind, 'sent');
      const got = (await sink.waitForJobs(n + 1, 5000))[n];
      assert.equal(got.sha256, sha(doc), type);
      assert.deepEqual(job.warnings, []);
    }
  });

  test('options a ZPL label cannot carry are warned about; copies repeat the label', async () => {
    const label = Buffer.from('^XA^FO50,50^A0N,40,40^FDhello^FS^XZ');
    const n = sink.jobs.length;
    const job = testJob(`raw://127.0.0.1:${sink.port}`, label, { contentType: 'zpl', options: { copies: 3, duplex: 'long-edge', media: 'A4', pageRanges: '1-2' } });
    assert.equal((await driver.send(job, never())).kind, 'sent');
    const got = (await sink.waitForJobs(n + 1, 5000))[n];
    assert.equal(got.data!.toString(), label.toString().repeat(3));
    assert.equal(job.opens, 3);
    assert.equal(job.warnings.length, 3);
    assert.match(job.warnings.join('\n'), /duplex=long-edge not carried/);
    assert.match(job.warnings.join('\n'), /media "A4" not carried/);
    assert.match(job.warnings.join('\n'), /pageRanges "1-2" not carried/);
  });

  test('copies of a raw document are sent once, with a warning', async () => {
    const doc = randomBytes(5000);
    const n = sink.jobs.length;
    const job = testJob(`raw://127.0.0.1:${sink.port}`, doc, { contentType: 'raw', options: { copies: 2 } });
    assert.equal((await driver.send(job, never())).kind, 'sent');
    assert.equal((await sink.waitForJobs(n + 1, 5000))[n].sha256, sha(doc));
    assert.deepEqual(job.warnings, ['copies=2 not carried by a raw document without a job ticket; sent once']);
  });

  test('pjl=false sends a PDF bare and says which options were dropped', async () => {
    const doc = Buffer.from('%PDF-1.4\n%%EOF\n');
    const n = sink.jobs.length;
    const job = testJob(`raw://127.0.0.1:${sink.port}?pjl=false`, doc, { contentType: 'pdf', options: { copies: 1, duplex: 'short-edge' } });
    assert.equal((await driver.send(job, never())).kind, 'sent');
    assert.equal((await sink.waitForJobs(n + 1, 5000))[n].sha256, sha(doc));
    assert.deepEqual(job.warnings, ['duplex=short-edge not carried: the PJL job ticket is turned off for this printer (pjl=false)']);
  });

  test('a refused connection is a retry; the same job goes through once the printer listens', async () => {
    const s = await startSink({ behaviour: 'refuse' });
    sinks.push(s);
    const doc = randomBytes(10_000);
    const job = testJob(`raw://127.0.0.1:${s.port}`, doc, { contentType: 'raw' });
    const out = await driver.send(job, never());
    assert.equal(out.kind, 'retry');
    assert.match((out as { reason: string }).reason, /ECONNREFUSED/);
    await s.setBehaviour('normal');
    assert.equal((await driver.send(job, never())).kind, 'sent');
    assert.equal((await s.waitForJobs(1, 5000))[0].sha256, sha(doc));
  });

  test('a printer that resets mid-job is a retry, and nothing counts as printed', async () => {
    const s = await startSink({ behaviour: 'reset', resetAfter: 64 * 1024 });
    sinks.push(s);
    const job = testJob(`raw://127.0.0.1:${s.port}`, randomBytes(8 * 1024 * 1024), { contentType: 'pdf' });
    const out = await driver.send(job, never());
    assert.equal(out.kind, 'retry', JSON.stringify(out));
    assert.equal(s.connections(), 1);
    assert.equal(s.jobs.length, 0);
  });

  test('a reset after the last byte was written (small job) is still a retry, never a crash', async () => {
    const s = await startSink({ behaviour: 'reset', resetAfter: 10 });
    sinks.push(s);
    const out = await driver.send(testJob(`raw://127.0.0.1:${s.port}`, randomBytes(2000)), never());
    assert.equal(out.kind, 'retry', JSON.stringify(out));
    assert.equal(s.jobs.length, 0);
  });

  test('a stalled printer that never closes is a retry after closeTimeout', async () => {
    const s = await startSink({ behaviour: 'stall' });
    sinks.push(s);
    const out = await driver.send(testJob(`raw://127.0.0.1:${s.port}?closeTimeout=300`, randomBytes(1000)), never());
    assert.equal(out.kind, 'retry');
    assert.match((out as { reason: string }).reason, /did not close the connection within 300 ms/);
  });

  test('a damaged sealed document fails the job and the printer sees a reset, not a complete job', async () => {
    const n = sink.jobs.length;
    const conns = sink.connections();
    const resets = sink.resets();
    const out = await driver.send(testJob(`raw://127.0.0.1:${sink.port}`, randomBytes(1024 * 1024), { contentType: 'pcl', failAfter: 256 * 1024 }), never());
    assert.equal(out.kind, 'fail');
    assert.match((out as { reason: string }).reason, /damaged/);
    const t0 = Date.now();
    while (sink.resets() === resets && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(sink.connections(), conns + 1);
    assert.equal(sink.resets(), resets + 1);
    assert.equal(sink.jobs.length, n);
  });

  test('cancelling while sending is a retry', async () => {
    const s = await startSink({ behaviour: 'stall' });
    sinks.push(s);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const out = await driver.send(testJob(`raw://127.0.0.1:${s.port}`, randomBytes(32 * 1024 * 1024)), ac.signal);
    assert.equal(out.kind, 'retry');
  });

  test('an early connection (the previous outcome still being recorded) carries no byte until job.ready; then the job goes on it', async () => {
    const s = await startSink();
    sinks.push(s);
    let open!: () => void;
    const job = testJob(`raw://127.0.0.1:${s.port}`, Buffer.from('early bird\n'));
    job.ready = new Promise<void>((r) => (open = r));
    const sending = driver.send(job, never());
    await until('the early connection', () => s.connections() === 1, 5000, 10);
    // Time for a driver that ignored job.ready to send the whole job (the sink records it on our FIN).
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(s.jobs.length, 0, 'no job before ready');
    open();
    assert.deepEqual(await sending, { kind: 'sent' });
    const [got] = await s.waitForJobs(1, 5000);
    assert.equal(got.data!.toString(), 'early bird\n');
    assert.equal(s.connections(), 1, 'the early connection carried the job');
    assert.equal(s.resets(), 0);
  });

  test('a job cancelled while its early connection waits sends nothing: the printer sees a reset, not an empty job', async () => {
    const s = await startSink();
    sinks.push(s);
    const job = testJob(`raw://127.0.0.1:${s.port}`, Buffer.from('never printed\n'));
    job.ready = new Promise<void>(() => {});
    const ac = new AbortController();
    const sending = driver.send(job, ac.signal);
    await until('the early connection', () => s.connections() === 1, 5000, 10);
    ac.abort();
    const out = await sending;
    assert.equal(out.kind, 'retry');
    assert.match((out as { reason: string }).reason, /cancelled/);
    await until('the reset at the printer', () => s.resets() === 1, 5000, 10);
    assert.equal(s.jobs.length, 0);
  });

  test('when the previous outcome cannot be recorded, the early connection is reset and nothing is sent', async () => {
    const s = await startSink();
    sinks.push(s);
    let fail!: (e: Error) => void;
    const job = testJob(`raw://127.0.0.1:${s.port}`, Buffer.from('never printed\n'));
    job.ready = new Promise<void>((_, reject) => (fail = reject));
    const sending = driver.send(job, never());
    await until('the early connection', () => s.connections() === 1, 5000, 10);
    fail(new Error('no space left on device'));
    const out = await sending;
    assert.equal(out.kind, 'retry');
    assert.match((out as { reason: string }).reason, /previous job's outcome could not be recorded: no space left on device/);
    await until('the reset at the printer', () => s.resets() === 1, 5000, 10);
    assert.equal(s.jobs.length, 0);
  });

  test('a printer that drops the early connection while it waits gets a new one for the job', async () => {
    // A printer that resets an idle connection after 50 ms and takes the next one as a job.
    let conns = 0;
    let dropped = false;
    const got: Buffer[] = [];
    const server = net.createServer({ allowHalfOpen: true }, (sock) => {
      sock.on('error', () => {});
      if (conns++ === 0) {
        setTimeout(() => {
          sock.resetAndDestroy();
          dropped = true;
        }, 50);
        return;
      }
      const chunks: Buffer[] = [];
      sock.on('data', (c: Buffer) => chunks.push(c));
      sock.on('end', () => {
        got.push(Buffer.concat(chunks));
        sock.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      let open!: () => void;
      const job = testJob(`raw://127.0.0.1:${(server.address() as net.AddressInfo).port}`, Buffer.from('second try\n'));
      job.ready = new Promise<void>((r) => (open = r));
      const sending = driver.send(job, never());
      await until('the first connection dropped', () => dropped, 5000, 10);
      await new Promise((r) => setTimeout(r, 100)); // the reset reaches the driver's socket
      open();
      assert.deepEqual(await sending, { kind: 'sent' });
      assert.equal(conns, 2);
      assert.deepEqual(got.map(String), ['second try\n']);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  test('a printer that stops taking data mid-job is reported on the job while it waits, and the job completes when it reads again', async () => {
    // A printer that reads 256 KiB, then stops (paper out) for 1.5 s, then reads the rest.
    let got = 0;
    const hash = createHash('sha256');
    const server = net.createServer((sock) => {
      sock.on('data', (c: Buffer) => {
        got += c.length;
        hash.update(c);
        if (got >= 256 * 1024 && got - c.length < 256 * 1024) {
          sock.pause();
          setTimeout(() => sock.resume(), 1500);
        }
      });
      sock.on('end', () => sock.end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const doc = randomBytes(24 * 1024 * 1024); // more than the socket buffers hold, so our side sees the stall
    const job = testJob(`raw://127.0.0.1:${(server.address() as net.AddressInfo).port}?stallNotice=300`, doc);
    const statuses: (string | null)[] = [];
    job.status = (m) => statuses.push(m);
    try {
      const out = await driver.send(job, never());
      assert.deepEqual(out, { kind: 'sent' });
      assert.equal(got, doc.length);
      assert.equal(hash.digest('hex'), sha(doc));
      assert.match(String(statuses[0]), /taken no data for \d+ s .*still waiting/);
      assert.equal(statuses.at(-1), null, 'the stall report is cleared once the printer reads again');
    } finally {
      server.close();
    }
  });

  test('with stallTimeout a printer that never reads again is given up on and the job retried', async () => {
    const s = await startSink({ behaviour: 'stall' });
    sinks.push(s);
    const out = await driver.send(testJob(`raw://127.0.0.1:${s.port}?stallNotice=200&stallTimeout=800`, randomBytes(32 * 1024 * 1024)), never());
    assert.equal(out.kind, 'retry');
    assert.match((out as { reason: string }).reason, /took no data/);
  });

  test('a bad URI parameter fails with its message', async () => {
    const out = await driver.send(testJob(`raw://127.0.0.1:${sink.port}?confirm=maybe`, Buffer.from('x')), never());
    assert.equal(out.kind, 'fail');
    assert.match((out as { reason: string }).reason, /confirm must be one of none, pjl/);
  });

  test('the schema declares pjl, confirm and confirmTimeout', () => {
    const names = driver.schema.params.map((p) => p.name);
    assert.deepEqual(names, ['connectTimeout', 'closeTimeout', 'pjl', 'stallNotice', 'stallTimeout', 'confirm', 'confirmTimeout']);
    assert.deepEqual(driver.schema.params.find((p) => p.name === 'confirm')?.values, ['none', 'pjl']);
  });
});
