import { JsonTooDeepError, MAX_JSON_DEPTH, jsonTooDeep, selectJsonPath } from './jsonpath';
import { parseJsonPath } from './syntax';

const nest = (depth: number, leaf: unknown): unknown => {
  let d = leaf;
  for (let i = 1; i < depth; i++) d = { x: d };
  return d;
};

describe('selectJsonPath', () => {
  it('selects every element of a 300k-element array without overflowing the stack', () => {
    const big = Array.from({ length: 300_000 }, (_, i) => i);
    expect(selectJsonPath({ a: big }, parseJsonPath('$.a[*]'))).toHaveLength(300_000);
    expect(selectJsonPath(big, parseJsonPath('$..*'))).toHaveLength(300_000);
  });

  it('finds `..name` down to the depth limit, in document order', () => {
    expect(selectJsonPath(nest(MAX_JSON_DEPTH, { model: 'gpt' }), parseJsonPath('$..model'))).toEqual(['gpt']);
    expect(selectJsonPath({ a: { m: 1 }, b: [{ m: 2 }], m: 0 }, parseJsonPath('$..m'))).toEqual([0, 1, 2]);
  });

  it('throws JsonTooDeepError beyond the limit instead of silently stopping (a deny rule must not miss a deep value)', () => {
    const deep = nest(MAX_JSON_DEPTH + 5, { model: 'gpt' });
    expect(jsonTooDeep(deep)).toBe(true);
    expect(() => selectJsonPath(deep, parseJsonPath('$..model'))).toThrow(JsonTooDeepError);
    expect(jsonTooDeep(nest(MAX_JSON_DEPTH, 1))).toBe(false);
    // 100k levels: checked iteratively, no stack overflow
    let a: unknown = 1;
    for (let i = 0; i < 100_000; i++) a = [a];
    expect(jsonTooDeep(a)).toBe(true);
  });
});
