// System health, Prometheus metrics and test pages through the real server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { addRawPrinter, startAppliance, until, type TestAppliance } from './helpers/appliance.js';

let box: TestAppliance;
let sink: Sink;
before(async () => {
  box = await startAppliance();
  sink = await startSink();
  await addRawPrinter(box.api, 'lab', sink.port);
});
after(async () => {
  await box.stop();
  await sink.close();
});

test('GET /v1/system answers at once with the box health and the data dir free space', async () => {
  await until('the first health refresh', async () => !(await box.api.request('GET', '/v1/system')).json.stale, 30_000);
  // Served from the cache: a request does not probe the box. Of three requests in a row at least two show the
  // same snapshot (a background refresh may land between two of them, not between all).
  const taken: string[] = [];
  let r!: Awaited<ReturnType<typeof box.api.request>>;
  for (let i = 0; i < 3; i++) {
    r = await box.api.request('GET', '/v1/system');
    assert.equal(r.status, 200, r.text);
    taken.push(r.json.takenAt);
  }
  assert.ok(taken[0] === taken[1] || taken[1] === taken[2], `served from the cache (snapshots taken at ${taken.join(', ')})`);
  assert.ok(r.json.memory.totalBytes > 0 || r.json.stale, 'memory is known once the first probe ran');
  assert.ok(r.json.network.some((n: any) => n.name === 'lo') || r.json.stale);
  assert.equal(typeof r.json.appliance.version, 'string');
  const submit = (await box.api.json('POST', '/v1/tokens', { name: 'app', scope: 'submit' })).json.token;
  assert.equal((await box.api.request('GET', '/v1/system', { token: submit })).status, 403);
});

test('a test page goes to the printer in a language it takes', async () => {
  const r = await box.api.request('POST', '/v1/printers/lab/test');
  assert.equal(r.status, 201, r.text);
  const [job] = await sink.waitForJobs(1, 10000);
  const text = job.data!.toString('latin1');
  assert.ok(text.includes('\x1b%-12345X') || text.includes('%!PS') || text.includes('\x1bE'), 'a PJL/PCL/PostScript page for a port-9100 printer');
  await until('the test page job to be sent', async () => (await box.api.request('GET', `/v1/jobs/${r.json.jobID}`)).json.state === 'sent');
});

test('/metrics reports jobs, bytes, queues and send durations, and needs a token', async () => {
  await box.api.postJob({ printer: 'lab' }, Buffer.alloc(1234, 1));
  await sink.waitForJobs(2, 10000);
  const m = await until('metrics with 2 sends', async () => {
    const r = await box.api.request('GET', '/metrics');
    return /printbox_send_duration_seconds_count\{printer="lab"\} 2/.test(r.text) ? r.text : "";
  });
  assert.match(m, /printbox_jobs_accepted_total 2/);
  assert.match(m, /printbox_bytes_in_total \d+/);
  assert.match(m, /printbox_queue_depth\{printer="lab"\} 0/);
  assert.match(m, /printbox_printer_up\{printer="lab"\} 1/);
  assert.match(m, /printbox_jobs\{state="sent"\} 2/);
  assert.equal((await box.api.request('GET', '/metrics', { token: null })).status, 401);
});

test('discovery routes say plainly when discovery is off', async () => {
  const r = await box.api.request('GET', '/v1/discovered');
  assert.equal(r.status, 503);
  assert.equal(r.json.error.code, 'discovery_off');
});

test('plug-in drivers named in the config load, print, and a broken one is reported on GET /v1/drivers instead of crashing', async () => {
  const { ROOT } = await import('./peers/netns.js');
  const fs = await import('node:fs/promises');
  const folder = await fs.mkdtemp('/tmp/pbx-plugin-out-');
  const withPlugins = await startAppliance({ plugins: ['./drivers/file.ts', './no/such/plugin.js'], configDir: ROOT });
  try {
    const d = (await withPlugins.api.request('GET', '/v1/drivers')).json;
    assert.ok(d.drivers.some((x: any) => x.scheme === 'file'), 'the file:// plug-in is loaded');
    assert.equal(d.problems.length, 1);
    assert.match(d.problems[0].source, /no\/such\/plugin/);
    const p = await withPlugins.api.json('POST', '/v1/printers', { name: 'folder', uri: `file://${folder}` });
    assert.equal(p.status, 201, p.text);
    const r = await withPlugins.api.postJob({ printer: 'folder', contentType: 'text' }, Buffer.from('hello from a plug-in'));
    // The plug-in writes a dot-file first and renames it: wait for the final name, not the temp file.
    await until('the document in the folder', async () => (await fs.readdir(folder)).some((f) => !f.startsWith('.')), 10000);
    const files = await fs.readdir(folder);
    assert.equal(files.length, 1, `one file, no temp left: ${files}`);
    const [file] = files;
    assert.ok(file.startsWith(r.json.jobID));
    assert.equal(await fs.readFile(`${folder}/${file}`, 'utf8'), 'hello from a plug-in');
  } finally {
    await withPlugins.stop();
    await fs.rm(folder, { recursive: true, force: true });
  }
});

test('GET /v1/printers/:id/status asks the printer through its driver', async () => {
  const up = await box.api.request('GET', '/v1/printers/lab/status');
  assert.equal(up.status, 200, up.text);
  assert.equal(up.json.reachable, true);
  await addRawPrinter(box.api, 'nowhere', 9); // port 9 (discard) is closed on loopback
  const down = await box.api.request('GET', '/v1/printers/nowhere/status');
  assert.equal(down.json.reachable, false);
});
