// Result masking through the sidecar with real clients: columns by table.column (resolved from
// the catalog), content detectors, text and binary formats, prepared statements, COPY.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Client } from 'pg';
import postgres from 'postgres';
import { crmPolicy, hasPsql, startStack, type Stack } from '../../test/support/stack';

const run = promisify(execFile);

const SETUP = `
CREATE SCHEMA IF NOT EXISTS billing;
DROP TABLE IF EXISTS customers, billing.cards, notes CASCADE;
CREATE TABLE customers (id int PRIMARY KEY, name text, card_number text, ssn varchar(11), balance int8, notes text, profile jsonb);
CREATE TABLE billing.cards (id int, card_number text);
CREATE TABLE notes (id int, body text);
INSERT INTO customers VALUES
  (1, 'Ada', '4111 1111 1111 1111', '123-45-6789', 100, 'reach me at ada@example.com', '{"email": "ada@example.com", "tier": "gold"}'),
  (2, 'Bob', NULL, NULL, NULL, NULL, NULL);
INSERT INTO billing.cards VALUES (1, '5500 0000 0000 0004');
INSERT INTO notes VALUES (1, 'card 4012888888881881 and ssn 219-09-9999'), (2, 'nothing to see here');
`;

const MASKING = `  masking:
    - name: cards
      columns: [customers.card_number, "billing.card*.card_number"]
      strategy: last4
    - name: ids
      columns: [customers.ssn, customers.balance]
      strategy: redact
    - name: pii
      detectors: [credit-card, email, us-ssn]
      strategy: redact
`;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => crmPolicy(pg, MASKING) });
});

afterAll(async () => {
  await stack?.stop();
});

async function agent(binary = false): Promise<Client> {
  const c = new Client({ connectionString: stack.agentUrl(), ...(binary ? { binary: true } : {}) } as never);
  await c.connect();
  return c;
}

test('columns are masked by table.column even under an alias, NULLs stay NULL, other columns pass', async () => {
  const c = await agent();
  try {
    const r = await c.query('SELECT id, name, card_number AS cc, ssn, balance FROM customers ORDER BY id');
    expect(r.rows[0].name).toBe('Ada');
    expect(r.rows[0].cc).toMatch(/1111$/);
    expect(r.rows[0].cc).not.toContain('4111');
    expect(r.rows[0].ssn).not.toContain('6789');
    expect(r.rows[0].balance).toBeNull(); // int8 cannot carry a redaction marker: it becomes NULL
    expect(r.rows[1]).toEqual({ id: 2, name: 'Bob', cc: null, ssn: null, balance: null });
  } finally {
    await c.end();
  }
});

test('schema-qualified wildcard column rules match', async () => {
  const c = await agent();
  try {
    const r = await c.query('SELECT card_number FROM billing.cards');
    expect(r.rows[0].card_number).not.toContain('5500');
    expect(r.rows[0].card_number).toMatch(/0004$/);
  } finally {
    await c.end();
  }
});

test('detectors mask values inside free text and JSON, in the simple and extended protocol', async () => {
  const c = await agent();
  try {
    const simple = await c.query('SELECT body FROM notes ORDER BY id');
    expect(simple.rows[0].body).not.toMatch(/4012888888881881|219-09-9999/);
    expect(simple.rows[1].body).toBe('nothing to see here');
    const ext = await c.query('SELECT notes, profile FROM customers WHERE id = $1', [1]);
    expect(ext.rows[0].notes).not.toContain('ada@example.com');
    expect(JSON.stringify(ext.rows[0].profile)).not.toContain('ada@example.com');
    expect(ext.rows[0].profile.tier).toBe('gold');
  } finally {
    await c.end();
  }
});

test('binary result format is masked too (text-like columns scanned, masked non-text become NULL)', async () => {
  const c = await agent(true);
  try {
    const r = await c.query('SELECT name, card_number, notes FROM customers WHERE id = $1', [1]);
    const row = r.rows[0];
    const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
    expect(text(row.name)).toBe('Ada');
    expect(text(row.card_number)).toMatch(/1111$/);
    expect(text(row.card_number)).not.toContain('4111');
    expect(text(row.notes)).not.toContain('ada@example.com');
  } finally {
    await c.end();
  }
});

test('prepared statements executed without a Describe are still masked (postgres.js)', async () => {
  const sql = postgres(stack.agentUrl(), { max: 1, prepare: true });
  try {
    for (let i = 0; i < 3; i++) {
      const rows = await sql`SELECT card_number, notes FROM customers WHERE id = ${1}`;
      expect(rows[0].card_number).not.toContain('4111');
      expect(rows[0].notes).not.toContain('ada@example.com');
    }
  } finally {
    await sql.end();
  }
});

test('a protected column hidden in an expression is masked (computed outputs of such queries)', async () => {
  const c = await agent();
  try {
    const r = await c.query("SELECT upper(card_number) AS a, card_number || '' AS b, 'x' || ssn AS c FROM customers WHERE id = 1");
    expect(r.rows[0].a).not.toContain('4111');
    expect(r.rows[0].b).not.toContain('4111');
    expect(r.rows[0].c).not.toContain('6789');
    const sub = await c.query('SELECT s.cc FROM (SELECT card_number AS cc FROM customers) s WHERE s.cc IS NOT NULL');
    expect(sub.rows[0].cc).not.toContain('4111');
  } finally {
    await c.end();
  }
});

test('COPY TO STDOUT of a table with masked columns is masked by column; COPY of other data is detector-masked', async () => {
  const c = await agent();
  try {
    const r = await c.query('COPY customers TO STDOUT');
    expect(r.command).toBe('COPY');
  } finally {
    await c.end();
  }
  if (!hasPsql) return; // the data itself is read with psql
  const table = await run('psql', [stack.agentUrl(), '-At', '-c', 'COPY customers (id, name, card_number, ssn) TO STDOUT']);
  expect(table.stdout).not.toMatch(/4111 1111|123-45-6789/);
  expect(table.stdout).toContain('1\tAda\t');
  const { stdout } = await run('psql', [stack.agentUrl(), '-At', '-c', 'COPY (SELECT body FROM notes ORDER BY id) TO STDOUT']);
  expect(stdout).not.toMatch(/4012888888881881|219-09-9999/);
  expect(stdout).toContain('nothing to see here');
});

test('masked values are counted in the audit events', async () => {
  const before = stack.events.length;
  const c = await agent();
  try {
    await c.query('SELECT card_number FROM customers');
  } finally {
    await c.end();
  }
  const e = stack.events.slice(before).find((x) => x.kinds.includes('SELECT'));
  expect(e).toMatchObject({ decision: 'mask' });
  expect(e!.masked).toBeGreaterThan(0);
});
