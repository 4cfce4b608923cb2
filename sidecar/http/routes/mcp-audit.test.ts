// The audit events of an MCP route (issue 13, decision 10): one per JSON-RPC message, with the MCP
// facts (method, tool, request id, session digest, protocol version, how the answer ended) and that
// message's own decision; batches give one event per message, the first carrying the request-wide
// parts. The SDK client and server are real; a batch is sent raw.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { AccessPolicySpec } from '../../../common/policy/types';
import { sessionDigest } from '../../mcp/audit-facts';
import { connectSdkClient, startMcpProxy, type McpProxy } from '../../../test/support/mcp/mcp-proxy';
import { startMcpFixture, type McpFixture } from '../../../test/support/mcp/mcp-server';

function spec(url: string): AccessPolicySpec {
  return {
    defaultAction: 'allow',
    targets: [{ name: 'crm', mcp: { url, timeout: '10s' } }],
    rules: [{ name: 'no-deletes', action: 'deny', match: { target: 'crm', mcp: { tools: ['delete_*'] } } }],
  };
}

describe('MCP audit events', () => {
  let fixture: McpFixture;
  let proxy: McpProxy;
  let client: Client;
  let session: string;

  beforeAll(async () => {
    fixture = await startMcpFixture();
    proxy = await startMcpProxy({ spec: spec(fixture.url) });
    client = await connectSdkClient(proxy.url('crm'));
    session = (client.transport as unknown as { sessionId: string }).sessionId;
  });
  afterAll(async () => {
    await client?.close();
    await proxy?.close();
    await fixture?.close();
  });

  it('one event per message, from initialize on', () => {
    expect(proxy.audits.map((a) => a.mcp?.method)).toEqual(['initialize', 'notifications/initialized']);
    expect(proxy.audits[0].mcp).toEqual({ method: 'initialize', requestId: '0' });
    // the session id is known from then on: recorded as a digest, never as itself
    expect(proxy.audits[1].mcp).toEqual({
      method: 'notifications/initialized',
      sessionId: sessionDigest(session),
      protocolVersion: '2025-11-25',
    });
    expect(JSON.stringify(proxy.audits)).not.toContain(session);
  });

  it('a call: its tool and request id; a denied one: the rule, and the tool error it was answered with', async () => {
    const before = proxy.audits.length;
    await client.callTool({ name: 'search_customers', arguments: { query: 'x' } });
    await client.callTool({ name: 'delete_customer', arguments: { id: '1' } });
    const [ok, denied] = proxy.audits.slice(before);
    expect(ok).toMatchObject({
      decision: 'allow',
      status: 200,
      mcp: { method: 'tools/call', tool: 'search_customers', requestId: expect.any(String) },
    });
    expect(ok.mcp!.toolError).toBeUndefined();
    expect(denied).toMatchObject({
      decision: 'deny',
      rule: 'no-deletes',
      mcp: { method: 'tools/call', tool: 'delete_customer', toolError: true },
    });
  });

  it("a server's JSON-RPC error is the answer's error code", async () => {
    const before = proxy.audits.length;
    await expect(client.readResource({ uri: 'crm://nothing' })).rejects.toThrow();
    const [e] = proxy.audits.slice(before);
    expect(e.mcp).toMatchObject({ method: 'resources/read', resource: 'crm://nothing', errorCode: expect.any(Number) });
  });

  it('a batch: one event per message, each its own span in the same trace', async () => {
    const before = proxy.audits.length;
    const res = await fetch(proxy.url('crm'), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': session,
        'mcp-protocol-version': '2025-11-25',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      },
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 'a', method: 'tools/list' },
        { jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'delete_customer', arguments: { id: '2' } } },
      ]),
    });
    await res.text();
    const events = proxy.audits.slice(before);
    expect(events.map((e) => [e.mcp?.method, e.mcp?.requestId, e.mcp?.batch, e.decision])).toEqual([
      ['tools/list', 'a', 2, 'allow'],
      ['tools/call', 'b', 2, 'deny'],
    ]);
    expect(events[0].trace.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(events[1].trace.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(events[1].trace.parentSpanId).toBe('00f067aa0ba902b7');
    expect(events[1].trace.spanId).not.toBe(events[0].trace.spanId);
    expect(events[0].mcp!.errorCode).toBe(-32002); // not sent: the batch held a denied message
  });

  it('a GET stream or DELETE is one allowed HTTP event without an mcp block', async () => {
    const before = proxy.audits.length;
    const c = await connectSdkClient(proxy.url('crm'));
    await (c.transport as unknown as { terminateSession(): Promise<void> }).terminateSession();
    await c.close();
    const del = proxy.audits.slice(before).find((a) => a.method === 'DELETE')!;
    expect(del.mcp).toBeUndefined();
    expect(del).toMatchObject({ decision: 'allow', reason: expect.stringContaining('MCP DELETE passes') });
    const get = proxy.audits.slice(before).find((a) => a.method === 'GET');
    if (get) expect(get.decision).toBe('allow');
  });
});
