// IPP message encoding and decoding (application/ipp, RFC 8010 §3): header, attribute groups, values, collections.
import { withHead } from './streams.js';

/** Delimiter tags that open an attribute group (RFC 8010 §3.5.1). */
export const GROUP = {
  operation: 0x01,
  job: 0x02,
  end: 0x03,
  printer: 0x04,
  unsupported: 0x05,
  subscription: 0x06,
  eventNotification: 0x07,
  document: 0x09,
} as const;

/** Value tags (RFC 8010 §3.5.2). Out-of-band tags carry no value. */
export const TAG = {
  unsupported: 0x10,
  unknown: 0x12,
  noValue: 0x13,
  notSettable: 0x15,
  deleteAttribute: 0x16,
  adminDefine: 0x17,
  integer: 0x21,
  boolean: 0x22,
  enum: 0x23,
  octetString: 0x30,
  dateTime: 0x31,
  resolution: 0x32,
  rangeOfInteger: 0x33,
  begCollection: 0x34,
  textWithLanguage: 0x35,
  nameWithLanguage: 0x36,
  endCollection: 0x37,
  textWithoutLanguage: 0x41,
  nameWithoutLanguage: 0x42,
  keyword: 0x44,
  uri: 0x45,
  uriScheme: 0x46,
  charset: 0x47,
  naturalLanguage: 0x48,
  mimeMediaType: 0x49,
  memberAttrName: 0x4a,
  extension: 0x7f,
} as const;

export const OPERATION = {
  printJob: 0x0002,
  validateJob: 0x0004,
  createJob: 0x0005,
  sendDocument: 0x0006,
  cancelJob: 0x0008,
  getJobAttributes: 0x0009,
  getJobs: 0x000a,
  getPrinterAttributes: 0x000b,
  cancelMyJobs: 0x0039,
  closeJob: 0x003b,
  identifyPrinter: 0x003c,
} as const;

export interface IppRange {
  lower: number;
  upper: number;
}
export interface IppResolution {
  x: number;
  y: number;
  units: 'dpi' | 'dpcm';
}
export interface IppStringWithLanguage {
  lang: string;
  text: string;
}
export interface IppCollection {
  members: IppAttribute[];
}
/** One decoded value; which shape it has follows from the value tag. `null` = out-of-band (no value). */
export type IppValue = number | boolean | string | Buffer | Date | IppRange | IppResolution | IppStringWithLanguage | IppCollection | null;

export interface IppAttribute {
  name: string;
  /** Value tag of every value, unless `tags` gives one per value (a 1setOf may mix, e.g. keyword | name). */
  tag: number;
  tags?: number[];
  values: IppValue[];
}
export interface IppGroup {
  tag: number;
  attributes: IppAttribute[];
}
export interface IppMessage {
  /** 0x0200 for IPP/2.0, 0x0101 for IPP/1.1. */
  version: number;
  /** operation-id in a request, status-code in a response. */
  code: number;
  requestId: number;
  groups: IppGroup[];
}

export class IppDecodeError extends Error {
  code = 'ipp_malformed';
}
/** The buffer ended inside the header or attributes: more bytes may complete it (a stream still arriving). */
export class IppTruncatedError extends IppDecodeError {}
export class IppEncodeError extends Error {
  code = 'ipp_unencodable';
}

/* ------------------------------------------------------------------ encoding */

/** Encodes an IPP message header, attributes and end-of-attributes tag; the document data follows it on the wire. */
export function encodeMessage(msg: IppMessage): Buffer {
  const w = new Writer();
  w.u16(msg.version);
  w.u16(msg.code);
  w.u32(msg.requestId);
  for (const group of msg.groups) {
    if (group.tag < 0x01 || group.tag > 0x0f || group.tag === GROUP.end) throw new IppEncodeError(`bad group tag 0x${group.tag.toString(16)}`);
    w.u8(group.tag);
    for (const attr of group.attributes) writeAttribute(w, attr);
  }
  w.u8(GROUP.end);
  return w.done();
}

function writeAttribute(w: Writer, attr: IppAttribute): void {
  if (!attr.name) throw new IppEncodeError('an attribute needs a name');
  const values = attr.values.length ? attr.values : [null];
  values.forEach((value, i) => writeValue(w, attr.tags?.[i] ?? attr.tag, i === 0 ? attr.name : '', value));
}

function writeValue(w: Writer, tag: number, name: string, value: IppValue): void {
  w.u8(tag);
  w.str16(name);
  if (tag === TAG.begCollection) {
    w.u16(0);
    for (const member of (value as IppCollection).members) {
      w.u8(TAG.memberAttrName);
      w.u16(0);
      w.str16(member.name);
      const mv = member.values.length ? member.values : [null];
      mv.forEach((v, i) => writeValue(w, member.tags?.[i] ?? member.tag, '', v));
    }
    w.u8(TAG.endCollection);
    w.u16(0);
    w.u16(0);
    return;
  }
  w.bytes16(valueBytes(tag, value, name));
}

function valueBytes(tag: number, value: IppValue, name: string): Buffer {
  if (tag >= 0x10 && tag <= 0x1f) return Buffer.alloc(0); // out-of-band
  const bad = () => new IppEncodeError(`value of ${name || 'an additional value'} does not fit tag 0x${tag.toString(16)}`);
  switch (tag) {
    case TAG.integer:
    case TAG.enum: {
      if (typeof value !== 'number' || !Number.isInteger(value)) throw bad();
      const b = Buffer.alloc(4);
      b.writeInt32BE(value);
      return b;
    }
    case TAG.boolean:
      if (typeof value !== 'boolean') throw bad();
      return Buffer.from([value ? 1 : 0]);
    case TAG.rangeOfInteger: {
      const r = value as IppRange;
      if (typeof r?.lower !== 'number') throw bad();
      const b = Buffer.alloc(8);
      b.writeInt32BE(r.lower);
      b.writeInt32BE(r.upper, 4);
      return b;
    }
    case TAG.resolution: {
      const r = value as IppResolution;
      if (typeof r?.x !== 'number') throw bad();
      const b = Buffer.alloc(9);
      b.writeInt32BE(r.x);
      b.writeInt32BE(r.y, 4);
      b.writeInt8(r.units === 'dpcm' ? 4 : 3, 8);
      return b;
    }
    case TAG.dateTime:
      if (!(value instanceof Date)) throw bad();
      return encodeDate(value);
    case TAG.textWithLanguage:
    case TAG.nameWithLanguage: {
      const v = value as IppStringWithLanguage;
      if (typeof v?.text !== 'string') throw bad();
      const w = new Writer();
      w.str16(v.lang);
      w.str16(v.text);
      return w.done();
    }
    default:
      if (Buffer.isBuffer(value)) return value;
      if (typeof value !== 'string') throw bad();
      return Buffer.from(value, 'utf8');
  }
}

/** RFC 2579 DateAndTime, always written in UTC. */
function encodeDate(d: Date): Buffer {
  const b = Buffer.alloc(11);
  b.writeUInt16BE(d.getUTCFullYear());
  b.writeUInt8(d.getUTCMonth() + 1, 2);
  b.writeUInt8(d.getUTCDate(), 3);
  b.writeUInt8(d.getUTCHours(), 4);
  b.writeUInt8(d.getUTCMinutes(), 5);
  b.writeUInt8(d.getUTCSeconds(), 6);
  b.writeUInt8(Math.floor(d.getUTCMilliseconds() / 100), 7);
  b.write('+', 8, 'ascii');
  return b;
}

class Writer {
  private chunks: Buffer[] = [];
  u8(n: number) {
    this.chunks.push(Buffer.from([n]));
  }
  u16(n: number) {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(n);
    this.chunks.push(b);
  }
  u32(n: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    this.chunks.push(b);
  }
  bytes16(b: Buffer) {
    if (b.length > 0xffff) throw new IppEncodeError(`value of ${b.length} octets is longer than IPP allows (65535)`);
    this.u16(b.length);
    this.chunks.push(b);
  }
  str16(s: string) {
    this.bytes16(Buffer.from(s, 'utf8'));
  }
  done(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/* ------------------------------------------------------------------ decoding */

/** Decodes a whole IPP message; `data` is whatever follows the end-of-attributes tag (document bytes, usually empty). */
export function decodeMessage(buf: Buffer): IppMessage & { data: Buffer } {
  const r = new Reader(buf);
  return { ...readHead(r), data: r.rest() };
}

/** Header and attributes at the start of `buf`, and where the document data starts; undefined while they are incomplete. */
export function decodeHead(buf: Buffer): { message: IppMessage; end: number } | undefined {
  const r = new Reader(buf);
  try {
    const message = readHead(r);
    return { message, end: r.pos };
  } catch (err) {
    if (err instanceof IppTruncatedError) return undefined;
    throw err;
  }
}

/**
 * Reads a request from a stream (server side): the header and attributes are collected (at most `maxHeadBytes`),
 * and the document is the rest of the same stream, handed on chunk by chunk as it arrives, never held whole.
 */
export async function readRequest(source: AsyncIterable<Buffer>, maxHeadBytes = 256 * 1024): Promise<{ message: IppMessage; document: AsyncIterable<Buffer> }> {
  const it = source[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  for (;;) {
    const head = buf.length ? decodeHead(buf) : undefined;
    if (head) {
      return { message: head.message, document: withHead(buf.subarray(head.end), it) };
    }
    if (buf.length > maxHeadBytes) throw new IppDecodeError(`the request's attributes are longer than ${maxHeadBytes} octets`);
    const next = await it.next();
    if (next.done) throw new IppDecodeError(buf.length ? `request ends inside its attributes (${buf.length} octets)` : 'empty request');
    buf = buf.length ? Buffer.concat([buf, next.value]) : next.value;
  }
}

function readHead(r: Reader): IppMessage {
  const version = r.u16();
  const code = r.u16();
  const requestId = r.u32();
  const groups: IppGroup[] = [];
  let group: IppGroup | undefined;
  for (;;) {
    const tag = r.u8();
    if (tag === GROUP.end) break;
    if (tag <= 0x0f) {
      group = { tag, attributes: [] };
      groups.push(group);
      continue;
    }
    if (!group) throw new IppDecodeError(`attribute before any group tag at offset ${r.pos - 1}`);
    const name = r.str16();
    const value = readValue(r, tag);
    const last = group.attributes[group.attributes.length - 1];
    if (name) group.attributes.push({ name, tag, values: [value] });
    else if (last) addValue(last, tag, value);
    else throw new IppDecodeError(`additional value without an attribute at offset ${r.pos}`);
  }
  return { version, code, requestId, groups };
}

function addValue(attr: IppAttribute, tag: number, value: IppValue): void {
  if (tag !== attr.tag && !attr.tags) attr.tags = attr.values.map(() => attr.tag);
  attr.values.push(value);
  attr.tags?.push(tag);
}

function readValue(r: Reader, tag: number): IppValue {
  const raw = r.bytes16();
  if (tag === TAG.begCollection) return readCollection(r);
  if (tag >= 0x10 && tag <= 0x1f) return null;
  const need = (n: number) => {
    if (raw.length !== n) throw new IppDecodeError(`value with tag 0x${tag.toString(16)} must be ${n} octets, got ${raw.length}`);
  };
  switch (tag) {
    case TAG.integer:
    case TAG.enum:
      need(4);
      return raw.readInt32BE();
    case TAG.boolean:
      need(1);
      return raw[0] !== 0;
    case TAG.rangeOfInteger:
      need(8);
      return { lower: raw.readInt32BE(), upper: raw.readInt32BE(4) };
    case TAG.resolution:
      need(9);
      return { x: raw.readInt32BE(), y: raw.readInt32BE(4), units: raw[8] === 4 ? 'dpcm' : 'dpi' };
    case TAG.dateTime:
      need(11);
      return decodeDate(raw);
    case TAG.textWithLanguage:
    case TAG.nameWithLanguage: {
      const inner = new Reader(raw);
      try {
        return { lang: inner.str16(), text: inner.str16() };
      } catch {
        throw new IppDecodeError(`value with tag 0x${tag.toString(16)} is not a language and a text`); // a short value is malformed, not incomplete
      }
    }
    case TAG.textWithoutLanguage:
    case TAG.nameWithoutLanguage:
    case TAG.keyword:
    case TAG.uri:
    case TAG.uriScheme:
    case TAG.charset:
    case TAG.naturalLanguage:
    case TAG.mimeMediaType:
    case TAG.memberAttrName:
      return raw.toString('utf8');
    default:
      return raw; // octetString, extension and unassigned tags stay bytes
  }
}

/** Members follow a begCollection value until its endCollection (RFC 8010 §3.1.6). */
function readCollection(r: Reader): IppCollection {
  const members: IppAttribute[] = [];
  let member: IppAttribute | undefined;
  let pendingName: string | undefined;
  for (;;) {
    const tag = r.u8();
    if (tag <= 0x0f) throw new IppDecodeError('collection not closed before the next group');
    r.str16(); // member values carry an empty name; the name comes from memberAttrName
    if (tag === TAG.endCollection) {
      r.bytes16();
      return { members };
    }
    if (tag === TAG.memberAttrName) {
      pendingName = r.bytes16().toString('utf8');
      member = undefined;
      continue;
    }
    const value = readValue(r, tag);
    if (pendingName !== undefined) {
      member = { name: pendingName, tag, values: [value] };
      members.push(member);
      pendingName = undefined;
    } else if (member) addValue(member, tag, value);
    else throw new IppDecodeError('collection value without a member name');
  }
}

function decodeDate(b: Buffer): Date {
  const sign = String.fromCharCode(b[8]) === '-' ? -1 : 1;
  const offsetMin = sign * (b[9] * 60 + b[10]);
  const utc = Date.UTC(b.readUInt16BE(0), b[2] - 1, b[3], b[4], b[5], b[6], b[7] * 100);
  return new Date(utc - offsetMin * 60_000);
}

class Reader {
  pos = 0;
  constructor(private buf: Buffer) {}
  private take(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw new IppTruncatedError(`message ends early: need ${n} octets at offset ${this.pos}, have ${this.buf.length - this.pos}`);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  u8() {
    return this.take(1)[0];
  }
  u16() {
    return this.take(2).readUInt16BE();
  }
  u32() {
    return this.take(4).readUInt32BE();
  }
  bytes16() {
    return this.take(this.u16());
  }
  str16() {
    return this.bytes16().toString('utf8');
  }
  rest() {
    return this.buf.subarray(this.pos);
  }
}

/* ------------------------------------------------------------------ helpers */

/** Builds an attribute: `attr(TAG.keyword, 'sides', 'one-sided')`. */
export function attr(tag: number, name: string, ...values: IppValue[]): IppAttribute {
  return { name, tag, values };
}

/** Builds a collection value from members. */
export function collection(...members: IppAttribute[]): IppCollection {
  return { members };
}

/** First attribute of that name in the first group with that tag (or in any group if no tag is given). */
export function findAttribute(msg: Pick<IppMessage, 'groups'>, name: string, groupTag?: number): IppAttribute | undefined {
  for (const g of msg.groups) {
    if (groupTag !== undefined && g.tag !== groupTag) continue;
    const a = g.attributes.find((x) => x.name === name);
    if (a) return a;
  }
  return undefined;
}

/** Attributes of every group with that tag, as name → values (last one wins). */
export function groupValues(msg: Pick<IppMessage, 'groups'>, groupTag: number): Map<string, IppValue[]> {
  const out = new Map<string, IppValue[]>();
  for (const g of msg.groups) if (g.tag === groupTag) for (const a of g.attributes) out.set(a.name, a.values);
  return out;
}

/** Member of a collection value by name. */
export function member(c: IppCollection, name: string): IppAttribute | undefined {
  return c.members.find((m) => m.name === name);
}

export const STATUS_NAMES: Record<number, string> = {
  0x0000: 'successful-ok',
  0x0001: 'successful-ok-ignored-or-substituted-attributes',
  0x0002: 'successful-ok-conflicting-attributes',
  0x0400: 'client-error-bad-request',
  0x0401: 'client-error-forbidden',
  0x0402: 'client-error-not-authenticated',
  0x0403: 'client-error-not-authorized',
  0x0404: 'client-error-not-possible',
  0x0405: 'client-error-timeout',
  0x0406: 'client-error-not-found',
  0x0407: 'client-error-gone',
  0x0408: 'client-error-request-entity-too-large',
  0x0409: 'client-error-request-value-too-long',
  0x040a: 'client-error-document-format-not-supported',
  0x040b: 'client-error-attributes-or-values-not-supported',
  0x040c: 'client-error-uri-scheme-not-supported',
  0x040d: 'client-error-charset-not-supported',
  0x040e: 'client-error-conflicting-attributes',
  0x040f: 'client-error-compression-not-supported',
  0x0410: 'client-error-compression-error',
  0x0411: 'client-error-document-format-error',
  0x0412: 'client-error-document-access-error',
  0x0500: 'server-error-internal-error',
  0x0501: 'server-error-operation-not-supported',
  0x0502: 'server-error-service-unavailable',
  0x0503: 'server-error-version-not-supported',
  0x0504: 'server-error-device-error',
  0x0505: 'server-error-temporary-error',
  0x0506: 'server-error-not-accepting-jobs',
  0x0507: 'server-error-busy',
  0x0508: 'server-error-job-canceled',
  0x0509: 'server-error-multiple-document-jobs-not-supported',
};

export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? `status-0x${code.toString(16).padStart(4, '0')}`;
}
