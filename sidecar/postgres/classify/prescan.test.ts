// The nesting pre-scan: exact at and past its limit for each construct that nests, blind to what
// strings, quoted identifiers and comments contain, and never in the way of wide (not deep) SQL.
import { MAX_NESTING_DEPTH, nestingDepth } from './prescan';

const L = MAX_NESTING_DEPTH;

describe('nestingDepth', () => {
  test.each([
    ['NOT chain', (n: number) => 'SELECT ' + 'NOT '.repeat(n) + 'true'],
    ['operator chain', (n: number) => 'SELECT 1' + '+1'.repeat(n)],
    ['parentheses', (n: number) => 'SELECT ' + '('.repeat(n) + '1' + ')'.repeat(n)],
    ['COLLATE chain', (n: number) => "SELECT 'a'" + ' COLLATE "C"'.repeat(n)],
    ['cast chain', (n: number) => 'SELECT 1' + '::int'.repeat(n)],
  ])('%s: at the limit passes, one past is refused', (_name, make) => {
    expect(nestingDepth(make(L))).toBeLessThanOrEqual(L);
    expect(nestingDepth(make(L + 1))).toBeGreaterThan(L);
  });

  test('the AND of a BETWEEN does not hide the chain around it', () => {
    const inner = 'NOT '.repeat(L / 2) + 'x BETWEEN 1 AND ';
    expect(nestingDepth('SELECT ' + inner + '(' + inner + '(' + inner + '2))')).toBeGreaterThan(L);
  });

  test('operators inside strings, identifiers, comments and dollar quotes do not count', () => {
    const deep = '+1'.repeat(5 * L);
    for (const text of [
      `SELECT '${deep}'`,
      `SELECT E'\\'${deep}'`,
      `SELECT "${deep}"`,
      `SELECT 1 -- ${deep}`,
      `SELECT 1 /* /* ${deep} */ ${deep} */`,
      `SELECT $x$${deep}$x$`,
    ]) {
      expect(nestingDepth(text)).toBeLessThan(5);
    }
  });

  test('wide statements are shallow: lists, AND chains and many statements', () => {
    const values = 'INSERT INTO t VALUES ' + Array.from({ length: 10_000 }, (_, i) => `(${i}, -${i}, 'x')`).join(', ');
    expect(nestingDepth(values)).toBeLessThan(5);
    const ands = 'SELECT 1 WHERE ' + Array.from({ length: 10_000 }, (_, i) => `a = ${i}`).join(' AND ');
    expect(nestingDepth(ands)).toBeLessThan(5);
    const ors = 'SELECT 1 WHERE ' + Array.from({ length: 10_000 }, (_, i) => `(a = ${i} AND NOT b)`).join(' OR ');
    expect(nestingDepth(ors)).toBeLessThan(6);
    expect(nestingDepth('SELECT 1+1;'.repeat(10_000))).toBeLessThan(5);
  });
});
