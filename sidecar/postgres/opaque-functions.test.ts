// A function in a language the sidecar cannot read (C, an untrusted PL) wraps anything under a new
// name: `LANGUAGE c AS '$libdir/dblink', 'dblink_exec'` runs dblink_exec as `dx`. Through the real
// sidecar to a real PostgreSQL whose role may create it: such a body is SQL the sidecar cannot see,
// and matches every rule that names statements, classes or functions.
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { queryTexts } from '../../test/support/wire-client';

const SETUP = 'CREATE EXTENSION IF NOT EXISTS dblink; CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2);';
const RULES = `  rules:
    - name: no-dblink
      action: deny
      match: {target: crm, sql: {functions: [dblink_exec, pg_read_file]}}
`;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => crmPolicy(pg, RULES) });
});

afterAll(async () => {
  await stack?.stop();
});

async function run(...sql: string[]): Promise<string[]> {
  return queryTexts(stack.agentUrl(), ...sql);
}

test('a C-language wrapper of a denied function is refused, and nothing runs through it', async () => {
  const u = new URL(stack.pg.url('crm'));
  const conninfo = `host=${u.hostname} port=${u.port} user=${decodeURIComponent(u.username)} password=${decodeURIComponent(u.password)} dbname=crm`;
  const [created, called] = await run(
    "CREATE FUNCTION dx(text, text) RETURNS text LANGUAGE c AS '$libdir/dblink', 'dblink_exec'",
    `SELECT dx('${conninfo}', 'DELETE FROM orders')`,
  );
  expect(created).toMatch(/^E:.*C42501\0Magent-warden: denied by rule "no-dblink"/);
  expect(called).toMatch(/^E:/);
  expect((await stack.admin('SELECT count(*)::int AS n FROM orders'))[0].n).toBe(2);
});

test('SQL and PL/pgSQL functions are still read and judged by what they run', async () => {
  const [sql, plpgsql, wraps] = await run(
    "CREATE FUNCTION two() RETURNS int LANGUAGE sql AS 'SELECT 2'",
    'CREATE FUNCTION three() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 3; END $$',
    "CREATE FUNCTION dy(text, text) RETURNS text LANGUAGE sql AS 'SELECT dblink_exec($1, $2)'",
  );
  expect(sql).toMatch(/^C:CREATE FUNCTION/);
  expect(plpgsql).toMatch(/^C:CREATE FUNCTION/);
  expect(wraps).toMatch(/^E:.*denied by rule "no-dblink"/);
});

test('a LANGUAGE internal wrapper is refused too: its symbol (pg_read_file_all) is not the name the rule uses', async () => {
  const [created, called] = await run(
    "CREATE FUNCTION rf(text) RETURNS text LANGUAGE internal AS 'pg_read_file_all'",
    "SELECT rf('postgresql.conf')",
  );
  expect(created).toMatch(/^E:.*C42501\0Magent-warden: denied by rule "no-dblink"/);
  expect(called).toMatch(/^E:/);
});

test.each([
  'CREATE OPERATOR !!! (RIGHTARG = text, FUNCTION = pg_read_file)',
  'CREATE OPERATOR !!! (RIGHTARG = text, PROCEDURE = pg_catalog.pg_read_file)',
  'CREATE AGGREGATE first_file(text) (SFUNC = textcat, STYPE = text, FINALFUNC = pg_read_file)',
])('a function an operator or aggregate calls is judged like a call: %s', async (create) => {
  const [created, called] = await run(create, "SELECT !!! 'postgresql.conf'");
  expect(created).toMatch(/^E:.*C42501\0Magent-warden: denied by rule "no-dblink"/);
  expect(called).toMatch(/^E:/);
});
