// PJL job tickets and confirmed delivery: a PJL-speaking printer on loopback answers USTATUS JOB, or does not.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { buildJobTicket, parseUStatus, pjlJobName, pjlPaper, pjlSettings, PjlReader, UEL, type UStatus } from '../drivers/pjl.js';
import { createRawDriver } from '../drivers/raw.js';
import { testJob } from './peers/outbound-job.js';
import { startPjlPrinter, type PjlPrinter } from './peers/pjl-printer.js';

const ctx = { store: { get: () => undefined, set: async () => {} }, log: { info() {}, warn() {}, debug() {} } };
const never = () => new AbortController().signal;

describe('PJL job ticket', () => {
  test('job names are printable ASCII without quotes, at most 80 characters, and keep the job id', () => {
    assert.equal(pjlJobName('Invoice "A"\x1b%-12345X\r\n\x00', 'id1'), 'Invoice A %-12345X [id1]');
    assert.equal(pjlJobName('Café Ünïcode', 'x'), 'Cafe Unicode [x]');
    const long = pjlJobName('x'.repeat(300), 'job-123');
    assert.equal(long.length, 80);
    assert.ok(long.endsWith(' [job-123]'));
    assert.equal(pjlJobName('', 'j'), '[j]');
  });

  test('media names map to PJL paper names', () => {
    assert.equal(pjlPaper('iso_a4_210x297mm'), 'A4');
    assert.equal(pjlPaper('na_letter_8.5x11in'), 'LETTER');
    assert.equal(pjlPaper('Letter'), 'LETTER');
    assert.equal(pjlPaper('na_legal_8.5x14in'), 'LEGAL');
    assert.equal(pjlPaper('iso_a3_297x420mm'), 'A3');
    assert.equal(pjlPaper('na_number-10_4.125x9.5in'), 'COM10');
    assert.equal(pjlPaper('roll_max_36x1000in'), undefined);
  });

  test('options become PJL SET lines; what PJL cannot carry is warned about', () => {
    const { lines, warnings } = pjlSettings({
      copies: 3,
      duplex: 'short-edge',
      color: true,
      tray: 'manual',
      media: 'oddsize',
      orientation: 'reverse-landscape',
      pageRanges: '2-4',
      finishings: ['staple'],
    });
    assert.deepEqual(lines, ['@PJL SET QTY=3', '@PJL SET DUPLEX=ON', '@PJL SET BINDING=SHORTEDGE', '@PJL SET RENDERMODE=COLOR', '@PJL SET MANUALFEED=ON', '@PJL SET ORIENTATION=LANDSCAPE']);
    assert.equal(warnings.length, 4);
    assert.match(warnings[0], /media "oddsize" has no PJL paper name/);
    assert.match(warnings[1], /reverse-landscape sent as landscape/);
    assert.match(warnings[2], /pageRanges "2-4" not carried: PJL has no page selection, all pages print/);
    assert.match(warnings[3], /finishings staple not carried/);
    assert.deepEqual(pjlSettings({ copies: 1, duplex: 'none', tray: 'tray-1' }).lines, ['@PJL SET DUPLEX=OFF', '@PJL SET MEDIASOURCE=TRAY1']);
    assert.deepEqual(pjlSettings({ copies: 1 }), { lines: [], warnings: [] });
  });

  test('orientation goes as PJL only into a PCL document: a PDF or PostScript one sent as it is gets a warning instead', () => {
    for (const language of ['PDF', 'POSTSCRIPT']) {
      const { lines, warnings } = pjlSettings({ copies: 1, orientation: 'landscape' }, language);
      assert.ok(!lines.some((l) => l.includes('ORIENTATION')), `no ORIENTATION line for ${language}`);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], new RegExp(`orientation landscape not carried: PJL sets it for PCL only, and a ${language} document`));
      assert.deepEqual(pjlSettings({ copies: 1, orientation: 'portrait' }, language), { lines: [], warnings: [] });
    }
    const ticket = buildJobTicket({ id: 'j', title: 't', contentType: 'pdf', options: { copies: 1, orientation: 'landscape' } }, false);
    assert.ok(!ticket.header.toString('latin1').includes('ORIENTATION'));
    assert.match(ticket.warnings.join(' '), /orientation landscape not carried/);
    assert.deepEqual(pjlSettings({ copies: 1, orientation: 'landscape' }, 'PCL').lines, ['@PJL SET ORIENTATION=LANDSCAPE']);
  });

  test('a confirmed ticket turns on USTATUS JOB before naming the job, and the EOJ carries the same name', () => {
    const t = buildJobTicket({ id: 'j9', title: 'T', contentType: 'postscript', options: { copies: 1 } }, true);
    assert.equal(t.header.toString('latin1'), `${UEL}@PJL\r\n@PJL USTATUS JOB=ON\r\n@PJL JOB NAME="T [j9]"\r\n@PJL ENTER LANGUAGE=POSTSCRIPT\r\n`);
    assert.equal(t.trailer.toString('latin1'), `${UEL}@PJL\r\n@PJL EOJ NAME="T [j9]"\r\n${UEL}`);
    assert.throws(() => buildJobTicket({ id: 'j', title: 'T', contentType: 'zpl', options: { copies: 1 } }, false), /zpl documents cannot be wrapped in PJL/);
  });

  test('USTATUS replies are parsed, also when split across reads and with spaces around =', () => {
    assert.deepEqual(parseUStatus('@PJL USTATUS JOB\r\nEND\r\nNAME = "JOB 88554"\r\nPAGES=5\r\n'), { category: 'JOB', event: 'END', fields: { NAME: 'JOB 88554', PAGES: '5' } });
    const seen: UStatus[] = [];
    const r = new PjlReader((s) => seen.push(s));
    const wire = '@PJL USTATUS JOB\r\nSTART\r\nNAME="a [1]"\r\n\f@PJL USTATUS PAGE\r\n1\r\n\f@PJL USTATUS JOB\r\nEND\r\nNAME="a [1]"\r\nPAGES=1\r\n\f';
    for (let i = 0; i < wire.length; i += 7) r.push(Buffer.from(wire.slice(i, i + 7), 'latin1'));
    assert.deepEqual(
      seen.map((s) => `${s.category} ${s.event} ${s.fields.NAME ?? ''}`),
      ['JOB START a [1]', 'PAGE 1 ', 'JOB END a [1]'],
    );
  });
});

describe('confirmed delivery over RAW (confirm=pjl)', () => {
  const printers: PjlPrinter[] = [];
  const driver = createRawDriver(ctx);
  const start = async (mode: Parameters<typeof startPjlPrinter>[0]) => {
    const p = await startPjlPrinter(mode);
    printers.push(p);
    return p;
  };
  after(async () => {
    for (const p of printers) await p.close();
  });

  test('a printer that reports USTATUS JOB END for our job name gives "confirmed"', async () => {
    const printer = await start({ mode: 'answer' });
    const doc = Buffer.concat([Buffer.from('%!PS-Adobe-3.0\n'), randomBytes(300_000)]);
    const job = testJob(`raw://127.0.0.1:${printer.port}?confirm=pjl&confirmTimeout=5000`, doc, { id: 'c1', title: 'Pay slip', contentType: 'postscript', options: { copies: 2 } });
    const out = await driver.send(job, never());
    assert.equal(out.kind, 'confirmed', JSON.stringify(out));
    assert.match(out.kind === 'confirmed' ? (out.detail ?? '') : '', /Pay slip \[c1\].*END, 1 page/);
    const [got] = await printer.waitForJobs(1, 5000);
    assert.deepEqual(got.commands, ['@PJL USTATUS JOB=ON', '@PJL JOB NAME="Pay slip [c1]"', '@PJL SET QTY=2', '@PJL ENTER LANGUAGE=POSTSCRIPT', '@PJL EOJ NAME="Pay slip [c1]"']);
    assert.ok(got.document?.equals(doc), 'document arrives byte-exact inside the ticket');
    assert.equal(got.replies.length, 2);
  });

  test('a printer that never answers gives "sent" once confirmTimeout has passed, never "confirmed"', async () => {
    const printer = await start({ mode: 'silent' });
    const t0 = Date.now();
    const out = await driver.send(testJob(`raw://127.0.0.1:${printer.port}?confirm=pjl&confirmTimeout=400`, Buffer.from('\x1bEhi\x1bE'), { contentType: 'pcl' }), never());
    const took = Date.now() - t0;
    assert.deepEqual(out, { kind: 'sent', detail: 'no PJL job status from the printer within 400 ms' });
    assert.ok(took >= 400, `not before confirmTimeout (took ${took} ms)`);
    assert.equal((await printer.waitForJobs(1, 2000)).length, 1);
  });

  test('an END for another job name is not a confirmation', async () => {
    const printer = await start({ mode: 'wrong-name' });
    const out = await driver.send(testJob(`raw://127.0.0.1:${printer.port}?confirm=pjl&confirmTimeout=400`, Buffer.from('%PDF-1.4\n'), { contentType: 'pdf' }), never());
    assert.equal(out.kind, 'sent');
  });

  test('a job the printer reports CANCELED is only "sent", with the reason', async () => {
    const printer = await start({ mode: 'canceled' });
    const out = await driver.send(testJob(`raw://127.0.0.1:${printer.port}?confirm=pjl&confirmTimeout=3000`, Buffer.from('%PDF-1.4\n'), { id: 'k', contentType: 'pdf' }), never());
    assert.equal(out.kind, 'sent');
    assert.match((out as { detail: string }).detail, /CANCELED/);
  });

  test('without confirm=pjl the ticket does not ask for status and the job is just "sent"', async () => {
    const printer = await start({ mode: 'answer' });
    const out = await driver.send(testJob(`raw://127.0.0.1:${printer.port}`, Buffer.from('%PDF-1.4\n'), { contentType: 'pdf' }), never());
    assert.deepEqual(out, { kind: 'sent' });
    const [got] = await printer.waitForJobs(1, 2000);
    assert.ok(!got.commands.some((c) => c.includes('USTATUS')));
    assert.deepEqual(got.replies, []);
  });

  test('confirm=pjl on a ZPL label warns that it can only be reported as sent', async () => {
    const printer = await start({ mode: 'answer' });
    const job = testJob(`raw://127.0.0.1:${printer.port}?confirm=pjl`, Buffer.from('^XA^XZ'), { contentType: 'zpl' });
    assert.deepEqual(await driver.send(job, never()), { kind: 'sent' });
    assert.deepEqual(job.warnings, ['confirm=pjl needs a PJL job ticket; this zpl job can only be reported as sent']);
  });
});
