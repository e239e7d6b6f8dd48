// Runs the appliance: opens the data dir, serves HTTPS and the admin socket, prints the first admin token once.
import fs from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { Appliance, VERSION } from './appliance.js';
import type { Config } from './system/config.js';
import { buildServer } from './api/server.js';
import { loadOrCreateIdentity, type TlsIdentity } from './system/tls.js';
import { keepSetupCode, webSettings } from './api/first-run.js';
import { LegacyListeners } from './intake/legacy-listeners.js';

export interface Running {
  app: Appliance;
  https: FastifyInstance;
  local: FastifyInstance;
  tls: TlsIdentity;
  port: number;
  /** The plain ipp:// listener's port when the config turns it on. */
  ippPort?: number;
  /** LPD and RAW intake listeners (they follow the printers' `intake` fields). */
  legacy: LegacyListeners;
  stop(): Promise<void>;
}

/** Health probes always; mDNS browsing and the appliance's announcement unless config "mdns" is false. */
async function startLan(app: Appliance, cfg: Config, tls: TlsIdentity, port: number): Promise<void> {
  const { SystemHealth } = await import('./system/health.js');
  app.health = new SystemHealth({ dataDir: cfg.dataDir, version: VERSION });
  app.health.start();
  if (!cfg.mdns) return;
  try {
    const { openMdns } = await import('./discovery/mdns.js');
    const { PrinterDiscovery } = await import('./discovery/browser.js');
    const { announce, certificateFingerprint, defaultHostName } = await import('./discovery/announce.js');
    const mdns = await openMdns();
    app.discovery = new PrinterDiscovery({ mdns, schemes: app.drivers.schemes(), log: app.log });
    await app.discovery.start();
    for (const d of app.drivers.all()) if (d.discover) void app.discovery.addSource(() => d.discover!(), { name: d.scheme, everyMs: 30000 });
    const { printerServices } = await import('./discovery/printer-services.js');
    const { deliverableFormats } = await import('./convert/formats.js');
    const box = app.state.data.settings.name;
    const published = await announce({
      name: `printbox ${box}`,
      port,
      fingerprint: certificateFingerprint(tls.cert),
      version: VERSION,
      mdns,
      // Each printer as an IPP Everywhere printer on this host; instance "front @ box" keeps names apart on the LAN.
      services: () => printerServices(app.printers.list(), { port, adminUrl: `https://${defaultHostName()}:${port}/`, location: box, delivered: (p) => deliverableFormats(p.accepts) }).map((o) => ({ ...o, name: `${o.name} @ ${box}` })),
    });
    app.printers.onChange(() => published.refresh());
    app.onClose(async () => {
      await published.stop();
      await mdns.close();
    });
    app.log.info({ host: published.host }, 'announced on mDNS');
  } catch (err) {
    // No multicast here (or port 5353 unusable): the appliance still serves; discovery reports itself off.
    app.log.warn({ err: (err as Error).message }, 'mDNS discovery and announcement are not available');
  }
}

export async function serve(cfg: Config, hooks: { onReady?: (r: Running) => void; firstToken?: (token: string) => void } = {}): Promise<Running> {
  const app = new Appliance(cfg);
  await app.open({ startQueues: true });
  const tls = await loadOrCreateIdentity(cfg.dataDir);
  // Undefined when another cluster node starting at the same moment made the first token.
  const first = app.tokens.count() === 0 ? await app.tokens.createFirst('first-admin', 'admin') : undefined;
  if (first) {
    const { token } = first;
    // The bootstrap token is also the one-time setup code of the web page (first-run.ts); `printbox setup-code` shows it again.
    if (!webSettings(app).passwordHash) await keepSetupCode(cfg.dataDir, token);
    (hooks.firstToken ?? ((t) => process.stdout.write(`\nprintbox: first admin API token, also the setup code of the web page (keep it safe):\n${t}\n\n`)))(token);
  }
  const https = await buildServer(app, { mode: 'https', tls });
  const local = await buildServer(app, { mode: 'local' });
  await https.listen({ port: cfg.port, host: cfg.host });
  // Plain ipp:// for clients that cannot do TLS: off unless the config names a port.
  const { buildPlainIppServer } = await import('./api/ipp-routes.js');
  const plainIpp = cfg.ippPort ? await buildPlainIppServer(app) : undefined;
  if (plainIpp) await plainIpp.listen({ port: cfg.ippPort, host: cfg.host });
  const sock = app.adminSocketPath();
  await fs.rm(sock, { force: true });
  await local.listen({ path: sock });
  await fs.chmod(sock, 0o600);
  const addr = https.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.port;
  const legacy = new LegacyListeners(
    { intake: app.intake, printers: app.printers, spool: app.spool, cancel: (id) => app.cancelJob(id), log: app.log.child({ intake: 'legacy' }) },
    { host: cfg.host, lpdPort: cfg.lpdPort },
  );
  await legacy.sync(app.printers.list());
  // A listener that fails to close must not become an unhandled rejection (Node would stop the whole appliance).
  app.printers.onChange(() => legacy.sync(app.printers.list()).catch((err) => app.log.error({ err }, 'LPD/RAW listeners did not follow the printer change')));
  app.log.info({ port, host: cfg.host, dataDir: cfg.dataDir, fingerprint: tls.fingerprint, crypto: (await import('./spool/seal.js')).defaultBox.name }, 'printbox listening (HTTPS)');
  let stopping: Promise<void> | null = null;
  const running: Running = {
    app,
    https,
    local,
    tls,
    port,
    legacy,
    ippPort: plainIpp ? (plainIpp.server.address() as { port: number }).port : undefined,
    stop: () =>
      (stopping ??= (async () => {
        await Promise.allSettled([https.close(), local.close(), legacy.close(), plainIpp?.close()]);
        await app.close();
      })()),
  };
  await startLan(app, cfg, tls, port);
  hooks.onReady?.(running);
  return running;
}
