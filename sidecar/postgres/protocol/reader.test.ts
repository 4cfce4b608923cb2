// BodyReader bounds: every read stops at `end` (not at the end of the underlying buffer) and turns
// truncation into ProtocolError; Writer growth, checked against bytes built by hand.
import fc from 'fast-check';
import { ProtocolError } from './errors';
import { BodyReader } from './reader';
import { msg, startupPacket } from '../../../test/support/sidecar/pg-bytes';
import { Writer } from './writer';

// A body of 12 bytes inside a buffer whose surrounding bytes would satisfy an unchecked read.
const PRE = Buffer.from([0, 0, 0]);
const BODY = Buffer.from([0x00, 0x01, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x61, 0x62, 0x00, 0x63]);
const POST = Buffer.from([0x00, 0x00, 0x00, 0x00, 0x00]);
const BUF = Buffer.concat([PRE, BODY, POST]);
const reader = (): BodyReader => new BodyReader(BUF, PRE.length, PRE.length + BODY.length);

describe('BodyReader', () => {
  test('reads big-endian integers, C strings and byte runs', () => {
    const r = reader();
    expect(r.int16()).toBe(1);
    expect(r.int16()).toBe(-2);
    expect(r.int32()).toBe(-0x80000000);
    expect(r.remaining).toBe(4);
    expect(r.cstring()).toBe('ab');
    expect(r.byte()).toBe(0x63);
    expect(r.remaining).toBe(0);
    r.expectEnd('x');
    const u = reader();
    u.int32();
    expect(u.uint32()).toBe(0x80000000);
    const b = reader();
    expect(Buffer.from(b.bytes(3))).toEqual(BODY.subarray(0, 3));
    expect(Buffer.from(b.rest())).toEqual(BODY.subarray(3));
    expect(b.rest().length).toBe(0);
  });

  test.each<[string, (r: BodyReader) => unknown]>([
    ['byte', (r) => (r.bytes(12), r.byte())],
    ['int16', (r) => (r.bytes(11), r.int16())],
    ['int32', (r) => (r.bytes(9), r.int32())],
    ['uint32', (r) => (r.bytes(10), r.uint32())],
    ['cstring (the NUL after end does not count)', (r) => (r.bytes(11), r.cstring())],
    ['bytes past end', (r) => r.bytes(13)],
    ['bytes(-1)', (r) => r.bytes(-1)],
    ['bytes(-5)', (r) => (r.bytes(6), r.bytes(-5))],
    ['expectEnd with bytes left', (r) => r.expectEnd('m')],
  ])('%s past the body is a ProtocolError', (_label, read) => {
    const r = reader();
    expect(() => read(r)).toThrow(ProtocolError);
  });

  test('a failed read does not move the cursor backwards', () => {
    const r = reader();
    r.bytes(4);
    expect(() => r.bytes(-1)).toThrow(ProtocolError);
    expect(r.pos).toBe(PRE.length + 4);
  });

  test('property: any sequence of reads stays within [body, end] and fails only with ProtocolError', () => {
    const op = fc.oneof(
      fc.constant('byte' as const),
      fc.constant('int16' as const),
      fc.constant('int32' as const),
      fc.constant('uint32' as const),
      fc.constant('cstring' as const),
      fc.constant('rest' as const),
      fc.integer({ min: -3, max: 20 }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 30 }), fc.uint8Array({ maxLength: 5 }), fc.array(op, { maxLength: 12 }), (body, post, ops) => {
        const buf = Buffer.concat([PRE, Buffer.from(body), Buffer.from(post)]);
        const end = PRE.length + body.length;
        const r = new BodyReader(buf, PRE.length, end);
        for (const o of ops) {
          try {
            const v = typeof o === 'number' ? r.bytes(o) : r[o]();
            if (Buffer.isBuffer(v) && (v.byteOffset < buf.byteOffset + PRE.length || v.byteOffset + v.length > buf.byteOffset + end))
              throw new Error('view outside the body');
          } catch (e) {
            if (!(e instanceof ProtocolError)) throw e;
          }
          if (r.pos < PRE.length || r.pos > end) throw new Error(`cursor ${r.pos} outside [${PRE.length}, ${end}]`);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('Writer', () => {
  test('grows past its initial size and frames typed and startup messages', () => {
    const long = 'é'.repeat(100); // 200 UTF-8 bytes
    const w = new Writer(8)
      .int8(1)
      .int16(-2)
      .int32(0x01020304)
      .cstring(long)
      .bytes(Buffer.from([9, 9]));
    const body = Buffer.concat([Buffer.from([1, 0xff, 0xfe, 1, 2, 3, 4]), Buffer.from(long, 'utf8'), Buffer.from([0, 9, 9])]);
    expect(w.flush(0x51)).toEqual(msg(0x51, body));

    const s = new Writer(2).int32(196608).cstring('user').cstring('u').int8(0).flushStartup();
    const sb = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from('user\0u\0\0')]);
    expect(s).toEqual(startupPacket(sb));
  });
});
