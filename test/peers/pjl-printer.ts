// A small PJL-speaking printer on loopback: records each job and answers USTATUS JOB START/END and the status
// readback questions (INFO ID, INFO CONFIG, INFO STATUS, INQUIRE, ECHO) like an HP LaserJet.
//
// Modes: 'answer' sends START when it reads JOB NAME and END (after `endDelayMs`) when it reads EOJ NAME,
// each only if the job turned on `@PJL USTATUS JOB=ON`; 'silent' never answers; 'wrong-name' answers END
// for another job's name; 'canceled' answers CANCELED instead of END. Replies follow the HP PJL reference:
// `@PJL USTATUS JOB\r\nEND\r\nNAME="…"\r\nPAGES=1\r\n\f`. After the client half-closes, it closes its side
// once its END reply is out ('answer', 'canceled') or never ('silent', 'wrong-name': the client must time out).
// Status readback is answered in every mode but 'silent', in the layout of the HP PJL reference (ch. 7), from
// `info` (default: a mono HP LaserJet 4 with PCL, a duplex unit, 600 dpi). A connection that only asks questions
// is not a job (a LaserJet prints nothing for it); its questions are kept in `inquiries`.
import net from 'node:net';

export type PjlPrinterMode = 'answer' | 'silent' | 'wrong-name' | 'canceled';

export interface PjlPrinterJob {
  data: Buffer;
  /** PJL command lines seen outside the document, in order (e.g. '@PJL SET DUPLEX=ON'). */
  commands: string[];
  /** Bytes between ENTER LANGUAGE and the next UEL. */
  document?: Buffer;
  replies: string[];
}

/** What the printer says about itself. */
export interface PjlPrinterInfo {
  model: string;
  /** INFO CONFIG LANGUAGES, e.g. ['PCL', 'PCLXL', 'POSTSCRIPT']. */
  languages: string[];
  duplex: boolean;
  resolution: number;
  /** A colour printer has RENDERMODE; a mono one answers "?" to INQUIRE RENDERMODE. */
  color: boolean;
}

export const LASERJET_4: PjlPrinterInfo = { model: 'HP LaserJet 4', languages: ['PCL'], duplex: true, resolution: 600, color: false };

/** The printer's answer to one status readback command, or undefined for commands it does not answer. */
export function pjlAnswer(command: string, info: PjlPrinterInfo): string | undefined {
  const c = command.replace(/\s+/g, ' ').trim();
  const upper = c.toUpperCase();
  const list = (name: string, items: string[]) => [`${name} [${items.length} ENUMERATED]`, ...items.map((i) => `\t${i}`)];
  let body: string[];
  if (upper === '@PJL INFO ID') body = [`"${info.model}"`];
  else if (upper === '@PJL INFO CONFIG')
    body = [
      ...list('IN TRAYS', ['INTRAY1 MP', 'INTRAY2 PC']),
      ...(info.duplex ? ['DUPLEX'] : []),
      ...list('OUTPUT TRAYS', ['NORMAL FACEDOWN']),
      ...list('PAPERS', ['LETTER', 'LEGAL', 'A4']),
      ...list('LANGUAGES', info.languages),
      ...list('USTATUS', ['DEVICE', 'JOB', 'PAGE', 'TIMED']),
      'MEMORY=8388608',
      'DISPLAY LINES=1',
      'DISPLAY CHARACTER SIZE=16',
    ];
  else if (upper === '@PJL INFO STATUS') body = ['CODE=10001', 'DISPLAY="00 READY"', 'ONLINE=TRUE'];
  else if (upper === '@PJL INQUIRE RESOLUTION') body = [String(info.resolution)];
  else if (upper === '@PJL INQUIRE RENDERMODE') body = [info.color ? 'COLOR' : '"?"'];
  else if (upper.startsWith('@PJL ECHO')) body = [];
  else return undefined;
  return [c, ...body].join('\r\n') + '\r\n\f';
}

const QUESTION = /^@PJL\s+(INFO|INQUIRE|DINQUIRE|ECHO)\b/i;

/**
 * A connection that only asked status readback questions (printbox's PJL probe of a RAW printer): a PJL printer
 * prints nothing for it. Crash tests meet it at their sinks when a kill -9 closes a probe instead of resetting it.
 */
export function isPjlQuestion(data: Buffer): boolean {
  const { commands, document } = parsePjlJob(data);
  return !document && commands.length > 0 && commands.every((c) => QUESTION.test(c));
}

export interface PjlPrinter {
  port: number;
  jobs: PjlPrinterJob[];
  /** The status readback questions of each connection that asked some, in order. */
  inquiries: string[][];
  waitForJobs(n: number, timeoutMs: number): Promise<PjlPrinterJob[]>;
  close(): Promise<void>;
}

const UEL = Buffer.from('\x1b%-12345X', 'latin1');

/** Splits one connection's bytes into PJL command lines and the document they enter. */
export function parsePjlJob(data: Buffer): { commands: string[]; document?: Buffer } {
  const commands: string[] = [];
  let document: Buffer | undefined;
  let at = 0;
  while (at < data.length) {
    if (data.subarray(at, at + UEL.length).equals(UEL)) {
      at += UEL.length;
      continue;
    }
    const eol = data.indexOf('\n', at);
    if (eol < 0) break; // a command line still arriving
    const line = data.subarray(at, eol + 1);
    const text = line.toString('latin1').trim();
    at += line.length;
    if (!text.startsWith('@PJL')) break; // not PJL: the printer would print it as data
    if (text !== '@PJL') commands.push(text.replace(/\s*=\s*/, '='));
    if (/^@PJL\s+ENTER\s+LANGUAGE/i.test(text)) {
      const end = data.indexOf(UEL, at);
      document = data.subarray(at, end < 0 ? data.length : end);
      at = end < 0 ? data.length : end;
    }
  }
  return { commands, document };
}

export async function startPjlPrinter(opts: { mode?: PjlPrinterMode; endDelayMs?: number; info?: Partial<PjlPrinterInfo> } = {}): Promise<PjlPrinter> {
  const mode = opts.mode ?? 'answer';
  const info: PjlPrinterInfo = { ...LASERJET_4, ...opts.info };
  const jobs: PjlPrinterJob[] = [];
  const inquiries: string[][] = [];
  const waiters = new Set<() => void>();
  const open = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    sock.on('error', () => {});
    const chunks: Buffer[] = [];
    const replies: string[] = [];
    let started = false;
    let ended = false;
    let asked: string[] | undefined;
    const reply = (event: string, name: string) => {
      const msg = `@PJL USTATUS JOB\r\n${event}\r\nNAME="${name}"\r\n${event === 'START' ? '' : 'PAGES=1\r\n'}\f`;
      replies.push(msg);
      if (!sock.destroyed && sock.writable) sock.write(msg);
    };
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      if (mode === 'silent') return;
      // A real printer parses as bytes arrive; re-reading the whole job is fine at test sizes.
      const { commands } = parsePjlJob(Buffer.concat(chunks));
      const questions = commands.filter((c) => QUESTION.test(c));
      if (questions.length > (asked?.length ?? 0)) {
        if (!asked) inquiries.push((asked = []));
        for (const q of questions.slice(asked.length)) {
          asked.push(q);
          const a = pjlAnswer(q, info);
          if (a && !sock.destroyed && sock.writable) sock.write(a);
        }
      }
      const ustatus = commands.some((c) => /^@PJL USTATUS JOB=ON$/i.test(c));
      const job = commands.find((c) => /^@PJL JOB\b/i.test(c));
      const eoj = commands.find((c) => /^@PJL EOJ\b/i.test(c));
      const nameOf = (cmd: string) => /NAME\s*=\s*"([^"]*)"/i.exec(cmd)?.[1] ?? '';
      if (ustatus && job && !started) {
        started = true;
        reply('START', nameOf(job));
      }
      if (ustatus && eoj && !ended) {
        ended = true;
        const name = mode === 'wrong-name' ? 'someone else [x]' : nameOf(eoj);
        const t = setTimeout(() => {
          timers.delete(t);
          reply(mode === 'canceled' ? 'CANCELED' : 'END', name);
        }, opts.endDelayMs ?? 50);
        timers.add(t);
      }
    });
    sock.on('end', () => {
      const data = Buffer.concat(chunks);
      // Questions and nothing else: no job, nothing printed.
      if (isPjlQuestion(data)) return void sock.end();
      jobs.push({ data, ...parsePjlJob(data), replies });
      for (const w of waiters) w();
      // Stay half-open like a JetDirect port until our END reply is out, then close.
      const closeLater = setTimeout(() => sock.end(), mode === 'answer' || mode === 'canceled' ? (opts.endDelayMs ?? 50) + 50 : 0);
      timers.add(closeLater);
      if (mode === 'silent' || mode === 'wrong-name') clearTimeout(closeLater); // keep it open: the client must time out
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    port: (server.address() as net.AddressInfo).port,
    jobs,
    inquiries,
    waitForJobs(n, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (jobs.length < n) return;
          cleanup();
          resolve(jobs.slice(0, n));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`PJL printer got ${jobs.length} of ${n} jobs within ${timeoutMs} ms`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
