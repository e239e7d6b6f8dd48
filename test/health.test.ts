// System health: snapshot() answers at once from the cache, even mid-refresh or with a hung probe; values are sane.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { SystemHealth, freeBytes, freeBytesSync } from '../runtime/system/health.js';


test('the first snapshot comes at once, marked stale, with what the os module knows; after the first refresh it is complete and fresh', async () => {
  const health = new SystemHealth({ dataDir: os.tmpdir(), version: '9.8.7', refreshMs: 60_000 });
  const refreshing = health.refresh(); // the real probes (systeminformation's cpu() runs lscpu the first time)
  // snapshot() is synchronous and answers from the cache: while the refresh runs it keeps giving the old (here:
  // not yet taken) snapshot. How long it takes is measured in bench/health.ts, not asserted here.
  const during: ReturnType<typeof health.snapshot>[] = [];
  let first = health.snapshot();
  while (health.refreshing) {
    const s = health.snapshot();
    assert.ok(!(s instanceof Promise), 'snapshot() does not wait');
    if (health.refreshing) during.push(s);
    first = first.takenAt ? first : s;
    await new Promise((r) => setImmediate(r));
  }
  await refreshing;
  assert.ok(during.length >= 1, `took snapshots while the refresh ran (${during.length})`);
  assert.ok(during.every((s) => s.takenAt === null && s.stale), 'every snapshot taken mid-refresh is the cached one');
  assert.equal(first.stale, true);
  assert.equal(first.takenAt, null);
  assert.ok(first.memory.totalBytes > 0, 'memory known before the first refresh');
  assert.equal(first.disk, null, 'disk not measured yet');

  const s = health.snapshot();
  assert.equal(s.stale, false);
  assert.deepEqual(s.problems, []);
  assert.ok(s.takenAt);
  assert.ok(s.memory.totalBytes > 0 && s.memory.availableBytes > 0 && s.memory.availableBytes <= s.memory.totalBytes);
  assert.ok(s.disk && s.disk.freeBytes > 0 && s.disk.totalBytes >= s.disk.freeBytes, 'disk of /tmp measured');
  assert.ok(s.cpu.cores >= 1 && s.cpu.model.length > 0);
  assert.ok(s.cpu.loadPercent !== null && s.cpu.loadPercent >= 0 && s.cpu.loadPercent <= 100, `load ${s.cpu.loadPercent}`);
  assert.equal(s.loadAverage.length, 3);
  assert.ok(s.temperatureC === null || (s.temperatureC > -50 && s.temperatureC < 200));
  const lo = s.network.find((n) => n.name === 'lo');
  assert.ok(lo?.addresses.some((a) => a.address === '127.0.0.1' && a.internal), 'lo with 127.0.0.1');
  assert.ok(s.uptimeSeconds > 0);
  assert.deepEqual([s.versions.node, s.versions.printbox], [process.version, '9.8.7']);
  assert.match(s.versions.os, /\S/);
});

test('a hung probe is abandoned after probeTimeoutMs: the others refresh, the problem is reported with a code, snapshot never waits', { timeout: 60_000 }, async () => {
  let release!: () => void;
  const hung = new Promise<number | null>((r) => (release = () => r(null)));
  const health = new SystemHealth({ dataDir: os.tmpdir(), version: '1', refreshMs: 60_000, probeTimeoutMs: 300, probes: {
      temperature: () => hung,
      // The other probes answer at once, so only the hung one can time out, however loaded the machine is.
      cpu: async () => ({ model: 'test cpu', physicalCores: 2, speedGHz: 1 }),
      load: async () => 10,
      memory: async () => ({ totalBytes: 1024, availableBytes: 512, usedBytes: 512, freeBytes: 512 }),
      interfaces: async () => new Map(),
      os: async () => ({ os: 'test os', kernel: '6' }),
    },
  });
  const refreshing = health.refresh();
  // The temperature probe cannot answer until release(): a snapshot now, and the refresh's end, prove that
  // neither waits for it.
  assert.equal(health.snapshot().stale, true, 'snapshot answers from the cache while a probe hangs');
  await refreshing;
  release();
  const s = health.snapshot();
  assert.deepEqual(s.problems.map((p) => [p.probe, p.code]), [['temperature', 'probe_timeout']]);
  assert.ok(s.disk && s.disk.freeBytes > 0, 'other probes still refreshed');
  assert.equal(s.stale, false);
});

test('freeBytes reads statfs of the data dir: matches the kernel figures, and a missing dir fails with ENOENT', async () => {
  const free = await freeBytes(os.tmpdir());
  const st = fs.statfsSync(os.tmpdir());
  assert.ok(free > 0);
  assert.ok(Math.abs(free - st.bavail * st.bsize) < 64 * 1024 * 1024, 'same as statfs within concurrent writes');
  assert.ok(freeBytesSync(os.tmpdir()) > 0);
  await assert.rejects(freeBytes('/nonexistent/printbox-data'), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
});

test('start() refreshes in the background on its interval and stop() ends it', async () => {
  const health = new SystemHealth({ dataDir: os.tmpdir(), version: '1', refreshMs: 200 }).start();
  try {
    const until = Date.now() + 5000;
    while (health.snapshot().stale && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    const a = health.snapshot().takenAt;
    assert.ok(a, 'first background refresh done');
    while (health.snapshot().takenAt === a && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.notEqual(health.snapshot().takenAt, a, 'refreshed again on its own');
  } finally {
    health.stop();
  }
});
