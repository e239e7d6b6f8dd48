// Submitting clients: printbox's HTTPS API (keep-alive, multipart), IPP (keep-alive Print-Job, to CUPS or printbox),
// LPD (one connection per job) and RAW, or `lp`.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Readable } from 'node:stream';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Api } from '../test/helpers/api.js';
import { encodeMessage, decodeMessage, attr, GROUP, TAG, OPERATION } from '../drivers/ipp-codec.js';

const run = promisify(execFile);

export function printboxClient(base: string, ca: string, token: string, maxSockets = 32): Api {
  return new Api(base, ca, token, maxSockets);
}

/** Times a full queue pushed a submit back (503 queue_full) since the start of the process. */
export const pushedBack = { count: 0 };

/**
 * POST /v1/jobs; resolves on the 201 (the job is durable), throws on anything else. A 503 queue_full (back-pressure:
 * the printers' lines are full) is sent again after its Retry-After, as a well-behaved client does.
 */
export async function submitPrintbox(api: Api, printer: string, doc: Buffer | AsyncIterable<Buffer>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const r = await api.postJob({ printer }, doc);
    if (r.status === 201) return;
    if (r.status === 503 && r.json?.error?.code === 'queue_full' && Buffer.isBuffer(doc) && attempt < 1000) {
      pushedBack.count++;
      await new Promise((res) => setTimeout(res, Number(r.headers['retry-after'] ?? 1) * 1000));
      continue;
    }
    throw new Error(`POST /v1/jobs answered ${r.status}: ${r.text.slice(0, 300)}`);
  }
}

/**
 * A keep-alive IPP client for one queue (what a well-behaved application would use instead of spawning `lp`):
 * ipp:// over HTTP (CUPS), ipps:// over HTTPS with the token as the Basic password (printbox).
 */
export function ippClient(queueUri: string, maxSockets = 32, tls?: { ca?: string; token?: string; selfSigned?: boolean }) {
  const url = new URL(queueUri);
  const secure = url.protocol === 'ipps:';
  // selfSigned: the private cupsd's certificate, made on the spot for its host name (loopback, benchmark only).
  const agent = secure ? new https.Agent({ keepAlive: true, maxSockets, ca: tls?.ca, rejectUnauthorized: !tls?.selfSigned }) : new http.Agent({ keepAlive: true, maxSockets });
  let requestId = 1;
  return {
    async printJob(doc: Buffer | AsyncIterable<Buffer>, name = 'bench'): Promise<number> {
      const head = encodeMessage({
        version: 0x0200,
        code: OPERATION.printJob,
        requestId: requestId++,
        groups: [
          {
            tag: GROUP.operation,
            attributes: [
              attr(TAG.charset, 'attributes-charset', 'utf-8'),
              attr(TAG.naturalLanguage, 'attributes-natural-language', 'en'),
              attr(TAG.uri, 'printer-uri', queueUri),
              attr(TAG.nameWithoutLanguage, 'requesting-user-name', 'bench'),
              attr(TAG.nameWithoutLanguage, 'job-name', name),
              attr(TAG.mimeMediaType, 'document-format', 'application/octet-stream'),
            ],
          },
        ],
      });
      const isBuf = Buffer.isBuffer(doc);
      const headers: Record<string, string> = { 'content-type': 'application/ipp' };
      if (tls?.token) headers.authorization = `Basic ${Buffer.from(`bench:${tls.token}`).toString('base64')}`;
      if (isBuf) headers['content-length'] = String(head.length + doc.length);
      const body = await new Promise<Buffer>((resolve, reject) => {
        const req = (secure ? https : http).request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${url.host} answered HTTP ${res.statusCode}`))));
          res.on('error', reject);
        });
        req.on('error', reject);
        if (isBuf) req.end(Buffer.concat([head, doc]));
        else {
          req.write(head);
          Readable.from(doc).pipe(req);
        }
      });
      const msg = decodeMessage(body);
      if (msg.code > 0x00ff) throw new Error(`Print-Job failed: status 0x${msg.code.toString(16)}`);
      return msg.code;
    },
    close: () => agent.destroy(),
  };
}

/** One LPD receive-job (RFC 1179) per connection: control file, then data file; resolves on the last acknowledgement. */
export function submitLpd(port: number, queue: string, doc: Buffer, n: number): Promise<void> {
  const id = String(n % 1000).padStart(3, '0');
  const control = Buffer.from(`Hbench\nPbench\nJbench ${n}\nldfA${id}bench\nUdfA${id}bench\n`);
  const steps = [Buffer.from(`\x02${queue}\n`), Buffer.from(`\x02${control.length} cfA${id}bench\n`), Buffer.concat([control, Buffer.from([0])]), Buffer.from(`\x03${doc.length} dfA${id}bench\n`), Buffer.concat([doc, Buffer.from([0])])];
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let step = 0;
    s.on('connect', () => s.write(steps[step++]));
    s.on('data', (c: Buffer) => {
      for (const ack of c) {
        if (ack !== 0) return s.destroy(new Error(`LPD refused step ${step} with ${ack}`));
        if (step < steps.length) s.write(steps[step++]);
        else {
          s.end();
          return resolve();
        }
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error('LPD server closed before the last acknowledgement')));
  });
}

/** One RAW job: connect, send, close our side; resolves when the server closes (printbox: the job is durable). */
export function submitRaw(port: number, doc: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(doc));
    s.resume();
    s.on('end', () => resolve());
    s.on('error', reject);
  });
}

/** The command-line way: one `lp` process per job. */
export async function submitLp(port: number, file: string): Promise<void> {
  await run('lp', ['-h', `127.0.0.1:${port}`, '-d', 'sink', file], { timeout: 30000 });
}

/** Runs `count` tasks over `concurrency` workers; returns wall-clock ms. */
export async function runPool(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
