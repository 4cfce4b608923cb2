// FrameReader: framing of typed and startup packets, for any chunking of the byte stream, the length
// limit (raised on the header, before the body is buffered) and robustness on hostile input.
// Expected frames are built with pg-protocol's serializer or by hand, never with our Writer.
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import { ProtocolError } from './errors';
import { FrameReader, type Frame } from './frame-reader';
import { decodeFrontend } from './frontend';
import { chunkings, copy, msg, splitAt, type ChunkingOptions } from '../../../test/support/sidecar/pg-bytes';

// ---- local helpers (independent of the code under test) ----

/**
 * The chunkings every framing test runs: whole, split near the start, in the middle, near the end,
 * byte by byte, and at/around every message boundary (so a chunk spans two messages).
 */
const CUTS: ChunkingOptions = { start: [1], around: [-2, 3], more: true };

interface Seen {
  code: number;
  bytes: Buffer;
}

function drainTyped(reader: FrameReader, chunks: Buffer[]): Seen[] {
  const out: Seen[] = [];
  for (const c of chunks) {
    reader.push(c);
    for (let f = reader.next(); f; f = reader.next()) {
      checkFrameShape(f, 5);
      out.push({ code: f.code, bytes: Buffer.from(f.buf.subarray(f.start, f.end)) });
    }
  }
  return out;
}

function drainStartup(reader: FrameReader, chunks: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const c of chunks) {
    reader.push(c);
    for (let f = reader.nextStartup(); f; f = reader.nextStartup()) {
      checkFrameShape(f, 4);
      expect(f.code).toBe(0);
      out.push(Buffer.from(f.buf.subarray(f.start, f.end)));
    }
  }
  return out;
}

function checkFrameShape(f: Frame, header: number): void {
  expect(f.start).toBeGreaterThanOrEqual(0);
  expect(f.body).toBe(f.start + header);
  expect(f.end).toBeGreaterThanOrEqual(f.body);
  expect(f.end).toBeLessThanOrEqual(f.buf.length);
  expect(f.buf.readInt32BE(f.start + header - 4)).toBe(f.end - f.start - (header - 4));
}

function expectProtocolError(fn: () => unknown, code?: string): ProtocolError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    if (code) expect((e as ProtocolError).code).toBe(code);
    return e as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

// A varied stream: zero-length bodies, short and long bodies, a multi-byte UTF-8 text.
const STREAM: Buffer[] = [
  copy(serialize.query('select 1')),
  copy(serialize.sync()),
  copy(serialize.parse({ name: 's1', text: 'select $1::int', types: [23] })),
  copy(serialize.bind({ statement: 's1', values: ['42', null, Buffer.from([0, 1, 2])] })),
  copy(serialize.describe({ type: 'P', name: '' })),
  copy(serialize.execute({ portal: '', rows: 10 })),
  copy(serialize.flush()),
  copy(serialize.copyData(Buffer.alloc(300, 0x61))),
  copy(serialize.copyDone()),
  copy(serialize.query("select 'héllo ☃ 𝄞'")),
  copy(serialize.end()),
];

describe('FrameReader.next (typed frames)', () => {
  test.each(chunkings(STREAM, CUTS))('yields the same frames when chunked %s', (_label, chunks) => {
    const reader = new FrameReader(1 << 20);
    const frames = drainTyped(reader, chunks);
    expect(frames.map((f) => f.code)).toEqual(STREAM.map((m) => m[0]));
    expect(frames.map((f) => f.bytes)).toEqual(STREAM);
    expect(reader.pending).toBe(0);
  });

  test('returns null until the 5-byte header and then the whole body have arrived', () => {
    const m = copy(serialize.query('select 42'));
    const reader = new FrameReader(1024);
    for (let i = 0; i < m.length - 1; i++) {
      reader.push(m.subarray(i, i + 1));
      expect(reader.next()).toBeNull();
      expect(reader.pending).toBe(i + 1);
    }
    reader.push(m.subarray(m.length - 1));
    const f = reader.next();
    expect(f).not.toBeNull();
    expect(Buffer.from(f!.buf.subarray(f!.start, f!.end))).toEqual(m);
    expect(reader.next()).toBeNull();
    expect(reader.pending).toBe(0);
  });

  test('an empty chunk changes nothing', () => {
    const reader = new FrameReader(1024);
    reader.push(Buffer.alloc(0));
    expect(reader.next()).toBeNull();
    reader.push(copy(serialize.sync()).subarray(0, 2));
    reader.push(Buffer.alloc(0));
    expect(reader.next()).toBeNull();
    reader.push(copy(serialize.sync()).subarray(2));
    expect(reader.next()!.code).toBe(0x53);
    expect(reader.pending).toBe(0);
  });

  test('frames already returned stay valid after more chunks arrive', () => {
    const a = copy(serialize.query('first'));
    const b = copy(serialize.query('second'));
    const reader = new FrameReader(1024);
    reader.push(Buffer.concat([a, b.subarray(0, 3)]));
    const fa = reader.next()!;
    expect(reader.next()).toBeNull();
    reader.push(b.subarray(3));
    const fb = reader.next()!;
    expect(Buffer.from(fa.buf.subarray(fa.start, fa.end))).toEqual(a);
    expect(Buffer.from(fb.buf.subarray(fb.start, fb.end))).toEqual(b);
  });

  test('a large message arriving in many small chunks is assembled in linear time', () => {
    // 8 MiB in 2 KiB chunks: 4096 pushes. Re-joining the pending bytes on every push would copy
    // ~16 GiB; joining once the frame is complete copies each byte a bounded number of times.
    const size = 8 << 20;
    const m = Buffer.alloc(size + 5, 0x61);
    m[0] = 0x64;
    m.writeInt32BE(size + 4, 1);
    for (const chunk of [2048, 4093]) {
      const reader = new FrameReader(1 << 30);
      const t0 = Date.now();
      let f: Frame | null = null;
      for (let i = 0; i < m.length && !f; i += chunk) {
        reader.push(m.subarray(i, i + chunk));
        f = reader.next();
        if (Date.now() - t0 > 2000) throw new Error(`only ${i} of ${m.length} bytes framed after 2 s: quadratic buffering`);
      }
      expect(f).not.toBeNull();
      expect(f!.end - f!.start).toBe(m.length);
      expect(f!.buf.subarray(f!.start, f!.end).equals(m)).toBe(true);
      expect(reader.pending).toBe(0);
    }
  });

  test('a length field below 4 is a protocol violation', () => {
    for (const len of [3, 0, -1, -4, -0x80000000]) {
      const bad = Buffer.alloc(5);
      bad[0] = 0x51;
      bad.writeInt32BE(len, 1);
      const reader = new FrameReader(1024);
      reader.push(bad);
      expect(expectProtocolError(() => reader.next()).code).toBe('protocol_violation');
    }
  });

  test('a length of exactly 4 is an empty body', () => {
    const reader = new FrameReader(1024);
    reader.push(msg(0x53));
    const f = reader.next()!;
    expect(f.end).toBe(f.body);
  });
});

describe('FrameReader length limit', () => {
  const header = (code: number, len: number): Buffer => {
    const h = Buffer.alloc(5);
    h[0] = code;
    h.writeInt32BE(len, 1);
    return h;
  };

  test('a message of exactly maxLength is accepted', () => {
    const max = 64;
    const m = msg(0x64, Buffer.alloc(max - 4, 7));
    for (const c of chunkings([m], CUTS).map(([, chunks]) => chunks)) {
      const reader = new FrameReader(max);
      expect(drainTyped(reader, c).map((f) => f.bytes)).toEqual([m]);
    }
  });

  test('one byte over maxLength fails as soon as the header is complete, split anywhere', () => {
    const max = 64;
    const h = header(0x51, max + 1);
    for (const [label, chunks] of chunkings([h], CUTS)) {
      const reader = new FrameReader(max);
      let thrown: ProtocolError | undefined;
      let fed = 0;
      for (const c of chunks) {
        reader.push(c);
        fed += c.length;
        if (fed < 5) expect(reader.next()).toBeNull();
        else thrown = expectProtocolError(() => reader.next(), 'message_too_large');
      }
      expect({ label, thrown: !!thrown }).toEqual({ label, thrown: true });
      expect(reader.pending).toBeLessThanOrEqual(5);
    }
  });

  test('the oversize frame is reported after the valid frames before it, split anywhere', () => {
    const max = 128;
    const good = [copy(serialize.query('select 1')), copy(serialize.sync())];
    for (const [, chunks] of chunkings([...good, header(0x50, 0x7fffffff)], CUTS)) {
      const reader = new FrameReader(max);
      const out: Buffer[] = [];
      let err: ProtocolError | undefined;
      for (const c of chunks) {
        reader.push(c);
        try {
          for (let f = reader.next(); f; f = reader.next()) out.push(Buffer.from(f.buf.subarray(f.start, f.end)));
        } catch (e) {
          err = e as ProtocolError;
          break;
        }
      }
      expect(out).toEqual(good);
      expect(err).toBeInstanceOf(ProtocolError);
      expect(err!.code).toBe('message_too_large');
    }
  });

  test('property: any declared length above maxLength raises message_too_large on the header alone (bounded memory)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 5, max: 1 << 16 }),
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.integer({ min: 0, max: 255 }),
        fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 5 }),
        (max, over, code, cuts) => {
          const len = Math.min(0x7fffffff, max + over);
          fc.pre(len > max);
          const h = header(code, len);
          const reader = new FrameReader(max);
          const chunks = splitAt(h, cuts);
          let fed = 0;
          for (const c of chunks) {
            reader.push(c);
            fed += c.length;
            if (fed < 5 && reader.next() !== null) throw new Error('frame before the header was complete');
          }
          // Only the 5 header bytes are buffered; the body was never needed to decide.
          if (reader.pending !== 5) throw new Error(`pending ${reader.pending}`);
          try {
            reader.next();
          } catch (e) {
            if (e instanceof ProtocolError && e.code === 'message_too_large') return;
            throw e;
          }
          throw new Error('no message_too_large error');
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('FrameReader.nextStartup (code-less packets)', () => {
  const PACKETS: Buffer[] = [
    copy(serialize.requestSsl()),
    copy(serialize.startup({ user: 'agent', database: 'crm', application_name: 'x' })),
  ];

  test.each(chunkings(PACKETS, CUTS))('yields the same packets when chunked %s', (_label, chunks) => {
    const reader = new FrameReader(1 << 20);
    expect(drainStartup(reader, chunks)).toEqual(PACKETS);
    expect(reader.pending).toBe(0);
  });

  test('a cancel request followed by nothing', () => {
    const cancel = copy(serialize.cancel(1234, 5678));
    for (const [, chunks] of chunkings([cancel], CUTS)) {
      expect(drainStartup(new FrameReader(1024), chunks)).toEqual([cancel]);
    }
  });

  test('typed frames may follow the startup packet in the same chunk', () => {
    const startup = copy(serialize.startup({ user: 'u' }));
    const q = copy(serialize.query('select 1'));
    for (const [, chunks] of chunkings([startup, q], CUTS)) {
      const reader = new FrameReader(1024);
      const out: Buffer[] = [];
      let phase: 'startup' | 'typed' = 'startup';
      for (const c of chunks) {
        reader.push(c);
        for (;;) {
          const f = phase === 'startup' ? reader.nextStartup() : reader.next();
          if (!f) break;
          out.push(Buffer.from(f.buf.subarray(f.start, f.end)));
          phase = 'typed';
        }
      }
      expect(out).toEqual([startup, q]);
    }
  });

  test('startup lengths outside [8, 10240] are protocol violations', () => {
    for (const len of [7, 4, 0, -1, 10241, 0x7fffffff]) {
      const b = Buffer.alloc(8);
      b.writeInt32BE(len, 0);
      b.writeInt32BE(196608, 4);
      const reader = new FrameReader(1 << 20);
      reader.push(b.subarray(0, 4));
      expectProtocolError(() => reader.nextStartup());
    }
  });
});

// ---- property-based robustness: random and mutated streams ----

const MAX = 4096;

interface Outcome {
  frames: number;
  error?: unknown;
}

/**
 * Feeds chunks into a FrameReader, decoding every frame; stops at the first error. Fails on any error
 * that is not a ProtocolError, on a frame that ends past its buffer, and on a runaway loop.
 */
function feed(chunks: Buffer[], maxLength = MAX): Outcome {
  const reader = new FrameReader(maxLength);
  const total = chunks.reduce((n, c) => n + c.length, 0);
  let frames = 0;
  let steps = 0;
  try {
    for (const c of chunks) {
      reader.push(c);
      for (;;) {
        if (++steps > total + chunks.length + 1) throw new Error('FrameReader loops without consuming input');
        const f = reader.next();
        if (!f) break;
        frames++;
        if (f.end > f.buf.length || f.start < 0 || f.body !== f.start + 5 || f.end < f.body) {
          throw new Error(`bad frame bounds ${f.start}/${f.body}/${f.end} in ${f.buf.length}`);
        }
        if (f.end - f.start > maxLength + 1) throw new Error('frame larger than the limit');
        decodeFrontend(f);
      }
    }
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    return { frames, error: e };
  }
  if (reader.pending > total) throw new Error('more bytes pending than were pushed');
  return { frames };
}

/** Plain check for hot property loops (expect is comparatively slow). */
function sameOutcome(a: Outcome, b: Outcome): void {
  if (a.frames !== b.frames || !!a.error !== !!b.error) {
    throw new Error(`chunking changed the outcome: ${a.frames}/${!!a.error} vs ${b.frames}/${!!b.error}`);
  }
}

const arbCuts = fc.array(fc.nat({ max: 600 }), { maxLength: 8 });

// Valid frontend messages from pg-protocol, for the mutation property.
const arbValidMessage: fc.Arbitrary<Buffer> = fc.oneof(
  fc.string({ maxLength: 40 }).map((s) => copy(serialize.query(s.replace(/\0/g, '')))),
  fc
    .record({ name: fc.string({ maxLength: 10 }), text: fc.string({ maxLength: 40 }), types: fc.array(fc.nat(), { maxLength: 4 }) })
    .map((p) => copy(serialize.parse({ name: p.name.replace(/\0/g, ''), text: p.text.replace(/\0/g, ''), types: p.types }))),
  fc
    .array(
      fc.oneof(
        fc.constant(null),
        fc.string({ maxLength: 10 }),
        fc.uint8Array({ maxLength: 10 }).map((u) => Buffer.from(u)),
      ),
      { maxLength: 4 },
    )
    .map((values) => copy(serialize.bind({ portal: 'p', statement: 's', values }))),
  fc.string({ maxLength: 10 }).map((n) => copy(serialize.execute({ portal: n.replace(/\0/g, ''), rows: 5 }))),
  fc.constantFrom('S' as const, 'P' as const).map((type) => copy(serialize.describe({ type, name: 'x' }))),
  fc.constantFrom('S' as const, 'P' as const).map((type) => copy(serialize.close({ type, name: 'x' }))),
  fc.constant(copy(serialize.sync())),
  fc.constant(copy(serialize.flush())),
  fc.constant(copy(serialize.end())),
  fc.uint8Array({ maxLength: 30 }).map((u) => copy(serialize.copyData(Buffer.from(u)))),
  fc.constant(copy(serialize.copyDone())),
  fc.string({ maxLength: 20 }).map((s) => copy(serialize.copyFail(s.replace(/\0/g, '')))),
  fc.string({ maxLength: 20 }).map((s) => copy(serialize.password(s.replace(/\0/g, '')))),
);

type Mutation =
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'length'; frame: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; n: number };

const arbMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('length' as const),
    frame: fc.nat(),
    value: fc.oneof(
      fc.integer({ min: -0x80000000, max: 0x7fffffff }),
      fc.constantFrom(-1, 0, 3, 4, 5, 0x7fffffff, -0x80000000, MAX, MAX + 1),
      fc.integer({ min: -8, max: 8 }),
    ),
  }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 6 }) }),
);

function mutate(msgs: Buffer[], muts: Mutation[]): Buffer {
  let buf = Buffer.concat(msgs);
  const starts: number[] = [];
  let at = 0;
  for (const m of msgs) {
    starts.push(at);
    at += m.length;
  }
  for (const m of muts) {
    if (buf.length === 0) break;
    switch (m.kind) {
      case 'flip':
        buf[m.at % buf.length] ^= m.xor;
        break;
      case 'truncate':
        buf = buf.subarray(0, m.at % (buf.length + 1));
        break;
      case 'length': {
        const s = starts[m.frame % starts.length];
        // Length fields are relative to the original layout; applied while still in range.
        if (s + 5 <= buf.length) buf.writeInt32BE(m.value, s + 1);
        break;
      }
      case 'insert': {
        const p = m.at % (buf.length + 1);
        buf = Buffer.concat([buf.subarray(0, p), Buffer.from(m.bytes), buf.subarray(p)]);
        break;
      }
      case 'delete': {
        const p = m.at % buf.length;
        buf = Buffer.concat([buf.subarray(0, p), buf.subarray(p + m.n)]);
        break;
      }
    }
  }
  return Buffer.from(buf);
}

describe('FrameReader + decodeFrontend on hostile input', () => {
  test('property: random bytes, any chunking, raise only ProtocolError and never overrun', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), arbCuts, (bytes, cuts) => {
        const buf = Buffer.from(bytes);
        const whole = feed([buf]);
        const split = feed(splitAt(buf, cuts));
        // Chunking never changes what is decoded or whether it fails.
        sameOutcome(split, whole);
      }),
      { numRuns: 400 },
    );
  });

  test('property: random bytes behind a plausible header (valid code, small length) raise only ProtocolError', () => {
    const codes = [0x51, 0x50, 0x42, 0x45, 0x44, 0x43, 0x53, 0x48, 0x58, 0x64, 0x63, 0x66, 0x46, 0x70];
    fc.assert(
      fc.property(
        fc.array(fc.record({ code: fc.constantFrom(...codes), body: fc.uint8Array({ maxLength: 40 }) }), { minLength: 1, maxLength: 6 }),
        arbCuts,
        (parts, cuts) => {
          const buf = Buffer.concat(parts.map((p) => msg(p.code, Buffer.from(p.body))));
          const whole = feed([buf]);
          const split = feed(splitAt(buf, cuts));
          sameOutcome(split, whole);
        },
      ),
      { numRuns: 400 },
    );
  });

  test('property: mutated valid streams (flips, truncation, lying or huge lengths, insertions, deletions) raise only ProtocolError', () => {
    fc.assert(
      fc.property(
        fc.array(arbValidMessage, { minLength: 1, maxLength: 5 }),
        fc.array(arbMutation, { minLength: 1, maxLength: 3 }),
        arbCuts,
        (msgs, muts, cuts) => {
          const buf = mutate(msgs, muts);
          const whole = feed([buf]);
          const split = feed(splitAt(buf, cuts));
          sameOutcome(split, whole);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('property: unmutated valid streams decode without error for any chunking', () => {
    fc.assert(
      fc.property(fc.array(arbValidMessage, { minLength: 1, maxLength: 6 }), arbCuts, (msgs, cuts) => {
        const out = feed(splitAt(Buffer.concat(msgs), cuts), 1 << 20);
        if (out.error || out.frames !== msgs.length) throw new Error(`valid stream failed: ${String(out.error)}`);
      }),
      { numRuns: 300 },
    );
  });
});

describe('FrameReader skip limit (statements too large to classify)', () => {
  const QUERY = 0x51;
  const PARSE = 0x50;
  const LIMIT = 100;
  const limitFor = (code: number): number | undefined => (code === QUERY || code === PARSE ? LIMIT : undefined);
  // A Query whose body (text + NUL) is exactly LIMIT bytes, one a byte larger, and a large COPY row (no limit).
  const atLimit = copy(serialize.query('x'.repeat(LIMIT - 1)));
  const past = copy(serialize.query('y'.repeat(LIMIT)));
  const row = copy(serialize.copyData(Buffer.alloc(3 * LIMIT, 0x61)));
  const stream = [atLimit, past, copy(serialize.sync()), row, copy(serialize.query('select 1'))];

  test.each(chunkings(stream, CUTS))(
    'returns a header-only frame for the larger one and keeps the rest intact, chunked %s',
    (_label, chunks) => {
      const reader = new FrameReader(1 << 20, limitFor);
      const seen: Array<{ code: number; skipped?: number; bytes: Buffer }> = [];
      for (const c of chunks) {
        reader.push(c);
        for (let f = reader.next(); f; f = reader.next())
          seen.push({ code: f.code, skipped: f.skipped, bytes: Buffer.from(f.buf.subarray(f.start, f.end)) });
      }
      expect(seen.map((s) => s.skipped)).toEqual([undefined, past.length - 1, undefined, undefined, undefined]);
      expect(seen[0].bytes).toEqual(atLimit);
      expect(seen[1]).toMatchObject({ code: QUERY, bytes: past.subarray(0, 5) });
      expect(seen.slice(2).map((s) => s.bytes)).toEqual(stream.slice(2));
      expect(reader.pending).toBe(0);
    },
  );

  test('a skipped body is never buffered, even past the message size limit', () => {
    const reader = new FrameReader(1000, limitFor);
    const header = Buffer.alloc(5);
    header[0] = QUERY;
    header.writeInt32BE(4 + 50_000_000, 1);
    reader.push(header);
    expect(reader.next()).toMatchObject({ code: QUERY, skipped: 4 + 50_000_000 });
    for (let sent = 0; sent < 50_000_000; sent += 1 << 20) {
      reader.push(Buffer.alloc(Math.min(1 << 20, 50_000_000 - sent), 0x20));
      expect(reader.pending).toBe(0);
      expect(reader.next()).toBeNull();
    }
    reader.push(copy(serialize.sync()));
    expect(reader.next()).toMatchObject({ code: 0x53 });
  });
});

describe('FrameReader shared budget (large messages)', () => {
  const budget = (total: number): { largeBytes: number; used: number; reserve(n: number): boolean; release(n: number): void } => ({
    largeBytes: 100,
    used: 0,
    reserve(n) {
      if (this.used + n > total) return false;
      this.used += n;
      return true;
    },
    release(n) {
      this.used -= n;
    },
  });
  const bind = (bodyBytes: number): Buffer => msg(0x42, Buffer.alloc(bodyBytes, 0x61));

  test('a message at the large threshold does not draw from the budget', () => {
    const b = budget(0);
    const r = new FrameReader(1 << 20, undefined, b);
    r.push(bind(100 - 4));
    const f = r.next();
    expect(f?.skipped).toBeUndefined();
    expect(f?.end).toBe(101);
    expect(b.used).toBe(0);
  });

  test('a large message is reserved when its header arrives and released once the next frame is asked for', () => {
    const b = budget(1000);
    const r = new FrameReader(1 << 20, undefined, b);
    const frame = bind(500);
    r.push(frame.subarray(0, 10));
    expect(r.next()).toBeNull();
    expect(b.used).toBe(504);
    expect(r.next()).toBeNull(); // asked again while incomplete: reserved once
    expect(b.used).toBe(504);
    r.push(frame.subarray(10));
    const f = r.next();
    expect(f!.end - f!.start).toBe(frame.length);
    expect(b.used).toBe(504);
    expect(r.next()).toBeNull();
    expect(b.used).toBe(0);
  });

  test('past the budget the message is returned as a header marked overBudget and its body dropped unread', () => {
    const b = budget(1000);
    const holder = new FrameReader(1 << 20, undefined, b);
    holder.push(bind(700).subarray(0, 5));
    expect(holder.next()).toBeNull();
    expect(b.used).toBe(704);
    const r = new FrameReader(1 << 20, undefined, b);
    for (const chunk of splitAt(Buffer.concat([bind(400), msg(0x53)]), [5, 200])) r.push(chunk);
    const f = r.next();
    expect(f).toMatchObject({ code: 0x42, skipped: 404, overBudget: true });
    expect(r.next()).toMatchObject({ code: 0x53 });
    expect(b.used).toBe(704);
    holder.dispose();
    expect(b.used).toBe(0);
  });

  test('exactly the remaining budget is accepted', () => {
    const b = budget(1000);
    const r = new FrameReader(1 << 20, undefined, b);
    r.push(bind(996));
    expect(r.next()?.skipped).toBeUndefined();
    expect(b.used).toBe(1000);
    r.dispose();
    expect(b.used).toBe(0);
  });
});
