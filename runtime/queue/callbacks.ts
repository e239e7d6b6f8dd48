// statusURL callbacks: POST {jobID, status, message} signed with the appliance's HMAC secret and the owner's token id, bounded retries.
import { createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { CallbackOutcome } from '../spool/jobs.js';
import { CallbackTargets } from './callback-target.js';

export interface CallbackLog {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

/** A finished job or batch whose callback never ended (stop, crash) is called back after a start within this time. */
export const CALLBACK_REDO_MS = 24 * 3600 * 1000;

/**
 * HMAC over "<timestamp>.<token id>.<body>": the owner's token id is signed but not in the body (Vasion's callback
 * schema has no room for it), so a receiver checks the signature with its own client's token id, and a callback
 * about another client's job, replayed to it, does not verify.
 */
export function signBody(secret: Buffer, timestamp: string, tokenID: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.${tokenID}.${body}`).digest('hex');
}

export class StatusCallbacks {
  private inflight = new Set<Promise<void>>();

  constructor(private secret: Buffer, private log: CallbackLog, private targets = new CallbackTargets(), private opts = { attempts: 5, baseMs: 1000, timeoutMs: 10000 }) {}

  /** Fire and forget: delivery is retried in the background and never blocks the queue. `done` hears how it ended. */
  send(url: string, payload: object, tokenID: string, done?: (outcome: CallbackOutcome) => void): void {
    const p = this.deliver(url, payload, tokenID)
      .then((outcome) => done?.(outcome))
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  private async deliver(url: string, payload: object, tokenID: string): Promise<CallbackOutcome> {
    const body = JSON.stringify(payload);
    const outcome = (result: CallbackOutcome['result'], attempts: number): CallbackOutcome => ({ result, attempts, at: new Date().toISOString() });
    for (let attempt = 1; attempt <= this.opts.attempts; attempt++) {
      const timestamp = String(Math.floor(Date.now() / 1000));
      try {
        const target = await this.targets.resolve(url);
        if (!target.ok && !target.transient) {
          this.log.warn({ url: redact(url), reason: target.reason }, 'status callback not sent: the address is not allowed');
          return outcome('refused', attempt);
        }
        if (!target.ok) throw new Error(target.reason);
        const status = await post(url, target, { 'content-type': 'application/json', 'x-printbox-timestamp': timestamp, 'x-printbox-token-id': tokenID, 'x-printbox-signature': signBody(this.secret, timestamp, tokenID, body) }, body, this.opts.timeoutMs);
        if (status >= 200 && status < 300) return outcome('delivered', attempt);
        if (status >= 300 && status < 400) {
          this.log.warn({ url: redact(url), status }, 'status callback answered with a redirect; redirects are not followed');
          return outcome('refused', attempt);
        }
        if (status >= 400 && status < 500 && status !== 429) {
          this.log.warn({ url: redact(url), status }, 'status callback refused; not retried');
          return outcome('refused', attempt);
        }
      } catch (err) {
        if (attempt === this.opts.attempts) this.log.warn({ url: redact(url), err: (err as Error).message }, 'status callback failed');
      }
      if (attempt < this.opts.attempts) await new Promise((r) => setTimeout(r, this.opts.baseMs * 2 ** (attempt - 1)));
    }
    this.log.warn({ url: redact(url), attempts: this.opts.attempts }, 'status callback gave up');
    return outcome('gave-up', this.opts.attempts);
  }

  /** Why a callback to this URL would never be sent (checked at submit too), or undefined. A name that does not resolve yet is not refused. */
  async refusal(url: string): Promise<string | undefined> {
    const t = await this.targets.resolve(url);
    return t.ok || t.transient ? undefined : t.reason;
  }

  async drain(ms = 2000): Promise<void> {
    await Promise.race([Promise.allSettled([...this.inflight]), new Promise((r) => setTimeout(r, ms))]);
  }
}

/**
 * One POST to the address that was checked: the lookup hands the connection that address, so no second DNS
 * answer can send it elsewhere (the name still goes in Host and TLS SNI). Redirects are never followed.
 */
function post(url: string, target: { address: string; family: 4 | 6 }, headers: Record<string, string>, body: string, timeoutMs: number): Promise<number> {
  const lookup: LookupFunction = (_host, opts, cb) => {
    if ((opts as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: target.address, family: target.family }]);
    else cb(null, target.address, target.family);
  };
  const u = new URL(url);
  const client = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(u, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, lookup, signal: AbortSignal.timeout(timeoutMs), agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A callback URL may carry a secret in its query; logs keep only origin and path. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return 'invalid-url';
  }
}
