// Per-caller judging on an MCP route: with `spec.identity` each request carries the caller's JWT,
// verified before anything else; its subject and groups decide (and filter tools/list), and the
// token never reaches the server (the target's credential replaces it). Nothing depends on the
// MCP session: two callers on one session are judged each as themselves.
import { request } from 'undici';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { IdentityError } from '../../../common/identity/errors';
import type { Identity } from '../../../common/policy/types';
import { startMcpFixture, type McpFixture } from '../../../test/support/mcp/mcp-server';
import { connectSdkClient, startMcpProxy, type McpProxy } from '../../../test/support/mcp/mcp-proxy';

const TOKEN = 'mcp-target-token-0c1d2e3f';
const CALLERS: Record<string, Identity> = {
  'jwt-alice': { subject: 'alice', groups: ['sre'], source: 'token' },
  'jwt-bob': { subject: 'bob', groups: ['support'], source: 'token' },
};

let fixture: McpFixture;
let proxy: McpProxy;
const clients: Client[] = [];

beforeAll(async () => {
  fixture = await startMcpFixture({ json: true });
  proxy = await startMcpProxy({
    spec: {
      defaultAction: 'allow',
      targets: [{ name: 'crm', mcp: { url: fixture.url, credentialsSecret: 'crm' } }],
      rules: [
        { name: 'sre-may-delete', action: 'allow', match: { target: 'crm', groups: ['sre'], mcp: { tools: ['delete_*'] } } },
        { name: 'no-deletes', action: 'deny', match: { target: 'crm', mcp: { tools: ['delete_*'] } } },
      ],
    },
    secrets: { crm: { token: TOKEN } },
    extra: {
      verifyToken: (t) => {
        const id = CALLERS[t];
        return id ? Promise.resolve(id) : Promise.reject(new IdentityError('bad_signature', 'signature does not verify'));
      },
    },
  });
});
afterAll(async () => {
  for (const c of clients) await c.close();
  await proxy?.close();
  await fixture?.close();
});

async function as(token: string): Promise<Client> {
  const c = await connectSdkClient(proxy.url('crm'), { authorization: `Bearer ${token}` });
  clients.push(c);
  return c;
}

it('refuses a request without a valid token before reading it', async () => {
  const before = fixture.received.length;
  for (const auth of [undefined, 'Bearer jwt-mallory']) {
    const r = await request(proxy.url('crm'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...(auth ? { authorization: auth } : {}) },
      body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
    });
    expect(r.statusCode).toBe(401);
    await r.body.text();
  }
  expect(fixture.received.length).toBe(before);
});

it('filters tools/list and judges calls per caller; the caller token never reaches the server', async () => {
  const alice = await as('jwt-alice');
  const bob = await as('jwt-bob');
  expect((await alice.listTools()).tools.map((t) => t.name)).toContain('delete_customer');
  expect((await bob.listTools()).tools.map((t) => t.name)).not.toContain('delete_customer');
  const byBob = (await bob.callTool({ name: 'delete_customer', arguments: { id: '7' } })) as { isError?: boolean };
  expect(byBob.isError).toBe(true);
  const byAlice = (await alice.callTool({ name: 'delete_customer', arguments: { id: '7' } })) as { content: Array<{ text: string }> };
  expect(byAlice.content[0].text).toBe('deleted 7');
  expect(fixture.methods().filter((m) => m === 'tools/call:delete_customer')).toHaveLength(1);
  expect(fixture.received.every((q) => q.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
});

it("judges bob as bob on alice's session (nothing depends on the session)", async () => {
  const alice = await as('jwt-alice');
  const session = (alice.transport as unknown as { sessionId: string }).sessionId;
  const r = await request(proxy.url('crm'), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: 'Bearer jwt-bob',
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-11-25',
    },
    body: '{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"name":"delete_customer","arguments":{"id":"8"}}}',
  });
  expect(await r.body.json()).toMatchObject({ id: 99, result: { isError: true } });
  expect(fixture.methods().filter((m) => m === 'tools/call:delete_customer')).toHaveLength(1);
});
