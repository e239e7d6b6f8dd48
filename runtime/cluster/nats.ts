// The cluster's link to NATS: where the servers are (PRINTBOX_CLUSTER or config `cluster.servers`), the one
// connection a node keeps, and JetStream writes retried through a leader change without writing twice.
import type { ClusterSettings } from '../system/config.js';
import { connect, type JetStreamClient, type JetStreamPublishOptions, type NatsConnection, type PubAck } from 'nats';

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
