// Conversion benchmark (issue 17): a 20-page PDF to a PCL-only RAW printer and to a PWG-raster-only IPP printer,
// printbox beside CUPS 2.4 + cups-filters (laserjet.ppd / IPP Everywhere), same Ghostscript, same machine, same run.
//
//   npx tsx bench/convert.ts [--quick]     writes bench/results-convert.md (--quick: bench/results-convert-quick.md)
//
// Measured per system: time to the first byte at the printer for one job on an idle system (median of `reps`);
// then ten jobs across the two printers submitted at once: pages per minute from the first submit to the last byte
// at the printers, CPU per page of the whole server process tree (cupsd and its filters, printbox and its gs),
// and the tree's peak resident memory. The "printers" are a counting TCP sink (PCL) and ippeveprinter behind a
// relay that timestamps the first raster byte and the printer's answer after the document.
// Needs root (a private cupsd), cups, cups-filters, cups-ipp-utils (ippeveprinter), ghostscript.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { openToBackends, writeCupsFiles } from '../test/peers/cupsd.js';
import { startIppEvePrinter } from '../test/peers/ippeveprinter.js';
import { waitForPort, stopProcess } from '../test/peers/ports.js';
import { gs } from '../test/helpers/documents.js';
import { ROOT, startPrintbox, freePort } from './peers.js';
import { printboxClient } from './clients.js';
import { cpuSeconds, fmtMB, fmtMs, percentile, progress, renderTable, treeRssSampler, type Row } from './measure.js';
import { spawn } from 'node:child_process';

const run = promisify(execFile);
const quick = process.argv.includes('--quick');
const PAGES = 20;
const JOBS = 10;
const reps = quick ? 2 : 3;

interface Delivery {
  firstAt: number;
  lastAt: number;
  bytes: number;
}

/** The PCL printer: one connection per job; first and last byte times. */
async function startPclSink() {
  const got: Delivery[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    const d: Delivery = { firstAt: 0, lastAt: 0, bytes: 0 };
    sock.on('data', (c: Buffer) => {
      const now = performance.now();
      if (!d.bytes) d.firstAt = now;
      d.lastAt = now;
      d.bytes += c.length;
    });
    sock.on('error', () => {});
    sock.on('end', () => {
      sock.end();
      if (d.bytes) got.push(d);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as net.AddressInfo).port, got, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/**
 * A TCP relay in front of ippeveprinter that times documents: a request bigger than 64 KiB carries one (CUPS gzips
 * it, so no raster sync word can be looked for); it starts with the request's first byte and ends when the printer
 * answers (ippeveprinter answers Print-Job only after reading the whole document; "100 Continue" does not count).
 */
async function startRasterRelay(target: number) {
  const got: Delivery[] = [];
  const server = net.createServer((client) => {
    const up = net.connect({ host: '127.0.0.1', port: target });
    let req: Delivery | null = null;
    client.on('data', (c: Buffer) => {
      const now = performance.now();
      req ??= { firstAt: now, lastAt: now, bytes: 0 };
      req.bytes += c.length;
      up.write(c);
    });
    up.on('data', (c: Buffer) => {
      if (req && !c.toString('latin1', 0, 12).startsWith('HTTP/1.1 100')) {
        if (req.bytes > 65536) got.push({ ...req, lastAt: performance.now() });
        req = null;
      }
      client.write(c);
    });
    const close = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', close);
    up.on('error', close);
    client.on('end', () => up.end());
    up.on('end', () => client.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as net.AddressInfo).port, got, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** An office document's worth of ink: a heading, 56 lines of 10 pt text, a grey box and a curve on every page. */
function officeDocument(pages: number): string {
  const line = 'printbox conversion benchmark: the quick brown fox jumps over the lazy dog 0123456789';
  let ps = `%!PS-Adobe-3.0\n%%Pages: ${pages}\n`;
  for (let p = 1; p <= pages; p++) {
    ps += `/Helvetica-Bold findfont 18 scalefont setfont 56 760 moveto (Quarterly report, page ${p}) show\n`;
    ps += '/Times-Roman findfont 10 scalefont setfont\n';
    for (let l = 0; l < 56; l++) ps += `56 ${740 - l * 11} moveto (${line} ${l}) show\n`;
    ps += '0.85 setgray 360 40 180 90 rectfill 0 setgray 2 setlinewidth 56 60 moveto 150 140 250 -20 340 90 curveto stroke showpage\n';
  }
  return ps;
}

async function waitFor(what: string, done: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!done()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Side {
  name: string;
  pid: number;
  submit(printer: 'pcl' | 'pwg', doc: Buffer): Promise<void>;
  stop(): Promise<void>;
}

async function startPrintboxSide(tmp: string, pclPort: number, pwgPort: number): Promise<Side> {
  // BENCH_CONVERT_BUDGET_MIB: printbox's convert.memoryBudgetBytes for this run (default: the appliance's own).
  const budget = Number(process.env.BENCH_CONVERT_BUDGET_MIB);
  const pb = await startPrintbox(path.join(tmp, 'pb-data'), budget > 0 ? { convert: { memoryBudgetBytes: budget * 1048576 } } : {});
  const api = printboxClient(pb.base, pb.ca, pb.token);
  const add = async (body: object) => {
    const r = await api.json('POST', '/v1/printers', body);
    if (r.status !== 201) throw new Error(`adding a printer: ${r.status} ${r.text}`);
    return r.json;
  };
  await add({ name: 'pcl', uri: `raw://127.0.0.1:${pclPort}`, accepts: ['application/vnd.hp-pcl'] });
  const pwg = await add({ name: 'pwg', uri: `ipp://127.0.0.1:${pwgPort}/ipp/print` });
  // accepts is learned from the printer's attributes (as on a real network), not typed in.
  for (let i = 0; i < 200; i++) {
    const p = (await api.json('GET', `/v1/printers/${pwg.id}`)).json;
    if (p.accepts) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name: 'printbox',
    pid: pb.pid,
    async submit(printer, doc) {
      const r = await api.postJob({ printer }, doc);
      if (r.status !== 201) throw new Error(`POST /v1/jobs: ${r.status} ${r.text.slice(0, 200)}`);
    },
    async stop() {
      api.close();
      await pb.stop();
    },
  };
}

async function startCupsSide(tmp: string, pclPort: number, pwgPort: number): Promise<Side> {
  const dir = path.join(tmp, 'cups');
  const filesConf = await writeCupsFiles(dir);
  await openToBackends(dir);
  const port = await freePort();
  const conf = ['Listen 127.0.0.1:' + port, 'LogLevel warn', 'Browsing No', 'WebInterface No', 'MaxJobs 0', '<Location />', '  Order allow,deny', '  Allow all', '</Location>', '<Location /admin>', '  Order allow,deny', '  Allow all', '</Location>', '<Policy default>', '  <Limit All>', '    Order deny,allow', '  </Limit>', '</Policy>', ''];
  await fs.writeFile(path.join(dir, 'cupsd.conf'), conf.join('\n'));
  const proc = spawn('cupsd', ['-f', '-c', path.join(dir, 'cupsd.conf'), '-s', filesConf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c));
  const host = `127.0.0.1:${port}`;
  try {
    await waitForPort(port, 15000, proc, 'cupsd');
    await run('lpadmin', ['-h', host, '-p', 'pcl', '-E', '-v', `socket://127.0.0.1:${pclPort}/?snmp=false`, '-m', 'drv:///sample.drv/laserjet.ppd'], { timeout: 30000 });
    // IPP Everywhere: cupsd reads the printer's attributes now and makes the PPD from them.
    await run('lpadmin', ['-h', host, '-p', 'pwg', '-E', '-v', `ipp://127.0.0.1:${pwgPort}/ipp/print`, '-m', 'everywhere'], { timeout: 60000 });
  } catch (e) {
    await stopProcess(proc);
    throw new Error(`cupsd setup failed: ${(e as Error).message} ${err}`);
  }
  const docDir = path.join(tmp, 'cups-docs');
  await fs.mkdir(docDir, { recursive: true });
  let n = 0;
  return {
    name: 'CUPS',
    pid: proc.pid!,
    async submit(printer, doc) {
      // lp reads a file; the benchmark document holds nothing secret.
      const f = path.join(docDir, `doc-${n++}.pdf`);
      await fs.writeFile(f, doc);
      await run('lp', ['-h', host, '-d', printer, f], { timeout: 30000 });
    },
    stop: () => stopProcess(proc),
  };
}

interface Figures {
  ttfb: { pcl: number; pwg: number };
  ppm: number;
  wallMs: number;
  cpuPerPage: number;
  peak: number;
  bytes: { pcl: number; pwg: number };
}

async function measure(side: Side, pcl: Awaited<ReturnType<typeof startPclSink>>, relay: Awaited<ReturnType<typeof startRasterRelay>>, doc: Buffer): Promise<Figures> {
  const ttfb = { pcl: [] as number[], pwg: [] as number[] };
  for (let i = 0; i < reps; i++) {
    for (const [printer, sink] of [['pcl', pcl], ['pwg', relay]] as const) {
      const before = sink.got.length;
      const t0 = performance.now();
      await side.submit(printer, doc);
      // The first document that started after the submit (a request of the job before may still be finishing).
      const mine = () => sink.got.slice(before).find((d) => d.firstAt >= t0);
      await waitFor(`${side.name} ${printer} job`, () => !!mine(), 600000);
      ttfb[printer].push(mine()!.firstAt - t0);
    }
    progress(`${side.name}: one job at a time, round ${i + 1} of ${reps}: PCL ${fmtMs(ttfb.pcl[i])}, PWG ${fmtMs(ttfb.pwg[i])} to the first byte`);
    // Idle means idle: both systems wait for the IPP printer's "completed" (polling) before taking the next job.
    await new Promise((r) => setTimeout(r, 3000));
  }
  const base = { pcl: pcl.got.length, pwg: relay.got.length };
  const cpu0 = cpuSeconds(side.pid);
  const mem = treeRssSampler(side.pid, 10, true); // CUPS's gs is a grandchild (under gstoraster)
  const t0 = performance.now();
  await Promise.all(Array.from({ length: JOBS }, (_, i) => side.submit(i % 2 ? 'pwg' : 'pcl', doc)));
  await waitFor(`${side.name}'s ${JOBS} jobs`, () => pcl.got.length - base.pcl >= JOBS / 2 && relay.got.length - base.pwg >= JOBS / 2, 1800000);
  const end = Math.max(...pcl.got.slice(base.pcl).map((d) => d.lastAt), ...relay.got.slice(base.pwg).map((d) => d.lastAt));
  const wallMs = end - t0;
  const span = (xs: Delivery[]) => xs.map((d) => `${((d.firstAt - t0) / 1000).toFixed(1)}–${((d.lastAt - t0) / 1000).toFixed(1)}`).join(' ');
  progress(`${side.name}: PCL jobs at the printer (s after submit) ${span(pcl.got.slice(base.pcl))}; PWG ${span(relay.got.slice(base.pwg))}`);
  const peak = mem.stop();
  // cupsd's filters and printbox's gs are reaped children: their CPU is in the parent's cutime/cstime by now.
  await new Promise((r) => setTimeout(r, 500));
  const cpu = cpuSeconds(side.pid) - cpu0;
  const pages = JOBS * PAGES;
  const avg = (xs: Delivery[]) => xs.reduce((n, d) => n + d.bytes, 0) / xs.length;
  return {
    ttfb: { pcl: percentile(ttfb.pcl, 50), pwg: percentile(ttfb.pwg, 50) },
    ppm: pages / (wallMs / 60000),
    wallMs,
    cpuPerPage: (cpu * 1000) / pages,
    peak,
    bytes: { pcl: avg(pcl.got.slice(base.pcl)), pwg: avg(relay.got.slice(base.pwg)) },
  };
}

async function main() {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'printbox-bench-convert-'));
  const started = performance.now();
  const cups = (await run('dpkg-query', ['-W', '-f', '${Version}', 'cups']).catch(() => ({ stdout: '?' }))).stdout;
  const filters = (await run('dpkg-query', ['-W', '-f', '${Version}', 'cups-filters']).catch(() => ({ stdout: '?' }))).stdout;
  const gsVersion = (await run('gs', ['--version'])).stdout.trim();
  progress(`conversion bench (${quick ? 'quick' : 'full'}): ${os.cpus().length} cores, CUPS ${cups}, cups-filters ${filters}, Ghostscript ${gsVersion}`);
  // A 20-page document with text and line art on every page, made by gs itself.
  const doc = await gs(['-sDEVICE=pdfwrite', '-sOutputFile=-', '-'], officeDocument(PAGES));
  const eve = await startIppEvePrinter({ formats: ['image/pwg-raster'] });
  const pcl = await startPclSink();
  const relay = await startRasterRelay(eve.port);
  const results: Record<string, Figures> = {};
  let failure: unknown;
  try {
    for (const start of [startPrintboxSide, startCupsSide]) {
      const side = await start(tmp, pcl.port, relay.port);
      try {
        progress(`${side.name} (pid ${side.pid}) is up`);
        results[side.name] = await measure(side, pcl, relay, doc);
        const f = results[side.name];
        progress(`${side.name}: ${JOBS} jobs of ${PAGES} pages in ${(f.wallMs / 1000).toFixed(1)} s: ${f.ppm.toFixed(0)} pages/min, ${f.cpuPerPage.toFixed(0)} ms CPU/page, peak ${fmtMB(f.peak)}`);
      } finally {
        await side.stop();
      }
    }
  } catch (err) {
    failure = err;
  } finally {
    await relay.close();
    await pcl.close();
    await eve.stop();
    await fs.rm(tmp, { recursive: true, force: true });
  }
  const pb = results.printbox;
  const cu = results.CUPS;
  const r = (a?: number, b?: number) => (a && b ? `${(a / b).toFixed(2)}×` : 'n/a');
  const rows: Row[] = pb && cu ? [
    { section: 'D', metric: `pages per minute, ${JOBS} × ${PAGES}-page PDF over two printers (PCL RAW + PWG IPP), end to end`, printbox: pb.ppm.toFixed(0), baseline: `CUPS ${cu.ppm.toFixed(0)}`, ratio: r(pb.ppm, cu.ppm), target: '≥ 2× CUPS', ok: pb.ppm >= 2 * cu.ppm },
    { section: 'D', metric: 'time to first byte at the PCL printer, one job, idle (median)', printbox: fmtMs(pb.ttfb.pcl), baseline: `CUPS ${fmtMs(cu.ttfb.pcl)}`, ratio: r(pb.ttfb.pcl, cu.ttfb.pcl), target: '≤ 0.5× CUPS', ok: pb.ttfb.pcl <= cu.ttfb.pcl / 2 },
    { section: 'D', metric: 'time to first byte at the PWG raster printer, one job, idle (median)', printbox: fmtMs(pb.ttfb.pwg), baseline: `CUPS ${fmtMs(cu.ttfb.pwg)}`, ratio: r(pb.ttfb.pwg, cu.ttfb.pwg), target: '≤ 0.5× CUPS', ok: pb.ttfb.pwg <= cu.ttfb.pwg / 2 },
    { section: 'D', metric: 'CPU per page, server process tree (converters included)', printbox: `${pb.cpuPerPage.toFixed(0)} ms`, baseline: `CUPS ${cu.cpuPerPage.toFixed(0)} ms`, ratio: r(pb.cpuPerPage, cu.cpuPerPage), target: '' },
    { section: 'D', metric: 'peak memory of the server process tree during the ten jobs', printbox: fmtMB(pb.peak), baseline: `CUPS ${fmtMB(cu.peak)}`, ratio: r(pb.peak, cu.peak), target: '' },
    { section: 'D', metric: 'bytes per job at the printer, PCL / PWG raster (CUPS gzips raster for IPP)', printbox: `${fmtMB(pb.bytes.pcl)} / ${fmtMB(pb.bytes.pwg)}`, baseline: `CUPS ${fmtMB(cu.bytes.pcl)} / ${fmtMB(cu.bytes.pwg)}`, ratio: '', target: '' },
  ] : [];
  const took = (performance.now() - started) / 1000;
  const header = [
    `# printbox conversion benchmark (${quick ? 'quick' : 'full'} mode)`,
    '',
    `${new Date().toISOString()} · ${os.cpus().length} × ${os.cpus()[0]?.model.trim()} · node ${process.version} · CUPS ${cups} · cups-filters ${filters} · Ghostscript ${gsVersion} · ${took.toFixed(0)} s`,
    '',
    `Produced by \`npx tsx bench/convert.ts${quick ? ' --quick' : ''}\`. printbox converts with gs (PCL 5 \`ljet4\` at 300 dpi; PWG raster at the printer's resolution closest to 300 dpi, grey for a monochrome printer); CUPS with laserjet.ppd (pdftopdf → gstoraster → rastertohp) and an IPP Everywhere queue (-m everywhere). Everything on one machine, shared with other work: figures move between runs, compare the ratios.`,
    '',
  ].join('\n');
  const body = renderTable(rows) + (failure ? `\n**The run stopped early:** ${(failure as Error).stack ?? failure}\n` : '');
  process.stdout.write('\n' + body);
  await fs.writeFile(path.join(ROOT, 'bench', quick ? 'results-convert-quick.md' : 'results-convert.md'), header + '\n' + body);
  progress(`done in ${took.toFixed(0)} s`);
  if (failure) process.exitCode = 1;
}

await main();
