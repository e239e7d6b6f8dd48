// API tokens: random bearer secrets shown once, stored only as SHA-256 hashes, checked in constant time.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { State, TokenRecord } from './state.js';

export type Scope = TokenRecord['scope'];

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

export class Tokens {
  private byHash = new Map<string, TokenRecord>();

  constructor(private state: State) {
    this.reload();
  }

  /** Rebuilds the lookup from the state (cluster mode: a token created or revoked on another node). */
  reload(): void {
    this.byHash.clear();
    for (const t of this.state.data.tokens) this.byHash.set(t.hash, t);
  }

  async create(name: string, scope: Scope): Promise<{ token: string; record: TokenRecord }> {
    const token = `pbx_${randomBytes(32).toString('base64url')}`;
    const record: TokenRecord = { id: randomUUID(), name, scope, hash: hash(token), createdAt: new Date().toISOString() };
    await this.state.change((d) => d.tokens.push(record));
    this.byHash.set(record.hash, record);
    return { token, record };
  }

  /**
   * The first admin token, made only while no token exists. The check runs inside the state's change: in a
   * cluster that is a compare-and-set on the shared configuration, re-run on what another node wrote, so nodes
   * that start together on an empty cluster make exactly one between them. Undefined when another was first.
   */
  async createFirst(name: string, scope: Scope): Promise<{ token: string; record: TokenRecord } | undefined> {
    const token = `pbx_${randomBytes(32).toString('base64url')}`;
    const record: TokenRecord = { id: randomUUID(), name, scope, hash: hash(token), createdAt: new Date().toISOString() };
    let first = false;
    await this.state.change((d) => {
      first = d.tokens.length === 0;
      if (first) d.tokens.push(record);
    });
    this.reload();
    return first ? { token, record } : undefined;
  }

  /**
   * Keeps a secret a site's clients already hold (moving from Vasion: their API keys keep working). Stored hashed like
   * every token; a secret already in use is refused, so one secret never names two tokens.
   */
  async import(name: string, scope: Scope, secret: string): Promise<TokenRecord | 'exists'> {
    const h = hash(secret);
    if (this.byHash.has(h)) return 'exists';
    const record: TokenRecord = { id: randomUUID(), name, scope, hash: h, createdAt: new Date().toISOString() };
    await this.state.change((d) => d.tokens.push(record));
    this.byHash.set(h, record);
    return record;
  }

  /** The token's record, or undefined. Tokens are 256-bit random, so the hash lookup leaks nothing useful. */
  verify(token: string): TokenRecord | undefined {
    const h = hash(token);
    const rec = this.byHash.get(h);
    if (!rec) return undefined;
    if (!timingSafeEqual(Buffer.from(rec.hash, 'hex'), Buffer.from(h, 'hex'))) return undefined;
    this.touch(rec);
    return rec;
  }

  /** Records use in memory at once, on disk at most once a minute per token: requests never rewrite state.json. */
  private touch(rec: TokenRecord): void {
    const now = Date.now();
    const last = rec.lastUsedAt ? Date.parse(rec.lastUsedAt) : 0;
    rec.lastUsedAt = new Date(now).toISOString();
    if (now - last >= 60000) void this.state.change(() => {}).catch(() => {});
  }

  list(): TokenRecord[] {
    return this.state.data.tokens;
  }

  /** Revokes by id, name or a unique id prefix. */
  async revoke(idOrName: string): Promise<TokenRecord | undefined> {
    const all = this.state.data.tokens;
    const exact = all.filter((t) => t.id === idOrName || t.name === idOrName);
    const matches = exact.length ? exact : all.filter((t) => idOrName.length >= 6 && t.id.startsWith(idOrName));
    if (matches.length !== 1) return undefined;
    const rec = matches[0];
    await this.state.change((d) => {
      d.tokens = d.tokens.filter((t) => t.id !== rec.id);
    });
    this.byHash.delete(rec.hash);
    return rec;
  }

  count(): number {
    return this.byHash.size;
  }
}
