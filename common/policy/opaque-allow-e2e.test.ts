// An allow rule that names DYNAMIC vouches for SQL the sidecar cannot see, but only within its other
// criteria: `allow {statements: [SELECT, DYNAMIC], tables: [reports]}` must not let an opaque
// statement on `secrets` through. Real sidecar, real PostgreSQL, defaultAction deny.
import { Client } from 'pg';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';

const SETUP = `DROP TABLE IF EXISTS reports, secrets;
CREATE TABLE reports (q text); INSERT INTO reports VALUES ('SELECT 1 AS one');
CREATE TABLE secrets (q text); INSERT INTO secrets VALUES ('SELECT 2 AS two');`;
const RULES = `  rules:
    - name: dynamic-reports
      action: allow
      match: {target: crm, sql: {statements: [SELECT, DYNAMIC], tables: [reports]}}
`;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => crmPolicy(pg, RULES, { defaultAction: 'deny' }) });
});

afterAll(async () => {
  await stack?.stop();
});

async function query(sql: string): Promise<{ ok: true } | { ok: false; message: string }> {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    await c.query(sql);
    return { ok: true };
  } catch (e) {
    return { ok: false, message: (e as Error).message };
  } finally {
    await c.end();
  }
}

test('opaque SQL on the table the allow rule names runs', async () => {
  expect(await query("SELECT query_to_xml(q, true, false, '') FROM reports")).toEqual({ ok: true });
});

test('opaque SQL on a table the allow rule does not name falls to the default (deny)', async () => {
  const r = await query("SELECT query_to_xml(q, true, false, '') FROM secrets");
  expect(r).toMatchObject({ ok: false, message: expect.stringContaining('policy default is deny') });
});
