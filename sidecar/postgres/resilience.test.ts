// Failure and edge behaviour with a real TLS-enabled PostgreSQL: TLS modes, bad or rotated
// credentials, unreachable upstreams, cancels, disconnects, garbage and oversized frames.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Client } from 'pg';
import postgres from 'postgres';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { freePort } from '../../tools/pg-server';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    tls: true,
    setupSql: 'CREATE TABLE IF NOT EXISTS t (id int)',
    role: { name: 'app_user', password: 'first-secret-1', grants: 'GRANT ALL ON t TO app_user' },
    policy: (pg) => crmPolicy(pg, '', { tls: 'require' }),
    sidecar: { maxMessageBytes: 1024 * 1024 },
  });
});

afterAll(async () => {
  await stack?.stop();
});

async function agent(): Promise<Client> {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  return c;
}

function rawExchange(port: number, bytes: Buffer, waitMs = 300): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => undefined);
    const done = (): void => resolve(Buffer.concat(chunks));
    s.on('close', done);
    setTimeout(() => {
      s.destroy();
      done();
    }, waitMs);
  });
}

function startupPacket(params: Record<string, string>): Buffer {
  const body = Buffer.concat([
    Buffer.from([0, 3, 0, 0]),
    ...Object.entries(params).flatMap(([k, v]) => [Buffer.from(k + '\0'), Buffer.from(v + '\0')]),
    Buffer.from([0]),
  ]);
  const len = Buffer.alloc(4);
  len.writeInt32BE(body.length + 4);
  return Buffer.concat([len, body]);
}

test('the upstream leg is TLS (tls: require) and logs in as the secret user', async () => {
  const c = await agent();
  try {
    const r = await c.query('SELECT current_user AS u, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    expect(r.rows[0]).toEqual({ u: 'app_user', ssl: true });
  } finally {
    await c.end();
  }
});

test('SSLRequest from the agent gets an honest "N" and the plain session proceeds', async () => {
  const c = new Client({ connectionString: stack.agentUrl(), ssl: false });
  await c.connect();
  await c.end();
  const answer = await rawExchange(stack.port, Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]), 100);
  expect(answer.toString()).toBe('N');
  const strict = new Client({ connectionString: stack.agentUrl() + '?sslmode=require' });
  await expect(strict.connect()).rejects.toThrow(/does not support SSL/i);
});

test('rotated credentials apply to the next connection without a restart; a wrong one fails clearly without leaking it', async () => {
  const pwFile = path.join(stack.secretsDir, 'crm-db', 'password');
  await stack.admin("ALTER ROLE app_user PASSWORD 'second-secret-2'");
  fs.writeFileSync(pwFile, 'wrong-password-xyz');
  const bad = new Client({ connectionString: stack.agentUrl() });
  const err = await bad.connect().then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  );
  expect(err).toBeDefined();
  expect(err!.message).toMatch(/password authentication failed|authentication/);
  expect(err!.message).not.toContain('wrong-password-xyz');
  fs.writeFileSync(pwFile, 'second-secret-2\n');
  const good = await agent();
  expect((await good.query('SELECT current_user AS u')).rows[0].u).toBe('app_user');
  await good.end();
  await stack.admin("ALTER ROLE app_user PASSWORD 'first-secret-1'");
  fs.writeFileSync(pwFile, 'first-secret-1');
});

test('a missing secret key fails the login closed with a message naming the key', async () => {
  const file = path.join(stack.secretsDir, 'crm-db', 'username');
  const saved = fs.readFileSync(file);
  fs.rmSync(file);
  try {
    const c = new Client({ connectionString: stack.agentUrl() });
    await expect(c.connect()).rejects.toThrow(/credential "username" of secret "crm-db" is missing/);
  } finally {
    fs.writeFileSync(file, saved);
  }
  const ok = await agent();
  await ok.end();
});

test('an unreachable upstream gives a clear error for that connection only', async () => {
  const other = await startStack({ policy: (pg) => crmPolicy(pg, '').replace(`port: ${pg.port}`, 'port: 1') }, stack.pg);
  try {
    const c = new Client({ connectionString: other.agentUrl() });
    await expect(c.connect()).rejects.toMatchObject({ code: '08001', message: expect.stringMatching(/cannot connect to 127\.0\.0\.1:1/) });
    const fine = await agent();
    expect((await fine.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    await fine.end();
  } finally {
    await other.stop();
  }
});

test('tls: require against a server without TLS is refused', async () => {
  const port = await freePort();
  const fake = net.createServer((s) => s.once('data', () => s.write('N')));
  await new Promise<void>((r) => fake.listen(port, '127.0.0.1', r));
  const other = await startStack(
    { policy: (pg) => crmPolicy(pg, '', { tls: 'require' }).replace(`port: ${pg.port}`, `port: ${port}`) },
    stack.pg,
  );
  try {
    const c = new Client({ connectionString: other.agentUrl() });
    await expect(c.connect()).rejects.toThrow(/does not support TLS, but the target requires it/);
  } finally {
    fake.close();
    await other.stop();
  }
});

test('a cancel request from the agent cancels the real backend query', async () => {
  const sql = postgres(stack.agentUrl(), { max: 1 });
  try {
    const q = sql`SELECT pg_sleep(20)`;
    const pending = q.execute();
    await new Promise((r) => setTimeout(r, 300));
    q.cancel();
    await expect(pending).rejects.toMatchObject({ code: '57014' });
    expect((await sql`SELECT 1 AS one`)[0].one).toBe(1);
  } finally {
    await sql.end();
  }
});

test('an agent that disconnects mid-query has its backend query cancelled', async () => {
  const s = net.connect(stack.port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  s.write(startupPacket({ user: 'agent', database: 'crm', application_name: 'vanishing-agent' }));
  await new Promise((r) => setTimeout(r, 300));
  const q = Buffer.from('SELECT pg_sleep(30)\0');
  const msg = Buffer.alloc(5);
  msg[0] = 0x51;
  msg.writeInt32BE(q.length + 4, 1);
  s.write(Buffer.concat([msg, q]));
  await new Promise((r) => setTimeout(r, 300));
  s.destroy();
  let running = 1;
  for (let i = 0; i < 30 && running > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const rows = await stack.admin(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'vanishing-agent' AND state = 'active'",
    );
    running = rows[0].n as number;
  }
  expect(running).toBe(0);
});

test('garbage bytes get a protocol error for that connection; the sidecar keeps serving', async () => {
  const answer = await rawExchange(stack.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  expect(answer.length === 0 || answer[0] === 0x45).toBe(true);
  const mid = net.connect(stack.port, '127.0.0.1');
  await new Promise((r) => mid.once('connect', r));
  mid.write(startupPacket({ user: 'agent', database: 'crm' }));
  await new Promise((r) => setTimeout(r, 300));
  const got: Buffer[] = [];
  mid.on('data', (c) => got.push(c));
  mid.write(Buffer.from([0x7a, 0, 0, 0, 4])); // unknown message type 'z'
  await new Promise((r) => setTimeout(r, 200));
  const text = Buffer.concat(got).toString('latin1');
  expect(text).toContain('08P01');
  expect(text).toContain('unexpected message type');
  mid.destroy();
  const fine = await agent();
  expect((await fine.query('SELECT 2 AS x')).rows[0].x).toBe(2);
  await fine.end();
});

test('an oversized message is refused with 54000 before it is buffered', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  c.on('error', () => undefined);
  const huge = `SELECT '${'x'.repeat(2 * 1024 * 1024)}'`;
  await expect(c.query(huge)).rejects.toMatchObject({ code: '54000' });
  await c.end().catch(() => undefined);
  const fine = await agent();
  expect((await fine.query('SELECT 3 AS x')).rows[0].x).toBe(3);
  await fine.end();
});

test('a large result streams through without being buffered whole', async () => {
  const c = await agent();
  try {
    const before = process.memoryUsage().rss;
    let rows = 0;
    // ~100 MB through the proxy; node-postgres holds the rows, so count them in a cursor-less way.
    const r = await c.query({
      text: "SELECT count(*)::int8 AS n, sum(length(x))::int8 AS bytes FROM (SELECT repeat('y', 1000) AS x FROM generate_series(1, 100000)) s",
    });
    rows = Number(r.rows[0].n);
    expect(rows).toBe(100000);
    const sql = postgres(stack.agentUrl(), { max: 1 });
    let seen = 0;
    await sql`SELECT repeat('z', 1000) AS x FROM generate_series(1, 100000)`.cursor(1000, (chunk) => {
      seen += chunk.length;
    });
    await sql.end();
    expect(seen).toBe(100000);
    const grew = (process.memoryUsage().rss - before) / 1024 / 1024;
    expect(grew).toBeLessThan(200);
  } finally {
    await c.end();
  }
});
