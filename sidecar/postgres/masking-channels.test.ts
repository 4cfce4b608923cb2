// Every channel data can leave by, against a real PostgreSQL through the sidecar with the real `pg`
// client: errors, notices, notifications, parameter status, whole-row references and reversible
// transforms in text and binary format, statistics, COPY. The received bytes are searched for the
// protected values in every form a transform could give them.
import * as net from 'node:net';
import { Client, type QueryConfig } from 'pg';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';

const SECRET = 'zqsecret8842';
const CARD = '4111111111111111';
const SHIFT_FROM = 'abcdefghijklmnopqrstuvwxyz0123456789';
const SHIFT_TO = 'bcdefghijklmnopqrstuvwxyza1234567890';

const SETUP = `
DROP MATERIALIZED VIEW IF EXISTS customer_codes_m;
DROP TABLE IF EXISTS customers, notes, accounts CASCADE;
DROP SCHEMA IF EXISTS vault CASCADE;
CREATE SCHEMA vault;
CREATE TABLE vault.accounts (id int, token text);
INSERT INTO vault.accounts VALUES (1, '${SECRET}');
CREATE TABLE accounts (id int, token text);
DROP TABLE IF EXISTS gen;
CREATE TABLE gen (id int, secret_code text, shout text GENERATED ALWAYS AS (upper(secret_code)) STORED, tail text);
INSERT INTO gen (id, secret_code, tail) VALUES (1, '${SECRET}', 'end');
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, secret_code text UNIQUE, card_number text, balance int8, email text, notes text);
INSERT INTO customers VALUES (1, 'Ada', '${SECRET}', '${CARD}', 987654, 'ada@example.com', 'likes tea');
CREATE TABLE notes (id int, body text);
INSERT INTO notes VALUES (1, 'plain note');
INSERT INTO customers VALUES (2000, 'Up', upper('${SECRET}'), NULL, NULL, NULL, NULL);
INSERT INTO customers SELECT g, 'n' || (g % 3), 'zz' || g, NULL, g % 5, NULL, 'x' FROM generate_series(2, 300) g;
ANALYZE customers;
CREATE VIEW customer_codes AS SELECT id, name, secret_code AS code FROM customers;
CREATE VIEW customer_codes_2 AS SELECT * FROM customer_codes;
CREATE VIEW customer_rows AS SELECT c AS r FROM customers c;
CREATE VIEW customer_names AS SELECT id, name FROM customers;
CREATE MATERIALIZED VIEW customer_codes_m AS SELECT id, secret_code FROM customers;
`;

const MASKING = `  masking:
    - name: secrets
      columns: [customers.secret_code, customers.card_number, customers.balance, vault.accounts.token, gen.secret_code, gen.shout]
      strategy: redact
    - name: pii
      detectors: [credit-card]
      strategy: redact
`;

/** Every form of a value a reversible transform in these tests produces. */
function forms(v: string): string[] {
  const shifted = [...v].map((ch) => {
    const i = SHIFT_FROM.indexOf(ch);
    return i < 0 ? ch : SHIFT_TO[i];
  });
  return [
    v,
    [...v].reverse().join(''),
    Buffer.from(v).toString('base64').replace(/=+$/, ''),
    Buffer.from(v).toString('hex'),
    shifted.join(''),
  ];
}
const FORBIDDEN = [...forms(SECRET), ...forms(CARD)];
// balance 987654 as int8 big-endian bytes and as text
const BALANCE_BIN = Buffer.from('00000000000f1206', 'hex');

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => crmPolicy(pg, MASKING) });
});

afterAll(async () => {
  await stack?.stop();
});

interface Tapped {
  client: Client;
  received(): Buffer;
  reset(): void;
}

/** A `pg` client whose socket records every byte the sidecar sends. */
async function agent(binary = false): Promise<Tapped> {
  let chunks: Buffer[] = [];
  const socket = new net.Socket();
  socket.on('data', (d: Buffer) => chunks.push(Buffer.from(d)));
  const client = new Client({ connectionString: stack.agentUrl(), stream: socket, ...(binary ? { binary: true } : {}) } as never);
  client.on('notice', () => undefined);
  client.on('notification', () => undefined);
  client.on('error', () => undefined);
  await client.connect();
  return { client, received: () => Buffer.concat(chunks), reset: () => (chunks = []) };
}

function leaks(bytes: Buffer, extra: Array<string | Buffer> = []): string[] {
  const out: string[] = [];
  for (const f of [...FORBIDDEN, ...extra]) if (bytes.includes(f)) out.push(typeof f === 'string' ? f : f.toString('hex'));
  return out;
}

/** Backend messages in a received byte stream (after startup every message has a type and a length). */
function messages(bytes: Buffer): Array<{ code: string; body: Buffer }> {
  const out: Array<{ code: string; body: Buffer }> = [];
  for (let pos = 0; pos + 5 <= bytes.length;) {
    const len = bytes.readInt32BE(pos + 1);
    out.push({ code: String.fromCharCode(bytes[pos]), body: bytes.subarray(pos + 5, pos + 1 + len) });
    pos += 1 + len;
  }
  return out;
}

function copyText(bytes: Buffer): string {
  return messages(bytes)
    .filter((m) => m.code === 'd')
    .map((m) => m.body.toString('utf8'))
    .join('');
}

interface PgError {
  code?: string;
  message: string;
  detail?: string;
  constraint?: string;
}

interface RunResult {
  bytes: Buffer;
  rows: Array<Record<string, unknown>>;
  error?: PgError;
  notices: string[];
}

/** Runs one statement on a fresh tapped connection; binary results go through the extended protocol. */
async function run(sql: string, binary = false): Promise<RunResult> {
  const a = await agent(binary);
  const notices: string[] = [];
  a.client.on('notice', (n) => notices.push(n.message ?? ''));
  try {
    a.reset();
    try {
      const r = await a.client.query({ text: sql, ...(binary ? { queryMode: 'extended' } : {}) } as QueryConfig);
      await new Promise((res) => setImmediate(res));
      return { bytes: a.received(), rows: (r as { rows?: Array<Record<string, unknown>> }).rows ?? [], notices };
    } catch (e) {
      return { bytes: a.received(), rows: [], error: e as PgError, notices };
    }
  } finally {
    await a.client.end().catch(() => undefined);
  }
}

const asText = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : typeof v === 'string' ? v : JSON.stringify(v));

describe('errors and notices', () => {
  test('an error echoing a protected value keeps its SQLSTATE and wording, not the value', async () => {
    for (const binary of [false, true]) {
      const r = await run('SELECT secret_code::int FROM customers WHERE id = 1', binary);
      expect(r.error).toMatchObject({ code: '22P02', message: expect.stringContaining('invalid input syntax for type integer') });
      expect(leaks(r.bytes)).toEqual([]);
    }
  });

  test('a value turned into a name (::regclass) is redacted; a name the agent wrote stays in the message', async () => {
    const r = await run('SELECT secret_code::regclass FROM customers WHERE id = 1');
    expect(r.error).toMatchObject({ code: '42P01' });
    expect(leaks(r.bytes)).toEqual([]);
    const typo = await run('SELECT secret_cod FROM customers');
    expect(typo.error).toMatchObject({ code: '42703', message: 'column "secret_cod" does not exist' });
  });

  test('a value the detectors know is masked in an error of any statement', async () => {
    const r = await run(`SELECT '${CARD}'::int`);
    expect(r.error).toMatchObject({ code: '22003' });
    expect(leaks(r.bytes)).toEqual([]);
  });

  test('RAISE NOTICE / EXCEPTION with DETAIL and HINT from a block that reads a protected column', async () => {
    const notice = await run(
      "DO $$DECLARE v text; BEGIN SELECT secret_code INTO v FROM customers WHERE id = 1; RAISE NOTICE 'value %', v; END$$",
    );
    expect(notice.error).toBeUndefined();
    expect(notice.notices).toHaveLength(1);
    expect(leaks(notice.bytes)).toEqual([]);
    const raised = await run(
      "DO $$DECLARE v text; BEGIN SELECT secret_code INTO v FROM customers WHERE id = 1; RAISE EXCEPTION 'boom %', v USING DETAIL = v, HINT = v, ERRCODE = '22012'; END$$",
    );
    expect(raised.error).toMatchObject({ code: '22012' });
    expect(leaks(raised.bytes)).toEqual([]);
  });

  test('a uniqueness violation detail (Key (lower(secret_code))=(...) is duplicated) is redacted', async () => {
    const r = await run('CREATE UNIQUE INDEX customers_lower_code ON customers (lower(secret_code))');
    expect(r.error).toMatchObject({ code: '23505' });
    expect(r.error!.detail).toBeDefined();
    expect(leaks(r.bytes)).toEqual([]);
  });
});

test('a failing-row detail of a statement that only names the table is redacted', async () => {
  const r = await run('UPDATE customers SET name = NULL WHERE id = 1');
  expect(r.error).toMatchObject({ code: '23502' });
  expect(r.error!.detail).toBeDefined();
  expect(leaks(r.bytes, ['987654'])).toEqual([]);
});

describe('masked data stays where the rules apply', () => {
  test.each([
    'CREATE TEMP TABLE x1 AS SELECT * FROM customers',
    'SELECT * INTO TEMP x2 FROM customers',
    'CREATE TEMP VIEW x3 AS SELECT id, secret_code FROM customers',
    'CREATE TEMP VIEW x4 AS SELECT to_jsonb(c) AS j FROM customers c',
    'INSERT INTO notes SELECT id, secret_code FROM customers',
    'INSERT INTO notes VALUES (9, (SELECT secret_code FROM customers WHERE id = 1))',
    'UPDATE customers SET notes = secret_code WHERE id = 1',
    'UPDATE customers SET notes = (SELECT c::text FROM customers c WHERE c.id = 1) WHERE id = 1',
    "INSERT INTO customers (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET notes = customers.secret_code",
    "CREATE FUNCTION pg_temp.leak() RETURNS text LANGUAGE sql AS 'SELECT secret_code FROM customers LIMIT 1'",
    'CREATE FUNCTION pg_temp.leak2() RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN (SELECT c::text FROM customers c LIMIT 1); END$$',
    'ALTER TABLE customers ADD COLUMN leak text GENERATED ALWAYS AS (secret_code) STORED',
    'DO $$BEGIN INSERT INTO notes SELECT id, secret_code FROM customers; END$$',
  ])('%s is refused', async (sql) => {
    const r = await run(`BEGIN; ${sql}; ROLLBACK`);
    expect(r.error).toMatchObject({ code: '42501', message: expect.stringContaining('read back unmasked') });
  });

  test.each([
    "UPDATE customers SET name = name WHERE secret_code = 'nope'",
    'CREATE TEMP TABLE x5 AS SELECT id, name FROM customers',
    'INSERT INTO notes SELECT id, name FROM customers WHERE id = 1',
    "INSERT INTO customers (id, name, secret_code) VALUES (1, 'Ada', 'new') ON CONFLICT (id) DO UPDATE SET secret_code = EXCLUDED.secret_code",
    "INSERT INTO customers (id, name, secret_code) VALUES (5000, 'New', 'fresh-secret')",
    "CREATE FUNCTION pg_temp.names() RETURNS text LANGUAGE sql AS 'SELECT name FROM customers LIMIT 1'",
    'ALTER TABLE customers ADD COLUMN shout text GENERATED ALWAYS AS (upper(name)) STORED',
  ])('%s is allowed (it copies no masked column)', async (sql) => {
    const r = await run(`BEGIN; ${sql}; ROLLBACK`);
    expect(r.error).toBeUndefined();
  });
});

describe('notifications and parameter status', () => {
  test('a notification payload is masked by the detectors', async () => {
    const a = await agent();
    const got: string[] = [];
    a.client.on('notification', (n) => got.push(n.payload ?? ''));
    try {
      await a.client.query('LISTEN ch');
      a.reset();
      await a.client.query(`NOTIFY ch, 'card ${CARD}'`);
      for (let i = 0; i < 50 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got).toHaveLength(1);
      expect(got[0]).toMatch(/^card /);
      expect(leaks(a.received())).toEqual([]);
    } finally {
      await a.client.end();
    }
  });

  test('pg_notify and set_config of a protected column are refused: those values leave outside the rows', async () => {
    for (const sql of [
      "SELECT pg_notify('ch', secret_code) FROM customers",
      "SELECT set_config('application_name', secret_code, false) FROM customers",
    ]) {
      const r = await run(sql);
      expect(r.error).toMatchObject({ code: '42501', message: expect.stringContaining('reads masked columns') });
      expect(leaks(r.bytes)).toEqual([]);
    }
  });

  test('a reported setting (ParameterStatus) is masked by the detectors', async () => {
    const r = await run(`SET application_name = 'card ${CARD}'`);
    expect(r.error).toBeUndefined();
    expect(messages(r.bytes).some((m) => m.code === 'S' && m.body.toString().startsWith('application_name'))).toBe(true);
    expect(leaks(r.bytes)).toEqual([]);
  });
});

describe('statistics', () => {
  test.each([
    "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'customers'",
    'SELECT stavalues1::text FROM pg_catalog.pg_statistic',
    'SELECT * FROM pg_stats_ext',
  ])('%s is refused with a reason', async (sql) => {
    const r = await run(sql);
    expect(r.error).toMatchObject({ code: '42501', message: expect.stringContaining('planner statistics') });
    expect(leaks(r.bytes)).toEqual([]);
  });
});

describe('whole rows and transforms', () => {
  // Each reads row id = 1 only. These leaked before whole-row references counted as reading every column.
  const WHOLE_ROW = [
    'SELECT c FROM customers c WHERE c.id = 1',
    'SELECT customers FROM customers WHERE id = 1',
    'SELECT to_jsonb(c) FROM customers c WHERE c.id = 1',
    'SELECT row_to_json(c) FROM customers c WHERE c.id = 1',
    'SELECT to_jsonb(c.*) FROM customers c WHERE c.id = 1',
    'SELECT jsonb_agg(c) FROM customers c WHERE c.id = 1',
    'SELECT t FROM (SELECT * FROM customers WHERE id = 1) t',
    'WITH x AS (SELECT * FROM customers WHERE id = 1) SELECT x FROM x',
    `SELECT translate(c::text, '${SHIFT_FROM}', '${SHIFT_TO}') FROM customers c WHERE c.id = 1`,
    "SELECT format('%s', c) FROM customers c WHERE c.id = 1",
    "SELECT json_build_object('a', c) FROM customers c WHERE c.id = 1",
    'SELECT (SELECT c FROM customers c WHERE c.id = 1)',
    'SELECT j FROM customers c JOIN LATERAL to_jsonb(c) j ON true WHERE c.id = 1',
    "SELECT jsonb_path_query(to_jsonb(c), '$.secret_code') FROM customers c WHERE c.id = 1",
    'UPDATE customers SET name = name WHERE id = 1 RETURNING customers',
    // SQL run from text: what it reads cannot be seen, so its outputs are masked whole.
    "SELECT query_to_xml('select * from customers where id = 1', true, false, '')",
    "SELECT table_to_xml('customers', true, false, '') FROM customers WHERE id = 1",
  ];
  // Computed from a protected column by name: masked whole already; kept so it stays that way.
  const BY_NAME = [
    'SELECT row(c.secret_code, c.id) FROM customers c WHERE c.id = 1',
    'SELECT ARRAY[secret_code] FROM customers WHERE id = 1',
    'SELECT array_agg(balance) FROM customers WHERE id = 1',
    "SELECT encode(convert_to(secret_code, 'UTF8'), 'base64') FROM customers WHERE id = 1",
    "SELECT convert_to(card_number, 'UTF8') FROM customers WHERE id = 1",
    'SELECT reverse(secret_code) FROM customers WHERE id = 1',
  ];
  test.each(
    [...WHOLE_ROW, ...BY_NAME].flatMap((q) => [
      [q, 'text'],
      [q, 'binary'],
    ]),
  )('%s (%s format): no protected value in any form', async (sql, format) => {
    const binary = format === 'binary';
    const r = await run(sql, binary);
    expect(r.error).toBeUndefined();
    expect(r.rows.length).toBe(1);
    expect(leaks(r.bytes, binary ? [BALANCE_BIN] : ['987654'])).toEqual([]);
  });

  test('plain reads still return the right data, in text and binary', async () => {
    for (const binary of [false, true]) {
      const r = await run('SELECT c.id, c.name, c.email, c.secret_code FROM customers c WHERE c.id = 1', binary);
      expect(asText(r.rows[0].name)).toBe('Ada');
      expect(asText(r.rows[0].email)).toBe('ada@example.com');
      expect(asText(r.rows[0].secret_code)).not.toContain(SECRET);
      const n = await run('SELECT to_jsonb(n) AS j, n FROM notes n', binary);
      expect(asText(n.rows[0].j)).toContain('plain note');
      expect(asText(n.rows[0].n)).toContain('plain note');
    }
  });
});

describe('views', () => {
  // Created by the database owner, not through the sidecar: RowDescription names the view's columns.
  test.each([
    'SELECT * FROM customer_codes WHERE id = 1',
    'SELECT * FROM customer_codes_2 WHERE id = 1',
    'SELECT r FROM customer_rows',
    'SELECT * FROM customer_codes_m WHERE id = 1',
  ])('%s: columns of a view that reads masked columns are masked', async (sql) => {
    for (const binary of [false, true]) {
      const r = await run(sql, binary);
      expect(r.error).toBeUndefined();
      expect(r.rows.length).toBeGreaterThan(0);
      expect(leaks(r.bytes, binary ? [BALANCE_BIN] : ['987654'])).toEqual([]);
    }
  });

  test('a view of unmasked columns only is not masked', async () => {
    const r = await run('SELECT name FROM customer_names WHERE id = 1');
    expect(r.rows[0].name).toBe('Ada');
  });
});

describe('COPY TO STDOUT', () => {
  test('COPY of a table is masked by column in text format; other columns are exact', async () => {
    const r = await run('COPY customers TO STDOUT');
    expect(r.error).toBeUndefined();
    const first = copyText(r.bytes)
      .split('\n')
      .find((l) => l.startsWith('1\t'))!;
    expect(first.split('\t')).toEqual(['1', 'Ada', '[REDACTED]', '[REDACTED]', '\\N', 'ada@example.com', 'likes tea']);
    expect(leaks(r.bytes, ['987654'])).toEqual([]);
  });

  test('CSV with HEADER, a custom delimiter, quote and NULL marker', async () => {
    const r = await run(
      `COPY (SELECT id, secret_code, balance, notes FROM customers WHERE id = 1) TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER ';', QUOTE '''', NULL 'nil')`,
    );
    expect(r.error).toBeUndefined();
    expect(copyText(r.bytes)).toBe("id;secret_code;balance;notes\n1;'[REDACTED]';nil;likes tea\n");
    expect(leaks(r.bytes, ['987654'])).toEqual([]);
  });

  test('COPY of a table with generated columns (which COPY leaves out) is masked by column', async () => {
    const r = await run('COPY gen TO STDOUT');
    expect(r.error).toBeUndefined();
    expect(copyText(r.bytes)).toBe('1\t[REDACTED]\tend\n');
  });

  test('a header line in text format passes untouched', async () => {
    const r = await run('COPY (SELECT name, secret_code, balance FROM customers WHERE id = 1) TO STDOUT (HEADER)');
    expect(r.error).toBeUndefined();
    expect(copyText(r.bytes)).toBe('name\tsecret_code\tbalance\nAda\t[REDACTED]\t\\N\n');
  });

  test('COPY table (columns) in CSV keeps quoting of the columns it does not mask', async () => {
    const r = await run('COPY customers (id, name, secret_code) TO STDOUT (FORMAT csv)');
    expect(r.error).toBeUndefined();
    expect(copyText(r.bytes).split('\n')).toContain('1,Ada,"[REDACTED]"');
    expect(leaks(r.bytes)).toEqual([]);
  });

  test('COPY (query) of unmasked columns of a masked table works (psycopg2 copy_expert)', async () => {
    const r = await run('COPY (SELECT email, notes FROM customers WHERE id = 1) TO STDOUT');
    expect(r.error).toBeUndefined();
    expect(copyText(r.bytes)).toBe('ada@example.com\tlikes tea\n');
  });

  test('COPY (query) computing from a protected column is masked whole', async () => {
    const r = await run(
      `COPY (SELECT id, translate(secret_code, '${SHIFT_FROM}', '${SHIFT_TO}'), name FROM customers WHERE id = 1) TO STDOUT (FORMAT csv)`,
    );
    expect(r.error).toBeUndefined();
    expect(copyText(r.bytes)).toBe('1,"[REDACTED]",Ada\n');
    expect(leaks(r.bytes)).toEqual([]);
  });

  test('several COPYs in one query are each masked by their own columns', async () => {
    const r = await run(
      "COPY (SELECT 'x', 1) TO '/dev/null'; COPY customers (name, secret_code) TO STDOUT; COPY (SELECT secret_code, email FROM customers WHERE id = 1) TO STDOUT (FORMAT csv)",
    );
    expect(r.error).toBeUndefined();
    const out = copyText(r.bytes);
    expect(out.split('\n')).toContain('Ada\t[REDACTED]');
    expect(out.endsWith('"[REDACTED]",ada@example.com\n')).toBe(true);
    expect(leaks(r.bytes)).toEqual([]);
  });

  test("an unqualified table the agent's search_path resolves to a protected schema is masked", async () => {
    const a = await agent();
    try {
      await a.client.query('SET search_path = vault');
      a.reset();
      await a.client.query('COPY accounts TO STDOUT');
      expect(copyText(a.received())).toBe('1\t[REDACTED]\n');
      expect(leaks(a.received())).toEqual([]);
    } finally {
      await a.client.end();
    }
  });

  test('binary COPY of a masked table is refused before it starts; the connection goes on', async () => {
    const a = await agent();
    try {
      await expect(a.client.query('COPY customers TO STDOUT (FORMAT binary)')).rejects.toMatchObject({
        code: '42501',
        message: expect.stringContaining('binary format'),
      });
      const r = await a.client.query('SELECT name FROM customers WHERE id = 1');
      expect(r.rows[0].name).toBe('Ada');
    } finally {
      await a.client.end();
    }
  });
});

describe('content detectors on values the text scan used to miss', () => {
  // Card numbers in free text (no column rule), carried as something other than plain text.
  test.each([
    [`SELECT row('card ${CARD}', 1) AS v FROM notes`, 'binary'],
    [`SELECT ARRAY['card ${CARD}'] AS v FROM notes`, 'binary'],
    [`SELECT to_tsvector('simple', 'card ${CARD}') AS v FROM notes`, 'binary'],
    [`SELECT convert_to('card ${CARD}', 'UTF8') AS v FROM notes`, 'text'],
    [`SELECT convert_to('card ${CARD}', 'UTF8') AS v FROM notes`, 'binary'],
    [`SELECT ${CARD}::int8 AS v FROM notes`, 'binary'],
    [`SELECT ${CARD}::numeric AS v FROM notes`, 'binary'],
  ])('%s (%s format)', async (sql, format) => {
    const binary = format === 'binary';
    const r = await run(sql, binary);
    expect(r.error).toBeUndefined();
    expect(r.rows).toHaveLength(1);
    expect(leaks(r.bytes)).toEqual([]);
    const v = r.rows[0].v;
    expect(v === null || !asText(v).includes(CARD)).toBe(true);
    // As the server encodes it in binary: int8 big-endian, numeric in base-10000 groups 4111 1111 1111 1111.
    expect(r.bytes.includes(Buffer.from('000e9b08a568f1c7', 'hex'))).toBe(false);
    expect(r.bytes.includes(Buffer.from('100f045704570457', 'hex'))).toBe(false);
  });

  test('ordinary values of those types pass unchanged', async () => {
    const r = await run(
      "SELECT row('plain', 1) AS r, ARRAY['a', 'b'] AS a, 42::int8 AS i, 12.5::numeric AS n, convert_to('hi', 'UTF8') AS b FROM notes",
      true,
    );
    expect(r.rows[0].i).not.toBeNull();
    expect(r.rows[0].n).not.toBeNull();
    expect(r.rows[0].r).not.toBeNull();
    expect(r.rows[0].a).not.toBeNull();
    expect(asText(r.rows[0].b)).toBe('hi');
    const t = await run("SELECT convert_to('hi', 'UTF8') AS b FROM notes");
    expect(asText(t.rows[0].b)).toBe('hi');
  });
});
