// COPY TO through the real sidecar to a real PostgreSQL, where the statement does not name the
// masked table or the rows are written in another encoding: every byte the agent receives is
// searched for the protected value.
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { WireClient, fe, type BackendMessage } from '../../test/support/wire-client';

const SECRET = 'zqsecret8842';
const SETUP = `
CREATE TABLE customers (id int PRIMARY KEY, name text, secret_code text);
INSERT INTO customers VALUES (1, 'Ada', '${SECRET}');
CREATE VIEW customer_codes AS SELECT id, secret_code AS code FROM customers;
CREATE VIEW customer_codes_2 AS SELECT * FROM customer_codes;
CREATE TABLE orders (id int, note text);
INSERT INTO orders VALUES (7, 'plain');
-- Values the agent could have written: in Shift JIS, ポ ends in the byte of '|' and ソ in the byte of '\\'.
CREATE TABLE labels (a text, b text);
INSERT INTO labels VALUES ('aポb', 'ソ');
`;
const MASKING = `  masking:
    - name: secrets
      columns: [customers.secret_code]
      strategy: redact
`;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => crmPolicy(pg, MASKING) });
});

afterAll(async () => {
  await stack?.stop();
});

/** Everything the agent receives for `sql` sent as a simple Query (until ReadyForQuery or the session ends). */
async function received(sql: string): Promise<{ bytes: Buffer; messages: BackendMessage[] }> {
  const w = await WireClient.connect(stack.agentUrl());
  w.send(fe.query(sql));
  const messages: BackendMessage[] = [];
  const deadline = Date.now() + 8000;
  // Until ReadyForQuery, or the FATAL error that ends the session (the binary COPY backstop).
  while (!messages.some((m) => m.code === 'Z' || (m.code === 'E' && m.body.includes('SFATAL')))) {
    if (Date.now() > deadline) throw new Error(`no ReadyForQuery for: ${sql}`);
    await new Promise((r) => setTimeout(r, 5));
    messages.push(...w.take());
  }
  w.send(Buffer.from([0x58, 0, 0, 0, 4]));
  return { bytes: Buffer.concat(messages.map((m) => m.body)), messages };
}

test.each([
  'COPY (SELECT * FROM customer_codes) TO STDOUT',
  'COPY (SELECT * FROM customer_codes) TO STDOUT (FORMAT csv, HEADER)',
  'COPY (SELECT code FROM customer_codes_2) TO STDOUT',
  'COPY (SELECT * FROM customer_codes) TO STDOUT (FORMAT binary)',
])('a view over a masked column is masked in COPY too: %s', async (sql) => {
  const { bytes, messages } = await received(sql);
  expect(bytes.includes(SECRET)).toBe(false);
  // Text and CSV rows arrive with the view's columns masked; binary cannot be masked, so it is refused.
  if (sql.includes('binary')) expect(messages.some((m) => m.code === 'E' && m.body.includes('binary'))).toBe(true);
  else expect(messages.filter((m) => m.code === 'd').length).toBeGreaterThan(0);
});

test('a COPY of tables without masked columns is not changed (binary too)', async () => {
  for (const sql of [
    'COPY orders TO STDOUT',
    'COPY (SELECT o.note FROM orders o) TO STDOUT (FORMAT csv)',
    'COPY orders TO STDOUT (FORMAT binary)',
  ]) {
    const { messages } = await received(sql);
    expect(messages.filter((m) => m.code === 'E')).toEqual([]);
    expect(Buffer.concat(messages.filter((m) => m.code === 'd').map((m) => m.body)).includes('plain')).toBe(true);
  }
});

test.each([
  `COPY (SELECT l.a, c.secret_code, l.b, c.name FROM customers c, labels l) TO STDOUT (DELIMITER '|', ENCODING 'SJIS')`,
  `COPY (SELECT l.a, c.secret_code, l.b, c.name FROM customers c, labels l) TO STDOUT (FORMAT csv, DELIMITER '|', ENCODING 'SJIS')`,
  `COPY (SELECT l.a, c.secret_code FROM customers c, labels l) TO STDOUT (ENCODING 'LATIN1')`,
])(
  'a COPY in an encoding other than UTF8 is refused where columns are masked (multibyte characters hide delimiters and escapes): %s',
  async (sql) => {
    const { bytes, messages } = await received(sql);
    expect(bytes.includes(SECRET)).toBe(false);
    const error = messages.find((m) => m.code === 'E');
    expect(error?.body.toString()).toMatch(/42501.*agent-warden: COPY .*ENCODING/s);
  },
);

test('COPY ... ENCODING UTF8 (any spelling) passes and is masked', async () => {
  const { bytes, messages } = await received(`COPY (SELECT name, secret_code FROM customers) TO STDOUT (ENCODING 'utf-8')`);
  expect(bytes.includes(SECRET)).toBe(false);
  expect(Buffer.concat(messages.filter((m) => m.code === 'd').map((m) => m.body)).toString()).toBe('Ada\t[REDACTED]\n');
});
