// Submitting clients: printbox's HTTPS API (keep-alive, multipart) and CUPS over IPP (keep-alive Print-Job) or `lp`.
import http from 'node:http';
import { Readable } from 'node:stream';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Api } from '../test/helpers/api.js';
import { encodeMessage, decodeMessage, attr, GROUP, TAG, OPERATION } from '../drivers/ipp-codec.js';

const run = promisify(execFile);

export function printboxClient(base: string, ca: string, token: string, maxSockets = 32): Api {
  return new Api(base, ca, token, maxSockets);
}

/** POST /v1/jobs; resolves on the 201 (the job is durable), throws on anything else. */
export async function submitPrintbox(api: Api, printer: string, doc: Buffer | AsyncIterable<Buffer>): Promise<void> {
  const r = await api.postJob({ printer }, doc);
  if (r.status !== 201) throw new Error(`POST /v1/jobs answered ${r.status}: ${r.text.slice(0, 300)}`);
}

/** A keep-alive IPP client for one CUPS queue (what a well-behaved application would use instead of spawning `lp`). */
export function ippClient(queueUri: string, maxSockets = 32) {
  const url = new URL(queueUri);
  const agent = new http.Agent({ keepAlive: true, maxSockets });
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
      if (isBuf) headers['content-length'] = String(head.length + doc.length);
      const body = await new Promise<Buffer>((resolve, reject) => {
        const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`CUPS answered HTTP ${res.statusCode}`))));
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
      if (msg.code > 0x00ff) throw new Error(`CUPS Print-Job failed: status 0x${msg.code.toString(16)}`);
      return msg.code;
    },
    close: () => agent.destroy(),
  };
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
