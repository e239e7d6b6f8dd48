// Legacy senders over LPD (RFC 1179): CUPS' own lpd backend sends jobs in both file orders, socat asks for the
// queue and removes jobs, and a sender that dies mid-file or sends from outside `allow` leaves nothing behind.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import net from 'node:net';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { addRawPrinter, filesUnder, freePort, startAppliance, until, type TestAppliance } from './helpers/appliance.js';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { run } from './peers/ipptool.js';
import { CUPS_LPD_BACKEND, lpdSend } from './peers/lpd.js';

const skip = existsSync(CUPS_LPD_BACKEND) && existsSync('/usr/bin/socat') ? false : 'CUPS lpd backend (cups-daemon) or socat is not installed';

let app: TestAppliance;
let sink: Sink;
let dir: string;
let lpdPort: number;
let deadPort: number; // a printer nobody listens for: its jobs stay in the queue
const jobs = async () => (await app.api.json('GET', '/v1/jobs?limit=1000')).json.jobs as { jobID: string; title: string; user: string; state: string; printer: string; options: { copies: number }; size: number }[];

const lpdBackend = (queue: string, file: string, opts: { order?: string; user?: string; title?: string } = {}) => lpdSend('127.0.0.1', lpdPort, queue, file, opts);

/** One LPD command through socat; the answer is what the server writes before it closes. */
async function socat(command: string): Promise<string> {
  const r = await run('bash', ['-c', `printf '%b' "$CMD" | socat -t 5 - TCP:127.0.0.1:${lpdPort}`], { env: { ...process.env, CMD: command } });
  return r.stdout;
}

/** A hand-driven LPD sender: each step waits for the server's acknowledgement byte. */
async function lpdSession(steps: (Buffer | string)[], opts: { destroyAfter?: number } = {}): Promise<number[]> {
  const s = net.connect(lpdPort, '127.0.0.1');
  await new Promise((r, j) => s.once('connect', r).once('error', j));
  const acks: number[] = [];
  const queue: Buffer[] = [];
  let wake: (() => void) | undefined;
  s.on('data', (c: Buffer) => {
    queue.push(c);
    wake?.();
  });
  let closed = false;
  s.on('close', () => {
    closed = true;
    wake?.();
  });
  s.on('error', () => undefined);
  const nextAck = async () => {
    for (let i = 0; i < 200 && !queue.length && !closed; i++) await new Promise<void>((r) => ((wake = r), setTimeout(r, 100)));
    const c = queue.shift();
    if (!c) return -1;
    if (c.length > 1) queue.unshift(c.subarray(1));
    return c[0];
  };
  for (const [i, step] of steps.entries()) {
    if (opts.destroyAfter === i) {
      s.resetAndDestroy();
      return acks;
    }
    s.write(step);
    // File contents are followed by their own ack; a subcommand line by one too.
    acks.push(await nextAck());
    if (acks[acks.length - 1] !== 0) break;
  }
  s.end();
  return acks;
}

describe('LPD intake', { skip }, () => {
  before(async () => {
    sink = await startSink();
    deadPort = await freePort();
    app = await startAppliance({ lpdPort: 0 });
    await addRawPrinter(app.api, 'front', sink.port, { intake: { lpd: true, allow: ['127.0.0.1/32', '::1'] } });
    await addRawPrinter(app.api, 'stuck', deadPort, { intake: { lpd: true, allow: ['127.0.0.0/8'] }, retry: { limit: 1000, baseMs: 60000, maxMs: 60000, heldRetryMs: 60000 } });
    await addRawPrinter(app.api, 'faraway', sink.port, { intake: { lpd: true, allow: ['10.0.0.0/8'] } });
    await app.running.legacy.sync(app.running.app.printers.list());
    lpdPort = app.running.legacy.lpdPort!;
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx-lpd-doc-'));
  });
  after(async () => {
    await app?.stop();
    await sink?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  for (const order of ['control,data', 'data,control']) {
    test(`CUPS' lpd backend sends a job (${order}); it is a job the moment the last file is acknowledged, and prints byte for byte`, async () => {
      const file = path.join(dir, `${order}.txt`);
      const body = Buffer.from(`lab result ${order}\n`.repeat(500));
      await fs.writeFile(file, body);
      const before = sink.jobs.length;
      const r = await lpdBackend('front', file, { order, title: `chart ${order.split(',')[0]} first` });
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      // No waiting: the backend heard its last ack, so the job must already be durable and listed.
      const job = (await jobs()).find((j) => j.title === `chart ${order.split(',')[0]} first`);
      assert.ok(job, `the job exists once the sender has its acknowledgement: ${JSON.stringify(await jobs())}`);
      assert.equal(job.user, 'nurse');
      const [got] = (await sink.waitForJobs(before + 1, 20000)).slice(before);
      assert.ok(got.data!.equals(body));
    });
  }

  test('J, P and N become title and user; repeated print lines become copies', async () => {
    const data = Buffer.from('ZPL ^XA^FDlabel^FS^XZ\n');
    const control = 'Hlabhost\nPlabuser\nJspecimen 42\nNspecimen.zpl\nldfA042labhost\nldfA042labhost\nldfA042labhost\n';
    const acks = await lpdSession(['\x02front\n', `\x02${Buffer.byteLength(control)} cfA042labhost\n`, Buffer.concat([Buffer.from(control), Buffer.from([0])]), `\x03${data.length} dfA042labhost\n`, Buffer.concat([data, Buffer.from([0])])]);
    assert.deepEqual(acks, [0, 0, 0, 0, 0]);
    const job = (await jobs()).find((j) => j.title === 'specimen 42');
    assert.ok(job);
    assert.equal(job.user, 'labuser');
    assert.equal(job.options.copies, 3);
  });

  test('queue state (short and long) lists the waiting jobs; remove-jobs cancels only the sender\'s own', async () => {
    const file = path.join(dir, 'stuck.txt');
    await fs.writeFile(file, 'waiting\n');
    assert.equal((await lpdBackend('stuck', file, { title: 'waits 1' })).code, 0);
    assert.equal((await lpdBackend('stuck', file, { title: 'waits 2', user: 'doctor' })).code, 0);
    const short = await socat('\\x03stuck\\n');
    assert.match(short, /Rank\s+Owner\s+Job\s+Files/);
    assert.match(short, /nurse\s+\d+\s+waits 1/);
    assert.match(short, /doctor\s+\d+\s+waits 2/);
    const long = await socat('\\x04stuck\\n');
    assert.match(long, /nurse: (active|1st)\s+\[job \d+\]\n\s+waits 1\s+8 bytes/);
    const seq = /nurse\s+(\d+)\s+waits 1/.exec(short)![1];
    // Another user cannot remove nurse's job; nurse can.
    await socat(`\\x05stuck doctor ${seq}\\n`);
    assert.equal((await jobs()).find((j) => j.title === 'waits 1')!.state !== 'cancelled', true);
    await socat(`\\x05stuck nurse ${seq}\\n`);
    await until('job cancelled', async () => (await jobs()).find((j) => j.title === 'waits 1')!.state === 'cancelled');
    assert.notEqual((await jobs()).find((j) => j.title === 'waits 2')!.state, 'cancelled');
    assert.match(await socat('\\x03nosuch\\n'), /nosuch: unknown queue or not allowed/);
  });

  test('an unknown queue, or a queue whose allow list does not hold the sender, is refused with a non-zero ack', async () => {
    assert.deepEqual(await lpdSession(['\x02nosuch\n']), [1]);
    assert.deepEqual(await lpdSession(['\x02faraway\n']), [1]);
  });

  test('a sender killed in the middle of a data file leaves no job and no file behind', async () => {
    const before = (await jobs()).length;
    const control = 'Hh\nPkilled\nJkilled\nldfA001h\n';
    const acks = await lpdSession(['\x02front\n', `\x02${control.length} cfA001h\n`, Buffer.concat([Buffer.from(control), Buffer.from([0])]), '\x03100000 dfA001h\n', Buffer.alloc(50000, 0x41), 'never sent'], { destroyAfter: 5 });
    assert.deepEqual(acks.slice(0, 4), [0, 0, 0, 0]);
    await until('the half-sent upload is removed', async () => (await filesUnder(path.join(app.dataDir, 'spool/tmp'))).length === 0);
    assert.equal((await jobs()).length, before);
    assert.ok(!(await jobs()).some((j) => j.title === 'killed'));
  });

  test('the CLI sets and clears a printer\'s intake (printbox printer intake), and says what is wrong', async () => {
    const cli = (...args: string[]) => run(process.execPath, [path.resolve(import.meta.dirname, '../bin/printbox.mjs'), ...args, '--data', app.dataDir], { timeout: 60000 });
    const on = await cli('printer', 'intake', 'faraway', '--lpd', '--raw-port', String(await freePort()), '--allow', '192.168.7.0/24, 10.1.2.3');
    assert.equal(on.code, 0, on.stderr);
    assert.match(on.stdout, /faraway: legacy intake LPD queue faraway, RAW port \d+ from 192\.168\.7\.0\/24, 10\.1\.2\.3/);
    const p = (await app.api.json('GET', '/v1/printers/faraway')).json;
    assert.deepEqual(p.intake.allow, ['192.168.7.0/24', '10.1.2.3']);
    assert.equal(p.intake.lpd, true);
    const noAllow = await cli('printer', 'intake', 'faraway', '--lpd');
    assert.equal(noAllow.code, 1);
    assert.match(noAllow.stderr, /needs "allow".*\(bad_intake\)/);
    const nothing = await cli('printer', 'intake', 'faraway');
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /needs --lpd and\/or --raw-port N with --allow RANGES, or --off/);
    const off = await cli('printer', 'intake', 'faraway', '--off');
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stdout, /faraway: legacy intake off/);
    assert.equal((await app.api.json('GET', '/v1/printers/faraway')).json.intake, undefined);
  });

  test('intake needs an allow list and valid ranges; a RAW port is one printer\'s', async () => {
    const noAllow = await app.api.json('PATCH', '/v1/printers/front', { intake: { lpd: true } });
    assert.equal(noAllow.status, 400);
    assert.equal(noAllow.json.error.code, 'bad_intake');
    assert.match(noAllow.json.error.message, /needs "allow"/);
    const badRange = await app.api.json('PATCH', '/v1/printers/front', { intake: { lpd: true, allow: ['10.0.0.0/33'] } });
    assert.equal(badRange.status, 400);
    assert.match(badRange.json.error.message, /10\.0\.0\.0\/33/);
    const badPort = await app.api.json('PATCH', '/v1/printers/front', { intake: { raw: { port: 70000 }, allow: ['127.0.0.1'] } });
    assert.equal(badPort.status, 400);
    assert.match(badPort.json.error.message, /raw\.port/);
    const port = await freePort();
    assert.equal((await app.api.json('PATCH', '/v1/printers/stuck', { intake: { lpd: true, raw: { port }, allow: ['127.0.0.0/8'] } })).status, 200);
    const taken = await app.api.json('PATCH', '/v1/printers/front', { intake: { raw: { port }, allow: ['127.0.0.1'] } });
    assert.equal(taken.status, 409);
    assert.equal(taken.json.error.code, 'raw_port_in_use');
    assert.match(taken.json.error.message, /already the RAW intake of printer "stuck"/);
  });
});
