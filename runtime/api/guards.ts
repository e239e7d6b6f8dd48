// Security checks the routes share: where a statusURL may point, and what of a printer each scope may see.
import { badRequest } from '../system/errors.js';
import type { Appliance } from '../appliance.js';

/** 400 status_url_refused when callbacks to this URL would never be sent (loopback, metadata, outside callbacks.allow…). */
export async function checkStatusUrl(app: Appliance, url: string | undefined, undo?: () => Promise<void>): Promise<void> {
  if (!url) return;
  const why = await app.callbacks.refusal(url);
  if (!why) return;
  await undo?.();
  throw badRequest('status_url_refused', `statusURL is not allowed: ${why}`);
}
