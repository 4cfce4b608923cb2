// Masked columns stored where masking no longer applies, through the real sidecar to a real
// PostgreSQL: SQL the sidecar cannot see (EXECUTE of a computed string) creating a table or a
// function, and renaming the table, its schema or its column away from the names the rules use.
// Each step is refused, and nothing read back carries the protected value.
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { queryTexts } from '../../test/support/wire-client';

const SECRET = 'zqsecret8842';
const SETUP = `
CREATE SCHEMA vault;
CREATE TABLE vault.accounts (id int, token text);
INSERT INTO vault.accounts VALUES (1, '${SECRET}');
CREATE TABLE customers (id int PRIMARY KEY, name text, secret_code text);
INSERT INTO customers VALUES (1, 'Ada', '${SECRET}');
CREATE TABLE notes (id int, body text);
CREATE SEQUENCE order_ids;
CREATE TABLE documents (id int, body text);
ALTER TABLE documents ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO documents VALUES (1, '${SECRET}' || repeat('x', 3000));
`;
const MASKING = `  masking:
    - name: secrets
      columns: [customers.secret_code, vault.accounts.token, documents.body]
      strategy: redact
`;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => crmPolicy(pg, MASKING) });
});

afterAll(async () => {
  await stack?.stop();
});

/** Runs each statement as a simple Query; returns what the agent received for each, as text. */
async function run(...sql: string[]): Promise<string[]> {
  return queryTexts(stack.agentUrl(), ...sql);
}

const REFUSED = /^E:.*C42501\0Magent-warden: /;

test.each([
  ["DO $$ BEGIN EXECUTE 'CREATE TABLE stash AS SELECT secret' || '_code AS x FROM customers'; END $$", 'SELECT * FROM stash'],
  [
    "DO $$ BEGIN EXECUTE 'CREATE FUNCTION leak() RETURNS text LANGUAGE sql AS ''SELECT secret' || '_code FROM customers'''; END $$",
    'SELECT leak()',
  ],
  ["DO $$ BEGIN EXECUTE 'INSERT INTO notes SELECT id, secret' || '_code FROM customers'; END $$", 'SELECT body FROM notes'],
])('SQL the sidecar cannot see is refused where columns are masked: %s', async (store, readBack) => {
  const [stored, read] = await run(store, readBack);
  expect(stored).toMatch(REFUSED);
  expect(read.includes(SECRET)).toBe(false);
});

test.each([
  ['ALTER TABLE customers RENAME COLUMN secret_code TO code', 'SELECT code FROM customers'],
  ['ALTER TABLE customers RENAME secret_code TO code', 'SELECT code FROM customers'],
  ['ALTER TABLE customers RENAME TO clients', 'SELECT secret_code FROM clients'],
  ['ALTER TABLE IF EXISTS public.customers RENAME TO clients', 'SELECT secret_code FROM clients'],
  ['ALTER SCHEMA vault RENAME TO safe', 'SELECT token FROM safe.accounts'],
  ['ALTER TABLE vault.accounts SET SCHEMA public', 'SELECT token FROM public.accounts'],
])('renaming a table, column or schema the masking rules name is refused: %s', async (rename, readBack) => {
  const [renamed, read] = await run(rename, readBack);
  expect(renamed).toMatch(REFUSED);
  expect(read.includes(SECRET)).toBe(false);
});

test('renaming tables without masked columns, and other ALTERs of masked tables, pass', async () => {
  const out = await run(
    'ALTER TABLE notes RENAME TO notes2',
    'ALTER TABLE notes2 RENAME TO notes',
    'ALTER TABLE customers ADD COLUMN extra int',
    'ALTER TABLE customers RENAME COLUMN extra TO extra2',
  );
  for (const r of out) expect(r).toMatch(/^C:ALTER TABLE/);
});

test('a trigger on a table with masked columns is refused: its function gets whole rows (NEW, OLD), masked columns included', async () => {
  // The trigger function exists already (created outside the sidecar).
  await stack.admin(
    "CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO notes VALUES (1, row_to_json(NEW)::text); PERFORM pg_notify('c', NEW::text); RETURN NEW; END $$",
  );
  const [listen, trigger, update, notes] = await run(
    'LISTEN c',
    'CREATE TRIGGER t AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION trg()',
    'UPDATE customers SET name = name',
    'SELECT body FROM notes',
  );
  expect(listen).toMatch(/^C:LISTEN/);
  expect(trigger).toMatch(REFUSED);
  for (const r of [update, notes]) expect(r.includes(SECRET)).toBe(false);
  for (const sql of [
    'CREATE CONSTRAINT TRIGGER t2 AFTER INSERT ON customers FOR EACH ROW EXECUTE FUNCTION trg()',
    'CREATE TRIGGER t3 BEFORE DELETE ON public.customers FOR EACH ROW EXECUTE FUNCTION trg()',
  ]) {
    expect((await run(sql))[0]).toMatch(REFUSED);
  }
  // Tables without masked columns keep their triggers.
  expect((await run('CREATE TRIGGER t4 AFTER UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION trg()'))[0]).toMatch(/^C:CREATE TRIGGER/);
});

test.each([
  [
    "CREATE FUNCTION keep(t text) RETURNS text LANGUAGE sql AS 'INSERT INTO notes VALUES (9, $1) RETURNING body'",
    'SELECT keep(secret_code) FROM customers',
  ],
  [
    'CREATE FUNCTION keep(t text) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN INSERT INTO notes VALUES (9, t); RETURN true; END $$',
    'SELECT name FROM customers WHERE keep(secret_code)',
  ],
  ["CREATE FUNCTION keep(t text) RETURNS void LANGUAGE sql AS 'SELECT pg_notify(''c'', $1)'", 'SELECT keep(secret_code) FROM customers'],
  ["CREATE PROCEDURE keep(t text) LANGUAGE sql AS 'UPDATE notes SET body = t'", 'CALL keep((SELECT secret_code FROM customers))'],
])(
  'a function whose body writes or sends is refused where columns are masked (a masked argument would leave through it): %s',
  async (create, use) => {
    const [created, , read] = await run(create, use, 'SELECT body FROM notes');
    expect(created).toMatch(REFUSED);
    expect(read.includes(SECRET)).toBe(false);
  },
);

test('functions that only read (and set constants) can still be created', async () => {
  const [a, b] = await run(
    "CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql SET search_path = public AS 'SELECT upper(t)'",
    'CREATE FUNCTION n_notes() RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT count(*) FROM notes); END $$',
  );
  expect(a).toMatch(/^C:CREATE FUNCTION/);
  expect(b).toMatch(/^C:CREATE FUNCTION/);
});

test.each([
  ["SELECT lo_from_bytea(4242, convert_to(secret_code, 'UTF8')) FROM customers", "SELECT convert_from(lo_get(4242), 'UTF8')"],
  ["SELECT setval('order_ids', ascii(secret_code)) FROM customers", 'SELECT last_value FROM order_ids'],
  ['SELECT pg_advisory_lock(ascii(secret_code)) FROM customers', "SELECT objid FROM pg_locks WHERE locktype = 'advisory'"],
  ["SELECT pg_logical_emit_message(false, 'x', secret_code) FROM customers", 'SELECT 1'],
])(
  'a side-effect function fed a masked column is refused (the value would be read back from the object it changes): %s',
  async (write, readBack) => {
    const [written, read] = await run(write, readBack);
    expect(written).toMatch(REFUSED);
    expect(read.includes(SECRET)).toBe(false);
    expect(read.includes('\u0000\u0000\u0000\u0003122')).toBe(false); // ascii('z'), the first character
  },
);

test('an operator over a side-effect built-in is refused where columns are masked (it would be called without being named)', async () => {
  const [created, used, read] = await run(
    'CREATE OPERATOR ==> (LEFTARG = oid, RIGHTARG = bytea, FUNCTION = lo_from_bytea)',
    "SELECT 4243 ==> convert_to(secret_code, 'UTF8') FROM customers",
    "SELECT convert_from(lo_get(4243), 'UTF8')",
  );
  expect(created).toMatch(REFUSED);
  expect(used).toMatch(/^E:/);
  expect(read.includes(SECRET)).toBe(false);
});

test("a masked table's TOAST relation (where long values are stored out of line) is refused where columns are masked", async () => {
  const [{ t }] = await stack.admin("SELECT reltoastrelid::regclass::text AS t FROM pg_class WHERE relname = 'documents'");
  expect(String(t)).toMatch(/^pg_toast\.pg_toast_\d+$/);
  for (const sql of [`SELECT chunk_data FROM ${t}`, `SELECT convert_from(chunk_data, 'UTF8') FROM ${t}`, `COPY ${t} TO STDOUT`]) {
    const [r] = await run(sql);
    expect(r).toMatch(REFUSED);
    expect(r.includes(SECRET) || r.includes(Buffer.from(SECRET).toString('hex'))).toBe(false);
  }
});

test.each([
  ["SELECT encode(pg_read_binary_file(pg_relation_filepath('customers')), 'escape')", 'SELECT 1'],
  ["SELECT lo_import(pg_relation_filepath('customers'), 4250)", "SELECT encode(lo_get(4250), 'escape')"],
  ["COPY notes (body) FROM PROGRAM 'cat global/pg_control'", 'SELECT body FROM notes'],
  ["COPY notes (body) FROM '/etc/hostname'", 'SELECT body FROM notes'],
])("server files (a masked table's heap file) are refused where columns are masked: %s", async (read, readBack) => {
  await stack.admin('CHECKPOINT');
  const [r, back] = await run(read, readBack);
  expect(r).toMatch(REFUSED);
  expect(r.includes(SECRET) || back.includes(SECRET)).toBe(false);
});

test.each([
  "SELECT encode(get_raw_page('customers', 0), 'escape')",
  "SELECT t_data FROM heap_page_items(get_raw_page('customers', 0))",
  "SELECT data FROM bt_page_items('customers_secret_idx', 1)",
])('raw pages (pageinspect) are refused where columns are masked: %s', async (sql) => {
  await stack.admin(
    'CREATE EXTENSION IF NOT EXISTS pageinspect; CREATE INDEX IF NOT EXISTS customers_secret_idx ON customers (secret_code)',
  );
  const [r] = await run(sql);
  expect(r).toMatch(REFUSED);
  expect(r.includes(SECRET) || r.includes(Buffer.from(SECRET).toString('hex'))).toBe(false);
});
