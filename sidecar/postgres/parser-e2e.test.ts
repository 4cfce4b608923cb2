// The parser never fails open, end to end through the real sidecar and a real PostgreSQL:
// statements nested deep enough to overflow the parser cannot poison it; what the sidecar cannot
// classify is not forwarded (unless `unparseable: allow`, and never a parser failure); parsing runs
// off the event loop, so a slow statement stalls only its own connection; statements larger than
// maxStatementBytes get 54000 without being buffered, and the connection stays usable.
import * as net from 'node:net';
import { Client } from 'pg';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';

const SETUP = `
CREATE TABLE orders (id int, total numeric);
INSERT INTO orders VALUES (1, 10), (2, 20);
`;
const RULES = `  rules:
    - name: no-drop
      action: deny
      match: {target: crm, sql: {statements: [DROP]}}
`;
/** Small enough to test at and past it cheaply; the default (1 MiB) is checked by the RSS test's 200 MiB. */
const LIMIT = 64 * 1024;

/** The target as configured: under `defaultAction: allow`, syntax errors allowed or not. */
function policy(stack: Pick<Stack, 'pg'>, opts: { unparseable?: 'allow'; maxStatementBytes?: number } = {}): string {
  let doc = crmPolicy(stack.pg, RULES, { defaultAction: 'allow' });
  const extra = [
    opts.unparseable ? `        unparseable: ${opts.unparseable}\n` : '',
    opts.maxStatementBytes ? `        maxStatementBytes: ${opts.maxStatementBytes}\n` : '',
  ].join('');
  doc = doc.replace('        listenPort: 15432\n', `        listenPort: 15432\n${extra}`);
  return doc;
}

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => policy({ pg }, { unparseable: 'allow', maxStatementBytes: LIMIT }) });
});

afterAll(async () => {
  await stack?.stop();
});

async function agent(): Promise<Client> {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  return c;
}

/** The extended protocol (Parse/Bind/Execute/Sync) without parameters; pg's types do not list queryMode. */
const extended = (text: string): { text: string } => ({ text, queryMode: 'extended' }) as { text: string };

type PgError = { code?: string; message: string; detail?: string };
const failure = (p: Promise<unknown>): Promise<PgError | undefined> =>
  p.then(
    () => undefined,
    (e: PgError) => e,
  );

async function ordersExists(): Promise<boolean> {
  return (await stack.admin("SELECT to_regclass('public.orders') IS NOT NULL AS ok"))[0].ok as boolean;
}

function setPolicy(doc: string): void {
  stack.writePolicy(doc);
  expect(stack.sidecar.store.check()).toBe(true);
}

describe('poisoning', () => {
  test('thousands of statements that overflow the parser leave DROP TABLE denied by its rule on another connection', async () => {
    const hostile = await agent();
    const other = await agent();
    try {
      const chain = 'SELECT 1' + '+1'.repeat(12_000);
      const nots = 'SELECT ' + 'NOT '.repeat(9_000) + 'true';
      const parens = 'SELECT ' + '(1+'.repeat(6_000) + '1' + ')'.repeat(6_000);
      const texts = [chain, nots, parens];
      const outcomes = new Map<string, number>();
      for (let i = 0; i < 3_000; i++) {
        const err = await failure(hostile.query(`${texts[i % texts.length]} -- ${i}`));
        const key = err ? `${err.code} ${err.message.slice(0, 60)}` : 'EXECUTED';
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
      // Every one denied (even though the target says unparseable: allow): none reached the server.
      expect([...outcomes.keys()].every((k) => k.startsWith('42501 agent-warden: statement could not be classified'))).toBe(true);
      const drop = await failure(other.query('DROP TABLE orders'));
      expect(drop).toMatchObject({ code: '42501', detail: expect.stringContaining('rule "no-drop"') });
      expect(await ordersExists()).toBe(true);
      // Plain statements still classify and run, on both connections.
      expect((await other.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(2);
      expect((await hostile.query('SELECT 41 + 1 AS n')).rows[0].n).toBe(42);
    } finally {
      await hostile.end();
      await other.end();
    }
  });

  test('DROP TABLE; SELECT <deeply nested> does not run, even with unparseable: allow', async () => {
    const c = await agent();
    try {
      const deep = 'SELECT ' + 'NOT '.repeat(12_000) + 'true';
      for (const text of [`DROP TABLE orders; ${deep}`, `DROP TABLE orders; SELECT 1${'+1'.repeat(12_000)}`]) {
        expect(await failure(c.query(text))).toMatchObject({ code: '42501', message: expect.stringContaining('could not be classified') });
        expect(await failure(c.query(extended(text)))).toMatchObject({ code: '42501' });
      }
      expect(await ordersExists()).toBe(true);
    } finally {
      await c.end();
    }
  });
});

describe('unparseable statements', () => {
  afterEach(() => setPolicy(policy(stack, { unparseable: 'allow', maxStatementBytes: LIMIT })));

  test('denied by default under defaultAction: allow; forwarded only with unparseable: allow', async () => {
    const c = await agent();
    try {
      // With unparseable: allow the server sees it (and rejects it itself: 42601).
      expect(await failure(c.query('SELEC 1'))).toMatchObject({ code: '42601' });
      setPolicy(policy(stack, { maxStatementBytes: LIMIT }));
      const denied = await failure(c.query('SELEC 1'));
      expect(denied).toMatchObject({ code: '42501', message: expect.stringContaining('could not be parsed') });
      expect(denied?.message).toContain('refuses what it cannot classify');
      expect(stack.events.at(-1)).toMatchObject({ decision: 'deny', text: 'SELEC 1' });
      expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    } finally {
      await c.end();
    }
  });
});

describe('size cap (maxStatementBytes)', () => {
  /** A SELECT whose Query body (text and its NUL) is exactly `bytes` long. */
  const queryOf = (bytes: number): string => {
    const head = "SELECT length('";
    const tail = "') AS n";
    return head + 'x'.repeat(bytes - 1 - head.length - tail.length) + tail;
  };

  test('a statement at the limit is classified and runs; one byte more gets 54000 naming the limit; the connection stays usable', async () => {
    const c = await agent();
    try {
      expect((await c.query(queryOf(LIMIT))).rows[0].n).toBeGreaterThan(LIMIT - 100);
      const err = await failure(c.query(queryOf(LIMIT + 1)));
      expect(err).toMatchObject({ code: '54000', message: expect.stringContaining(`larger than the ${LIMIT} bytes`) });
      expect(err?.message).toContain('targets[].postgres.maxStatementBytes');
      // Extended protocol: the Parse is refused the same way; the batch fails, the next one runs.
      const ext = await failure(c.query(extended(queryOf(LIMIT + 1))));
      expect(ext).toMatchObject({ code: '54000' });
      expect((await c.query('SELECT 2 AS two')).rows[0].two).toBe(2);
      // Inside a transaction the refusal aborts it, as a real error would.
      await c.query('BEGIN');
      expect(await failure(c.query(queryOf(LIMIT + 10)))).toMatchObject({ code: '54000' });
      expect(await failure(c.query('SELECT 1'))).toMatchObject({ code: '25P02' });
      await c.query('ROLLBACK');
      expect((await c.query('SELECT 3 AS three')).rows[0].three).toBe(3);
    } finally {
      await c.end();
    }
  });

  test('four concurrent 200 MiB queries are refused with 54000 without the sidecar buffering them', async () => {
    setPolicy(policy(stack, { unparseable: 'allow' })); // the default limit, 1 MiB
    try {
      const body = 200 * 1024 * 1024;
      const before = process.memoryUsage().rss;
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
      try {
        const answers = await Promise.all([0, 1, 2, 3].map(() => sendHugeQuery(body)));
        for (const a of answers) {
          expect(a).toContain('54000');
          expect(a).toContain('larger than the 1048576 bytes');
          expect(a).toContain('ok-after');
        }
      } finally {
        clearInterval(sampler);
      }
      // Buffered whole, 4 x 200 MiB (and their strings) would be gigabytes; streamed past, a few MiB.
      expect(peak - before).toBeLessThan(300 * 1024 * 1024);
    } finally {
      setPolicy(policy(stack, { unparseable: 'allow', maxStatementBytes: LIMIT }));
    }
  });
});

describe('parsing off the event loop', () => {
  test("a slow statement on one connection does not stall another connection's queries", async () => {
    setPolicy(policy(stack, { unparseable: 'allow' })); // the default limit, 1 MiB
    const slow = await agent();
    const fast = await agent();
    try {
      await fast.query('SELECT id FROM orders WHERE id = 1'); // known shape: later ones are cache hits
      // ~1 MiB of a select list: the parser needs a second or more for it.
      const big = 'SELECT ' + Array.from({ length: 120_000 }, (_, i) => `c${i}`).join(', ') + ' FROM orders';
      expect(Buffer.byteLength(big)).toBeLessThan(1024 * 1024);
      const started = performance.now();
      let slowDone = 0;
      const slowQuery = failure(slow.query(big)).then((e) => {
        slowDone = performance.now();
        return e;
      });
      const latencies: number[] = [];
      for (let i = 2; slowDone === 0 && i < 100_000; i++) {
        const t0 = performance.now();
        await fast.query(`SELECT id FROM orders WHERE id = ${i}`);
        latencies.push(performance.now() - t0);
      }
      const err = await slowQuery;
      expect(err?.code).not.toBe('42501'); // classified and forwarded; the server itself rejects it
      expect(slowDone - started).toBeGreaterThan(500);
      expect(latencies.length).toBeGreaterThanOrEqual(10);
      // Relative, not a fixed figure: on a loaded machine both sides slow down together, but a stalled
      // event loop would hold one fast query for about the whole parse.
      expect(Math.max(...latencies)).toBeLessThan((slowDone - started) / 2);
    } finally {
      await slow.end();
      await fast.end();
      setPolicy(policy(stack, { unparseable: 'allow', maxStatementBytes: LIMIT }));
    }
  });
});

/**
 * Streams one Query message of `body` bytes (a 1 MiB chunk written again and again, so the test
 * holds no 200 MiB buffer itself), then `SELECT 'ok-after'`; resolves with what the sidecar answered.
 */
async function sendHugeQuery(body: number): Promise<string> {
  const url = new URL(stack.agentUrl());
  const sock = net.connect(Number(url.port), url.hostname);
  let received = Buffer.alloc(0);
  sock.on('data', (d) => (received = Buffer.concat([received, d])));
  const readyForQuery = Buffer.from('Z\0\0\0\x05I', 'latin1');
  const count = (): number => {
    let n = 0;
    for (let at = received.indexOf(readyForQuery); at >= 0; at = received.indexOf(readyForQuery, at + 1)) n++;
    return n;
  };
  const waitFor = async (n: number): Promise<void> => {
    for (let i = 0; i < 6000 && count() < n; i++) await new Promise((r) => setTimeout(r, 10));
    expect(count()).toBeGreaterThanOrEqual(n);
  };
  try {
    await new Promise((r, j) => sock.once('connect', r).once('error', j));
    const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');
    const params = Buffer.concat([cstr('user'), cstr('agent'), cstr('database'), cstr(url.pathname.slice(1)), cstr('')]);
    const startup = Buffer.alloc(8);
    startup.writeInt32BE(8 + params.length);
    startup.writeInt32BE(196608, 4);
    sock.write(Buffer.concat([startup, params]));
    await waitFor(1);
    const header = Buffer.alloc(5);
    header.write('Q', 0, 'latin1');
    header.writeInt32BE(body + 4, 1);
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    chunk.write("SELECT '", 0, 'latin1');
    const write = (b: Buffer): Promise<void> => (sock.write(b) ? Promise.resolve() : new Promise((r) => sock.once('drain', r)));
    await write(header);
    for (let sent = 0; sent < body; sent += chunk.length) {
      const n = Math.min(chunk.length, body - sent);
      await write(sent + n === body ? Buffer.concat([chunk.subarray(0, n - 2), Buffer.from("'\0", 'latin1')]) : chunk.subarray(0, n));
    }
    const after = Buffer.from("SELECT 'ok-after'\0", 'utf8');
    const q = Buffer.alloc(5);
    q.write('Q', 0, 'latin1');
    q.writeInt32BE(after.length + 4, 1);
    await write(Buffer.concat([q, after]));
    await waitFor(3);
    return received.toString('latin1');
  } finally {
    sock.destroy();
  }
}
