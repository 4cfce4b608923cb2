// Held statements in the extended protocol: the batch is held at its Sync, the approver sees the SQL
// with its bound parameters, and exactly the buffered batch runs once approved.
import { Client } from 'pg';
import postgres from 'postgres';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { sqlOperation } from '../approvals/operation';
import { decideOverApi, holdDeletesRule, pendingApproval } from '../../test/support/approvals';

const RULES = holdDeletesRule('5s');

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    setupSql: 'DROP TABLE IF EXISTS items; CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 10);',
    policy: (pg) => crmPolicy(pg, RULES),
    sidecar: { localApprovals: true },
  });
});

afterAll(async () => {
  await stack?.stop();
});

async function has(id: number): Promise<boolean> {
  return (await stack.admin(`SELECT count(*)::int AS n FROM items WHERE id = ${id}`))[0].n === 1;
}

test('a parameterized DELETE is held at Sync: the approver sees $1, approval runs exactly it', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    const running = c.query('DELETE FROM items WHERE id = $1', [3]);
    const req = await pendingApproval(stack.sidecar);
    expect(req.operation.display).toContain('DELETE FROM items WHERE id = $1');
    expect(req.operation.display).toContain("$1 = '3'");
    expect(req.operation.digest).toBe(sqlOperation('DELETE FROM items WHERE id = $1', ['3']).digest);
    expect(await has(3)).toBe(true); // nothing forwarded yet
    expect(await decideOverApi(stack.sidecar, req.id, 'approve', 'ok')).toBe(200);
    expect((await running).rowCount).toBe(1);
    expect(await has(3)).toBe(false);
    // the connection is in a clean state afterwards
    expect((await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(9);
  } finally {
    await c.end();
  }
});

test('a denied parameterized DELETE fails with 42501 and the reason; the row remains, the connection works', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    const running = c.query('DELETE FROM items WHERE id = $1', [4]);
    const req = await pendingApproval(stack.sidecar);
    expect(req.operation.display).toContain("$1 = '4'");
    expect(await decideOverApi(stack.sidecar, req.id, 'deny', 'not row four')).toBe(200);
    await expect(running).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('not row four') });
    expect(await has(4)).toBe(true);
    expect((await c.query('SELECT $1::int AS n', [7])).rows[0].n).toBe(7);
  } finally {
    await c.end();
  }
});

test('binary parameters are shown as \\x hex', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    const running = c.query('DELETE FROM items WHERE id = $1 AND $2::bytea IS NOT NULL', [5, Buffer.from([0xde, 0xad])]);
    const req = await pendingApproval(stack.sidecar);
    expect(req.operation.display).toContain("$1 = '5'");
    expect(req.operation.display).toContain("$2 = '\\xdead'");
    expect(await decideOverApi(stack.sidecar, req.id, 'deny', 'no')).toBe(200);
    await expect(running).rejects.toMatchObject({ code: '42501' });
    expect(await has(5)).toBe(true);
  } finally {
    await c.end();
  }
});

test('a named statement approved once is held again when bound with other parameters', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    const first = c.query({ name: 'del', text: 'DELETE FROM items WHERE id = $1', values: [6] });
    const req = await pendingApproval(stack.sidecar);
    expect(req.operation.display).toContain("$1 = '6'");
    expect(await decideOverApi(stack.sidecar, req.id, 'approve', 'ok')).toBe(200);
    expect((await first).rowCount).toBe(1);
    const second = c.query({ name: 'del', text: 'DELETE FROM items WHERE id = $1', values: [7] });
    const req2 = await pendingApproval(stack.sidecar);
    expect(req2.id).not.toBe(req.id);
    expect(req2.operation.display).toContain("$1 = '7'");
    expect(await decideOverApi(stack.sidecar, req2.id, 'deny', 'keep seven')).toBe(200);
    await expect(second).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('keep seven') });
    expect(await has(6)).toBe(false);
    expect(await has(7)).toBe(true);
  } finally {
    await c.end();
  }
});

test('postgres.js: a held DELETE pipelined between two SELECTs waits alone; the SELECT before it completes', async () => {
  const sql = postgres(stack.agentUrl(), { max: 1 });
  try {
    let firstDone = false;
    let lastDone = false;
    const before = sql`SELECT ${1}::int AS n`.then((r) => {
      firstDone = true;
      return r;
    });
    // postgres.js queries are lazy: .then() sends them
    const del = sql`DELETE FROM items WHERE id = ${8}`.then((r) => r);
    const after = sql`SELECT ${2}::int AS n`.then((r) => {
      lastDone = true;
      return r;
    });
    // postgres.js parses and describes first: preparing a held statement is asked for on its own
    // (nothing runs, and the server does not see it before that)...
    const prep = await pendingApproval(stack.sidecar);
    expect(prep.operation.display).toBe('DELETE FROM items WHERE id = $1');
    expect((await before)[0].n).toBe(1);
    expect(firstDone).toBe(true);
    expect(await decideOverApi(stack.sidecar, prep.id, 'approve', 'ok')).toBe(200);
    // ...then the execution, with its parameters
    let req = await pendingApproval(stack.sidecar);
    for (let i = 0; i < 100 && req.id === prep.id; i++) req = await pendingApproval(stack.sidecar);
    expect(req.id).not.toBe(prep.id);
    expect(req.operation.display).toContain("$1 = '8'");
    expect(lastDone).toBe(false);
    expect(await has(8)).toBe(true);
    expect(await decideOverApi(stack.sidecar, req.id, 'approve', 'ok')).toBe(200);
    expect((await del).count).toBe(1);
    expect((await after)[0].n).toBe(2);
    expect(await has(8)).toBe(false);
  } finally {
    await sql.end();
  }
});

function msg(code: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(code, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');
const int16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
function bind(value: string): Buffer {
  const v = Buffer.from(value);
  const len = Buffer.alloc(4);
  len.writeInt32BE(v.length);
  return msg('B', Buffer.concat([cstr(''), cstr(''), int16(0), int16(1), len, v, int16(0)]));
}

test('two held statements in one batch are asked one after the other; a denial fails the whole batch', async () => {
  const net = await import('node:net');
  const url = new URL(stack.agentUrl());
  const sock = net.connect(Number(url.port), url.hostname);
  let received = Buffer.alloc(0);
  sock.on('data', (d) => (received = Buffer.concat([received, d])));
  const waitFor = async (pred: () => boolean): Promise<void> => {
    for (let i = 0; i < 300 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(pred()).toBe(true);
  };
  await new Promise((r) => sock.once('connect', r));
  const params = Buffer.concat([
    cstr('user'),
    cstr(decodeURIComponent(url.username)),
    cstr('database'),
    cstr(url.pathname.slice(1)),
    cstr(''),
  ]);
  const startup = Buffer.alloc(8);
  startup.writeInt32BE(8 + params.length);
  startup.writeInt32BE(196608, 4);
  sock.write(Buffer.concat([startup, params]));
  await waitFor(() => received.includes(Buffer.from('Z\0\0\0\x05I', 'latin1')));
  received = Buffer.alloc(0);
  const parse = (sql: string): Buffer => msg('P', Buffer.concat([cstr(''), cstr(sql), int16(0)]));
  const execute = msg('E', Buffer.concat([cstr(''), Buffer.alloc(4)]));
  sock.write(
    Buffer.concat([
      parse('DELETE FROM items WHERE id = $1'),
      bind('9'),
      execute,
      parse('DELETE FROM items WHERE id = $1 + 1'),
      bind('9'),
      execute,
      msg('S', Buffer.alloc(0)),
    ]),
  );
  try {
    const req1 = await pendingApproval(stack.sidecar);
    expect(req1.operation.display).toContain('WHERE id = $1\n');
    expect(req1.operation.display).toContain("$1 = '9'");
    expect(await decideOverApi(stack.sidecar, req1.id, 'approve', 'ok')).toBe(200);
    const req2 = await pendingApproval(stack.sidecar);
    expect(req2.id).not.toBe(req1.id);
    expect(req2.operation.display).toContain('$1 + 1');
    expect(await decideOverApi(stack.sidecar, req2.id, 'deny', 'not ten')).toBe(200);
    await waitFor(() => received.includes(Buffer.from('Z\0\0\0\x05I', 'latin1')));
    expect(received.toString('latin1')).toContain('42501');
    expect(received.toString('latin1')).toContain('not ten');
    // the batch's implicit transaction rolled back: the first, approved DELETE did not stick
    expect(await has(9)).toBe(true);
    expect(await has(10)).toBe(true);
  } finally {
    sock.destroy();
  }
});
