// TCP plumbing of the legacy listeners: a half-open-capable server, a socket's read side alone, and a reader that
// takes a byte stream in protocol pieces (a line, N bytes, N bytes as a stream) without losing what follows, as
// LPD's subcommands need (a data file is followed by its NUL byte and the next subcommand).
import net, { type Socket } from 'node:net';
import { PassThrough } from 'node:stream';

export class ProtocolError extends Error {}

export class SocketReader {
  private it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(socket: Socket) {
    this.it = readSide(socket)[Symbol.asyncIterator]();
  }

  /** More bytes into the buffer; false at the end of the stream. */
  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const n = await this.it.next();
    if (n.done) {
      this.ended = true;
      return false;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, n.value]) : n.value;
    return true;
  }

  /** The next line without its LF; undefined at a clean end of stream before any byte of it. */
  async line(max = 4096): Promise<string | undefined> {
    for (;;) {
      const i = this.buf.indexOf(0x0a);
      if (i >= 0) {
        const line = this.buf.subarray(0, i).toString('latin1');
        this.buf = this.buf.subarray(i + 1);
        return line;
      }
      if (this.buf.length > max) throw new ProtocolError(`a command line longer than ${max} bytes`);
      if (!(await this.fill())) {
        if (this.buf.length) throw new ProtocolError('the connection ended inside a command line');
        return undefined;
      }
    }
  }

  /** Exactly n bytes (small things: control files). */
  async bytes(n: number): Promise<Buffer> {
    while (this.buf.length < n) if (!(await this.fill())) throw new ProtocolError(`the connection ended ${n - this.buf.length} bytes before the end of a file`);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** n bytes handed on as they arrive (a data file into the sealer); undefined n: everything until the sender closes. */
  async *stream(n?: number): AsyncGenerator<Buffer> {
    let left = n ?? Infinity;
    while (left > 0) {
      if (!this.buf.length && !(await this.fill())) {
        if (n === undefined) return;
        throw new ProtocolError(`the connection ended ${left} bytes before the end of a file`);
      }
      const take = this.buf.subarray(0, Math.min(left, this.buf.length));
      this.buf = this.buf.subarray(take.length);
      left -= take.length;
      yield take;
    }
  }
}

/**
 * The socket's read side alone: it ends on the sender's FIN (our side stays open for the answer), and fails on a
 * reset or a close without FIN, so receive() removes what it sealed. The socket itself, half-open, would only
 * count as finished when both sides are.
 */
export function readSide(socket: Socket): PassThrough {
  const out = new PassThrough();
  socket.pipe(out);
  socket.on('error', (err) => out.destroy(err));
  socket.on('close', () => {
    if (!socket.readableEnded) out.destroy(new Error('the connection closed before the sender finished'));
  });
  return out;
}

/** A TCP server whose connections may be half-closed by the sender (we still answer), tracked so close() ends them. */
export class TcpListener {
  private server?: net.Server;
  private sockets = new Set<Socket>();
  port = 0;

  constructor(private onConnection: (socket: Socket) => void) {}

  async listen(port: number, host: string): Promise<number> {
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
      this.onConnection(s);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
