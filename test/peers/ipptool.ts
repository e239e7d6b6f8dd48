// CUPS' ipptool with its conformance files (cups-ipp-utils), plus the sample documents those files print, which
// Debian does not ship: made here with Ghostscript (PDF, PostScript, JPEG, one PWG raster page copied to every name).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const IPPTOOL_FILES = '/usr/share/cups/ipptool';

export function haveIpptool(): boolean {
  return existsSync('/usr/bin/ipptool') && existsSync(path.join(IPPTOOL_FILES, 'ipp-everywhere.test')) && existsSync('/usr/bin/gs');
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking the event loop (the appliance under test may share this process). */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { ...opts, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: opts.timeout ?? 120000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0, stdout, stderr });
    });
  });
}

const gs = (args: string[]) => run('gs', ['-q', '-dNOPAUSE', '-dBATCH', '-dSAFER', ...args]);

/** A copy of the conformance files with every document they name beside them. */
export async function ipptoolFixtures(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'printbox-ipptool-'));
  for (const f of await fs.readdir(IPPTOOL_FILES)) if (f.endsWith('.test')) await fs.copyFile(path.join(IPPTOOL_FILES, f), path.join(dir, f));
  const text = (label: string) => `/Helvetica findfont 24 scalefont setfont 72 720 moveto (${label}) show showpage`;
  for (const [paper, name] of [['a4', 'document-a4'], ['letter', 'document-letter']]) {
    await gs(['-sDEVICE=pdfwrite', `-sPAPERSIZE=${paper}`, `-sOutputFile=${path.join(dir, `${name}.pdf`)}`, '-c', text(name)]);
    await fs.writeFile(path.join(dir, `${name}.ps`), `%!PS-Adobe-3.0\n%%Pages: 1\n${text(name)}\n%%EOF\n`);
  }
  await gs(['-sDEVICE=jpeg', '-r20', `-sOutputFile=${path.join(dir, 'color.jpg')}`, path.join(dir, 'document-a4.pdf')]);
  await gs(['-sDEVICE=jpeggray', '-r20', `-sOutputFile=${path.join(dir, 'gray.jpg')}`, path.join(dir, 'document-a4.pdf')]);
  const pwg = path.join(dir, 'sample.pwg');
  await gs(['-sDEVICE=pwgraster', '-r30', `-sOutputFile=${pwg}`, path.join(dir, 'document-a4.pdf')]);
  // ipptool opens every FILE when it reads the test file, even in tests it then skips: each name must exist.
  const everywhere = await fs.readFile(path.join(dir, 'ipp-everywhere.test'), 'utf8');
  for (const m of new Set([...everywhere.matchAll(/^\s*FILE\s+(pwg-raster-samples\S+)/gm)].map((x) => x[1]))) {
    await fs.mkdir(path.join(dir, path.dirname(m)), { recursive: true });
    await fs.symlink(pwg, path.join(dir, m));
  }
  return dir;
}

/** `ipptool -t -f FILE uri test` in the fixtures dir; the document for `$filename` is the A4 PDF. */
export function ipptool(dir: string, uri: string, testFile: string, extra: string[] = []): Promise<Run> {
  return run('ipptool', ['-t', '-f', path.join(dir, 'document-a4.pdf'), ...extra, uri, testFile], { cwd: dir, timeout: 300000 });
}
