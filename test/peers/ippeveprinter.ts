// Starts a real IPP Everywhere printer (CUPS' ippeveprinter) on a fresh loopback port, keeping every document it receives.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, until } from './ports.js';

export interface IppEvePrinter {
  /** ipp://127.0.0.1:PORT/ipp/print */
  uri: string;
  port: number;
  /** Where ippeveprinter keeps each received document (-k). */
  spoolDir: string;
  /** Everything ippeveprinter printed on stderr so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

export interface IppEveOptions {
  /** document-format-supported, default PDF and PWG raster. */
  formats?: string[];
  name?: string;
  /**
   * Printer attributes that replace ippeveprinter's own (its `-a` attributes file, ipptool syntax), e.g.
   * ['ATTR keyword pwg-raster-document-type-supported black_1']; `formats` is then ippeveprinter's own list
   * (it refuses -f beside -a): application/octet-stream, image/pwg-raster, image/urf.
   */
  attributes?: string[];
}

export function haveIppEvePrinter(): boolean {
  return ['/usr/sbin/ippeveprinter', '/usr/bin/ippeveprinter'].some(existsSync) && ['/usr/bin/dbus-daemon', '/bin/dbus-daemon'].some(existsSync);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * ippeveprinter needs a D-Bus system bus even with `-r off` ("Unable to initialize DNS-SD"), so a private
 * dbus-daemon is started first and named in DBUS_SYSTEM_BUS_ADDRESS; avahi need not run.
 * `-c /bin/true` completes each job at once (without it every job "prints" for 5–15 s).
 */
export async function startIppEvePrinter(opts: IppEveOptions = {}): Promise<IppEvePrinter> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'printbox-ippeve-'));
  const spoolDir = path.join(dir, 'spool');
  await mkdir(spoolDir);
  const bus = path.join(dir, 'bus');
  const children: ChildProcess[] = [];
  let stderr = '';
  const stop = async () => {
    for (const c of children.reverse()) await kill(c);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const dbus = spawn('dbus-daemon', ['--session', `--address=unix:path=${bus}`, '--nofork', '--nopidfile'], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(dbus);
    dbus.stderr!.on('data', (d) => (stderr += `[dbus] ${d}`));
    await until('the private dbus-daemon socket', () => existsSync(bus), 5000);

    const port = await freePort();
    const formats = opts.formats ?? ['application/pdf', 'image/pwg-raster'];
    const args = ['-p', String(port), '-n', 'localhost', '-d', spoolDir, '-k', '-r', 'off', '-c', '/bin/true'];
    if (opts.attributes?.length) {
      // ippeveprinter refuses -f beside -a, and adds its own document-format-supported (octet-stream, PWG raster, URF).
      const conf = path.join(dir, 'attributes.conf');
      await writeFile(conf, opts.attributes.join('\n') + '\n');
      args.push('-a', conf);
    } else args.push('-f', formats.join(','));
    args.push(opts.name ?? 'printbox-test');
    const eve = spawn('ippeveprinter', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      // HOME: ippeveprinter keeps its self-signed TLS certificate (for ipps) under ~/.cups.
      env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${bus}`, HOME: dir },
    });
    children.push(eve);
    eve.stdout!.on('data', (d) => (stderr += d));
    eve.stderr!.on('data', (d) => (stderr += d));
    let exited = false;
    eve.once('exit', () => (exited = true));
    await until(`ippeveprinter on port ${port}`, async () => {
      if (exited) throw new Error(`ippeveprinter exited at start: ${stderr.slice(-2000)}`);
      return canConnect(port);
    }, 10000);
    return { uri: `ipp://127.0.0.1:${port}/ipp/print`, port, spoolDir, log: () => stderr, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export { freePort };
