// Held MCP tool calls end to end (issue 13, decision 9): the official SDK client through the route
// handler to the official SDK server, with the real approval gate over the standalone store. An
// approved call runs once; a second identical call is a new approval request; a denied one comes
// back as a tool error with the approver's reason and never reaches the server. While the
// approver decides, the agent's event stream gets a heartbeat: progress notifications for its
// progressToken (so the SDK client's request timeout keeps being reset), else SSE comments.
import * as net from 'node:net';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { AccessPolicySpec, Identity } from '../../../common/policy/types';
import { createApprovalGate } from '../../approvals/gate';
import { LocalApprovalStore } from '../../approvals/local-store';
import { mcpDigest } from '../../approvals/operation';
import type { ApprovalRequest } from '../../approvals/types';
import { connectSdkClient, startMcpProxy, type McpProxy } from '../../../test/support/mcp/mcp-proxy';
import { startMcpFixture, type McpFixture } from '../../../test/support/mcp/mcp-server';

const alice: Identity = { subject: 'alice', groups: ['sre'], source: 'token' };
const AGENT_MAIL = 'bob.jones@example.org';

function spec(url: string): AccessPolicySpec {
  return {
    defaultAction: 'allow',
    targets: [{ name: 'crm', mcp: { url, timeout: '10s' } }],
    rules: [
      {
        name: 'prod-needs-approval',
        action: 'hold',
        approval: { approvers: { groups: ['sre'] }, timeout: '1m' },
        match: { target: 'crm', mcp: { tools: ['run_query'], arguments: [{ path: '$.database', values: ['prod'] }] } },
      },
    ],
    masking: [{ name: 'pii', detectors: ['email'], strategy: 'redact', direction: 'both' }],
  };
}

type ToolResult = { content: Array<{ type: string; text?: string }>; isError?: boolean };
const textOf = (r: unknown): string => (r as ToolResult).content.map((c) => c.text ?? '').join('');

async function pending(store: LocalApprovalStore, count = 1): Promise<ApprovalRequest[]> {
  for (let i = 0; i < 500; i++) {
    const p = await store.list({ state: 'pending' });
    if (p.length >= count) return p;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no pending approval request');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each([
  ['SSE', false],
  ['JSON', true],
])('held MCP calls, SDK client and server, %s responses', (_mode, json) => {
  let fixture: McpFixture;
  let proxy: McpProxy;
  let client: Client;
  let store: LocalApprovalStore;

  beforeAll(async () => {
    fixture = await startMcpFixture({ json });
    store = new LocalApprovalStore();
    const gate = createApprovalGate(store);
    proxy = await startMcpProxy({ spec: spec(fixture.url), extra: { mcpApprovals: gate, mcpHeartbeatMs: 50 } });
    client = await connectSdkClient(proxy.url('crm'));
  });
  afterAll(async () => {
    await client?.close();
    await proxy?.close();
    await fixture?.close();
    store?.close();
  });

  const runs = (): number => fixture.methods().filter((m) => m === 'tools/call:run_query').length;

  it('approved: runs once, after the approver saw the tool and the (masked) arguments; heartbeats kept the client waiting', async () => {
    const args = { database: 'prod', sql: `DELETE FROM customers WHERE email = '${AGENT_MAIL}'` };
    const progress: number[] = [];
    // The client gives up after 400 ms without progress; the approver takes longer.
    const call = client.callTool({ name: 'run_query', arguments: args }, undefined, {
      timeout: 400,
      resetTimeoutOnProgress: true,
      onprogress: (p) => progress.push(p.progress),
    });
    const [req] = await pending(store);
    expect(req.target).toBe('crm');
    expect(req.rule).toBe('prod-needs-approval');
    expect(req.operation.kind).toBe('mcp');
    expect(req.operation.display).toContain('tools/call run_query on MCP server "crm"');
    expect(req.operation.display).toContain('"database": "prod"');
    expect(req.operation.display).toContain("WHERE email = '[REDACTED]'");
    expect(req.operation.display).not.toContain(AGENT_MAIL);
    const masked = { database: 'prod', sql: "DELETE FROM customers WHERE email = '[REDACTED]'" };
    expect(req.operation.digest).toBe(mcpDigest({ target: 'crm', method: 'tools/call', tool: 'run_query', arguments: masked }));
    expect(runs()).toBe(0);
    await sleep(900);
    expect(runs()).toBe(0); // still held
    await store.decide(req.id, alice, 'approve', 'ticket OPS-7');
    const r = await call;
    expect(r.isError).toBeFalsy();
    expect(textOf(r)).toBe("ran DELETE FROM customers WHERE email = '[REDACTED]' on prod");
    expect(runs()).toBe(1);
    expect(progress.length).toBeGreaterThan(5);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const audit = proxy.audits.filter((a) => a.mcp?.tool === 'run_query').pop()!;
    expect(audit).toMatchObject({ decision: 'hold', rule: 'prod-needs-approval', approval: { approved: true, decidedBy: 'alice' } });
  });

  it('the same call again is a new approval request; denied, it carries the reason and never reaches the server', async () => {
    const call = client.callTool({ name: 'run_query', arguments: { database: 'prod', sql: 'DROP TABLE x' } });
    const [req] = await pending(store);
    await store.decide(req.id, alice, 'deny', 'not during the freeze');
    const r = await call;
    expect(r.isError).toBe(true);
    expect(textOf(r)).toMatch(/held for approval and not approved by rule "prod-needs-approval".*denied by alice: not during the freeze/);
    expect(fixture.methods()).not.toContain('tools/call:run_query:DROP');
    expect(fixture.received.some((q) => JSON.stringify(q.body ?? null).includes('DROP TABLE x'))).toBe(false);
    const audit = proxy.audits.filter((a) => a.mcp?.tool === 'run_query').pop()!;
    expect(audit).toMatchObject({ decision: 'hold', approval: { approved: false, outcome: 'denied' }, mcp: { toolError: true } });
  });

  it('a call the rule does not hold passes at once', async () => {
    const r = await client.callTool({ name: 'run_query', arguments: { database: 'dev', sql: 'select 1' } });
    expect(textOf(r)).toBe('ran select 1 on dev');
  });
});

describe('held MCP calls over raw HTTP', () => {
  let fixture: McpFixture;
  let proxy: McpProxy;
  let store: LocalApprovalStore;
  let session: string;

  const post = (body: unknown, accept: string, signal?: AbortSignal): Promise<Response> =>
    fetch(proxy.url('crm'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept, 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': session },
      body: JSON.stringify(body),
      signal,
    });
  const call = (id: number, sql: string) => ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'run_query', arguments: { database: 'prod', sql } },
  });

  beforeAll(async () => {
    fixture = await startMcpFixture({ json: true });
    store = new LocalApprovalStore();
    proxy = await startMcpProxy({ spec: spec(fixture.url), extra: { mcpApprovals: createApprovalGate(store), mcpHeartbeatMs: 30 } });
    const client = await connectSdkClient(proxy.url('crm'));
    session = (client.transport as unknown as { sessionId: string }).sessionId;
  });
  afterAll(async () => {
    await proxy?.close();
    await fixture?.close();
    store?.close();
  });

  it('without a progress token the heartbeat is an SSE comment; the answer follows in the same stream', async () => {
    const res = await post(call(1, 'select 2'), 'application/json, text/event-stream');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const [req] = await pending(store);
    await sleep(200);
    await store.decide(req.id, alice, 'approve', 'ok');
    const text = await res.text();
    expect(text).toMatch(/^(: Agent Warden: this call is waiting for approval\n\n){3,}/);
    const events = text.split('\n\n').filter((e) => e.startsWith('event: message'));
    expect(events).toHaveLength(1);
    expect(JSON.parse(events[0].slice('event: message\ndata: '.length))).toMatchObject({
      id: 1,
      result: { content: [{ text: 'ran select 2 on prod' }] },
    });
  });

  it('an agent that accepts only JSON waits without a heartbeat; once approved, the server answers it as JSON', async () => {
    const pendingRes = post(call(2, 'select 3'), 'application/json');
    const [req] = await pending(store);
    expect(fixture.received.some((q) => JSON.stringify(q.body ?? null).includes('select 3'))).toBe(false);
    await store.decide(req.id, alice, 'approve', 'ok');
    const res = await pendingRes;
    expect(res.headers.get('content-type')).toBe('application/json');
    // The SDK server wants clients to accept both types and says so; what matters here is that it got the call.
    expect(await res.json()).toMatchObject({ jsonrpc: '2.0', error: { message: expect.stringContaining('Not Acceptable') } });
    expect(fixture.received.some((q) => JSON.stringify(q.body ?? null).includes('select 3'))).toBe(true);
  });

  it('an agent that goes away cancels its approval request, and the call is never sent', async () => {
    const ac = new AbortController();
    const res = post(call(3, 'select 4'), 'application/json, text/event-stream', ac.signal);
    const [req] = await pending(store);
    ac.abort();
    await res.catch(() => undefined);
    for (let i = 0; i < 100 && (await store.get(req.id))?.state === 'pending'; i++) await sleep(10);
    expect((await store.get(req.id))?.state).toBe('cancelled');
    await expect(store.decide(req.id, alice, 'approve', 'late')).rejects.toThrow();
    expect(fixture.received.some((q) => JSON.stringify(q.body ?? null).includes('select 4'))).toBe(false);
  });

  it('a held call inside a batch is not held: the batch is refused', async () => {
    const res = await post([call(4, 'select 5'), { jsonrpc: '2.0', id: 5, method: 'tools/list' }], 'application/json, text/event-stream');
    expect(await store.list({ state: 'pending' })).toEqual([]);
    const text = await res.text();
    expect(text).toContain('approval is not available inside a batch');
  });
});

describe('a held call whose server fails once approved', () => {
  it('ends the open event stream with a JSON-RPC error for the call and an error event', async () => {
    // An "MCP server" that drops every connection: the approved call cannot be forwarded.
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/mcp`;
    const store = new LocalApprovalStore();
    const proxy = await startMcpProxy({ spec: spec(url), extra: { mcpApprovals: createApprovalGate(store), mcpHeartbeatMs: 30 } });
    try {
      const res = fetch(proxy.url('crm'), {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 9,
          method: 'tools/call',
          params: { name: 'run_query', arguments: { database: 'prod', sql: 'x' } },
        }),
      });
      const [req] = await pending(store);
      await store.decide(req.id, alice, 'approve', 'ok');
      const text = await (await res).text();
      const messages = text
        .split('\n\n')
        .filter((e) => e.startsWith('event: message'))
        .map((e) => JSON.parse(e.slice('event: message\ndata: '.length)));
      expect(messages).toEqual([
        { jsonrpc: '2.0', id: 9, error: expect.objectContaining({ code: expect.any(Number), message: expect.stringContaining('crm') }) },
      ]);
      expect(text).toContain('event: error');
    } finally {
      await proxy.close();
      store.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
