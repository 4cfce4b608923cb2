// Per-caller identity on the PostgreSQL path (spec.identity): the agent's real `pg` client sends its
// JWT as the password; the sidecar verifies it against a local OIDC issuer stand-in before it
// connects upstream, and decides each statement for the token's subject and groups.
import * as net from 'node:net';
import { Client } from 'pg';
import { makeKey, TestIssuer, type IssuerKey } from '../../test/support/common/oidc-issuer';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';

const AUD = 'agent-warden';
let issuer: TestIssuer;
let key: IssuerKey;
let stack: Stack;

const RULES = (issuerUrl: string) => `  identity:
    issuer: ${issuerUrl}
    audiences: [${AUD}]
    clockSkew: 5s
  rules:
    - name: supervisors-may-delete
      action: allow
      match: {target: crm, subjects: [supervisor-agent], sql: {statements: [DELETE]}}
    - name: no-deletes
      action: deny
      match: {target: crm, sql: {statements: [DELETE]}}
`;

beforeAll(async () => {
  key = await makeKey('key-1');
  issuer = await TestIssuer.start([key]);
  stack = await startStack({
    setupSql: 'DROP TABLE IF EXISTS items; CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 10);',
    policy: (pg) => crmPolicy(pg, RULES(issuer.url)),
    sidecar: { identityVerifier: { allowInsecureLoopback: true } },
  });
});

afterAll(async () => {
  await stack?.stop();
  await issuer?.stop();
});

const nowS = (): number => Math.floor(Date.now() / 1000);

function token(sub: string, extra: Record<string, unknown> = {}, k: IssuerKey = key): Promise<string> {
  return issuer.sign({ sub, aud: AUD, iat: nowS(), exp: nowS() + 300, ...extra }, k);
}

function client(password: string | undefined): Client {
  return new Client({ host: '127.0.0.1', port: stack.port, database: 'crm', user: 'agent', password });
}

async function count(): Promise<number> {
  return Number((await stack.admin('SELECT count(*)::int AS n FROM items'))[0].n);
}

/** The connection attempt's error; fails the test if the login succeeds. */
async function loginError(c: Client): Promise<Error & { code?: string }> {
  try {
    await c.connect();
  } catch (err) {
    return err as Error & { code?: string };
  } finally {
    await c.end().catch(() => undefined);
  }
  throw new Error('login succeeded');
}

function lastLoginFailure(): string | undefined {
  return [...stack.sessions].reverse().find((s) => s.event === 'login-failed')?.message;
}

test('a supervisor token may DELETE: the statement is allowed and audited under the token subject', async () => {
  const c = client(await token('supervisor-agent', { groups: ['supervisors'] }));
  await c.connect();
  try {
    expect((await c.query('DELETE FROM items WHERE id = 1')).rowCount).toBe(1);
    expect(await count()).toBe(9);
    const ev = stack.events.find((e) => e.text.includes('WHERE id = 1'));
    expect(ev).toMatchObject({
      decision: 'allow',
      rule: 'supervisors-may-delete',
      identity: { subject: 'supervisor-agent', groups: ['supervisors'], source: 'token' },
    });
  } finally {
    await c.end();
  }
});

test('a worker token is denied the same DELETE by rule, but may read', async () => {
  const c = client(await token('worker-agent'));
  await c.connect();
  try {
    await expect(c.query('DELETE FROM items WHERE id = 2')).rejects.toMatchObject({ code: '42501' });
    expect(await count()).toBe(9);
    expect((await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(9);
    const ev = stack.events.find((e) => e.text.includes('WHERE id = 2'));
    expect(ev).toMatchObject({ decision: 'deny', rule: 'no-deletes', identity: { subject: 'worker-agent', source: 'token' } });
  } finally {
    await c.end();
  }
});

test('no password: 28P01 before anything reaches the database, with a login-failed audit event', async () => {
  const before = await stack.admin("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'crm'");
  const e = await loginError(client(''));
  expect(e.code).toBe('28P01');
  expect(e.message).toMatch(/no token/);
  expect(lastLoginFailure()).toMatch(/no token/);
  const after = await stack.admin("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'crm'");
  expect(after[0].n).toBeLessThanOrEqual(before[0].n as number); // no upstream connection was opened
});

test('an expired token: 28P01 naming expiry, and the token is not echoed', async () => {
  const t = await token('supervisor-agent', { iat: nowS() - 3600, exp: nowS() - 600 });
  const e = await loginError(client(t));
  expect(e.code).toBe('28P01');
  expect(e.message).toMatch(/expired/);
  expect(e.message).not.toContain(t.split('.')[1]);
  expect(lastLoginFailure()).toMatch(/expired/);
});

test('a forged token (another key under the same kid): 28P01 naming the signature check', async () => {
  const forger = await makeKey('key-1');
  const t = await token('supervisor-agent', {}, forger);
  const e = await loginError(client(t));
  expect(e.code).toBe('28P01');
  expect(e.message).toMatch(/signature/);
  expect(e.message).not.toContain(t.split('.')[2]);
  expect(await count()).toBe(9);
});

test('a token for another audience, or garbage, is refused too', async () => {
  expect(await loginError(client(await token('supervisor-agent', { aud: 'someone-else' })))).toMatchObject({
    code: '28P01',
    message: expect.stringMatching(/audience/),
  });
  expect(await loginError(client('not-a-jwt'))).toMatchObject({ code: '28P01' });
});

test('a client that answers the password request with another message is refused', async () => {
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const s = net.connect(stack.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (c) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      if (all[0] === 0x52 && all.length >= 9 && chunks.length === 1) {
        // AuthenticationCleartextPassword (R, len 8, code 3): answer with a Query instead
        expect(all.readInt32BE(5)).toBe(3);
        const q = Buffer.from('SELECT 1\0');
        const msg = Buffer.alloc(5 + q.length);
        msg[0] = 0x51;
        msg.writeInt32BE(4 + q.length, 1);
        q.copy(msg, 5);
        s.write(msg);
      }
    });
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
    const params = Buffer.from('user\0agent\0database\0crm\0\0');
    const startup = Buffer.alloc(8 + params.length);
    startup.writeInt32BE(startup.length, 0);
    startup.writeInt32BE(196608, 4);
    params.copy(startup, 8);
    s.write(startup);
  });
  expect(reply.subarray(9).toString('latin1')).toContain('expected a password message');
});
