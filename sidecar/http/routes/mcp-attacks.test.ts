// Attempts to get around the MCP route with raw HTTP (what an agent that does not use the SDK can
// send): batches, escaped names, duplicate and case-folded keys, encoding tricks, malformed
// JSON-RPC. Against the official SDK server in stateless mode, spoken to as the stateless
// 2026-07-28 revision (MCP-Protocol-Version header, no session). Each refusal is checked on the
// server's side too: nothing it refused reached the server.
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import type { AccessPolicySpec } from '../../../common/policy/types';
import { startMcpFixture, type McpFixture } from '../../../test/support/mcp/mcp-server';
import { startMcpProxy, type McpProxy } from '../../../test/support/mcp/mcp-proxy';
import { MAX_BATCH_MESSAGES } from '../stages/mcp-read';

const VERSION = '2026-07-28';

function spec(url: string): AccessPolicySpec {
  return {
    defaultAction: 'allow',
    targets: [{ name: 'crm', mcp: { url } }],
    rules: [
      { name: 'no-deletes', action: 'deny', match: { target: 'crm', mcp: { tools: ['delete_*'] } } },
      {
        name: 'prod-needs-approval',
        action: 'hold',
        match: { target: 'crm', mcp: { tools: ['run_query'], arguments: [{ path: '$.database', values: ['prod'] }] } },
      },
      { name: 'no-cancel', action: 'deny', match: { target: 'crm', mcp: { methods: ['notifications/cancelled'] } } },
    ],
  };
}

let fixture: McpFixture;
let proxy: McpProxy;

beforeAll(async () => {
  fixture = await startMcpFixture({ json: true, stateless: true, acceptVersion: VERSION });
  proxy = await startMcpProxy({ spec: spec(fixture.url) });
});
afterAll(async () => {
  await proxy?.close();
  await fixture?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

async function send(
  body: string | Buffer,
  opts: { method?: 'POST' | 'GET' | 'PUT'; accept?: string; path?: string } = {},
): Promise<Answer> {
  const r = await request(proxy.url('crm') + (opts.path ?? ''), {
    method: opts.method ?? 'POST',
    headers: {
      'content-type': 'application/json',
      accept: opts.accept ?? 'application/json, text/event-stream',
      'mcp-protocol-version': VERSION,
    },
    body: opts.method === 'GET' ? undefined : body,
  });
  const text = await r.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, headers: r.headers, text, json };
}

const call = (id: number, name: string, args: unknown = {}): string =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

/** Runs f and says how many HTTP requests reached the server meanwhile. */
async function reached(f: () => Promise<void>): Promise<number> {
  const before = fixture.received.length;
  await f();
  return fixture.received.length - before;
}

describe('stateless 2026-07-28 raw client', () => {
  it('lists tools (filtered) without a session, the version header passed as sent', async () => {
    const a = await send('{"jsonrpc":"2.0","id":1,"method":"tools/list"}');
    expect(a.status).toBe(200);
    const names = (a.json as { result: { tools: Array<{ name: string }> } }).result.tools.map((t) => t.name);
    expect(names).toContain('search_customers');
    expect(names).not.toContain('delete_customer');
    expect(a.headers['mcp-session-id']).toBeUndefined();
    const last = fixture.received[fixture.received.length - 1];
    expect(last.headers['mcp-protocol-version']).toBe(VERSION);
    expect(last.headers['mcp-session-id']).toBeUndefined();
  });

  it('calls an allowed tool', async () => {
    const a = await send(call(2, 'search_customers', { query: 'Bob' }));
    expect(a.json).toMatchObject({ id: 2, result: { content: [{ type: 'text', text: expect.stringMatching(/^Found Bob/) as string }] } });
  });
});

describe('judged as the server reads it', () => {
  it('judges an escaped tool name decoded', async () => {
    const body = '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete\\u005fcustomer","arguments":{"id":"1"}}}';
    let a: Answer | undefined;
    expect(await reached(async () => void (a = await send(body)))).toBe(0);
    expect(a!.status).toBe(200);
    expect(a!.json).toMatchObject({
      id: 3,
      result: { isError: true, content: [{ text: expect.stringContaining('rule "no-deletes"') as string }] },
    });
  });

  it.each([
    ['a repeated name', '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"search_customers","name":"delete_customer"}}'],
    [
      'a repeated name spelled with an escape',
      '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"search_customers","n\\u0061me":"delete_customer"}}',
    ],
    [
      'a case-folded repeated name',
      '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"search_customers","Name":"delete_customer"}}',
    ],
    ['a repeated argument', call(4, 'run_query').replace('{}', '{"database":"dev","database":"prod","sql":"x"}')],
    ['a repeated method', '{"jsonrpc":"2.0","id":4,"method":"tools/list","method":"tools/call","params":{"name":"delete_customer"}}'],
    ['a lone surrogate', '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"delete_customer\\ud800"}}'],
    [
      'a __proto__ key',
      '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"search_customers","__proto__":{"name":"delete_customer"}}}',
    ],
    ['not JSON', '{"jsonrpc":"2.0",'],
  ])('refuses %s with 400 and a parse error, sending nothing', async (_what, body) => {
    let a: Answer | undefined;
    expect(await reached(async () => void (a = await send(body)))).toBe(0);
    expect(a!.status).toBe(400);
    expect(a!.json).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32700, data: { type: 'parse_error' } } });
  });

  it('refuses invalid UTF-8 in a tool name', async () => {
    const body = Buffer.concat([
      Buffer.from('{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"delete_custome'),
      Buffer.from([0xf2]),
      Buffer.from('"}}'),
    ]);
    let a: Answer | undefined;
    expect(await reached(async () => void (a = await send(body)))).toBe(0);
    expect(a!.json).toMatchObject({ error: { code: -32700, message: expect.stringContaining('UTF-8') as string } });
  });

  it.each([
    ['jsonrpc 1.0', '{"jsonrpc":"1.0","id":6,"method":"tools/call","params":{"name":"delete_customer"}}'],
    ['a method that is not a string', '{"jsonrpc":"2.0","id":6,"method":["tools/call"],"params":{"name":"delete_customer"}}'],
    ['a tool name that is an array', '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":["delete_customer"]}}'],
  ])('refuses %s as an invalid request, sending nothing', async (_what, body) => {
    let a: Answer | undefined;
    expect(await reached(async () => void (a = await send(body)))).toBe(0);
    expect(a!.status).toBe(400);
    expect(a!.json).toMatchObject({ error: { code: -32600 } });
  });
});

describe('differential: the same bytes straight to the server', () => {
  async function direct(body: string): Promise<unknown> {
    const r = await request(fixture.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': VERSION },
      body,
    });
    return r.body.json();
  }

  it.each([
    ['an escaped name', '{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"delete\\u005fcustomer","arguments":{"id":"1"}}}'],
    [
      'a repeated name',
      '{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"search_customers","name":"delete_customer","arguments":{"id":"1"}}}',
    ],
  ])('%s deletes when sent straight to the server, and never through the sidecar', async (_what, body) => {
    expect(await direct(body)).toMatchObject({ id: 30, result: { content: [{ text: 'deleted 1' }] } });
    const calls = fixture.methods().filter((m) => m === 'tools/call:delete_customer').length;
    const a = await send(body);
    expect(a.json).toMatchObject({ id: a.status === 400 ? null : 30 });
    expect(fixture.methods().filter((m) => m === 'tools/call:delete_customer')).toHaveLength(calls);
  });
});

describe('batches', () => {
  it('sends nothing of a batch holding a denied call, and answers each request', async () => {
    const body = `[${call(10, 'search_customers', { query: 'a' })},${call(11, 'delete_customer', { id: '1' })},{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}]`;
    let a: Answer | undefined;
    expect(await reached(async () => void (a = await send(body)))).toBe(0);
    expect(a!.status).toBe(200);
    const answers = a!.json as Array<{ id: number; error?: { code: number }; result?: { isError: boolean } }>;
    expect(answers.map((m) => m.id)).toEqual([10, 11]);
    expect(answers[0].error?.code).toBe(-32002);
    expect(answers[1].result?.isError).toBe(true);
  });

  it('sends nothing of a batch holding a call that needs approval', async () => {
    const body = `[${call(12, 'run_query', { database: 'prod', sql: 'drop table x' })}]`;
    let a: Answer | undefined;
    expect(await reached(async () => void (a = await send(body)))).toBe(0);
    expect((a!.json as Array<{ result: { content: Array<{ text: string }> } }>)[0].result.content[0].text).toContain('prod-needs-approval');
  });

  it('judges the escaped name inside a batch too', async () => {
    const body = `[${call(13, 'search_customers')},{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"\\u0064elete_customer"}}]`;
    expect(await reached(async () => void (await send(body)))).toBe(0);
  });

  it('forwards a batch of allowed messages unchanged', async () => {
    const body = `[${call(15, 'search_customers', { query: 'a' })},${call(16, 'get_weather', { city: 'Oslo' })}]`;
    expect(await reached(async () => void (await send(body)))).toBe(1);
    expect(fixture.received[fixture.received.length - 1].body).toEqual(JSON.parse(body));
  });

  it('takes a batch of MAX_BATCH_MESSAGES and refuses one more', async () => {
    const ping = (i: number): string => `{"jsonrpc":"2.0","id":${i},"method":"ping"}`;
    const full = `[${Array.from({ length: MAX_BATCH_MESSAGES }, (_, i) => ping(i)).join(',')}]`;
    expect(await reached(async () => void (await send(full)))).toBe(1);
    const over = `[${Array.from({ length: MAX_BATCH_MESSAGES + 1 }, (_, i) => ping(i)).join(',')}]`;
    let a: Answer | undefined;
    expect(await reached(async () => void (a = await send(over)))).toBe(0);
    expect(a!.status).toBe(400);
    expect(a!.json).toMatchObject({ error: { code: -32600, message: expect.stringContaining('exceeds the limit of 1000') as string } });
  });

  it('refuses an empty batch as an invalid request', async () => {
    let a: Answer | undefined;
    expect(await reached(async () => void (a = await send('[]')))).toBe(0);
    expect(a!.status).toBe(400);
    expect(a!.json).toMatchObject({ id: null, error: { code: -32600 } });
  });
});

describe('answers', () => {
  it('drops a denied notification with an empty 202', async () => {
    let a: Answer | undefined;
    const body = '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}';
    expect(await reached(async () => void (a = await send(body)))).toBe(0);
    expect(a!.status).toBe(202);
    expect(a!.text).toBe('');
  });

  it('answers a denial as an event stream to a client that accepts only that', async () => {
    const a = await send(call(20, 'delete_customer'), { accept: 'text/event-stream' });
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('text/event-stream');
    const data = /^event: message\ndata: (.*)\n\n$/.exec(a.text);
    expect(JSON.parse(data![1])).toMatchObject({ id: 20, result: { isError: true } });
  });

  it('refuses a compressed request body (it would be read otherwise than judged)', async () => {
    const before = fixture.received.length;
    const r = await request(proxy.url('crm'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', accept: 'application/json' },
      body: gzipSync(call(23, 'delete_customer')),
    });
    expect(r.statusCode).toBe(415);
    expect(await r.body.json()).toMatchObject({ error: { code: -32600, data: { type: 'unsupported_encoding' } } });
    expect(fixture.received.length).toBe(before);
  });

  it.each([
    ['utf-7', 'application/json; charset=utf-7'],
    ['a charset declared twice', 'application/json; charset=utf-8; charset=utf-7'],
  ])('refuses a body declared in %s', async (_what, type) => {
    const before = fixture.received.length;
    const r = await request(proxy.url('crm'), {
      method: 'POST',
      headers: { 'content-type': type, accept: 'application/json' },
      body: call(24, 'search_customers'),
    });
    expect(r.statusCode).toBe(415);
    expect(await r.body.json()).toMatchObject({ error: { code: -32600, data: { type: 'unsupported_charset' } } });
    expect(fixture.received.length).toBe(before);
    expect((await send(call(25, 'search_customers', { query: 'x' }))).status).toBe(200); // charset=utf-8 is what send() leaves out
  });

  it('refuses a batch whose requests repeat an id (as JavaScript reads ids)', async () => {
    for (const ids of [
      ['1', '1'],
      ['1', '1.0'],
      ['9007199254740993', '9007199254740992'],
    ]) {
      let a: Answer | undefined;
      const body = `[{"jsonrpc":"2.0","id":${ids[0]},"method":"tools/list"},{"jsonrpc":"2.0","id":${ids[1]},"method":"ping"}]`;
      expect(await reached(async () => void (a = await send(body)))).toBe(0);
      expect(a!.status).toBe(400);
      expect(a!.json).toMatchObject({ error: { code: -32600 } });
    }
  });

  it('has one endpoint and three methods', async () => {
    const other = await send(call(21, 'search_customers'), { path: '/other' });
    expect(other.status).toBe(404);
    const put = await send(call(22, 'search_customers'), { method: 'PUT' });
    expect(put.status).toBe(405);
    expect(put.headers['allow']).toBe('GET, POST, DELETE');
  });
});
