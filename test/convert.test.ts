// Conversion against real peers: a PDF to PCL, PostScript and ZPL printers (TCP sinks), to raster-only IPP printers
// (ippeveprinter), page counts on jobs/metrics/callbacks, and documents that cannot or will not convert.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { addRawPrinter, startAppliance, until, type TestAppliance } from './helpers/appliance.js';
import { pdf, postscript, textOf, gs } from './helpers/documents.js';
import { pcl5Pages, pwgPages, urfPages } from './helpers/raster.js';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { haveIppEvePrinter, startIppEvePrinter, type IppEvePrinter } from './peers/ippeveprinter.js';
import { startTcpForward } from './peers/tcp-forward.js';
import { deliverableFormats, targetFor } from '../runtime/convert/formats.js';
import { pageCounts } from '../runtime/convert/gs.js';
import { textToPostScript } from '../runtime/convert/postscript.js';
import fs from 'node:fs/promises';
import path from 'node:path';

async function finished(box: TestAppliance, id: string) {
  return until(`job ${id} to finish`, async () => {
    const j = (await box.api.json('GET', `/v1/jobs/${id}`)).json;
    return ['sent', 'confirmed', 'failed', 'cancelled'].includes(j.state) ? j : undefined;
  }, 60000);
}

async function post(box: TestAppliance, fields: Record<string, string>, doc: Buffer) {
  const r = await box.api.postJob(fields, doc);
  assert.equal(r.status, 201, r.text);
  return r.json.jobID as string;
}

/** The document inside a RAW job: after the PJL ticket's ENTER LANGUAGE line, before the closing UEL. */
function unwrapPjl(b: Buffer): { pjl: string; doc: Buffer } {
  const s = b.toString('latin1');
  const enter = /@PJL ENTER LANGUAGE=\w+\r?\n/.exec(s);
  if (!enter) return { pjl: '', doc: b };
  const start = enter.index + enter[0].length;
  const end = s.indexOf('\x1b%-12345X', start); // the trailer: UEL @PJL EOJ … UEL
  return { pjl: s.slice(0, start), doc: b.subarray(start, end > start ? end : b.length) };
}

describe('what gets converted into what', () => {
  test('a format the printer takes, or no list at all, goes as it is; others go to the best language it takes', () => {
    assert.deepEqual(targetFor('pdf', undefined), { convert: false });
    assert.deepEqual(targetFor('pdf', ['application/pdf', 'image/urf']), { convert: false });
    assert.deepEqual(targetFor('pdf', ['application/vnd.hp-pcl', 'application/postscript']), { convert: true, to: 'postscript' });
    assert.deepEqual(targetFor('text', ['image/urf', 'image/pwg-raster']), { convert: true, to: 'pwg-raster' });
    assert.deepEqual(targetFor('raw', ['application/vnd.hp-pcl']), { convert: false });
    const zpl = targetFor('pcl', ['application/vnd.zebra-zpl']);
    assert.ok('unsupported' in zpl && /cannot convert application\/vnd.hp-pcl/.test(zpl.unsupported));
  });

  test('what printbox can deliver to a PCL-only printer: PCL, and what it converts to PCL', () => {
    const f = deliverableFormats(['application/vnd.hp-pcl']);
    for (const m of ['application/vnd.hp-pcl', 'application/pdf', 'application/postscript', 'text/plain', 'image/jpeg', 'image/png']) assert.ok(f.includes(m), m);
    assert.ok(!f.includes('application/vnd.zebra-zpl'));
    assert.deepEqual(deliverableFormats(undefined), []);
  });

  test('pages count selected pages times copies; sheets halve with duplex, per copy', () => {
    assert.deepEqual(pageCounts(3, { copies: 2 }), { pages: 6, sheets: 6 });
    assert.deepEqual(pageCounts(3, { copies: 2, duplex: 'long-edge' }), { pages: 6, sheets: 4 });
    assert.deepEqual(pageCounts(10, { copies: 1, pageRanges: '2-4,9-' }), { pages: 5, sheets: 5 });
  });

  test('text pages break at form feeds and after 64 lines', () => {
    assert.equal(textToPostScript('a\fb\f').pages, 2);
    assert.equal(textToPostScript(Array(128).fill('x').join('\n')).pages, 2);
    assert.equal(textToPostScript(Array(129).fill('x').join('\n')).pages, 3);
  });
});

describe('conversion on the way to the printer', () => {
  let box: TestAppliance;
  const sinks: Sink[] = [];
  let three: Buffer;
  before(async () => {
    // The callback receiver listens on loopback. 128 MiB: room for the head's converter and one rendering ahead (40 MiB each).
    box = await startAppliance({ convert: { timeoutMs: 3000, concurrency: 2, memoryBudgetBytes: 128 * 1024 * 1024, ramDir: '/dev/shm' }, callbacks: { allow: ['127.0.0.1/32'] } });
    three = await pdf(3, 'hello from printbox');
  });
  after(async () => {
    await box.stop();
    for (const s of sinks) await s.close();
  });
  const sink = async () => {
    const s = await startSink();
    sinks.push(s);
    return s;
  };

  test('accepts is set, shown with the formats printbox can deliver, and checked', async () => {
    const s = await sink();
    const p = await addRawPrinter(box.api, 'acc', s.port, { accepts: ['Application/VND.hp-pcl'] });
    assert.deepEqual(p.accepts, ['application/vnd.hp-pcl']);
    assert.equal(p.acceptsFrom, 'admin');
    assert.ok(p.formats.includes('application/pdf'));
    const bad = await box.api.json('PATCH', `/v1/printers/${p.id}`, { accepts: ['pcl'] });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'bad_accepts');
    assert.match(bad.json.error.message, /"pcl" is not a MIME type/);
    const badRes = await box.api.json('PATCH', `/v1/printers/${p.id}`, { resolution: 5 });
    assert.equal(badRes.json.error.code, 'bad_resolution');
    const cleared = await box.api.json('PATCH', `/v1/printers/${p.id}`, { accepts: [] });
    assert.equal(cleared.json.accepts, undefined);
    assert.equal(cleared.json.acceptsFrom, undefined);
  });

  test('a 3-page PDF reaches a PCL printer as PJL + PCL 5 with 3 pages; page ranges and pages on the job', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'pcl', s.port, { accepts: ['application/vnd.hp-pcl'] });
    const id = await post(box, { printer: 'pcl', title: 'three' }, three);
    const j = await finished(box, id);
    assert.equal(j.state, 'sent', j.reason);
    const [got] = await s.waitForJobs(1, 10000);
    const { pjl, doc } = unwrapPjl(got.data!);
    assert.match(pjl, /@PJL ENTER LANGUAGE=PCL/);
    assert.equal(pcl5Pages(doc), 3);
    assert.equal(j.pages, 3);
    assert.equal(j.sheets, 3);
    assert.ok(j.warnings.some((w: string) => /converted from pdf to pcl/.test(w)), j.warnings.join('; '));

    // Page ranges have no PJL variable: applied in the conversion, so no warning; copies stay PJL's (QTY).
    const id2 = await post(box, { printer: 'pcl', title: 'ranges', pageRanges: '2-3', copies: '2', duplex: 'long-edge' }, three);
    const j2 = await finished(box, id2);
    const [, got2] = await s.waitForJobs(2, 10000);
    const u2 = unwrapPjl(got2.data!);
    assert.equal(pcl5Pages(u2.doc), 2);
    assert.match(u2.pjl, /@PJL SET QTY=2/);
    assert.equal(j2.pages, 4);
    assert.equal(j2.sheets, 2);
    assert.ok(!j2.warnings.some((w: string) => /page/i.test(w) && !/converted/.test(w)), j2.warnings.join('; '));

    const list = await box.api.json('GET', '/v1/jobs?printer=pcl&minPages=4');
    assert.deepEqual(list.json.jobs.map((x: any) => x.jobID), [id2]);
    const metrics = await box.api.request('GET', '/metrics');
    assert.match(metrics.text, /printbox_pages_total\{printer="pcl"\} 7/);
  });

  test('a PDF sent as it is (no accepts) is counted too: pages × copies, sheets when duplex', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'plain', s.port);
    const j = await finished(box, await post(box, { printer: 'plain', copies: '2', duplex: 'short-edge' }, three));
    assert.equal(j.state, 'sent', j.reason);
    const [got] = await s.waitForJobs(1, 10000);
    assert.ok(unwrapPjl(got.data!).doc.equals(three), 'the PDF itself, not converted');
    assert.equal(j.pages, 6);
    assert.equal(j.sheets, 4);
  });

  test('to a PostScript printer: Ghostscript reads the text back out of what arrived', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'ps', s.port, { accepts: ['application/postscript'] });
    const id = await post(box, { printer: 'ps' }, three);
    assert.equal((await finished(box, id)).state, 'sent');
    const [got] = await s.waitForJobs(1, 10000);
    const { doc } = unwrapPjl(got.data!);
    assert.match(doc.toString('latin1', 0, 20), /^%!PS/);
    const text = await textOf(doc);
    for (const n of [1, 2, 3]) assert.match(text, new RegExp(`Page ${n} hello from printbox`));
  });

  test('plain text to a RAW PCL printer without PJL: copies rendered into the document', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'pclnopjl', s.port, { uri: `raw://127.0.0.1:${s.port}?pjl=false`, accepts: ['application/vnd.hp-pcl'] });
    const id = await post(box, { printer: 'pclnopjl', contentType: 'text', copies: '2' }, Buffer.from('line one\nline two\fsecond page\n'));
    const j = await finished(box, id);
    assert.equal(j.state, 'sent', j.reason);
    const [got] = await s.waitForJobs(1, 10000);
    assert.equal(pcl5Pages(got.data!), 4); // 2 pages × 2 copies, in the document itself
    assert.equal(j.pages, 4);
    assert.ok(!j.warnings.some((w: string) => /copies/.test(w)), j.warnings.join('; '));
  });

  test('photos (JPEG, PNG with alpha) and raster from IPP Everywhere / AirPrint senders print on a PCL printer', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'pcl-any', s.port, { accepts: ['application/vnd.hp-pcl'] });
    const one = postscript(1, 'picture');
    const docs: [string, Buffer, number][] = [
      ['jpeg', await gs(['-sDEVICE=jpeg', '-r50', '-sOutputFile=-', '-'], one), 1],
      ['png', await gs(['-sDEVICE=pngalpha', '-r50', '-sOutputFile=-', '-'], one), 1],
      ['pwg-raster', await gs(['-sDEVICE=pwgraster', '-r100', '-dcupsColorSpace=18', '-dcupsBitsPerColor=8', '-sOutputFile=-', '-'], postscript(3)), 3],
      ['urf', await gs(['-sDEVICE=urf', '-r100', '-dcupsColorSpace=19', '-dcupsBitsPerColor=8', '-sOutputFile=-', '-'], postscript(2)), 2],
    ];
    for (const [i, [type, doc, pages]] of docs.entries()) {
      const id = await post(box, { printer: 'pcl-any' }, doc); // the type is sniffed
      const j = await finished(box, id);
      assert.equal(j.contentType, type);
      assert.equal(j.state, 'sent', `${type}: ${j.reason}`);
      const got = (await s.waitForJobs(i + 1, 10000))[i];
      assert.equal(pcl5Pages(unwrapPjl(got.data!).doc), pages, type);
      assert.equal(j.pages, pages, type);
    }
  });

  test('URF from an AirPrint sender reaches a PDF-only printer as a PDF', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'pdf-only', s.port, { accepts: ['application/pdf'] });
    const urf = await gs(['-sDEVICE=urf', '-r100', '-dcupsColorSpace=18', '-dcupsBitsPerColor=8', '-sOutputFile=-', '-'], postscript(2));
    const j = await finished(box, await post(box, { printer: 'pdf-only' }, urf));
    assert.equal(j.state, 'sent', j.reason);
    const [got] = await s.waitForJobs(1, 10000);
    assert.match(unwrapPjl(got.data!).doc.toString('latin1', 0, 8), /^%PDF-1/);
    assert.equal(j.pages, 2);
  });

  test('a damaged PNG fails with what is wrong with it', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'pcl-png', s.port, { accepts: ['application/vnd.hp-pcl'] });
    const png = await gs(['-sDEVICE=png16m', '-r20', '-sOutputFile=-', '-'], postscript(1));
    const j = await finished(box, await post(box, { printer: 'pcl-png' }, png.subarray(0, 60)));
    assert.equal(j.state, 'failed');
    assert.match(j.reason, /the png document cannot be read: damaged PNG/);
  });

  test('a ZPL label printer gets ^XA ^GF… ^XZ at its dpi and label size', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'zebra', s.port, { accepts: ['application/vnd.zebra-zpl'], resolution: 203, defaults: { media: 'oe_4x6-label_4x6in' } });
    const id = await post(box, { printer: 'zebra' }, await pdf(1, 'label'));
    const j = await finished(box, id);
    assert.equal(j.state, 'sent', j.reason);
    const [got] = await s.waitForJobs(1, 10000);
    const z = got.data!.toString('latin1');
    assert.match(z, /^\^XA\^PW812\^LL1218\^LH0,0\^FO0,0\^GFA,124236,124236,102,[0-9A-F:,]+\^FS\^XZ\n$/);
    assert.ok(/[1-9A-F]/.test(z.slice(40)), 'the label has black dots');
  });

  test('a broken PDF and an encrypted PDF fail with the reason qpdf gives; the queue goes on', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'pcl2', s.port, { accepts: ['application/vnd.hp-pcl'] });
    const broken = await post(box, { printer: 'pcl2', contentType: 'pdf' }, three.subarray(0, 600));
    const enc = await encrypt(three);
    const locked = await post(box, { printer: 'pcl2' }, enc);
    const good = await post(box, { printer: 'pcl2' }, three);
    const b = await finished(box, broken);
    assert.equal(b.state, 'failed');
    assert.match(b.reason, /cannot convert the pdf document to application\/vnd.hp-pcl.*qpdf/);
    const l = await finished(box, locked);
    assert.equal(l.state, 'failed');
    assert.match(l.reason, /invalid password/);
    assert.equal((await finished(box, good)).state, 'sent');
    assert.equal(s.jobs.length, 1);
    assert.equal(s.connections(), 1, 'a document that cannot convert never opens a printer connection');
  });

  test('a converter that hangs is killed after its time limit; the next job prints', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'pcl3', s.port, { accepts: ['application/vnd.hp-pcl'] });
    const hang = await post(box, { printer: 'pcl3' }, Buffer.from('%!PS\n{ 1 pop } loop\n'));
    const next = await post(box, { printer: 'pcl3' }, three);
    const h = await finished(box, hang);
    assert.equal(h.state, 'failed');
    assert.match(h.reason, /produced nothing for 3 s and was killed/);
    assert.equal((await finished(box, next)).state, 'sent');
  });

  test('jobs rendered ahead still print in order', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'order', s.port, { accepts: ['application/vnd.hp-pcl'] });
    const ids = [];
    for (const n of [4, 1, 3, 2]) ids.push(await post(box, { printer: 'order' }, await pdf(n, `doc ${n}`)));
    for (const id of ids) assert.equal((await finished(box, id)).state, 'sent');
    const jobs = await s.waitForJobs(4, 10000);
    assert.deepEqual(jobs.map((j) => pcl5Pages(unwrapPjl(j.data!).doc)), [4, 1, 3, 2]);
    assert.equal(box.running.app.convert.heldBytes, 0, 'nothing left in RAM after the jobs finished');
  });

  test('the status callback says how many pages and sheets', async () => {
    const s = await sink();
    await addRawPrinter(box.api, 'cb', s.port, { accepts: ['application/vnd.hp-pcl'] });
    const bodies: any[] = [];
    const receiver = http.createServer((req, res) => {
      let b = '';
      req.on('data', (c) => (b += c));
      req.on('end', () => {
        bodies.push(JSON.parse(b));
        res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/cb`;
      await post(box, { printer: 'cb', statusURL: url, duplex: 'long-edge' }, three);
      const [body] = (await until('the callback', () => (bodies.length ? bodies : undefined), 20000))!;
      assert.equal(body.status, 'success');
      assert.match(body.message, /3 pages, 2 sheets/);
    } finally {
      receiver.close();
    }
  });
});

async function encrypt(doc: Buffer): Promise<Buffer> {
  const { spawn } = await import('node:child_process');
  // qpdf needs files; the test PDF holds nothing secret, and the files are removed at once.
  const dir = await fs.mkdtemp('/dev/shm/pbx17-');
  try {
    await fs.writeFile(path.join(dir, 'in.pdf'), doc);
    await new Promise<void>((resolve, reject) => {
      const p = spawn('qpdf', ['--encrypt', 'user', 'owner', '256', '--', path.join(dir, 'in.pdf'), path.join(dir, 'out.pdf')]);
      p.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`qpdf ${c}`))));
    });
    return await fs.readFile(path.join(dir, 'out.pdf'));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** The document an ippeveprinter received for a job that went well. */
async function printed(eve: IppEvePrinter, j: { state: string; reason?: string }): Promise<Buffer> {
  assert.ok(['sent', 'confirmed'].includes(j.state), `${j.state}: ${j.reason} ${eve.log().slice(-500)}`);
  const files = await until('the document in the printer spool', async () => {
    const f = (await fs.readdir(eve.spoolDir)).filter((n) => !n.startsWith('.') && !n.endsWith('.prn'));
    return f.length ? f : undefined;
  });
  return fs.readFile(path.join(eve.spoolDir, files![0]));
}

describe('raster-only IPP printers (ippeveprinter)', { skip: !haveIppEvePrinter() && 'ippeveprinter or dbus-daemon missing' }, () => {
  let box: TestAppliance;
  before(async () => {
    box = await startAppliance();
  });
  after(async () => {
    await box.stop();
  });

  for (const [format, parse] of [
    ['image/pwg-raster', (b: Buffer) => pwgPages(b)],
    ['image/urf', (b: Buffer) => urfPages(b).pages],
  ] as const) {
    test(`a 3-page PDF arrives at a ${format}-only printer as 3 valid raster pages at its resolution`, async () => {
      const eve = await startIppEvePrinter({ formats: [format] });
      try {
        const add = await box.api.json('POST', '/v1/printers', { name: `eve-${format.split('/')[1]}`, uri: eve.uri, retry: { limit: 2, baseMs: 50, maxMs: 200, heldRetryMs: 500 } });
        assert.equal(add.status, 201, add.text);
        // accepts comes from the printer itself (Get-Printer-Attributes), not from the admin.
        const p = await until('accepts learned from IPP', async () => {
          const r = (await box.api.json('GET', `/v1/printers/${add.json.id}`)).json;
          return r.accepts ? r : undefined;
        });
        assert.ok(p.accepts.includes(format), JSON.stringify(p.accepts));
        assert.equal(p.acceptsFrom, 'ipp');
        const id = await post(box, { printer: p.name }, await pdf(3, 'raster'));
        const j = await finished(box, id);
        const pages = parse(await printed(eve, j));
        assert.equal(pages.length, 3);
        for (const pg of pages) assert.equal(pg.dpi, p.resolution);
        assert.equal(j.pages, 3);
      } finally {
        await eve.stop();
      }
    });
  }

  test('raster goes gzip-compressed to a printer that lists gzip: a fraction of the bytes on the wire, the same pages', async () => {
    const eve = await startIppEvePrinter({ formats: ['image/pwg-raster'] });
    const wire = await startTcpForward(eve.port);
    try {
      const add = await box.api.json('POST', '/v1/printers', { name: 'eve-gzip', uri: `ipp://127.0.0.1:${wire.port}/ipp/print`, accepts: ['image/pwg-raster'], retry: { limit: 2, baseMs: 50, maxMs: 200, heldRetryMs: 500 } });
      assert.equal(add.status, 201, add.text);
      const id = await post(box, { printer: 'eve-gzip' }, await pdf(3, 'squeezed'));
      const data = await printed(eve, await finished(box, id));
      assert.equal(pwgPages(data).length, 3, 'the printer unpacked whole pages');
      // Everything printbox sent (attribute requests, polls and the job) is still far less than the raster alone.
      assert.ok(wire.sent() * 4 < data.length, `${wire.sent()} bytes on the wire for ${data.length} bytes of raster`);
      // gzip=false in the URI: the same raster goes as it is.
      const plainWire = await startTcpForward(eve.port);
      try {
        const plain = await box.api.json('POST', '/v1/printers', { name: 'eve-plain', uri: `ipp://127.0.0.1:${plainWire.port}/ipp/print?gzip=false`, accepts: ['image/pwg-raster'], retry: { limit: 2, baseMs: 50, maxMs: 200, heldRetryMs: 500 } });
        assert.equal(plain.status, 201, plain.text);
        const data2 = await printed(eve, await finished(box, await post(box, { printer: 'eve-plain' }, await pdf(3, 'squeezed'))));
        assert.equal(pwgPages(data2).length, 3);
        assert.ok(plainWire.sent() >= data2.length, `${plainWire.sent()} bytes on the wire for ${data2.length} bytes of raster, sent as it is`);
      } finally {
        await plainWire.close();
      }
    } finally {
      await wire.close();
      await eve.stop();
    }
  });

  test('a printer that takes only black_1 PWG raster gets 1-bit pages, and prints them', async () => {
    const eve = await startIppEvePrinter({ attributes: ['ATTR keyword pwg-raster-document-type-supported black_1'] });
    try {
      const add = await box.api.json('POST', '/v1/printers', { name: 'eve-black1', uri: eve.uri, retry: { limit: 2, baseMs: 50, maxMs: 200, heldRetryMs: 500 } });
      assert.equal(add.status, 201, add.text);
      const p = await until('raster types learned from IPP', async () => {
        const r = (await box.api.json('GET', `/v1/printers/${add.json.id}`)).json;
        return r.rasterTypes ? r : undefined;
      });
      assert.deepEqual(p.rasterTypes, ['black_1']);
      const id = await post(box, { printer: p.name }, await pdf(2, 'one bit'));
      const j = await finished(box, id);
      const data = await printed(eve, j);
      assert.ok(j.warnings.some((w: string) => /to pwg-raster \(black_1\)/.test(w)), j.warnings.join('; '));
      const pages = pwgPages(data);
      assert.equal(pages.length, 2);
      for (const pg of pages) assert.equal(pg.bitsPerPixel, 1);
      const header = data.subarray(4, 4 + 1796);
      assert.equal(header.readUInt32BE(384), 1, 'cupsBitsPerColor');
      assert.equal(header.readUInt32BE(400), 3, 'cupsColorSpace: black');
      assert.equal(header.readUInt32BE(392), Math.ceil(pages[0].width / 8), 'a line is one bit a pixel');
    } finally {
      await eve.stop();
    }
  });
});

void gs;
void postscript;
