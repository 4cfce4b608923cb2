// Statement classes, SQL the sidecar cannot see, and COPY to/from server files, end to end: a real
// client through the real sidecar to a real PostgreSQL whose role may do all of it. Each refused
// statement must leave the database as it was.
import { Client } from 'pg';
import { STATEMENT_CLASS_NAMES, STATEMENT_CLASSES } from '../../common/policy/statement-classes';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';

const SETUP = `
CREATE TABLE orders (id int, total numeric);
CREATE SEQUENCE order_ids;
INSERT INTO orders VALUES (1, 10), (2, 20);
CREATE INDEX orders_brin ON orders USING brin (id);
CREATE TABLE docs (t tsvector);
CREATE INDEX orders_gin ON docs USING gin (t);
`;

const RULES = `  rules:
    - name: no-ddl
      action: deny
      match: {target: crm, sql: {statements: [DDL, DCL]}}
    - name: no-admin
      action: deny
      match: {target: crm, sql: {statements: [ADMIN]}}
    - name: no-file-functions
      action: deny
      match: {target: crm, sql: {functions: [pg_read_file]}}
    - name: writes-need-approval
      action: hold
      approval: {approvers: {groups: [sre]}}
      match: {target: crm, sql: {statements: [WRITE]}}
`;

let stack: Stack;
let c: Client;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => crmPolicy(pg, RULES) });
  c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
});

afterAll(async () => {
  await c?.end();
  await stack?.stop();
});

async function state(): Promise<string> {
  const rows = await stack.admin(`SELECT (SELECT count(*) FROM orders) AS orders,
    (SELECT last_value FROM order_ids) AS seq, (SELECT is_called FROM order_ids) AS called,
    (SELECT obj_description('orders'::regclass)) AS comment,
    (SELECT count(*) FROM pg_tables WHERE schemaname = 'public') AS tables`);
  return JSON.stringify(rows[0]);
}

async function refusal(text: string, params?: unknown[]): Promise<string> {
  const err = await c.query(text, params).then(
    () => undefined,
    (e: { code?: string; message: string; detail?: string }) => e,
  );
  if (err === undefined) return 'EXECUTED';
  return `${err.code} ${err.message} ${err.detail ?? ''}`;
}

test.each([
  ["COMMENT ON TABLE orders IS 'pwned'", 'no-ddl'],
  ['CLUSTER orders', 'no-admin'],
  ['SELECT pg_terminate_backend(pg_backend_pid() + 100000)', 'no-admin'],
  ["SELECT set_config('work_mem', '1GB', false)", 'no-admin'],
  ["SELECT nextval('order_ids')", 'writes-need-approval'],
  ['SELECT pg_advisory_lock(42)', 'writes-need-approval'],
  ["COPY orders TO '/tmp/warden-orders.csv'", 'no-file-functions'],
  ["COPY orders FROM PROGRAM 'echo 9,9'", 'no-file-functions'],
  ["COPY (SELECT 1) TO PROGRAM 'true'", 'no-file-functions'],
])('%s is refused by rule %s', async (text, rule) => {
  const before = await state();
  const r = await refusal(text);
  expect(r).toMatch(/^42501 agent-warden/);
  expect(r).toContain(`rule "${rule}"`);
  expect(await state()).toBe(before);
});

test.each([
  ["SELECT query_to_xml($1, true, false, '')", ['DELETE FROM orders RETURNING id']],
  ["SELECT query_to_xml(q, true, false, '') FROM (VALUES ($1::text)) v(q)", ['DELETE FROM orders RETURNING id']],
  ["DO $$ DECLARE t text := 'orders'; BEGIN EXECUTE format('DELETE FROM %I', t); END $$", undefined],
  ["DO $$ BEGIN EXECUTE 'DELETE FROM ' || 'orders'; END $$", undefined],
])('SQL text the sidecar cannot see is refused: %s', async (text, params) => {
  const before = await state();
  const r = await refusal(text, params);
  expect(r).toMatch(/^42501 agent-warden/);
  // Matched by the first restrictive rule in the list, whatever it names.
  expect(r).toContain('rule "no-ddl"');
  expect(await state()).toBe(before);
});

test('reads and literal dynamic SQL that only reads still pass', async () => {
  expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows).toEqual([{ n: 2 }]);
  const xml = await c.query("SELECT query_to_xml('SELECT id FROM orders ORDER BY id', true, false, '') AS x");
  expect(String(xml.rows[0].x)).toContain('<id>1</id>');
  // Literal dynamic SQL is classified by its content: a DELETE inside is held like any DELETE.
  expect(await refusal("SELECT query_to_xml('DELETE FROM orders RETURNING id', true, false, '')")).toContain('rule "writes-need-approval"');
});

// Families of built-in functions with side effects, asked of the real server so a function a new
// PostgreSQL release adds to a family fails this test until it is given a class.
const SIDE_EFFECT_FAMILIES = `proname LIKE 'lo\\_%' OR proname IN ('lowrite', 'loread', 'nextval', 'setval', 'set_config', 'pg_notify')
  OR proname LIKE 'pg\\_ls\\_%' OR proname LIKE 'pg\\_read\\_%file%' OR proname = 'pg_stat_file' OR proname LIKE '%advisory%'
  OR proname LIKE 'pg\\_stat\\_reset%' OR proname LIKE 'pg\\_%replication\\_slot%' OR proname LIKE 'pg\\_logical\\_%'
  OR proname LIKE 'pg\\_replication\\_origin\\_%' OR proname LIKE 'pg\\_backup\\_%' OR proname LIKE 'pg\\_wal\\_replay\\_%'
  OR proname IN ('pg_terminate_backend', 'pg_cancel_backend', 'pg_reload_conf', 'pg_rotate_logfile', 'pg_promote',
                 'pg_switch_wal', 'pg_create_restore_point', 'pg_log_backend_memory_contexts', 'pg_import_system_collations')
  OR proname LIKE 'brin\\_%summarize%' OR proname = 'gin_clean_pending_list'`;
/** Members of those families that only read. */
const READS_IN_FAMILIES = new Set([
  'pg_get_replication_slots',
  'pg_stat_get_replication_slot',
  'pg_replication_origin_oid',
  'pg_replication_origin_progress',
  'pg_replication_origin_session_is_setup',
  'pg_replication_origin_session_progress',
]);

test('every side-effecting built-in function of the real server has exactly one class', async () => {
  const rows = await stack.admin(
    `SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace AND (${SIDE_EFFECT_FAMILIES})`,
  );
  const names = rows.map((r) => String(r.proname)).filter((n) => !READS_IN_FAMILIES.has(n));
  expect(names.length).toBeGreaterThan(60);
  const wrong = names
    .map((n) => [n, STATEMENT_CLASS_NAMES.filter((c) => STATEMENT_CLASSES[c].functions.includes(n))] as const)
    .filter(([, cs]) => cs.length !== 1);
  expect(wrong).toEqual([]);
});

test('an allow rule does not vouch for writes hidden in a read: writable CTE, EXPLAIN ANALYZE, nextval', async () => {
  const readOnlyRules = `  rules:
    - name: reads
      action: allow
      match: {target: crm, sql: {statements: [READ]}}
    - name: selects
      action: allow
      match: {target: crm, sql: {statements: [SELECT, EXPLAIN]}}
`;
  stack.writePolicy(crmPolicy(stack.pg, readOnlyRules, { defaultAction: 'deny' }));
  expect(stack.sidecar.store.check()).toBe(true);
  try {
    const before = await state();
    expect(await refusal('SELECT count(*) FROM orders')).toBe('EXECUTED');
    expect(await refusal('EXPLAIN SELECT * FROM orders')).toBe('EXECUTED');
    for (const text of [
      'WITH d AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM d',
      'EXPLAIN ANALYZE DELETE FROM orders',
      "SELECT nextval('order_ids')",
      "SELECT setval('order_ids', 1000)",
    ]) {
      expect(`${text}: ${await refusal(text)}`).toMatch(/: 42501 agent-warden: no rule matched; policy default is deny/);
    }
    expect(await state()).toBe(before);
  } finally {
    stack.writePolicy(crmPolicy(stack.pg, RULES));
    stack.sidecar.store.check();
  }
});

test('an allow [READ] rule does not vouch for row locks (SELECT ... FOR UPDATE / FOR SHARE is LOCK, WRITE) or index maintenance functions (ADMIN)', async () => {
  stack.writePolicy(
    crmPolicy(stack.pg, '  rules:\n    - name: reads\n      action: allow\n      match: {target: crm, sql: {statements: [READ]}}\n', {
      defaultAction: 'deny',
    }),
  );
  expect(stack.sidecar.store.check()).toBe(true);
  const holder = new Client({ connectionString: stack.agentUrl() });
  await holder.connect();
  try {
    await holder.query('BEGIN');
    for (const text of [
      'SELECT * FROM orders FOR UPDATE',
      'SELECT id FROM orders WHERE id = 1 FOR NO KEY UPDATE SKIP LOCKED',
      'SELECT * FROM orders FOR SHARE',
      'SELECT * FROM (SELECT * FROM orders FOR KEY SHARE) o',
      "SELECT brin_summarize_new_values('orders_brin')",
      "SELECT gin_clean_pending_list('orders_gin')",
      'DECLARE c CURSOR FOR SELECT * FROM orders FOR UPDATE',
    ]) {
      const r = await holder.query(text).then(
        () => 'EXECUTED',
        (e: { code?: string; message: string }) => `${e.code} ${e.message}`,
      );
      expect(`${text}: ${r}`).toBe(`${text}: 42501 agent-warden: no rule matched; policy default is deny`);
      await holder.query('ROLLBACK');
      await holder.query('BEGIN');
    }
    expect(await holder.query('SELECT count(*)::int AS n FROM orders').then((r) => r.rows)).toEqual([{ n: 2 }]);
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    await holder.end();
    stack.writePolicy(crmPolicy(stack.pg, RULES));
    stack.sidecar.store.check();
  }
});
