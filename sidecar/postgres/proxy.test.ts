// End to end through the sidecar with a real PostgreSQL (SCRAM) and real clients: pg (simple and
// extended), postgres.js (pipelining), psql.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Client } from 'pg';
import postgres from 'postgres';
import { crmPolicy, hasPsql, startStack, type Stack } from '../../test/support/stack';

const run = promisify(execFile);

const SETUP = `
DROP TABLE IF EXISTS customers, orders, secrets CASCADE;
CREATE TABLE customers (id int PRIMARY KEY, name text, email text);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int, total numeric);
CREATE TABLE secrets (id int, value text);
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Bob', 'bob@example.com');
`;

const RULES = `  rules:
    - name: no-ddl
      action: deny
      match: {target: crm, sql: {statements: [DROP, TRUNCATE, ALTER, GRANT, CREATE]}}
    - name: no-file-access
      action: deny
      match: {target: crm, sql: {functions: [pg_read_file, pg_ls_dir]}}
    - name: deletes-need-approval
      action: hold
      approval: {approvers: {groups: [sre]}, timeout: 1m}
      match: {target: crm, sql: {statements: [DELETE]}}
    - name: no-secrets
      action: deny
      match: {target: crm, sql: {tables: [secrets]}}
`;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => crmPolicy(pg, RULES) });
});

afterAll(async () => {
  await stack?.stop();
});

async function agent(): Promise<Client> {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  return c;
}

describe('relaying', () => {
  test('simple and extended protocol queries reach the real database with the real credentials', async () => {
    const c = await agent();
    try {
      const simple = await c.query('SELECT current_user AS u, current_database() AS db');
      expect(simple.rows[0]).toEqual({ u: stack.pg.user, db: 'crm' });
      const ext = await c.query('SELECT name FROM customers WHERE id = $1', [2]);
      expect(ext.rows).toEqual([{ name: 'Bob' }]);
      const ins = await c.query('INSERT INTO orders (customer_id, total) VALUES ($1, $2) RETURNING id', [1, '9.99']);
      expect(ins.rowCount).toBe(1);
    } finally {
      await c.end();
    }
  });

  test('the agent never learns the credential: server parameters pass, password does not', async () => {
    const c = await agent();
    try {
      const r = await c.query("SELECT current_setting('application_name') AS app");
      expect(r.rows[0].app).toBeDefined();
      // SHOW of the password is impossible anyway; check that what the agent sees has no secret in it.
      const params = JSON.stringify((c as unknown as { connectionParameters: unknown }).connectionParameters);
      expect(params).not.toContain(stack.pg.password);
    } finally {
      await c.end();
    }
  });

  test('postgres.js pipelines several queries over one connection', async () => {
    const sql = postgres(stack.agentUrl(), { max: 1 });
    try {
      const results = await Promise.all(
        [1, 2, 3, 4, 5].map((i) => sql`SELECT ${i}::int AS n, name FROM customers WHERE id = ${(i % 2) + 1}`),
      );
      expect(results.map((r) => r[0].n)).toEqual([1, 2, 3, 4, 5]);
    } finally {
      await sql.end();
    }
  });

  (hasPsql ? test : test.skip)('psql works through the sidecar', async () => {
    const { stdout } = await run('psql', [stack.agentUrl(), '-At', '-c', 'SELECT count(*) FROM customers']);
    expect(stdout.trim()).toBe('2');
  });

  test('LISTEN/NOTIFY notifications reach the agent', async () => {
    const listener = await agent();
    const notifier = await agent();
    try {
      await listener.query('LISTEN warden_test');
      const got = new Promise<string | undefined>((resolve) => listener.on('notification', (n) => resolve(n.payload)));
      await notifier.query("NOTIFY warden_test, 'hello'");
      await expect(got).resolves.toBe('hello');
    } finally {
      await listener.end();
      await notifier.end();
    }
  });
});

describe('denials', () => {
  test('a denied statement gets 42501 naming the rule, and the connection stays usable', async () => {
    const c = await agent();
    try {
      await expect(c.query('DROP TABLE customers')).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('no-ddl') });
      const r = await c.query('SELECT count(*)::int AS n FROM customers');
      expect(r.rows[0].n).toBe(2);
      await expect(c.query('SELECT * FROM secrets WHERE id = $1', [1])).rejects.toMatchObject({
        code: '42501',
        message: expect.stringContaining('no-secrets'),
      });
      expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    } finally {
      await c.end();
    }
  });

  test('one denied statement in a multi-statement string denies the whole string before any of it runs', async () => {
    const c = await agent();
    try {
      await expect(
        c.query("INSERT INTO orders (customer_id, total) VALUES (99, 1); SELECT pg_read_file('/etc/passwd')"),
      ).rejects.toMatchObject({ code: '42501' });
      const r = await c.query('SELECT count(*)::int AS n FROM orders WHERE customer_id = 99');
      expect(r.rows[0].n).toBe(0);
    } finally {
      await c.end();
    }
  });

  test('a denial inside a transaction aborts it as a real error would', async () => {
    const c = await agent();
    try {
      await c.query('BEGIN');
      await c.query('INSERT INTO orders (customer_id, total) VALUES (77, 1)');
      await expect(c.query('TRUNCATE orders')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
      await c.query('ROLLBACK');
      const r = await c.query('SELECT count(*)::int AS n FROM orders WHERE customer_id = 77');
      expect(r.rows[0].n).toBe(0);
    } finally {
      await c.end();
    }
  });

  test('a denial in a pipelined extended batch fails only that query; the others complete', async () => {
    const sql = postgres(stack.agentUrl(), { max: 1 });
    try {
      const outcomes = await Promise.allSettled([
        sql`SELECT 1::int AS a`,
        sql`SELECT * FROM secrets WHERE id = ${1}`,
        sql`SELECT 3::int AS c`,
      ]);
      expect(outcomes[0]).toMatchObject({ status: 'fulfilled' });
      expect(outcomes[1]).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ code: '42501' }) });
      expect(outcomes[2]).toMatchObject({ status: 'fulfilled' });
      expect((await sql`SELECT 4::int AS d`)[0].d).toBe(4);
    } finally {
      await sql.end();
    }
  });

  test('a hold without an approval service fails closed, saying why', async () => {
    const c = await agent();
    try {
      await expect(c.query('DELETE FROM customers WHERE id = 1')).rejects.toMatchObject({
        code: '42501',
        message: expect.stringContaining('nobody can decide holds on this sidecar'),
      });
      expect((await c.query('SELECT count(*)::int AS n FROM customers')).rows[0].n).toBe(2);
    } finally {
      await c.end();
    }
  });

  test('EXECUTE is judged by what was prepared; unknown prepared names are refused', async () => {
    const c = await agent();
    try {
      await expect(c.query('PREPARE p1 AS DELETE FROM customers')).rejects.toMatchObject({ code: '42501' });
      await c.query('PREPARE p2 AS SELECT name FROM customers ORDER BY id');
      expect((await c.query('EXECUTE p2')).rows[0].name).toBe('Ada');
      await expect(c.query('EXECUTE p_unknown')).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('p_unknown') });
      await c.query('DEALLOCATE p2');
      await expect(c.query('EXECUTE p2')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await c.end();
    }
  });

  test('turning off standard_conforming_strings closes the session (the server would lex differently)', async () => {
    const c = await agent();
    c.on('error', () => undefined);
    try {
      await expect(c.query("SELECT set_config('standard_conforming_strings', 'off', false)")).rejects.toThrow(
        /standard_conforming_strings/,
      );
    } finally {
      await c.end().catch(() => undefined);
    }
  });

  test('startup options that would change lexing are refused at login', async () => {
    const c = new Client({ connectionString: stack.agentUrl(), options: '-c standard_conforming_strings=off' });
    await expect(c.connect()).rejects.toMatchObject({ code: '42501' });
  });

  test('every decision is audited with its rule', async () => {
    const before = stack.events.length;
    const c = await agent();
    try {
      await c.query('SELECT 1').catch(() => undefined);
      await c.query('DROP TABLE orders').catch(() => undefined);
    } finally {
      await c.end();
    }
    const mine = stack.events.slice(before);
    expect(mine.some((e) => e.decision === 'allow' && e.kinds.includes('SELECT'))).toBe(true);
    expect(mine.some((e) => e.decision === 'deny' && e.rule === 'no-ddl')).toBe(true);
  });
});

describe('hot reload', () => {
  test('a policy change applies to the next statement; an invalid one is rejected and the old one stays', async () => {
    const c = await agent();
    try {
      expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBeGreaterThanOrEqual(0);
      // The same text twice: its decision is memoised by the session, and must not outlive the reload.
      await c.query('SELECT count(*) FROM orders');
      await c.query('SELECT count(*) FROM orders');
      const stricter = crmPolicy(
        stack.pg,
        RULES +
          `    - name: no-orders
      action: deny
      match: {target: crm, sql: {tables: [orders]}}
`,
      );
      stack.writePolicy(stricter.replace('listenPort: 15432', 'listenPort: 15432'));
      expect(stack.sidecar.store.check()).toBe(true);
      await expect(c.query('SELECT count(*) FROM orders')).rejects.toMatchObject({
        code: '42501',
        message: expect.stringContaining('no-orders'),
      });
      stack.writePolicy(
        stricter.replace('action: deny\n      match: {target: crm, sql: {tables: [orders]}}', 'action: explode\n      match: {}'),
      );
      expect(stack.sidecar.store.check()).toBe(false);
      await expect(c.query('SELECT count(*) FROM orders')).rejects.toMatchObject({ code: '42501' });
    } finally {
      stack.writePolicy(crmPolicy(stack.pg, RULES));
      stack.sidecar.store.check();
      await c.end();
    }
  });
});
