// The render-ahead memory budget counts the converters themselves (each gs holds ~40 MiB), not only the documents
// and buffers: with real Ghostscript processes, a budget with room for two converters starts no third one ahead.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ConvertStage } from '../runtime/convert/stage.js';
import type { JobRecord } from '../runtime/spool/jobs.js';
import type { PrinterRecord } from '../runtime/system/state.js';
import { pdf } from './helpers/documents.js';

const MiB = 1024 * 1024;
const printer = { id: 'p', name: 'pcl', uri: 'raw://127.0.0.1:9', enabled: true, defaults: {}, accepts: ['application/vnd.hp-pcl'] } as unknown as PrinterRecord;
const job = (id: string, size: number) => ({ id, printerId: 'p', contentType: 'pdf', options: { copies: 1 }, size, state: 'queued', warnings: [] }) as unknown as JobRecord;

let stage: ConvertStage | undefined;
after(() => stage?.close());

test('a budget with room for two converters renders one job ahead of the one printing, not two', async () => {
  const doc = await pdf(40, 'budget');
  // 110 MiB: two gs (80 MiB) and their buffers fit; a third gs would pass it.
  stage = new ConvertStage({ timeoutMs: 30000, concurrency: 4, memoryBudgetBytes: 110 * MiB, ramDir: '/dev/shm' });
  const head = await stage.prepare(job('a', doc.length), printer, () => [doc], new AbortController().signal);
  assert.ok(head && !('fail' in head), JSON.stringify(head));
  assert.equal(stage.rendering, 1);
  stage.ahead(job('b', doc.length), printer, () => [doc]);
  assert.equal(stage.rendering, 2, 'one job renders ahead');
  stage.ahead(job('c', doc.length), printer, () => [doc]);
  assert.equal(stage.rendering, 2, 'a third converter would not fit the budget');
  assert.ok(stage.committedBytes >= 80 * MiB, `committed ${stage.committedBytes}`);
  stage.forget('a');
  stage.forget('b');
  assert.equal(stage.committedBytes, 0, 'nothing counted once the renders are gone');
});
