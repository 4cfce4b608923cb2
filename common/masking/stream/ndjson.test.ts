import { createNdjsonReader, NdjsonLineTooLongError, serializeNdjsonItem } from './ndjson';
import { NOT_JSON } from './sse';

describe('createNdjsonReader', () => {
  it('reads lines across chunks (UTF-8 split too), keeps bytes, flags repeated keys', () => {
    const r = createNdjsonReader(100);
    const src = Buffer.from('{"a":"é"}\n\n{"k":1,"k":2}\r\nnot json\n{"tail":true}');
    const items = [...r.push(src.subarray(0, 8)), ...r.push(src.subarray(8, 30)), ...r.push(src.subarray(30)), ...r.end()];
    expect(items.map((i) => i.data)).toEqual(['{"a":"é"}', '', '{"k":1,"k":2}', 'not json', '{"tail":true}']);
    expect(items.map((i) => serializeNdjsonItem(i)).join('')).toBe('{"a":"é"}\n\n{"k":2}\nnot json\n{"tail":true}');
    expect(items[2].dirty).toBe(true);
    expect(items[3].doc).toBe(NOT_JSON);
    expect(items[4].block?.complete).toBe(false);
  });

  it('holds an unterminated line of up to the limit; one character past it throws', () => {
    const at = createNdjsonReader(10);
    expect(at.push('x'.repeat(10))).toEqual([]);
    expect(at.push('\n').map((i) => i.data)).toEqual(['x'.repeat(10)]);
    const past = createNdjsonReader(10);
    expect(() => past.push('x'.repeat(11))).toThrow(NdjsonLineTooLongError);
  });
});
