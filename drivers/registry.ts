// Maps a printer URI's scheme to its driver; built-ins plus plug-ins loaded from the config.
import type { Driver, DriverContext, DriverFactory } from './contract.js';
import { createRawDriver } from './raw.js';
import { createIppDriver } from './ipp.js';
import { createLprDriver } from './lpr.js';
import { createSerialDriver } from './serial.js';

export const BUILTIN_DRIVERS: Record<string, DriverFactory> = {
  raw: createRawDriver,
  socket: createRawDriver, // CUPS spells RAW as socket://
  ipp: createIppDriver,
  lpr: createLprDriver,
  serial: createSerialDriver,
  ipps: createIppDriver,
};

export class DriverRegistry {
  private drivers = new Map<string, Driver>();
  readonly problems: { source: string; error: string }[] = [];

  constructor(private ctx: (scheme: string) => DriverContext) {}

  register(scheme: string, factory: DriverFactory): void {
    this.drivers.set(scheme, factory(this.ctx(scheme)));
  }

  forUri(uri: URL): Driver | undefined {
    return this.drivers.get(uri.protocol.replace(/:$/, ''));
  }

  all(): Driver[] {
    return [...new Set(this.drivers.values())];
  }

  schemes(): string[] {
    return [...this.drivers.keys()];
  }
}
