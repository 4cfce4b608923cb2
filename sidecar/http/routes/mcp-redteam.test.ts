// Red-team attempts on the MCP route (issue 13): a hostile agent behind the sidecar and a hostile
// or compromised MCP server in front of it, trying to reach a denied tool, get unmasked PII out,
// or confuse the route. Every attack here is kept as a regression test: the ten that got through
// the first version (a UTF-7 charset, unmasked plumbing keys and SSE fields, envelope ids, repeated
// batch ids, request-side params, the forward proxy, the approver's display cut, non-UTF-8 blobs,
// shared pin state) were fixed with their test turned from `it.failing` into `it`.
//
// Upstreams: the official SDK server behind the SDK's own Express app (createMcpExpressApp, which
// reads bodies with express.json()), and a raw Node upstream that answers whatever a test asks.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { z } from 'zod';
import type { AccessPolicySpec, Identity } from '../../../common/policy/types';
import { createApprovalGate } from '../../approvals/gate';
import { LocalApprovalStore } from '../../approvals/local-store';
import type { ApprovalRequest } from '../../approvals/types';
import { startBehaviourUpstream, type BehaviourUpstream } from '../../../test/support/sidecar/behaviour-upstream';
import { startMcpProxy, type McpProxy } from '../../../test/support/mcp/mcp-proxy';
import { startSidecarFromFiles, type SidecarFromFiles } from '../../../test/support/sidecar/sidecar-fixture';

const EMAIL = 'alice.smith@example.com';
const CARD = '4111 1111 1111 1111';
const SSN = '123-45-6789';
const TOKEN = 'tok-RedTeamSecret-77aa-Q9';
const PII = [EMAIL, CARD, SSN, '4111111111111111'];

function expectNoPii(text: string): void {
  for (const p of PII) expect(text).not.toContain(p);
}

interface Answer {
  status: number;
  type: string;
  text: string;
}

async function post(url: string, body: string | Buffer, headers: Record<string, string> = {}, method = 'POST'): Promise<Answer> {
  const r = await request(url, {
    method: method as 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: method === 'GET' || method === 'DELETE' ? undefined : body,
  });
  return { status: r.statusCode, type: String(r.headers['content-type']), text: await r.body.text() };
}

const call = (id: number | string, name: string, args: unknown = {}): string =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

// ------------------------------------------------------------------------------------------------
// A hostile agent against the SDK server in its recommended Express app
// ------------------------------------------------------------------------------------------------

describe('hostile agent, SDK server behind createMcpExpressApp (express.json)', () => {
  let server: http.Server;
  let proxy: McpProxy;
  const ran: string[] = [];

  beforeAll(async () => {
    const app = createMcpExpressApp({ host: '127.0.0.1' });
    app.post('/mcp', async (req: http.IncomingMessage & { body?: unknown }, res: http.ServerResponse) => {
      const mcp = new McpServer({ name: 'redteam-tools', version: '1.0.0' });
      mcp.registerTool('search_customers', { description: 'Search', inputSchema: { query: z.string() } }, ({ query }) => {
        ran.push(`search_customers:${query}`);
        return { content: [{ type: 'text', text: `Found ${query}` }] };
      });
      mcp.registerTool('delete_customer', { description: 'Delete', inputSchema: { id: z.string() } }, ({ id }) => {
        ran.push(`delete_customer:${id}`);
        return { content: [{ type: 'text', text: `deleted ${id}` }] };
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => void transport.close());
      await mcp.connect(transport);
      await transport.handleRequest(req, res, req.body);
    });
    server = await new Promise<http.Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
    const spec: AccessPolicySpec = {
      defaultAction: 'allow',
      targets: [{ name: 'crm', mcp: { url } }],
      rules: [{ name: 'no-deletes', action: 'deny', match: { target: 'crm', mcp: { tools: ['delete_*'] } } }],
    };
    proxy = await startMcpProxy({ spec });
  });
  afterAll(async () => {
    await proxy?.close();
    server?.closeAllConnections();
    await new Promise<void>((r) => server?.close(() => r()));
  });
  beforeEach(() => {
    ran.length = 0;
  });

  it('the allowed tool runs and the denied one does not (baseline)', async () => {
    const ok = await post(proxy.url('crm'), call(1, 'search_customers', { query: 'Bob' }));
    expect(ok.text).toContain('Found Bob');
    const denied = await post(proxy.url('crm'), call(2, 'delete_customer', { id: '7' }));
    expect(denied.text).toContain('no-deletes');
    expect(ran).toEqual(['search_customers:Bob']);
  });

  // FINDING 1 (fixed: mcp-read.ts refuses any charset but UTF-8, 415): body-parser decodes the body in the charset the Content-Type names (any "utf-*"
  // iconv-lite knows, UTF-7 included); the sidecar judges the bytes as UTF-8. In UTF-7 "+AF8-" is
  // "_", so the sidecar sees a call of "delete+AF8-customer" (no rule matches, default allow) and
  // the server runs delete_customer.
  it.each([
    ['utf-7', 'delete+AF8-customer'],
    ['UTF-7', 'delete+AF8-customer'],
    ['utf-7-imap', 'delete&AF8-customer'],
  ])('a body declared as charset=%s does not smuggle a denied tool name past the judge', async (charset, name) => {
    const a = await post(proxy.url('crm'), call(3, name, { id: '42' }), { 'content-type': `application/json; charset=${charset}` });
    expect(ran).toEqual([]);
    expect(a.text).not.toContain('deleted 42');
  });

  it('a body declared as UTF-16 is refused before the server (it cannot be strict UTF-8 JSON too)', async () => {
    const body = Buffer.from(call(4, 'delete_customer', { id: '43' }), 'utf16le');
    const a = await post(proxy.url('crm'), body, { 'content-type': 'application/json; charset=utf-16le' });
    expect(a.status).toBe(415); // any charset but UTF-8 is refused (mcp-read.ts)
    expect(ran).toEqual([]);
  });

  it.each([
    ['method casing', '{"jsonrpc":"2.0","id":5,"method":"Tools/Call","params":{"name":"delete_customer","arguments":{"id":"1"}}}'],
    ['tool name casing', call(6, 'Delete_Customer', { id: '1' })],
    ['a trailing space in the name', call(7, 'delete_customer ', { id: '1' })],
    ['a fullwidth letter', call(8, 'ｄelete_customer', { id: '1' })],
    ['a tools/call notification', '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_customer","arguments":{"id":"1"}}}'],
    [
      'a tools/call inside a batch with an allowed call',
      `[${call(9, 'search_customers', { query: 'x' })},${call(10, 'delete_customer', { id: '1' })}]`,
    ],
    [
      'a tools/call inside a client response',
      '{"jsonrpc":"2.0","id":11,"result":{},"method":"tools/call","params":{"name":"delete_customer"}}',
    ],
    ['a null id', '{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"delete_customer","arguments":{"id":"1"}}}'],
    ['an id of 1e400', '{"jsonrpc":"2.0","id":1e400,"method":"tools/call","params":{"name":"delete_customer","arguments":{"id":"1"}}}'],
    ['a params array', '{"jsonrpc":"2.0","id":12,"method":"tools/call","params":["delete_customer",{"id":"1"}]}'],
    ['jsonrpc "2.00"', '{"jsonrpc":"2.00","id":13,"method":"tools/call","params":{"name":"delete_customer","arguments":{"id":"1"}}}'],
    [
      'a name in a nested escape',
      '{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"\\u0064elete\\u005Fcustomer","arguments":{"id":"1"}}}',
    ],
    ['a BOM before the body', '\ufeff' + call(15, 'delete_customer', { id: '1' })],
    ['trailing garbage', call(16, 'delete_customer', { id: '1' }) + ' x'],
    ['two concatenated messages', call(17, 'search_customers', { query: 'x' }) + call(18, 'delete_customer', { id: '1' })],
  ])('%s never runs the denied tool', async (_what, body) => {
    await post(proxy.url('crm'), body);
    expect(ran.filter((r) => r.startsWith('delete_customer'))).toEqual([]);
  });

  it.each([
    ['long s in an argument key (Go reads databa\u017fe as database)', '{"database":"dev","databa\u017fe":"prod","sql":"x"}'],
    ['a Kelvin sign in a key', '{"id":"1","\u212a":"1","k":"2"}'],
    ['long s in "arguments"', null],
  ])('refuses keys that fold together under Unicode simple folding: %s', async (_what, args) => {
    const body =
      args === null
        ? '{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"search_customers","arguments":{"query":"a"},"argument\u017f":{"query":"b"}}}'
        : `{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"search_customers","arguments":${args}}}`;
    const a = await post(proxy.url('crm'), body);
    expect(a.status).toBe(400);
    expect(ran).toEqual([]);
  });

  it.each([
    ['text/plain', 'text/plain'],
    ['a charset the server cannot read', 'application/json; charset=latin1'],
    ['a duplicated charset parameter', 'application/json; charset=utf-8; charset=utf-7'],
    ['a quoted utf-8 charset', 'application/json; charset="utf-8"'],
    ['UTF-8 in upper case', 'application/json; charset=UTF-8'],
  ])('a UTF-7 spelled name with a Content-Type of %s does not run the denied tool', async (_what, type) => {
    await post(proxy.url('crm'), call(19, 'delete+AF8-customer', { id: '1' }), { 'content-type': type });
    expect(ran).toEqual([]);
  });

  it.each([
    ['a path suffix', '/extra'],
    ['an encoded slash suffix', '%2Fextra'],
  ])('%s after the target is not an endpoint', async (_what, suffix) => {
    const a = await post(proxy.url('crm') + suffix, call(20, 'delete_customer', { id: '1' }));
    expect(a.status).toBeGreaterThanOrEqual(400);
    expect(ran).toEqual([]);
  });

  it('a dot segment back to the target is still judged (the client resolves it)', async () => {
    const a = await post(proxy.url('crm') + '/../crm', call(20, 'delete_customer', { id: '1' }));
    expect(a.text).toContain('no-deletes');
    expect(ran).toEqual([]);
  });

  it('a query string is not forwarded and does not change the judgement', async () => {
    await post(proxy.url('crm') + '?name=search_customers', call(21, 'delete_customer', { id: '1' }));
    expect(ran).toEqual([]);
  });

  it.each(['PUT', 'PATCH', 'OPTIONS'])('%s with a body is refused', async (method) => {
    const a = await post(proxy.url('crm'), call(22, 'delete_customer', { id: '1' }), {}, method);
    expect(a.status).toBe(405);
    expect(ran).toEqual([]);
  });

  it('a GET carrying a tools/call body is refused', async () => {
    const r = await request(proxy.url('crm'), {
      method: 'GET',
      headers: { accept: 'text/event-stream', 'content-length': String(call(23, 'delete_customer').length) },
      body: call(23, 'delete_customer', { id: '1' }),
    }).catch(() => undefined);
    if (r) {
      expect(r.statusCode).toBeGreaterThanOrEqual(400);
      await r.body.text();
    }
    expect(ran).toEqual([]);
  });

  it('X-HTTP-Method-Override does not turn a GET into a POST', async () => {
    const a = await post(proxy.url('crm'), '', { 'x-http-method-override': 'POST' }, 'GET');
    expect(a.status).not.toBe(200);
    expect(ran).toEqual([]);
  });

  it('a chunked body (no Content-Length) is judged the same', async () => {
    const body = call(24, 'delete_customer', { id: '1' });
    const r = await request(proxy.url('crm'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: Readable.from([Buffer.from(body.slice(0, 40)), Buffer.from(body.slice(40))]),
    });
    const text = await r.body.text();
    expect(text).toContain('no-deletes');
    expect(ran).toEqual([]);
  });
});

// ------------------------------------------------------------------------------------------------
// A hostile (or compromised, or just careless) server against the masking and the list filter
// ------------------------------------------------------------------------------------------------

describe('hostile server: every string the agent gets is masked', () => {
  let upstream: BehaviourUpstream;
  let proxy: McpProxy;
  const NAMES = ['t'];

  beforeAll(async () => {
    upstream = await startBehaviourUpstream();
    const spec: AccessPolicySpec = {
      defaultAction: 'allow',
      targets: NAMES.map((n) => ({ name: n, mcp: { url: `http://127.0.0.1:${upstream.port}/${n}`, credentialsSecret: 'tools' } })),
      rules: [{ name: 'no-deletes', action: 'deny', match: { mcp: { tools: ['delete_*'] } } }],
      masking: [{ name: 'pii', detectors: ['email', 'credit-card', 'us-ssn'], strategy: 'redact', direction: 'both' }],
    };
    proxy = await startMcpProxy({ spec, secrets: { tools: { token: TOKEN } } });
  });
  afterAll(async () => {
    await proxy?.close();
    await upstream?.close();
  });
  afterEach(() => upstream.behaviours.clear());

  const json =
    (msg: unknown, status = 200) =>
    (_req: http.IncomingMessage, _b: Buffer, res: http.ServerResponse) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(msg));
    };
  const sse = (text: string) => (_req: http.IncomingMessage, _b: Buffer, res: http.ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(text);
  };

  // FINDING 2: mask-messages.ts keeps "plumbing" keys at the top of EVERY payload unmasked
  // (nextCursor, cursor, protocolVersion, progressToken, requestId) — in a tool result, an error
  // object, any notification's params — and `_meta.progressToken` under any payload. A server
  // puts PII there (a cursor that is the last row's email, or any extra key with that name) and
  // the agent reads it unmasked.
  it.each([
    ['a tool result nextCursor', { result: { content: [{ type: 'text', text: 'ok' }], nextCursor: EMAIL } }],
    ['a tools/list nextCursor', { result: { tools: [], nextCursor: `last=${EMAIL}` } }],
    ['a requestId in a tool result', { result: { content: [], requestId: SSN } }],
    ['a cursor in an error object', { error: { code: -32000, message: 'failed', cursor: CARD } }],
    ['a protocolVersion in an error object', { error: { code: -32000, message: 'failed', protocolVersion: SSN } }],
    ['a _meta.progressToken in a result', { result: { content: [], _meta: { progressToken: EMAIL } } }],
  ])('masks PII in %s', async (_what, payload) => {
    upstream.behaviours.set('t', json({ jsonrpc: '2.0', id: 1, ...payload }));
    const a = await post(proxy.url('t'), call(1, 'search_customers', {}));
    expect(a.status).toBe(200);
    expectNoPii(a.text);
  });

  // FINDING 3 (fixed: ids masked, retry only as a short delay, other event types dropped): in an event stream, the `id:`, `event:` and `retry:` fields of each event are
  // re-emitted as the server sent them (mcp-respond.ts serializeEventFields); only `data` goes
  // through the hooks. PII (or anything) in those fields reaches the agent unmasked.
  it.each([
    ['an id: field', `id: ${EMAIL}\nevent: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n`],
    ['an event: field', `event: ${SSN}\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n`],
    ['a retry: field', `retry: ${CARD}\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n`],
    ['an id: field of an event without data', `id: ${EMAIL}\n\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n`],
  ])('masks PII in %s of an event', async (_what, text) => {
    upstream.behaviours.set('t', sse(text));
    const a = await post(proxy.url('t'), call(1, 'search_customers', {}));
    expect(a.status).toBe(200);
    expectNoPii(a.text);
  });

  // FINDING 4: the `id` and `method` of server→client messages are never masked (ENVELOPE keys):
  // a server request or notification can carry PII in its method name or its id, and a response
  // in an id the agent never sent.
  it.each([
    ['a server request id', `data: {"jsonrpc":"2.0","id":"${EMAIL}","method":"sampling/createMessage","params":{}}\n\n`],
    ['a notification method', `data: {"jsonrpc":"2.0","method":"notifications/${SSN}","params":{}}\n\n`],
    ['the id of a response to no request', `data: {"jsonrpc":"2.0","id":"${EMAIL}","result":{}}\n\n`],
  ])('masks PII in %s', async (_what, text) => {
    upstream.behaviours.set('t', sse(text + 'data: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n'));
    const a = await post(proxy.url('t'), call(1, 'search_customers', {}));
    expectNoPii(a.text);
  });

  it.each([
    ['CR line endings', `event: message\rdata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${EMAIL}"}]}}\r\r`],
    [
      'CRLF line endings',
      `event: message\r\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${EMAIL}"}]}}\r\n\r\n`,
    ],
    ['a comment', `: ${SSN}\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n`],
    ['an unknown field', `x-leak: ${SSN}\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n`],
    ['a field without a colon', `${EMAIL}\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n`],
    [
      'a message split over data lines',
      `data: {"jsonrpc":"2.0","id":1,\ndata: "result":{"content":[{"type":"text","text":"${EMAIL.slice(0, 5)}\ndata: ${EMAIL.slice(5)}"}]}}\n\n`,
    ],
    ['data: without a space', `data:{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${CARD}"}]}}\n\n`],
    ['a BOM at the start of the stream', `\ufeffdata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${SSN}"}]}}\n\n`],
    ['a BOM inside data', `data: \ufeff{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${SSN}"}]}}\n\n`],
    [
      'a sampling request',
      `data: {"jsonrpc":"2.0","id":9,"method":"sampling/createMessage","params":{"messages":[{"role":"user","content":{"type":"text","text":"${EMAIL}"}}]}}\n\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n`,
    ],
    [
      'an elicitation request',
      `data: {"jsonrpc":"2.0","id":9,"method":"elicitation/create","params":{"message":"confirm ${SSN}","requestedSchema":{"type":"object","properties":{}}}}\n\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n`,
    ],
    ['error.data', `data: {"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"x","data":{"row":"${CARD}"}}}\n\n`],
    ['error.message', `data: {"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"no ${EMAIL}"}}\n\n`],
    ['_meta', `data: {"jsonrpc":"2.0","id":1,"result":{"content":[],"_meta":{"who":"${EMAIL}"}}}\n\n`],
    ['an object key', `data: {"jsonrpc":"2.0","id":1,"result":{"content":[],"structuredContent":{"${EMAIL}":1}}}\n\n`],
    ['a number', `data: {"jsonrpc":"2.0","id":1,"result":{"content":[],"structuredContent":{"card":4111111111111111}}}\n\n`],
    [
      'an escaped email',
      `data: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"alice.smith\\u0040example.com"}]}}\n\n`,
    ],
    [
      'a resource blob',
      `data: {"jsonrpc":"2.0","id":1,"result":{"contents":[{"uri":"x://1","blob":"${Buffer.from(`ssn ${SSN}`).toString('base64')}"}]}}\n\n`,
    ],
    [
      'a JSON text holding a string JSON text',
      `data: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":${JSON.stringify(JSON.stringify({ a: JSON.stringify({ e: EMAIL }) }))}}]}}\n\n`,
    ],
  ])('masks or drops PII in %s', async (_what, text) => {
    upstream.behaviours.set('t', sse(text));
    const a = await post(proxy.url('t'), call(1, 'search_customers', {}));
    expectNoPii(a.text);
    expect(a.text).not.toContain(Buffer.from(`ssn ${SSN}`).toString('base64'));
  });

  // FINDING 6: request-direction masking (maskClientMessage) only looks at tools/call and
  // prompts/get `arguments` and completion values; everything else the agent sends a server in a
  // request — `params._meta`, any other params key, the params of a method it makes up — reaches
  // the server unmasked, so PII the agent holds can be exfiltrated to the MCP server.
  it.each([
    [
      'tools/call params._meta',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_customers","arguments":{},"_meta":{"note":"EMAIL"}}}',
    ],
    [
      'another tools/call params key',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_customers","extra":"EMAIL"}}',
    ],
    ['a made-up method', '{"jsonrpc":"2.0","id":1,"method":"x/exfil","params":{"data":"EMAIL"}}'],
    [
      'initialize clientInfo',
      '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"EMAIL","version":"1"}}}',
    ],
  ])('masks PII the agent sends in %s', async (_what, body) => {
    upstream.behaviours.set('t', json({ jsonrpc: '2.0', id: 1, result: {} }));
    const before = upstream.seen.length;
    await post(proxy.url('t'), body.replace('EMAIL', EMAIL));
    const sent = upstream.seen
      .slice(before)
      .map((q) => q.body)
      .join('');
    expect(sent).not.toContain(EMAIL);
  });

  it('masks PII the agent sends in tools/call arguments and in its answer to a server request', async () => {
    upstream.behaviours.set('t', json({ jsonrpc: '2.0', id: 1, result: {} }));
    const before = upstream.seen.length;
    await post(proxy.url('t'), call(1, 'search_customers', { query: EMAIL, nested: [{ card: CARD }] }));
    await post(proxy.url('t'), `{"jsonrpc":"2.0","id":"s1","result":{"role":"assistant","content":{"type":"text","text":"${SSN}"}}}`);
    const sent = upstream.seen
      .slice(before)
      .map((q) => q.body)
      .join('');
    expect(sent).toContain('search_customers');
    for (const p of PII) expect(sent).not.toContain(p);
  });

  it("replaces the agent's own credentials with the target's", async () => {
    upstream.behaviours.set('t', json({ jsonrpc: '2.0', id: 1, result: {} }));
    const before = upstream.seen.length;
    await post(proxy.url('t'), call(1, 'search_customers', {}), {
      authorization: 'Bearer agent-own',
      'proxy-authorization': 'Basic YWdlbnQ6eA==',
    });
    const q = upstream.seen[before];
    expect(q.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(q.headers['proxy-authorization']).toBeUndefined();
  });

  // FINDING 9: a `blob` that is not UTF-8 is passed as it is (only the base64 text meets the
  // detectors), whatever its mimeType says. A text resource in UTF-16 (Excel's "Unicode text"
  // CSV export, with its BOM) or gzip-compressed carries the PII to the agent unmasked, though the
  // sidecar could tell from the mimeType that it is text it cannot read (fail closed: refuse).
  it.each([
    ['a UTF-16LE CSV', 'text/csv', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`name,email\nAlice,${EMAIL}\n`, 'utf16le')])],
    ['a UTF-16LE text without a BOM', 'text/plain', Buffer.from(`email ${EMAIL}`, 'utf16le')],
    ['a gzip-compressed JSON', 'application/json', gzipSync(JSON.stringify({ email: EMAIL }))],
  ])('does not pass PII in a resource blob holding %s', async (_what, mimeType, bytes) => {
    const blob = bytes.toString('base64');
    upstream.behaviours.set('t', json({ jsonrpc: '2.0', id: 1, result: { contents: [{ uri: 'file:///export.csv', mimeType, blob }] } }));
    const a = await post(proxy.url('t'), '{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///export.csv"}}');
    expect(a.text).not.toContain(blob);
  });

  it('masks a JSON body answered with 202', async () => {
    upstream.behaviours.set('t', json({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: EMAIL }] } }, 202));
    const a = await post(proxy.url('t'), call(1, 'search_customers', {}));
    expectNoPii(a.text);
  });

  it('withholds a 202 body that is not JSON', async () => {
    upstream.behaviours.set('t', (_req, _b, res) => {
      res.writeHead(202, { 'content-type': 'text/plain' });
      res.end(`leak ${EMAIL}`);
    });
    const a = await post(proxy.url('t'), '{"jsonrpc":"2.0","method":"notifications/initialized"}');
    expectNoPii(a.text);
  });

  it('withholds a 202 body without a Content-Type', async () => {
    upstream.behaviours.set('t', (_req, _b, res) => {
      res.writeHead(202);
      res.end(`leak ${EMAIL}`);
    });
    const a = await post(proxy.url('t'), '{"jsonrpc":"2.0","method":"notifications/initialized"}');
    expectNoPii(a.text);
  });

  it.each([
    ['a JSON Content-Type variant', 'application/vnd.api+json'],
    ['upper case', 'APPLICATION/JSON; charset=UTF-8'],
    ['an event stream with parameters', 'text/event-stream; charset=utf-8'],
  ])('masks an answer with %s', async (_what, type) => {
    const msg = { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: EMAIL }] } };
    upstream.behaviours.set('t', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': type });
      res.end(type.includes('event-stream') ? `data: ${JSON.stringify(msg)}\n\n` : JSON.stringify(msg));
    });
    const a = await post(proxy.url('t'), call(1, 'search_customers', {}));
    expectNoPii(a.text);
  });

  it('masks a JSON answer whose body claims Content-Length 0 but sends chunks', async () => {
    upstream.behaviours.set('t', (_req, _b, res) => {
      // A lying server: no Content-Length, chunked, and a 200 with PII.
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.write('{"jsonrpc":"2.0","id":1,');
      res.end(`"result":{"content":[{"type":"text","text":"${EMAIL}"}]}}`);
    });
    const a = await post(proxy.url('t'), call(1, 'search_customers', {}));
    expectNoPii(a.text);
  });

  it('masks response headers and scrubs the token from them', async () => {
    upstream.behaviours.set('t', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-customer': EMAIL, 'x-debug': `auth ${TOKEN}` });
      res.end('{"jsonrpc":"2.0","id":1,"result":{"content":[]}}');
    });
    const r = await request(proxy.url('t'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: call(1, 'search_customers', {}),
    });
    await r.body.text();
    expect(JSON.stringify(r.headers)).not.toContain(TOKEN);
    expectNoPii(JSON.stringify(r.headers));
  });

  it('scrubs the token echoed in a JSON text, an escaped string and an SSE field', async () => {
    const escaped = TOKEN.replace('R', '\\u0052');
    upstream.behaviours.set(
      't',
      sse(`id: ${TOKEN}\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${escaped} and ${TOKEN}"}]}}\n\n`),
    );
    const a = await post(proxy.url('t'), call(1, 'search_customers', {}));
    expect(a.text).not.toContain(TOKEN);
  });

  it('masks a GET stream (server requests on it too)', async () => {
    upstream.behaviours.set(
      't',
      sse(`data: {"jsonrpc":"2.0","id":"s1","method":"elicitation/create","params":{"message":"${EMAIL}","requestedSchema":{}}}\n\n`),
    );
    const a = await post(proxy.url('t'), '', { accept: 'text/event-stream' }, 'GET');
    expectNoPii(a.text);
  });

  it('masks the JSON answer to a DELETE', async () => {
    upstream.behaviours.set('t', json({ jsonrpc: '2.0', id: null, error: { code: -1, message: EMAIL } }));
    const a = await post(proxy.url('t'), '', {}, 'DELETE');
    expectNoPii(a.text);
  });
});

// ------------------------------------------------------------------------------------------------
// The list filter, fooled by ids
// ------------------------------------------------------------------------------------------------

describe('hostile agent: the tools/list filter and request ids', () => {
  let upstream: BehaviourUpstream;
  let proxy: McpProxy;
  const TOOLS = [
    { name: 'search_customers', inputSchema: { type: 'object' } },
    { name: 'delete_customer', inputSchema: { type: 'object' } },
  ];

  beforeAll(async () => {
    upstream = await startBehaviourUpstream();
    // A server that still takes batches (as pre-2025-06-18 servers do) and answers each message.
    upstream.behaviours.set('b', (_req, body, res) => {
      const doc = JSON.parse(body.toString('utf8')) as unknown;
      const msgs = (Array.isArray(doc) ? doc : [doc]) as Array<{ id?: unknown; method: string }>;
      const out = msgs
        .filter((m) => m.id !== undefined)
        .map((m) => ({ jsonrpc: '2.0', id: m.id, result: m.method === 'tools/list' ? { tools: TOOLS } : {} }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(Array.isArray(doc) ? out : out[0]));
    });
    const spec: AccessPolicySpec = {
      defaultAction: 'allow',
      targets: [
        { name: 'b', mcp: { url: `http://127.0.0.1:${upstream.port}/b` } },
        { name: 'g', mcp: { url: `http://127.0.0.1:${upstream.port}/g` } },
      ],
      rules: [{ name: 'no-deletes', action: 'deny', match: { mcp: { tools: ['delete_*'] } } }],
    };
    proxy = await startMcpProxy({ spec });
  });
  afterAll(async () => {
    await proxy?.close();
    await upstream?.close();
  });

  it('hides the denied tool from a plain listing (baseline)', async () => {
    const a = await post(proxy.url('b'), '{"jsonrpc":"2.0","id":1,"method":"tools/list"}');
    expect(a.text).toContain('search_customers');
    expect(a.text).not.toContain('delete_customer');
  });

  it('hides it in a batched listing', async () => {
    const a = await post(proxy.url('b'), '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"ping"}]');
    expect(a.text).toContain('search_customers');
    expect(a.text).not.toContain('delete_customer');
  });

  it.each([
    ['a GET stream', 'GET'],
    ['the stream of a POST that asked for something else', 'POST'],
  ])('filters a tools/list answer the server sends on %s (an id this request never sent)', async (_what, method) => {
    upstream.behaviours.set('g', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        `data: ${JSON.stringify({ jsonrpc: '2.0', id: 77, result: { tools: TOOLS } })}\n\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n`,
      );
    });
    const a = await post(
      proxy.url('g'),
      '{"jsonrpc":"2.0","id":1,"method":"ping"}',
      { accept: 'application/json, text/event-stream' },
      method,
    );
    expect(a.text).toContain('search_customers');
    expect(a.text).not.toContain('delete_customer');
  });

  // FINDING 5 (fixed: a batch repeating a request id, as JavaScript reads ids, is refused): mcp-read.ts records the method of each request by id (requestMethods), last one
  // wins, and accepts a batch whose requests repeat an id. The tools/list answer then looks like
  // the answer to `ping`, so the tools-list hook neither filters it nor checks pins.
  it('a batch repeating an id does not make the tools/list answer pass unfiltered', async () => {
    const a = await post(proxy.url('b'), '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":1,"method":"ping"}]');
    expect(a.text).not.toContain('delete_customer');
  });

  it('ids beyond 2^53 that JavaScript reads as one id do not either', async () => {
    const a = await post(
      proxy.url('b'),
      '[{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/list"},{"jsonrpc":"2.0","id":9007199254740992,"method":"ping"}]',
    );
    expect(a.text).not.toContain('delete_customer');
  });

  it('ids 1 and 1.0 (the same id once parsed) do not either', async () => {
    const a = await post(proxy.url('b'), '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":1.0,"method":"ping"}]');
    expect(a.text).not.toContain('delete_customer');
  });
});

// ------------------------------------------------------------------------------------------------
// Around the route: the MCP server's URL through the sidecar's own forward proxy
// ------------------------------------------------------------------------------------------------

describe('hostile agent: the MCP server through the forward proxy (HTTP_PROXY) instead of its route', () => {
  let upstream: BehaviourUpstream;
  let started: SidecarFromFiles;

  beforeAll(async () => {
    upstream = await startBehaviourUpstream();
    upstream.behaviours.set('mcp', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: `deleted; owner ${EMAIL}` }] } }));
    });
    started = await startSidecarFromFiles({
      policy: `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: mcp-red, namespace: agents}
spec:
  defaultAction: allow
  targets:
    - name: crm
      mcp: {url: "http://127.0.0.1:${upstream.port}/mcp", timeout: 5s}
  rules:
    - name: no-deletes
      action: deny
      match: {target: crm, mcp: {tools: ["delete_*"]}}
  masking:
    - name: pii
      detectors: [email]
      strategy: redact
`,
      secrets: {},
    });
  });
  afterAll(async () => {
    await started?.close();
    await upstream?.close();
  });

  const viaProxy = (path: string, body: string): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const egress = new URL(started.egress);
      const req = http.request(
        {
          host: egress.hostname,
          port: egress.port,
          method: 'POST',
          path,
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  it('the route denies the call (baseline)', async () => {
    const before = upstream.seen.length;
    const a = await viaProxy('/crm', call(1, 'delete_customer', { id: '1' }));
    expect(a.text).toContain('no-deletes');
    expect(upstream.seen.length).toBe(before);
  });

  // FINDING 7 (fixed: forward/mcp-origin.ts denies an MCP target's origin on the forward proxy): the forward proxy judges an absolute-form request to the MCP server's own URL as
  // plain HTTP egress (target '', no MCP rule applies), so with defaultAction allow the agent
  // reaches the server around every MCP rule, list filter and pin (it lacks only the injected
  // credential, which an unauthenticated server does not need).
  it('an absolute-form request to the MCP server URL is not a way around the MCP rules', async () => {
    const before = upstream.seen.length;
    await viaProxy(`http://127.0.0.1:${upstream.port}/mcp`, call(1, 'delete_customer', { id: '1' }));
    expect(upstream.seen.slice(before).map((q) => q.body)).toEqual([]);
  });
});

// ------------------------------------------------------------------------------------------------
// Holds: what the approver sees, and what one approval releases
// ------------------------------------------------------------------------------------------------

describe('hostile agent: held calls', () => {
  let upstream: BehaviourUpstream;
  let proxy: McpProxy;
  let store: LocalApprovalStore;
  const approver: Identity = { subject: 'alice', groups: ['sre'], source: 'token' };

  beforeAll(async () => {
    upstream = await startBehaviourUpstream();
    upstream.behaviours.set('h', (_req, body, res) => {
      const m = JSON.parse(body.toString('utf8')) as { id: number };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'ran' }] } }));
    });
    store = new LocalApprovalStore();
    const spec: AccessPolicySpec = {
      defaultAction: 'allow',
      targets: [{ name: 'h', mcp: { url: `http://127.0.0.1:${upstream.port}/h`, timeout: '10s' } }],
      rules: [
        {
          name: 'prod-needs-approval',
          action: 'hold',
          approval: { approvers: { groups: ['sre'] }, timeout: '1m' },
          match: { target: 'h', mcp: { tools: ['run_query'], arguments: [{ path: '$.database', values: ['prod'] }] } },
        },
      ],
    };
    proxy = await startMcpProxy({ spec, extra: { mcpApprovals: createApprovalGate(store), mcpHeartbeatMs: 50 } });
  });
  afterAll(async () => {
    await proxy?.close();
    await upstream?.close();
    store?.close();
  });

  async function pendingOne(): Promise<ApprovalRequest> {
    for (let i = 0; i < 500; i++) {
      const p = await store.list({ state: 'pending' });
      if (p.length > 0) return p[0];
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('no pending approval request');
  }
  const runs = (): number => upstream.seen.filter((q) => q.body.includes('run_query')).length;

  it('two identical held calls need two approvals; one approval runs one call once', async () => {
    const before = runs();
    const args = { database: 'prod', sql: 'DELETE FROM t' };
    const first = post(proxy.url('h'), call(1, 'run_query', args), { accept: 'application/json' });
    const a = await pendingOne();
    const second = post(proxy.url('h'), call(1, 'run_query', args), { accept: 'application/json' });
    let b: ApprovalRequest | undefined;
    for (let i = 0; i < 500 && !b; i++) {
      b = (await store.list({ state: 'pending' })).find((r) => r.id !== a.id);
      if (!b) await new Promise((r) => setTimeout(r, 10));
    }
    expect(b).toBeDefined();
    await store.decide(a.id, approver, 'approve', 'ok');
    expect((await first).text).toContain('ran');
    expect(runs() - before).toBe(1);
    await store.decide(b!.id, approver, 'deny', 'no');
    expect((await second).text).toContain('not approved');
    expect(runs() - before).toBe(1);
  });

  // O3 (the lead's decision at 13:27: bound and shown): params of the held call other than its
  // name and arguments are forwarded once approved, but neither shown to the approver nor bound
  // by the digest (approvals/operation.ts mcpDigest takes target, tool and arguments only).
  it('the approver sees the _meta the held call carries to the server', async () => {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 3,
      method: 'tools/call',
      params: { name: 'run_query', arguments: { database: 'prod', sql: 'SELECT 1' }, _meta: { dryRun: false, impersonate: 'root' } },
    });
    const p = post(proxy.url('h'), body, { accept: 'application/json' });
    const r = await pendingOne();
    const shown = r.operation.display;
    await store.decide(r.id, approver, 'deny', 'test over');
    await p;
    expect(shown).toContain('impersonate');
  });

  // FINDING 8: the approver sees the arguments as indented JSON cut at 2000 characters
  // (approvals/operation.ts mcpOperation). The agent orders the keys: a long harmless one first,
  // the statement that matters after the cut. The approver sees "… (N more characters)", and
  // `warden approvals list` / the ApprovalRequest have nothing more to show: approving means
  // approving text nobody could read.
  it('the approver can see every argument of the held call', async () => {
    const args = { note: 'routine maintenance '.repeat(120), database: 'prod', sql: 'DROP TABLE customers' };
    const p = post(proxy.url('h'), call(2, 'run_query', args), { accept: 'application/json' });
    const r = await pendingOne();
    const shown = r.operation.display;
    await store.decide(r.id, approver, 'deny', 'test over');
    await p;
    expect(shown).toContain('DROP TABLE customers');
  });
});

// ------------------------------------------------------------------------------------------------
// One caller against the others: the pin registry (trust on first listing) is kept per caller
// ------------------------------------------------------------------------------------------------

describe('hostile agent: flipping the pin state another caller is judged against', () => {
  let upstream: BehaviourUpstream;
  let proxy: McpProxy;

  beforeAll(async () => {
    upstream = await startBehaviourUpstream();
    // A server that localises its tool descriptions (any listing that depends on what the client sends works the same).
    upstream.behaviours.set('p', (req, body, res) => {
      const m = JSON.parse(body.toString('utf8')) as { id: number; method: string };
      const fr = String(req.headers['accept-language'] ?? '').startsWith('fr');
      const result =
        m.method === 'tools/list'
          ? {
              tools: [
                {
                  name: 'search_customers',
                  description: fr ? 'Chercher des clients' : 'Search customers',
                  inputSchema: { type: 'object' },
                },
              ],
            }
          : { content: [{ type: 'text', text: 'found' }] };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
    });
    proxy = await startMcpProxy({
      spec: {
        defaultAction: 'allow',
        targets: [
          { name: 'p', mcp: { url: `http://127.0.0.1:${upstream.port}/p` } },
          { name: 'long', mcp: { url: `http://127.0.0.1:${upstream.port}/long` } },
        ],
      },
      // two callers, each with its own JWT (the pin state is per caller: its identity's subject)
      extra: { verifyToken: (t) => Promise.resolve<Identity>({ subject: t, groups: [], source: 'token' }) },
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await upstream?.close();
  });

  // FINDING 10: ToolPins keeps ONE "current" definition per tool per target, updated by whichever
  // caller listed last (pins.ts observe), and every caller's tools/call is checked against it.
  // When the listing depends on anything the agent sends (a header, the protocol version, the
  // session's state), one caller listing once makes the tool "changed" for every caller: their
  // calls are refused and the tool hidden until someone lists it the first way again.
  // Fixed: the state is per caller (pins.ts); a caller is judged against what IT was shown.
  const victim = { authorization: 'Bearer victim' };
  const hostile = { authorization: 'Bearer hostile' };
  const list = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}';

  it("one caller's listing does not get another caller's calls refused", async () => {
    expect((await post(proxy.url('p'), list, victim)).text).toContain('search_customers');
    expect((await post(proxy.url('p'), call(2, 'search_customers', {}), victim)).text).toContain('found');
    await post(proxy.url('p'), list, { ...hostile, 'accept-language': 'fr' }); // the hostile caller
    expect((await post(proxy.url('p'), call(3, 'search_customers', {}), victim)).text).toContain('found');
    expect((await post(proxy.url('p'), list, victim)).text).toContain('search_customers');
  });

  it('a caller whose own listing changed is refused and shown nothing, and the record names the caller', async () => {
    const me = { authorization: 'Bearer flipper' };
    expect((await post(proxy.url('p'), list, me)).text).toContain('search_customers');
    expect((await post(proxy.url('p'), list, { ...me, 'accept-language': 'fr' })).text).not.toContain('search_customers');
    const a = await post(proxy.url('p'), call(4, 'search_customers', {}), me);
    expect(a.text).not.toContain('found');
    expect(a.text).toContain('pinToolDefinitions');
    const rec = proxy.audits.filter((e) => e.rule === 'pinToolDefinitions').at(-1)!;
    expect(rec.identity.subject).toBe('flipper');
    // the others still call it
    expect((await post(proxy.url('p'), call(5, 'search_customers', {}), victim)).text).toContain('found');
  });

  // Observation O1: names were Map keys of any length, kept for the life of the process (10,000
  // tools of ~1 MB names: ~10 GB). A name over 128 characters (the MCP spec's SHOULD) is refused.
  it('a hostile server cannot make the sidecar keep tool names of any length', async () => {
    const name = `search_${'x'.repeat(200_000)}`;
    upstream.behaviours.set('long', (_req, body, res) => {
      const m = JSON.parse(body.toString('utf8')) as { id: number };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name, inputSchema: { type: 'object' } }] } }));
    });
    const a = await post(proxy.url('long'), list, victim);
    expect(a.status).toBe(502);
    expect(JSON.parse(a.text)).toMatchObject({ id: 1, error: { data: { type: 'unmaskable_response', target: 'long' } } });
    expect(a.text).toContain('128');
    expect(a.text).not.toContain('xxxxxxxx');
    // 128 characters pass
    upstream.behaviours.set('long', (_req, body, res) => {
      const m = JSON.parse(body.toString('utf8')) as { id: number };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'y'.repeat(128), inputSchema: { type: 'object' } }] } }),
      );
    });
    expect((await post(proxy.url('long'), list, victim)).text).toContain('y'.repeat(128));
  });
});

// ------------------------------------------------------------------------------------------------
// One caller against the others: long-lived streams on a shared HTTP/2 upstream session
// ------------------------------------------------------------------------------------------------

describe('hostile agent: GET streams against an HTTP/2 MCP server with few concurrent streams', () => {
  let dir: string;
  let server: http2.Http2SecureServer;
  let proxy: McpProxy;
  let dispatcher: Agent;
  const open: http2.Http2ServerResponse[] = [];
  const versions: string[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-mcp-red-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
      ].concat(['-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')]),
      { stdio: 'ignore' },
    );
    const key = fs.readFileSync(path.join(dir, 'key.pem'));
    const cert = fs.readFileSync(path.join(dir, 'cert.pem'));
    server = http2.createSecureServer({ key, cert, settings: { maxConcurrentStreams: 4 } }, (req, res) => {
      if (req.method === 'GET') {
        // The server's event stream: open until the client goes.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        open.push(res);
        versions.push(req.httpVersion);
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const m = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: number };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'found' }] } }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    // The route's own Agent options (forward-upstream.ts UpstreamClients), trusting the test certificate.
    dispatcher = new Agent({ keepAliveTimeout: 30_000, allowH2: true, connect: { ca: cert, rejectUnauthorized: true } });
    proxy = await startMcpProxy({
      spec: { defaultAction: 'allow', targets: [{ name: 'h2', mcp: { url: `https://127.0.0.1:${port}/mcp`, timeout: '30s' } }] },
      extra: { dispatcher },
    });
  });
  afterAll(async () => {
    for (const r of open) r.stream.close();
    await proxy?.close();
    await dispatcher?.close();
    await new Promise<void>((r) => server?.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("another caller's call is answered while one caller holds as many GET streams as the server allows", async () => {
    const streams: Array<Awaited<ReturnType<typeof request>>> = [];
    for (let i = 0; i < 4; i++) streams.push(await request(proxy.url('h2'), { method: 'GET', headers: { accept: 'text/event-stream' } }));
    const victim = await Promise.race([
      post(proxy.url('h2'), call(1, 'search_customers', {})).then((a) => a.text),
      new Promise<string>((r) => setTimeout(() => r('stalled'), 3000)),
    ]);
    for (const s of streams) s.body.destroy();
    expect(open.length).toBe(4); // the attack was in place: 4 event streams held open over HTTP/2
    expect(versions.every((v) => v === '2.0')).toBe(true);
    expect(victim).toContain('found');
  });
});
