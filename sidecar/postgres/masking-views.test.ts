// A view over a masked column, through the real sidecar to a real PostgreSQL: naming the view counts
// as naming the column, so what is computed from it, the errors and notices it causes and what it
// would store elsewhere are masked or refused like the column's own. Every received byte is searched.
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { queryTexts } from '../../test/support/wire-client';

const SECRET = 'zqsecret8842';
const SETUP = `
CREATE TABLE customers (id int PRIMARY KEY, name text, secret_code text);
INSERT INTO customers VALUES (1, 'Ada', '${SECRET}');
CREATE VIEW customer_codes AS SELECT id, secret_code AS code FROM customers;
CREATE VIEW customer_codes_2 AS SELECT id AS n, code AS c FROM customer_codes;
CREATE VIEW customer_names AS SELECT id, name FROM customers;
CREATE TABLE notes (id int, body text);
INSERT INTO notes VALUES (1, 'plain');
`;
const MASKING = `  masking:
    - name: secrets
      columns: [customers.secret_code]
      strategy: redact
`;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => crmPolicy(pg, MASKING) });
});

afterAll(async () => {
  await stack?.stop();
});

/** What the agent receives for `sql` (a simple Query), as text. */
async function received(sql: string): Promise<string> {
  return (await queryTexts(stack.agentUrl(), sql))[0];
}

/** The secret in any letter case (upper() and lower() keep it readable). */
function leaks(text: string): boolean {
  return text.toLowerCase().includes(SECRET);
}

test.each([
  'SELECT upper(code) FROM customer_codes',
  "SELECT code || '' FROM customer_codes",
  'SELECT (SELECT code FROM customer_codes) AS x',
  "SELECT string_agg(code, ',') FROM customer_codes",
  "WITH x AS (SELECT code FROM customer_codes) SELECT code || '' FROM x",
  'SELECT lower(c) FROM customer_codes_2',
  'SELECT code::int FROM customer_codes',
  'SELECT * FROM customer_codes WHERE code::date IS NULL',
  "DO $$ DECLARE s text; BEGIN SELECT code INTO s FROM customer_codes; RAISE NOTICE '%', s; END $$",
  "DO $$ DECLARE s text; BEGIN SELECT code INTO s FROM customer_codes; RAISE EXCEPTION '%', s; END $$",
  "SELECT set_config('application_name', code, false) FROM customer_codes",
])('nothing computed from a view over a masked column comes back in clear: %s', async (sql) => {
  expect(leaks(await received(sql))).toBe(false);
});

test.each([
  ['INSERT INTO notes SELECT id, code FROM customer_codes', 'SELECT body FROM notes'],
  ['CREATE TABLE stash AS SELECT * FROM customer_codes', 'SELECT * FROM stash'],
  ['UPDATE notes SET body = (SELECT code FROM customer_codes LIMIT 1)', 'SELECT body FROM notes'],
  ["CREATE FUNCTION lf() RETURNS text LANGUAGE sql AS 'SELECT code FROM customer_codes'", 'SELECT lf()'],
])('storing what a view over a masked column reads is refused: %s', async (store, readBack) => {
  expect(await received(store)).toMatch(/^E:.*C42501\0Magent-warden: /);
  expect(leaks(await received(readBack))).toBe(false);
});

test('views that read no masked column, and computed values of plain tables, pass in clear', async () => {
  expect(await received("SELECT upper(name) || '!' FROM customer_names")).toContain('ADA!');
  expect(await received('SELECT upper(body) FROM notes')).toContain('PLAIN');
  expect(await received('UPDATE notes SET body = (SELECT name FROM customer_names LIMIT 1)')).toMatch(/^C:UPDATE 1/);
});

test('a view created later (outside the sidecar) is known after the DDL the sidecar relays', async () => {
  await stack.admin('CREATE VIEW late_codes AS SELECT secret_code AS k FROM customers');
  // Any DDL through the sidecar reloads the list; so does its expiry.
  expect(await received('CREATE TABLE unrelated (a int)')).toMatch(/^C:CREATE TABLE/);
  expect(leaks(await received('SELECT upper(k) FROM late_codes'))).toBe(false);
});
