// Delivery of a small job starts in the turn that queued it: the printer's connection is opened before the accepting
// code goes on to answer its client, so one-at-a-time latency (submit → last byte) does not include the 201.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { LocalSpool } from '../runtime/spool/local-spool.js';
import { Dispatcher } from '../runtime/queue/dispatcher.js';
import { DriverRegistry } from '../drivers/registry.js';
import { createRawDriver } from '../drivers/raw.js';
import type { DriverContext } from '../drivers/contract.js';
import type { PrinterRecord } from '../runtime/system/state.js';
import { startSink } from './peers/tcp-sink.js';
import { until } from './peers/ports.js';

const ctx = { store: { get: () => undefined, set: async () => {} }, log: { info() {}, warn() {}, debug() {} } } as unknown as DriverContext;

test('a small job held in memory reaches the printer before the code that queued it goes on', async () => {
  const sink = await startSink();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx-20a-start-'));
  const spool = new LocalSpool({ dataDir: dir, key: randomBytes(32), historyLimit: 100 });
  await spool.open();
  const order: string[] = [];
  const raw = createRawDriver(ctx);
  const drivers = new DriverRegistry(() => ctx);
  // The real RAW driver, with a note of when delivery reached it.
  drivers.register('raw', () => ({ ...raw, send: (job, signal) => (order.push(`send ${job.id}`), raw.send(job, signal)) }));
  const printer: PrinterRecord = { id: 'front', name: 'front', uri: `raw://127.0.0.1:${sink.port}`, enabled: true, errorPolicy: 'retry-job', retry: { limit: 3, baseMs: 50, maxMs: 200, heldRetryMs: 500 }, defaults: {}, createdAt: new Date().toISOString() };
  const queue = new Dispatcher({ spool, drivers, printer: (id) => (id === printer.id ? printer : undefined), pinPrinter: (p) => p, setStopped: async () => {}, preverifyBytes: 1 << 20, log: { info() {}, warn() {}, error() {} } });
  try {
    const now = new Date().toISOString();
    const received = await spool.receive(Readable.from([Buffer.from('hello printer\n')]), 1 << 20);
    const job = await spool.accept({ id: randomUUID(), printerId: printer.id, title: 't', user: 'u', contentType: 'text', options: { copies: 1 }, owner: 'test', metaDigest: 'm', state: 'queued', warnings: [], attempts: 0, createdAt: now, updatedAt: now }, received);
    queue.enqueue(job);
    await Promise.resolve(); // what the accepting code does next (intake answers 201 in its continuation)
    order.push('accepting code goes on');
    const [got] = await sink.waitForJobs(1, 10000);
    assert.equal(got.data!.toString(), 'hello printer\n');
    assert.deepEqual(order, [`send ${job.id}`, 'accepting code goes on']);
  } finally {
    await queue.stopAll();
    await spool.close();
    await sink.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("the next job's printer connection opens while the previous outcome is recorded, and its first byte waits for that record", async () => {
  const sink = await startSink();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx-20s-early-'));
  const spool = new LocalSpool({ dataDir: dir, key: randomBytes(32), historyLimit: 100 });
  await spool.open();
  // The first job's 'sent' record is held back (a slow fdatasync) until the test lets it go.
  let letGo!: () => void;
  const held = new Promise<void>((r) => (letGo = r));
  let recorded = false;
  const update = spool.update.bind(spool);
  spool.update = async (id, patch, opts) => {
    if (patch.state === 'sent' && !recorded) {
      await held;
      recorded = true;
    }
    return update(id, patch, opts);
  };
  const drivers = new DriverRegistry(() => ctx);
  drivers.register('raw', createRawDriver);
  const printer: PrinterRecord = { id: 'front', name: 'front', uri: `raw://127.0.0.1:${sink.port}`, enabled: true, errorPolicy: 'retry-job', retry: { limit: 3, baseMs: 50, maxMs: 200, heldRetryMs: 500 }, defaults: {}, createdAt: new Date().toISOString() };
  const queue = new Dispatcher({ spool, drivers, printer: (id) => (id === printer.id ? printer : undefined), pinPrinter: (p) => p, setStopped: async () => {}, preverifyBytes: 1 << 20, log: { info() {}, warn() {}, error() {} } });
  try {
    const ids: string[] = [];
    for (const text of ['first\n', 'second\n']) {
      const now = new Date().toISOString();
      const received = await spool.receive(Readable.from([Buffer.from(text)]), 1 << 20);
      const job = await spool.accept({ id: randomUUID(), printerId: printer.id, title: 't', user: 'u', contentType: 'text', options: { copies: 1 }, owner: 'test', metaDigest: 'm', state: 'queued', warnings: [], attempts: 0, createdAt: now, updatedAt: now }, received);
      ids.push(job.id);
      queue.enqueue(job);
    }
    await sink.waitForJobs(1, 10000);
    await until('the second job connected early', () => sink.connections() === 2, 10000, 10);
    // Time for a queue that did not wait to send the whole second job (the sink records it on its FIN).
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(sink.jobs.length, 1, 'no byte of the second job before the first one is recorded');
    assert.equal(spool.get(ids[1])!.state, 'sending');
    letGo();
    const jobs = await sink.waitForJobs(2, 10000);
    assert.deepEqual(jobs.map((j) => j.data!.toString()), ['first\n', 'second\n']);
    assert.equal(sink.connections(), 2);
    await until('both recorded as sent', () => ids.every((id) => spool.get(id)?.state === 'sent'), 10000, 10);
  } finally {
    letGo();
    await queue.stopAll();
    await spool.close();
    await sink.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
