// LPR driver against a real LPD (cups-lpd in front of a private CUPS whose raw queue feeds a TCP sink), plus a
// recording LPD beside it for what the real one cannot show (file names, source ports, refusals part-way).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { DriverContext, DriverStore, Outcome } from '../drivers/contract.js';
import { buildControlFile, createLprDriver, jobNumbers, RESERVED_PORTS } from '../drivers/lpr.js';
import { freePort, startCupsLpd, type CupsLpd } from './peers/lpd.js';
import { testJob } from './peers/outbound-job.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const never = () => new AbortController().signal;

function memoryStore(init: Record<string, unknown> = {}): DriverStore & { data: Map<string, unknown> } {
  const data = new Map<string, unknown>(Object.entries(init));
  return { data, get: <T>(k: string) => data.get(k) as T | undefined, set: async <T>(k: string, v: T) => void data.set(k, v) };
}
const quiet = { info() {}, warn() {}, debug() {} };
const ctxWith = (store: DriverStore): DriverContext => ({ store, log: quiet });
const reasonOf = (o: Outcome) => ('reason' in o ? o.reason : '');

// ---------------------------------------------------------------------------------------------------------------
// A recording LPD (a mock beside the real one): speaks RFC 1179 receive-job, keeps every file, can refuse or reset.
interface LpdFile {
  kind: 'control' | 'data';
  name: string;
  size: number;
  bytes: Buffer;
}
interface LpdConnection {
  remotePort: number;
  queue: string;
  files: LpdFile[];
  ended: boolean;
}
interface RecordingLpd {
  port: number;
  conns: LpdConnection[];
  /** Ack byte for the Nth acknowledgement (0 = receive-job line, then header and file of each subcommand), default 0. */
  nackAt?: { step: number; ack: number };
  /** Reset the connection after this many bytes of the data file. */
  resetInData?: number;
  /** Never answer at all. */
  silent?: boolean;
  close(): Promise<void>;
}

async function startRecordingLpd(): Promise<RecordingLpd> {
  const open = new Set<net.Socket>();
  const lpd: RecordingLpd = {
    port: 0,
    conns: [],
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    sock.on('error', () => {});
    const conn: LpdConnection = { remotePort: sock.remotePort!, queue: '', files: [], ended: false };
    lpd.conns.push(conn);
    let buf = Buffer.alloc(0);
    let step = 0;
    let pending: { kind: LpdFile['kind']; name: string; size: number } | undefined;
    const ack = () => {
      const bad = lpd.nackAt && lpd.nackAt.step === step ? lpd.nackAt.ack : 0;
      step++;
      sock.write(Buffer.from([bad]));
      return bad === 0;
    };
    sock.on('end', () => {
      conn.ended = true;
      sock.end();
    });
    sock.on('data', (c: Buffer) => {
      if (lpd.silent) return;
      buf = Buffer.concat([buf, c]);
      for (;;) {
        if (pending) {
          if (pending.kind === 'data' && lpd.resetInData !== undefined && buf.length >= lpd.resetInData) return void sock.resetAndDestroy();
          if (buf.length < pending.size + 1) return;
          conn.files.push({ ...pending, bytes: buf.subarray(0, pending.size) });
          assert.equal(buf[pending.size], 0, 'file must end with a NUL byte');
          buf = buf.subarray(pending.size + 1);
          pending = undefined;
          if (!ack()) return void sock.end();
          continue;
        }
        const nl = buf.indexOf(10);
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString('latin1');
        buf = buf.subarray(nl + 1);
        if (step === 0) {
          conn.queue = line.slice(1);
          if (!ack()) return void sock.end();
          continue;
        }
        const [count, name] = line.slice(1).split(' ');
        const kind = line[0] === '\x02' ? 'control' : 'data';
        if (!ack()) return void sock.end();
        pending = { kind, name, size: Number(count) };
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  lpd.port = (server.address() as net.AddressInfo).port;
  return lpd;
}

// ---------------------------------------------------------------------------------------------------------------
describe('lpr driver against cups-lpd + CUPS', () => {
  let lpd: CupsLpd;
  let uri: string;
  before(async () => {
    lpd = await startCupsLpd();
    uri = `lpr://127.0.0.1:${lpd.port}/${lpd.queue}`;
  });
  after(async () => {
    await lpd?.stop();
  });

  test('a 1 MiB binary document lands intact at the printer behind the LPD, with its title and owner', async () => {
    const driver = createLprDriver(ctxWith(memoryStore()));
    const doc = randomBytes(1024 * 1024);
    const job = testJob(uri, doc, { title: 'Quarterly report', contentType: 'raw' });
    job.user = 'alice';
    const out = await driver.send(job, never());
    assert.equal(out.kind, 'sent', reasonOf(out));
    const [got] = await lpd.sink.waitForJobs(1, 15000);
    assert.equal(got.size, doc.length);
    assert.equal(got.sha256, sha(doc));
    const { name, user, documents } = await lpd.waitForJob('Quarterly report', 10000);
    assert.deepEqual({ name, user, documents }, { name: 'Quarterly report', user: 'alice', documents: 1 });
    assert.deepEqual(job.warnings, []);
  });

  test('copies become repeated print lines: CUPS records three documents and the printer gets three copies', async () => {
    const driver = createLprDriver(ctxWith(memoryStore()));
    const doc = Buffer.from('Invoice 42\nTotal: 12.00 EUR\n');
    const before = lpd.sink.jobs.length;
    const job = testJob(uri, doc, { title: 'Invoice 42', contentType: 'text', options: { copies: 3, duplex: 'long-edge', media: 'iso_a4_210x297mm', finishings: ['staple'] } });
    job.user = 'bob';
    const out = await driver.send(job, never());
    assert.equal(out.kind, 'sent', reasonOf(out));
    const mine = await lpd.waitForJob('Invoice 42', 10000);
    assert.deepEqual(mine && { user: mine.user, documents: mine.documents }, { user: 'bob', documents: 3 });
    // CUPS may hand the three documents to the printer in one connection or in three: count bytes, not connections.
    const until = Date.now() + 10000;
    const received = () => lpd.sink.jobs.slice(before).reduce((n, j) => n + j.size, 0);
    while (received() < 3 * doc.length && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.equal(received(), 3 * doc.length);
    const parts = lpd.sink.jobs.slice(before);
    if (parts.length === 3) for (const p of parts) assert.equal(p.sha256, sha(doc));
    else assert.equal(parts[0].sha256, sha(Buffer.concat([doc, doc, doc])));
    assert.deepEqual(job.warnings, [
      'duplex=long-edge not carried: an LPR control file (RFC 1179) has no line for it',
      'media=iso_a4_210x297mm not carried: an LPR control file (RFC 1179) has no line for it',
      'finishings=staple not carried: an LPR control file (RFC 1179) has no line for it',
    ]);
  });

  test('cups-lpd accepts the data file first too (order=data-first)', async () => {
    const driver = createLprDriver(ctxWith(memoryStore()));
    const doc = randomBytes(70_000);
    const before = lpd.sink.jobs.length;
    const out = await driver.send(testJob(`${uri}?order=data-first`, doc, { title: 'data first' }), never());
    assert.equal(out.kind, 'sent', reasonOf(out));
    const got = (await lpd.sink.waitForJobs(before + 1, 10000))[before];
    assert.equal(got.sha256, sha(doc));
  });

  test('a queue the server does not have fails the job and names the queue', async () => {
    const driver = createLprDriver(ctxWith(memoryStore()));
    const out = await driver.send(testJob(`lpr://127.0.0.1:${lpd.port}/no-such-queue`, Buffer.from('x')), never());
    assert.equal(out.kind, 'fail', reasonOf(out));
    assert.match(reasonOf(out), /refused queue "no-such-queue" \(ack 1\): no such queue, or it does not accept jobs/);
  });

  test('a server that refuses connections is a retry', async () => {
    const driver = createLprDriver(ctxWith(memoryStore()));
    const out = await driver.send(testJob(`lpr://127.0.0.1:${await freePort()}/q`, Buffer.from('x')), never());
    assert.equal(out.kind, 'retry');
    assert.match(reasonOf(out), /ECONNREFUSED/);
  });

  test('job numbers continue across a restart: a fresh driver with the same store goes on from the last one', async () => {
    const store = memoryStore();
    const first = createLprDriver(ctxWith(store));
    const details: string[] = [];
    for (let i = 0; i < 2; i++) {
      const out = await first.send(testJob(uri, Buffer.from(`job ${i}\n`)), never());
      assert.equal(out.kind, 'sent', reasonOf(out));
      details.push((out as { detail: string }).detail);
    }
    const restarted = createLprDriver(ctxWith(store));
    const out = await restarted.send(testJob(uri, Buffer.from('job 2\n')), never());
    details.push((out as { detail: string }).detail);
    assert.deepEqual(
      details.map((d) => d.match(/job (\d{3})/)?.[1]),
      ['000', '001', '002'],
    );
    assert.equal(store.data.get('nextJobNumber'), 3);
  });

  test('probe asks for the queue state and returns the server\'s words', async () => {
    const driver = createLprDriver(ctxWith(memoryStore()));
    const status = await driver.probe!(new URL(uri));
    assert.equal(status.reachable, true);
    assert.match(status.detail ?? '', new RegExp(`^${lpd.queue} is ready`));
    const down = await driver.probe!(new URL(`lpr://127.0.0.1:${await freePort()}/q`));
    assert.equal(down.reachable, false);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('lpr driver wire details (recording LPD)', () => {
  let rec: RecordingLpd;
  before(async () => {
    rec = await startRecordingLpd();
  });
  after(async () => {
    await rec?.close();
  });
  const reset = () => {
    rec.conns.length = 0;
    rec.nackAt = undefined;
    rec.resetInData = undefined;
    rec.silent = false;
  };

  test('control file first, then the data file; names, lines and byte counts as RFC 1179 says', async () => {
    reset();
    const driver = createLprDriver(ctxWith(memoryStore({ nextJobNumber: 41 })));
    const doc = Buffer.from('%!PS\nshowpage\n');
    const job = testJob(`lpr://127.0.0.1:${rec.port}/labels?banner=true&class=finance`, doc, { title: 'Pay\nslip', contentType: 'postscript', options: { copies: 2 } });
    job.user = 'carol';
    const out = await driver.send(job, never());
    assert.equal(out.kind, 'sent', reasonOf(out));
    const [conn] = rec.conns;
    assert.equal(conn.queue, 'labels');
    assert.deepEqual(conn.files.map((f) => f.kind), ['control', 'data']);
    const [cf, df] = conn.files;
    const host = cf.name.slice(6);
    assert.match(cf.name, /^cfA041[A-Za-z0-9.-]+$/);
    assert.equal(df.name, `dfA041${host}`);
    assert.equal(df.bytes.toString(), doc.toString());
    const lines = cf.bytes.toString().split('\n');
    assert.equal(lines.pop(), '');
    assert.match(lines[0], /^H.+/);
    // The newline in the title cannot start a forged control line.
    assert.deepEqual(lines.slice(1), ['Pcarol', 'JPay slip', 'Cfinance', 'Lcarol', `o${df.name}`, `o${df.name}`, `U${df.name}`, 'NPay slip']);
    assert.ok(conn.ended, 'the client closes the connection after the last ack');
  });

  test('print-line letter follows the content type', () => {
    const letter = (contentType: Parameters<typeof testJob>[2] extends infer I ? (I extends { contentType?: infer C } ? C : never) : never) =>
      buildControlFile(testJob('lpr://h/q', Buffer.alloc(1), { contentType }), 7, { host: 'box' }).text.split('\n').find((l) => l.endsWith('dfA007box') && !l.startsWith('U'))![0];
    assert.deepEqual(
      (['pdf', 'pcl', 'pwg-raster', 'zpl', 'escpos', 'raw', 'postscript', 'text'] as const).map((t) => [t, letter(t)]),
      [['pdf', 'l'], ['pcl', 'l'], ['pwg-raster', 'l'], ['zpl', 'l'], ['escpos', 'l'], ['raw', 'l'], ['postscript', 'o'], ['text', 'f']],
    );
  });

  test('job numbers wrap from 999 to 000 and are saved before use', async () => {
    reset();
    const store = memoryStore({ nextJobNumber: 999 });
    const driver = createLprDriver(ctxWith(store));
    for (let i = 0; i < 2; i++) assert.equal((await driver.send(testJob(`lpr://127.0.0.1:${rec.port}/q`, Buffer.from('x')), never())).kind, 'sent');
    assert.deepEqual(rec.conns.map((c) => c.files[0].name.slice(0, 6)), ['cfA999', 'cfA000']);
    assert.equal(store.data.get('nextJobNumber'), 1);
    const take = jobNumbers(memoryStore({ nextJobNumber: 998 }));
    assert.deepEqual(await Promise.all([take(), take(), take()]), [998, 999, 0]);
  });

  test('the connection comes from a reserved port 721–731 (we are root), or any port with reservedPort=false', async () => {
    reset();
    const driver = createLprDriver(ctxWith(memoryStore()));
    assert.equal((await driver.send(testJob(`lpr://127.0.0.1:${rec.port}/q`, Buffer.from('x')), never())).kind, 'sent');
    assert.equal((await driver.send(testJob(`lpr://127.0.0.1:${rec.port}/q?reservedPort=false`, Buffer.from('x')), never())).kind, 'sent');
    assert.ok(RESERVED_PORTS.includes(rec.conns[0].remotePort), `source port ${rec.conns[0].remotePort}`);
    assert.ok(rec.conns[1].remotePort > 1023, `source port ${rec.conns[1].remotePort}`);
  });

  test('when every reserved port is taken the job still goes, from an ordinary port', async () => {
    reset();
    const holders: net.Server[] = [];
    try {
      for (const p of RESERVED_PORTS) {
        const s = net.createServer();
        await new Promise<void>((r) => s.once('error', () => r()).listen(p, '0.0.0.0', () => r()));
        if (s.listening) holders.push(s);
      }
      const driver = createLprDriver(ctxWith(memoryStore()));
      const out = await driver.send(testJob(`lpr://127.0.0.1:${rec.port}/q`, Buffer.from('x')), never());
      assert.equal(out.kind, 'sent', reasonOf(out));
      assert.ok(rec.conns[0].remotePort > 1023, `source port ${rec.conns[0].remotePort}`);
    } finally {
      for (const s of holders) await new Promise<void>((r) => s.close(() => r()));
    }
  });

  test('without CAP_NET_BIND_SERVICE the driver falls back to an ordinary port', async () => {
    reset();
    const lprModule = fileURLToPath(new URL('../drivers/lpr.ts', import.meta.url));
    const code = `
      const { createLprDriver } = await import(${JSON.stringify(lprModule)});
      const { Readable } = await import('node:stream');
      const d = createLprDriver({ store: { get() {}, async set() {} }, log: { info() {}, warn() {}, debug() {} } });
      const out = await d.send({ id: 'j', title: 't', user: 'u', contentType: 'raw', size: 2, options: { copies: 1 },
        uri: new URL('lpr://127.0.0.1:${rec.port}/q'), open: () => Readable.from([Buffer.from('hi')]), warn() {} }, new AbortController().signal);
      console.log(JSON.stringify(out));`;
    // setpriv drops the capability from the bounding set, so even root cannot bind ports below 1024.
    const child = spawn('setpriv', ['--bounding-set', '-net_bind_service', '--inh-caps', '-net_bind_service', process.execPath, '--import', 'tsx', '--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const exit = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 20000);
      child.on('exit', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    assert.equal(exit, 0, stderr);
    assert.equal(JSON.parse(stdout.trim().split('\n').pop()!).kind, 'sent', stdout + stderr);
    assert.equal(rec.conns.length, 1);
    assert.ok(rec.conns[0].remotePort > 1023, `source port ${rec.conns[0].remotePort}`);
  });

  test('a negative ack after any subcommand is a retry that names the step', async () => {
    const driver = createLprDriver(ctxWith(memoryStore()));
    const steps: [number, RegExp][] = [
      [1, /said no \(ack 2\) to the control file header/],
      [2, /said no \(ack 2\) to the control file$/],
      [3, /said no \(ack 2\) to the data file header \(5 bytes\)/],
      [4, /said no \(ack 2\) to the data file$/],
    ];
    for (const [step, why] of steps) {
      reset();
      rec.nackAt = { step, ack: 2 };
      const out = await driver.send(testJob(`lpr://127.0.0.1:${rec.port}/q`, Buffer.from('hello')), never());
      assert.equal(out.kind, 'retry');
      assert.match(reasonOf(out), why);
    }
  });

  test('a reset in the middle of the document is a retry', async () => {
    reset();
    rec.resetInData = 100_000;
    const driver = createLprDriver(ctxWith(memoryStore()));
    const out = await driver.send(testJob(`lpr://127.0.0.1:${rec.port}/q`, randomBytes(1024 * 1024)), never());
    assert.equal(out.kind, 'retry');
    assert.match(reasonOf(out), /ECONNRESET|EPIPE|closed the connection/);
  });

  test('a server that never answers is a retry after ackTimeout', async () => {
    reset();
    rec.silent = true;
    const driver = createLprDriver(ctxWith(memoryStore()));
    const out = await driver.send(testJob(`lpr://127.0.0.1:${rec.port}/q?ackTimeout=300`, Buffer.from('x')), never());
    assert.equal(out.kind, 'retry');
    assert.match(reasonOf(out), /no answer from the LPD server within 300 ms/);
  });

  test('cancelling while the server keeps us waiting is a retry, at once', async () => {
    reset();
    rec.silent = true;
    const driver = createLprDriver(ctxWith(memoryStore()));
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    // Without the cancel this would end in the ack timeout, with another reason.
    const out = await driver.send(testJob(`lpr://127.0.0.1:${rec.port}/q`, Buffer.from('x')), ac.signal);
    assert.deepEqual(out, { kind: 'retry', reason: 'cancelled while sending' });
  });

  test('a document shorter than its recorded size fails instead of sending a wrong byte count', async () => {
    reset();
    const driver = createLprDriver(ctxWith(memoryStore()));
    const job = testJob(`lpr://127.0.0.1:${rec.port}/q`, Buffer.from('abc'));
    job.size = 10;
    const out = await driver.send(job, never());
    assert.equal(out.kind, 'fail');
    assert.match(reasonOf(out), /document ended after 3 of its recorded 10 bytes/);
  });

  test('a URI without a queue fails with a clear reason', async () => {
    const out = await createLprDriver(ctxWith(memoryStore())).send(testJob('lpr://127.0.0.1:515/', Buffer.from('x')), never());
    assert.equal(out.kind, 'fail');
    assert.match(reasonOf(out), /names no queue/);
  });
});
