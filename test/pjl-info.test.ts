// A RAW printer says what it takes through PJL status readback (INFO ID/CONFIG/STATUS, INQUIRE): parsed from an
// HP LaserJet's layout, asked by the RAW driver's probe, learned as the printer's accepts, and what a probe costs a
// printer that does not speak PJL (a TCP sink): no job, no hang.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PjlInfoReader, pjlInfoRequest, pjlLanguageMime } from '../drivers/pjl.js';
import { createRawDriver } from '../drivers/raw.js';
import { addRawPrinter, startAppliance, until, type TestAppliance } from './helpers/appliance.js';
import { pdf } from './helpers/documents.js';
import { pcl5Pages } from './helpers/raster.js';
import { parsePjlJob, pjlAnswer, startPjlPrinter, LASERJET_4, type PjlPrinter } from './peers/pjl-printer.js';
import { startSink, type Sink } from './peers/tcp-sink.js';

const ctx = { store: { get: () => undefined, set: async () => {} }, log: { info() {}, warn() {}, debug() {} } };

describe('PJL status readback', () => {
  test("an HP LaserJet's answers, split anywhere, give its model, languages, duplex unit, resolution and colour", () => {
    const info = { model: 'HP LaserJet 4250', languages: ['PCL', 'PCLXL', 'POSTSCRIPT'], duplex: true, resolution: 1200, color: false };
    const request = parsePjlJob(pjlInfoRequest('printbox-t1')).commands;
    const answers = Buffer.from(request.map((c) => pjlAnswer(c, info) ?? '').join(''), 'latin1');
    const r = new PjlInfoReader('printbox-t1');
    for (let i = 0; i < answers.length; i += 7) r.push(answers.subarray(i, i + 7));
    assert.ok(r.done, 'the ECHO with our tag ends the answers');
    assert.deepEqual(r.info, { model: 'HP LaserJet 4250', languages: ['PCL', 'PCLXL', 'POSTSCRIPT'], duplex: true, resolution: 1200, color: false, online: true, display: '00 READY' });
  });

  test('a config without indentation is read by its [n ENUMERATED] counts; no DUPLEX line means simplex; COLOR means colour', () => {
    const r = new PjlInfoReader('x');
    r.push(Buffer.from('@PJL INFO CONFIG\r\nIN TRAYS [1 ENUMERATED]\r\nINTRAY1 PC\r\nLANGUAGES [2 ENUMERATED]\r\nPCL\r\nBR-SCRIPT3\r\nMEMORY=8388608\r\n\f@PJL INQUIRE RENDERMODE\r\nCOLOR\r\n\f@PJL ECHO X\r\n\f', 'latin1'));
    assert.deepEqual(r.info.languages, ['PCL', 'BR-SCRIPT3']);
    assert.equal(r.info.duplex, false);
    assert.equal(r.info.color, true);
    assert.ok(r.done);
  });

  test('PJL language names map to MIME types; unknown ones to nothing', () => {
    assert.equal(pjlLanguageMime('PCL'), 'application/vnd.hp-pcl');
    assert.equal(pjlLanguageMime('pcl5e'), 'application/vnd.hp-pcl');
    assert.equal(pjlLanguageMime('PCLXL'), 'application/vnd.hp-pclxl');
    assert.equal(pjlLanguageMime('POSTSCRIPT'), 'application/postscript');
    assert.equal(pjlLanguageMime('PDF'), 'application/pdf');
    assert.equal(pjlLanguageMime('ZPL'), 'application/vnd.zebra-zpl');
    assert.equal(pjlLanguageMime('XHTML'), undefined);
  });
});

describe('the RAW driver asks the printer (probe)', () => {
  const peers: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const p of peers) await p.close();
  });
  const driver = createRawDriver(ctx);

  test('a PJL printer answers: formats, model, duplex, resolution; it records no job', async () => {
    const peer = await startPjlPrinter({ info: { model: 'HP LaserJet 4250', languages: ['PCL', 'PCLXL', 'POSTSCRIPT'], resolution: 1200 } });
    peers.push(peer);
    const st = await driver.probe!(new URL(`raw://127.0.0.1:${peer.port}`));
    assert.equal(st.reachable, true);
    assert.deepEqual(st.formats, ['application/vnd.hp-pcl', 'application/vnd.hp-pclxl', 'application/postscript']);
    assert.equal(st.state, 'idle');
    assert.deepEqual(st.supported, { pjl: true, model: 'HP LaserJet 4250', languages: ['PCL', 'PCLXL', 'POSTSCRIPT'], duplex: true, resolution: 1200, color: false });
    assert.equal(peer.inquiries.length, 1);
    assert.ok(peer.inquiries[0].includes('@PJL INFO CONFIG'), peer.inquiries[0].join(' | '));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(peer.jobs.length, 0, 'a PJL-only request is no job');
  });

  test('a printer without PJL (a TCP sink) gets no job from a probe, and the probe gives up in bounded time', async () => {
    const sink = await startSink();
    peers.push(sink);
    const st = await driver.probe!(new URL(`raw://127.0.0.1:${sink.port}`));
    assert.equal(st.reachable, true);
    assert.equal(st.formats, undefined);
    assert.match(st.detail ?? '', /no PJL answer within 3000 ms/);
    const bare = await driver.probe!(new URL(`raw://127.0.0.1:${sink.port}?pjl=false`));
    assert.equal(bare.reachable, true);
    await until('both probe connections gone', () => sink.connections() === 2 && sink.resets() === 2, 5000);
    assert.equal(sink.jobs.length, 0, 'neither probe left a job (not even an empty one) at the printer');
  });

  test('pjl=false: the printer is not asked anything', async () => {
    const peer = await startPjlPrinter();
    peers.push(peer);
    const st = await driver.probe!(new URL(`raw://127.0.0.1:${peer.port}?pjl=false`));
    assert.equal(st.reachable, true);
    assert.equal(st.formats, undefined);
    assert.equal(peer.inquiries.length, 0);
  });
});

describe('a RAW printer learns what it takes from PJL INFO', () => {
  let box: TestAppliance;
  const peers: { close(): Promise<void> }[] = [];
  before(async () => {
    box = await startAppliance();
  });
  after(async () => {
    await box.stop();
    for (const p of peers) await p.close();
  });
  const printer = async (id: string) => (await box.api.json('GET', `/v1/printers/${id}`)).json;

  test('a LaserJet behind RAW: accepts, resolution and duplex come from PJL, and a PDF arrives as PCL at 600 dpi', async () => {
    const peer = await startPjlPrinter({ info: LASERJET_4 });
    peers.push(peer);
    const added = await addRawPrinter(box.api, 'lj4', peer.port);
    const p = await until('accepts learned from PJL', async () => {
      const r = await printer(added.id);
      return r.accepts ? r : undefined;
    }, 10000);
    assert.deepEqual(p.accepts, ['application/vnd.hp-pcl']);
    assert.equal(p.acceptsFrom, 'pjl');
    assert.equal(p.resolution, 600);
    assert.equal(p.duplex, true);
    assert.equal(p.color, false);
    const posted = await box.api.postJob({ printer: 'lj4', title: 'three' }, await pdf(3, 'from pjl'));
    assert.equal(posted.status, 201, posted.text);
    const j = await until('the job sent', async () => {
      const r = (await box.api.json('GET', `/v1/jobs/${posted.json.jobID}`)).json;
      return ['sent', 'confirmed', 'failed'].includes(r.state) ? r : undefined;
    }, 60000);
    assert.equal(j.state, 'sent', j.reason);
    const [got] = await peer.waitForJobs(1, 10000);
    assert.ok(got.commands.includes('@PJL ENTER LANGUAGE=PCL'), got.commands.join(' | '));
    assert.equal(pcl5Pages(got.document!), 3);
    assert.ok(got.document!.includes('\x1b*t600R'), 'PCL raster at the resolution the printer reported');
    assert.ok(j.warnings.some((w: string) => /converted from pdf to pcl \(PCL 5\) at 600 dpi/.test(w)), j.warnings.join('; '));
  });

  test("the admin's list wins; a printer that stops answering keeps what it had", async () => {
    const peer = await startPjlPrinter({ info: { languages: ['PCL', 'POSTSCRIPT'], duplex: false } });
    peers.push(peer);
    const admin = await addRawPrinter(box.api, 'mine', peer.port, { accepts: ['application/postscript'] });
    const st = await box.api.json('GET', `/v1/printers/${admin.id}/status`);
    assert.equal(st.status, 200, st.text);
    assert.deepEqual(st.json.formats, ['application/vnd.hp-pcl', 'application/postscript'], 'the printer was asked');
    const kept = await printer(admin.id);
    assert.deepEqual(kept.accepts, ['application/postscript']);
    assert.equal(kept.acceptsFrom, 'admin');
    assert.equal(kept.duplex, undefined);

    const learned = await addRawPrinter(box.api, 'ps', peer.port);
    const q = await box.api.json('GET', `/v1/printers/${learned.id}/status`);
    assert.equal(q.json.supported.duplex, false);
    const before = await printer(learned.id);
    assert.deepEqual(before.accepts, ['application/vnd.hp-pcl', 'application/postscript']);
    assert.equal(before.duplex, false, 'no DUPLEX in INFO CONFIG: a simplex printer');
    const silent = await startPjlPrinter({ mode: 'silent' });
    peers.push(silent);
    await box.api.json('PATCH', `/v1/printers/${learned.id}`, { uri: `raw://127.0.0.1:${silent.port}` });
    const again = await box.api.json('GET', `/v1/printers/${learned.id}/status`);
    assert.equal(again.json.reachable, true);
    assert.equal(again.json.formats, undefined);
    const after = await printer(learned.id);
    assert.deepEqual(after.accepts, before.accepts);
    assert.equal(after.acceptsFrom, 'pjl');
  });

  test('a RAW printer that does not speak PJL: no accepts, no job from the probes, and PDFs still go as they are', async () => {
    const sink: Sink = await startSink();
    peers.push(sink);
    const p = await addRawPrinter(box.api, 'dumb', sink.port);
    const st = await box.api.json('GET', `/v1/printers/${p.id}/status`);
    assert.equal(st.json.reachable, true);
    assert.equal((await printer(p.id)).accepts, undefined);
    await until('the probes are over', () => sink.resets() >= 2, 10000);
    assert.equal(sink.jobs.length, 0, 'no empty or PJL-only job at the printer');
    const doc = await pdf(1, 'as it is');
    const posted = await box.api.postJob({ printer: 'dumb' }, doc);
    const [got] = await sink.waitForJobs(1, 20000);
    assert.equal(posted.status, 201);
    assert.ok(got.data!.includes(doc), 'the PDF went as it is, inside its PJL ticket');
  });

  test('a printer whose jobs are labels, or that is known to take only ZPL, is never sent a PJL question', async () => {
    const peer: PjlPrinter = await startPjlPrinter();
    peers.push(peer);
    const label = await addRawPrinter(box.api, 'label', peer.port, { defaults: { contentType: 'zpl' } });
    await box.api.json('GET', `/v1/printers/${label.id}/status`);
    const zpl = await addRawPrinter(box.api, 'zebra', peer.port, { accepts: ['application/vnd.zebra-zpl'] });
    await box.api.json('GET', `/v1/printers/${zpl.id}/status`);
    assert.equal(peer.inquiries.length, 0);
    assert.equal((await printer(label.id)).accepts, undefined);
  });
});
