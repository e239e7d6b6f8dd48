// A real LPD on loopback for LPR tests: cups-lpd (behind socat) in front of a private cupsd whose raw queue forwards to a TCP sink.
//
// const lpd = await startCupsLpd();          // queue 'q', fresh ports and temp dirs
// ... send to lpr://127.0.0.1:${lpd.port}/${lpd.queue} ...
// await lpd.sink.waitForJobs(1, 10000);      // what the "printer" behind CUPS received
// await lpd.waitForJob('title', 10000);     // CUPS' own record: job-name, job-originating-user-name, number-of-documents
// await lpd.stop();
//
// The cupsd is private (own cupsd.conf/cups-files.conf, spool, cache, state and log dirs in a temp dir, own domain
// socket and TCP port), so it neither needs nor disturbs a system cupsd. Debian packages: cups, cups-client,
// cups-ipp-utils (ipptool), socat.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startSink, type Sink } from './tcp-sink.js';
import { freePort, waitForPort, stopProcess } from './ports.js';
import { startCupsd } from './cupsd.js';
import { run as runTool } from './ipptool.js';


const run = promisify(execFile);
export const CUPS_LPD = '/usr/lib/cups/daemon/cups-lpd';
/** CUPS' lpd backend (cups-daemon): a one-shot LPD client, what a CUPS server sends to an LPD printer. */
export const CUPS_LPD_BACKEND = '/usr/lib/cups/backend/lpd';

/** Sends `file` to an LPD server's queue with CUPS' lpd backend; `code` 0 means the server acknowledged the job. */
export function lpdSend(host: string, port: number, queue: string, file: string, opts: { order?: string; user?: string; title?: string } = {}): ReturnType<typeof runTool> {
  const uri = `lpd://${host}:${port}/${queue}?reserve=none&order=${opts.order ?? 'control,data'}&contimeout=10`;
  return runTool(CUPS_LPD_BACKEND, ['1', opts.user ?? 'nurse', opts.title ?? 'ward chart', '1', '', file], { env: { ...process.env, DEVICE_URI: uri }, timeout: 60000 });
}

export interface CupsJob {
  id: number;
  name: string;
  user: string;
  documents: number;
  state: string;
}

export interface CupsLpd {
  port: number;
  queue: string;
  sink: Sink;
  dir: string;
  /** All jobs CUPS knows on the queue (completed ones included), as CUPS recorded them. */
  jobs(): Promise<CupsJob[]>;
  /** Waits until CUPS lists a completed job with this job-name (the LPR J line). */
  waitForJob(name: string, timeoutMs: number): Promise<CupsJob>;
  stop(): Promise<void>;
}

// Get-Jobs answers from cupsd's cache for jobs whose attributes it unloaded (job-name then comes back empty);
// Get-Job-Attributes loads the job, so names are read one job at a time.
const IPP_REQUEST = (operation: string, extra: string) => `{
  NAME "${operation}"
  OPERATION ${operation}
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR naturalLanguage attributes-natural-language en
  ATTR uri printer-uri $uri
${extra}
  ATTR keyword requested-attributes job-id,job-name,job-originating-user-name,number-of-documents,job-state
  STATUS successful-ok
  DISPLAY job-id
  DISPLAY job-name
  DISPLAY job-originating-user-name
  DISPLAY number-of-documents
  DISPLAY job-state
}
`;
const GET_JOBS = IPP_REQUEST('Get-Jobs', '  ATTR keyword which-jobs all');
const GET_JOB = IPP_REQUEST('Get-Job-Attributes', '  ATTR integer job-id $job_id');

/** ipptool -c prints CSV; names may be quoted and contain commas. */
function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

export async function startCupsLpd(opts: { queue?: string } = {}): Promise<CupsLpd> {
  const queue = opts.queue ?? 'q';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'printbox-lpd-'));
  const procs: ChildProcess[] = [];
  let sink: Sink | undefined;
  const logs: string[] = [];
  const keepLog = (p: ChildProcess, name: string) => {
    p.stdout?.on('data', (c: Buffer) => logs.push(`${name}: ${c}`));
    p.stderr?.on('data', (c: Buffer) => logs.push(`${name}: ${c}`));
  };

  const stops: (() => Promise<void>)[] = [];
  let cupsLog = async () => '';
  const stop = async () => {
    for (const p of procs.reverse()) await stopProcess(p);
    for (const s of stops) await s();
    await sink?.close();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    // Job names and owners are private by default; the test reads them back, so they must be visible.
    const cupsd = await startCupsd(dir, ['DefaultShared Yes', 'PreserveJobHistory Yes', 'ErrorPolicy abort-job'], {
      socket: true,
      policy: ['JobPrivateAccess all', 'JobPrivateValues none', 'SubscriptionPrivateAccess all', 'SubscriptionPrivateValues none'],
    });
    stops.push(() => cupsd.stop());
    cupsLog = () => cupsd.log();
    const ippPort = cupsd.port;
    await writeFile(path.join(dir, 'get-jobs.test'), GET_JOBS);
    await writeFile(path.join(dir, 'get-job.test'), GET_JOB);
    const env = { ...process.env, CUPS_SERVER: cupsd.socket!, IPP_PORT: String(ippPort) };

    sink = await startSink({ keepBytes: false });
    // -m raw prints a deprecation warning in CUPS 2.4 but is the only way to pass bytes through untouched.
    await run('lpadmin', ['-p', queue, '-E', '-v', `socket://127.0.0.1:${sink.port}`, '-m', 'raw', '-o', 'printer-is-shared=true'], { env, timeout: 10000 });

    const port = await freePort();
    // socat forks one cups-lpd per connection, as inetd would; cups-lpd finds the private cupsd through CUPS_SERVER.
    // nofork hands cups-lpd the TCP socket itself as stdin/stdout (like inetd): relayed through a socat pipe, the
    // one-byte refusal of an unknown queue was lost about one time in three when cups-lpd exited right after it.
    const lpd = spawn('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr`, `EXEC:${CUPS_LPD} -n -o document-format=application/octet-stream,nofork`], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    procs.push(lpd);
    keepLog(lpd, 'socat');
    await waitForPort(port, 5000, lpd, 'socat (cups-lpd)');

    const ipp = async (file: string, vars: string[] = []): Promise<CupsJob[]> => {
      const { stdout } = await run('ipptool', ['-c', ...vars, `ipp://127.0.0.1:${ippPort}/printers/${queue}`, path.join(dir, file)], { env, timeout: 10000 });
      return stdout
        .trim()
        .split('\n')
        .slice(1)
        .filter(Boolean)
        .map(parseCsvLine)
        .map(([id, name, user, documents, state]) => ({ id: Number(id), name, user, documents: Number(documents), state }));
    };
    const jobs = async (): Promise<CupsJob[]> => {
      const list = await ipp('get-jobs.test');
      return (await Promise.all(list.map((j) => ipp('get-job.test', ['-d', `job_id=${j.id}`])))).flat();
    };

    return {
      port,
      queue,
      sink,
      dir,
      jobs,
      async waitForJob(name, timeoutMs) {
        const until = Date.now() + timeoutMs;
        let last: CupsJob[] = [];
        while (Date.now() < until) {
          last = await jobs();
          const job = last.find((j) => j.name === name && j.state === 'completed');
          if (job) return job;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`CUPS did not complete a job named "${name}" within ${timeoutMs} ms; its jobs: ${JSON.stringify(last)}\n${logs.join('')}${await cupsLog()}`);
      },
      stop,
    };
  } catch (err) {
    const cups = await cupsLog();
    await stop();
    throw new Error(`could not start cupsd + cups-lpd: ${(err as Error).message}\n${logs.join('')}${cups}`);
  }
}

export { freePort };
