// A private cupsd: its file layout (own spool, cache, state and logs under one dir) and the daemon on a free port,
// shared by the LPD peer, the driverless-queue test and bench/.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { freePort, stopProcess, waitForPort } from './ports.js';

/** Creates the directories and writes `<dir>/cups-files.conf`; the caller writes its own cupsd.conf. */
export async function writeCupsFiles(dir: string): Promise<string> {
  // ssl: where cupsd makes its self-signed certificate when a client speaks TLS to it (ipps; the benchmark's like-for-like row).
  for (const d of ['spool/tmp', 'cache', 'state', 'log', 'ssl']) await fs.mkdir(path.join(dir, d), { recursive: true });
  const file = path.join(dir, 'cups-files.conf');
  const lines = [
    `ServerRoot ${dir}`,
    `RequestRoot ${dir}/spool`,
    `TempDir ${dir}/spool/tmp`,
    `CacheDir ${dir}/cache`,
    `StateDir ${dir}/state`,
    `ErrorLog ${dir}/log/error_log`,
    `AccessLog ${dir}/log/access_log`,
    `PageLog ${dir}/log/page_log`,
    'SystemGroup root',
    '',
  ];
  await fs.writeFile(file, lines.join('\n'));
  return file;
}

export interface Cupsd {
  pid: number;
  port: number;
  dir: string;
  /** `-h 127.0.0.1:PORT` for lpadmin, lp, lpstat. */
  host: string;
  /** The domain socket it also listens on (`socket: true`), for CUPS_SERVER. */
  socket?: string;
  /** cupsd's error_log so far (for failure messages). */
  log(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Backends run as user lp and open the spooled file themselves: `dir` and every directory between it and the system's
 * temp directory must be searchable by others. The temp directory itself is never touched (an earlier loop here set
 * a direct child's parent — /tmp — to 0755, dropping its sticky, world-writable bits: apt-key could no longer work).
 */
export async function openToBackends(dir: string): Promise<void> {
  const top = path.resolve(os.tmpdir());
  for (let d = path.resolve(dir); d.startsWith(top + path.sep); d = path.dirname(d)) {
    const { mode } = await fs.stat(d);
    await fs.chmod(d, (mode & 0o7777) | 0o055);
  }
}

/**
 * A private cupsd on a free loopback port (own config, spool, state and logs under `dir`; everything allowed from
 * loopback). `conf` adds lines to cupsd.conf (e.g. LogLevel debug); `opts.socket` adds a domain socket listener in
 * `dir` (for cups-lpd, which finds cupsd through CUPS_SERVER); `opts.policy` adds lines to the default policy.
 */
export async function startCupsd(dir: string, conf: string[] = [], opts: { socket?: boolean; policy?: string[] } = {}): Promise<Cupsd> {
  const filesConf = await writeCupsFiles(dir);
  await openToBackends(dir);
  const port = await freePort();
  const socket = opts.socket ? path.join(dir, 'cups.sock') : undefined;
  const lines = [
    `Listen 127.0.0.1:${port}`,
    ...(socket ? [`Listen ${socket}`] : []),
    'LogLevel warn',
    'Browsing No',
    'WebInterface No',
    // The default limit of 500 stored jobs refuses Print-Job (client-error-not-possible) once jobs queue faster than they print.
    'MaxJobs 0',
    ...conf,
    '<Location />',
    '  Order allow,deny',
    '  Allow all',
    '</Location>',
    '<Location /admin>',
    '  Order allow,deny',
    '  Allow all',
    '</Location>',
    '<Policy default>',
    ...(opts.policy ?? []).map((l) => `  ${l}`),
    '  <Limit All>',
    '    Order deny,allow',
    '  </Limit>',
    '</Policy>',
    '',
  ];
  await fs.writeFile(path.join(dir, 'cupsd.conf'), lines.join('\n'));
  const proc = spawn('cupsd', ['-f', '-c', path.join(dir, 'cupsd.conf'), '-s', filesConf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c));
  try {
    await waitForPort(port, 15000, proc, 'cupsd');
  } catch (e) {
    await stopProcess(proc);
    throw new Error(`cupsd did not start: ${(e as Error).message} ${err}`);
  }
  return {
    pid: proc.pid!,
    port,
    dir,
    host: `127.0.0.1:${port}`,
    socket,
    log: async () => err + (await fs.readFile(path.join(dir, 'log/error_log'), 'utf8').catch(() => '')),
    stop: () => stopProcess(proc),
  };
}
