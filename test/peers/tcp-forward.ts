// A TCP forwarder on loopback whose target can be switched: "the printer at this address is now another machine".
import net from 'node:net';

export interface TcpForward {
  port: number;
  /** Where new connections go from now on. */
  target: number;
  /** Bytes the clients have sent through so far (what went over the wire to the printer). */
  sent(): number;
  close(): Promise<void>;
}

export async function startTcpForward(target: number): Promise<TcpForward> {
  const sockets = new Set<net.Socket>();
  let sent = 0;
  const fwd = { port: 0, target, sent: () => sent, close: async () => {} };
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: fwd.target });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (c: Buffer) => (sent += c.length));
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  fwd.port = (server.address() as net.AddressInfo).port;
  fwd.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return fwd;
}
