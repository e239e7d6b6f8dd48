// A 512 MiB document streams through intake, the sealed spool and delivery with the server's memory far below its size.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { startSink } from './peers/tcp-sink.js';
import { Api } from './helpers/api.js';
import { addRawPrinter, freePort, spawnAppliance, tempDir } from './helpers/appliance.js';

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

function peakRssMiB(pid: number): Promise<number> {
  return fs.readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmHWM:\s+(\d+)/.exec(s)![1]) / 1024);
}

test('a 512 MiB document arrives intact while the server peak RSS stays far below it', { timeout: 300000 }, async () => {
  const SIZE = 512 * 1024 * 1024;
  const dataDir = await tempDir('pbx-large-');
  const sink = await startSink({ keepBytes: false });
  const box = await spawnAppliance(dataDir, await freePort());
  cleanups.push(() => sink.close(), () => box.stop(), () => fs.rm(dataDir, { recursive: true, force: true }));
  const api = new Api(`https://127.0.0.1:${box.port}`, await fs.readFile(`${dataDir}/tls/cert.pem`, 'utf8'), box.token);
  await addRawPrinter(api, 'big', sink.port);
  const block = randomBytes(1024 * 1024);
  const hash = createHash('sha256');
  async function* document() {
    for (let i = 0; i < SIZE / block.length; i++) {
      const piece = Buffer.from(block);
      piece.writeUInt32BE(i, 0); // every MiB differs, so a lost or repeated block changes the hash
      hash.update(piece);
      yield piece;
    }
  }
  const baseline = await peakRssMiB(box.proc.pid!);
  const t0 = Date.now();
  const r = await api.postJob({ printer: 'big', contentType: 'raw' }, document());
  const ingestS = (Date.now() - t0) / 1000;
  assert.equal(r.status, 201, r.text);
  const [job] = await sink.waitForJobs(1, 240000);
  const totalS = (Date.now() - t0) / 1000;
  assert.equal(job.size, SIZE);
  assert.equal(job.sha256, hash.digest('hex'));
  const peak = await peakRssMiB(box.proc.pid!);
  console.log(`# 512 MiB: ingest ${(512 / ingestS).toFixed(0)} MB/s, ingest+delivery ${totalS.toFixed(1)} s, server peak RSS ${peak.toFixed(0)} MiB (at start ${baseline.toFixed(0)} MiB)`);
  assert.ok(peak < 200, `peak RSS ${peak.toFixed(0)} MiB must stay far below the 512 MiB document`);
  api.close();
});
