// An admin accepts an ipps printer's new certificate (trust on first use): re-pin it and let its held jobs go.
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../system/errors.js';
import { PIN_PARAM, presentedFingerprint, withPin } from '../system/printer-pin.js';
import type { Appliance } from '../appliance.js';
import { requireAdmin } from './auth.js';
import { printerViewFor } from './guards.js';

const idParam = { type: 'object', properties: { id: { type: 'string', maxLength: 128 } }, required: ['id'] };

export function registerPrinterTrustRoutes(server: FastifyInstance, app: Appliance): void {
  server.post('/v1/printers/:id/accept-certificate', {
    schema: {
      tags: ['printers'],
      summary: "ipps: trust the certificate the printer presents now (optionally only if it has the given fingerprint), and resume it",
      params: idParam,
      body: { type: ['object', 'null'], properties: { fingerprint: { type: 'string', maxLength: 200 } } },
    },
  }, async (req) => {
    requireAdmin(req);
    const p = app.printers.get((req.params as { id: string }).id);
    const uri = new URL(p.uri);
    if (uri.protocol !== 'ipps:') throw new ApiError(409, 'printer_not_ipps', `printer "${p.name}" does not use ipps://; there is no certificate to accept`);
    let now: string;
    try {
      now = await presentedFingerprint(uri);
    } catch (err) {
      throw new ApiError(502, 'printer_unreachable', `cannot read the certificate of printer "${p.name}": ${(err as Error).message}`);
    }
    // The admin may say which fingerprint they checked (on the printer's own panel): accept that one only.
    const expected = (req.body as { fingerprint?: string } | null)?.fingerprint;
    const bare = (f: string) => f.replace(/[^0-9a-f]/gi, '').toUpperCase();
    if (expected && bare(expected) !== bare(now)) throw new ApiError(409, 'fingerprint_mismatch', `the printer presents ${now}, not the fingerprint you gave`);
    const previous = uri.searchParams.get(PIN_PARAM);
    const updated = await app.printers.update(p.id, { uri: withPin(p.uri, now) });
    if (updated.stopped) await app.queue.resumePrinter(p.id);
    req.log.info({ printer: p.name, previous, fingerprint: now }, 'printer certificate accepted');
    return { ...printerViewFor(app, app.printers.get(p.id), 'admin'), certificate: { previous, fingerprint: now } };
  });
}
