// `maxConnections` on a postgres target, with real connections through the real sidecar: agents
// beyond the limit wait up to SLOT_WAIT_MS, then get 53300 from the sidecar; a slot frees when a
// session ends; at most MAX_WAITING wait at once.
import { Client } from 'pg';
import type { PgServer } from '../../tools/pg-server';
import { startStack, type Stack } from '../../test/support/stack';
import { ConnectionSlots, DEFAULT_MAX_CONNECTIONS, MAX_WAITING, RESERVED_CONNECTIONS, SLOT_WAIT_MS } from './connection-slots';

// Two connections: one kept for the sidecar's catalog connection, one for agents.
const MAX = 2;

function policy(pg: PgServer): string {
  return `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: conns}
spec:
  defaultAction: allow
  targets:
    - name: crm
      postgres: {host: 127.0.0.1, port: ${pg.port}, database: crm, tls: disable, credentialsSecret: crm-db, listenPort: 15432, maxConnections: ${MAX}}
`;
}

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ policy });
});

afterAll(async () => {
  await stack?.stop();
});

function client(): Client {
  const c = new Client({ connectionString: stack.agentUrl() });
  c.on('error', () => undefined);
  return c;
}

async function tryConnect(c: Client): Promise<{ code?: string; message: string } | undefined> {
  return c.connect().then(
    () => undefined,
    (e: { code?: string; message: string }) => ({ code: e.code, message: e.message }),
  );
}

async function backends(): Promise<number> {
  const rows = await stack.admin(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'crm' AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
  );
  return Number(rows[0].n);
}

test('the default stays well below a typical server max_connections of 100', () => {
  expect(DEFAULT_MAX_CONNECTIONS).toBe(20);
  expect(new ConnectionSlots(() => undefined).limit()).toBe(DEFAULT_MAX_CONNECTIONS - RESERVED_CONNECTIONS);
  expect(new ConnectionSlots(() => 1).limit()).toBe(1);
});

test('at the limit a second agent waits, then gets 53300 from the sidecar; the database saw one connection', async () => {
  const before = await backends();
  const a = client();
  expect(await tryConnect(a)).toBeUndefined();
  expect(await backends()).toBe(before + 1);
  const b = client();
  const started = Date.now();
  const err = await tryConnect(b);
  const waited = Date.now() - started;
  expect(err).toMatchObject({
    code: '53300',
    message: expect.stringMatching(/^agent-warden: .*all 1 agent connections .*maxConnections 2/),
  });
  expect(waited).toBeGreaterThanOrEqual(SLOT_WAIT_MS - 100);
  expect(waited).toBeLessThan(SLOT_WAIT_MS + 3000);
  expect(await backends()).toBe(before + 1);
  // The first agent's session is untouched.
  expect((await a.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  await a.end();
}, 30_000);

test('a waiting agent gets the slot as soon as a session ends', async () => {
  const a = client();
  expect(await tryConnect(a)).toBeUndefined();
  const b = client();
  const pending = tryConnect(b);
  await new Promise((r) => setTimeout(r, 300));
  const started = Date.now();
  await a.end();
  expect(await pending).toBeUndefined();
  expect(Date.now() - started).toBeLessThan(SLOT_WAIT_MS / 2);
  expect((await b.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
  await b.end();
}, 30_000);

test(`at most ${MAX_WAITING} agents wait; one more is refused at once`, async () => {
  const a = client();
  expect(await tryConnect(a)).toBeUndefined();
  const waiters = Array.from({ length: MAX_WAITING }, () => client());
  const waiting = waiters.map((c) => tryConnect(c));
  await new Promise((r) => setTimeout(r, 500));
  const extra = client();
  const started = Date.now();
  const err = await tryConnect(extra);
  expect(Date.now() - started).toBeLessThan(SLOT_WAIT_MS / 2);
  expect(err).toMatchObject({ code: '53300', message: expect.stringContaining(`${MAX_WAITING} more connections are already waiting`) });
  // The ones within the bound waited: one gets the freed slot, the others time out.
  await a.end();
  const results = await Promise.all(waiting);
  const connected = results.filter((r) => r === undefined).length;
  expect(connected).toBe(1);
  expect(results.filter((r) => r?.code === '53300' && r.message.includes('waited')).length).toBe(MAX_WAITING - 1);
  await Promise.all(waiters.map((c) => c.end().catch(() => undefined)));
}, 60_000);
