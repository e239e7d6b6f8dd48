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
