// Keeps the legacy intake listening as the printers say: the LPD server while one printer has intake.lpd on,
// and one RAW listener per printer with intake.raw. Called at start and after every printer change.
import type { PrinterRecord } from '../system/state.js';
import { LpdServer, type LegacyDeps } from './lpd-server.js';
import { RawListener } from './raw-listener.js';

export interface ListenerProblem {
  printer?: string;
  port: number;
  error: string;
}

export class LegacyListeners {
  private lpd?: LpdServer;
  lpdPort?: number;
  private raw = new Map<number, RawListener>();
  /** Ports that could not be opened (in use, privileged), for the status page and logs. */
  problems: ListenerProblem[] = [];
  private syncing: Promise<void> = Promise.resolve();

  constructor(private deps: LegacyDeps, private opts: { host: string; lpdPort: number }) {}

  /** Serialised: changes that come quickly one after another are applied in order. */
  sync(printers: PrinterRecord[]): Promise<void> {
    const next = this.syncing.then(() => this.apply(printers));
    this.syncing = next.catch(() => undefined);
    return next;
  }

  private async apply(printers: PrinterRecord[]): Promise<void> {
    const problems: ListenerProblem[] = [];
    const wantLpd = printers.some((p) => p.intake?.lpd);
    if (wantLpd && !this.lpd) {
      const lpd = new LpdServer(this.deps);
      try {
        this.lpdPort = await lpd.listen(this.opts.lpdPort, this.opts.host);
        this.lpd = lpd;
        this.deps.log.info({ port: this.lpdPort }, 'LPD intake listening');
      } catch (err) {
        problems.push({ port: this.opts.lpdPort, error: (err as Error).message });
      }
    } else if (!wantLpd && this.lpd) {
      await this.lpd.close();
      this.lpd = undefined;
      this.lpdPort = undefined;
    }
    const wanted = new Map(printers.filter((p) => p.intake?.raw).map((p) => [p.intake!.raw!.port, p]));
    for (const [port, l] of this.raw) {
      if (wanted.get(port)?.id === l.printerId) continue;
      await l.close();
      this.raw.delete(port);
    }
    for (const [port, p] of wanted) {
      if (this.raw.has(port)) continue;
      const l = new RawListener(p.id, this.deps);
      try {
        await l.listen(port, this.opts.host);
        this.raw.set(port, l);
        this.deps.log.info({ port, printer: p.name }, 'RAW intake listening');
      } catch (err) {
        problems.push({ printer: p.name, port, error: (err as Error).message });
      }
    }
    for (const pr of problems) this.deps.log.warn(pr, 'legacy intake could not listen');
    this.problems = problems;
  }

  async close(): Promise<void> {
    await this.syncing;
    await this.lpd?.close();
    for (const l of this.raw.values()) await l.close();
    this.raw.clear();
    this.lpd = undefined;
  }
}
