// Serial driver (serial:///dev/ttyUSB0?baud=9600): streams the document down a serial line, paced by the line's flow control.
import fs from 'node:fs';
import type { SerialPort } from 'serialport';
import type { Driver, DriverContext, DriverFactory, FoundPrinter, OutboundJob, Outcome, PrinterStatus } from './contract.js';
import { isRepeatable, unticketedWarnings } from './pjl.js';
import { readParams } from './uri.js';

const PARAMS = [
  { name: 'baud', type: 'integer', default: 9600, description: 'Line speed in bits per second (e.g. 9600, 19200, 38400, 115200)' },
  { name: 'parity', type: 'enum', values: ['none', 'even', 'odd', 'mark', 'space'], default: 'none', description: 'Parity bit (mark and space exist on Windows only)' },
  { name: 'dataBits', type: 'enum', values: ['5', '6', '7', '8'], default: '8', description: 'Data bits per character' },
  { name: 'stopBits', type: 'enum', values: ['1', '1.5', '2'], default: '1', description: 'Stop bits per character (1.5 exists on Windows only)' },
  { name: 'flow', type: 'enum', values: ['none', 'rtscts', 'xonxoff'], default: 'none', description: 'Flow control the printer uses to say "wait": RTS/CTS wires or XON/XOFF characters' },
  { name: 'openTimeout', type: 'integer', default: 5000, description: 'Milliseconds to wait for the port to open' },
  { name: 'drainTimeout', type: 'integer', default: 60000, description: 'Milliseconds to wait, after the last byte was handed over, for the line to transmit everything' },
  { name: 'stallTimeout', type: 'integer', default: 0, description: 'Milliseconds the printer may hold the line busy (paper out, XOFF) before the job is retried later; 0 waits as long as it takes' },
  { name: 'keepOpen', type: 'integer', default: 5000, description: 'Milliseconds the port stays open after a job, so back-to-back jobs share one open line; 0 closes it after every job' },
] as const satisfies Driver['schema']['params'];

/** What a serial-port error means for the job; codes are ours, the library only gives messages. */
type PortErrorCode = 'port_missing' | 'port_busy' | 'port_denied' | 'port_gone' | 'port_setting' | 'port_timeout' | 'port_stalled' | 'serial_unavailable' | 'cancelled' | 'port_error';

export class SerialPortError extends Error {
  constructor(
    readonly code: PortErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** bindings-cpp reports errno text ("No such file or directory, cannot open …"), not codes. */
export function classify(err: unknown, path: string): SerialPortError {
  if (err instanceof SerialPortError) return err;
  const e = err as NodeJS.ErrnoException & { disconnected?: boolean };
  const msg = e?.message ?? String(err);
  if (e?.code === 'ABORT_ERR') return new SerialPortError('cancelled', 'cancelled while sending');
  if (e?.code === 'ENOENT' || /No such file or directory/i.test(msg)) return new SerialPortError('port_missing', `serial port ${path} does not exist (unplugged or wrong path)`);
  if (/Cannot lock port/i.test(msg)) return new SerialPortError('port_busy', `serial port ${path} is in use by another program`);
  if (e?.code === 'EACCES' || /Permission denied/i.test(msg)) return new SerialPortError('port_denied', `no permission to open ${path} (the service user needs the dialout group)`);
  if (/^Invalid (parity|stop bits|data bits|baud)/i.test(msg) || /baud ?rate/i.test(msg)) return new SerialPortError('port_setting', `serial port ${path} refused the line settings: ${msg}`);
  if (e?.disconnected || ['EIO', 'ENXIO', 'EBADF', 'ENODEV'].includes(e?.code ?? '') || /bad file descriptor|input\/output error|no such device/i.test(msg))
    return new SerialPortError('port_gone', `serial port ${path} went away while sending (${msg})`);
  return new SerialPortError('port_error', `serial port ${path}: ${msg}`);
}

/** Line settings are the only permanent errors: every later attempt would fail the same way until the printer is reconfigured. */
function outcomeOf(err: unknown, path: string): Outcome {
  if ((err as NodeJS.ErrnoException)?.code === 'seal_broken') return { kind: 'fail', reason: (err as Error).message };
  const e = classify(err, path);
  return e.code === 'port_setting' ? { kind: 'fail', reason: e.message } : { kind: 'retry', reason: e.message };
}

interface LineSettings {
  path: string;
  baudRate: number;
  parity: 'none' | 'even' | 'odd' | 'mark' | 'space';
  dataBits: 5 | 6 | 7 | 8;
  stopBits: 1 | 1.5 | 2;
  rtscts: boolean;
  xon: boolean;
  xoff: boolean;
}

/** Device path and line settings from the URI; throws SerialPortError('port_setting') for what can never open. */
export function lineSettings(uri: URL, p: Record<string, string | number | boolean>): LineSettings {
  // serial://dev/ttyUSB0 would make "dev" a host; only the path names the device.
  if (uri.hostname) throw new SerialPortError('port_setting', `serial URI ${uri.href} has a host; write the device path after three slashes: serial:///dev/ttyUSB0`);
  const path = decodeURIComponent(uri.pathname);
  if (!path || path === '/') throw new SerialPortError('port_setting', `serial URI ${uri.href} names no device, e.g. serial:///dev/ttyUSB0`);
  const baudRate = p.baud as number;
  if (baudRate <= 0) throw new SerialPortError('port_setting', `URI parameter baud must be a positive number, got ${baudRate}`);
  const parity = p.parity as LineSettings['parity'];
  const stopBits = Number(p.stopBits) as LineSettings['stopBits'];
  // termios has neither mark/space parity (serialport's POSIX binding refuses them) nor 1.5 stop bits.
  if (process.platform !== 'win32' && (parity === 'mark' || parity === 'space')) throw new SerialPortError('port_setting', `parity=${parity} is not supported by serial ports on ${process.platform}`);
  if (process.platform !== 'win32' && stopBits === 1.5) throw new SerialPortError('port_setting', `stopBits=1.5 is not supported by serial ports on ${process.platform}`);
  const flow = p.flow as string;
  return { path, baudRate, parity, dataBits: Number(p.dataBits) as LineSettings['dataBits'], stopBits, rtscts: flow === 'rtscts', xon: flow === 'xonxoff', xoff: flow === 'xonxoff' };
}

let serialport: Promise<typeof import('serialport')> | undefined;
/** Loaded on first use, so a missing native binding only affects serial printers, never the appliance start. */
function loadSerialport(): Promise<typeof import('serialport')> {
  serialport ??= import('serialport').catch((err: Error) => {
    serialport = undefined;
    throw new SerialPortError('serial_unavailable', `serial support is not available on this system: ${err.message}`);
  });
  return serialport;
}

const abortError = () => Object.assign(new Error('cancelled'), { code: 'ABORT_ERR' });

/** Opens the port with a lock (so two jobs never interleave on one line), bounded by `timeoutMs` and `signal`. */
async function openPort(line: LineSettings, timeoutMs: number, signal: AbortSignal): Promise<SerialPort> {
  const { SerialPort } = await loadSerialport();
  if (signal.aborted) throw abortError();
  const port = new SerialPort({ ...line, autoOpen: false, lock: true, hupcl: true });
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => finish(new SerialPortError('port_timeout', `serial port ${line.path} did not open within ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => finish(abortError());
    signal.addEventListener('abort', onAbort, { once: true });
    function finish(err: Error | null) {
      if (settled) {
        if (!err) port.close(() => {}); // opened after we gave up: let go of it
        return;
      }
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(port);
    }
    port.open((err) => finish(err));
  });
}

/**
 * Follows a port for the length of a job: the first error or unexpected close is kept and ends every wait,
 * because a stream that broke while we were reading the document has no one else to tell.
 */
class PortWatch {
  failure?: Error;
  private wake = new Set<(err: Error) => void>();

  constructor(
    private port: SerialPort,
    private path: string,
  ) {
    port.on('error', (err) => this.fail(err));
    port.on('close', (err?: Error | null) => this.fail(err ?? new SerialPortError('port_gone', `serial port ${path} closed while sending`)));
  }

  private fail(err: Error) {
    this.failure ??= err;
    for (const w of this.wake) w(this.failure);
  }

  check() {
    if (this.failure) throw this.failure;
  }

  /** Waits for `start` to call back, or for failure, cancellation, or `ms` (0 = no limit). */
  wait(start: (done: (err?: Error | null) => void) => void, ms: number, signal: AbortSignal, onTimeout: () => Error): Promise<void> {
    this.check();
    if (signal.aborted) return Promise.reject(abortError());
    return new Promise((resolve, reject) => {
      const timer = ms > 0 ? setTimeout(() => finish(onTimeout()), ms) : undefined;
      const onAbort = () => finish(abortError());
      const finish = (err?: Error | null) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.wake.delete(finish);
        if (err) reject(err);
        else resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.wake.add(finish);
      start(finish);
    });
  }
}

/** Bounded, error-swallowing close: the outcome is already decided, a slow tty close must not hold the job. */
function closePort(port: SerialPort, discard: boolean, ms = 2000): Promise<void> {
  return new Promise((resolve) => {
    if (!port.isOpen) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      resolve();
    }
    const close = () => (port.isOpen ? port.close(done) : done());
    // Discarding what the kernel still holds keeps a cancelled or broken job from trickling out after we gave up.
    if (discard) port.flush(close);
    else close();
  });
}

/** Modem lines (DTR/RTS) wake some printers; a pty or a three-wire adapter has none, and says so with ENOTTY. */
function raiseModemLines(port: SerialPort, log: DriverContext['log'], path: string): Promise<void> {
  return new Promise((resolve) =>
    port.set({ dtr: true, rts: true }, (err) => {
      if (err && !/Inappropriate ioctl/i.test(err.message)) log.debug({ path, err: err.message }, 'could not raise DTR/RTS');
      resolve();
    }),
  );
}

/** Hands the document to the port chunk by chunk, waiting for 'drain' whenever the port's buffer is full. */
async function streamDocument(job: OutboundJob, times: number, port: SerialPort, watch: PortWatch, stallMs: number, signal: AbortSignal, path: string) {
  const stalled = () => new SerialPortError('port_stalled', `printer on ${path} held the line busy for more than ${stallMs} ms`);
  for (let copy = 0; copy < times; copy++) {
    const doc = job.open();
    try {
      for await (const chunk of doc) {
        watch.check();
        if (signal.aborted) throw abortError();
        if (!port.write(chunk)) await watch.wait((done) => port.once('drain', () => done()), stallMs, signal, stalled);
      }
    } finally {
      doc.destroy();
    }
  }
}

/** Which device a path names right now: a replugged adapter or a restarted pty bridge gets a new one behind the same link. */
function deviceOf(path: string): string | undefined {
  try {
    const st = fs.statSync(path);
    return `${st.rdev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * An open port kept between jobs. Opening a port flushes it (serialport's open calls tcflush(TCIOFLUSH)); on a
 * real UART that is harmless after tcdrain, but on a pty, or a USB adapter with its own buffer, the flush can
 * still discard the tail of the job before, which the other end had not read yet. Keeping the line open while
 * jobs follow each other never flushes between them, and saves the open/close cost per job.
 */
interface HeldLine {
  port: SerialPort;
  key: string;
  device?: string;
  timer: NodeJS.Timeout;
}

export const createSerialDriver: DriverFactory = (ctx) => {
  const held = new Map<string, HeldLine>();

  /** Takes the held port for this line if it is still open on the same device with the same settings. */
  function takeHeld(line: LineSettings): HeldLine | undefined {
    const h = held.get(line.path);
    if (!h) return undefined;
    held.delete(line.path);
    clearTimeout(h.timer);
    h.port.removeAllListeners('close');
    if (h.port.isOpen && h.key === JSON.stringify(line) && h.device !== undefined && h.device === deviceOf(line.path)) return h;
    void closePort(h.port, false);
    return undefined;
  }

  /** Keeps a port that just finished a job open for `ms`, then closes it; an error or close while idle drops it. */
  function hold(port: SerialPort, line: LineSettings, ms: number, device: string | undefined) {
    if (ms <= 0 || !port.isOpen) return closePort(port, false);
    const drop = () => {
      if (held.get(line.path)?.port !== port) return;
      held.delete(line.path);
      clearTimeout(h.timer);
      void closePort(port, false);
    };
    const h: HeldLine = { port, key: JSON.stringify(line), device, timer: setTimeout(drop, ms) };
    h.timer.unref();
    port.on('close', drop);
    held.set(line.path, h);
  }

  const driver: Driver = {
    scheme: 'serial',
    schema: { scheme: 'serial', title: 'Serial port (RS-232, USB serial adapter)', uriTemplate: 'serial:///dev/ttyUSB0?baud=9600', params: [...PARAMS] },

    async send(job: OutboundJob, signal: AbortSignal): Promise<Outcome> {
      let p: Record<string, string | number | boolean>, line: LineSettings;
      try {
        p = readParams(job.uri, [...PARAMS]);
        line = lineSettings(job.uri, p);
      } catch (err) {
        return { kind: 'fail', reason: (err as Error).message };
      }
      const why = 'a serial line carries the document bytes only';
      for (const w of unticketedWarnings(job.contentType, job.options, why)) job.warn(w);
      // Labels, receipts and text stay valid when repeated, so copies are carried by sending the document n times.
      const times = isRepeatable(job.contentType) ? Math.max(1, job.options.copies) : 1;

      const kept = takeHeld(line);
      let port = kept?.port;
      let device = kept?.device;
      if (!port) {
        try {
          port = await openPort(line, p.openTimeout as number, signal);
          device = deviceOf(line.path);
        } catch (err) {
          return outcomeOf(err, line.path);
        }
      }
      const watch = new PortWatch(port, line.path);
      let done = false;
      try {
        await raiseModemLines(port, ctx.log, line.path);
        await streamDocument(job, times, port, watch, p.stallTimeout as number, signal, line.path);
        const drainMs = p.drainTimeout as number;
        const notDrained = () => new SerialPortError('port_stalled', `printer on ${line.path} did not take the last bytes within ${drainMs} ms`);
        await watch.wait((cb) => port.drain(cb), drainMs, signal, notDrained);
        done = true;
        return { kind: 'sent' };
      } catch (err) {
        return outcomeOf(err, line.path);
      } finally {
        port.removeAllListeners('close');
        port.removeAllListeners('error');
        port.on('error', () => {}); // errors while idle or closing mean nothing now; the next job sees a dead port
        if (done) await hold(port, line, p.keepOpen as number, device);
        else await closePort(port, true);
      }
    },

    async close(): Promise<void> {
      const ports = [...held.values()];
      held.clear();
      for (const h of ports) clearTimeout(h.timer);
      await Promise.all(ports.map((h) => closePort(h.port, false)));
    },

    async probe(uri: URL, signal = AbortSignal.timeout(5000)): Promise<PrinterStatus> {
      let line: LineSettings;
      try {
        line = lineSettings(uri, readParams(uri, [...PARAMS]));
      } catch (err) {
        return { reachable: false, detail: (err as Error).message };
      }
      // The port we keep open between jobs is ours and idle.
      if (held.get(line.path)?.port.isOpen) return { reachable: true, state: 'idle' };
      try {
        const port = await openPort(line, 5000, signal);
        await closePort(port, false);
        return { reachable: true, state: 'idle' };
      } catch (err) {
        const e = classify(err, line.path);
        // A locked port exists and is attached; someone (often our own queue) is printing on it.
        if (e.code === 'port_busy') return { reachable: true, state: 'processing', detail: e.message };
        return { reachable: false, detail: e.message };
      }
    },

    async *discover(): AsyncIterable<FoundPrinter> {
      let ports: Awaited<ReturnType<typeof SerialPort.list>>;
      try {
        const { SerialPort } = await loadSerialport();
        ports = await SerialPort.list();
      } catch (err) {
        ctx.log.warn({ err: (err as Error).message }, 'cannot list serial ports');
        return;
      }
      for (const port of ports) {
        const label = [port.manufacturer, (port as { product?: string }).product].filter(Boolean).join(' ');
        yield {
          id: `serial:${port.path}`,
          name: label ? `${label} (${port.path})` : port.path,
          uri: `serial://${port.path}?baud=9600`,
          driver: 'serial',
          info: { manufacturer: port.manufacturer, serialNumber: port.serialNumber, vendorId: port.vendorId, productId: port.productId, pnpId: port.pnpId },
        };
      }
    },
  };
  return driver;
};
