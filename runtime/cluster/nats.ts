// The cluster's link to NATS: where the servers are (PRINTBOX_CLUSTER or config `cluster.servers`), the one
// connection a node keeps, and JetStream writes retried through a leader change without writing twice.
import type { ClusterSettings } from '../system/config.js';
import { connect, headers, type JetStreamClient, type JetStreamManager, type JetStreamPublishOptions, type NatsConnection, type PubAck } from 'nats';

export async function connectCluster(cfg: ClusterSettings, name: string): Promise<NatsConnection> {
  // Reconnect for ever: a node whose NATS servers are away is not ready, and comes back when they return.
  // Only the servers given, in their order (normally the node's own): a node is its printbox and its
  // nats-server, so a node cut off from its server is out of the cluster (503, not ready), not a client of
  // another node's server that the load balancer still sends work to.
  return connect({ servers: cfg.servers, noRandomize: true, ignoreClusterUpdates: true, name, maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 2000, maxPingOut: 2, timeout: 5000, waitOnFirstConnect: true });
}

/** JetStream refused a write because the subject had moved on (a create of a key that exists, a stale revision). */
export function isWrongSequence(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10071 || /wrong last sequence/i.test(e?.message ?? '');
}

/** Worth another try: no answer (timeout, no responders during an election, a reconnect), not a refusal. */
export function transient(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return ['TIMEOUT', '503', 'CONNECTION_CLOSED', 'DISCONNECT', 'CONNECTION_DRAINING'].includes(String(e?.code)) || /timeout|no responders|not available|leadership/i.test(e?.message ?? '');
}

/**
 * Publishes and waits for the stream's acknowledgement, which JetStream gives only once the replicas have the
 * message (R3: a quorum). A timeout is retried with the same message id, so a first attempt that did land
 * is answered as a duplicate with its original sequence instead of being stored twice.
 */
export async function publishAcked(js: JetStreamClient, subject: string, data: Uint8Array, opts: Partial<JetStreamPublishOptions>, withinMs = 15000): Promise<PubAck> {
  const deadline = Date.now() + withinMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await js.publish(subject, data, { timeout: 3000, ...opts });
    } catch (err) {
      if (!transient(err) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1000)));
    }
  }
}

/** A JetStream call retried while the cluster elects leaders (nodes starting together create the same buckets). */
export async function retried<T>(fn: () => Promise<T>, withinMs = 30000): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!transient(err) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1000)));
    }
  }
}

/** The key's revision as the stream's leader has it (not a replica's direct get, which may lag); 0 when it has no value. */
async function keyRevision(jsm: JetStreamManager, stream: string, subject: string): Promise<number> {
  try {
    const m = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    const op = m.header?.get('KV-Operation');
    return op === 'DEL' || op === 'PURGE' ? 0 : m.seq;
  } catch (err) {
    const e = err as { api_error?: { err_code?: number }; message?: string };
    if (e?.api_error?.err_code === 10037 || /no message found/i.test(e?.message ?? '')) return 0;
    throw err;
  }
}

const sequenceRefused = (last: number) => Object.assign(new Error(`wrong last sequence: ${last}`), { code: '400', api_error: { err_code: 10071, code: 400, description: `wrong last sequence: ${last}` } });

/**
 * Compare-and-set on one key of a key-value bucket: the write lands only if the key's revision is still `expected`
 * (0: the key has no value — never written, deleted or expired). Returns the new revision; a key that moved is
 * refused with a "wrong last sequence" error (isWrongSequence), as kv.update() and kv.create() refuse it.
 *
 * Why not kv.update()/kv.create(): they send Nats-Expected-Last-Subject-Sequence, which nats-server before 2.9.21
 * (Debian 12 ships 2.9.10) does not serialise in a clustered stream — writers expecting the same revision can all
 * succeed (nats-io/nats-server#4320). Measured here on three servers: 156 of 200 rounds of three concurrent writers
 * had more than one winner, and a printer added on one node at the moment another node added one was lost. The
 * stream-level Nats-Expected-Last-Sequence is serialised (0 of 200). So the write expects the stream's last
 * sequence; when a write to another key moved it, the key itself is read from the stream's leader — after the new
 * last sequence is known — and, if it has not moved, the write is tried again at that sequence.
 */
export async function casPut(nc: NatsConnection, bucket: string, key: string, data: Uint8Array, expected: number, timeoutMs = 5000, op?: 'DEL'): Promise<number> {
  const js = nc.jetstream({ timeout: timeoutMs });
  const jsm = await nc.jetstreamManager({ timeout: timeoutMs });
  const stream = `KV_${bucket}`;
  const subject = `$KV.${bucket}.${key}`;
  // A key's revision is the stream sequence of its last write: if the stream's last sequence is `expected`, nothing
  // was written since, to any key. A key expected empty has no such sequence: its state is read (after the stream's).
  let last = expected;
  if (expected === 0) {
    last = (await jsm.streams.info(stream)).state.last_seq;
    if ((await keyRevision(jsm, stream, subject)) !== 0) throw sequenceRefused(last);
  }
  for (let attempt = 0; attempt < 100; attempt++) {
    const h = headers();
    h.set('Nats-Expected-Last-Sequence', String(last));
    if (op) h.set('KV-Operation', op);
    try {
      return (await js.publish(subject, data, { headers: h })).seq;
    } catch (err) {
      if (!isWrongSequence(err)) throw err;
      // The stream's last sequence first, then the key as of at least that point (the other order could miss a
      // write to this key between the two reads and then overwrite it).
      const said = /wrong last sequence: (\d+)/i.exec((err as Error).message ?? '');
      last = said ? Number(said[1]) : (await jsm.streams.info(stream)).state.last_seq;
      if ((await keyRevision(jsm, stream, subject)) !== expected) throw err;
    }
  }
  throw sequenceRefused(last); // the bucket kept moving: the caller's retry (or refusal) applies
}

/** Deletes a key only if its revision is still `expected` (casPut's compare-and-set, with a KV delete marker). */
export function casDelete(nc: NatsConnection, bucket: string, key: string, expected: number, timeoutMs = 5000): Promise<number> {
  return casPut(nc, bucket, key, new Uint8Array(0), expected, timeoutMs, 'DEL');
}
