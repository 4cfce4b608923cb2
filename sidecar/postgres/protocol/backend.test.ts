// Backend messages: what our encoders produce is parsed with pg-protocol's Parser (the client side of
// node-postgres), for any chunking; our decoders run on bytes built by hand here (pg-protocol has no
// backend serializer), also for any chunking; random bodies raise only ProtocolError.
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { Parser } from 'pg-protocol/dist/parser';
import type { BackendMessage } from 'pg-protocol/dist/messages';
import { ProtocolError } from './errors';
import { FrameReader, type Frame } from './frame-reader';
import {
  decodeAuthentication,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeCopyResponse,
  decodeDataRow,
  decodeNoticeFields,
  decodeParameterStatus,
  decodeReadyForQuery,
  decodeRowDescription,
  encodeAuthenticationCleartext,
  encodeAuthenticationOk,
  encodeBackendKeyData,
  encodeCopyData,
  encodeDataRow,
  encodeErrorResponse,
  encodeNegotiateProtocolVersion,
  encodeNoticeResponse,
  encodeParameterStatus,
  encodeReadyForQuery,
  type ErrorFields,
} from './backend';
import { arbText, byte, chunkings, cstr, int16, int32, msg, splitAt, uint32 } from '../../../test/support/sidecar/pg-bytes';

// ---- local helpers (independent of the code under test) ----

/** An independent ErrorResponse/NoticeResponse field reader, to see fields pg-protocol drops (V). */
function fieldsOf(bytes: Buffer): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let p = 5;
  while (bytes[p] !== 0) {
    const t = String.fromCharCode(bytes[p++]);
    const nul = bytes.indexOf(0, p);
    out.push([t, bytes.toString('utf8', p, nul)]);
    p = nul + 1;
  }
  expect(p + 1).toBe(bytes.length);
  return out;
}

/** pg-protocol's Parser over chunks; checks it consumed everything. */
function pgParse(chunks: Buffer[]): BackendMessage[] {
  const parser = new Parser();
  const out: BackendMessage[] = [];
  for (const c of chunks) parser.parse(c, (m) => out.push(m));
  const left = (parser as unknown as { bufferLength: number }).bufferLength;
  if (left !== 0) expect(left).toBe(0);
  return out;
}

/** Cheap deep equality for property loops; falls back to expect for a readable diff on failure. */
function same(actual: unknown, expected: unknown): void {
  if (!isDeepStrictEqual(actual, expected)) expect(actual).toEqual(expected);
}

/** Our FrameReader + a decoder over chunks. */
function ourParse<T>(chunks: Buffer[], decode: (f: Frame) => T): T[] {
  const reader = new FrameReader(1 << 20);
  const out: T[] = [];
  for (const c of chunks) {
    reader.push(c);
    for (let f = reader.next(); f; f = reader.next()) out.push(decode(f));
  }
  if (reader.pending !== 0) expect(reader.pending).toBe(0);
  return out;
}

const pick = (m: BackendMessage, keys: string[]): Record<string, unknown> => {
  const r: Record<string, unknown> = {};
  for (const k of keys) r[k] = (m as unknown as Record<string, unknown>)[k];
  return r;
};

// ---- encoders, parsed by pg-protocol ----

describe('backend encoders, parsed by pg-protocol', () => {
  const denial: ErrorFields = {
    severity: 'ERROR',
    code: '42501',
    message: 'denied by policy "no-ddl": DROP is not allowed',
    detail: 'rule no-ddl',
    hint: 'ask an SRE ☃',
  };
  const fatal: ErrorFields = { severity: 'FATAL', code: '28P01', message: 'password authentication failed' };
  const notice: ErrorFields = { severity: 'WARNING', code: '01000', message: 'rows masked', detail: 'email' };

  test('ErrorResponse', () => {
    const bytes = encodeErrorResponse(denial);
    for (const [, chunks] of chunkings([bytes])) {
      const [m] = pgParse(chunks);
      expect(m.name).toBe('error');
      expect(pick(m, ['message', 'severity', 'code', 'detail', 'hint', 'length'])).toEqual({
        message: denial.message,
        severity: 'ERROR',
        code: '42501',
        detail: 'rule no-ddl',
        hint: 'ask an SRE ☃',
        length: bytes.length - 1,
      });
    }
    // V (non-localized severity) is required by libpq >= 9.6 clients; pg-protocol ignores it.
    expect(fieldsOf(bytes)).toEqual([
      ['S', 'ERROR'],
      ['V', 'ERROR'],
      ['C', '42501'],
      ['M', denial.message],
      ['D', 'rule no-ddl'],
      ['H', 'ask an SRE ☃'],
    ]);
    const f = fieldsOf(encodeErrorResponse(fatal));
    expect(f.map(([t]) => t)).toEqual(['S', 'V', 'C', 'M']);
  });

  test('NoticeResponse', () => {
    const bytes = encodeNoticeResponse(notice);
    for (const [, chunks] of chunkings([bytes])) {
      const [m] = pgParse(chunks);
      expect(m.name).toBe('notice');
      expect(pick(m, ['message', 'severity', 'code', 'detail', 'hint'])).toEqual({
        message: 'rows masked',
        severity: 'WARNING',
        code: '01000',
        detail: 'email',
        hint: undefined,
      });
    }
  });

  test('ReadyForQuery', () => {
    for (const s of ['I', 'T', 'E'] as const) {
      const bytes = encodeReadyForQuery(s);
      expect(bytes).toEqual(msg('Z', byte(s)));
      const [m] = pgParse([bytes]);
      expect(pick(m, ['name', 'status', 'length'])).toEqual({ name: 'readyForQuery', status: s, length: 5 });
    }
  });

  test('AuthenticationOk, AuthenticationCleartextPassword', () => {
    expect(pgParse([encodeAuthenticationOk()]).map((m) => pick(m, ['name', 'length']))).toEqual([{ name: 'authenticationOk', length: 8 }]);
    expect(pgParse([encodeAuthenticationCleartext()]).map((m) => m.name)).toEqual(['authenticationCleartextPassword']);
  });

  test('ParameterStatus', () => {
    const bytes = encodeParameterStatus('application_name', 'wärden ☃');
    const [m] = pgParse(splitAt(bytes, [3, 9]));
    expect(pick(m, ['name', 'parameterName', 'parameterValue'])).toEqual({
      name: 'parameterStatus',
      parameterName: 'application_name',
      parameterValue: 'wärden ☃',
    });
    const long = encodeParameterStatus('k'.repeat(300), 'v'.repeat(600));
    expect(pick(pgParse([long])[0], ['parameterName', 'parameterValue'])).toEqual({
      parameterName: 'k'.repeat(300),
      parameterValue: 'v'.repeat(600),
    });
  });

  test('BackendKeyData', () => {
    const bytes = encodeBackendKeyData(0x7fffffff, int32(-123456));
    expect(pick(pgParse([bytes])[0], ['name', 'processID', 'secretKey'])).toEqual({
      name: 'backendKeyData',
      processID: 0x7fffffff,
      secretKey: -123456,
    });
    // Protocol 3.2: longer secret key; pg-protocol reads only 4 bytes of it, so check by hand.
    const key = Buffer.alloc(32, 0xab);
    expect(encodeBackendKeyData(12, key)).toEqual(msg('K', int32(12), key));
  });

  test('DataRow', () => {
    const values = [Buffer.from('1'), null, Buffer.from(''), Buffer.from('ünï'), Buffer.from('x'.repeat(1000))];
    const bytes = encodeDataRow(values);
    for (const [, chunks] of chunkings([bytes])) {
      const [m] = pgParse(chunks);
      expect(pick(m, ['name', 'fieldCount', 'fields'])).toEqual({
        name: 'dataRow',
        fieldCount: 5,
        fields: ['1', null, '', 'ünï', 'x'.repeat(1000)],
      });
    }
    expect(pick(pgParse([encodeDataRow([])])[0], ['fieldCount', 'fields'])).toEqual({ fieldCount: 0, fields: [] });
  });

  test('CopyData', () => {
    const data = Buffer.from(Array.from({ length: 700 }, (_, i) => i & 0xff));
    const [m] = pgParse(splitAt(encodeCopyData(data), [1, 5, 6, 400]));
    expect(m.name).toBe('copyData');
    expect(Buffer.from((m as unknown as { chunk: Buffer }).chunk)).toEqual(data);
    expect(Buffer.from((pgParse([encodeCopyData(Buffer.alloc(0))])[0] as unknown as { chunk: Buffer }).chunk)).toEqual(Buffer.alloc(0));
  });

  test('NegotiateProtocolVersion (no pg-protocol parser: compared with hand-built bytes)', () => {
    expect(encodeNegotiateProtocolVersion(0, [])).toEqual(msg('v', int32(0), int32(0)));
    expect(encodeNegotiateProtocolVersion(0, ['_pq_.foo', '_pq_.' + 'b'.repeat(100)])).toEqual(
      msg('v', int32(0), int32(2), cstr('_pq_.foo'), cstr('_pq_.' + 'b'.repeat(100))),
    );
  });

  test.each(
    (() => {
      const stream = [
        encodeAuthenticationOk(),
        encodeParameterStatus('server_version', '16.4'),
        encodeParameterStatus('client_encoding', 'UTF8'),
        encodeBackendKeyData(42, int32(7)),
        encodeNoticeResponse(notice),
        encodeDataRow([Buffer.from('a'), null]),
        encodeCopyData(Buffer.from('row\n')),
        encodeErrorResponse(denial),
        encodeReadyForQuery('I'),
      ];
      return chunkings(stream).map(([label, chunks]) => [label, chunks] as const);
    })(),
  )('a whole login+denial stream parses identically when chunked %s', (_label, chunks) => {
    expect(pgParse(chunks).map((m) => m.name)).toEqual([
      'authenticationOk',
      'parameterStatus',
      'parameterStatus',
      'backendKeyData',
      'notice',
      'dataRow',
      'copyData',
      'error',
      'readyForQuery',
    ]);
  });

  test('property: DataRow values round-trip through pg-protocol for any chunking', () => {
    const arbValue = fc.oneof(
      fc.constant(null),
      arbText(30, true).map((s) => Buffer.from(s, 'utf8')),
    );
    fc.assert(
      fc.property(
        fc.array(fc.array(arbValue, { maxLength: 8 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat({ max: 500 }), { maxLength: 6 }),
        (rows, cuts) => {
          const all = Buffer.concat(rows.map((r) => encodeDataRow(r)));
          const got = pgParse(splitAt(all, cuts)).map((m) => (m as unknown as { fields: unknown[] }).fields);
          same(
            got,
            rows.map((r) => r.map((v) => (v === null ? null : v.toString('utf8')))),
          );
          // And our own decoder agrees, on the same chunking.
          const ours = ourParse(splitAt(all, cuts), (f) => decodeDataRow(f).map((v) => (v ? Buffer.from(v) : null)));
          same(ours, rows);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('property: ErrorResponse/NoticeResponse/ParameterStatus text round-trips through pg-protocol', () => {
    const text = arbText(40);
    fc.assert(
      fc.property(
        text.filter((s) => s !== ''),
        text,
        text,
        text,
        fc.constantFrom('ERROR', 'FATAL', 'WARNING', 'NOTICE') as fc.Arbitrary<ErrorFields['severity']>,
        (message, detail, key, value, severity) => {
          const e: ErrorFields = { severity, code: '42501', message, detail: detail || undefined };
          const [m] = pgParse([encodeErrorResponse(e)]);
          same(pick(m, ['message', 'severity', 'code', 'detail']), { message, severity, code: '42501', detail: detail || undefined });
          const [p] = pgParse([encodeParameterStatus(key, value)]);
          same(pick(p, ['parameterName', 'parameterValue']), { parameterName: key, parameterValue: value });
        },
      ),
      { numRuns: 200 },
    );
  });
});

// ---- decoders, on hand-built server messages ----

describe('backend decoders on hand-built messages', () => {
  const run = <T>(bytes: Buffer[], decode: (f: Frame) => T): T[] => {
    const results = chunkings(bytes).map(([, chunks]) => ourParse(chunks, decode));
    for (const r of results.slice(1)) expect(r).toEqual(results[0]);
    return results[0];
  };

  test('Authentication requests', () => {
    const stream = [
      msg('R', int32(0)),
      msg('R', int32(3)),
      msg('R', int32(5), Buffer.from([1, 2, 3, 4])),
      msg('R', int32(10), cstr('SCRAM-SHA-256-PLUS'), cstr('SCRAM-SHA-256'), cstr('')),
      msg('R', int32(11), Buffer.from('r=abc,s=c2FsdA==,i=4096')),
      msg('R', int32(12), Buffer.from('v=c2ln')),
      msg('R', int32(7)),
    ];
    expect(run(stream, decodeAuthentication)).toEqual([
      { name: 'authOk' },
      { name: 'authCleartext' },
      { name: 'authMd5', salt: Buffer.from([1, 2, 3, 4]) },
      { name: 'authSasl', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] },
      { name: 'authSaslContinue', data: Buffer.from('r=abc,s=c2FsdA==,i=4096') },
      { name: 'authSaslFinal', data: Buffer.from('v=c2ln') },
      { name: 'authOther', code: 7 },
    ]);
  });

  test('RowDescription', () => {
    const field = (name: string, table: number, col: number, type: number, size: number, mod: number, fmt: number) =>
      Buffer.concat([cstr(name), uint32(table), int16(col), uint32(type), int16(size), int32(mod), int16(fmt)]);
    const bytes = msg('T', int16(2), field('id', 16384, 1, 23, 4, -1, 0), field('émail', 0xffffffff, -1, 0x80000001, -1, 68, 1));
    expect(run([bytes], decodeRowDescription)).toEqual([
      [
        { name: 'id', tableOid: 16384, columnAttr: 1, typeOid: 23, typeSize: 4, typeMod: -1, format: 0 },
        { name: 'émail', tableOid: 0xffffffff, columnAttr: -1, typeOid: 0x80000001, typeSize: -1, typeMod: 68, format: 1 },
      ],
    ]);
  });

  test('DataRow', () => {
    const bytes = msg('D', int16(3), int32(1), Buffer.from('7'), int32(-1), int32(0));
    expect(run([bytes], (f) => decodeDataRow(f).map((v) => (v ? Buffer.from(v) : v)))).toEqual([[Buffer.from('7'), null, Buffer.alloc(0)]]);
  });

  test('ErrorResponse / NoticeResponse fields', () => {
    const bytes = msg(
      'E',
      byte('S'),
      cstr('ERROR'),
      byte('C'),
      cstr('42P01'),
      byte('M'),
      cstr('relation "x" does not exist'),
      byte('P'),
      cstr('15'),
      byte(0),
    );
    expect(run([bytes, msg('N', byte(0))], decodeNoticeFields)).toEqual([
      { S: 'ERROR', C: '42P01', M: 'relation "x" does not exist', P: '15' },
      {},
    ]);
  });

  test('ReadyForQuery, ParameterStatus, BackendKeyData, CommandComplete, CopyIn/OutResponse', () => {
    const stream = [
      msg('Z', byte('T')),
      msg('S', cstr('TimeZone'), cstr('UTC')),
      msg('K', int32(99), int32(-5)),
      msg('C', cstr('INSERT 0 3')),
      msg('H', byte(0), int16(2), int16(0), int16(0)),
      msg('G', byte(1), int16(1), int16(1)),
    ];
    const out = run(stream, (f) => {
      switch (String.fromCharCode(f.code)) {
        case 'Z':
          return decodeReadyForQuery(f);
        case 'S':
          return decodeParameterStatus(f);
        case 'K':
          return decodeBackendKeyData(f);
        case 'C':
          return decodeCommandComplete(f);
        default:
          return decodeCopyResponse(f);
      }
    });
    expect(out).toEqual([
      'T',
      { key: 'TimeZone', value: 'UTC' },
      { processId: 99, secretKey: int32(-5) },
      'INSERT 0 3',
      { format: 0, columnFormats: [0, 0] },
      { format: 1, columnFormats: [1] },
    ]);
  });

  test.each<[string, Buffer, (f: Frame) => unknown]>([
    ['Authentication without code', msg('R', Buffer.from([0, 0])), decodeAuthentication],
    ['AuthenticationMD5Password without salt', msg('R', int32(5), Buffer.from([1, 2])), decodeAuthentication],
    ['AuthenticationSASL without terminator', msg('R', int32(10), cstr('SCRAM-SHA-256')), decodeAuthentication],
    ['RowDescription truncated', msg('T', int16(1), cstr('id'), uint32(1)), decodeRowDescription],
    ['RowDescription negative count', msg('T', int16(-1)), decodeRowDescription],
    ['RowDescription trailing bytes', msg('T', int16(0), byte(1)), decodeRowDescription],
    ['DataRow value past the end', msg('D', int16(1), int32(100), Buffer.from('abc')), decodeDataRow],
    ['DataRow length -2', msg('D', int16(1), int32(-2)), decodeDataRow],
    ['DataRow negative count', msg('D', int16(-1)), decodeDataRow],
    ['DataRow trailing bytes', msg('D', int16(0), byte(0)), decodeDataRow],
    ['ErrorResponse without terminator', msg('E', byte('S'), cstr('ERROR')), decodeNoticeFields],
    ['ErrorResponse unterminated value', msg('E', byte('M'), Buffer.from('oops')), decodeNoticeFields],
    ['ReadyForQuery empty', msg('Z'), decodeReadyForQuery],
    ['ReadyForQuery two bytes', msg('Z', Buffer.from('II')), decodeReadyForQuery],
    ['ReadyForQuery bad status', msg('Z', byte('X')), decodeReadyForQuery],
    ['ParameterStatus without value', msg('S', cstr('k')), decodeParameterStatus],
    ['BackendKeyData too short', msg('K', int16(1)), decodeBackendKeyData],
    ['CommandComplete unterminated', msg('C', Buffer.from('SELECT 1')), decodeCommandComplete],
    ['CopyOutResponse truncated', msg('H', byte(0), int16(3), int16(0)), decodeCopyResponse],
  ])('%s is a ProtocolError (even with NULs after the frame)', (_label, bytes, decode) => {
    const buf = Buffer.concat([bytes, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])]);
    const f: Frame = { code: bytes[0], buf, start: 0, body: 5, end: bytes.length };
    expect(() => decode(f)).toThrow(ProtocolError);
  });

  test('property: random backend bodies raise only ProtocolError in every decoder, reading nothing past end', () => {
    const decoders: Array<(f: Frame) => unknown> = [
      decodeAuthentication,
      decodeRowDescription,
      (f) => decodeDataRow(f).map((v) => (v ? Buffer.from(v) : v)),
      decodeNoticeFields,
      decodeReadyForQuery,
      decodeParameterStatus,
      decodeBackendKeyData,
      decodeCommandComplete,
      decodeCopyResponse,
    ];
    const arbBody = fc.oneof(
      fc.uint8Array({ maxLength: 80 }).map((u) => Buffer.from(u)),
      // Plausible prefixes make the decoders go deeper before failing.
      fc
        .tuple(fc.integer({ min: -2, max: 40 }), fc.uint8Array({ maxLength: 60 }))
        .map(([n, u]) => Buffer.concat([int16(n), Buffer.from(u)])),
      fc
        .tuple(fc.constantFrom(0, 3, 5, 10, 11, 12), fc.uint8Array({ maxLength: 40 }))
        .map(([n, u]) => Buffer.concat([int32(n), Buffer.from(u)])),
    );
    fc.assert(
      fc.property(arbBody, fc.uint8Array({ maxLength: 8 }), (body, trailer) => {
        const bytes = msg(0x41, body);
        const embedded: Frame = { code: 0x41, buf: Buffer.concat([bytes, Buffer.from(trailer)]), start: 0, body: 5, end: bytes.length };
        const exact: Frame = { code: 0x41, buf: bytes, start: 0, body: 5, end: bytes.length };
        // Plain checks (not expect) in this hot loop: it runs every decoder on every sample.
        const attempt = (d: (f: Frame) => unknown, f: Frame): { ok: unknown } | { err: ProtocolError } => {
          try {
            return { ok: d(f) };
          } catch (e) {
            if (!(e instanceof ProtocolError)) throw e;
            return { err: e };
          }
        };
        for (const d of decoders) {
          const a = attempt(d, embedded);
          const b = attempt(d, exact);
          if ('err' in a || 'err' in b) {
            if (!('err' in a && 'err' in b)) throw new Error(`${d.name}: outcome depends on bytes past the frame end`);
          } else if (!isDeepStrictEqual(a.ok, b.ok)) {
            throw new Error(`${d.name}: result depends on bytes past the frame end`);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
