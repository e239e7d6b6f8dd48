// Connection caps (total and per client address) and a deadline for JSON request bodies, so slow or many sockets cannot hold the API.
import type net from 'node:net';
import type { FastifyInstance } from 'fastify';

export interface ConnectionLimits {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** A JSON body (not an upload) must have arrived whole within this time after its headers. */
  bodyTimeoutMs: number;
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function limitConnections(server: FastifyInstance, limits: ConnectionLimits, log: { warn(o: object, m?: string): void }): void {
  const raw = server.server as unknown as net.Server;
  raw.maxConnections = limits.maxConnections;
  const perAddress = new Map<string, number>();
  let warnedAt = 0;
  raw.on('connection', (socket: net.Socket) => {
    const ip = socket.remoteAddress ?? '';
    const n = (perAddress.get(ip) ?? 0) + 1;
    if (n > limits.maxConnectionsPerAddress) {
      // Before TLS: there is no way to answer in HTTP yet. One warning a minute at most, however long the flood.
      if (Date.now() - warnedAt > 60000) {
        warnedAt = Date.now();
        log.warn({ ip, limit: limits.maxConnectionsPerAddress }, 'too many connections from one address; new ones are closed');
      }
      socket.destroy();
      return;
    }
    perAddress.set(ip, n);
    socket.once('close', () => {
      const left = (perAddress.get(ip) ?? 1) - 1;
      if (left > 0) perAddress.set(ip, left);
      else perAddress.delete(ip);
    });
  });

  // Uploads are exempt (a big document on a slow link takes long, and the idle timeout still cuts a silent one):
  // multipart jobs, and IPP requests, whose document follows the attributes in the same body.
  server.addHook('onRequest', (req, reply, done) => {
    const type = String(req.headers['content-type'] ?? '');
    if (!BODY_METHODS.has(req.method) || type.startsWith('multipart/') || type.startsWith('application/ipp')) return done();
    const timer = setTimeout(() => {
      if (reply.raw.headersSent) return;
      const body = JSON.stringify({ error: { code: 'body_timeout', message: `the request body did not arrive within ${Math.round(limits.bodyTimeoutMs / 1000)} s` } });
      req.raw.socket.end(`HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    }, limits.bodyTimeoutMs);
    const clear = () => clearTimeout(timer);
    req.raw.once('end', clear);
    req.raw.once('close', clear);
    reply.raw.once('finish', clear);
    done();
  });
}
