// Security checks the routes share: where a statusURL may point, and what of a printer each scope may see.
import { badRequest } from '../system/errors.js';
import type { Appliance } from '../appliance.js';
import type { PrinterRecord } from '../system/state.js';
import { redactUri } from '../system/redact.js';
import { deliverableFormats } from '../convert/formats.js';

/** 400 status_url_refused when callbacks to this URL would never be sent (loopback, metadata, outside callbacks.allow…). */
export async function checkStatusUrl(app: Appliance, url: string | undefined, undo?: () => Promise<void>): Promise<void> {
  if (!url) return;
  const why = await app.callbacks.refusal(url);
  if (!why) return;
  await undo?.();
  throw badRequest('status_url_refused', `statusURL is not allowed: ${why}`);
}

/** Fields of a printer record that describe what it can do, shown to every token. */
const CAPABILITY_FIELDS = ['accepts', 'media', 'duplex', 'color', 'resolution', 'finishings'] as const;

/**
 * What a caller sees of a printer. Admins: everything, the URI redacted. Submit tokens: id, name, state and
 * capabilities; never the URI (addresses and credentials are the admin's business).
 */
export function printerViewFor(app: Appliance, p: PrinterRecord, scope: 'submit' | 'admin') {
  const queue = app.queue.printerState(p.id);
  // formats: what printbox can deliver to it (its accepts, and what it converts into one of them).
  if (scope === 'admin') return { ...p, uri: redactUri(p.uri), formats: deliverableFormats(p.accepts), queue };
  const capabilities: Record<string, unknown> = { defaults: p.defaults };
  for (const k of CAPABILITY_FIELDS) if ((p as unknown as Record<string, unknown>)[k] !== undefined) capabilities[k] = (p as unknown as Record<string, unknown>)[k];
  return { id: p.id, name: p.name, enabled: p.enabled, state: p.stopped ? 'stopped' : p.enabled ? queue.state : 'disabled', queued: queue.queued, capabilities };
}
