// Partitions and inheritance children hold the masked table's rows under their own names. Through
// the real sidecar to a real PostgreSQL: the rules of the table they inherit from apply to them
// (read directly, computed from, copied out), column by column.
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { queryTexts } from '../../test/support/wire-client';

const SECRET = 'zqsecret8842';
const SETUP = `
CREATE TABLE customers (id int, name text, secret_code text) PARTITION BY RANGE (id);
CREATE TABLE customers_p1 PARTITION OF customers FOR VALUES FROM (0) TO (100) PARTITION BY RANGE (id);
CREATE TABLE customers_p1a PARTITION OF customers_p1 FOR VALUES FROM (0) TO (50);
INSERT INTO customers VALUES (1, 'Ada', '${SECRET}');
CREATE TABLE accounts (id int, token text);
CREATE TABLE accounts_old (note text) INHERITS (accounts);
INSERT INTO accounts_old VALUES (1, '${SECRET}', 'kept');
`;
const MASKING = `  masking:
    - name: secrets
      columns: [customers.secret_code, accounts.token]
      strategy: redact
`;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => crmPolicy(pg, MASKING) });
});

afterAll(async () => {
  await stack?.stop();
});

async function received(sql: string): Promise<string> {
  return (await queryTexts(stack.agentUrl(), sql))[0];
}

test.each([
  'SELECT secret_code FROM customers_p1',
  'SELECT * FROM customers_p1a',
  'SELECT upper(secret_code) FROM customers_p1a',
  'SELECT token FROM accounts_old',
  "SELECT token || '' FROM accounts_old",
  'COPY customers_p1a TO STDOUT',
  'COPY (SELECT * FROM accounts_old) TO STDOUT (FORMAT csv)',
])('a partition or inheritance child of a masked table is masked: %s', async (sql) => {
  const r = await received(sql);
  expect(r.toLowerCase()).not.toContain(SECRET);
  expect(r).toMatch(/\|Z:/);
});

test('their other columns stay in clear', async () => {
  expect(await received('SELECT name FROM customers_p1a')).toContain('Ada');
  expect(await received('SELECT note FROM accounts_old')).toContain('kept');
});

test.each([
  ['ALTER TABLE customers DETACH PARTITION customers_p1', 'SELECT secret_code FROM customers_p1a'],
  ['ALTER TABLE customers_p1 DETACH PARTITION customers_p1a', 'SELECT secret_code FROM customers_p1a'],
  ['ALTER TABLE accounts_old NO INHERIT accounts', 'SELECT token FROM accounts_old'],
])('taking a partition or child away from its masked ancestor is refused: %s', async (detach, readBack) => {
  expect(await received(detach)).toMatch(/^E:.*C42501\0Magent-warden: /);
  expect((await received(readBack)).toLowerCase()).not.toContain(SECRET);
});
