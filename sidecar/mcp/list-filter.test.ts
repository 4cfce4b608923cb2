import { filterToolsResult } from './list-filter';

describe('filterToolsResult', () => {
  it('drops what keep refuses and keeps nextCursor and the rest', () => {
    const result = { tools: [{ name: 'a' }, { name: 'delete_x' }, { name: 'b' }], nextCursor: 'c2', _meta: { m: 1 } };
    const r = filterToolsResult(result, (t) => !t.name.startsWith('delete_'));
    expect(r).toEqual({ result: { tools: [{ name: 'a' }, { name: 'b' }], nextCursor: 'c2', _meta: { m: 1 } }, hidden: ['delete_x'] });
    expect(result.tools).toHaveLength(3); // not mutated
  });

  it('returns the same object when nothing is dropped', () => {
    const result = { tools: [{ name: 'a' }] };
    expect(filterToolsResult(result, () => true).result).toBe(result);
  });

  it('drops malformed entries (fail closed)', () => {
    const r = filterToolsResult({ tools: [null, 'x', { name: 1 }, [], { name: 'ok' }] }, () => true);
    expect(r.result.tools).toEqual([{ name: 'ok' }]);
    expect(r.hidden).toHaveLength(4);
  });
});
