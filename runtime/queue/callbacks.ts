// statusURL callbacks: POST {jobID, status, message} signed with the appliance's HMAC secret, bounded retries.
import { createHmac } from 'node:crypto';
import type { CallbackOutcome } from '../spool/jobs.js';

export interface CallbackLog {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

/** A finished job or batch whose callback never ended (stop, crash) is called back after a start within this time. */
export const CALLBACK_REDO_MS = 24 * 3600 * 1000;

export function signBody(secret: Buffer, timestamp: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export class StatusCallbacks {
  private inflight = new Set<Promise<void>>();

  constructor(private secret: Buffer, private log: CallbackLog, private opts = { attempts: 5, baseMs: 1000, timeoutMs: 10000 }) {}

  /** Fire and forget: delivery is retried in the background and never blocks the queue. `done` hears how it ended. */
  send(url: string, payload: object, done?: (outcome: CallbackOutcome) => void): void {
    const p = this.deliver(url, payload)
      .then((outcome) => done?.(outcome))
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  private async deliver(url: string, payload: object): Promise<CallbackOutcome> {
    const body = JSON.stringify(payload);
    const outcome = (result: CallbackOutcome['result'], attempts: number): CallbackOutcome => ({ result, attempts, at: new Date().toISOString() });
    for (let attempt = 1; attempt <= this.opts.attempts; attempt++) {
      const timestamp = String(Math.floor(Date.now() / 1000));
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-printbox-timestamp': timestamp, 'x-printbox-signature': signBody(this.secret, timestamp, body) },
          body,
          signal: AbortSignal.timeout(this.opts.timeoutMs),
        });
        await res.arrayBuffer().catch(() => {});
        if (res.ok) return outcome('delivered', attempt);
        if (res.status >= 400 && res.status < 500 && res.status !== 429) {
          this.log.warn({ url: redact(url), status: res.status }, 'status callback refused; not retried');
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

  async drain(ms = 2000): Promise<void> {
    await Promise.race([Promise.allSettled([...this.inflight]), new Promise((r) => setTimeout(r, ms))]);
  }
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
