// Unit tests of the IPP codec: RFC 8010 Appendix A byte vectors, round trips, collections, malformed input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr, collection, decodeMessage, encodeMessage, findAttribute, GROUP, IppDecodeError, member, OPERATION, readRequest, TAG, type IppCollection, type IppMessage } from '../drivers/ipp-codec.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ascii = (s: string) => Buffer.from(s, 'ascii').toString('hex');
const u16 = (n: number) => n.toString(16).padStart(4, '0');
/** One attribute as RFC 8010 §3.1.4 lays it out: tag, name-length, name, value-length, value. */
const a = (tag: number, name: string, valueHex: string) => tag.toString(16).padStart(2, '0') + u16(name.length) + ascii(name) + u16(valueHex.length / 2) + valueHex;

// RFC 8010 Appendix A.2 "Print-Job Request", row by row.
const RFC_PRINT_JOB = hex(
  '0101' + '0002' + '00000001' +
    '01' +
    a(0x47, 'attributes-charset', ascii('utf-8')) +
    a(0x48, 'attributes-natural-language', ascii('en-us')) +
    a(0x45, 'printer-uri', ascii('ipp://printer.example.com/ipp/print/pinetree')) +
    a(0x42, 'job-name', ascii('foobar')) +
    a(0x22, 'ipp-attribute-fidelity', '01') +
    '02' +
    a(0x21, 'copies', '00000014') +
    a(0x44, 'sides', ascii('two-sided-long-edge')) +
    '03' +
    ascii('%!PDF...'),
);

// RFC 8010 Appendix A.4 "Print-Job Response (Failure)": unsupported group with an out-of-band value.
const RFC_PRINT_JOB_UNSUPPORTED = hex(
  '0101' + '040b' + '00000001' +
    '01' +
    a(0x47, 'attributes-charset', ascii('utf-8')) +
    a(0x48, 'attributes-natural-language', ascii('en-us')) +
    a(0x41, 'status-message', ascii('client-error-attributes-or-values-not-supported')) +
    '05' +
    a(0x21, 'copies', '00000014') +
    a(0x10, 'sides', '') +
    '03',
);

test('the RFC 8010 A.2 Print-Job request is encoded byte for byte', () => {
  const msg: IppMessage = {
    version: 0x0101,
    code: OPERATION.printJob,
    requestId: 1,
    groups: [
      {
        tag: GROUP.operation,
        attributes: [
          attr(TAG.charset, 'attributes-charset', 'utf-8'),
          attr(TAG.naturalLanguage, 'attributes-natural-language', 'en-us'),
          attr(TAG.uri, 'printer-uri', 'ipp://printer.example.com/ipp/print/pinetree'),
          attr(TAG.nameWithoutLanguage, 'job-name', 'foobar'),
          attr(TAG.boolean, 'ipp-attribute-fidelity', true),
        ],
      },
      { tag: GROUP.job, attributes: [attr(TAG.integer, 'copies', 20), attr(TAG.keyword, 'sides', 'two-sided-long-edge')] },
    ],
  };
  const header = encodeMessage(msg);
  assert.equal(Buffer.concat([header, Buffer.from('%!PDF...')]).toString('hex'), RFC_PRINT_JOB.toString('hex'));
});

test('the RFC 8010 A.2 Print-Job request decodes to its attributes and document data', () => {
  const msg = decodeMessage(RFC_PRINT_JOB);
  assert.equal(msg.version, 0x0101);
  assert.equal(msg.code, OPERATION.printJob);
  assert.equal(msg.requestId, 1);
  assert.deepEqual(findAttribute(msg, 'copies', GROUP.job)?.values, [20]);
  assert.deepEqual(findAttribute(msg, 'sides')?.values, ['two-sided-long-edge']);
  assert.deepEqual(findAttribute(msg, 'ipp-attribute-fidelity')?.values, [true]);
  assert.equal(msg.data.toString(), '%!PDF...');
});

test('an RFC 8010 A.4 failure response keeps its unsupported group and out-of-band value', () => {
  const msg = decodeMessage(RFC_PRINT_JOB_UNSUPPORTED);
  assert.equal(msg.code, 0x040b);
  const sides = findAttribute(msg, 'sides', GROUP.unsupported);
  assert.equal(sides?.tag, TAG.unsupported);
  assert.deepEqual(sides?.values, [null]);
  assert.equal(encodeMessage(msg).toString('hex'), RFC_PRINT_JOB_UNSUPPORTED.toString('hex'));
});

test('every value syntax survives a round trip', () => {
  const when = new Date(Date.UTC(2026, 10, 24, 10, 27, 35, 400));
  const msg: IppMessage = {
    version: 0x0200,
    code: 0,
    requestId: 0xfffffffe,
    groups: [
      {
        tag: GROUP.printer,
        attributes: [
          attr(TAG.integer, 'neg', -5, 2147483647),
          attr(TAG.enum, 'printer-state', 3),
          attr(TAG.boolean, 'color-supported', false),
          attr(TAG.rangeOfInteger, 'copies-supported', { lower: 1, upper: 999 }),
          attr(TAG.resolution, 'printer-resolution-supported', { x: 600, y: 600, units: 'dpi' }, { x: 118, y: 118, units: 'dpcm' }),
          attr(TAG.dateTime, 'printer-current-time', when),
          attr(TAG.textWithLanguage, 'printer-info', { lang: 'de', text: 'Drucker für Büro' }),
          attr(TAG.nameWithoutLanguage, 'job-name', 'Rechnung Nr. 7 – ü'),
          attr(TAG.octetString, 'blob', Buffer.from([0, 255, 1])),
          attr(TAG.mimeMediaType, 'document-format-supported', 'application/pdf', 'image/pwg-raster'),
          { name: 'job-sheets', tag: TAG.keyword, tags: [TAG.keyword, TAG.nameWithoutLanguage], values: ['none', 'my-banner'] },
          attr(TAG.noValue, 'printer-alert'),
        ],
      },
    ],
  };
  const back = decodeMessage(encodeMessage(msg));
  assert.equal(back.requestId, 0xfffffffe);
  assert.deepEqual(back.groups[0].attributes.slice(0, -1), msg.groups[0].attributes.slice(0, -1));
  assert.deepEqual(back.groups[0].attributes.at(-1), { name: 'printer-alert', tag: TAG.noValue, values: [null] });
  assert.equal(back.data.length, 0);
});

test('nested collections (media-col with media-size) round trip and are laid out as RFC 8010 §3.1.6 says', () => {
  const mediaCol = collection(
    attr(TAG.begCollection, 'media-size', collection(attr(TAG.integer, 'x-dimension', 21000), attr(TAG.integer, 'y-dimension', 29700))),
    attr(TAG.keyword, 'media-source', 'tray-1'),
  );
  const msg: IppMessage = { version: 0x0200, code: 2, requestId: 9, groups: [{ tag: GROUP.job, attributes: [attr(TAG.begCollection, 'media-col', mediaCol, collection())] }] };
  const bytes = encodeMessage(msg);
  const expected = hex(
    '0200' + '0002' + '00000009' + '02' +
      a(0x34, 'media-col', '') +
      a(0x4a, '', ascii('media-size')) + a(0x34, '', '') +
      a(0x4a, '', ascii('x-dimension')) + a(0x21, '', '00005208') +
      a(0x4a, '', ascii('y-dimension')) + a(0x21, '', '00007404') +
      a(0x37, '', '') +
      a(0x4a, '', ascii('media-source')) + a(0x44, '', ascii('tray-1')) +
      a(0x37, '', '') +
      a(0x34, '', '') + a(0x37, '', '') + // the second, empty collection value
      '03',
  );
  assert.equal(bytes.toString('hex'), expected.toString('hex'));
  const back = decodeMessage(bytes);
  const col = findAttribute(back, 'media-col')!;
  assert.equal(col.values.length, 2);
  const size = member(col.values[0] as IppCollection, 'media-size')!.values[0] as IppCollection;
  assert.deepEqual(member(size, 'y-dimension')?.values, [29700]);
  assert.deepEqual(member(col.values[0] as IppCollection, 'media-source')?.values, ['tray-1']);
  assert.deepEqual(back.groups, msg.groups);
});

test('a dateTime with a time zone offset is read as the right instant', () => {
  // 2017-01-02 03:04:05.6 at UTC-05:30 = 08:34:05.6 UTC
  const raw = hex('0200 0000 00000001 04' + a(0x31, 'printer-current-time', '07e1' + '01' + '02' + '03' + '04' + '05' + '06' + ascii('-') + '05' + '1e') + '03');
  const t = findAttribute(decodeMessage(raw), 'printer-current-time')!.values[0] as Date;
  assert.equal(t.toISOString(), '2017-01-02T08:34:05.600Z');
});

test('truncated or malformed messages are refused with ipp_malformed, never misread', () => {
  for (let cut = 1; cut < RFC_PRINT_JOB_UNSUPPORTED.length; cut++) {
    assert.throws(() => decodeMessage(RFC_PRINT_JOB_UNSUPPORTED.subarray(0, cut)), (e: unknown) => e instanceof IppDecodeError && e.code === 'ipp_malformed', `cut at ${cut}`);
  }
  assert.throws(() => decodeMessage(hex('0200 0000 00000001' + a(0x21, 'copies', '00000001') + '03')), /before any group/);
  assert.throws(() => decodeMessage(hex('0200 0000 00000001 02' + a(0x21, 'copies', '0001') + '03')), /must be 4 octets/);
  assert.throws(() => decodeMessage(hex('0200 0000 00000001 02' + a(0x34, 'media-col', '') + '03')), IppDecodeError);
});

test('a value longer than 65535 octets cannot be encoded', () => {
  const msg: IppMessage = { version: 0x0200, code: 2, requestId: 1, groups: [{ tag: GROUP.operation, attributes: [attr(TAG.textWithoutLanguage, 'x', 'a'.repeat(70000))] }] };
  assert.throws(() => encodeMessage(msg), (e: unknown) => (e as { code?: string }).code === 'ipp_unencodable');
});

test('readRequest (server side) hands over the attributes before the document has arrived, then the document as it comes', async () => {
  const head = encodeMessage({ version: 0x0200, code: OPERATION.printJob, requestId: 7, groups: [{ tag: GROUP.operation, attributes: [attr(TAG.charset, 'attributes-charset', 'utf-8'), attr(TAG.naturalLanguage, 'attributes-natural-language', 'en'), attr(TAG.nameWithoutLanguage, 'job-name', 'x'.repeat(300))] }] });
  let produced = 0;
  async function* source() {
    yield head.subarray(0, 5); // the header split across chunks, as TLS records split it
    yield Buffer.concat([head.subarray(5), Buffer.from('AB')]);
    for (let i = 0; i < 100; i++) {
      produced++;
      yield Buffer.alloc(1000, i);
    }
  }
  const { message, document } = await readRequest(source());
  assert.equal(produced, 0, 'no document chunk was read to decode the attributes');
  assert.equal(findAttribute(message, 'job-name')?.values[0], 'x'.repeat(300));
  let bytes = 0;
  let first: Buffer | undefined;
  for await (const c of document) {
    first ??= c;
    bytes += c.length;
    assert.ok(produced <= 100);
  }
  assert.equal(first!.toString(), 'AB');
  assert.equal(bytes, 2 + 100 * 1000);
});

test('readRequest refuses a request that ends inside its attributes, and attributes past the limit', async () => {
  const head = encodeMessage({ version: 0x0200, code: OPERATION.getPrinterAttributes, requestId: 1, groups: [{ tag: GROUP.operation, attributes: [attr(TAG.charset, 'attributes-charset', 'utf-8')] }] });
  await assert.rejects(readRequest((async function* () { yield head.subarray(0, head.length - 1); })()), (e: Error) => e instanceof IppDecodeError && /ends inside its attributes/.test(e.message));
  await assert.rejects(readRequest((async function* () {})()), /empty request/);
  async function* endless() {
    yield head.subarray(0, head.length - 1);
    for (let i = 0; i < 1000; i++) yield Buffer.alloc(1024, 0x41); // never ends the attributes
  }
  await assert.rejects(readRequest(endless(), 64 * 1024), /longer than 65536 octets/);
});
