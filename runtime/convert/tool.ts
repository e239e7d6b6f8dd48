// Runs one converter process (gs, qpdf): document on fd 3 or stdin, result on stdout, killed past its time limit.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

export class ConvertError extends Error {
  constructor(readonly code: 'convert_failed' | 'convert_timeout' | 'convert_unsupported' | 'convert_too_large' | 'convert_no_ram' | 'convert_cancelled', message: string) {
    super(message);
  }
}

export interface ToolRun {
  proc: ChildProcess;
  stdout: Readable;
  stdin: Writable | null;
  /** Resolves when the process ended well; rejects with a ConvertError carrying the tool's own message. */
  done: Promise<void>;
  kill(): void;
}

/** Last lines of a tool's stderr, cut short: its own words for why a document failed (never the document's content). */
function toolMessage(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^(INFO|DEBUG):/.test(l));
  return lines.slice(-4).join(' ').slice(0, 400);
}

export function runTool(cmd: string, args: string[], opts: { fd3?: number; stdin?: boolean | number; timeoutMs: number; signal?: AbortSignal; what: string; tmpDir?: string }): ToolRun {
  const proc = spawn(cmd, args, {
    stdio: [typeof opts.stdin === 'number' ? opts.stdin : opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', ...(opts.fd3 !== undefined ? [opts.fd3] : [])],
    // Ghostscript writes temporary files only where TMPDIR says; a RAM-backed one, so nothing ever reaches disk.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TMPDIR: opts.tmpDir ?? '/dev/shm', LC_ALL: 'C' },
  });
  let stderr = '';
  proc.stderr!.setEncoding('latin1');
  proc.stderr!.on('data', (d: string) => {
    stderr = (stderr + d).slice(-8192);
  });
  let why: ConvertError | null = null;
  const kill = (e?: ConvertError) => {
    why ??= e ?? new ConvertError('convert_cancelled', `${opts.what} was stopped`);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  const timer = setTimeout(() => kill(new ConvertError('convert_timeout', `${opts.what} took longer than ${Math.round(opts.timeoutMs / 1000)} s and was killed`)), opts.timeoutMs);
  const onAbort = () => kill(new ConvertError('convert_cancelled', `${opts.what} was cancelled`));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  const done = new Promise<void>((resolve, reject) => {
    proc.once('error', (err) => {
      why ??= new ConvertError('convert_failed', `${opts.what} could not start: ${err.message}`);
    });
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (why) return reject(why);
      if (code === 0) return resolve();
      reject(new ConvertError('convert_failed', `${opts.what} failed (${signal ?? `exit ${code}`}): ${toolMessage(stderr) || 'no message'}`));
    });
  });
  done.catch(() => {}); // observed by whoever reads the result; never an unhandled rejection
  proc.stdin?.on('error', () => {}); // a tool that exits early closes its stdin: its exit status says why
  return { proc, stdout: proc.stdout!, stdin: proc.stdin, done, kill: () => kill() };
}

/** Runs a tool to the end and returns its stdout (small outputs: qpdf's page count). */
export async function toolOutput(cmd: string, args: string[], opts: { fd3?: number; timeoutMs: number; signal?: AbortSignal; what: string; tmpDir?: string }): Promise<string> {
  const run = runTool(cmd, args, opts);
  let out = '';
  run.stdout.setEncoding('latin1');
  run.stdout.on('data', (d: string) => {
    if (out.length < 65536) out += d;
  });
  await run.done;
  return out;
}
