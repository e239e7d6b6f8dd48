// The conversion stage with real tools (gs, qpdf): the render-ahead memory budget counts the converters themselves
// (each gs holds ~40 MiB), and conversions that pass through a quick tool keep every byte when several run at once.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ConvertStage } from '../runtime/convert/stage.js';
import type { JobRecord } from '../runtime/spool/jobs.js';
import type { PrinterRecord } from '../runtime/system/state.js';
import { gs, pdf } from './helpers/documents.js';
import { pwgPages } from './helpers/raster.js';

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

test('six conversions turned by qpdf at once all keep their pages (a quick tool\'s output is read from its first byte)', async () => {
  const doc = await gs(['-sDEVICE=pdfwrite', '-sOutputFile=-', '-'], '%!PS\n0 0 100 100 rectfill showpage\n');
  const raster = { ...printer, accepts: ['image/pwg-raster'], resolution: 72 } as PrinterRecord;
  const s = new ConvertStage({ timeoutMs: 30000, concurrency: 8, memoryBudgetBytes: 512 * MiB, ramDir: '/dev/shm' });
  try {
    const outs = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const j = { ...job(`turn-${i}`, doc.length), options: { copies: 1, orientation: 'landscape' } } as unknown as JobRecord;
        const r = await s.prepare(j, raster, () => [doc], new AbortController().signal);
        assert.ok(r && !('fail' in r), JSON.stringify(r));
        const parts: Buffer[] = [];
        for await (const c of r.open()) parts.push(c as Buffer);
        return Buffer.concat(parts);
      }),
    );
    for (const out of outs) assert.equal(pwgPages(out).length, 1);
  } finally {
    s.close();
  }
});
