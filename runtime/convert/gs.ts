// Ghostscript command lines: one output device per target language, the job's options applied inside the document.
import type { ContentType, JobOptions } from '../../drivers/contract-types.js';

export interface RenderSpec {
  to: ContentType;
  /** PCL XL (pxlmono/pxlcolor) when the printer lists application/vnd.hp-pclxl, else PCL 5 (ljet4/cljet5). */
  pclxl: boolean;
  dpi: number;
  color: boolean;
  /** Page size in points when the job or the printer names one (ZPL: the label), else the device default. */
  paper?: { w: number; h: number };
  pageList?: string;
  duplex?: 'long-edge' | 'short-edge';
  /** Times the whole document is rendered (copies the printer language cannot carry). */
  times: number;
  /**
   * Clockwise turn of every page (PDF /Rotate) for the job's orientation, applied before the page is fitted to the
   * paper (stage.ts turns the PDF with qpdf; the result is what gs renders).
   */
  rotate?: 90 | 180 | 270;
  /** PWG raster as 1-bit black (PWG 5102.4 black_1) for printers that take only that, instead of sgray_8/srgb_8. */
  bilevel?: boolean;
}

function device(s: RenderSpec): string[] {
  switch (s.to) {
    case 'pcl':
      if (s.pclxl) return [`-sDEVICE=${s.color ? 'pxlcolor' : 'pxlmono'}`, `-r${s.dpi}`];
      return [`-sDEVICE=${s.color ? 'cljet5' : 'ljet4'}`, `-r${s.dpi}`];
    case 'postscript':
      return ['-sDEVICE=ps2write', ...(s.color ? [] : ['-sColorConversionStrategy=Gray', '-sProcessColorModel=DeviceGray'])];
    case 'pdf':
      return ['-sDEVICE=pdfwrite', ...(s.color ? [] : ['-sColorConversionStrategy=Gray', '-sProcessColorModel=DeviceGray'])];
    case 'pwg-raster':
      // cupsColorSpace 18 = sGray, 19 = sRGB (PWG 5102.4 sgray_8 / srgb_8, what IPP Everywhere printers take);
      // 3 = Black at 1 bit is black_1 (1 = ink), an eighth of the bytes, for printers that list only that.
      if (s.bilevel) return ['-sDEVICE=pwgraster', `-r${s.dpi}`, '-dcupsColorSpace=3', '-dcupsBitsPerColor=1'];
      return ['-sDEVICE=pwgraster', `-r${s.dpi}`, `-dcupsColorSpace=${s.color ? 19 : 18}`, '-dcupsBitsPerColor=8'];
    case 'urf':
      return ['-sDEVICE=urf', `-r${s.dpi}`, `-dcupsColorSpace=${s.color ? 19 : 18}`, '-dcupsBitsPerColor=8'];
    case 'zpl':
      return ['-sDEVICE=pbmraw', `-r${s.dpi}`];
    default:
      throw new Error(`no Ghostscript device for ${s.to}`);
  }
}

/** gs arguments reading the document from /dev/fd/3 (`times` over) and writing to stdout. */
export function gsArgs(s: RenderSpec): string[] {
  const args = ['-q', '-dSAFER', '-dBATCH', '-dNOPAUSE', '-dNOINTERPOLATE', ...device(s), '-sOutputFile=-'];
  if (s.paper) args.push(`-dDEVICEWIDTHPOINTS=${Math.round(s.paper.w)}`, `-dDEVICEHEIGHTPOINTS=${Math.round(s.paper.h)}`, '-dFIXEDMEDIA', '-dPDFFitPage', '-dFitPage');
  if (s.pageList) args.push(`-sPageList=${s.pageList}`);
  if (s.duplex && s.to !== 'zpl' && s.to !== 'pdf') args.push('-dDuplex=true', `-dTumble=${s.duplex === 'short-edge'}`);
  for (let i = 0; i < s.times; i++) args.push('/dev/fd/3');
  return args;
}

/**
 * IPP orientation-requested (PWG 5100.x): landscape turns the page image 90° anticlockwise on the medium,
 * reverse-landscape 90° clockwise, reverse-portrait upside down; portrait leaves it as it is.
 */
export function orientationTurn(o: JobOptions['orientation']): RenderSpec['rotate'] {
  return o === 'landscape' ? 270 : o === 'reverse-landscape' ? 90 : o === 'reverse-portrait' ? 180 : undefined;
}

/** Points for a media name: PWG self-describing (iso_a4_210x297mm, oe_4x6-label_4x6in) or a common paper name. */
export function paperPoints(media: string | undefined): { w: number; h: number } | undefined {
  if (!media) return undefined;
  const common: Record<string, [number, number]> = { a3: [842, 1191], a4: [595, 842], a5: [420, 595], a6: [298, 420], letter: [612, 792], legal: [612, 1008], tabloid: [792, 1224], ledger: [792, 1224] };
  const c = common[media.toLowerCase().replace(/[\s_-]/g, '')];
  if (c) return { w: c[0], h: c[1] };
  const m = /_(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)(mm|in)$/.exec(media);
  if (!m) return undefined;
  const k = m[3] === 'mm' ? 72 / 25.4 : 72;
  return { w: Number(m[1]) * k, h: Number(m[2]) * k };
}

/** How many of `pages` pages a page-range list selects ('1-3,5' of 4 pages → 4). */
export function selectedPages(ranges: string | undefined, pages: number): number {
  if (!ranges) return pages;
  let n = 0;
  for (const part of ranges.split(',')) {
    const [a, b] = part.split('-').map((x) => (x === '' ? NaN : Number(x)));
    const lo = Math.max(1, a || 1);
    const hi = Math.min(pages, part.includes('-') ? (Number.isNaN(b) ? pages : b) : a);
    if (hi >= lo) n += hi - lo + 1;
  }
  return n;
}

/** Page counts on the job: pages printed (selected pages × copies) and sheets (two pages a sheet when duplex). */
export function pageCounts(docPages: number, o: Pick<JobOptions, 'copies' | 'pageRanges' | 'duplex'>): { pages: number; sheets: number } {
  const per = selectedPages(o.pageRanges, docPages);
  const copies = Math.max(1, o.copies || 1);
  const perSheets = o.duplex && o.duplex !== 'none' ? Math.ceil(per / 2) : per;
  return { pages: per * copies, sheets: perSheets * copies };
}
