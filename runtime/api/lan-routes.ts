// Routes for what the appliance sees around it: discovered printers (+ live stream), system health, metrics, test pages.
import os from 'node:os';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { ApiError, notFound } from '../system/errors.js';
import { adoptionFor, type DiscoveryChange } from '../discovery/browser.js';
import { testPage, testPageKindFor } from '../../drivers/testpage.js';
import { jobView } from '../spool/jobs.js';
import { requireAdmin } from './auth.js';
import { printerViewFor } from './guards.js';
import type { Appliance } from '../appliance.js';

const idParam = { type: 'object', properties: { id: { type: 'string', maxLength: 256 } }, required: ['id'] };

export function registerLanRoutes(server: FastifyInstance, app: Appliance): void {
  const discovery = () => {
    if (!app.discovery) throw new ApiError(503, 'discovery_off', 'printer discovery is off on this appliance (config "mdns": false)');
    return app.discovery;
  };

  server.get('/v1/discovered', { schema: { tags: ['discovery'], summary: 'Printers found on the LAN (mDNS) and on serial ports' } }, async (req) => {
    requireAdmin(req);
    return { printers: discovery().list() };
  });

  server.get('/v1/discovered/events', { schema: { tags: ['discovery'], summary: 'Server-Sent Events: added, updated, gone, removed' } }, (req, reply) => {
    requireAdmin(req);
    const d = discovery();
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    for (const p of d.list()) res.write(`event: added\ndata: ${JSON.stringify(p)}\n\n`);
    const onChange = (ev: DiscoveryChange) => res.write(`event: ${ev.type}\ndata: ${JSON.stringify(ev.printer)}\n\n`);
    d.on('change', onChange);
    const ping = setInterval(() => res.write(': keep-alive\n\n'), 25000);
    req.raw.on('close', () => {
      clearInterval(ping);
      d.off('change', onChange);
    });
  });

  server.post('/v1/discovered/:id/adopt', {
    schema: { tags: ['discovery'], summary: 'Make a discovered printer a configured one', params: idParam, body: { type: ['object', 'null'], properties: { name: { type: 'string' }, uri: { type: 'string' } } } },
  }, async (req, reply) => {
    requireAdmin(req);
    const id = (req.params as { id: string }).id;
    const found = discovery().get(id);
    if (!found) throw notFound('discovered_printer', id);
    let adoption: { name: string; uri: string };
    try {
      adoption = adoptionFor(found);
    } catch (err) {
      throw new ApiError(409, (err as { code?: string }).code ?? 'printer_not_adoptable', (err as Error).message);
    }
    const body = (req.body ?? {}) as { name?: string; uri?: string };
    let printer = await app.printers.add({ name: body.name ?? app.printers.nameFrom(adoption.name), uri: body.uri ?? adoption.uri });
    // What the printer advertises (TXT pdl) until it is asked itself; the admin may still set accepts.
    if (found.languages.length) printer = (await app.printers.learn(printer.id, { accepts: found.languages }, 'mdns')) ?? printer;
    void app.learnCapabilities(printer.id);
    return reply.status(201).send(printerViewFor(app, printer, 'admin'));
  });

  server.get('/v1/system', { schema: { tags: ['system'], summary: 'Health of the box (cached; never waits on a slow probe)' } }, async (req) => {
    requireAdmin(req);
    if (!app.health) throw new ApiError(503, 'health_off', 'health probes are not running');
    return { ...app.health.snapshot(), appliance: app.status() };
  });

  server.get('/metrics', { schema: { tags: ['system'], summary: 'Prometheus metrics (token needed unless metricsOpen)' } }, async (_req, reply) => {
    return reply.type('text/plain; version=0.0.4').send(app.metrics.render(app));
  });

  server.post('/v1/printers/:id/test', { schema: { tags: ['printers'], summary: 'Print a test page in a language the printer takes', params: idParam } }, async (req, reply) => {
    requireAdmin(req);
    const p = app.printers.get((req.params as { id: string }).id);
    const kind = testPageKindFor(new URL(p.uri), p.defaults.contentType);
    const page = testPage(kind, { printerName: p.name, appliance: app.state.data.settings.name || os.hostname(), time: new Date() });
    const received = await app.intake.receive(Readable.from([page.data]));
    const { job } = await app.intake.accept({ printerId: p.id, title: `printbox test page (${kind})`, user: req.principal.name, contentType: page.contentType, options: { copies: 1 } }, received, req.principal.id);
    return reply.status(201).send(jobView(job));
  });
}
