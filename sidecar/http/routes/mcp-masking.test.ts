// Masking on an MCP route end to end (issue 13, decision 7): the official SDK client through the
// route handler to the official SDK server, in SSE and JSON response modes. Tool results (text,
// structuredContent), progress and log notifications are masked before the agent sees them — also
// when the server's events reach the sidecar split across many TCP chunks; what the agent sends
// (tool arguments) is masked before the server sees it; and an answer that cannot be masked is
// refused, never passed.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { AccessPolicySpec } from '../../../common/policy/types';
import { startChunkingProxy, type ChunkingProxy } from '../../../test/support/mcp/chunking-proxy';
import { connectSdkClient, startMcpProxy, type McpProxy } from '../../../test/support/mcp/mcp-proxy';
import { CUSTOMER_CARD, CUSTOMER_EMAIL, CUSTOMER_SSN, startMcpFixture, type McpFixture } from '../../../test/support/mcp/mcp-server';

const AGENT_MAIL = 'bob.jones@example.org';

function spec(url: string): AccessPolicySpec {
  return {
    defaultAction: 'allow',
    targets: [{ name: 'crm', mcp: { url, timeout: '10s' } }],
    masking: [
      { name: 'pii', detectors: ['email', 'credit-card', 'us-ssn'], strategy: 'redact', direction: 'both' },
      { name: 'names', jsonPaths: ['$.customers[*].name'], strategy: 'redact' },
    ],
  };
}

type ToolResult = { content: Array<{ type: string; text?: string }>; structuredContent?: unknown; isError?: boolean };
const textOf = (r: unknown): string => (r as ToolResult).content.map((c) => c.text ?? '').join('');
const SECRETS = [CUSTOMER_EMAIL, CUSTOMER_CARD, CUSTOMER_SSN, '4111111111111111'];

function expectClean(value: unknown): void {
  const s = JSON.stringify(value);
  for (const secret of SECRETS) expect(s).not.toContain(secret);
}

describe.each([
  ['SSE', false],
  ['JSON', true],
])('MCP masking, SDK client and server, %s responses', (_mode, json) => {
  let fixture: McpFixture;
  let proxy: McpProxy;
  let client: Client;

  beforeAll(async () => {
    fixture = await startMcpFixture({ json });
    proxy = await startMcpProxy({ spec: spec(fixture.url) });
    client = await connectSdkClient(proxy.url('crm'));
  });
  afterAll(async () => {
    await client?.close();
    await proxy?.close();
    await fixture?.close();
  });

  it('masks a tool result: its text and its structuredContent (detectors and jsonPaths)', async () => {
    const r = await client.callTool({ name: 'search_customers', arguments: { query: 'Alice' } });
    expect(textOf(r)).toBe('Found Alice: email [REDACTED], card [REDACTED], ssn [REDACTED]');
    expect(r.structuredContent).toEqual({ customers: [{ name: '[REDACTED]', email: '[REDACTED]', card: '[REDACTED]' }] });
    expectClean(r);
  });

  it('records how many values were masked', async () => {
    const before = proxy.audits.length;
    await client.callTool({ name: 'search_customers', arguments: { query: 'Alice' } });
    const e = proxy.audits.slice(before).find((a) => a.mcp?.tool === 'search_customers')!;
    expect(e.decision).toBe('mask');
    expect(e.masked).toBe(6);
    expect(e.maskedBy).toEqual({ json: 6 });
  });

  it('masks the arguments the agent sends before the server sees them', async () => {
    const r = await client.callTool({ name: 'held_echo', arguments: { text: `write to ${AGENT_MAIL}` } });
    expect(textOf(r)).toBe('echo write to [REDACTED]');
    const sent = fixture.received.map((q) => JSON.stringify(q.body ?? null));
    expect(sent.some((s) => s.includes('"text":"write to [REDACTED]"'))).toBe(true);
    expect(sent.some((s) => s.includes(AGENT_MAIL))).toBe(false);
  });
});

describe('MCP masking of progress and log notifications on an event stream', () => {
  let fixture: McpFixture;
  let proxy: McpProxy;
  let client: Client;
  beforeAll(async () => {
    fixture = await startMcpFixture();
    proxy = await startMcpProxy({ spec: spec(fixture.url) });
    client = await connectSdkClient(proxy.url('crm'));
  });
  afterAll(async () => {
    await client?.close();
    await proxy?.close();
    await fixture?.close();
  });

  it('masks every notification the agent receives', async () => {
    const progress: string[] = [];
    const logs: unknown[] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params.data));
    const r = await client.callTool({ name: 'long_task', arguments: { steps: 2 } }, undefined, {
      onprogress: (p) => progress.push(String(p.message)),
    });
    expect(textOf(r)).toBe('done after 2 steps');
    expect(progress).toEqual(['step 1 for [REDACTED]', 'step 2 for [REDACTED]']);
    expect(logs).toEqual(['step 1 done, card [REDACTED]', 'step 2 done, card [REDACTED]']);
  });
});

describe('MCP masking when the server events arrive split across TCP chunks', () => {
  let fixture: McpFixture;
  let chunks: ChunkingProxy;
  let proxy: McpProxy;
  let client: Client;
  beforeAll(async () => {
    fixture = await startMcpFixture();
    chunks = await startChunkingProxy({ host: '127.0.0.1', port: fixture.port }, { pieceBytes: 5, pauseMs: 1 });
    proxy = await startMcpProxy({ spec: spec(chunks.url('/mcp')) });
    client = await connectSdkClient(proxy.url('crm'));
  });
  afterAll(async () => {
    await client?.close();
    await proxy?.close();
    await chunks?.close();
    await fixture?.close();
  });

  it('masks values split over many chunks, in results and notifications', async () => {
    const piecesBefore = chunks.pieces();
    const progress: string[] = [];
    const r = await client.callTool({ name: 'search_customers', arguments: { query: 'Alice' } });
    const long = await client.callTool({ name: 'long_task', arguments: { steps: 2 } }, undefined, {
      onprogress: (p) => progress.push(String(p.message)),
    });
    // A 19-character card number in 5-byte pieces spans at least four of them.
    expect(chunks.pieces() - piecesBefore).toBeGreaterThan(100);
    expect(textOf(r)).toBe('Found Alice: email [REDACTED], card [REDACTED], ssn [REDACTED]');
    expect(r.structuredContent).toEqual({ customers: [{ name: '[REDACTED]', email: '[REDACTED]', card: '[REDACTED]' }] });
    expect(progress).toEqual(['step 1 for [REDACTED]', 'step 2 for [REDACTED]']);
    expect(textOf(long)).toBe('done after 2 steps');
    expectClean([r, progress]);
  });
});

/** A raw MCP "server" answering every POST request with what the test gives it (JSON or one SSE event). */
async function rawServer(
  answer: (body: { id?: unknown }) => { type: string; text: string },
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as { id?: unknown };
      if (body.id === undefined) {
        res.writeHead(202).end();
        return;
      }
      const a = answer(body);
      res.writeHead(200, { 'content-type': a.type });
      res.end(a.text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('MCP answers that cannot be masked are refused, never passed', () => {
  const deep = `${'['.repeat(300)}"${CUSTOMER_EMAIL}"${']'.repeat(300)}`;
  const result = (id: unknown) => ({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: deep }] } });
  const call = JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'x', arguments: {} } });

  it.each([
    ['JSON', (b: { id?: unknown }) => ({ type: 'application/json', text: JSON.stringify(result(b.id)) })],
    ['SSE', (b: { id?: unknown }) => ({ type: 'text/event-stream', text: `event: message\ndata: ${JSON.stringify(result(b.id))}\n\n` })],
  ])('%s: a text nested too deep to mask', async (mode, answer) => {
    const server = await rawServer(answer);
    const proxy = await startMcpProxy({ spec: spec(server.url) });
    try {
      const res = await fetch(proxy.url('crm'), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-11-25',
        },
        body: call,
      });
      const text = await res.text();
      expect(text).not.toContain(CUSTOMER_EMAIL);
      if (mode === 'JSON') {
        expect(res.status).toBe(502);
        expect(JSON.parse(text).error.message).toMatch(/MCP server "crm" was refused: .*deeper than/);
      } else {
        expect(text).toContain('"id":5');
        expect(text).toMatch(/event: error/);
      }
    } finally {
      await proxy.close();
      await server.close();
    }
  });
});

describe("the server's own event stream (GET)", () => {
  it('is masked like any answer, message by message', async () => {
    const note = { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: `new customer ${CUSTOMER_EMAIL}` } };
    const ask = {
      jsonrpc: '2.0',
      id: 's-1',
      method: 'elicitation/create',
      params: { message: `Is ${CUSTOMER_CARD} yours?`, requestedSchema: {} },
    };
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // one event split over two writes, then another
      const first = `event: message\ndata: ${JSON.stringify(note)}\n\n`;
      res.write(first.slice(0, 60));
      setTimeout(() => {
        res.write(first.slice(60));
        res.end(`event: message\ndata: ${JSON.stringify(ask)}\n\n`);
      }, 20);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = await startMcpProxy({ spec: spec(`http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`) });
    try {
      const res = await fetch(proxy.url('crm'), { headers: { accept: 'text/event-stream', 'mcp-protocol-version': '2025-11-25' } });
      expect(res.status).toBe(200);
      const text = await res.text();
      const data = text
        .split('\n\n')
        .filter((e) => e.includes('data: '))
        .map((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6)));
      expect(data).toEqual([
        { ...note, params: { level: 'info', data: 'new customer [REDACTED]' } },
        { ...ask, params: { message: 'Is [REDACTED] yours?', requestedSchema: {} } },
      ]);
    } finally {
      await proxy.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
