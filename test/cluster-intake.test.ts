// Cluster mode and the legacy intake: a printer added, changed or removed on one node opens, moves and closes the
// other node's RAW and LPD listeners at once (not at that node's next local change), and its IPP printer answers.
// Each node has its own loopback address, as boxes on a LAN have their own: node A 127.0.0.1, node B 127.0.0.2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs/promises';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { startCluster, until } from './helpers/cluster.js';
import { addRawPrinter, freePort, tempDir } from './helpers/appliance.js';
import { startNatsCluster } from './peers/nats.js';
import { startSink } from './peers/tcp-sink.js';
import { CUPS_LPD_BACKEND, lpdSend } from './peers/lpd.js';
import { run } from './peers/ipptool.js';

const skip = existsSync(CUPS_LPD_BACKEND) && existsSync('/usr/bin/socat') && existsSync('/usr/bin/ipptool') ? false : 'CUPS lpd backend (cups-daemon), ipptool or socat is not installed';
const B = '127.0.0.2';

/** Does anything listen there? A probe connection is reset at once, so a RAW listener throws it away. */
function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host, () => {
      s.resetAndDestroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** A RAW sender (socat): the file to the port, then it waits for printbox to close (the job is durable then). */
async function socatSend(host: string, port: number, text: string): Promise<void> {
  const r = await run('bash', ['-c', `printf '%s' "$DOC" | socat -t 10 - TCP:${host}:${port}`], { env: { ...process.env, DOC: text } });
  assert.equal(r.code, 0, r.stderr);
}

test('a printer added, changed and removed on node A opens, moves and closes node B\'s RAW and LPD listeners; jobs sent to B print', { skip, timeout: 300_000 }, async (t) => {
  const lpdPort = await freePort();
  const nats = await startNatsCluster(3, { prefix: 'pbx19b-intake-nats-' });
  const c = await startCluster(2, { prefix: 'pbx19b-intake-', nats, config: (i) => ({ host: `127.0.0.${i + 1}`, lpdPort }) });
  t.after(() => c.stop());
  const sink = await startSink();
  t.after(() => sink.close());
  const dir = await tempDir('pbx19b-lpdfile-');
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const [raw1, raw2] = [await freePort(), await freePort()];
  const allow = ['127.0.0.0/8'];
  assert.equal(await listening(B, raw1), false);
  assert.equal(await listening(B, lpdPort), false, 'no printer takes LPD yet: no LPD server');

  // Added on A; nothing is done on B.
  await addRawPrinter(c.api(0), 'front', sink.port, { intake: { lpd: true, raw: { port: raw1 }, allow } });
  await until('node B listens on the new printer\'s RAW port', () => listening(B, raw1));
  await socatSend(B, raw1, 'raw job through node B\n');
  const file = path.join(dir, 'chart.txt');
  await fs.writeFile(file, 'lpd job through node B\n');
  await until('node B listens for LPD', () => listening(B, lpdPort));
  const sent = await lpdSend(B, lpdPort, 'front', file, { title: 'through B' });
  assert.equal(sent.code, 0, `node B accepts an LPD job for the new queue: ${sent.stderr}`);
  // B's IPP printer for it answers too (ipptool, no credentials needed for Get-Printer-Attributes).
  const portB = Number(new URL(c.api(1).base).port);
  const ipp = await run('ipptool', ['-t', `ipps://${B}:${portB}/ipp/print/front`, '/usr/share/cups/ipptool/get-printer-attributes.test'], { timeout: 60000 });
  assert.equal(ipp.code, 0, ipp.stdout + ipp.stderr);
  const printed = await sink.waitForJobs(2, 30000);
  assert.deepEqual(printed.map((j) => j.data!.toString()).sort(), ['lpd job through node B\n', 'raw job through node B\n']);
  const jobs = (await c.api(0).json('GET', '/v1/jobs?limit=100')).json.jobs as { owner?: string; title: string; state: string }[];
  assert.ok(jobs.some((j) => j.title === 'through B'), 'the LPD job is one of the cluster\'s jobs');

  // Renamed and moved to another RAW port on A: B closes the old port, opens the new one, and the LPD queue is
  // the new name.
  const id = (await c.api(0).json('GET', '/v1/printers/front')).json.id as string;
  const changed = await c.api(0).json('PATCH', `/v1/printers/${id}`, { name: 'desk', intake: { lpd: true, raw: { port: raw2 }, allow } });
  assert.equal(changed.status, 200, changed.text);
  await until('node B moved the RAW listener', async () => !(await listening(B, raw1)) && (await listening(B, raw2)));
  await socatSend(B, raw2, 'raw job to the moved port\n');
  assert.notEqual((await lpdSend(B, lpdPort, 'front', file, { title: 'old name' })).code, 0, 'the old queue name is refused');
  assert.equal((await lpdSend(B, lpdPort, 'desk', file, { title: 'new name' })).code, 0, 'the new queue name is accepted');
  const after = await sink.waitForJobs(4, 30000);
  assert.deepEqual(after.slice(2).map((j) => j.data!.toString()).sort(), ['lpd job through node B\n', 'raw job to the moved port\n']);

  // Removed on A: B closes both.
  // (Once its last job is recorded as sent: a printer with unfinished jobs cannot be removed.)
  await until('the printer removed on node A', async () => (await c.api(0).json('DELETE', `/v1/printers/${id}`)).status === 200);
  await until('node B closed its RAW and LPD listeners', async () => !(await listening(B, raw2)) && !(await listening(B, lpdPort)));
});
