// An attacker on the LAN against the real server on loopback: first-run takeover, login floods, callback SSRF, what tokens see.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import { addRawPrinter, freePort, startAppliance, tempDir, until, type TestAppliance } from './helpers/appliance.js';
import { CallbackTargets } from '../runtime/queue/callback-target.js';
import { StatusCallbacks } from '../runtime/queue/callbacks.js';
import { Api } from './helpers/api.js';
import { startSink } from './peers/tcp-sink.js';
import { startTcpForward } from './peers/tcp-forward.js';
import { haveIppEvePrinter, startIppEvePrinter } from './peers/ippeveprinter.js';
import { selfSignedCert } from './peers/netns.js';
import { LOGIN_LIMITS, LoginLimiter, TOKEN_GUESS_LIMITS } from '../runtime/api/login-limit.js';
import { SERVER_NODE_FLAGS } from './helpers/node-flags.js';

const ROOT = path.resolve(import.meta.dirname, '..');

/** A request over the appliance's admin socket (0600: being on the box as its user is the proof). */
function overAdminSocket(box: TestAppliance, method: string, url: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath: box.running.app.adminSocketPath(), method, path: url, headers: data ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function withBox<T>(fn: (box: TestAppliance) => Promise<T>, overrides: Parameters<typeof startAppliance>[0] = {}): Promise<T> {
  const box = await startAppliance(overrides);
  try {
    return await fn(box);
  } finally {
    await box.stop();
  }
}

// ---- first-run setup

test('first-run setup over HTTPS needs the setup code the box shows at its console; it runs once', async () => {
  await withBox(async (box) => {
    const info = await box.api.json('GET', '/v1/setup', undefined, null);
    assert.equal(info.json.needsSetup, true);
    assert.equal(info.json.setupWindow, 'open');
    // The attack of the issue: no proof at all.
    const bare = await box.api.json('POST', '/v1/setup', { password: 'attacker-pw-1', name: 'x' }, null);
    assert.equal(bare.status, 401, bare.text);
    assert.equal(bare.json.error.code, 'setup_code_required');
    const wrong = await box.api.json('POST', '/v1/setup', { password: 'attacker-pw-1', name: 'x', setupCode: 'pbx_guess' }, null);
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error.code, 'setup_code_wrong');
    assert.equal((await box.api.json('POST', '/v1/session', { password: 'attacker-pw-1' }, null)).json.error.code, 'setup_needed', 'no password was set');

    // On the box, `printbox setup-code` shows the code (through the admin socket of the running server).
    const { stdout } = await promisify(execFile)(process.execPath, [...SERVER_NODE_FLAGS, path.join(ROOT, 'bin/printbox.mjs'), 'setup-code', '--data', box.dataDir], { timeout: 60000 });
    assert.equal(stdout.trim(), box.token, 'the setup code is the bootstrap admin token printed at first start');
    assert.equal((await fs.stat(path.join(box.dataDir, 'setup-code'))).mode & 0o777, 0o600);

    const ok = await box.api.json('POST', '/v1/setup', { password: 'the owner password', name: 'Front', setupCode: stdout.trim() }, null);
    assert.equal(ok.status, 201, ok.text);
    await assert.rejects(fs.stat(path.join(box.dataDir, 'setup-code')), 'a used setup code leaves the disk');
    const again = await box.api.json('POST', '/v1/setup', { password: 'attacker-pw-1', setupCode: box.token }, null);
    assert.equal(again.status, 409);
    assert.equal(again.json.error.code, 'setup_done');
  });
});

test('the setup window closes as soon as another admin credential exists; the admin socket still sets the password', async () => {
  await withBox(async (box) => {
    assert.equal((await overAdminSocket(box, 'GET', '/v1/setup-code')).json.window, 'open');
    // A box managed through the API alone: an admin token made by its operator.
    assert.equal((await box.api.json('POST', '/v1/tokens', { name: 'ops', scope: 'admin' })).status, 201);
    assert.equal((await box.api.json('GET', '/v1/setup', undefined, null)).json.setupWindow, 'closed');
    const late = await box.api.json('POST', '/v1/setup', { password: 'attacker-pw-1', name: 'x', setupCode: box.token }, null);
    assert.equal(late.status, 403, late.text);
    assert.equal(late.json.error.code, 'setup_closed');
    assert.match(late.json.error.message, /admin token|admin socket/);

    const local = await overAdminSocket(box, 'POST', '/v1/setup', { password: 'set on the box' });
    assert.equal(local.status, 201, JSON.stringify(local.json));
    assert.equal((await box.api.json('POST', '/v1/session', { password: 'set on the box' }, null)).status, 200);
    assert.equal((await overAdminSocket(box, 'POST', '/v1/setup', { password: 'set on the box' })).json.error.code, 'setup_done');
    assert.equal((await overAdminSocket(box, 'GET', '/v1/setup-code')).json.error.code, 'setup_done');
  });
});

test('without a setup code file the window is closed, and the box says how to set the password instead', async () => {
  await withBox(async (box) => {
    await fs.rm(path.join(box.dataDir, 'setup-code'));
    const code = await overAdminSocket(box, 'GET', '/v1/setup-code');
    assert.equal(code.status, 404);
    assert.equal(code.json.error.code, 'setup_code_not_found');
    const r = await box.api.json('POST', '/v1/setup', { password: 'attacker-pw-1', setupCode: box.token }, null);
    assert.equal(r.json.error.code, 'setup_closed');
  });
});

test('the console unit shows the setup code on the console only, never in the journal', async () => {
  const unit = await fs.readFile(path.join(ROOT, 'image/systemd/printbox-console.service'), 'utf8');
  const out = /^StandardOutput=(.*)$/m.exec(unit)?.[1];
  assert.equal(out, 'tty');
  assert.doesNotMatch(unit, /^Standard(Output|Error)=.*journal/m);
});

// ---- sign-in abuse

const tally = (xs: { status: number; json: any }[]) => {
  const t: Record<string, number> = {};
  for (const r of xs) {
    const k = r.status === 429 ? `429 ${r.json?.error?.code}` : String(r.status);
    t[k] = (t[k] ?? 0) + 1;
  }
  return t;
};

test('300 parallel wrong passwords from one address: at most 5 are checked, the rest are 429; jobs are accepted meanwhile', { timeout: 240000 }, async () => {
  const sink = await startSink();
  try {
    await withBox(async (box) => {
      assert.equal((await box.api.json('POST', '/v1/setup', { password: 'the owner password', setupCode: box.token }, null)).status, 201);
      await addRawPrinter(box.api, 'p', sink.port);
      const flood = new Api(box.api.base, box.running.tls.cert, undefined, 100); // 100 sockets: within the per-address connection cap
      try {
        const guesses = Promise.all(Array.from({ length: 300 }, (_, i) => flood.json('POST', '/v1/session', { password: `guess-${i}` }, null)));
        // Jobs posted while the guesses are in flight.
        const latencies: number[] = [];
        const jobs = [];
        for (let i = 0; i < 3; i++) {
          const t0 = performance.now();
          const r = await box.api.postJob({ printer: 'p', title: `during flood ${i}` }, Buffer.from('17 bytes of text\n'));
          latencies.push(Math.round(performance.now() - t0));
          jobs.push(r);
        }
        const answers = await guesses;
        const counts = tally(answers);
        console.log(`# login flood: ${JSON.stringify(counts)}; job accept latency during it: ${latencies.join(', ')} ms`);
        for (const j of jobs) assert.equal(j.status, 201, j.text);
        assert.ok((counts['401'] ?? 0) <= 5, `at most 5 passwords checked from one address, got ${counts['401']}`);
        assert.equal((counts['401'] ?? 0) + (counts['429 too_many_attempts'] ?? 0) + (counts['429 login_busy'] ?? 0), 300, JSON.stringify(counts));
        // The owner, from another address, is not locked out by the flood of 127.0.0.1 once it has ended.
        const owner = new Api(box.api.base, box.running.tls.cert, undefined, 1, { localAddress: '127.0.0.2' });
        assert.equal((await owner.json('POST', '/v1/session', { password: 'the owner password' }, null)).status, 200);
        owner.close();
        await sink.waitForJobs(3, 20000);
      } finally {
        flood.close();
      }
    });
  } finally {
    await sink.close();
  }
});

test('wrong API tokens are counted per address: past the limit every token from it gets 429, right ones too; other addresses print on', { timeout: 120000 }, async () => {
  await withBox(async (box) => {
    const guesser = new Api(box.api.base, box.running.tls.cert, undefined, 8, { localAddress: '127.0.0.21' });
    const neighbour = new Api(box.api.base, box.running.tls.cert, box.token, 8, { localAddress: '127.0.0.22' });
    try {
      const limit = TOKEN_GUESS_LIMITS.failures;
      const guesses = await Promise.all(Array.from({ length: limit }, (_, i) => guesser.json('GET', '/v1/printers', undefined, `pbx_guess${i}`)));
      assert.deepEqual([...new Set(guesses.map((g) => g.status))], [401], 'each guess within the limit is simply refused');
      // The next request from that address is refused before its token is looked at: a right token would otherwise tell a hit.
      const right = await guesser.json('GET', '/v1/printers', undefined, box.token);
      assert.equal(right.status, 429, right.text);
      assert.equal(right.json.error.code, 'too_many_attempts');
      assert.ok(Number(right.headers['retry-after']) > 0, 'Retry-After says when to come back');
      // IPP takes the same tokens (Basic password), so it counts the same guesses.
      const ipp = await guesser.request('POST', '/ipp/print', { body: Buffer.from([2, 0, 0, 11, 0, 0, 0, 1, 3]), headers: { 'content-type': 'application/ipp', authorization: `Basic ${Buffer.from(`x:${box.token}`).toString('base64')}` }, token: null });
      assert.equal(ipp.status, 429, ipp.text);
      // Another address is not locked out by them.
      assert.equal((await neighbour.json('GET', '/v1/printers')).status, 200);
    } finally {
      guesser.close();
      neighbour.close();
    }
  });
});

test('guesses spread over many addresses are checked at most two at a time, beyond that refused, not queued', { timeout: 240000 }, async () => {
  await withBox(async (box) => {
    assert.equal((await box.api.json('POST', '/v1/setup', { password: 'the owner password', setupCode: box.token }, null)).status, 201);
    const clients = Array.from({ length: 6 }, (_, i) => new Api(box.api.base, box.running.tls.cert, undefined, 40, { localAddress: `127.0.0.${10 + i}` }));
    try {
      const answers = await Promise.all(clients.flatMap((c, i) => Array.from({ length: 40 }, (_, j) => c.json('POST', '/v1/session', { password: `guess-${i}-${j}` }, null))));
      const counts = tally(answers);
      console.log(`# spread flood (6 addresses × 40): ${JSON.stringify(counts)}`);
      assert.ok((counts['401'] ?? 0) <= 6 * 5, JSON.stringify(counts));
      assert.ok((counts['429 login_busy'] ?? 0) > 0, 'concurrent checks beyond the cap are refused');
      // Sent one after the other, an address gets its five checks and no more.
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await clients[0].json('POST', '/v1/session', { password: `late-${i}` }, null)).status);
      assert.ok(statuses.filter((s) => s === 401).length <= 5 && statuses.at(-1) === 429, statuses.join(' '));
    } finally {
      for (const c of clients) c.close();
    }
  });
});

test('a spray of addresses forgets the least recently seen ones, not every count at once', async () => {
  const limiter = new LoginLimiter({ ...LOGIN_LIMITS, addresses: 3 });
  const wrong = async () => false;
  for (let i = 0; i < 5; i++) await limiter.check('10.0.0.1', wrong);
  await assert.rejects(limiter.check('10.0.0.1', wrong), { code: 'too_many_attempts' });
  // Two more addresses fit beside it; a third new one pushes out the oldest of those, never the whole table.
  await limiter.check('10.0.0.2', wrong);
  await limiter.check('10.0.0.3', wrong);
  await limiter.check('10.0.0.1', wrong).catch(() => {}); // refused without a check, yet seen again: it stays remembered
  assert.equal(limiter.size(), 3);
  await limiter.check('10.0.0.4', wrong);
  assert.equal(limiter.size(), 3);
  assert.ok(limiter.blocked('10.0.0.1') > 0, 'the blocked address, seen last, is still blocked');
});

// ---- statusURL: no server-side request forgery

/** A loopback HTTP receiver that records what reaches it; `answer` decides the reply. */
async function receiver(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_q, s) => s.end('ok')) {
  const got: { url: string; body: string; headers: http.IncomingHttpHeaders }[] = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ url: req.url ?? '', body, headers: req.headers });
      answer(req, res);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as import('node:net').AddressInfo).port;
  return { got, port, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

test('statusURL on loopback, [::1], link-local metadata or a name for loopback is refused at submit; nothing is called', async () => {
  const rx = await receiver();
  try {
    await withBox(async (box) => {
      await addRawPrinter(box.api, 'p', 9, { enabled: false });
      for (const url of [`http://127.0.0.1:${rx.port}/cb`, `http://[::1]:${rx.port}/cb`, 'http://169.254.169.254/latest/meta-data/', `http://localhost:${rx.port}/cb`, `http://[::ffff:127.0.0.1]:${rx.port}/cb`, 'http://0.0.0.0:80/', 'http://224.0.0.251/']) {
        const r = await box.api.postJob({ printer: 'p', statusURL: url }, Buffer.from('x'));
        assert.equal(r.status, 400, `${url}: ${r.text}`);
        assert.equal(r.json.error.code, 'status_url_refused', url);
      }
      const batch = await box.api.json('POST', '/v1/batches', { batchID: 'b', jobIDs: [crypto.randomUUID()], statusURL: `http://127.0.0.1:${rx.port}/b` });
      assert.equal(batch.status, 400);
      assert.equal(batch.json.error.code, 'status_url_refused');
      // A private address is where a LAN's receivers live: allowed by default (the printer is off: nothing is called).
      const lan = await box.api.postJob({ printer: 'p', statusURL: 'http://10.1.2.3:8080/cb' }, Buffer.from('x'));
      assert.equal(lan.status, 201, lan.text);
    });
    assert.equal(rx.got.length, 0);
  } finally {
    await rx.close();
  }
});

test('callbacks.allow narrows callbacks to what it names, and naming loopback explicitly reaches it', async () => {
  const rx = await receiver();
  try {
    await withBox(async (box) => {
      await addRawPrinter(box.api, 'off', 9, { enabled: false });
      const outside = await box.api.postJob({ printer: 'off', statusURL: 'http://10.1.2.3:8080/cb' }, Buffer.from('x'));
      assert.equal(outside.status, 400, outside.text);
      assert.equal(outside.json.error.code, 'status_url_refused');
      assert.match(outside.json.error.message, /callbacks\.allow/);
      assert.equal((await box.api.postJob({ printer: 'off', statusURL: 'http://10.9.4.4/cb' }, Buffer.from('x'))).status, 201);
      const sink = await startSink();
      try {
        await addRawPrinter(box.api, 'p', sink.port);
        const named = await box.api.postJob({ printer: 'p', statusURL: `http://127.0.0.1:${rx.port}/cb` }, Buffer.from('x'));
        assert.equal(named.status, 201, named.text);
        const job = await until('the callback outcome', async () => (await box.api.request('GET', `/v1/jobs/${named.json.jobID}`)).json.callback, 15000);
        assert.equal(job.result, 'delivered');
      } finally {
        await sink.close();
      }
    }, { callbacks: { allow: ['10.9.0.0/16', `http://127.0.0.1:${rx.port}`] } });
    assert.equal(rx.got.length, 1);
  } finally {
    await rx.close();
  }
});

test('a callback answered with a 307 is not followed: the body and signature never reach the other port', async () => {
  const other = await receiver();
  const rx = await receiver((_q, s) => {
    s.writeHead(307, { location: `http://127.0.0.1:${other.port}/stolen` });
    s.end();
  });
  const sink = await startSink();
  try {
    await withBox(async (box) => {
      await addRawPrinter(box.api, 'p', sink.port);
      const r = await box.api.postJob({ printer: 'p', statusURL: `http://127.0.0.1:${rx.port}/cb` }, Buffer.from('x'));
      assert.equal(r.status, 201, r.text);
      const outcome = await until('the callback outcome', async () => (await box.api.request('GET', `/v1/jobs/${r.json.jobID}`)).json.callback, 15000);
      assert.equal(outcome.result, 'refused');
    }, { callbacks: { allow: [`http://127.0.0.1:${rx.port}`] } });
    assert.equal(rx.got.length, 1);
    assert.equal(other.got.length, 0, 'the redirect target heard nothing');
  } finally {
    await Promise.all([rx.close(), other.close(), sink.close()]);
  }
});

test('the address is checked again when the callback is sent: a job accepted under a wider allow list is not called back on loopback', async () => {
  const rx = await receiver();
  const sink = await startSink();
  const dataDir = await tempDir('pbx-15-ssrf-');
  try {
    let jobID = '';
    let token = '';
    await withBox(async (box) => {
      token = box.token;
      await addRawPrinter(box.api, 'p', sink.port, { enabled: false });
      const r = await box.api.postJob({ printer: 'p', statusURL: `http://127.0.0.1:${rx.port}/cb` }, Buffer.from('x'));
      assert.equal(r.status, 201, r.text);
      jobID = r.json.jobID;
    }, { dataDir, callbacks: { allow: ['127.0.0.1/32'] } });
    await withBox(async (box) => {
      const api = new Api(box.api.base, box.running.tls.cert, token);
      try {
        assert.equal((await api.json('PATCH', '/v1/printers/p', { enabled: true })).status, 200);
        const outcome = await until('the callback outcome', async () => (await api.request('GET', `/v1/jobs/${jobID}`)).json.callback, 15000);
        assert.equal(outcome.result, 'refused');
      } finally {
        api.close();
      }
    }, { dataDir });
    assert.equal(rx.got.length, 0);
  } finally {
    await Promise.all([rx.close(), sink.close(), fs.rm(dataDir, { recursive: true, force: true })]);
  }
});

test('the connection goes to the address that was checked: a name only our resolver knows still reaches its receiver', async () => {
  const rx = await receiver();
  try {
    let lookups = 0;
    const targets = new CallbackTargets(['callback.receiver.test'], async () => {
      lookups++;
      return [{ address: '127.0.0.1', family: 4 }];
    });
    const outcome = await new Promise<any>((resolve) => {
      new StatusCallbacks(Buffer.alloc(32), { info() {}, warn() {} }, targets, { attempts: 1, baseMs: 10, timeoutMs: 5000 }).send(`http://callback.receiver.test:${rx.port}/cb`, { jobID: 'j' }, 'token-id', resolve);
    });
    assert.equal(outcome.result, 'delivered');
    assert.equal(lookups, 1, 'resolved once');
    assert.equal(rx.got[0].headers.host, `callback.receiver.test:${rx.port}`, 'the name still travels in Host');
  } finally {
    await rx.close();
  }
});

// ---- what a submit token sees

test('a submit token sees printers by id, name, state and capabilities; URIs are redacted for admins too; probes are admin-only', async () => {
  await withBox(async (box) => {
    const uri = 'ipp://alice:S3cretPw@127.0.0.1:9/ipp/print?community=hush-hush';
    const added = await box.api.json('POST', '/v1/printers', { name: 'ward', uri, enabled: false, defaults: { duplex: 'long-edge' } });
    assert.equal(added.status, 201, added.text);
    assert.doesNotMatch(added.text, /S3cretPw|hush-hush/);
    const submit = (await box.api.json('POST', '/v1/tokens', { name: 'ehr', scope: 'submit' })).json.token;

    const seen = await box.api.json('GET', '/v1/printers', undefined, submit);
    assert.equal(seen.status, 200);
    assert.deepEqual(Object.keys(seen.json.printers[0]).sort(), ['capabilities', 'enabled', 'id', 'name', 'queued', 'state']);
    assert.equal(seen.json.printers[0].state, 'disabled');
    assert.equal(seen.json.printers[0].capabilities.defaults.duplex, 'long-edge');
    const one = await box.api.json('GET', `/v1/printers/${added.json.id}`, undefined, submit);
    assert.equal(one.json.uri, undefined);
    assert.doesNotMatch(seen.text + one.text, /S3cretPw|hush-hush|alice|127\.0\.0\.1/);

    const probe = await box.api.json('GET', `/v1/printers/${added.json.id}/status`, undefined, submit);
    assert.equal(probe.status, 403);
    assert.equal(probe.json.error.code, 'forbidden');

    // Admins get the URI without its secrets, in every list.
    const admin = await box.api.json('GET', '/v1/printers');
    assert.equal(admin.json.printers[0].uri, 'ipp://alice:***@127.0.0.1:9/ipp/print?community=***');
    for (const route of ['/v1/printers', `/v1/printers/${added.json.id}`, '/v1/status']) {
      assert.doesNotMatch((await box.api.json('GET', route)).text, /S3cretPw|hush-hush/, route);
    }
    // Saving the redacted URI back (as the page's edit form does) keeps the real secrets.
    assert.equal((await box.api.json('PATCH', `/v1/printers/${added.json.id}`, { uri: admin.json.printers[0].uri, name: 'ward-2' })).status, 200);
    const stored = JSON.parse(await fs.readFile(path.join(box.dataDir, 'state.json'), 'utf8')).printers[0].uri;
    assert.equal(stored, uri);
    const removed = await box.api.json('DELETE', `/v1/printers/${added.json.id}`);
    assert.equal(removed.status, 200);
    assert.doesNotMatch(removed.text, /S3cretPw|hush-hush/, 'not even in the answer to its removal');
  });
});

// ---- metadata size

/** Streams a multipart body whose "metadata" part (a file part) is `size` bytes; resolves at the reply, with how much had been produced by then. */
function postHugeMetadata(box: TestAppliance, size: number): Promise<{ status: number; json: any; producedMiB: number }> {
  const boundary = '----pbx15meta';
  let produced = 0;
  async function* body() {
    yield Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="metadata"; filename="m.json"\r\ncontent-type: application/json\r\n\r\n{"title":"`);
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    for (; produced < size; produced += chunk.length) yield chunk;
    yield Buffer.from(`"}\r\n--${boundary}--\r\n`);
  }
  return new Promise((resolve, reject) => {
    const req = https.request(new URL('/v1/jobs', box.api.base), { method: 'POST', agent: box.api.agent, headers: { authorization: `Bearer ${box.token}`, 'content-type': `multipart/form-data; boundary=${boundary}` } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text), producedMiB: Math.round(produced / 1048576) }));
    });
    req.on('error', (err) => (produced >= size ? reject(err) : undefined)); // the server may close once it has answered
    Readable.from(body()).on('error', () => {}).pipe(req);
  });
}

test('a metadata part or form field over 64 KiB is refused while it streams, not read whole', { timeout: 120000 }, async () => {
  await withBox(async (box) => {
    await addRawPrinter(box.api, 'p', 9, { enabled: false });
    const rssBefore = process.memoryUsage().rss;
    // 200 MiB: well past the 64 MiB the box reads on after an error, so an early answer is plain to see.
    const huge = await postHugeMetadata(box, 200 * 1024 * 1024);
    console.log(`# 200 MiB metadata part: answered ${huge.status} after ${huge.producedMiB} MiB were sent; rss ${Math.round(rssBefore / 1048576)} → ${Math.round(process.memoryUsage().rss / 1048576)} MiB`);
    assert.equal(huge.status, 413);
    assert.equal(huge.json.error.code, 'metadata_too_large');
    assert.ok(huge.producedMiB < 200, 'answered before the client had sent it all');

    const field = await box.api.postJob({ printer: 'p', metadata: JSON.stringify({ title: 'x'.repeat(70 * 1024) }) }, Buffer.from('doc'));
    assert.equal(field.status, 413, field.text);
    assert.equal(field.json.error.code, 'field_too_large');
    const small = await box.api.postJob({ printer: 'p', metadata: JSON.stringify({ title: 'fine', user: 'u'.repeat(100) }) }, Buffer.from('doc'));
    assert.equal(small.status, 201, small.text);
  });
});

// ---- job and batch IDs across tokens

test("another token's job and batch IDs are unknown to the caller: no view, no joining its batch", async () => {
  await withBox(async (box) => {
    await addRawPrinter(box.api, 'p', 9, { enabled: false });
    const mk = async (name: string) => (await box.api.json('POST', '/v1/tokens', { name, scope: 'submit' })).json.token as string;
    const [alice, mallory] = [await mk('alice'), await mk('mallory')];
    const jobID = crypto.randomUUID();
    const doc = Buffer.from('patient letter');
    assert.equal((await box.api.postJob({ printer: 'p', jobID, title: 'letter for Mrs Smith' }, doc, { token: alice })).status, 201);
    assert.equal((await box.api.postJob({ printer: 'p', jobID, title: 'letter for Mrs Smith' }, doc, { token: alice })).status, 200, 'the owner repeats idempotently');
    for (const title of ['letter for Mrs Smith', 'something else']) {
      const again = await box.api.postJob({ printer: 'p', jobID, title }, doc, { token: mallory });
      assert.equal(again.status, 409, again.text);
      assert.equal(again.json.error.code, 'job_id_taken');
      assert.doesNotMatch(again.text, /Smith|patient/);
    }
    assert.equal((await box.api.json('GET', `/v1/jobs/${jobID}`, undefined, mallory)).status, 404);

    // Mallory names the batch before Alice opens it: that neither blocks Alice's Batch Open nor joins it.
    const early = crypto.randomUUID();
    const before = await box.api.postJob({ printer: 'p', jobID: early, batchID: 'ward-3-night' }, doc, { token: mallory });
    assert.equal(before.status, 201, before.text);
    const member = crypto.randomUUID();
    const opened = await box.api.json('POST', '/v1/batches', { batchID: 'ward-3-night', jobIDs: [member] }, alice);
    assert.equal(opened.status, 201, opened.text);
    const join = await box.api.postJob({ printer: 'p', jobID: member, batchID: 'ward-3-night' }, doc, { token: mallory });
    assert.equal(join.status, 409, join.text);
    assert.equal(join.json.error.code, 'job_id_taken');
    const slip = await box.api.postJob({ printer: 'p', jobID: member }, doc, { token: mallory });
    assert.equal(slip.json.error.code, 'job_id_taken');
    // A fresh job naming Alice's batch is treated as naming a batch not opened yet: it waits, outside her batch.
    const stranger = crypto.randomUUID();
    const outside = await box.api.postJob({ printer: 'p', jobID: stranger, batchID: 'ward-3-night' }, doc, { token: mallory });
    assert.equal(outside.status, 201, outside.text);
    assert.equal(outside.json.state, 'waiting-for-batch');
    const view = (await box.api.json('GET', '/v1/batches/ward-3-night', undefined, alice)).json;
    assert.deepEqual(view.jobIDs ?? view.jobs?.map((j: { jobID: string }) => j.jobID), [member]);
    const reopen = await box.api.json('POST', '/v1/batches', { batchID: 'ward-3-night', jobIDs: [member] }, mallory);
    assert.equal(reopen.status, 409, 'no 200 with the other owner\'s batch view');
    assert.equal(reopen.json.error.code, 'batch_conflict');
    const claim = await box.api.json('POST', '/v1/batches', { batchID: 'mine', jobIDs: [member, jobID] }, mallory);
    assert.equal(claim.json.error.code, 'job_id_taken');
    assert.doesNotMatch(claim.text, /ward-3-night/);
    const own = await box.api.postJob({ printer: 'p', jobID: member, batchID: 'ward-3-night' }, doc, { token: alice });
    assert.equal(own.status, 201, own.text);
    assert.equal(own.json.state, 'waiting-for-batch');
  });
});

// ---- callbacks say whose job they are about

/** The receiver check the README shows: the signature over "<timestamp>.<our own token id>.<body>", and a fresh timestamp. */
function verifyCallback(secretHex: string, myTokenID: string, headers: http.IncomingHttpHeaders, body: string): boolean {
  const ts = String(headers['x-printbox-timestamp']);
  const want = 'sha256=' + crypto.createHmac('sha256', Buffer.from(secretHex, 'hex')).update(`${ts}.${myTokenID}.${body}`).digest('hex');
  const got = String(headers['x-printbox-signature']);
  return got.length === want.length && crypto.timingSafeEqual(Buffer.from(got), Buffer.from(want)) && Math.abs(Date.now() / 1000 - Number(ts)) < 300;
}

test("a callback signed for one client's job does not verify at another client's receiver", async () => {
  const rx = await receiver();
  const sink = await startSink();
  try {
    await withBox(async (box) => {
      await addRawPrinter(box.api, 'p', sink.port);
      const a = (await box.api.json('POST', '/v1/tokens', { name: 'clinic-a', scope: 'submit' })).json;
      const b = (await box.api.json('POST', '/v1/tokens', { name: 'clinic-b', scope: 'submit' })).json;
      const secret = (await box.api.json('GET', '/v1/settings/callback-secret')).json.secret;
      const posted = await box.api.postJob({ printer: 'p', statusURL: `http://127.0.0.1:${rx.port}/a` }, Buffer.from('x'), { token: a.token });
      assert.equal(posted.status, 201, posted.text);
      await until('the callback', () => rx.got.length > 0, 15000);
      const cb = rx.got[0];
      assert.deepEqual(Object.keys(JSON.parse(cb.body)).sort(), ['jobID', 'message', 'status'], "the body keeps Vasion's callback schema");
      assert.equal(cb.headers['x-printbox-token-id'], a.id);
      assert.equal(verifyCallback(secret, a.id, cb.headers, cb.body), true, "client A's receiver accepts it");
      assert.equal(verifyCallback(secret, b.id, cb.headers, cb.body), false, "replayed to client B's receiver, it is refused");
      const relabelled = { ...cb.headers, 'x-printbox-token-id': b.id };
      assert.equal(verifyCallback(secret, b.id, relabelled, cb.body), false, 'and relabelling the token id header does not help: the id is signed');
    }, { callbacks: { allow: ['127.0.0.1/32'] } });
  } finally {
    await Promise.all([rx.close(), sink.close()]);
  }
});

// ---- slow and many connections

/** A TLS connection to the box: 'open' once the handshake is done, 'closed' when the box drops it first. */
function tlsOpen(box: TestAppliance, localAddress: string): Promise<{ result: 'open' | 'closed'; socket: tls.TLSSocket }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: box.running.port, ca: box.running.tls.cert, ...({ localAddress } as object) });
    socket.once('secureConnect', () => resolve({ result: 'open', socket }));
    socket.once('error', () => resolve({ result: 'closed', socket }));
    socket.once('close', () => resolve({ result: 'closed', socket }));
  });
}

test('a JSON body dribbled in is cut with 408 body_timeout; an upload at a slow, steady rate still goes through', { timeout: 120000 }, async () => {
  await withBox(async (box) => {
    await addRawPrinter(box.api, 'p', 9, { enabled: false });
    const { socket } = await tlsOpen(box, '127.0.0.1');
    let answer = '';
    socket.on('data', (c) => (answer += c));
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.write('POST /v1/session HTTP/1.1\r\nhost: box\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"pass');
    // Bounded wait: without the deadline the box keeps this socket for its 120 s idle timeout.
    const gone = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 20000))]);
    socket.destroy();
    assert.ok(gone, 'the box closed the dribbling connection');
    assert.match(answer, /^HTTP\/1\.1 408/);
    assert.match(answer, /"code":"body_timeout"/);

    async function* slowly() {
      for (let i = 0; i < 25; i++) {
        await new Promise((r) => setTimeout(r, 100));
        yield Buffer.alloc(16 * 1024, 0x41 + (i % 26));
      }
    }
    const upload = await box.api.postJob({ printer: 'p', title: 'slow link' }, slowly());
    assert.equal(upload.status, 201, upload.text);
    assert.equal(upload.json.size, 25 * 16 * 1024);
  }, { bodyTimeoutMs: 1000 });
});

test('connections beyond the per-address cap are closed before TLS; other addresses still get in, up to the total cap', { timeout: 120000 }, async () => {
  await withBox(async (box) => {
    box.api.close();
    const held: tls.TLSSocket[] = [];
    try {
      const first = [];
      for (let i = 0; i < 3; i++) first.push(await tlsOpen(box, '127.0.0.21'));
      held.push(...first.map((c) => c.socket));
      assert.deepEqual(first.map((c) => c.result), ['open', 'open', 'open']);
      const fourth = await tlsOpen(box, '127.0.0.21');
      held.push(fourth.socket);
      assert.equal(fourth.result, 'closed', 'a fourth from the same address is dropped');
      const other = new Api(box.api.base, box.running.tls.cert, undefined, 1, { localAddress: '127.0.0.22' });
      assert.equal((await other.json('GET', '/v1/health', undefined, null)).status, 200, 'another address is served');
      other.close();
      await new Promise((r) => setTimeout(r, 100)); // let the box see that socket close
      const more = [];
      for (let i = 0; i < 3; i++) more.push(await tlsOpen(box, `127.0.0.${23 + i}`));
      held.push(...more.map((c) => c.socket));
      assert.deepEqual(more.map((c) => c.result), ['open', 'open', 'open']);
      const beyond = await tlsOpen(box, '127.0.0.30');
      held.push(beyond.socket);
      assert.equal(beyond.result, 'closed', 'the seventh connection in all is dropped');
    } finally {
      for (const s of held) s.destroy();
    }
  }, { maxConnectionsPerAddress: 3, maxConnections: 6 });
});

// ---- TLS

/** Whether a TLS 1.2 handshake offering only `cipher` succeeds; `offered` false when this client cannot offer it at all. */
function handshake(box: TestAppliance, cipher: string): Promise<{ ok: boolean; offered: boolean; cipher?: string }> {
  return new Promise((resolve) => {
    let socket: tls.TLSSocket;
    try {
      socket = tls.connect({ host: '127.0.0.1', port: box.running.port, ca: box.running.tls.cert, ciphers: `${cipher}:@SECLEVEL=0`, maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2' });
    } catch {
      return resolve({ ok: false, offered: false });
    }
    socket.once('secureConnect', () => {
      resolve({ ok: true, offered: true, cipher: socket.getCipher().standardName });
      socket.destroy();
    });
    socket.once('error', () => resolve({ ok: false, offered: true }));
  });
}

test('TLS 1.2 takes only ECDHE with AEAD ciphers, also after the certificate is regenerated', async () => {
  await withBox(async (box) => {
    const weak = ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384', 'ECDHE-ECDSA-AES128-CCM8', 'ECDHE-ECDSA-ARIA128-GCM-SHA256', 'ECDHE-ECDSA-AES128-CCM'];
    const check = async () => {
      for (const c of weak) {
        const r = await handshake(box, c);
        assert.equal(r.ok, false, `${c} is refused`);
      }
      const good = await handshake(box, 'ECDHE-ECDSA-AES128-GCM-SHA256');
      assert.equal(good.ok, true);
      assert.equal(good.cipher, 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
      assert.equal((await handshake(box, 'ECDHE-ECDSA-CHACHA20-POLY1305')).ok, true);
    };
    await check();
    assert.equal((await box.api.json('POST', '/v1/certificate/regenerate', {})).status, 200);
    await check();
  });
});

// ---- ipps: trust on first use

test('an ipps printer is pinned when added; a changed certificate stops it and holds the job until an admin accepts the new one', { timeout: 180000 }, async (t) => {
  if (!haveIppEvePrinter()) return t.skip('no ippeveprinter (apt-get install cups-ipp-utils)');
  const real = await startIppEvePrinter({ name: 'ward-real' });
  const other = await startIppEvePrinter({ name: 'ward-other' });
  // A machine in the middle: its own certificate, and the plaintext goes on to another printer.
  const { cert, key } = await selfSignedCert('localhost');
  const mitm = tls.createServer({ cert, key }, (s) => {
    const up = net.connect({ host: '127.0.0.1', port: other.port });
    s.on('error', () => up.destroy());
    up.on('error', () => s.destroy());
    s.pipe(up).pipe(s);
  });
  await new Promise<void>((r) => mitm.listen(0, '127.0.0.1', () => r()));
  const fwd = await startTcpForward(real.port);
  const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
  const settled = (box: TestAppliance, id: string, states: string[]) => until(`job ${id} in ${states.join('/')}`, async () => {
    const j = (await box.api.request('GET', `/v1/jobs/${id}`)).json;
    return states.includes(j.state) ? j : null;
  }, 60000);
  try {
    await withBox(async (box) => {
      const added = await box.api.json('POST', '/v1/printers', { name: 'ward', uri: `ipps://127.0.0.1:${fwd.port}/ipp/print?confirmTimeout=0`, retry: { limit: 3, baseMs: 50, maxMs: 200, heldRetryMs: 500 } });
      assert.equal(added.status, 201, added.text);
      const pinned = new URL(added.json.uri).searchParams.get('tlsFingerprint');
      assert.match(pinned ?? '', /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/, 'the fingerprint is pinned and shown');

      const first = await box.api.postJob({ printer: 'ward', contentType: 'pdf' }, pdf);
      await settled(box, first.json.jobID, ['sent', 'confirmed']);

      fwd.target = (mitm.address() as net.AddressInfo).port; // someone else answers at the printer's address now
      const second = await box.api.postJob({ printer: 'ward', contentType: 'pdf' }, pdf);
      const held = await settled(box, second.json.jobID, ['held', 'sent', 'confirmed', 'failed']);
      assert.equal(held.state, 'held');
      assert.match(held.reason, /certificate changed/);
      const printer = (await box.api.json('GET', '/v1/printers/ward')).json;
      assert.match(printer.stopped?.reason ?? '', /accept the new certificate/);
      assert.deepEqual(await fs.readdir(other.spoolDir), [], 'the other machine got no document');

      const wrong = await box.api.json('POST', '/v1/printers/ward/accept-certificate', { fingerprint: pinned });
      assert.equal(wrong.status, 409, 'accepting names the fingerprint the admin checked');
      assert.equal(wrong.json.error.code, 'fingerprint_mismatch');
      const accepted = await box.api.json('POST', '/v1/printers/ward/accept-certificate', {});
      assert.equal(accepted.status, 200, accepted.text);
      assert.equal(accepted.json.certificate.previous, pinned);
      assert.notEqual(accepted.json.certificate.fingerprint, pinned);
      await settled(box, second.json.jobID, ['sent', 'confirmed']);
      assert.ok((await fs.readdir(other.spoolDir)).length > 0, 'the job went once the admin accepted');

      assert.equal((await box.api.json('POST', '/v1/printers', { name: 'plain', uri: `ipp://127.0.0.1:${real.port}/ipp/print` })).status, 201);
      const plain = await box.api.json('POST', '/v1/printers/plain/accept-certificate', {});
      assert.equal(plain.status, 409);
      assert.equal(plain.json.error.code, 'printer_not_ipps');
      const off = await box.api.json('POST', '/v1/printers', { name: 'off', uri: `ipps://127.0.0.1:${await freePort()}/ipp/print`, enabled: false });
      assert.equal(off.status, 201, 'a printer that is off is added, unpinned');
      assert.equal(new URL(off.json.uri).searchParams.get('tlsFingerprint'), null);
      const unreachable = await box.api.json('POST', '/v1/printers/off/accept-certificate', {});
      assert.equal(unreachable.status, 502);
      assert.equal(unreachable.json.error.code, 'printer_unreachable');

      // A printer that was off when added is pinned at its first delivery, before the first byte.
      const late = await startTcpForward(await freePort());
      try {
        const added = await box.api.json('POST', '/v1/printers', { name: 'late', uri: `ipps://127.0.0.1:${late.port}/ipp/print?confirmTimeout=0`, retry: { limit: 3, baseMs: 50, maxMs: 200, heldRetryMs: 500 } });
        assert.equal(new URL(added.json.uri).searchParams.get('tlsFingerprint'), null);
        late.target = real.port;
        const job = await box.api.postJob({ printer: 'late', contentType: 'pdf' }, pdf);
        await settled(box, job.json.jobID, ['sent', 'confirmed']);
        const now = (await box.api.json('GET', '/v1/printers/late')).json;
        assert.equal(new URL(now.uri).searchParams.get('tlsFingerprint'), pinned, 'pinned to the certificate it met first');
      } finally {
        await late.close();
      }
    });
  } finally {
    mitm.close();
    await Promise.all([fwd.close(), real.stop(), other.stop()]);
  }
});
