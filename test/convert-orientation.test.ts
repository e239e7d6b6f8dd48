// Orientation applied during conversion: pages turned for landscape and the reverse orientations on printers
// whose language cannot carry it (raster on RAW, PDF on RAW without PJL), read back from the raster itself
// (where the ink is) and with pdfinfo; the orientation warning is gone.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { addRawPrinter, startAppliance, until, type TestAppliance } from './helpers/appliance.js';
import { gs } from './helpers/documents.js';
import { pwgInk } from './helpers/raster.js';
import { startSink, type Sink } from './peers/tcp-sink.js';
import fs from 'node:fs/promises';
import path from 'node:path';

/** One page of w × h points, black across its top 50 points: where that bar ends up shows how the page was turned. */
function topBar(w: number, h: number): string {
  return `%!PS\n<< /PageSize [${w} ${h}] >> setpagedevice\n0 ${h - 50} ${w} 50 rectfill\nshowpage\n`;
}

type Side = 'top' | 'bottom' | 'left' | 'right';

/** Which edge of the page the ink hugs. */
function inkSide(p: ReturnType<typeof pwgInk>[number]): Side {
  const i = p.ink!;
  assert.ok(i, 'the page has ink');
  if (i.x1 - i.x0 > p.width * 0.9) return i.y0 < p.height * 0.05 ? 'top' : i.y1 > p.height * 0.95 ? 'bottom' : assert.fail(`bar in the middle: ${JSON.stringify(p)}`);
  if (i.y1 - i.y0 > p.height * 0.9) return i.x0 < p.width * 0.05 ? 'left' : i.x1 > p.width * 0.95 ? 'right' : assert.fail(`bar in the middle: ${JSON.stringify(p)}`);
  return assert.fail(`no bar along an edge: ${JSON.stringify(p)}`);
}

describe('orientation applied in the document', () => {
  let box: TestAppliance;
  let raster: Sink;
  let pdfSink: Sink;
  let portrait: Buffer;
  let landscape: Buffer;
  before(async () => {
    box = await startAppliance();
    raster = await startSink();
    pdfSink = await startSink();
    // A raster printer on RAW: no job ticket, so orientation could only be a warning before.
    await addRawPrinter(box.api, 'pwg', raster.port, { accepts: ['image/pwg-raster'], resolution: 72 });
    await addRawPrinter(box.api, 'pdf', pdfSink.port, { uri: `raw://127.0.0.1:${pdfSink.port}?pjl=false`, accepts: ['application/pdf'] });
    portrait = await gs(['-sDEVICE=pdfwrite', '-sOutputFile=-', '-'], topBar(595, 842));
    landscape = await gs(['-sDEVICE=pdfwrite', '-sOutputFile=-', '-'], topBar(842, 595));
  });
  after(async () => {
    await box.stop();
    await raster.close();
    await pdfSink.close();
  });

  async function print(sink: Sink, fields: Record<string, string>, doc: Buffer) {
    const before = sink.jobs.length;
    const r = await box.api.postJob(fields, doc);
    assert.equal(r.status, 201, r.text);
    const j = await until('the job sent', async () => {
      const v = (await box.api.json('GET', `/v1/jobs/${r.json.jobID}`)).json;
      return ['sent', 'failed'].includes(v.state) ? v : undefined;
    }, 60000);
    assert.equal(j.state, 'sent', j.reason);
    assert.ok(!j.warnings.some((w: string) => /orientation/.test(w)), j.warnings.join('; '));
    const jobs = await sink.waitForJobs(before + 1, 10000);
    return jobs[before].data!;
  }

  for (const [orientation, side, wide] of [
    [undefined, 'top', false],
    ['landscape', 'left', true],
    ['reverse-landscape', 'right', true],
    ['reverse-portrait', 'bottom', false],
  ] as const) {
    test(`a portrait page printed ${orientation ?? 'as it is'}: the top of the page is at the ${side} of the raster`, async () => {
      const out = await print(raster, { printer: 'pwg', ...(orientation && { orientation }) }, portrait);
      const [page] = pwgInk(out);
      assert.equal(page.width > page.height, wide, `${page.width} × ${page.height}`);
      assert.equal(inkSide(page), side);
    });
  }

  test('on a fixed paper size, reverse orientations turn the fitted page upside down', async () => {
    const up = await print(raster, { printer: 'pwg', media: 'iso_a4_210x297mm', orientation: 'reverse-portrait' }, portrait);
    const [a] = pwgInk(up);
    assert.ok(a.height > a.width);
    assert.equal(inkSide(a), 'bottom');
    // A landscape page on portrait paper is turned a quarter anticlockwise to fit (landscape); reverse-landscape: clockwise.
    const land = pwgInk(await print(raster, { printer: 'pwg', media: 'iso_a4_210x297mm', orientation: 'landscape' }, landscape))[0];
    assert.equal(inkSide(land), 'left');
    const rev = pwgInk(await print(raster, { printer: 'pwg', media: 'iso_a4_210x297mm', orientation: 'reverse-landscape' }, landscape))[0];
    assert.ok(rev.height > rev.width);
    assert.equal(inkSide(rev), 'right');
  });

  test('PostScript to a PDF printer in landscape: pdfinfo reads a landscape page, and its top is on the left', async () => {
    const ps = Buffer.from(topBar(595, 842));
    const out = await print(pdfSink, { printer: 'pdf', contentType: 'postscript', orientation: 'landscape' }, ps);
    const dir = await fs.mkdtemp(path.join('/dev/shm', 'pbx17-orient-'));
    try {
      await fs.writeFile(path.join(dir, 'out.pdf'), out);
      const info = (await promisify(execFile)('pdfinfo', [path.join(dir, 'out.pdf')])).stdout;
      const size = /Page size:\s+([\d.]+) x ([\d.]+)/.exec(info)!;
      assert.ok(Number(size[1]) > Number(size[2]), info);
      assert.match(info, /Page rot:\s+0/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
    const [page] = pwgInk(await gs(['-sDEVICE=pwgraster', '-r36', '-dcupsColorSpace=18', '-dcupsBitsPerColor=8', '-sOutputFile=-', '-'], out));
    assert.equal(inkSide(page), 'left');
  });
});

