// `readOnly: true` on a postgres target, end to end against the real server: the policy here
// ALLOWS writes, so a refused INSERT proves the server itself enforces read-only (25006), and
// every way to switch read-only off is refused by the sidecar (42501) or ends the session.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import type { PgServer } from '../../tools/pg-server';
import { startStack, type Stack } from '../../test/support/stack';

const SETUP = `
CREATE TABLE orders (id int, total numeric);
INSERT INTO orders VALUES (1, 10);
-- Database and role defaults that say off: the sidecar's startup parameter outranks both,
-- and RESET ALL returns to it.
ALTER DATABASE crm SET default_transaction_read_only = off;
DO $$ BEGIN EXECUTE format('ALTER ROLE %I IN DATABASE crm SET default_transaction_read_only = off', current_user); END $$;
CREATE OR REPLACE FUNCTION make_rw() RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN RETURN set_config('default_transaction_read_only', 'off', false); END $$;
`;

function policy(pg: PgServer, readOnly = true): string {
  return `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: ro}
spec:
  defaultAction: allow
  targets:
    - name: crm
      postgres: {host: 127.0.0.1, port: ${pg.port}, database: crm, tls: disable, credentialsSecret: crm-db, listenPort: 15432, readOnly: ${readOnly}}
`;
}

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy });
});

afterAll(async () => {
  await stack?.stop();
});

async function connect(extra: Record<string, string> = {}): Promise<Client> {
  const c = new Client({ connectionString: stack.agentUrl(), ...extra });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

async function outcome(c: Client, text: string, extended = false): Promise<string> {
  return c.query(extended ? { text, name: `s${Math.random().toString(36).slice(2)}` } : text).then(
    () => 'EXECUTED',
    (e: { code?: string; message: string }) => `${e.code} ${e.message}`,
  );
}

async function count(): Promise<number> {
  return Number((await stack.admin('SELECT count(*) AS n FROM orders'))[0].n);
}

test('the session starts read-only: an INSERT the policy allows is refused by the server (25006)', async () => {
  const c = await connect();
  try {
    expect((await c.query('SHOW default_transaction_read_only')).rows).toEqual([{ default_transaction_read_only: 'on' }]);
    expect(await outcome(c, 'INSERT INTO orders VALUES (2, 20)')).toMatch(/^25006 cannot execute INSERT in a read-only transaction/);
    expect(await outcome(c, 'SELECT count(*) FROM orders')).toBe('EXECUTED');
  } finally {
    await c.end();
  }
  expect(await count()).toBe(1);
});

test.each([
  'SET default_transaction_read_only = off',
  'SET SESSION default_transaction_read_only TO false',
  "SET default_transaction_read_only = 'of'",
  'SET default_transaction_read_only = 0',
  'SET default_transaction_read_only TO DEFAULT',
  'RESET default_transaction_read_only',
  'SET LOCAL transaction_read_only = off',
  'SET transaction_read_only = off',
  'RESET transaction_read_only',
  "SELECT set_config('default_transaction_read_only', 'off', false)",
  "SELECT pg_catalog.set_config('TRANSACTION_READ_ONLY', 'off', true)",
  "SELECT set_config(n, 'off', false) FROM (VALUES ('default_transaction_read_only')) v(n)",
  'BEGIN READ WRITE',
  'BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE',
  'START TRANSACTION READ WRITE',
  'SET TRANSACTION READ WRITE',
  'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE',
  "DO $$ BEGIN PERFORM set_config('default_transaction_read_only', 'off', false); END $$",
  "DO $$ BEGIN EXECUTE 'SET default_transaction_read_only = off'; END $$",
  "DO $$ DECLARE v text := 'off'; BEGIN EXECUTE 'SET default_transaction_read_only = ' || v; END $$",
  "SELECT query_to_xml($q$SELECT set_config('default_transaction_read_only', 'off', false)$q$, true, false, '')",
  "PREPARE rw AS SELECT set_config('default_transaction_read_only', 'off', false)",
  // Another session does not start read-only: dblink would write there.
  "SELECT dblink_exec('dbname=crm', 'DELETE FROM orders')",
  "SELECT * FROM dblink('dbname=crm', 'DELETE FROM orders RETURNING id') AS t(id int)",
  "SELECT dblink_connect('c', 'dbname=crm')",
])('refused by the sidecar, in both protocols: %s', async (text) => {
  const c = await connect();
  try {
    for (const extended of [false, true]) {
      if (extended && /^(DO|PREPARE)/.test(text)) continue; // same text, classified the same way
      expect(await outcome(c, text, extended)).toMatch(/^42501 agent-warden: .*read-only/);
      await c.query('ROLLBACK').catch(() => undefined);
      expect((await c.query('SHOW default_transaction_read_only')).rows[0].default_transaction_read_only).toBe('on');
      expect(await outcome(c, 'INSERT INTO orders VALUES (3, 30)')).toMatch(/^25006/);
    }
  } finally {
    await c.end();
  }
  expect(await count()).toBe(1);
});

test('what the server allows in a read-only transaction but runs outside it is refused: COPY ... PROGRAM, ALTER SYSTEM', async () => {
  // The role may run programs (superuser): COPY TO PROGRAM is allowed in a read-only transaction,
  // and the command (here a marker file; `psql -c 'DELETE ...'` alike) runs outside the session.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ro-program-'));
  fs.chmodSync(dir, 0o777);
  const marker = path.join(dir, 'ran');
  const c = await connect();
  try {
    for (const extended of [false, true]) {
      expect(await outcome(c, `COPY (SELECT 1) TO PROGRAM 'cat > ${marker}'`, extended)).toMatch(
        /^42501 agent-warden: .*read-only.*COPY \.\.\. PROGRAM/,
      );
      expect(await outcome(c, "ALTER SYSTEM SET work_mem = '7MB'", extended)).toMatch(/^42501 agent-warden: .*read-only.*ALTER SYSTEM/);
    }
    expect(await outcome(c, `DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''cat > ${marker}'''; END $$`)).toMatch(
      /^42501 agent-warden: .*read-only/,
    );
    expect(await outcome(c, "DO $$ BEGIN EXECUTE 'ALTER SYSTEM SET work_mem = ''7MB'''; END $$")).toMatch(
      /^42501 agent-warden: .*read-only/,
    );
  } finally {
    await c.end();
  }
  expect(fs.existsSync(marker)).toBe(false);
  expect((await stack.admin("SELECT count(*) AS n FROM pg_file_settings WHERE name = 'work_mem'"))[0].n).toBe('0');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('what keeps it on passes: READ ONLY transactions, SET ... on, RESET ALL and DISCARD ALL (the start value is on)', async () => {
  const c = await connect();
  try {
    for (const text of [
      'BEGIN READ ONLY',
      'COMMIT',
      'START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY',
      'ROLLBACK',
      'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY',
      'SET default_transaction_read_only = on',
      "SELECT set_config('default_transaction_read_only', 'true', false)",
      "SELECT set_config('application_name', 'x', false)",
      'RESET ALL',
      'DISCARD ALL',
    ]) {
      expect(`${text}: ${await outcome(c, text)}`).toBe(`${text}: EXECUTED`);
      expect((await c.query('SHOW default_transaction_read_only')).rows[0].default_transaction_read_only).toBe('on');
    }
    expect(await outcome(c, 'INSERT INTO orders VALUES (4, 40)')).toMatch(/^25006/);
  } finally {
    await c.end();
  }
  expect(await count()).toBe(1);
});

test('a startup parameter that tries to turn it off is refused at login', async () => {
  const err = await connect({ options: '-c default_transaction_read_only=off' }).then(
    async (c) => {
      await c.end();
      return undefined;
    },
    (e: { code?: string; message: string }) => e,
  );
  expect(err).toMatchObject({ code: '42501', message: expect.stringContaining('default_transaction_read_only') });
  // Asking for on is fine.
  const c = await connect({ options: '-c default_transaction_read_only=on' });
  expect(await outcome(c, 'INSERT INTO orders VALUES (5, 50)')).toMatch(/^25006/);
  await c.end();
});

test('if the server ever reports it off (a function the sidecar cannot see into), the session ends', async () => {
  const c = await connect();
  const ended = new Promise<void>((resolve) => c.once('end', () => resolve()));
  const r = await outcome(c, 'SELECT make_rw()');
  expect(r).toMatch(/^42501 agent-warden: default_transaction_read_only was turned off/);
  await ended;
  expect(await count()).toBe(1);
});

test('a session that started before readOnly was switched on by a reload is refused until it reconnects', async () => {
  stack.writePolicy(policy(stack.pg, false));
  expect(stack.sidecar.store.check()).toBe(true);
  const c = await connect();
  try {
    expect((await c.query('SHOW default_transaction_read_only')).rows[0].default_transaction_read_only).toBe('off');
    stack.writePolicy(policy(stack.pg, true));
    expect(stack.sidecar.store.check()).toBe(true);
    expect(await outcome(c, 'INSERT INTO orders VALUES (6, 60)')).toMatch(/^42501 agent-warden: .*did not start read-only; reconnect/);
    const fresh = await connect();
    expect(await outcome(fresh, 'INSERT INTO orders VALUES (6, 60)')).toMatch(/^25006/);
    await fresh.end();
  } finally {
    stack.writePolicy(policy(stack.pg, true));
    stack.sidecar.store.check();
    await c.end();
  }
  expect(await count()).toBe(1);
});
