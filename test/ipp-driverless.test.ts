// CUPS as an IPP Everywhere client of printbox: a driverless queue (lpadmin -m everywhere, which reads printbox's
// printer attributes to build its PPD) prints a PDF through printbox to a RAW printer.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { addRawPrinter, startAppliance, tempDir, type TestAppliance } from './helpers/appliance.js';
import { startSink, type Sink } from './peers/tcp-sink.js';
import { startCupsd, type Cupsd } from './peers/cupsd.js';
import { run } from './peers/ipptool.js';

const skip = ['/usr/sbin/cupsd', '/usr/sbin/lpadmin', '/usr/bin/lp', '/usr/bin/gs', '/usr/lib/cups/backend/ipps'].every(existsSync) ? false : 'cupsd, lpadmin, lp, the ipps backend or Ghostscript is missing';

describe('a CUPS driverless queue prints through printbox', { skip }, () => {
  let app: TestAppliance;
  let sink: Sink;
  let cupsd: Cupsd;
  let dir: string;

  before(async () => {
    sink = await startSink();
    app = await startAppliance();
    await addRawPrinter(app.api, 'front', sink.port);
    dir = await tempDir('pbx-cups-everywhere-');
    cupsd = await startCupsd(path.join(dir, 'cups'));
  });
  after(async () => {
    await cupsd?.stop();
    await app?.stop();
    await sink?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  test('lpadmin -m everywhere makes a queue from printbox\'s attributes; lp prints a PDF that reaches the RAW printer', async () => {
    // The token rides in the device URI as the Basic password, as CUPS' ipp backend sends it.
    const uri = `ipps://clinic:${app.token}@127.0.0.1:${app.running.port}/ipp/print/front`;
    const added = await run('lpadmin', ['-h', cupsd.host, '-p', 'ward', '-E', '-v', uri, '-m', 'everywhere'], { timeout: 60000 });
    assert.equal(added.code, 0, added.stderr + (await cupsd.log()).slice(-3000));
    const pdf = path.join(dir, 'chart.pdf');
    await run('gs', ['-q', '-dNOPAUSE', '-dBATCH', '-dSAFER', '-sDEVICE=pdfwrite', `-sOutputFile=${pdf}`, '-c', '/Helvetica findfont 20 scalefont setfont 72 720 moveto (ward 3 chart) show showpage']);
    const printed = await run('lp', ['-h', cupsd.host, '-d', 'ward', '-t', 'driverless chart', pdf], { timeout: 60000 });
    assert.equal(printed.code, 0, printed.stderr);
    const [job] = await sink.waitForJobs(1, 60000).catch(async (e) => {
      throw new Error(`${(e as Error).message}\n${(await cupsd.log()).slice(-4000)}`);
    });
    assert.match(job.data!.toString('latin1'), /%PDF-/);
    const jobs = (await app.api.json('GET', '/v1/jobs')).json.jobs;
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0].title, 'driverless chart');
    assert.equal(jobs[0].contentType, 'pdf');
  });
});
