// When the catalog cannot be asked which table a result column comes from, the columns of the
// unknown tables are masked whole (fail closed) at once: no retry loop holding the rows back.
import { Client } from 'pg';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { ControlConnection } from './control-query';
import { connectUpstream } from './upstream';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    setupSql: `DROP TABLE IF EXISTS customers CASCADE;
      CREATE TABLE customers (id int PRIMARY KEY, name text, balance int8);
      INSERT INTO customers VALUES (1, 'Ada', 100);`,
    // One connection for the role: the agent's session takes it, so the catalog's own login fails.
    role: {
      name: 'one_conn',
      password: 'one-conn-pw-1',
      grants: 'GRANT ALL ON customers TO one_conn; ALTER ROLE one_conn CONNECTION LIMIT 1',
    },
    policy: (pg) =>
      crmPolicy(
        pg,
        `  masking:
    - name: money
      columns: [customers.balance]
      strategy: redact
`,
      ),
  });
});

afterAll(async () => {
  await stack?.stop();
});

test('a failed catalog lookup masks the unknown table whole, is audited once, and is not retried in a loop', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    const started = Date.now();
    const r = await c.query('SELECT id, name, balance FROM customers');
    expect(Date.now() - started).toBeLessThan(3000);
    expect(r.rows[0].balance).toBeNull();
    expect(r.rows[0].id).toBeNull(); // int4: not a text type, so masked as NULL
    expect(r.rows[0].name).not.toBe('Ada');
    // Within the back-off the next result is masked without another attempt.
    const again = await c.query('SELECT balance FROM customers');
    expect(again.rows[0].balance).toBeNull();
    const failures = stack.sessions.filter((e) => e.event === 'catalog-error');
    expect(failures).toHaveLength(1);
    expect(failures[0].message).toMatch(/masked whole/);
  } finally {
    await c.end();
  }
});

test('a control query that gets no answer times out and closes its connection', async () => {
  const conn = await connectUpstream({
    host: '127.0.0.1',
    port: stack.pg.port,
    database: 'crm',
    tls: 'disable',
    credentials: { username: stack.pg.user, password: stack.pg.password },
    params: {},
    timeoutMs: 5000,
    maxMessageBytes: 1 << 20,
  });
  const control = new ControlConnection(conn, 200);
  const started = Date.now();
  await expect(control.query('SELECT pg_sleep(3)')).rejects.toThrow(/timed out after 200 ms/);
  expect(Date.now() - started).toBeLessThan(2000);
  expect(control.isOpen).toBe(false);
});
