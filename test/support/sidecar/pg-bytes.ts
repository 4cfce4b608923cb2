// Test support: wire bytes built by hand and ways to chunk them, shared by the protocol, auth and
// upstream tests. Deliberately independent of the code under test: no Writer, no encoders, no decoders.
import fc from 'fast-check';

// A typed message: code byte, int32 length (self included), then the parts (buffers or byte lists) in order.
export function msg(code: number | string, ...parts: Array<Buffer | number[]>): Buffer {
  const body = Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
  const head = Buffer.alloc(5);
  head[0] = typeof code === 'string' ? code.charCodeAt(0) : code;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

// A code-less startup-phase packet: int32 length (self included), then the body.
export function startupPacket(body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeInt32BE(body.length + 4, 0);
  return Buffer.concat([head, body]);
}

// A big-endian signed 32-bit integer.
export const int32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v, 0);
  return b;
};

// A big-endian unsigned 32-bit integer.
export const uint32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v, 0);
  return b;
};

// A big-endian signed 16-bit integer.
export const int16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(v, 0);
  return b;
};

// One byte, given as a number or as a one-character string.
export const byte = (v: number | string): Buffer => Buffer.from([typeof v === 'string' ? v.charCodeAt(0) : v]);

// A NUL-terminated UTF-8 string.
export const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);

// An AuthenticationRequest ('R'): int32 request code, then the method's data.
export const authRequest = (code: number, data: Buffer = Buffer.alloc(0)): Buffer => msg('R', int32(code), data);

// A private copy of `b` (pg-protocol's serializer reuses its output buffer).
export const copy = (b: Buffer): Buffer => Buffer.from(b);

// Unicode text (mostly ASCII, no lone surrogates; `nul` allows U+0000), drawn as code points because fc.string's 'binary' unit is slow to set up.
export const arbText = (maxLength: number, nul = false): fc.Arbitrary<string> =>
  fc
    .array(
      fc.oneof(
        { arbitrary: fc.integer({ min: nul ? 0 : 1, max: 0x7f }), weight: 3 },
        { arbitrary: fc.integer({ min: 0x80, max: 0x10ffff }).filter((c) => c < 0xd800 || c > 0xdfff), weight: 1 },
      ),
      { maxLength },
    )
    .map((cps) => String.fromCodePoint(...cps));

// Copies of `buf` split at the given cut offsets (deduplicated, sorted, those outside (0, length) dropped).
export function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < buf.length))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(Buffer.from(buf.subarray(prev, p)));
    prev = p;
  }
  out.push(Buffer.from(buf.subarray(prev)));
  return out;
}

// The offsets where one message ends and the next begins in the concatenation of `msgs`.
export function boundariesOf(msgs: Buffer[]): number[] {
  const out: number[] = [];
  let at = 0;
  for (const m of msgs) out.push((at += m.length));
  return out.slice(0, -1);
}

// Where chunkings() cuts: `start` offsets near the start, `around` offsets relative to each boundary, `more` for the extra framing cases.
export interface ChunkingOptions {
  start?: number[];
  around?: number[];
  more?: boolean;
}

// Labelled chunkings of the concatenated `msgs`: whole, near the start, middle, near the end, byte by byte, around every boundary (plus start+4, at-boundaries and two-halves@b with `more`).
export function chunkings(
  msgs: Buffer[],
  { start = [1, 2], around = [-1, 3], more = false }: ChunkingOptions = {},
): Array<[string, Buffer[]]> {
  const buf = Buffer.concat(msgs);
  const n = buf.length;
  const bounds = boundariesOf(msgs);
  const out: Array<[string, Buffer[]]> = [
    ['whole', [copy(buf)]],
    ['start', splitAt(buf, start)],
    ...(more ? [['start+4', splitAt(buf, [4])] as [string, Buffer[]]] : []),
    ['middle', splitAt(buf, [n >> 1])],
    ['end', splitAt(buf, [n - 1])],
    [
      'byte-by-byte',
      splitAt(
        buf,
        Array.from({ length: n }, (_, i) => i),
      ),
    ],
    [
      'across-boundaries',
      splitAt(
        buf,
        bounds.flatMap((b) => around.map((d) => b + d)),
      ),
    ],
  ];
  if (more) {
    out.push(['at-boundaries', splitAt(buf, bounds)]);
    for (const b of bounds) out.push([`two-halves@${b}`, splitAt(buf, [b - 1, b + 1])]);
  }
  return out;
}
