// Section D: the cost of accepting a 2 KiB job over each intake protocol (HTTP API, IPP, LPD, RAW), with 1 and with
// 8 clients, beside CUPS' own IPP and LPD (cups-lpd) intake in the same run. A job counts when its sender hears
// "accepted" (201, successful-ok, the last LPD ack, the RAW listener's close); printers keep printing meanwhile.
import path from 'node:path';
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { startPrintbox, startCups, smallDoc, freePort, type BenchSink } from './peers.js';
import { printboxClient, submitPrintbox, ippClient, submitLpd, submitRaw, runPool } from './clients.js';
import { fmtRate, progress, ratio, type Row } from './measure.js';
import { stopProcess, waitForPort } from '../test/peers/ports.js';

const CUPS_LPD = '/usr/lib/cups/daemon/cups-lpd';

/** Jobs per second over `n` jobs from `clients` concurrent senders. */
async function rate(n: number, clients: number, stampBase: number, submit: (doc: Buffer, k: number) => Promise<void>): Promise<number> {
  const start = performance.now();
  await runPool(n, clients, (k) => submit(smallDoc(stampBase + k, 2048), k));
  return n / ((performance.now() - start) / 1000);
}

export async function sectionD(tmp: string, sink: BenchSink, rows: Row[], jobs: number, nextIndex: () => number): Promise<void> {
  const lpdPort = await freePort();
  const rawPort = await freePort();
  const pb = await startPrintbox(path.join(tmp, 'data-d'), { lpdPort });
  const cups = await startCups(path.join(tmp, 'cups-d'), sink.port);
  const cupsLpdPort = await freePort();
  // cups-lpd as inetd would run it, in front of the same private cupsd (see test/peers/lpd.ts).
  const cupsLpd = spawn('socat', [`TCP-LISTEN:${cupsLpdPort},bind=127.0.0.1,fork,reuseaddr`, `EXEC:${CUPS_LPD} -n -o document-format=application/octet-stream,nofork`], {
    env: { ...process.env, CUPS_SERVER: `127.0.0.1:${cups.port}` },
    stdio: 'ignore',
  });
  const api = printboxClient(pb.base, pb.ca, pb.token, 8);
  const pbIpp = ippClient(`ipps://127.0.0.1:${pb.port}/ipp/print/sink`, 8, { ca: pb.ca, token: pb.token });
  const cupsIpp = ippClient(cups.queueUri, 8);
  try {
    await waitForPort(cupsLpdPort, 10000, cupsLpd, 'socat (cups-lpd)');
    const r = await api.json('POST', '/v1/printers', { name: 'sink', uri: `raw://127.0.0.1:${sink.port}`, intake: { lpd: true, raw: { port: rawPort }, allow: ['127.0.0.1'] } });
    if (r.status !== 201) throw new Error(`adding the printer failed: ${r.status} ${r.text}`);
    await waitForPort(lpdPort, 10000, cupsLpd, 'printbox LPD');
    await waitForPort(rawPort, 10000, cupsLpd, 'printbox RAW');
    const protocols: { name: string; printbox: (d: Buffer, k: number) => Promise<void>; baseline?: { name: string; submit: (d: Buffer, k: number) => Promise<void> } }[] = [
      { name: 'HTTP API (multipart, keep-alive)', printbox: (d) => submitPrintbox(api, 'sink', d), baseline: { name: 'CUPS IPP', submit: (d) => cupsIpp.printJob(d).then(() => undefined) } },
      { name: 'IPP Print-Job (ipps, keep-alive)', printbox: (d) => pbIpp.printJob(d).then(() => undefined), baseline: { name: 'CUPS IPP (ipp, no TLS)', submit: (d) => cupsIpp.printJob(d).then(() => undefined) } },
      { name: 'LPD receive-job (a connection per job)', printbox: (d, k) => submitLpd(lpdPort, 'sink', d, k), baseline: { name: 'cups-lpd', submit: (d, k) => submitLpd(cupsLpdPort, 'sink', d, k) } },
      { name: 'RAW (a connection per job)', printbox: (d) => submitRaw(rawPort, d) },
    ];
    for (const p of protocols) {
      for (const clients of [1, 8]) {
        // Warm both sides a little (TLS sessions, JIT), then measure.
        await rate(Math.min(50, jobs), clients, nextIndex(), p.printbox);
        const mine = await rate(jobs, clients, nextIndex(), p.printbox);
        let base: number | undefined;
        if (p.baseline) {
          await rate(Math.min(20, jobs), clients, nextIndex(), p.baseline.submit);
          base = await rate(jobs, clients, nextIndex(), p.baseline.submit);
        }
        progress(`D ${p.name}, ${clients} client(s): printbox ${mine.toFixed(0)} jobs/s${base ? `, ${p.baseline!.name} ${base.toFixed(0)} jobs/s` : ''}`);
        rows.push({
          section: 'D',
          metric: `2 KiB jobs accepted, ${clients} client${clients > 1 ? 's' : ''}: ${p.name}`,
          printbox: fmtRate(mine, 'jobs/s'),
          baseline: base ? `${p.baseline!.name} ${fmtRate(base, 'jobs/s')}` : '—',
          ratio: base ? ratio(mine, base) : '',
          target: '',
        });
      }
    }
  } finally {
    api.close();
    pbIpp.close();
    cupsIpp.close();
    await stopProcess(cupsLpd);
    await cups.stop();
    await pb.stop();
  }
}
