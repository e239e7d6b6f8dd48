// The Vasion dialect of a job: the field names Vasion's API Print Service and API Cloud Link clients send, a site's
// own `fieldAliases`, and Vasion-style printer paths, all mapped onto printbox's one set of job fields.
import type { PrinterRecord } from '../system/state.js';
import { JOB_FIELDS, type JobField, type PrinterDirectory } from './options.js';

/** A site's extra field names: `"printerPath": "printer"` maps a field, `"collate": null` accepts and ignores one. */
export type FieldAliases = Record<string, JobField | null>;

/**
 * Names other clients use for printbox's fields. From Vasion's published shapes (`queue`, `username`, `jobID`,
 * `batchID`, `statusURL`: Cloud Link's multipart job and the on-prem OpenAPI file) and the spellings public clients
 * of print APIs use for the same things (IPP's `sides`, `media-source`, …). Matched without regard to case.
 */
const BUILT_IN: Readonly<Record<string, JobField>> = {
  queue: 'printer', printername: 'printer', printerid: 'printer', destination: 'printer',
  username: 'user', requestinguser: 'user', 'requesting-user-name': 'user', owner: 'user',
  jobname: 'title', 'job-name': 'title', documentname: 'title', name: 'title',
  copycount: 'copies', numcopies: 'copies',
  colormode: 'color', 'print-color-mode': 'color',
  sides: 'duplex',
  papersize: 'media', paper: 'media', mediasize: 'media',
  pagerange: 'pageRanges', 'page-ranges': 'pageRanges',
  mediasource: 'tray', 'media-source': 'tray', inputtray: 'tray',
  documentformat: 'contentType', 'document-format': 'contentType', mimetype: 'contentType', format: 'contentType',
  callbackurl: 'statusURL', statusurl: 'statusURL',
  jobid: 'jobID', uuid: 'jobID',
  batchid: 'batchID',
};

const CANONICAL: ReadonlyMap<string, JobField> = new Map(JOB_FIELDS.map((f) => [f.toLowerCase(), f]));

/** Throws a plain Error naming the first alias whose target is not a printbox job field. */
export function checkFieldAliases(aliases: unknown): FieldAliases {
  if (aliases === undefined) return {};
  if (!aliases || typeof aliases !== 'object' || Array.isArray(aliases)) throw new Error('fieldAliases must be an object like {"printerPath": "printer", "collate": null}');
  for (const [name, target] of Object.entries(aliases)) {
    if (target !== null && !(JOB_FIELDS as readonly string[]).includes(target as string)) {
      throw new Error(`fieldAliases: "${name}" maps to "${target}", which is not a job field (${JOB_FIELDS.join(', ')}) or null`);
    }
  }
  return aliases as FieldAliases;
}

/** Where a received field name goes: a job field, `null` (accepted and ignored on purpose), or undefined (unknown). */
export function fieldFor(name: string, site: FieldAliases = {}): JobField | null | undefined {
  if (Object.hasOwn(site, name)) return site[name];
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(site)) if (k.toLowerCase() === lower) return v;
  return CANONICAL.get(lower) ?? BUILT_IN[lower];
}

/** Every field name accepted, for the unknown_field message. */
export function knownFieldNames(site: FieldAliases = {}): string[] {
  return [...JOB_FIELDS, 'queue', 'username', ...Object.keys(site)];
}

/**
 * A printer directory that also finds a printer by a Vasion-style path ("Hospital/Ward 3/front" or
 * "Hospital\Ward 3\front": the last segment is the name) and by a name in another case when that is unique.
 */
export function pathAwarePrinters(printers: PrinterDirectory): PrinterDirectory {
  return {
    list: () => printers.list(),
    find(value: string): PrinterRecord | undefined {
      const exact = printers.find(value);
      if (exact) return exact;
      const tail = value.split(/[\\/]/).filter(Boolean).pop()?.trim();
      if (!tail) return undefined;
      const byTail = tail !== value ? printers.find(tail) : undefined;
      if (byTail) return byTail;
      const folded = printers.list().filter((p) => p.name.toLowerCase() === tail.toLowerCase());
      return folded.length === 1 ? folded[0] : undefined;
    },
  };
}
