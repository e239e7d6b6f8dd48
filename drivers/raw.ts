// RAW / AppSocket / JetDirect driver (raw://host:9100): streams the document over one TCP connection, in a PJL ticket where the type allows.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { pipeline } from 'node:stream/promises';
import type { Driver, DriverFactory, OutboundJob, Outcome, PrinterStatus } from './contract.js';
import { buildJobTicket, canCarryPjl, isRepeatable, PjlInfoReader, pjlInfoRequest, pjlLanguageMime, PjlReader, unticketedWarnings, type JobTicket, type PjlInfo, type UStatus } from './pjl.js';
import { hostPort, readParams } from './uri.js';

const PARAMS = [
  { name: 'connectTimeout', type: 'integer', default: 10000, description: 'Milliseconds to wait for the printer to accept the connection' },
  { name: 'closeTimeout', type: 'integer', default: 30000, description: 'Milliseconds to wait, after the last byte, for the printer to close the connection' },
  { name: 'pjl', type: 'boolean', default: true, description: 'Wrap PDF, PostScript and PCL jobs in a PJL job ticket (name, copies, duplex, colour, tray, paper, and orientation for PCL); turn off for printers that print PJL as text (printbox then does not ask the printer about itself with PJL INFO either)' },
  { name: 'stallNotice', type: 'integer', default: 15000, description: 'Milliseconds without the printer taking data (paper out, jam, offline) before the job shows it; the job keeps waiting' },
  { name: 'stallTimeout', type: 'integer', default: 0, description: 'Milliseconds without the printer taking data before the connection is reset and the job retried (0: wait as long as it takes, like CUPS; a retry after a reset may print part of the job twice)' },
  { name: 'confirm', type: 'enum', values: ['none', 'pjl'], default: 'none', description: 'pjl: ask the printer for PJL job status and report the job as confirmed when the printer says it finished printing it' },
  { name: 'confirmTimeout', type: 'integer', default: 60000, description: "Milliseconds to wait, after the last byte, for the printer's PJL job-end status before reporting the job as sent only" },
] as const satisfies Driver['schema']['params'];

/** The code of afterReady's error when the previous job's outcome could not be made durable. */
const NOT_READY = 'PREVIOUS_OUTCOME_NOT_DURABLE';

/**
 * An early connection (opened while the previous job's outcome is being made durable) held until `ready`. Nothing
 * is written before then. A cancel or a failed record resets it (the printer throws an empty reset connection away);
 * a printer that dropped it meanwhile gets a new one.
 */
export async function afterReady(sock: net.Socket, ready: Promise<void>, signal: AbortSignal, reconnect: () => Promise<net.Socket>): Promise<net.Socket> {
  let dropped = false;
  const onDrop = () => {
    dropped = true;
  };
  const reset = () => {
    if (!sock.destroyed) sock.resetAndDestroy();
  };
  let onAbort!: () => void;
  const aborted = new Promise<'aborted'>((r) => (onAbort = () => r('aborted')));
  sock.on('error', onDrop);
  sock.once('close', onDrop);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    if (signal.aborted || (await Promise.race([ready, aborted])) === 'aborted') {
      reset();
      throw Object.assign(new Error('cancelled'), { code: 'ABORT_ERR' });
    }
  } catch (err) {
    reset();
    if ((err as { code?: string }).code === 'ABORT_ERR') throw err;
    throw Object.assign(new Error((err as Error).message), { code: NOT_READY });
  } finally {
    signal.removeEventListener('abort', onAbort);
    sock.removeListener('close', onDrop);
  }
  // The error listener stays on a dropped socket: a late error of a socket given up on is not a crash.
  if (!dropped && !sock.destroyed && !sock.readableEnded) {
    sock.removeListener('error', onDrop);
    return sock;
  }
  sock.destroy();
  return reconnect();
}

/** Network errors that mean "try again later" rather than "this job is bad". */
const TRANSIENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

export function connect(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(Object.assign(new Error('cancelled'), { code: 'ABORT_ERR' }));
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => fail(Object.assign(new Error(`no connection to ${host}:${port} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    const onAbort = () => fail(Object.assign(new Error('cancelled'), { code: 'ABORT_ERR' }));
    signal.addEventListener('abort', onAbort, { once: true });
    function fail(err: Error) {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      reject(err);
    }
    sock.once('error', fail);
    sock.once('connect', () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      sock.removeListener('error', fail);
      sock.setNoDelay(true);
      resolve(sock);
    });
  });
}

/**
 * Resolves when the peer closes its side (or the socket closes), rejects after `ms`.
 * A reset while waiting rejects too: a printer that resets had unread bytes, so the job may be incomplete.
 */
export function peerClosed(sock: net.Socket, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sock.destroyed || sock.readableEnded) return resolve();
    const timer = setTimeout(() => finish(Object.assign(new Error(`printer did not close the connection within ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
    // A cancelled job must free its printer now, not after the close timeout.
    const onAbort = () => finish(Object.assign(new Error('cancelled'), { code: 'ABORT_ERR' }));
    signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (err?: Error) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      sock.removeListener('end', onClose);
      sock.removeListener('close', onClose);
      sock.removeListener('error', finish);
      if (err) reject(err);
      else resolve();
    };
    const onClose = () => finish();
    sock.once('end', onClose);
    sock.once('close', onClose);
    sock.once('error', finish);
    sock.resume(); // drain anything the printer says (status bytes) so 'end' can arrive
  });
}

export function networkOutcome(err: unknown, what: string): Outcome {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'seal_broken') return { kind: 'fail', reason: e.message };
  if (e?.code === 'ABORT_ERR') return { kind: 'retry', reason: 'cancelled while sending' };
  if (e?.code && TRANSIENT.has(e.code)) return { kind: 'retry', reason: `${what}: ${e.message}` };
  return { kind: 'retry', reason: `${what}: ${e?.message ?? String(err)}` };
}

/** What goes on the wire for one job: an optional PJL ticket around the document, sent `times` times. */
interface WirePlan {
  ticket?: JobTicket;
  times: number;
  warnings: string[];
}

function planJob(job: OutboundJob, usePjl: boolean, confirm: boolean): WirePlan {
  if (usePjl && canCarryPjl(job.contentType)) {
    const { warnings, ...ticket } = buildJobTicket(job, confirm);
    return { ticket, times: 1, warnings };
  }
  const why = canCarryPjl(job.contentType) ? 'the PJL job ticket is turned off for this printer (pjl=false)' : `a ${job.contentType} document has no job ticket on a raw connection`;
  const warnings = unticketedWarnings(job.contentType, job.options, why);
  if (confirm) warnings.push(`confirm=pjl needs a PJL job ticket; this ${job.contentType} job can only be reported as sent`);
  // Labels, receipts and text stay valid when repeated, so copies are carried by sending the document n times.
  const times = isRepeatable(job.contentType) ? Math.max(1, job.options.copies) : 1;
  return { times, warnings };
}

/** `onBroken` runs before a document error reaches the socket, so the printer sees a reset and not a clean end. */
async function* wireBytes(job: OutboundJob, plan: WirePlan, onBroken: () => void): AsyncGenerator<Buffer> {
  if (plan.ticket) yield plan.ticket.header;
  try {
    for (let i = 0; i < plan.times; i++) yield* job.open();
  } catch (err) {
    onBroken();
    throw err;
  }
  if (plan.ticket) yield plan.ticket.trailer;
}

/** The same wire bytes for a document already in memory. */
function wireBuffers(doc: readonly Buffer[], plan: WirePlan): Buffer[] {
  const out: Buffer[] = [];
  if (plan.ticket) out.push(plan.ticket.header);
  for (let i = 0; i < plan.times; i++) out.push(...doc);
  if (plan.ticket) out.push(plan.ticket.trailer);
  return out;
}

/**
 * Writes buffers and half-closes; resolves once the kernel has taken every byte. A small job does not need
 * a stream pipeline (whose set-up and teardown cost more than the send), only its completion and its errors.
 */
export function writeAll(sock: net.Socket, bufs: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      sock.removeListener('finish', onFinish);
      reject(err);
    };
    const onFinish = () => {
      sock.removeListener('error', onError);
      resolve();
    };
    // Destroyed before 'finish' (a reset by us or the printer) without an error event is still a failure.
    const onClose = () => {
      if (!sock.writableFinished) onError(Object.assign(new Error('connection closed before the document was sent'), { code: 'ECONNRESET' }));
    };
    sock.once('error', onError);
    sock.once('finish', onFinish);
    sock.once('close', onClose);
    sock.cork();
    for (const b of bufs) sock.write(b);
    sock.end();
    sock.uncork();
  });
}

/**
 * Watches a sending socket for progress (bytes the kernel took). After `noticeMs` without any, reports the
 * stall on the job; after `timeoutMs` (0: never) destroys the socket with ETIMEDOUT so the job is retried.
 */
export function watchStall(sock: net.Socket, job: OutboundJob, noticeMs: number, timeoutMs: number): () => void {
  const taken = () => sock.bytesWritten - sock.writableLength;
  let last = taken();
  let since = Date.now();
  let reported = false;
  const every = Math.max(100, Math.min(1000, noticeMs / 4));
  const timer = setInterval(() => {
    const now = taken();
    if (now !== last || (sock.writableLength === 0 && !sock.writableEnded)) {
      // Moving (or nothing of ours waiting to be taken: we are the slow side, reading the document).
      last = now;
      since = Date.now();
      if (reported) job.status?.(null);
      reported = false;
      return;
    }
    const idle = Date.now() - since;
    if (!reported && idle >= noticeMs) {
      reported = true;
      job.status?.(`the printer has taken no data for ${Math.round(idle / 1000)} s (out of paper, jammed or offline?); still waiting`);
    }
    if (timeoutMs > 0 && idle >= timeoutMs) sock.destroy(Object.assign(new Error(`the printer took no data for ${Math.round(idle / 1000)} s`), { code: 'ETIMEDOUT' }));
  }, every);
  timer.unref();
  return () => {
    clearInterval(timer);
    if (reported) job.status?.(null);
  };
}

/**
 * Listens to the back channel from the first byte on (the START status arrives while we still send)
 * and settles when the printer reports END for our job name, closes, resets, or the time runs out.
 */
function watchJobEnd(sock: net.Socket, name: string) {
  let ended: UStatus | undefined;
  let notify: (() => void) | undefined;
  const reader = new PjlReader((s) => {
    if (s.category === 'JOB' && s.fields.NAME === name && s.event && s.event !== 'START') {
      ended = s;
      notify?.();
    }
  });
  sock.on('data', (c: Buffer) => reader.push(c));

  function outcomeOf(s: UStatus): Outcome {
    const pages = s.fields.PAGES ? `, ${s.fields.PAGES} page(s)` : '';
    if (s.event === 'END') return { kind: 'confirmed', detail: `printer reported job "${name}" ended (PJL USTATUS JOB END${pages})` };
    // CANCELED and friends: the printer got the job but did not print it all; never report that as confirmed.
    return { kind: 'sent', detail: `printer reported job "${name}" ${s.event}${pages}` };
  }

  return {
    wait(ms: number, signal: AbortSignal): Promise<Outcome> {
      if (ended) return Promise.resolve(outcomeOf(ended));
      if (sock.readableEnded || sock.destroyed) return Promise.resolve({ kind: 'sent', detail: 'printer closed the connection without reporting the job ended' });
      return new Promise((resolve) => {
        const timer = setTimeout(() => done({ kind: 'sent', detail: `no PJL job status from the printer within ${ms} ms` }), ms);
        const onEnd = () => done({ kind: 'sent', detail: 'printer closed the connection without reporting the job ended' });
        const onError = (err: Error) => done(networkOutcome(err, 'printer reset the connection before reporting the job ended'));
        const onAbort = () => done({ kind: 'sent', detail: 'stopped waiting for the printer to confirm the job' });
        function done(o: Outcome) {
          clearTimeout(timer);
          notify = undefined;
          sock.removeListener('end', onEnd);
          sock.removeListener('close', onEnd);
          sock.removeListener('error', onError);
          signal.removeEventListener('abort', onAbort);
          resolve(o);
        }
        notify = () => done(outcomeOf(ended!));
        sock.once('end', onEnd);
        sock.once('close', onEnd);
        sock.once('error', onError);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}

/** How long a probe waits for a printer's PJL answers: a printer without PJL never answers, and must not hold us up. */
const PJL_ANSWER_MS = 3000;

/**
 * Asks the printer about itself (PJL INFO, INQUIRE) on an open connection; undefined when it does not answer in
 * time. The request is a PJL-only job: a PJL printer prints nothing for it.
 */
function askPjl(sock: net.Socket, ms: number, signal: AbortSignal): Promise<PjlInfo | undefined> {
  const tag = `printbox-${randomBytes(6).toString('hex')}`;
  const reader = new PjlInfoReader(tag);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      sock.removeListener('data', onData);
      sock.removeListener('end', done);
      sock.removeListener('close', done);
      sock.removeListener('error', done);
      resolve(reader.spoke ? reader.info : undefined);
    };
    const onData = (c: Buffer) => {
      reader.push(c);
      if (reader.done) done();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    sock.on('data', onData);
    sock.once('end', done);
    sock.once('close', done);
    sock.once('error', done);
    sock.write(pjlInfoRequest(tag));
  });
}

/** The probe's answer from what the printer said through PJL. */
function pjlStatus(info: PjlInfo): PrinterStatus {
  const formats = [...new Set(info.languages.map(pjlLanguageMime).filter((m): m is string => !!m))];
  return {
    reachable: true,
    state: info.online === false ? 'stopped' : 'idle',
    ...(info.online === false && info.display && { reasons: [info.display] }),
    ...(formats.length && { formats }),
    supported: { pjl: true, model: info.model, languages: info.languages, duplex: info.duplex, resolution: info.resolution, color: info.color },
    detail: info.model ? `PJL: ${info.model}` : 'PJL',
  };
}

export const createRawDriver: DriverFactory = () => {
  const driver: Driver = {
    scheme: 'raw',
    // A TCP connect costs the printer nothing and prints nothing: it is opened while the previous outcome is recorded.
    connectsEarly: true,
    schema: { scheme: 'raw', title: 'RAW / AppSocket (port 9100)', uriTemplate: 'raw://host:9100', params: [...PARAMS] },

    async send(job: OutboundJob, signal: AbortSignal): Promise<Outcome> {
      let p: Record<string, string | number | boolean>, host: string, port: number;
      try {
        p = readParams(job.uri, [...PARAMS]);
        ({ host, port } = hostPort(job.uri, 9100));
      } catch (err) {
        return { kind: 'fail', reason: (err as Error).message };
      }
      const plan = planJob(job, p.pjl as boolean, p.confirm === 'pjl');
      for (const w of plan.warnings) job.warn(w);

      let sock: net.Socket;
      try {
        sock = await connect(host, port, p.connectTimeout as number, signal);
        if (job.ready) sock = await afterReady(sock, job.ready, signal, () => connect(host, port, p.connectTimeout as number, signal));
      } catch (err) {
        if ((err as { code?: string }).code === NOT_READY) return { kind: 'retry', reason: `the previous job's outcome could not be recorded: ${(err as Error).message}` };
        return networkOutcome(err, `cannot connect to ${host}:${port}`);
      }
      const watch = p.confirm === 'pjl' && plan.ticket ? watchJobEnd(sock, plan.ticket.name) : undefined;
      // pipeline would close a failed or cancelled socket gracefully (FIN), which a printer takes as a
      // complete job; a reset makes it throw the partial job away.
      // Reset only while the connection is open both ways: once our FIN is out the printer has the whole job,
      // and a reset on a half-closed socket makes Node 20 spin at exit.
      const reset = () => {
        if (!sock.destroyed && !sock.readableEnded && !sock.writableEnded) sock.resetAndDestroy();
      };
      try {
        signal.addEventListener('abort', reset, { once: true });
        // Both ways end the socket (half-close) after the last byte; the back channel stays readable.
        const stopWatch = watchStall(sock, job, p.stallNotice as number, p.stallTimeout as number);
        const send = job.bytes ? writeAll(sock, wireBuffers(job.bytes, plan)) : pipeline(wireBytes(job, plan, reset), sock, { signal });
        await send.finally(() => {
          stopWatch();
          signal.removeEventListener('abort', reset);
        });
        if (watch) return await watch.wait(p.confirmTimeout as number, signal);
        await peerClosed(sock, p.closeTimeout as number, signal);
        return { kind: 'sent' };
      } catch (err) {
        reset(); // a broken or unfinished document must not look like a complete one to the printer
        return networkOutcome(err, `sending to ${host}:${port} failed`);
      } finally {
        sock.destroy();
      }
    },

    async probe(uri: URL, signal = AbortSignal.timeout(10000)): Promise<PrinterStatus> {
      let p: Record<string, string | number | boolean>, host: string, port: number;
      try {
        p = readParams(uri, [...PARAMS]);
        ({ host, port } = hostPort(uri, 9100));
      } catch (err) {
        return { reachable: false, detail: (err as Error).message };
      }
      let sock: net.Socket;
      try {
        sock = await connect(host, port, Math.min(p.connectTimeout as number, 5000), signal);
      } catch (err) {
        return { reachable: false, detail: (err as Error).message };
      }
      try {
        if (!p.pjl) return { reachable: true, state: 'idle', detail: 'connected (pjl=false: the printer was not asked anything)' };
        const info = await askPjl(sock, PJL_ANSWER_MS, signal);
        if (!info) return { reachable: true, detail: `connected; no PJL answer within ${PJL_ANSWER_MS} ms (a printer without PJL, or busy printing)` };
        return pjlStatus(info);
      } finally {
        // A reset, not a close: a printer that takes every closed connection as a job throws a reset one away,
        // so a probe never makes an empty job (nor, on a printer without PJL, prints our question).
        if (sock.readableEnded) sock.destroy();
        else if (!sock.destroyed) sock.resetAndDestroy();
      }
    },
  };
  return driver;
};
