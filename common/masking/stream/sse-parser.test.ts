import { createSseParser, serializeBlock } from './sse-parser';

const parseAll = (chunks: Array<string | Buffer>) => {
  const p = createSseParser();
  const out = chunks.flatMap((c) => p.push(c));
  return [...out, ...p.end()];
};

describe('SSE parser', () => {
  it('reads fields, multi-line data, comments and ids', () => {
    const [a, b] = parseAll([': hello\nevent: x\nid: 7\ndata: one\ndata:two\n\ndata\n\n']);
    expect(a.event).toBe('x');
    expect(a.data).toBe('one\ntwo');
    expect(a.lines.map((l) => l.name)).toEqual(['', 'event', 'id', 'data', 'data']);
    expect(b.data).toBe('');
  });

  it('accepts CRLF, CR and LF, and keeps the raw text', () => {
    const src = 'data: a\r\n\r\ndata: b\r\rdata: c\n\n';
    const blocks = parseAll([src]);
    expect(blocks.map((b) => b.data)).toEqual(['a', 'b', 'c']);
    expect(blocks.map((b) => b.raw).join('')).toBe(src);
  });

  it('gives the same blocks for every split of the bytes, including inside CRLF and UTF-8', () => {
    const src = 'event: e\r\ndata: {"t":"héllo 👋"}\r\n\r\n: c\r\rdata: x\n\n';
    const whole = parseAll([src]);
    const bytes = Buffer.from(src);
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j += 3) {
        const got = parseAll([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
        expect(got).toEqual(whole);
      }
    }
  });

  it('strips a leading BOM and reports an unterminated tail as incomplete', () => {
    const blocks = parseAll([Buffer.from([0xef, 0xbb]), Buffer.from([0xbf, ...Buffer.from('data: a\n\ndata: b')])]);
    expect(blocks.map((b) => [b.data, b.complete])).toEqual([
      ['a', true],
      ['b', false],
    ]);
  });

  it('serialises a rewritten block keeping other fields in order', () => {
    const [b] = parseAll(['event: e\r\nid: 1\r\ndata: x\r\ndata: y\r\n\r\n']);
    expect(serializeBlock(b, '{"a":1}')).toBe('event: e\nid: 1\ndata: {"a":1}\n\n');
  });
});
