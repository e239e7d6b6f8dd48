// DNS-SD offers for printbox's own printers: each one an IPP Everywhere printer, `_ipps._tcp` with the `_print`
// and `_universal` subtypes and the TXT keys AirPrint, Mopria and CUPS read, all made from the capabilities.
import { capabilitiesOf } from '../system/printer-capabilities.js';
import type { PrinterRecord } from '../system/state.js';

export interface ServiceOffer {
  type: string; // e.g. '_ipps._tcp'
  name: string; // instance label, e.g. the printer's name
  port: number;
  subtypes: string[]; // e.g. ['_print', '_universal']
  txt: Record<string, string | number | boolean>;
}

/** Marks printbox's own queues in TXT, so that printbox's printer discovery does not offer them back as printers. */
export const OWN_PRODUCT = '(printbox queue)';

/** CUPS printer-type bits the TXT `printer-type` carries: colour, duplex, copies. */
function printerType(color: boolean, duplex: boolean): string {
  return `0x${((color ? 0x8 : 0) | (duplex ? 0x10 : 0) | 0x40).toString(16).toUpperCase()}`;
}

/** The `_ipps._tcp` offer of every printer not opted out (`announce: false`); `delivered`: the conversion stage's formats for it. */
export function printerServices(printers: PrinterRecord[], opts: { port: number; adminUrl: string; location: string; delivered?: (p: PrinterRecord) => readonly string[] }): ServiceOffer[] {
  return printers
    .filter((p) => p.announce !== false)
    .map((p) => {
      const cap = capabilitiesOf(p, opts.delivered?.(p) ?? []);
      return {
        type: '_ipps._tcp',
        name: cap.name,
        port: opts.port,
        subtypes: ['_print', '_universal'],
        txt: {
          txtvers: 1,
          qtotal: 1,
          rp: `ipp/print/${cap.name}`,
          ty: cap.makeAndModel,
          product: OWN_PRODUCT,
          adminurl: opts.adminUrl,
          note: opts.location,
          pdl: cap.formats.join(','),
          // Apple's raster is not among what printbox takes in: AirPrint clients then send PDF.
          URF: cap.formats.includes('image/urf') ? 'V1.4,W8,SRGB24,RS300-600,DM1' : 'none',
          TLS: '1.2',
          UUID: cap.uuid,
          Color: cap.color ? 'T' : 'F',
          Duplex: cap.duplex ? 'T' : 'F',
          kind: 'document',
          'printer-type': printerType(cap.color, cap.duplex),
          'printer-state': 3,
          priority: 0,
        },
      };
    });
}
