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
  'DO $$DECLARE v text; BEGIN SELECT c::text INTO v FROM customers c; END$$',
])('%s reads a whole row', (sql) => {
  expect(first(sql).wholeRow).toBe(true);
});

test.each([
  'SELECT * FROM customers',
  'SELECT c.* FROM customers c',
  'SELECT c.id, name FROM customers c',
  'SELECT count(*) FROM customers',
  'SELECT id FROM customers WHERE EXISTS (SELECT * FROM orders)',
])('%s reads columns, not whole rows', (sql) => {
  expect(first(sql).wholeRow).toBeUndefined();
});

test('COPY TO STDOUT: the SELECT to describe and the format options', () => {
  expect(first('COPY customers TO STDOUT').copyOut).toEqual({ select: 'SELECT * FROM "customers"', format: 'text', wholeTable: true });
  expect(first('COPY billing."Cards" (id, "Card") TO STDOUT WITH CSV HEADER').copyOut).toEqual({
    select: 'SELECT "id", "Card" FROM "billing"."Cards"',
    format: 'csv',
    header: true,
  });
  expect(
    first("COPY (SELECT ')' /* ( */, x FROM t) TO STDOUT (FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'nil', HEADER false)")
      .copyOut,
  ).toEqual({
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

test.each([
  ['CREATE TABLE t AS SELECT * FROM customers', true],
  ['SELECT * INTO t FROM customers', true],
  ['SELECT 1 UNION SELECT card_number INTO t FROM customers', true],
  ['CREATE VIEW v AS SELECT card_number FROM customers', true],
  ['CREATE MATERIALIZED VIEW v AS SELECT card_number FROM customers', true],
  ['INSERT INTO t SELECT card_number FROM customers', true],
  ['INSERT INTO t VALUES (1), ($1)', undefined],
  ['INSERT INTO t VALUES ((SELECT card_number FROM customers))', true],
  ['INSERT INTO t VALUES (1, upper(card_number))', true],
  ['MERGE INTO t USING customers c ON t.id = c.id WHEN NOT MATCHED THEN INSERT VALUES (c.card_number)', true],
  ['SELECT * FROM customers', undefined],
  ['UPDATE t SET a = 1', undefined],
  ['DELETE FROM t WHERE a = 1', undefined],
])('%s stores query results: %s', (sql, stores) => {
  expect(first(sql).stores).toBe(stores);
});

test('UPDATE: the columns its SET values read, `*` for a whole row; WHERE is not among them', () => {
  expect(first("UPDATE customers SET notes = card_number WHERE ssn = 'x'").setColumns).toEqual(['card_number']);
  expect(first('UPDATE customers c SET notes = c::text').setColumns).toEqual(['*', 'c']);
  expect(first('UPDATE customers SET notes = (SELECT x.card_number FROM customers x LIMIT 1)').setColumns).toEqual(['card_number', 'x']);
  expect(first("UPDATE customers SET notes = 'x' WHERE card_number = '1'").setColumns).toBeUndefined();
});

test('INSERT ... ON CONFLICT DO UPDATE: EXCLUDED is the proposed row; the existing row is what is read', () => {
  expect(
    first('INSERT INTO customers (id, card_number) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET card_number = EXCLUDED.card_number')
      .setColumns,
  ).toBeUndefined();
  expect(first('INSERT INTO customers (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET notes = customers.card_number').setColumns).toEqual([
    'card_number',
    'customers',
  ]);
  expect(
    first('INSERT INTO customers AS excluded (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET notes = excluded.card_number').setColumns,
  ).toEqual(['card_number', 'excluded']);
});

test('star marks any `*` column reference', () => {
  expect(first('SELECT * FROM customers').star).toBe(true);
  expect(first('SELECT count(*) FROM customers').star).toBeUndefined();
});
