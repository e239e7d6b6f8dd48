// HTTPS client for tests: trusts the appliance's own certificate, builds multipart bodies by hand (also broken ones).
import https from 'node:https';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';

export interface ApiReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body's bytes (binary answers such as application/ipp). */
  body?: Buffer;
  json: any;
}

export type Body = string | Buffer | Readable | AsyncIterable<Buffer>;

export class Api {
  readonly agent: https.Agent;

  /** `agent` adds options, e.g. `localAddress: '127.0.0.7'` to come from another loopback address. */
  constructor(readonly base: string, ca: string, public token?: string, maxSockets = 32, agent: https.AgentOptions = {}) {
    this.agent = new https.Agent({ ca, keepAlive: true, maxSockets, ...agent });
  }

  request(method: string, path: string, opts: { body?: Body; headers?: Record<string, string>; token?: string | null } = {}): Promise<ApiReply> {
    const url = new URL(path, this.base);
    const token = opts.token === undefined ? this.token : opts.token;
    const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...opts.headers };
    if (typeof opts.body === 'string' || Buffer.isBuffer(opts.body)) headers['content-length'] = String(Buffer.byteLength(opts.body));
    return new Promise((resolve, reject) => {
      const req = https.request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString('utf8');
          let json: any;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body, json });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      const b = opts.body;
      if (b === undefined || typeof b === 'string' || Buffer.isBuffer(b)) req.end(b);
      else Readable.from(b as AsyncIterable<Buffer>).on('error', (e) => req.destroy(e)).pipe(req);
    });
  }

  json(method: string, path: string, body?: unknown, token?: string | null): Promise<ApiReply> {
    return this.request(method, path, { body: body === undefined ? undefined : JSON.stringify(body), headers: body === undefined ? {} : { 'content-type': 'application/json' }, token });
  }

  /** POST /v1/jobs with form fields and a file; `fieldsAfter` sends the fields after the file part, `afterFile` only these. */
  postJob(fields: Record<string, string>, file: Buffer | AsyncIterable<Buffer>, opts: { fieldsAfter?: boolean; afterFile?: Record<string, string>; token?: string | null; filename?: string } = {}): Promise<ApiReply> {
    const { contentType, body } = multipart(fields, file, opts);
    return this.request('POST', '/v1/jobs', { body, headers: { 'content-type': contentType }, token: opts.token });
  }

  close(): void {
    this.agent.destroy();
  }
}

export function multipart(fields: Record<string, string>, file: Buffer | AsyncIterable<Buffer>, opts: { fieldsAfter?: boolean; afterFile?: Record<string, string>; filename?: string } = {}) {
  const boundary = `----pbx${randomBytes(12).toString('hex')}`;
  const parts = (f: Record<string, string>) => Object.entries(f).map(([k, v]) => Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  const before = opts.fieldsAfter ? [] : parts(fields);
  const after = [...(opts.fieldsAfter ? parts(fields) : []), ...parts(opts.afterFile ?? {})];
  const fileHead = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${opts.filename ?? 'doc.bin'}"\r\ncontent-type: application/octet-stream\r\n\r\n`);
  const end = Buffer.from(`--${boundary}--\r\n`);
  async function* body() {
    yield* before;
    yield fileHead;
    if (Buffer.isBuffer(file)) yield file;
    else yield* file;
    yield Buffer.from('\r\n');
    yield* after;
    yield end;
  }
  const isBuf = Buffer.isBuffer(file);
  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    body: isBuf ? Buffer.concat([...before, fileHead, file as Buffer, Buffer.from('\r\n'), ...after, end]) : body(),
  };
}
