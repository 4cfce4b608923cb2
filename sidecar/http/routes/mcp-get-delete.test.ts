// GET (the server's event stream) and DELETE (session end) on an MCP route carry no JSON-RPC
// message, but they are judged all the same: as the plumbing of a client response (an
// McpOperation whose method is ''). With no rule matching they pass, whatever defaultAction says;
// a target-wide deny, or a deny on the caller's identity, refuses them (403, a JSON-RPC error
// naming the rule) before anything reaches the server: a caller denied the target cannot read
// another caller's session stream or end it by reusing its Mcp-Session-Id. Audited with the decision.
import { request } from 'undici';
import { IdentityError } from '../../../common/identity/errors';
import type { AccessPolicySpec, Identity, RuleSpec } from '../../../common/policy/types';
import { startMcpFixture, type McpFixture } from '../../../test/support/mcp/mcp-server';
import { startMcpProxy, type McpProxy } from '../../../test/support/mcp/mcp-proxy';

const CALLERS: Record<string, Identity> = {
  'jwt-alice': { subject: 'alice', groups: [], source: 'token' },
  'jwt-mallory': { subject: 'mallory', groups: [], source: 'token' },
};

function spec(url: string, rules: RuleSpec[]): AccessPolicySpec {
  return { defaultAction: 'deny', targets: [{ name: 'crm', mcp: { url, timeout: '10s' } }], rules };
}

const NO_MALLORY: RuleSpec = { name: 'no-mallory', action: 'deny', match: { target: 'crm', subjects: ['mallory'] } };
const NO_CALLS: RuleSpec = { name: 'no-calls', action: 'deny', match: { target: 'crm', mcp: { methods: ['tools/call'] } } };

let fixture: McpFixture;
let proxy: McpProxy;
let session: string;

const auth = (caller: string): Record<string, string> => ({ authorization: `Bearer jwt-${caller}` });

async function initialize(): Promise<string> {
  const r = await request(proxy.url('crm'), {
    method: 'POST',
    headers: { ...auth('alice'), 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
  expect(r.statusCode).toBe(200);
  await r.body.text();
  const id = r.headers['mcp-session-id'];
  expect(typeof id).toBe('string');
  const n = await request(proxy.url('crm'), {
    method: 'POST',
    headers: {
      ...auth('alice'),
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': id as string,
      'mcp-protocol-version': '2025-11-25',
    },
    body: '{"jsonrpc":"2.0","method":"notifications/initialized"}',
  });
  await n.body.text();
  return id as string;
}

/** GET or DELETE as caller on the session; a GET stream's body is dropped once its head came. */
async function send(method: 'GET' | 'DELETE', caller: string): Promise<{ status: number; type: string; text: string }> {
  const r = await request(proxy.url('crm'), {
    method,
    headers: { ...auth(caller), accept: 'text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' },
  });
  const type = String(r.headers['content-type']);
  if (type.startsWith('text/event-stream')) {
    r.body.destroy();
    return { status: r.statusCode, type, text: '' };
  }
  return { status: r.statusCode, type, text: await r.body.text() };
}

const upstreamSaw = (method: string): number => fixture.received.filter((q) => q.method === method).length;

/** The latest record of method by subject, among those from index `from` on (waiting for it). */
async function auditOf(method: string, subject: string, from = 0): Promise<McpProxy['audits'][number]> {
  for (let i = 0; i < 100; i++) {
    const e = proxy.audits
      .slice(from)
      .filter((a) => a.method === method && a.identity.subject === subject)
      .at(-1);
    if (e) return e;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no audit record for ${method} by ${subject}`);
}

beforeAll(async () => {
  fixture = await startMcpFixture({ json: true });
  proxy = await startMcpProxy({
    spec: spec(fixture.url, [NO_MALLORY, NO_CALLS]),
    extra: {
      verifyToken: (t) => {
        const id = CALLERS[t];
        return id ? Promise.resolve(id) : Promise.reject(new IdentityError('bad_signature', 'signature does not verify'));
      },
    },
  });
  session = await initialize();
});
afterAll(async () => {
  await proxy?.close();
  await fixture?.close();
});

it('passes GET with no rule matching it (a rule on tools/call does not), whatever defaultAction says; audited as allowed', async () => {
  const before = upstreamSaw('GET');
  const records = proxy.audits.length;
  const r = await send('GET', 'alice');
  expect(r.status).toBe(200);
  expect(r.type).toContain('text/event-stream');
  expect(upstreamSaw('GET')).toBe(before + 1);
  expect(await auditOf('GET', 'alice', records)).toMatchObject({ target: 'crm', decision: 'allow' });
});

it.each(['GET', 'DELETE'] as const)('refuses %s by a caller a rule denies the target, before the server sees it', async (method) => {
  const before = upstreamSaw(method);
  const records = proxy.audits.length;
  const r = await send(method, 'mallory');
  expect(r.status).toBe(403);
  expect(JSON.parse(r.text)).toMatchObject({
    jsonrpc: '2.0',
    id: null,
    error: { code: -32001, message: expect.stringContaining('no-mallory') as string, data: { type: 'policy_denied', rule: 'no-mallory' } },
  });
  expect(upstreamSaw(method)).toBe(before);
  expect(await auditOf(method, 'mallory', records)).toMatchObject({ target: 'crm', decision: 'deny', rule: 'no-mallory', status: 403 });
});

it('refuses GET and DELETE under a target-wide deny, and passes DELETE again without it', async () => {
  proxy.setPolicy(spec(fixture.url, [{ name: 'crm-closed', action: 'deny', match: { target: 'crm' } }]));
  const deletes = upstreamSaw('DELETE');
  for (const method of ['GET', 'DELETE'] as const) {
    const r = await send(method, 'alice');
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text)).toMatchObject({ error: { code: -32001, data: { rule: 'crm-closed' } } });
  }
  expect(upstreamSaw('DELETE')).toBe(deletes);
  proxy.setPolicy(spec(fixture.url, [NO_MALLORY, NO_CALLS]));
  const records = proxy.audits.length;
  const r = await send('DELETE', 'alice');
  expect(r.status).toBe(200);
  expect(upstreamSaw('DELETE')).toBe(deletes + 1);
  expect(await auditOf('DELETE', 'alice', records)).toMatchObject({ decision: 'allow', status: 200 });
});

it('refuses GET under a target-wide hold: a stream cannot wait for an approver', async () => {
  proxy.setPolicy(spec(fixture.url, [{ name: 'ask-first', action: 'hold', match: { target: 'crm' } }]));
  const before = upstreamSaw('GET');
  const records = proxy.audits.length;
  const r = await send('GET', 'alice');
  expect(r.status).toBe(403);
  expect(JSON.parse(r.text)).toMatchObject({
    error: { code: -32001, message: expect.stringContaining('cannot wait for approval') as string, data: { rule: 'ask-first' } },
  });
  expect(upstreamSaw('GET')).toBe(before);
  expect(await auditOf('GET', 'alice', records)).toMatchObject({ decision: 'deny', rule: 'ask-first' });
  proxy.setPolicy(spec(fixture.url, [NO_MALLORY, NO_CALLS]));
});
