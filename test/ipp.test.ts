// The IPP driver against a real ippeveprinter (documents, attributes, refusals, TLS) and a scripted IPP peer for printer-side failures.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { Driver, JobOptions, OutboundJob } from '../drivers/contract.js';
import { createIppDriver, jobTicket, mediaSize, parsePageRanges } from '../drivers/ipp.js';
import { attr, decodeMessage, encodeMessage, findAttribute, GROUP, OPERATION, TAG, type IppAttribute, type IppMessage } from '../drivers/ipp-codec.js';
import { freePort, haveIppEvePrinter, startIppEvePrinter, type IppEvePrinter } from './peers/ippeveprinter.js';

const run = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const never = new AbortController().signal;

/** A tiny but valid one-page PDF (xref offsets computed, so strict readers accept it too). */
function tinyPdf(text: string): Buffer {
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${`BT /F1 24 Tf 72 720 Td (${text}) Tj ET`.length} >>\nstream\nBT /F1 24 Tf 72 720 Td (${text}) Tj ET\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let body = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((o, i) => {
    offsets.push(Buffer.byteLength(body));
    body += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = Buffer.byteLength(body);
  body += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  body += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(body, 'latin1');
}

interface TestJob extends OutboundJob {
  warnings: string[];
}

function makeJob(uri: string, doc: Buffer | (() => Readable), over: Partial<OutboundJob> & { options?: Partial<JobOptions> } = {}): TestJob {
  const warnings: string[] = [];
  const open = typeof doc === 'function' ? doc : () => Readable.from([doc.subarray(0, 7), doc.subarray(7)]);
  return {
    id: 'job-1',
    title: 'Invoice 42',
    user: 'alice',
    contentType: 'pdf',
    size: Buffer.isBuffer(doc) ? doc.length : 0,
    uri: new URL(uri),
    open,
    warn: (m) => warnings.push(m),
    warnings,
    ...over,
    options: { copies: 1, ...over.options },
  };
}

function newDriver(): Driver {
  const log = { info() {}, warn() {}, debug() {} };
  return createIppDriver({ store: { get: () => undefined, set: async () => {} }, log });
}

/** Reads a job's attributes back with CUPS' own ipptool, so the driver's codec does not check itself. */
async function jobAttributesViaIpptool(printerUri: string, jobId: number, dir: string): Promise<Record<string, string>> {
  const file = path.join(dir, `gja-${jobId}.test`);
  await writeFile(
    file,
    `{ NAME "job attributes" OPERATION Get-Job-Attributes GROUP operation ATTR charset attributes-charset utf-8 ATTR language attributes-natural-language en ATTR uri printer-uri $uri ATTR integer job-id ${jobId} ATTR keyword requested-attributes all STATUS successful-ok }\n`,
  );
  const { stdout } = await run('ipptool', ['-tv', '-T', '10', printerUri, file], { timeout: 15000 });
  const out: Record<string, string> = {};
  for (const m of stdout.matchAll(/^\s+([a-z0-9-]+) \([^)]+\) = (.*)$/gm)) out[m[1]] = m[2];
  return out;
}

/** Spool files ippeveprinter kept for a job id (it names them `<id>-<job name>.<ext>`). */
async function keptDocument(eve: IppEvePrinter, jobId: number): Promise<Buffer> {
  const names = (await readdir(eve.spoolDir)).filter((n) => n.startsWith(`${jobId}-`) && !n.endsWith('.prn'));
  assert.equal(names.length, 1, `one kept document for job ${jobId}, found ${names.join(', ')}`);
  return readFile(path.join(eve.spoolDir, names[0]));
}

const jobIdOf = (detail: string | undefined) => Number(/job (\d+)/.exec(detail ?? '')?.[1]);

// In CI (CI=true) a missing ippeveprinter is a failure, not a skip.
describe('IPP driver against a real ippeveprinter', { skip: !haveIppEvePrinter() && !process.env.CI && 'ippeveprinter (cups-ipp-utils) or dbus-daemon not installed' }, () => {
  let eve: IppEvePrinter;
  const driver = newDriver();
  const q = '?pollInterval=100&confirmTimeout=15000';

  before(async () => {
    eve = await startIppEvePrinter();
  });
  after(async () => {
    await eve?.stop();
  });

  test('a PDF arrives byte-identical and the outcome is confirmed once the printer completes it', async () => {
    const pdf = tinyPdf('printbox ipp test');
    const outcome = await driver.send(makeJob(eve.uri + q, pdf), never);
    assert.equal(outcome.kind, 'confirmed', JSON.stringify(outcome));
    const jobId = jobIdOf((outcome as { detail?: string }).detail);
    assert.equal(sha256(await keptDocument(eve, jobId)), sha256(pdf));
  });

  test('job name, user, copies, media, tray, orientation and page ranges reach the printer; unsupported options become warnings', async () => {
    const pdf = tinyPdf('options');
    const job = makeJob(eve.uri + q, pdf, {
      title: 'Quarterly report',
      user: 'bob',
      options: { copies: 3, media: 'A4', tray: 'manual', orientation: 'landscape', pageRanges: '1-2,4', duplex: 'long-edge', color: true, finishings: ['staple'] },
    });
    const outcome = await driver.send(job, never);
    assert.equal(outcome.kind, 'confirmed', JSON.stringify(outcome));
    const seen = await jobAttributesViaIpptool(eve.uri, jobIdOf((outcome as { detail?: string }).detail), path.dirname(eve.spoolDir));
    assert.equal(seen['job-name'], 'Quarterly report');
    assert.equal(seen['job-originating-user-name'], 'bob');
    assert.equal(seen['copies'], '3');
    assert.equal(seen['orientation-requested'], 'landscape');
    assert.equal(seen['page-ranges'], '1-2,4-4');
    assert.match(seen['media-col'] ?? '', /media-source=manual/);
    assert.match(seen['media-col'] ?? '', /x-dimension=21000 y-dimension=29700/);
    assert.equal(seen['document-format'] ?? seen['document-format-supplied'], 'application/pdf');
    assert.equal(seen['sides'], undefined, 'two-sided must not be sent to a one-sided printer');
    // ippeveprinter is one-sided, monochrome and has no stapler: each refusal is reported, none is silent.
    assert.deepEqual(job.warnings.sort(), [
      'color=true not sent: the printer supports print-color-mode monochrome',
      'duplex=long-edge not sent: the printer supports sides one-sided',
      'finishing staple not sent: the printer does not support it',
    ]);
  });

  test('a document streamed in many chunks with chunked transfer encoding arrives whole', async () => {
    const size = 8 * 1024 * 1024 + 13;
    const hash = createHash('sha256');
    function* chunks() {
      let left = size;
      for (let i = 0; left > 0; i++) {
        const c = Buffer.alloc(Math.min(65536, left), i % 251);
        hash.update(c);
        left -= c.length;
        yield c;
      }
    }
    const job = makeJob(eve.uri + q + '&chunked=true', () => Readable.from(chunks()), { size });
    const outcome = await driver.send(job, never);
    assert.equal(outcome.kind, 'confirmed', JSON.stringify(outcome));
    const kept = await keptDocument(eve, jobIdOf((outcome as { detail?: string }).detail));
    assert.equal(kept.length, size);
    assert.equal(sha256(kept), hash.digest('hex'));
  });

  test('ipps:// talks TLS to the same printer (its self-signed certificate is accepted)', async () => {
    const pdf = tinyPdf('over tls');
    const outcome = await driver.send(makeJob(eve.uri.replace('ipp:', 'ipps:') + q, pdf), never);
    assert.equal(outcome.kind, 'confirmed', JSON.stringify(outcome));
    assert.equal(sha256(await keptDocument(eve, jobIdOf((outcome as { detail?: string }).detail))), sha256(pdf));
    assert.match(eve.log(), /Connection now encrypted/);
  });

  test('ipps:// with tlsVerify=true refuses the self-signed certificate and asks to retry', async () => {
    const outcome = await driver.send(makeJob(eve.uri.replace('ipp:', 'ipps:') + q + '&tlsVerify=true', tinyPdf('x')), never);
    assert.equal(outcome.kind, 'retry');
    assert.match((outcome as { reason: string }).reason, /certificate/i);
  });

  test('an octet-stream document (raw) is refused by the printer and fails', async () => {
    const before = (await readdir(eve.spoolDir)).length;
    const outcome = await driver.send(makeJob(eve.uri + q, Buffer.from('\x1b%-12345X@PJL\r\n'), { contentType: 'raw' }), never);
    assert.equal(outcome.kind, 'fail', JSON.stringify(outcome));
    assert.match((outcome as { reason: string }).reason, /client-error-attributes-or-values-not-supported.*document-format/);
    assert.equal((await readdir(eve.spoolDir)).length, before);
  });

  test('a format missing from document-format-supported fails before any byte is sent', async () => {
    let opened = 0;
    const job = makeJob(eve.uri + q, () => (opened++, Readable.from([Buffer.from('%!PS\n')])), { contentType: 'postscript', size: 5 });
    const outcome = await driver.send(job, never);
    assert.deepEqual(outcome, {
      kind: 'fail',
      reason: 'printer does not accept application/postscript (postscript) documents; it accepts application/octet-stream, application/pdf, image/pwg-raster',
    });
    assert.equal(opened, 0);
  });

  test('probe reports state, formats and what the printer supports', async () => {
    const status = await driver.probe!(new URL(eve.uri));
    assert.equal(status.reachable, true);
    assert.equal(status.state, 'idle');
    assert.ok(status.formats?.includes('application/pdf'));
    assert.ok(status.formats?.includes('image/pwg-raster'));
    const s = status.supported as Record<string, unknown>;
    assert.deepEqual(s.copies, { min: 1, max: 999 });
    assert.deepEqual(s.sides, ['one-sided']);
    assert.deepEqual(s.colorModes, ['monochrome']);
    assert.ok((s.media as string[]).includes('iso_a4_210x297mm'));
    assert.ok((s.mediaSources as string[]).includes('manual'));
  });

  test('a printer that went away (connection refused) means retry, and probe says unreachable', async () => {
    const gone = await startIppEvePrinter();
    await gone.stop();
    const outcome = await driver.send(makeJob(gone.uri + q, tinyPdf('x')), never);
    assert.equal(outcome.kind, 'retry');
    assert.match((outcome as { reason: string }).reason, /ECONNREFUSED/);
    const status = await driver.probe!(new URL(gone.uri));
    assert.equal(status.reachable, false);
  });
});

/* ---------------------------------------------------------------- scripted peer for what ippeveprinter won't do on demand */

type Script = (req: IppMessage, body: Buffer, headers: http.IncomingHttpHeaders) => IppMessage | 'hang';

function reply(req: IppMessage, code: number, groups: { tag: number; attributes: IppAttribute[] }[] = []): IppMessage {
  const op = { tag: GROUP.operation, attributes: [attr(TAG.charset, 'attributes-charset', 'utf-8'), attr(TAG.naturalLanguage, 'attributes-natural-language', 'en')] };
  return { version: 0x0200, code, requestId: req.requestId, groups: [op, ...groups] };
}

const printerGroup = (state = 3, reasons = ['none'], accepting = true) => ({
  tag: GROUP.printer,
  attributes: [
    attr(TAG.enum, 'printer-state', state),
    attr(TAG.keyword, 'printer-state-reasons', ...reasons),
    attr(TAG.boolean, 'printer-is-accepting-jobs', accepting),
    attr(TAG.mimeMediaType, 'document-format-supported', 'application/pdf'),
    attr(TAG.keyword, 'ipp-versions-supported', '1.1', '2.0'),
  ],
});
const jobGroup = (state: number, reasons: string[]) => ({ tag: GROUP.job, attributes: [attr(TAG.integer, 'job-id', 7), attr(TAG.enum, 'job-state', state), attr(TAG.keyword, 'job-state-reasons', ...reasons)] });

async function scriptedPrinter(script: Script): Promise<{ uri: string; ops: number[]; close(): Promise<void> }> {
  const ops: number[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const msg = decodeMessage(Buffer.concat(chunks));
      ops.push(msg.code);
      const answer = script(msg, msg.data, req.headers);
      if (answer === 'hang') return;
      res.writeHead(200, { 'Content-Type': 'application/ipp' }).end(encodeMessage(answer));
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    uri: `ipp://127.0.0.1:${port}/ipp/print`,
    ops,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

describe('IPP driver against a scripted printer', () => {
  const driver = newDriver();
  const doc = Buffer.from('%PDF-1.4\n%%EOF\n');
  const q = '?pollInterval=50&confirmTimeout=2000';

  test('server-error-busy on Print-Job means retry', async () => {
    const p = await scriptedPrinter((m) => (m.code === OPERATION.getPrinterAttributes ? reply(m, 0, [printerGroup()]) : reply(m, 0x0507)));
    try {
      const outcome = await driver.send(makeJob(p.uri + q, doc), never);
      assert.deepEqual(outcome, { kind: 'retry', reason: 'printer refused the job: server-error-busy' });
    } finally {
      await p.close();
    }
  });

  test('client-error-not-possible on Print-Job means fail', async () => {
    const p = await scriptedPrinter((m) => (m.code === OPERATION.getPrinterAttributes ? reply(m, 0, [printerGroup()]) : reply(m, 0x0404)));
    try {
      assert.deepEqual(await driver.send(makeJob(p.uri + q, doc), never), { kind: 'fail', reason: 'printer refused the job: client-error-not-possible' });
    } finally {
      await p.close();
    }
  });

  test('a stopped printer means retry, and no document is sent', async () => {
    const p = await scriptedPrinter((m) => reply(m, 0, [printerGroup(5, ['media-empty-error'])]));
    try {
      const outcome = await driver.send(makeJob(p.uri + q, doc), never);
      assert.equal(outcome.kind, 'retry');
      assert.match((outcome as { reason: string }).reason, /is stopped \(media-empty-error\)/);
      assert.deepEqual(p.ops, [OPERATION.getPrinterAttributes]);
    } finally {
      await p.close();
    }
  });

  test('a job the printer aborts fails with its job-state-reasons', async () => {
    let polls = 0;
    const p = await scriptedPrinter((m) => {
      if (m.code === OPERATION.getPrinterAttributes) return reply(m, 0, [printerGroup()]);
      if (m.code === OPERATION.printJob) return reply(m, 0, [jobGroup(5, ['job-printing'])]);
      return ++polls < 3 ? reply(m, 0, [jobGroup(5, ['job-printing'])]) : reply(m, 0, [jobGroup(8, ['document-format-error'])]);
    });
    try {
      const outcome = await driver.send(makeJob(p.uri + q, doc), never);
      assert.deepEqual(outcome, { kind: 'fail', reason: 'printer job 7 aborted: document-format-error' });
      assert.equal(polls, 3);
    } finally {
      await p.close();
    }
  });

  test('a job that never completes ends as sent after confirmTimeout, never as confirmed', async () => {
    const p = await scriptedPrinter((m) => (m.code === OPERATION.getPrinterAttributes ? reply(m, 0, [printerGroup()]) : reply(m, 0, [jobGroup(5, ['job-printing'])])));
    try {
      const outcome = await driver.send(makeJob(p.uri + '?pollInterval=50&confirmTimeout=500', doc), never);
      assert.equal(outcome.kind, 'sent');
      assert.match((outcome as { detail?: string }).detail ?? '', /not completed within 500 ms \(last seen: job 7 processing: job-printing\)/);
    } finally {
      await p.close();
    }
  });

  test('cancelling while waiting for completion stops polling and reports sent (the job is already at the printer)', async () => {
    const p = await scriptedPrinter((m) => (m.code === OPERATION.getPrinterAttributes ? reply(m, 0, [printerGroup()]) : reply(m, 0, [jobGroup(4, ['job-held'])])));
    try {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 300);
      // confirmTimeout is 30 s: only the cancel can end the wait with "stopped waiting".
      const outcome = await driver.send(makeJob(p.uri + '?pollInterval=50&confirmTimeout=30000', doc), ac.signal);
      assert.equal(outcome.kind, 'sent');
      assert.match((outcome as { detail?: string }).detail ?? '', /stopped waiting/);
      const polls = p.ops.length;
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(p.ops.length, polls, 'no polling after cancellation');
    } finally {
      await p.close();
    }
  });

  test('a printer that never answers means retry after requestTimeout', async () => {
    const p = await scriptedPrinter(() => 'hang');
    try {
      const outcome = await driver.send(makeJob(p.uri + '?requestTimeout=300', doc), never);
      assert.equal(outcome.kind, 'retry');
      assert.match((outcome as { reason: string }).reason, /did not answer within 300 ms/);
    } finally {
      await p.close();
    }
  });

  test('the document body after the IPP header is exactly the job bytes, with Content-Length', async () => {
    let body: Buffer = Buffer.alloc(0);
    let fields: IppMessage | undefined;
    let contentLength: string | undefined;
    const p = await scriptedPrinter((m, data, headers) => {
      if (m.code === OPERATION.printJob) {
        body = data;
        contentLength = headers['content-length'];
        fields = m;
        return reply(m, 0, [jobGroup(9, ['job-completed-successfully'])]);
      }
      return reply(m, 0, [printerGroup()]);
    });
    try {
      const outcome = await driver.send(makeJob(p.uri + q, doc, { title: 'x'.repeat(300) }), never);
      assert.equal(outcome.kind, 'confirmed');
      assert.equal(body.toString('hex'), doc.toString('hex'));
      assert.equal(Number(contentLength), encodeMessage(fields!).length + doc.length);
      assert.equal(fields?.version, 0x0200);
      assert.equal((findAttribute(fields!, 'job-name')?.values[0] as string).length, 255);
      assert.deepEqual(findAttribute(fields!, 'document-format')?.values, ['application/pdf']);
      assert.deepEqual(findAttribute(fields!, 'requesting-user-name')?.values, ['alice']);
    } finally {
      await p.close();
    }
  });

  test('a document shorter than the spool recorded fails instead of sending a lie', async () => {
    const p = await scriptedPrinter((m) => reply(m, 0, [printerGroup()]));
    try {
      const outcome = await driver.send(makeJob(p.uri + q, () => Readable.from([Buffer.from('abc')]), { size: 10 }), never);
      assert.equal(outcome.kind, 'fail');
      assert.match((outcome as { reason: string }).reason, /document has 3 bytes, the spool recorded 10/);
    } finally {
      await p.close();
    }
  });
});

describe('IPP job ticket', () => {
  const caps = new Map<string, unknown[]>([
    ['copies-supported', [{ lower: 1, upper: 10 }]],
    ['sides-supported', ['one-sided', 'two-sided-long-edge', 'two-sided-short-edge']],
    ['print-color-mode-supported', ['monochrome', 'color']],
    ['media-supported', ['iso_a4_210x297mm', 'na_letter_8.5x11in']],
    ['finishings-supported', [3, 4, 5]],
    ['orientation-requested-supported', [3, 4]],
    ['page-ranges-supported', [true]],
  ]) as Map<string, never[]>;

  test('supported options become attributes with IPP names and types', () => {
    const warnings: string[] = [];
    const t = jobTicket({ copies: 2, duplex: 'short-edge', color: false, media: 'Letter', orientation: 'landscape', pageRanges: '2-3', finishings: ['staple', 'punch'] }, caps, (m) => warnings.push(m));
    assert.deepEqual(warnings, []);
    assert.deepEqual(t, [
      attr(TAG.integer, 'copies', 2),
      attr(TAG.keyword, 'sides', 'two-sided-short-edge'),
      attr(TAG.keyword, 'print-color-mode', 'monochrome'),
      attr(TAG.keyword, 'media', 'na_letter_8.5x11in'),
      attr(TAG.enum, 'orientation-requested', 4),
      attr(TAG.rangeOfInteger, 'page-ranges', { lower: 2, upper: 3 }),
      attr(TAG.enum, 'finishings', 4, 5),
    ]);
  });

  test('out-of-range copies, unknown media, bad page ranges and unknown trays are warned about, not sent', () => {
    const warnings: string[] = [];
    const t = jobTicket({ copies: 50, media: 'A3', pageRanges: '5-2', tray: 'tray-9', finishings: ['fold'], orientation: 'reverse-portrait' }, caps, (m) => warnings.push(m));
    assert.deepEqual(t, []);
    assert.deepEqual(warnings, [
      'copies=50 not sent: the printer supports copies 1-10',
      'media=A3 not sent: the printer supports media iso_a4_210x297mm, na_letter_8.5x11in',
      'tray=tray-9 not sent: the printer supports media-source nothing',
      'orientation=reverse-portrait not sent: the printer does not support it',
      'pageRanges="5-2" not sent: not an ascending list like 1-3,5',
      'finishing fold not sent: the printer does not support it',
    ]);
  });

  test('page ranges and media sizes parse as RFC 8011 and PWG 5101.1 define them', () => {
    assert.deepEqual(parsePageRanges('1-3, 5,7-9'), [{ lower: 1, upper: 3 }, { lower: 5, upper: 5 }, { lower: 7, upper: 9 }]);
    assert.equal(parsePageRanges('3,1'), undefined);
    assert.equal(parsePageRanges('0-2'), undefined);
    assert.equal(parsePageRanges('a'), undefined);
    assert.deepEqual(mediaSize('iso_a4_210x297mm'), { x: 21000, y: 29700 });
    assert.deepEqual(mediaSize('na_letter_8.5x11in'), { x: 21590, y: 27940 });
    assert.equal(mediaSize('custom'), undefined);
  });
});
