// RAW (port 9100 style) intake for one printer: one connection is one job, sealed as it arrives and accepted when
// the sender closes its side; a connection that ends in an error or a reset is thrown away, never printed.
import net from 'node:net';
import type { Logger } from 'pino';
import type { JobIntake } from './accept.js';
import type { PrinterDirectory } from './options.js';
import { admits, legacyOwner } from './lpd-server.js';
import { readSide, TcpListener } from './socket-reader.js';

const IDLE_MS = 5 * 60_000; // a sender silent this long (mid-job) is gone; its bytes are discarded

export class RawListener {
  private tcp = new TcpListener((s) => this.connection(s));

  constructor(readonly printerId: string, private deps: { intake: JobIntake; printers: PrinterDirectory; log: Logger }) {}

  get port(): number {
    return this.tcp.port;
  }

  async listen(port: number, host: string): Promise<void> {
    await this.tcp.listen(port, host);
  }

  close(): Promise<void> {
    return this.tcp.close();
  }

  private connection(socket: net.Socket): void {
    const address = socket.remoteAddress;
    const printer = this.deps.printers.find(this.printerId);
    if (!admits(printer, 'raw', address) || printer!.intake!.raw?.port !== this.port) {
      this.deps.log.warn({ address, port: this.port }, 'RAW connection refused: the address is not in the printer\'s intake.allow');
      socket.resetAndDestroy(); // a reset, so the sender sees a refusal rather than a finished job
      return;
    }
    socket.setTimeout(IDLE_MS, () => socket.destroy(new Error('the sender was silent for too long')));
    this.receive(socket, address).catch((err) => {
      this.deps.log.info({ address, printer: printer!.name, err: (err as Error).message }, 'RAW job discarded');
      socket.destroy();
    });
  }

  private async receive(socket: net.Socket, address: string | undefined): Promise<void> {
    const { intake } = this.deps;
    const received = await intake.receive(readSide(socket));
    const printer = this.deps.printers.find(this.printerId)!;
    try {
      const valid = intake.validate({ printer: printer.id, title: `raw job from ${legacyOwner('raw', address).slice(4)}`, user: 'raw' });
      await intake.accept(valid, received, legacyOwner('raw', address));
    } catch (err) {
      await intake.discard(received).catch(() => undefined);
      throw err;
    }
    socket.end(); // our FIN after the job is durable: a sender that waits for it knows the job is safe
  }
}

