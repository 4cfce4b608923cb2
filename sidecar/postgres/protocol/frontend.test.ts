// Frontend messages: our decoders on bytes built by pg-protocol's serializer (or by hand where it has
// no builder), for any chunking; our encoders checked byte-for-byte against pg-protocol; startup
// packets; property-based round trips and robustness.
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import { ProtocolError } from './errors';
import { FrameReader, type Frame } from './frame-reader';
import {
  decodeBind,
  decodeBindHead,
  decodeClose,
  decodeDescribe,
  decodeExecute,
  decodeFrontend,
  decodeParse,
  decodeQuery,
  decodeStartup,
  encodeCancelRequest,
  encodeDescribe,
  encodeParse,
  encodePassword,
  encodeQuery,
  encodeSaslInitial,
  encodeSaslResponse,
  encodeSslRequest,
  encodeStartup,
  encodeSync,
  encodeTerminate,
  type FrontendMessage,
  type StartupPacket,
} from './frontend';
import {
  arbText,
  chunkings,
  copy,
  cstr,
  int16,
  int32,
  msg,
  splitAt,
  startupPacket,
  type ChunkingOptions,
} from '../../../test/support/sidecar/pg-bytes';

// ---- local helpers (independent of the code under test) ----

/** Where this file's chunkings cut: near the start and around each boundary. */
const CUTS: ChunkingOptions = { start: [1, 3], around: [-1, 2] };

/** Decodes every typed frame; decoding happens as frames come out (they are views). */
function decodeAll(chunks: Buffer[], maxLength = 1 << 20): FrontendMessage[] {
  const reader = new FrameReader(maxLength);
  const out: FrontendMessage[] = [];
  for (const c of chunks) {
    reader.push(c);
    for (let f = reader.next(); f; f = reader.next()) out.push(normalize(decodeFrontend(f)));
  }
  if (reader.pending !== 0) expect(reader.pending).toBe(0);
  return out;
}

/** Cheap deep equality for property loops; falls back to expect for a readable diff on failure. */
function same(actual: unknown, expected: unknown): void {
  if (!isDeepStrictEqual(actual, expected)) expect(actual).toEqual(expected);
}

/** Copies Buffer views so results compare by value and survive later chunks. */
function normalize(m: FrontendMessage): FrontendMessage {
  switch (m.name) {
    case 'bind':
      return { ...m, params: m.params.map((p) => (p ? Buffer.from(p) : null)) };
    case 'copyData':
    case 'password':
      return { ...m, data: Buffer.from(m.data) };
    default:
      return m;
  }
}

/** A frame over `bytes` embedded in a larger buffer with trailing garbage, to catch reads past `end`. */
function embedded(bytes: Buffer, trailer: Buffer = Buffer.from([0, 0, 0, 0, 0x41, 0])): Frame {
  const pre = Buffer.from([0xee, 0xee, 0xee]);
  const buf = Buffer.concat([pre, bytes, trailer]);
  return { code: bytes[0], buf, start: pre.length, body: pre.length + 5, end: pre.length + bytes.length };
}

function startupFrame(bytes: Buffer, trailer: Buffer = Buffer.from([0, 0, 0])): Frame {
  const buf = Buffer.concat([bytes, trailer]);
  return { code: 0, buf, start: 0, body: 4, end: bytes.length };
}

function expectProtocolError(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    return e;
  }
  throw new Error('expected a ProtocolError');
}

// ---- decoding pg-protocol's messages ----

describe('decodeFrontend on pg-protocol messages', () => {
  const CASES: Array<[Buffer, FrontendMessage]> = [
    [copy(serialize.query('select 1')), { name: 'query', text: 'select 1' }],
    [copy(serialize.query('')), { name: 'query', text: '' }],
    [copy(serialize.query("select 'ünïcødé ☃ 𝄞'")), { name: 'query', text: "select 'ünïcødé ☃ 𝄞'" }],
    [
      copy(serialize.parse({ name: 'stmt_1', text: 'select $1, $2', types: [23, 25] })),
      { name: 'parse', statement: 'stmt_1', text: 'select $1, $2', paramTypes: [23, 25] },
    ],
    [copy(serialize.parse({ text: 'select 1' })), { name: 'parse', statement: '', text: 'select 1', paramTypes: [] }],
    // OIDs are unsigned 32-bit.
    [
      copy(serialize.parse({ text: 'x', types: [0xffffffff, 0x80000000] })),
      { name: 'parse', statement: '', text: 'x', paramTypes: [0xffffffff, 0x80000000] },
    ],
    [
      copy(serialize.bind({ portal: 'p1', statement: 's1', values: ['abc', null, Buffer.from([0, 255]), ''] })),
      {
        name: 'bind',
        portal: 'p1',
        statement: 's1',
        paramFormats: [0, 0, 1, 0],
        params: [Buffer.from('abc'), null, Buffer.from([0, 255]), Buffer.alloc(0)],
        resultFormats: [0],
      },
    ],
    [copy(serialize.bind({ binary: true })), { name: 'bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [1] }],
    [copy(serialize.execute()), { name: 'execute', portal: '', maxRows: 0 }],
    [copy(serialize.execute({ portal: 'cur', rows: 100 })), { name: 'execute', portal: 'cur', maxRows: 100 }],
    [copy(serialize.describe({ type: 'S', name: 'stmt' })), { name: 'describe', kind: 'S', target: 'stmt' }],
    [copy(serialize.describe({ type: 'P' })), { name: 'describe', kind: 'P', target: '' }],
    [copy(serialize.describe({ type: 'S' })), { name: 'describe', kind: 'S', target: '' }],
    [copy(serialize.close({ type: 'P', name: 'cur' })), { name: 'close', kind: 'P', target: 'cur' }],
    [copy(serialize.close({ type: 'S' })), { name: 'close', kind: 'S', target: '' }],
    [copy(serialize.sync()), { name: 'sync' }],
    [copy(serialize.flush()), { name: 'flush' }],
    [copy(serialize.end()), { name: 'terminate' }],
    [copy(serialize.copyData(Buffer.from('1\tada\n'))), { name: 'copyData', data: Buffer.from('1\tada\n') }],
    [copy(serialize.copyData(Buffer.alloc(0))), { name: 'copyData', data: Buffer.alloc(0) }],
    [copy(serialize.copyDone()), { name: 'copyDone' }],
    [copy(serialize.copyFail('client gave up')), { name: 'copyFail', message: 'client gave up' }],
    [copy(serialize.password('s3cret')), { name: 'password', data: Buffer.from('s3cret\0') }],
    [
      copy(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', 'n,,n=,r=abc')),
      { name: 'password', data: Buffer.concat([cstr('SCRAM-SHA-256'), int32(11), Buffer.from('n,,n=,r=abc')]) },
    ],
    [copy(serialize.sendSCRAMClientFinalMessage('c=biws,r=abc,p=xyz')), { name: 'password', data: Buffer.from('c=biws,r=abc,p=xyz') }],
    // FunctionCall has no pg-protocol builder: by hand (oid, then arguments we do not decode).
    [msg(0x46, Buffer.concat([int32(-1), int16(0), int16(0), int16(0)])), { name: 'functionCall', oid: 0xffffffff }],
  ];

  test.each(CASES.map(([bytes, expected]) => [expected.name, bytes, expected] as const))('%s', (_n, bytes, expected) => {
    for (const [, chunks] of chunkings([bytes], CUTS)) expect(decodeAll(chunks)).toEqual([expected]);
    // The same frame inside a larger buffer: nothing past `end` is read.
    expect(normalize(decodeFrontend(embedded(bytes)))).toEqual(expected);
  });

  test.each(
    chunkings(
      CASES.map((c) => c[0]),
      CUTS,
    ),
  )('the whole pipeline in one stream, chunked %s', (_label, chunks) => {
    expect(decodeAll(chunks)).toEqual(CASES.map((c) => c[1]));
  });

  test('per-message decoders agree with decodeFrontend', () => {
    const frame = (b: Buffer): Frame => embedded(b);
    expect(decodeQuery(frame(copy(serialize.query('q'))))).toBe('q');
    expect(decodeParse(frame(copy(serialize.parse({ name: 'a', text: 'b', types: [1] }))))).toEqual({
      name: 'parse',
      statement: 'a',
      text: 'b',
      paramTypes: [1],
    });
    const bind = copy(serialize.bind({ portal: 'p', statement: 's', values: ['1'], binary: true }));
    expect(decodeBindHead(frame(bind))).toEqual({ portal: 'p', statement: 's', resultFormats: [1] });
    expect(decodeBind(frame(bind)).params).toEqual([Buffer.from('1')]);
    expect(decodeExecute(frame(copy(serialize.execute({ portal: 'p', rows: 7 }))))).toEqual({ portal: 'p', maxRows: 7 });
    expect(decodeDescribe(frame(copy(serialize.describe({ type: 'P', name: 'p' }))))).toEqual({ kind: 'P', target: 'p' });
    expect(decodeClose(frame(copy(serialize.close({ type: 'S', name: 's' }))))).toEqual({ kind: 'S', target: 's' });
  });

  test('Bind parameter values are views inside the frame', () => {
    const f = embedded(copy(serialize.bind({ values: ['hello'] })));
    const p = decodeBind(f).params[0]!;
    expect(p.buffer).toBe(f.buf.buffer);
    expect(p.byteOffset).toBeGreaterThanOrEqual(f.buf.byteOffset + f.body);
    expect(p.byteOffset + p.length).toBeLessThanOrEqual(f.buf.byteOffset + f.end);
  });
});

describe('decodeFrontend rejects malformed messages with ProtocolError', () => {
  const bad: Array<[string, Buffer]> = [
    ['Query without terminator (a NUL after the frame must not count)', msg(0x51, Buffer.from('select 1'))],
    ['Query with trailing bytes', msg(0x51, Buffer.concat([cstr('a'), Buffer.from('b')]))],
    ['Parse truncated in the type list', msg(0x50, Buffer.concat([cstr(''), cstr('x'), int16(2), int32(23)]))],
    ['Parse with negative type count', msg(0x50, Buffer.concat([cstr(''), cstr('x'), int16(-1)]))],
    ['Parse with trailing bytes', msg(0x50, Buffer.concat([cstr(''), cstr('x'), int16(0), Buffer.from([1])]))],
    ['Bind with invalid format code', msg(0x42, Buffer.concat([cstr(''), cstr(''), int16(1), int16(2), int16(0), int16(0)]))],
    ['Bind with negative format count', msg(0x42, Buffer.concat([cstr(''), cstr(''), int16(-1)]))],
    ['Bind with negative parameter count', msg(0x42, Buffer.concat([cstr(''), cstr(''), int16(0), int16(-3)]))],
    ['Bind with parameter length -2', msg(0x42, Buffer.concat([cstr(''), cstr(''), int16(0), int16(1), int32(-2), int16(0)]))],
    [
      'Bind with parameter length past the end',
      msg(0x42, Buffer.concat([cstr(''), cstr(''), int16(0), int16(1), int32(0x7fffffff), int16(0)])),
    ],
    ['Bind without result formats', msg(0x42, Buffer.concat([cstr(''), cstr(''), int16(0), int16(0)]))],
    ['Execute without row limit', msg(0x45, cstr(''))],
    ['Execute with trailing bytes', msg(0x45, Buffer.concat([cstr(''), int32(0), Buffer.from([0])]))],
    ['Describe with bad kind', msg(0x44, Buffer.concat([Buffer.from('X'), cstr('a')]))],
    ['Describe empty', msg(0x44)],
    ['Close without name terminator', msg(0x43, Buffer.from('Sabc'))],
    ['Sync with a body', msg(0x53, [0])],
    ['Flush with a body', msg(0x48, [0])],
    ['Terminate with a body', msg(0x58, [0])],
    ['CopyDone with a body', msg(0x63, [0])],
    ['CopyFail without terminator', msg(0x66, Buffer.from('oops'))],
    ['FunctionCall too short', msg(0x46, [0, 0])],
    ['unknown type', msg(0x7a, [])],
    ['startup code 0', msg(0x00, [])],
  ];

  test.each(bad)('%s', (_label, bytes) => {
    expectProtocolError(() => decodeFrontend(embedded(bytes)));
    // Also through the FrameReader, split byte by byte.
    const reader = new FrameReader(1 << 16);
    let f: Frame | null = null;
    for (const c of splitAt(
      bytes,
      Array.from({ length: bytes.length }, (_, i) => i),
    )) {
      reader.push(c);
      f = reader.next() ?? f;
    }
    expect(f).not.toBeNull();
    expectProtocolError(() => decodeFrontend(f!));
  });
});

// ---- our frontend encoders against pg-protocol's bytes ----

describe('frontend encoders match pg-protocol byte for byte', () => {
  test('Query', () => {
    for (const t of ['', 'select 1', "select '☃𝄞'", 'x'.repeat(1000)]) expect(encodeQuery(t)).toEqual(copy(serialize.query(t)));
  });

  test('Parse', () => {
    expect(encodeParse('', 'select 1')).toEqual(copy(serialize.parse({ text: 'select 1' })));
    expect(encodeParse('s', 'select $1', [23, 0xffffffff])).toEqual(
      copy(serialize.parse({ name: 's', text: 'select $1', types: [23, 0xffffffff] })),
    );
    expect(encodeParse('ü', 'é'.repeat(300))).toEqual(copy(serialize.parse({ name: 'ü', text: 'é'.repeat(300) })));
  });

  test('Describe', () => {
    expect(encodeDescribe('P', 'cur')).toEqual(copy(serialize.describe({ type: 'P', name: 'cur' })));
    expect(encodeDescribe('S', '')).toEqual(copy(serialize.describe({ type: 'S' })));
    expect(encodeDescribe('P', '')).toEqual(copy(serialize.describe({ type: 'P' })));
  });

  test('Sync, Terminate', () => {
    expect(encodeSync()).toEqual(copy(serialize.sync()));
    expect(encodeTerminate()).toEqual(copy(serialize.end()));
  });

  test('PasswordMessage, SASLInitialResponse, SASLResponse', () => {
    expect(encodePassword('pw')).toEqual(copy(serialize.password('pw')));
    expect(encodePassword('md5' + 'a'.repeat(32))).toEqual(copy(serialize.password('md5' + 'a'.repeat(32))));
    expect(encodeSaslInitial('SCRAM-SHA-256', Buffer.from('n,,n=,r=abc'))).toEqual(
      copy(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', 'n,,n=,r=abc')),
    );
    expect(encodeSaslResponse(Buffer.from('c=biws,r=x,p=y'))).toEqual(copy(serialize.sendSCRAMClientFinalMessage('c=biws,r=x,p=y')));
  });

  test('SSLRequest, CancelRequest', () => {
    expect(encodeSslRequest()).toEqual(copy(serialize.requestSsl()));
    expect(encodeCancelRequest(4242, int32(0x01020304))).toEqual(copy(serialize.cancel(4242, 0x01020304)));
    // Protocol 3.2 allows longer keys: built by hand.
    const longKey = Buffer.alloc(32, 9);
    expect(encodeCancelRequest(7, longKey)).toEqual(startupPacket(Buffer.concat([int32(80877102), int32(7), longKey])));
  });

  test('StartupMessage', () => {
    // pg-protocol always appends client_encoding=UTF8.
    const params = { user: 'agent', database: 'crm', application_name: 'wärden' };
    expect(encodeStartup({ ...params, client_encoding: 'UTF8' })).toEqual(copy(serialize.startup(params)));
    expect(encodeStartup({})).toEqual(startupPacket(Buffer.concat([int32(196608), Buffer.from([0])])));
  });

  test('property: Query and Parse encoders match pg-protocol for any text', () => {
    fc.assert(
      fc.property(arbCString, arbCString, fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 8 }), (name, text, types) => {
        same(encodeQuery(text), copy(serialize.query(text)));
        same(encodeParse(name, text, types), copy(serialize.parse({ name, text, types })));
      }),
      { numRuns: 200 },
    );
  });
});

// ---- startup-phase packets ----

describe('decodeStartup', () => {
  test('StartupMessage from pg-protocol, any chunking', () => {
    const bytes = copy(serialize.startup({ user: 'agent', database: 'crm', options: '-c search_path=x' }));
    const expected: StartupPacket = {
      name: 'startup',
      major: 3,
      minor: 0,
      params: { user: 'agent', database: 'crm', options: '-c search_path=x', client_encoding: 'UTF8' },
    };
    for (const [, chunks] of chunkings([bytes], CUTS)) {
      const reader = new FrameReader(1024);
      const got: StartupPacket[] = [];
      for (const c of chunks) {
        reader.push(c);
        for (let f = reader.nextStartup(); f; f = reader.nextStartup()) got.push(decodeStartup(f));
      }
      expect(got).toEqual([expected]);
    }
    expect(decodeStartup(startupFrame(bytes))).toEqual(expected);
  });

  test('SSLRequest, GSSENCRequest, CancelRequest', () => {
    expect(decodeStartup(startupFrame(copy(serialize.requestSsl())))).toEqual({ name: 'sslRequest' });
    expect(decodeStartup(startupFrame(startupPacket(int32(80877104))))).toEqual({ name: 'gssEncRequest' });
    expect(decodeStartup(startupFrame(copy(serialize.cancel(99, -2))))).toEqual({
      name: 'cancelRequest',
      processId: 99,
      secretKey: int32(-2),
    });
    // The secret key is a copy: it survives reuse of the input buffer.
    const f = startupFrame(copy(serialize.cancel(1, 0x0a0b0c0d)));
    const d = decodeStartup(f) as Extract<StartupPacket, { name: 'cancelRequest' }>;
    f.buf.fill(0);
    expect(d.secretKey).toEqual(int32(0x0a0b0c0d));
  });

  test('protocol 3.2 (minor version) is decoded', () => {
    const bytes = startupPacket(Buffer.concat([int32((3 << 16) | 2), cstr('user'), cstr('u'), Buffer.from([0])]));
    expect(decodeStartup(startupFrame(bytes))).toEqual({ name: 'startup', major: 3, minor: 2, params: { user: 'u' } });
  });

  test.each([
    ['protocol 2.0', startupPacket(Buffer.concat([int32(2 << 16), Buffer.from([0])]))],
    ['protocol 4.0', startupPacket(Buffer.concat([int32(4 << 16), Buffer.from([0])]))],
    ['missing list terminator', startupPacket(Buffer.concat([int32(196608), cstr('user'), cstr('u')]))],
    ['name without value', startupPacket(Buffer.concat([int32(196608), cstr('user')]))],
    ['unterminated name (NUL only after the packet)', startupPacket(Buffer.concat([int32(196608), Buffer.from('user')]))],
    ['trailing bytes after the terminator', startupPacket(Buffer.concat([int32(196608), Buffer.from([0]), Buffer.from('x')]))],
    ['CancelRequest without process id', startupPacket(int32(80877102))],
    ['empty body', startupPacket(Buffer.alloc(0))],
  ])('%s is a ProtocolError', (_label, bytes) => {
    expectProtocolError(() => decodeStartup(startupFrame(bytes)));
  });

  test('property: random startup packets raise only ProtocolError', () => {
    const arbVersion = fc.oneof(
      fc.constantFrom(196608, 196610, 80877103, 80877104, 80877102, 131072, 0, -1),
      fc.integer({ min: -0x80000000, max: 0x7fffffff }),
    );
    fc.assert(
      fc.property(arbVersion, fc.uint8Array({ maxLength: 120 }), fc.uint8Array({ maxLength: 8 }), (version, rest, trailer) => {
        const bytes = startupPacket(Buffer.concat([int32(version), Buffer.from(rest)]));
        try {
          const p = decodeStartup(startupFrame(bytes, Buffer.from(trailer)));
          if (p.name === 'startup') {
            expect(p.major).toBe(3);
            for (const [k, v] of Object.entries(p.params)) {
              expect(k).not.toBe('');
              expect(typeof v).toBe('string');
            }
          }
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
        }
      }),
      { numRuns: 500 },
    );
  });

  test('property: random bytes through nextStartup + decodeStartup raise only ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat({ max: 200 }), { maxLength: 5 }), (bytes, cuts) => {
        const reader = new FrameReader(1 << 16);
        try {
          for (const c of splitAt(Buffer.from(bytes), cuts)) {
            reader.push(c);
            const f = reader.nextStartup();
            if (f) {
              expect(f.end).toBeLessThanOrEqual(f.buf.length);
              decodeStartup(f);
              return;
            }
          }
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
        }
      }),
      { numRuns: 400 },
    );
  });

  test('property: startup parameters round-trip from pg-protocol', () => {
    const arbKey = arbCString.filter((k) => k !== '' && k !== 'client_encoding');
    fc.assert(
      fc.property(fc.dictionary(arbKey, arbCString, { maxKeys: 6 }), fc.array(fc.nat({ max: 400 }), { maxLength: 4 }), (params, cuts) => {
        const clean: Record<string, string> = {};
        for (const [k, v] of Object.entries(params)) clean[k] = v; // drop the null prototype fast-check may use
        const bytes = copy(serialize.startup(clean));
        fc.pre(bytes.length <= 10240);
        const reader = new FrameReader(1 << 16);
        let got: StartupPacket | undefined;
        for (const c of splitAt(bytes, cuts)) {
          reader.push(c);
          const f = reader.nextStartup();
          if (f) got = decodeStartup(f);
        }
        expect(got).toEqual({ name: 'startup', major: 3, minor: 0, params: { ...clean, client_encoding: 'UTF8' } });
      }),
      { numRuns: 200 },
    );
  });
});

// ---- property-based round trips through pg-protocol, any chunking ----

// Unicode text without NUL (a C string cannot carry one) and without lone surrogates (not UTF-8).
const arbCString = arbText(30);
const arbBytes = fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u));

type Case = { bytes: Buffer; expected: FrontendMessage };

const arbCase: fc.Arbitrary<Case> = fc.oneof(
  arbCString.map((text) => ({ bytes: copy(serialize.query(text)), expected: { name: 'query', text } as FrontendMessage })),
  fc.record({ name: arbCString, text: arbCString, types: fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 6 }) }).map((p) => ({
    bytes: copy(serialize.parse(p)),
    expected: { name: 'parse', statement: p.name, text: p.text, paramTypes: p.types } as FrontendMessage,
  })),
  fc
    .record({
      portal: arbCString,
      statement: arbCString,
      binary: fc.boolean(),
      values: fc.array(fc.oneof(fc.constant(null), arbText(20, true), arbBytes), { maxLength: 6 }),
    })
    .map((b) => ({
      bytes: copy(serialize.bind(b)),
      expected: {
        name: 'bind',
        portal: b.portal,
        statement: b.statement,
        paramFormats: b.values.map((v) => (Buffer.isBuffer(v) ? 1 : 0)),
        params: b.values.map((v) => (v === null ? null : Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8'))),
        resultFormats: [b.binary ? 1 : 0],
      } as FrontendMessage,
    })),
  fc.record({ portal: arbCString, rows: fc.nat({ max: 0x7fffffff }) }).map((e) => ({
    bytes: copy(serialize.execute(e)),
    expected: { name: 'execute', portal: e.portal, maxRows: e.rows } as FrontendMessage,
  })),
  fc.record({ type: fc.constantFrom('S' as const, 'P' as const), name: arbCString }).map((d) => ({
    bytes: copy(serialize.describe(d)),
    expected: { name: 'describe', kind: d.type, target: d.name } as FrontendMessage,
  })),
  fc.record({ type: fc.constantFrom('S' as const, 'P' as const), name: arbCString }).map((d) => ({
    bytes: copy(serialize.close(d)),
    expected: { name: 'close', kind: d.type, target: d.name } as FrontendMessage,
  })),
  fc.constantFrom<Case>(
    { bytes: copy(serialize.sync()), expected: { name: 'sync' } },
    { bytes: copy(serialize.flush()), expected: { name: 'flush' } },
    { bytes: copy(serialize.end()), expected: { name: 'terminate' } },
    { bytes: copy(serialize.copyDone()), expected: { name: 'copyDone' } },
  ),
  arbBytes.map((data) => ({ bytes: copy(serialize.copyData(data)), expected: { name: 'copyData', data } as FrontendMessage })),
  arbCString.map((message) => ({ bytes: copy(serialize.copyFail(message)), expected: { name: 'copyFail', message } as FrontendMessage })),
  arbCString.map((pw) => ({ bytes: copy(serialize.password(pw)), expected: { name: 'password', data: cstr(pw) } as FrontendMessage })),
);

describe('round trips from pg-protocol', () => {
  test('property: random message sequences decode to the values they were built from, for any chunking', () => {
    fc.assert(
      fc.property(fc.array(arbCase, { minLength: 1, maxLength: 8 }), fc.array(fc.nat({ max: 1000 }), { maxLength: 10 }), (cases, cuts) => {
        const all = Buffer.concat(cases.map((c) => c.bytes));
        const expected = cases.map((c) => c.expected);
        same(decodeAll(splitAt(all, cuts)), expected);
      }),
      { numRuns: 300 },
    );
  });

  test('property: the same sequences decode identically byte by byte', () => {
    fc.assert(
      fc.property(fc.array(arbCase, { minLength: 1, maxLength: 4 }), (cases) => {
        const all = Buffer.concat(cases.map((c) => c.bytes));
        same(
          decodeAll(
            splitAt(
              all,
              Array.from({ length: all.length }, (_, i) => i),
            ),
          ),
          cases.map((c) => c.expected),
        );
      }),
      { numRuns: 50 },
    );
  });

  test('property: any frontend frame body (random code and bytes) decodes or raises ProtocolError, never reads past end', () => {
    const codes = [0x51, 0x50, 0x42, 0x45, 0x44, 0x43, 0x53, 0x48, 0x58, 0x64, 0x63, 0x66, 0x46, 0x70];
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom(...codes), fc.integer({ min: 0, max: 255 })),
        fc.uint8Array({ maxLength: 60 }),
        fc.uint8Array({ maxLength: 10 }),
        (code, body, trailer) => {
          const bytes = msg(code, Buffer.from(body));
          const f = embedded(bytes, Buffer.from(trailer));
          let m: FrontendMessage;
          try {
            m = decodeFrontend(f);
          } catch (e) {
            if (!(e instanceof ProtocolError)) throw e;
            return;
          }
          // Whatever decoded must also decode from an exact-size buffer: no byte past `end` mattered.
          const exact: Frame = { code, buf: bytes, start: 0, body: 5, end: bytes.length };
          expect(normalize(decodeFrontend(exact))).toEqual(normalize(m));
        },
      ),
      { numRuns: 500 },
    );
  });
});
