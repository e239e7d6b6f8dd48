// Password sign-in limits: attempts counted before the slow hash, and few scrypt checks at once (they share libuv's pool with job I/O).
import { ApiError } from '../system/errors.js';

export interface LoginLimits {
  failures: number; // attempts per address within windowMs before 429
  windowMs: number;
  concurrent: number; // password checks running at once, all addresses together
  concurrentPerAddress: number;
  addresses: number; // addresses remembered; the least recently seen are forgotten first
}

export const LOGIN_LIMITS: LoginLimits = { failures: 5, windowMs: 60000, concurrent: 2, concurrentPerAddress: 1, addresses: 10000 };

/**
 * Wrong API tokens per address: a token check is one hash, so there is no slow check to cap, only guesses to count.
 * Generous (a sender with a stale token retries a few times a minute), yet it makes guessing an imported 16-character
 * Vasion key by brute force hopeless, and the log no longer fills with one address's guesses.
 */
export const TOKEN_GUESS_LIMITS: LoginLimits = { failures: 30, windowMs: 60000, concurrent: Infinity, concurrentPerAddress: Infinity, addresses: 10000 };

/**
 * A password check goes through `check(ip, verify)`: refused with 429 when the address used up its attempts or
 * when too many checks run already (refused, not queued: a queue of scrypt calls would starve job intake).
 * The attempt is counted before `verify` runs, so parallel guesses cannot outrun the count.
 */
export class LoginLimiter {
  private attempts = new Map<string, number[]>();
  private running = new Map<string, number>();
  private total = 0;

  constructor(private limits: LoginLimits = LOGIN_LIMITS) {}

  async check(ip: string, verify: () => Promise<boolean>): Promise<boolean> {
    const wait = this.blocked(ip);
    if (wait) this.seen(ip);
    if (wait) throw new ApiError(429, 'too_many_attempts', `too many wrong passwords from this address; try again in ${wait} s`, { retryAfterSeconds: wait });
    const mine = this.running.get(ip) ?? 0;
    if (this.total >= this.limits.concurrent || mine >= this.limits.concurrentPerAddress) {
      throw new ApiError(429, 'login_busy', 'too many sign-ins are being checked right now; try again in a second', { retryAfterSeconds: 1 });
    }
    this.count(ip);
    this.total++;
    this.running.set(ip, mine + 1);
    try {
      const ok = await verify();
      if (ok) this.attempts.delete(ip);
      return ok;
    } finally {
      this.total--;
      const left = (this.running.get(ip) ?? 1) - 1;
      if (left) this.running.set(ip, left);
      else this.running.delete(ip);
    }
  }

  /** Counts a failed attempt that needed no slow check (a wrong API token). */
  fail(ip: string): void {
    this.count(ip);
  }

  /** Seconds until this address may try again, 0 when it may now. */
  blocked(ip: string): number {
    const now = Date.now();
    const recent = (this.attempts.get(ip) ?? []).filter((t) => now - t < this.limits.windowMs);
    if (!recent.length) this.attempts.delete(ip);
    if (recent.length < this.limits.failures) return 0;
    return Math.max(1, Math.ceil((recent[0] + this.limits.windowMs - now) / 1000));
  }

  private count(ip: string): void {
    const now = Date.now();
    const list = (this.attempts.get(ip) ?? []).filter((t) => now - t < this.limits.windowMs);
    list.push(now);
    this.attempts.set(ip, list);
    this.seen(ip);
  }

  /** Moves the address to the end: the Map's order is then least recently seen first, which is what gets forgotten. */
  private seen(ip: string): void {
    const list = this.attempts.get(ip);
    if (!list) return;
    this.attempts.delete(ip);
    this.attempts.set(ip, list);
    while (this.attempts.size > this.limits.addresses) this.attempts.delete(this.attempts.keys().next().value!);
  }

  /** For tests and metrics: addresses remembered. */
  size(): number {
    return this.attempts.size;
  }
}
