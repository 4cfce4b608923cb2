// What the classifier tells the masking about a statement: whether it reads a row as one value,
// and for COPY ... TO STDOUT what to describe and in which format the rows come.
import { classifySql, initClassifier } from './classify';

beforeAll(async () => {
  await initClassifier();
});

function first(sql: string) {
  const r = classifySql(sql);
  if (!('statements' in r) || r.statements.length === 0) throw new Error(`no statement in ${sql}`);
  return r.statements[0];
}

test.each([
  'SELECT c FROM customers c',
  'SELECT customers FROM customers',
  'SELECT to_jsonb(c) FROM customers AS c',
  'SELECT to_jsonb(c.*) FROM customers c',
  'SELECT row(c.*) FROM customers c',
  'SELECT t FROM (SELECT * FROM customers) t',
  'WITH x AS (SELECT * FROM customers) SELECT x FROM x',
  'SELECT card_number(c) FROM customers c',
  "DO $$DECLARE v text; BEGIN SELECT c::text INTO v FROM customers c; END$$",
])('%s reads a whole row', (sql) => {
  expect(first(sql).wholeRow).toBe(true);
});

test.each(['SELECT * FROM customers', 'SELECT c.* FROM customers c', 'SELECT c.id, name FROM customers c', 'SELECT count(*) FROM customers', 'SELECT id FROM customers WHERE EXISTS (SELECT * FROM orders)'])(
  '%s reads columns, not whole rows',
  (sql) => {
    expect(first(sql).wholeRow).toBeUndefined();
  },
);

test('COPY TO STDOUT: the SELECT to describe and the format options', () => {
  expect(first('COPY customers TO STDOUT').copyOut).toEqual({ select: 'SELECT * FROM "customers"', format: 'text' });
  expect(first('COPY billing."Cards" (id, "Card") TO STDOUT WITH CSV HEADER').copyOut).toEqual({
    select: 'SELECT "id", "Card" FROM "billing"."Cards"',
    format: 'csv',
    header: true,
  });
  expect(first("COPY (SELECT ')' /* ( */, x FROM t) TO STDOUT (FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'nil', HEADER false)").copyOut).toEqual({
    select: "SELECT ')' /* ( */, x FROM t",
    format: 'csv',
    delimiter: ';',
    quote: "'",
    escape: '\\',
    null: 'nil',
    header: false,
  });
  expect(first('COPY t TO STDOUT (FORMAT binary)').copyOut?.format).toBe('binary');
  expect(first("COPY t TO '/tmp/x'").copyOut).toBeUndefined();
  expect(first('COPY t FROM STDIN').copyOut).toBeUndefined();
});
