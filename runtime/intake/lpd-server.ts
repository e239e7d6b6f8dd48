// LPD server (RFC 1179) for legacy senders: receive-job (control and data files in either order, each data file
// sealed as it arrives, the last acknowledgement only after the job is accepted durably), queue state, remove-jobs.
// Queue name = printer name; only printers with intake.lpd and an `allow` range that holds the sender.
import net from 'node:net';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { JobRecord } from '../spool/jobs.js';
import { isFinal } from '../spool/jobs.js';
import type { Received, Spool } from '../spool/contract.js';
import type { PrinterRecord } from '../system/state.js';
import { AddressRanges } from '../system/address-ranges.js';
import type { JobIntake } from './accept.js';
import type { PrinterDirectory } from './options.js';
import { ProtocolError, SocketReader, TcpListener } from './socket-reader.js';

export interface LegacyDeps {
  intake: JobIntake;
  printers: PrinterDirectory;
  spool: Pick<Spool, 'records'>;
  cancel(jobId: string): Promise<JobRecord>;
  log: Logger;
}

const ACK = Buffer.from([0]);
const NAK = Buffer.from([1]);
const IDLE_MS = 60_000; // a sender that says nothing for a minute is gone
const MAX_CONTROL = 64 * 1024;
/** Print commands of a control file (RFC 1179 §7): a lower-case letter, then the data file's name. */
const PRINT_LINE = /^[cdfglnoprtv]/;

/** A sender's jobs are known by where they came from (LPD and RAW have no tokens). */
export const legacyOwner = (kind: 'lpd' | 'raw', address: string | undefined) => `${kind}:${(address ?? '?').replace(/^::ffff:/, '')}`;

/** Whether a printer takes legacy jobs of this kind from this address. */
export function admits(p: PrinterRecord | undefined, kind: 'lpd' | 'raw', address: string | undefined): boolean {
  if (!p?.intake) return false;
  if (kind === 'lpd' && !p.intake.lpd) return false;
  return new AddressRanges(p.intake.allow).has(address);
}

interface ControlFile {
  host?: string;
  user?: string;
  title?: string;
  sourceName?: string;
  /** Data file name → number of print lines naming it (the copies). */
  prints: Map<string, number>;
}

export function parseControlFile(text: string): ControlFile {
  const c: ControlFile = { prints: new Map() };
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [cmd, arg] = [line[0], line.slice(1).replace(/\r$/, '')];
    if (cmd === 'H') c.host = arg;
    else if (cmd === 'P') c.user = arg;
    else if (cmd === 'J') c.title = arg;
    else if (cmd === 'N') c.sourceName ??= arg;
    else if (PRINT_LINE.test(cmd) && arg) c.prints.set(arg, (c.prints.get(arg) ?? 0) + 1);
  }
  return c;
}

export class LpdServer {
  private tcp = new TcpListener((s) => this.connection(s));

  constructor(private deps: LegacyDeps) {}

  listen(port: number, host: string): Promise<number> {
    return this.tcp.listen(port, host);
  }

  close(): Promise<void> {
    return this.tcp.close();
  }

  private connection(socket: net.Socket): void {
    const address = socket.remoteAddress;
    // Nobody outside every printer's allow list gets as far as a byte of protocol.
    if (!this.deps.printers.list().some((p) => admits(p, 'lpd', address))) {
      this.deps.log.warn({ address }, 'LPD connection refused: the address is in no printer\'s intake.allow');
      socket.resetAndDestroy(); // a reset, so the sender sees a refusal rather than a finished job
      return;
    }
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    socket.on('error', () => undefined); // reported through the reader
    this.serve(socket, address).catch((err) => {
      this.deps.log.info({ address, err: (err as Error).message }, 'LPD connection ended with an error');
      socket.destroy();
    });
  }

  private async serve(socket: net.Socket, address: string | undefined): Promise<void> {
    const r = new SocketReader(socket);
    const line = await r.line();
    if (line === undefined) return void socket.end();
    const cmd = line.charCodeAt(0);
    const [queue, ...args] = line.slice(1).split(/[ \t]+/);
    const printer = this.deps.printers.find(queue);
    const allowed = printer && printer.name === queue && admits(printer, 'lpd', address) ? printer : undefined;
    switch (cmd) {
      case 1: // print any waiting jobs: ours print on their own
        return void socket.end();
      case 2:
        if (!allowed) return void socket.end(NAK);
        socket.write(ACK);
        return this.receiveJob(r, socket, allowed, address);
      case 3:
      case 4:
        return void socket.end(allowed ? this.queueState(allowed, cmd === 4, args) : `${queue}: unknown queue or not allowed from ${address}\n`);
      case 5:
        if (allowed) await this.removeJobs(allowed, address, args[0], args.slice(1));
        return void socket.end();
      default:
        throw new ProtocolError(`unknown LPD command ${cmd}`);
    }
  }

  /** Subcommands until the sender closes: control and data files in any order; jobs accepted when both are in. */
  private async receiveJob(r: SocketReader, socket: net.Socket, printer: PrinterRecord, address: string | undefined): Promise<void> {
    let control: ControlFile | undefined;
    let data = new Map<string, Received>();
    const discardAll = async () => {
      for (const rec of data.values()) await this.deps.intake.discard(rec).catch(() => undefined);
      data = new Map();
      control = undefined;
    };
    try {
      for (;;) {
        const line = await r.line();
        if (line === undefined) break;
        const sub = line.charCodeAt(0);
        if (sub === 1) {
          await discardAll();
          continue;
        }
        const [countText, name = ''] = line.slice(1).split(' ');
        const count = Number(countText);
        if ((sub !== 2 && sub !== 3) || !/^\d+$/.test(countText) || !name) throw new ProtocolError(`bad receive-job subcommand ${JSON.stringify(line.slice(0, 80))}`);
        if (sub === 2) {
          if (count > MAX_CONTROL) return void socket.end(NAK);
          socket.write(ACK);
          control = parseControlFile((await r.bytes(count)).toString('utf8'));
          await r.bytes(1); // the NUL that ends every file
        } else {
          socket.write(ACK);
          try {
            // Count 0: some senders do not know the length and send until they close (then the NUL is absent).
            const received = await this.deps.intake.receive(Readable.from(r.stream(count || undefined), { objectMode: false }));
            const replaced = data.get(name); // the same data file again replaces the first
            if (replaced) await this.deps.intake.discard(replaced);
            data.set(name, received);
          } catch (err) {
            this.deps.log.warn({ address, printer: printer.name, err: (err as Error).message }, 'LPD data file not taken');
            return void socket.end(NAK);
          }
          if (count) await r.bytes(1);
        }
        // Every data file the control file prints is in: make them jobs, then answer the last file.
        if (control && control.prints.size && [...control.prints.keys()].every((n) => data.has(n))) {
          const ok = await this.acceptJobs(printer, control, data, address);
          data = new Map(); // accepted (or discarded on refusal) inside acceptJobs
          control = undefined;
          socket.write(ok ? ACK : NAK);
          if (!ok) return void socket.end();
        } else {
          socket.write(ACK);
        }
      }
    } finally {
      await discardAll(); // a job left half-sent is never printed
    }
    socket.end();
  }

  private async acceptJobs(printer: PrinterRecord, c: ControlFile, data: Map<string, Received>, address: string | undefined): Promise<boolean> {
    const { intake, log } = this.deps;
    let ok = true;
    for (const [name, copies] of c.prints) {
      const received = data.get(name)!;
      data.delete(name);
      if (!ok) {
        await intake.discard(received);
        continue;
      }
      try {
        const valid = intake.validate({ printer: printer.id, title: c.title ?? c.sourceName ?? name, user: c.user, copies });
        await intake.accept(valid, received, legacyOwner('lpd', address));
      } catch (err) {
        ok = false;
        log.warn({ address, printer: printer.name, err: (err as Error).message }, 'LPD job refused');
        await intake.discard(received).catch(() => undefined);
      }
    }
    for (const rest of data.values()) await intake.discard(rest).catch(() => undefined); // sent but never printed by the control file
    return ok;
  }

  /** RFC 1179 §5.3/5.4: the printer's unfinished jobs, short (one line each) or long. */
  private queueState(p: PrinterRecord, long: boolean, filter: string[]): string {
    const jobs = [...this.deps.spool.records()]
      .filter((j) => j.printerId === p.id && !isFinal(j.state))
      .filter((j) => !filter.length || filter.includes(j.user) || filter.includes(String(j.seq)))
      .sort((a, b) => a.seq - b.seq);
    const state = p.stopped ? `${p.name} is stopped: ${p.stopped.reason}` : jobs.some((j) => j.state === 'sending') ? `${p.name} is ready and printing` : `${p.name} is ready`;
    if (!jobs.length) return `${state}\nno entries\n`;
    const rank = (i: number, j: JobRecord) => (j.state === 'sending' ? 'active' : ordinal(i + 1));
    if (long) {
      return `${state}\n` + jobs.map((j, i) => `\n${j.user}: ${rank(i, j)}${' '.repeat(Math.max(1, 40 - j.user.length - rank(i, j).length))}[job ${j.seq}]\n        ${j.title.padEnd(40)}${j.size} bytes\n`).join('');
    }
    const rows = jobs.map((j, i) => `${rank(i, j).padEnd(7)}${j.user.slice(0, 10).padEnd(11)}${String(j.seq).padEnd(5)}${j.title.slice(0, 37).padEnd(38)}${j.size} bytes`);
    return `${state}\nRank   Owner      Job  Files                                 Total Size\n${rows.join('\n')}\n`;
  }

  /** RFC 1179 §5.5: the agent's own jobs (same sender address and user); the list names job numbers or users. */
  private async removeJobs(p: PrinterRecord, address: string | undefined, agent: string | undefined, list: string[]): Promise<void> {
    if (!agent) return;
    const owner = legacyOwner('lpd', address);
    const mine = [...this.deps.spool.records()].filter((j) => j.printerId === p.id && !isFinal(j.state) && j.owner === owner && j.user === agent);
    // No list: the agent's active job (or the first one waiting), as lprm with no argument means.
    const chosen = list.length ? mine.filter((j) => list.includes(String(j.seq)) || list.includes(j.user)) : mine.sort((a, b) => a.seq - b.seq).slice(0, 1);
    for (const j of chosen) {
      await this.deps.cancel(j.id).catch((err) => this.deps.log.info({ jobID: j.id, err: (err as Error).message }, 'LPD remove-jobs: not cancelled'));
      this.deps.log.info({ jobID: j.id, printer: p.name, by: `${agent}@${owner}` }, 'LPD remove-jobs cancelled a job');
    }
  }
}

function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
}
