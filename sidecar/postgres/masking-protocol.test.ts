// Masking regressions at the protocol level, against a real PostgreSQL: pipelined batches that reuse
// the unnamed portal, an error before the client's Sync, cursors made with SQL, binary COPY. In every
// case `customers.balance` (int8, 100) is masked by a column rule and must come back as NULL.
import * as net from 'node:net';
import postgres from 'postgres';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { cstr, int16, int32, msg } from '../../test/support/sidecar/pg-bytes';

const SETUP = `
DROP TABLE IF EXISTS customers, notes CASCADE;
CREATE TABLE customers (id int PRIMARY KEY, name text, balance int8);
INSERT INTO customers VALUES (1, 'Ada', 100);
CREATE TABLE notes (id int, body text);
INSERT INTO notes VALUES (1, 'mail ada@example.com');
`;

const MASKING = `  masking:
    - name: money
      columns: [customers.balance]
      strategy: redact
    - name: pii
      detectors: [email]
      strategy: redact
`;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ setupSql: SETUP, policy: (pg) => crmPolicy(pg, MASKING) });
});

afterAll(async () => {
  await stack?.stop();
});

interface Message {
  code: string;
  body: Buffer;
}

/** A bare protocol client: sends hand-built frames, collects the server's messages. */
class RawClient {
  private buf = Buffer.alloc(0);
  readonly messages: Message[] = [];
  closed = false;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 5) {
        const len = this.buf.readInt32BE(1);
        if (this.buf.length < 1 + len) break;
        this.messages.push({ code: String.fromCharCode(this.buf[0]), body: this.buf.subarray(5, 1 + len) });
        this.buf = this.buf.subarray(1 + len);
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => (this.closed = true));
  }

  static async connect(): Promise<RawClient> {
    const url = new URL(stack.agentUrl());
    const sock = net.connect(Number(url.port), url.hostname);
    await new Promise((r) => sock.once('connect', r));
    const c = new RawClient(sock);
    const params = Buffer.concat([cstr('user'), cstr('agent'), cstr('database'), cstr(url.pathname.slice(1)), cstr('')]);
    sock.write(Buffer.concat([int32(8 + params.length), int32(196608), params]));
    await c.waitFor((m) => m.some((x) => x.code === 'Z'));
    c.messages.length = 0;
    return c;
  }

  send(...frames: Buffer[]): void {
    this.sock.write(Buffer.concat(frames));
  }

  async waitFor(pred: (m: Message[]) => boolean): Promise<Message[]> {
    for (let i = 0; i < 500 && !pred(this.messages) && !this.closed; i++) await new Promise((r) => setTimeout(r, 10));
    expect(pred(this.messages)).toBe(true);
    return this.messages;
  }

  /** Waits for `n` ReadyForQuery messages and returns (and forgets) everything received up to then. */
  async untilReady(n = 1): Promise<Message[]> {
    await this.waitFor((m) => m.filter((x) => x.code === 'Z').length >= n);
    return this.messages.splice(0);
  }

  close(): void {
    this.sock.destroy();
  }
}

const parse = (name: string, sql: string): Buffer => msg('P', cstr(name), cstr(sql), int16(0));
const bind = (portal: string, statement: string): Buffer => msg('B', cstr(portal), cstr(statement), int16(0), int16(0), int16(0));
const execute = (portal: string): Buffer => msg('E', cstr(portal), int32(0));
const describe = (kind: 'S' | 'P', name: string): Buffer => msg('D', Buffer.from(kind), cstr(name));
const sync = (): Buffer => msg('S');
const flush = (): Buffer => msg('H');
const query = (sql: string): Buffer => msg('Q', cstr(sql));

/** The values of every DataRow, as text (null for SQL NULL). */
function rows(ms: Message[]): Array<Array<string | null>> {
  return ms
    .filter((m) => m.code === 'D')
    .map((m) => {
      const out: Array<string | null> = [];
      let pos = 2;
      for (let i = 0; i < m.body.readInt16BE(0); i++) {
        const len = m.body.readInt32BE(pos);
        pos += 4;
        out.push(len < 0 ? null : m.body.toString('utf8', pos, pos + len));
        if (len > 0) pos += len;
      }
      return out;
    });
}

const errors = (ms: Message[]): string[] => ms.filter((m) => m.code === 'E').map((m) => m.body.toString('latin1'));

test('pipelined batches on the unnamed portal each get their own masking plan (raw frames)', async () => {
  const c = await RawClient.connect();
  try {
    // Both statements are described first, so their portals start with a known shape.
    c.send(
      parse('sa', 'SELECT balance FROM customers WHERE id = 1'),
      parse('sb', 'SELECT name FROM customers WHERE id = 1'),
      describe('S', 'sa'),
      describe('S', 'sb'),
      sync(),
    );
    await c.untilReady();
    c.send(bind('', 'sa'), execute(''), sync(), bind('', 'sb'), execute(''), sync());
    const ms = await c.untilReady(2);
    expect(errors(ms)).toEqual([]);
    expect(rows(ms)).toEqual([[null], ['Ada']]);
  } finally {
    c.close();
  }
});

test('postgres.js: Promise.all of two prepared queries on one connection does not swap their masking', async () => {
  const sql = postgres(stack.agentUrl(), { max: 1, prepare: true });
  try {
    // First run prepares (and describes) both statements; the second run pipelines them.
    for (let i = 0; i < 3; i++) {
      const [a, b] = await Promise.all([
        sql`SELECT balance FROM customers WHERE id = ${1}`,
        sql`SELECT name FROM customers WHERE id = ${1}`,
      ]);
      expect(a[0].balance).toBeNull();
      expect(b[0].name).toBe('Ada');
    }
  } finally {
    await sql.end();
  }
});

test('an error before the client Sync: what the server skips is skipped here too, later rows are still masked', async () => {
  const c = await RawClient.connect();
  try {
    c.send(
      parse('sa', 'SELECT balance FROM customers WHERE id = 1'),
      parse('sb', 'SELECT name FROM customers WHERE id = 1'),
      describe('S', 'sa'),
      describe('S', 'sb'),
      sync(),
    );
    await c.untilReady();
    c.send(parse('', 'SELECT 1/0'), bind('', ''), execute(''), flush());
    await c.waitFor((m) => m.some((x) => x.code === 'E'));
    expect(errors(c.messages)[0]).toContain('division by zero');
    // The server skips these up to the Sync.
    c.send(bind('', 'sb'), execute(''), sync());
    let ms = await c.untilReady();
    expect(rows(ms)).toEqual([]);
    c.send(bind('', 'sa'), execute(''), sync());
    ms = await c.untilReady();
    expect(errors(ms)).toEqual([]);
    expect(rows(ms)).toEqual([[null]]);
    c.send(query('SELECT name, balance FROM customers WHERE id = 1'));
    ms = await c.untilReady();
    expect(rows(ms)).toEqual([['Ada', null]]);
  } finally {
    c.close();
  }
});

test('protocol-level Execute of a cursor made with SQL DECLARE is masked', async () => {
  const c = await RawClient.connect();
  try {
    c.send(query('BEGIN; DECLARE c CURSOR FOR SELECT balance, name FROM customers WHERE id = 1'));
    await c.untilReady();
    c.send(execute('c'), sync());
    let ms = await c.untilReady();
    expect(errors(ms)).toEqual([]);
    expect(rows(ms)).toEqual([[null, 'Ada']]);
    // A portal bound by the protocol, closed and re-declared with SQL under the same name.
    c.send(parse('sb', 'SELECT name FROM customers WHERE id = 1'), bind('p', 'sb'), describe('P', 'p'), sync());
    await c.untilReady();
    c.send(query('CLOSE p; DECLARE p CURSOR FOR SELECT balance FROM customers WHERE id = 1'));
    await c.untilReady();
    c.send(execute('p'), sync());
    ms = await c.untilReady();
    expect(errors(ms)).toEqual([]);
    expect(rows(ms)).toEqual([[null]]);
    // FETCH of a cursor computing from a protected column: the computed column is masked.
    c.send(query('DECLARE d CURSOR FOR SELECT balance + 0 AS b FROM customers WHERE id = 1; FETCH ALL FROM d'));
    ms = await c.untilReady();
    expect(errors(ms)).toEqual([]);
    expect(rows(ms)).toEqual([[null]]);
    c.send(query('COMMIT'));
    await c.untilReady();
  } finally {
    c.close();
  }
});

test('binary COPY TO output, which detectors cannot scan, is refused before it starts and the session goes on; text COPY is masked', async () => {
  const c = await RawClient.connect();
  try {
    c.send(query('COPY (SELECT body FROM notes) TO STDOUT'));
    let ms = await c.untilReady();
    const data = ms
      .filter((m) => m.code === 'd')
      .map((m) => m.body.toString('utf8'))
      .join('');
    expect(data).not.toContain('ada@example.com');
    c.messages.length = 0;
    c.send(query('COPY (SELECT body FROM notes) TO STDOUT (FORMAT binary)'));
    ms = await c.untilReady();
    const all = Buffer.concat(ms.map((m) => m.body)).toString('latin1');
    expect(all).not.toContain('ada@example.com');
    expect(errors(ms).join('')).toMatch(/42501.*binary format cannot be masked/s);
    expect(ms.some((m) => m.code === 'H')).toBe(false); // no CopyOutResponse reached the agent
    c.messages.length = 0;
    c.send(query('SELECT 1'));
    ms = await c.untilReady();
    expect(ms.some((m) => m.code === 'D')).toBe(true);
  } finally {
    c.close();
  }
});

test('a portal the client describes itself gets no Describe of ours, and no row gets through unmasked around that', async () => {
  const c = await RawClient.connect();
  try {
    const descriptions = (ms: Message[]): number => ms.filter((m) => m.code === 'T').length;
    // libpq's PQexecPrepared: Bind, Describe portal, Execute, Sync. One RowDescription, masked rows.
    c.send(parse('ps', 'SELECT name, balance FROM customers WHERE id = 1'), sync());
    await c.untilReady();
    c.send(bind('', 'ps'), describe('P', ''), execute(''), sync());
    let ms = await c.untilReady();
    expect(errors(ms)).toEqual([]);
    expect(descriptions(ms)).toBe(1);
    expect(rows(ms)).toEqual([['Ada', null]]);
    // The described portal is bound again, to a statement reading the protected column, before the
    // Execute: that is a new portal, which nobody described.
    c.send(
      parse('pn', 'SELECT name FROM customers WHERE id = 1'),
      bind('', 'pn'),
      describe('P', ''),
      parse('pb', 'SELECT balance FROM customers WHERE id = 1'),
      bind('', 'pb'),
      execute(''),
      sync(),
    );
    ms = await c.untilReady();
    expect(errors(ms)).toEqual([]);
    expect(rows(ms)).toEqual([[null]]);
    // The unnamed statement parsed again with another column list in the same pipeline.
    c.send(
      parse('', 'SELECT name FROM customers WHERE id = 1'),
      bind('', ''),
      describe('P', ''),
      execute(''),
      parse('', 'SELECT balance, name FROM customers WHERE id = 1'),
      bind('', ''),
      execute(''),
      sync(),
    );
    ms = await c.untilReady();
    expect(errors(ms)).toEqual([]);
    expect(rows(ms)).toEqual([['Ada'], [null, 'Ada']]);
    // DISCARD ALL, then the name prepared again over the protected column, pipelined behind it.
    c.send(query('DISCARD ALL'));
    await c.untilReady();
    c.send(parse('ps', 'SELECT balance FROM customers WHERE id = 1'), bind('', 'ps'), execute(''), sync());
    ms = await c.untilReady();
    expect(errors(ms)).toEqual([]);
    expect(rows(ms)).toEqual([[null]]);
    // The table changes between executions of a described portal: each Describe is answered afresh.
    c.send(query('ALTER TABLE customers ADD COLUMN extra int DEFAULT 7'));
    await c.untilReady();
    c.send(parse('star', 'SELECT * FROM customers WHERE id = 1'), bind('', 'star'), describe('P', ''), execute(''), sync());
    ms = await c.untilReady();
    expect(errors(ms)).toEqual([]);
    expect(rows(ms)).toEqual([['1', 'Ada', null, '7']]);
    c.send(query('ALTER TABLE customers DROP COLUMN extra'));
    await c.untilReady();
    // The cached plan of `star` no longer matches: the server refuses it, and nothing unmasked passes.
    c.send(bind('', 'star'), describe('P', ''), execute(''), sync());
    ms = await c.untilReady();
    expect(rows(ms).every((r) => r[2] === null)).toBe(true);
    c.send(parse('star2', 'SELECT * FROM customers WHERE id = 1'), bind('', 'star2'), describe('P', ''), execute(''), sync());
    ms = await c.untilReady();
    expect(errors(ms)).toEqual([]);
    expect(rows(ms)).toEqual([['1', 'Ada', null]]);
  } finally {
    c.close();
  }
});
