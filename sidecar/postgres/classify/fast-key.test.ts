import fc from 'fast-check';
import { classifyDetailed, initClassifier } from './classify';
import { fastLiteralKey } from './fast-key';

beforeAll(() => initClassifier());

test('plain numbers and strings become placeholders; everything else is kept', () => {
  expect(fastLiteralKey('SELECT abalance FROM pgbench_accounts WHERE aid = 12345;')).toBe(
    'SELECT abalance FROM pgbench_accounts WHERE aid = 0;',
  );
  expect(fastLiteralKey("SELECT * FROM t1 WHERE name = 'Ada' AND x > 1.5e-3")).toBe("SELECT * FROM t1 WHERE name = '' AND x > 0");
  expect(fastLiteralKey('select a::int from t where b in (1,2,3)')).toBe('select a::int from t where b in (0,0,0)');
  expect(fastLiteralKey("SELECT 'café' AS x")).toBe("SELECT '' AS x"); // string contents are data
});

test('anything the scanner does not fully understand falls back to the real parser', () => {
  for (const t of [
    "SELECT E'\\x41'",
    "SELECT B'101'",
    "SELECT U&'d'",
    "SELECT 'it''s'",
    "SELECT 'a\\'",
    'SELECT 1 -- c',
    'SELECT /* c */ 1',
    'SELECT "Quoted"',
    'SELECT $1',
    'SELECT $$x$$',
    'SELECT 0x1F',
    'SELECT 1_000',
    'SELECT 12abc',
    'SELECT .5',
    'SELECT é',
    "SELECT 'unterminated",
    'SELECT 1\0; DROP TABLE t',
    "SELECT 'a'b",
    'SELECT 1e',
    'SELECT a/b',
  ]) {
    expect({ t, key: fastLiteralKey(t) }).toEqual({ t, key: undefined });
  }
});

// Soundness: texts that share a fast key must classify identically unless the classification read
// a constant (then the cache does not share it). Texts are built from SQL fragments and literals,
// including fragments the scanner must refuse.
const FRAGMENTS = [
  'SELECT',
  'DELETE FROM',
  'DROP TABLE',
  'INSERT INTO',
  'VALUES',
  'UPDATE',
  'SET',
  'WHERE',
  'FROM',
  'orders',
  'secrets',
  't1',
  'pg_read_file',
  'query_to_xml',
  '(',
  ')',
  ',',
  ';',
  '=',
  '::',
  'regclass',
  'text',
  '*',
  '-',
  '+',
  '.',
  'E',
  'AS',
  'WITH',
  'd',
  'RETURNING',
  'COPY',
  'TO',
  'STDOUT',
  'EXPLAIN',
  'ANALYZE',
  'DO',
  'LANGUAGE',
  'plpgsql',
  'public',
  'limit',
];
const literal = fc.oneof(
  fc.integer({ min: 0, max: 99999 }).map(String),
  fc.constantFrom('1.5', '2e10', '0.0'),
  fc.constantFrom('DROP TABLE x', 'secrets', 'public.orders', 'SELECT 1', '', 'x;y', 'BEGIN DELETE FROM t; END').map((s) => `'${s}'`),
);
const slot = fc.oneof({ arbitrary: fc.constantFrom(...FRAGMENTS), weight: 3 }, { arbitrary: fc.constant('?'), weight: 1 });
const template = fc.array(slot, { minLength: 1, maxLength: 10 }).map((parts) => parts.join(' '));
const fill = (t: string, values: string[]): string => {
  let i = 0;
  return t.replace(/\?/g, () => values[i++ % values.length]);
};

test('equal fast keys imply equal classification unless constant-sensitive (property)', () => {
  fc.assert(
    fc.property(
      template,
      fc.array(literal, { minLength: 1, maxLength: 4 }),
      fc.array(literal, { minLength: 1, maxLength: 4 }),
      (t, a, b) => {
        const ta = fill(t, a);
        const tb = fill(t, b);
        const ka = fastLiteralKey(ta);
        if (ka === undefined || ka !== fastLiteralKey(tb)) return;
        const da = classifyDetailed(ta);
        const db = classifyDetailed(tb);
        if ('parseError' in da.result || 'parseError' in db.result) {
          expect('parseError' in da.result).toBe('parseError' in db.result);
          return;
        }
        expect(da.constSensitive).toBe(db.constSensitive);
        if (!da.constSensitive) expect(da.result).toEqual(db.result);
      },
    ),
    { numRuns: 3000 },
  );
});
