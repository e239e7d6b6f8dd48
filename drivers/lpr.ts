// LPR / LPD driver (lpr://host[:port]/queue, RFC 1179): one receive-job per print job, control file then data file, every step acknowledged.
import net from 'node:net';
import os from 'node:os';
import type { Driver, DriverFactory, DriverStore, OutboundJob, Outcome, PrinterStatus } from './contract.js';
import { networkOutcome } from './raw.js';
import { hostPort, readParams, UriParamError } from './uri.js';

const PARAMS = [
  { name: 'reservedPort', type: 'boolean', default: true, description: 'Connect from a reserved source port (721–731) as RFC 1179 asks; falls back to any port when the appliance may not bind one or all are busy' },
  { name: 'connectTimeout', type: 'integer', default: 10000, description: 'Milliseconds to wait for the LPD server to accept the connection' },
  { name: 'ackTimeout', type: 'integer', default: 30000, description: 'Milliseconds to wait for each acknowledgement byte from the LPD server' },
  { name: 'banner', type: 'boolean', default: false, description: 'Ask the server to print a banner page (control file L line)' },
  { name: 'class', type: 'string', description: 'Class name for the banner page (control file C line)' },
  { name: 'order', type: 'enum', values: ['control-first', 'data-first'], default: 'control-first', description: 'Which file of the job goes first. control-first is what CUPS (lpd backend) and LPRng send and lets a print server know the job before its data arrives; cups-lpd and BSD lpd accept both. data-first is what BSD lpr sends, for servers that act on the control file the moment it arrives' },
] as const satisfies Driver['schema']['params'];

export const LPD_PORT = 515;
/** RFC 1179 §3.1: source ports 721–731 inclusive. */
export const RESERVED_PORTS = Array.from({ length: 11 }, (_, i) => 721 + i);
const STORE_KEY = 'nextJobNumber';
/** Options an LPD control file has no line for. */
const UNCARRIED = ['duplex', 'color', 'media', 'tray', 'pageRanges', 'finishings', 'orientation'] as const;

export class LprError extends Error {
  constructor(
    readonly code: 'lpd_nack' | 'lpd_closed' | 'document_size_mismatch' | 'ETIMEDOUT' | 'ABORT_ERR',
    message: string,
  ) {
    super(message);
  }
}

/** Print-line letter (RFC 1179 §7): 'l' passes control characters untouched, so every binary format uses it. */
export function printLetter(contentType: string): 'l' | 'o' | 'f' {
  if (contentType === 'postscript') return 'o';
  if (contentType === 'text') return 'f';
  return 'l';
}

/** A control-file operand: no control characters (a newline would start a forged line), at most `max` bytes of UTF-8. */
export function field(value: string, max: number): string {
  let s = value.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  while (Buffer.byteLength(s) > max) s = s.slice(0, -1);
  return s;
}

/** Host part of the file names: letters, digits, dots and dashes only (servers use it in spool paths). */
export function fileHost(hostname = os.hostname()): string {
  return hostname.replace(/[^A-Za-z0-9.-]/g, '').slice(0, 31) || 'printbox';
}

export interface ControlFile {
  name: string; // cfA<nnn><host>
  dataName: string; // dfA<nnn><host>
  text: string;
}

export function buildControlFile(job: OutboundJob, jobNumber: number, opts: { host?: string; banner?: boolean; class?: string } = {}): ControlFile {
  const host = fileHost(opts.host);
  const nnn = String(jobNumber).padStart(3, '0');
  const dataName = `dfA${nnn}${host}`;
  const user = field(job.user, 31) || 'printbox';
  const title = field(job.title, 99) || job.id;
  const lines = [`H${field(opts.host ?? os.hostname(), 31) || host}`, `P${user}`, `J${title}`];
  if (opts.class) lines.push(`C${field(opts.class, 31)}`);
  if (opts.banner) lines.push(`L${user}`);
  // RFC 1179 has no copies count: the same print line repeated is the documented way to ask for n copies.
  const copies = Math.max(1, Math.floor(job.options.copies || 1));
  for (let i = 0; i < copies; i++) lines.push(`${printLetter(job.contentType)}${dataName}`);
  lines.push(`U${dataName}`, `N${field(job.title, 131) || job.id}`);
  return { name: `cfA${nnn}${host}`, dataName, text: lines.join('\n') + '\n' };
}

/** Job numbers 000–999, persisted so that a restart does not reuse the number of a job the server may still hold. */
export function jobNumbers(store: DriverStore) {
  let next: number | undefined;
  return async function take(): Promise<number> {
    if (next === undefined) {
      const saved = store.get<number>(STORE_KEY);
      next = Number.isInteger(saved) && saved! >= 0 ? saved! % 1000 : 0;
    }
    const n = next;
    next = (n + 1) % 1000; // taken synchronously, so concurrent printers never share a number
    await store.set(STORE_KEY, next);
    return n;
  };
}

function uncarriedWarnings(job: OutboundJob): string[] {
  const o = job.options as unknown as Record<string, unknown>;
  return UNCARRIED.filter((k) => o[k] !== undefined && !(Array.isArray(o[k]) && (o[k] as unknown[]).length === 0)).map((k) => {
    const v = o[k];
    return `${k}=${Array.isArray(v) ? v.join(',') : String(v)} not carried: an LPR control file (RFC 1179) has no line for it`;
  });
}

function queueOf(uri: URL): string {
  const queue = decodeURIComponent(uri.pathname.replace(/^\/+/, '').replace(/\/+$/, ''));
  if (!queue) throw new UriParamError(`printer URI ${uri.href} names no queue (lpr://host/queue)`);
  if (/[\s\x00-\x1f\x7f/]/.test(queue)) throw new UriParamError(`LPD queue name "${queue}" may not contain spaces, slashes or control characters`);
  return queue;
}

const errno = (message: string, code: string) => Object.assign(new Error(message), { code });

function connectOnce(host: string, port: number, localPort: number | undefined, timeoutMs: number, signal: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(errno('cancelled', 'ABORT_ERR'));
    const sock = net.connect({ host, port, ...(localPort ? { localPort } : {}) });
    const timer = setTimeout(() => fail(errno(`no connection to ${host}:${port} within ${timeoutMs} ms`, 'ETIMEDOUT')), timeoutMs);
    const onAbort = () => fail(errno('cancelled', 'ABORT_ERR'));
    signal.addEventListener('abort', onAbort, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
    function fail(err: Error) {
      done();
      sock.destroy();
      reject(err);
    }
    sock.once('error', fail);
    sock.once('connect', () => {
      done();
      sock.removeListener('error', fail);
      sock.setNoDelay(true);
      resolve(sock);
    });
  });
}

/** Why a reserved port could not be used: no privilege, or the port (or the 4-tuple, in TIME_WAIT) is taken. */
const NO_PRIVILEGE = new Set(['EACCES', 'EPERM']);
const PORT_TAKEN = new Set(['EADDRINUSE', 'EADDRNOTAVAIL']);

/**
 * Connects from the first free reserved port, starting after the last one used (the previous connection's port sits
 * in TIME_WAIT for a minute). Never from the destination port: a loopback server on 721–731 would be dialled by itself.
 */
function reservedConnector() {
  let mayBind = true;
  let cursor = 0;
  return async function connectFrom(host: string, port: number, reserved: boolean, timeoutMs: number, signal: AbortSignal) {
    if (reserved && mayBind) {
      for (let i = 0; i < RESERVED_PORTS.length; i++) {
        const local = RESERVED_PORTS[(cursor + i) % RESERVED_PORTS.length];
        if (local === port) continue;
        try {
          const sock = await connectOnce(host, port, local, timeoutMs, signal);
          cursor = (cursor + i + 1) % RESERVED_PORTS.length;
          return { sock, reservedPort: true };
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? '';
          if (NO_PRIVILEGE.has(code)) {
            mayBind = false; // no CAP_NET_BIND_SERVICE: remember, so later jobs go straight to any port
            break;
          }
          if (!PORT_TAKEN.has(code)) throw err;
        }
      }
    }
    return { sock: await connectOnce(host, port, undefined, timeoutMs, signal), reservedPort: false };
  };
}

/** Buffers what the server says, so acknowledgement bytes sent early (a server refusing mid-file) are not lost. */
class AckReader {
  private buf = Buffer.alloc(0);
  private ended = false;
  private failure?: Error;
  private wake?: () => void;

  constructor(private sock: net.Socket) {
    sock.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake?.();
    });
    sock.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    sock.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    sock.on('error', (err) => {
      this.failure = err;
      this.wake?.();
    });
  }

  private wait(ms: number, signal: AbortSignal, ready: () => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (ready()) finish();
        else if (this.failure) finish(this.failure);
        else if (this.ended) finish(new LprError('lpd_closed', `LPD server closed the connection while ${what}`));
      };
      const timer = setTimeout(() => finish(new LprError('ETIMEDOUT', `no answer from the LPD server within ${ms} ms while ${what}`)), ms);
      const onAbort = () => finish(new LprError('ABORT_ERR', 'cancelled'));
      signal.addEventListener('abort', onAbort, { once: true });
      const finish = (err?: Error) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.wake = undefined;
        if (err) reject(err);
        else resolve();
      };
      this.wake = check;
      check();
    });
  }

  /** The next acknowledgement byte: 0 is yes, anything else is no. */
  async ack(ms: number, signal: AbortSignal, what: string): Promise<number> {
    await this.wait(ms, signal, () => this.buf.length > 0, what);
    const b = this.buf[0];
    this.buf = this.buf.subarray(1);
    return b;
  }

  /** Whatever text the server adds after a refusal (LPRng explains; cups-lpd and BSD lpd just close), briefly. */
  async rest(ms: number): Promise<string> {
    await this.wait(ms, new AbortController().signal, () => this.ended || this.buf.length > 4096, 'reading').catch(() => {});
    return field(this.buf.toString('utf8'), 200);
  }

  /** Everything until the server closes (send-queue-state answers), at most `limit` bytes. */
  async all(ms: number, signal: AbortSignal, limit = 65536): Promise<string> {
    await this.wait(ms, signal, () => this.ended || this.buf.length >= limit, 'reading the queue state');
    return this.buf.subarray(0, limit).toString('utf8');
  }
}

function write(sock: net.Socket, chunk: Buffer | string, signal?: AbortSignal): Promise<void> {
  if (sock.destroyed) return Promise.reject(new LprError('lpd_closed', 'LPD server closed the connection'));
  if (sock.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      sock.removeListener('drain', onDrain);
      sock.removeListener('close', onClose);
      sock.removeListener('error', done);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new LprError('lpd_closed', 'LPD server closed the connection while receiving the document'));
    const onAbort = () => done(new LprError('ABORT_ERR', 'cancelled'));
    sock.once('drain', onDrain);
    sock.once('close', onClose);
    sock.once('error', done);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Streams the document: exactly `job.size` bytes, or an error (the server trusts the count we announced). */
async function sendDocument(sock: net.Socket, job: OutboundJob, signal: AbortSignal): Promise<void> {
  let sent = 0;
  const doc = job.open();
  const onAbort = () => doc.destroy(new LprError('ABORT_ERR', 'cancelled'));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of doc as AsyncIterable<Buffer>) {
      sent += chunk.length;
      if (sent > job.size) throw new LprError('document_size_mismatch', `document is longer than its recorded size of ${job.size} bytes`);
      await write(sock, chunk, signal);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    doc.destroy();
  }
  if (sent !== job.size) throw new LprError('document_size_mismatch', `document ended after ${sent} of its recorded ${job.size} bytes`);
}

function lprOutcome(err: unknown, where: string): Outcome {
  if (err instanceof LprError) {
    if (err.code === 'document_size_mismatch') return { kind: 'fail', reason: err.message };
    if (err.code === 'ABORT_ERR') return { kind: 'retry', reason: 'cancelled while sending' };
    return { kind: 'retry', reason: `${where}: ${err.message}` };
  }
  return networkOutcome(err, where);
}

export const createLprDriver: DriverFactory = (ctx) => {
  const takeJobNumber = jobNumbers(ctx.store);
  const connectFrom = reservedConnector();

  async function open(uri: URL, p: Record<string, string | number | boolean>, signal: AbortSignal) {
    const { host, port } = hostPort(uri, LPD_PORT);
    const { sock, reservedPort } = await connectFrom(host, port, p.reservedPort as boolean, p.connectTimeout as number, signal);
    if (!reservedPort && p.reservedPort) ctx.log.debug({ host, port }, 'lpr: no reserved source port available, connected from an ordinary port');
    return { sock, reader: new AckReader(sock), host, port };
  }

  const driver: Driver = {
    scheme: 'lpr',
    schema: { scheme: 'lpr', title: 'LPR / LPD (RFC 1179)', uriTemplate: 'lpr://host:515/queue', params: [...PARAMS] },

    async send(job: OutboundJob, signal: AbortSignal): Promise<Outcome> {
      let p: Record<string, string | number | boolean>, queue: string;
      try {
        p = readParams(job.uri, [...PARAMS]);
        queue = queueOf(job.uri);
        hostPort(job.uri, LPD_PORT);
      } catch (err) {
        return { kind: 'fail', reason: (err as Error).message };
      }
      for (const w of uncarriedWarnings(job)) job.warn(w);
      const jobNumber = await takeJobNumber();
      const control = buildControlFile(job, jobNumber, { banner: p.banner as boolean, class: p.class as string | undefined });
      const ackMs = p.ackTimeout as number;

      let conn: Awaited<ReturnType<typeof open>>;
      try {
        conn = await open(job.uri, p, signal);
      } catch (err) {
        return networkOutcome(err, `cannot connect to LPD server ${job.uri.host}`);
      }
      const { sock, reader, host, port } = conn;
      const where = `sending to LPD queue "${queue}" on ${host}:${port}`;
      let step = `asking for queue "${queue}"`;
      const expectAck = async (what: string) => {
        step = what;
        const ack = await reader.ack(ackMs, signal, what);
        if (ack !== 0) throw new LprError('lpd_nack', `LPD server said no (ack ${ack}) to ${what}`);
      };
      try {
        await write(sock, `\x02${queue}\n`);
        step = `asking for queue "${queue}"`;
        const ack = await reader.ack(ackMs, signal, step);
        if (ack !== 0) {
          // Both cups-lpd and BSD lpd answer an unknown queue with ack 1 here (tried against both). cups-lpd gives the
          // same answer for a queue that is not shared or not accepting jobs, and when it cannot reach cupsd: the
          // byte cannot tell these apart, so the reason names all of them and the printer's error policy decides.
          const said = await reader.rest(300);
          return { kind: 'fail', reason: `LPD server ${host}:${port} refused queue "${queue}" (ack ${ack}): no such queue, or it does not accept jobs${said ? `; server said: ${said}` : ''}` };
        }
        const sendControl = async () => {
          const bytes = Buffer.from(control.text, 'utf8');
          await write(sock, `\x02${bytes.length} ${control.name}\n`);
          await expectAck('the control file header');
          await write(sock, Buffer.concat([bytes, Buffer.alloc(1)]));
          await expectAck('the control file');
        };
        const sendData = async () => {
          await write(sock, `\x03${job.size} ${control.dataName}\n`);
          await expectAck(`the data file header (${job.size} bytes)`);
          step = 'the document';
          await sendDocument(sock, job, signal);
          await write(sock, Buffer.alloc(1));
          await expectAck('the data file');
        };
        if (p.order === 'data-first') {
          await sendData();
          await sendControl();
        } else {
          await sendControl();
          await sendData();
        }
        // Closing our side is what makes the server queue the job (cups-lpd submits it to CUPS on end of input).
        sock.end();
        await reader.all(Math.min(ackMs, 5000), signal, 4096).catch(() => {});
        return { kind: 'sent', detail: `LPD server ${host}:${port} accepted job ${String(jobNumber).padStart(3, '0')} on queue "${queue}"` };
      } catch (err) {
        // A reset makes every LPD server drop the half-received job instead of queueing a truncated one. Not once
        // either side has ended: there is nothing left to drop, and Node 20 never finishes closing a socket reset
        // after its shutdown began (the process then spins at exit).
        if (!sock.destroyed && !sock.readableEnded && !sock.writableEnded) sock.resetAndDestroy();
        return lprOutcome(err, `${where} (at ${step})`);
      } finally {
        sock.destroy();
      }
    },

    /** send-queue-state (short): reachable, and the server's own words about the queue. */
    async probe(uri: URL, signal = AbortSignal.timeout(5000)): Promise<PrinterStatus> {
      let conn: Awaited<ReturnType<typeof open>> | undefined;
      try {
        const p = readParams(uri, [...PARAMS]);
        const queue = queueOf(uri);
        conn = await open(uri, p, signal);
        await write(conn.sock, `\x03${queue}\n`);
        const text = (await conn.reader.all(p.ackTimeout as number, signal)).trim();
        return { reachable: true, state: stateOf(text), detail: text };
      } catch (err) {
        return { reachable: false, detail: (err as Error).message };
      } finally {
        conn?.sock.destroy();
      }
    },
  };
  return driver;
};

/** Servers word their queue listings differently; only the unambiguous cases get a state. */
function stateOf(text: string): string | undefined {
  if (/no entries/i.test(text)) return 'idle';
  if (/unknown printer|unable to get printer|no such (queue|printer)/i.test(text)) return 'stopped';
  if (/\bactive\b|printing/i.test(text)) return 'processing';
  return undefined;
}
