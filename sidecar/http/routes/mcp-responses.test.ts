// The MCP server's answers as the agent gets them, from an upstream that answers as each test
// asks (test/support/sidecar/behaviour-upstream.ts): events cut anywhere, answers that cannot be
// read (refused, never passed), empty 202s, GET streams, the credential echoed back.
import type * as http from 'node:http';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import type { AccessPolicySpec } from '../../../common/policy/types';
import { startBehaviourUpstream, type BehaviourUpstream } from '../../../test/support/sidecar/behaviour-upstream';
import { startMcpProxy, type McpProxy } from '../../../test/support/mcp/mcp-proxy';

const TOKEN = 'tok-Q2hhbmdlTWVQbGVhc2U-9f8e';
const TOOLS = [
  { name: 'search_customers', inputSchema: { type: 'object' } },
  { name: 'delete_customer', inputSchema: { type: 'object' } },
];

let upstream: BehaviourUpstream;
let proxy: McpProxy;

const BEHAVIOURS = [
  'split',
  'sse-not-json',
  'json-not-json',
  'html',
  'empty202',
  'echo',
  'get',
  'batch',
  'gzip',
  'not-rpc',
  'deep',
  'big-event',
];

function spec(port: number): AccessPolicySpec {
  return {
    defaultAction: 'allow',
    targets: [
      ...BEHAVIOURS.map((b) => ({ name: b, mcp: { url: `http://127.0.0.1:${port}/${b}`, credentialsSecret: 'tools' } })),
      { name: 'quiet', mcp: { url: `http://127.0.0.1:${port}/quiet`, timeout: '300ms' } },
    ],
    rules: [{ name: 'no-deletes', action: 'deny', match: { mcp: { tools: ['delete_*'] } } }],
  };
}

beforeAll(async () => {
  upstream = await startBehaviourUpstream();
  proxy = await startMcpProxy({ spec: spec(upstream.port), secrets: { tools: { token: TOKEN } } });
});
afterAll(async () => {
  await proxy?.close();
  await upstream?.close();
});

const sse = (res: http.ServerResponse, status = 200): void => {
  res.writeHead(status, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
};
const event = (msg: unknown, id?: string): string => `${id ? `id: ${id}\n` : ''}event: message\ndata: ${JSON.stringify(msg)}\n\n`;
const pause = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

async function post(
  target: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; type: string; text: string; headers: Record<string, unknown> }> {
  const r = await request(proxy.url(target), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body,
  });
  return { status: r.statusCode, type: String(r.headers['content-type']), text: await r.body.text(), headers: r.headers };
}

const LIST = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}';

/** The JSON-RPC messages of an event stream, in order. */
function messagesOf(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((b) => /^data: ./m.test(b) && !/^event: error/m.test(b))
    .map((b) => JSON.parse(/^data: (.*)$/m.exec(b)![1]) as unknown);
}

describe('event streams', () => {
  it('reassembles events cut at every byte and filters the listing in them', async () => {
    upstream.behaviours.set('split', async (_req, _body, res) => {
      sse(res);
      const text =
        ': keep-alive with a card 4111 1111 1111 1111\nid: p0\nretry: 500\ndata: \n\n' +
        event({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x' } }) +
        event({ jsonrpc: '2.0', id: 1, result: { tools: TOOLS, nextCursor: 'page2' } }, 'e1');
      for (const ch of Buffer.from(text)) {
        res.write(Buffer.from([ch]));
        await pause();
      }
      res.end();
    });
    const a = await post('split', LIST);
    expect(a.status).toBe(200);
    expect(a.type).toMatch(/^text\/event-stream/);
    expect(a.text.startsWith('id: p0\nretry: 500\ndata: \n\n')).toBe(true); // a priming event; its comment is not passed
    expect(a.text).not.toContain('4111');
    const msgs = messagesOf(a.text);
    expect(msgs).toHaveLength(2);
    expect(msgs[1]).toEqual({ jsonrpc: '2.0', id: 1, result: { tools: [TOOLS[0]], nextCursor: 'page2' } });
    expect(a.text).toContain('id: e1\n');
  });

  it('ends a stream whose event is not JSON with an error for the pending request and an error event', async () => {
    upstream.behaviours.set('sse-not-json', (_req, _body, res) => {
      sse(res);
      res.write(event({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'ok' } }));
      res.end(`event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_customer"}]}\n\n`); // cut short
    });
    const a = await post('sse-not-json', LIST);
    expect(a.text).not.toContain('delete_customer');
    const msgs = messagesOf(a.text);
    expect(msgs[0]).toMatchObject({ method: 'notifications/message' });
    expect(msgs[1]).toMatchObject({ id: 1, error: { code: -32003, message: expect.stringContaining('"sse-not-json"') as string } });
    expect(a.text).toMatch(/event: error\ndata: .*unmaskable_response/);
  });

  it('refuses an event past MAX_SSE_EVENT_BYTES', async () => {
    upstream.behaviours.set('big-event', async (_req, _body, res) => {
      sse(res);
      const chunk = Buffer.alloc(1024 * 1024, 'a');
      res.write('data: ');
      for (let i = 0; i < 11 && !res.destroyed; i++) {
        if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
    });
    const a = await post('big-event', LIST);
    expect(a.text).toMatch(/longer than 10485760 bytes/);
    expect(a.text.length).toBeLessThan(10_000);
  });

  it('masks a GET stream the same way, passing Last-Event-ID', async () => {
    upstream.behaviours.set('get', (req, _body, res) => {
      sse(res);
      res.write(event({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' }));
      // a replayed answer whose request this stream never saw: judged by its shape
      res.end(event({ jsonrpc: '2.0', id: 9, result: { tools: TOOLS } }, `after-${String(req.headers['last-event-id'])}`));
    });
    const r = await request(proxy.url('get'), { method: 'GET', headers: { accept: 'text/event-stream', 'last-event-id': 'e41' } });
    const text = await r.body.text();
    expect(text).not.toContain('delete_customer');
    expect(text).toContain('id: after-e41');
    expect(upstream.seen[upstream.seen.length - 1].headers['last-event-id']).toBe('e41');
    await new Promise((r) => setImmediate(r));
    expect(proxy.audits[proxy.audits.length - 1]).toMatchObject({ target: 'get', method: 'GET', decision: 'allow' });
  });
});

describe('idle limits', () => {
  const quietly = (res: http.ServerResponse): void => {
    sse(res);
    res.flushHeaders();
    // undici checks body timeouts about once a second: well past the target's 300 ms
    const t = setTimeout(() => res.end(event({ jsonrpc: '2.0', id: 1, result: { tools: TOOLS } })), 2500);
    res.once('close', () => clearTimeout(t));
  };

  it('lets the server GET stream stay silent past the target timeout', async () => {
    upstream.behaviours.set('quiet', (_req, _body, res) => quietly(res));
    const r = await request(proxy.url('quiet'), { method: 'GET', headers: { accept: 'text/event-stream' } });
    const text = await r.body.text();
    expect(text).toContain('search_customers');
    expect(text).not.toContain('delete_customer');
  });

  it('ends a POST answer silent past the target timeout with an error for its request', async () => {
    upstream.behaviours.set('quiet', (_req, _body, res) => quietly(res));
    const r = await request(proxy.url('quiet'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: LIST,
    });
    const text = await r.body.text();
    expect(messagesOf(text)).toEqual([
      { jsonrpc: '2.0', id: 1, error: { code: -32000, message: expect.stringContaining('"quiet" did not answer in time') as string } },
    ]);
    expect(text).toMatch(/event: error\ndata: .*upstream_timeout/);
  });
});

describe('JSON answers', () => {
  it('refuses a body that is not JSON with 502 naming the target', async () => {
    upstream.behaviours.set('json-not-json', (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_customer"}');
    });
    const a = await post('json-not-json', LIST);
    expect(a.status).toBe(502);
    expect(JSON.parse(a.text)).toMatchObject({
      jsonrpc: '2.0',
      id: 1,
      error: { data: { type: 'unmaskable_response', target: 'json-not-json' } },
    });
    expect(a.text).not.toContain('delete_customer');
  });

  it.each([
    ['html', 'text/html', '<html>delete_customer</html>'],
    ['not-rpc', 'application/json', '{"tools":[{"name":"delete_customer"}]}'],
    ['deep', 'application/json', '{"jsonrpc":"2.0","id":1,"result":' + '['.repeat(200) + ']'.repeat(200) + '}'],
  ])('refuses what is not a JSON-RPC message (%s)', async (name, type, body) => {
    upstream.behaviours.set(name, (_req, _body, res) => {
      res.writeHead(200, { 'content-type': type });
      res.end(body);
    });
    const a = await post(name, LIST);
    expect(a.status).toBe(502);
    expect(a.text).not.toContain('delete_customer');
  });

  it('keeps the status of an error answer that is not JSON, withholding its body', async () => {
    upstream.behaviours.set('html', (_req, _body, res) => {
      res.writeHead(405, { 'content-type': 'text/plain' });
      res.end('GET not supported for alice.smith@example.com');
    });
    const r = await request(proxy.url('html'), { method: 'GET', headers: { accept: 'text/event-stream' } });
    expect(r.statusCode).toBe(405);
    const text = await r.body.text();
    expect(text).not.toContain('alice');
    expect(JSON.parse(text)).toMatchObject({ error: { data: { type: 'upstream_error', target: 'html' } } });
  });

  it('refuses a redirect (a client following it would bypass the sidecar)', async () => {
    upstream.behaviours.set('html', (_req, _body, res) => {
      res.writeHead(307, { location: 'http://tools.elsewhere.example/mcp' });
      res.end();
    });
    const r = await request(proxy.url('html'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: LIST });
    expect(r.statusCode).toBe(502);
    expect(r.headers['location']).toBeUndefined();
    expect(await r.body.text()).toContain('redirect');
  });

  it('passes an empty 202', async () => {
    upstream.behaviours.set('empty202', (_req, _body, res) => {
      res.writeHead(202);
      res.end();
    });
    const a = await post('empty202', '{"jsonrpc":"2.0","method":"notifications/initialized"}');
    expect(a.status).toBe(202);
    expect(a.text).toBe('');
  });

  it('runs every message of an array answer through the hooks', async () => {
    upstream.behaviours.set('batch', (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify([
          { jsonrpc: '2.0', id: 2, result: { content: [] } },
          { jsonrpc: '2.0', id: 1, result: { tools: TOOLS } },
        ]),
      );
    });
    const a = await post('batch', `[${LIST},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search_customers"}}]`);
    expect(JSON.parse(a.text)).toEqual([
      { jsonrpc: '2.0', id: 2, result: { content: [] } },
      { jsonrpc: '2.0', id: 1, result: { tools: [TOOLS[0]] } },
    ]);
  });

  it('reads a compressed answer', async () => {
    upstream.behaviours.set('gzip', (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: TOOLS } })));
    });
    const a = await post('gzip', LIST);
    expect(JSON.parse(a.text)).toEqual({ jsonrpc: '2.0', id: 1, result: { tools: [TOOLS[0]] } });
  });
});

describe('credentials', () => {
  it('injects the token and scrubs every spelling of it from JSON and event-stream answers', async () => {
    upstream.behaviours.set('echo', (req, _body, res) => {
      const auth = String(req.headers.authorization);
      const msg = {
        jsonrpc: '2.0',
        id: 1,
        result: { content: [{ type: 'text', text: auth }], structuredContent: { [TOKEN]: Buffer.from(TOKEN).toString('base64') } },
      };
      if (String(req.headers.accept).includes('text/event-stream')) {
        sse(res);
        res.end(
          event({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: encodeURIComponent(TOKEN) } }) +
            event(msg),
        );
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'x-echo': auth });
        res.end(JSON.stringify(msg));
      }
    });
    const call = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}';
    const viaSse = await post('echo', call, { authorization: 'Bearer agent-own' });
    const viaJson = await post('echo', call, { accept: 'application/json' });
    expect(upstream.seen.slice(-2).map((s) => s.headers.authorization)).toEqual([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]);
    for (const a of [viaSse, viaJson]) {
      expect(a.text).not.toContain(TOKEN);
      expect(a.text).not.toContain(Buffer.from(TOKEN).toString('base64'));
      expect(a.text).toContain('[REDACTED:credential]');
    }
    expect(messagesOf(viaSse.text)).toHaveLength(2);
    expect(JSON.parse(viaJson.text)).toMatchObject({ id: 1 });
    expect(viaJson.headers['x-echo']).toBe('[REDACTED:credential]');
  });
});
