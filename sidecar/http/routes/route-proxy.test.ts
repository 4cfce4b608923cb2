import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { compilePolicy, type CompiledPolicy } from '../../../common/policy/compile';
import type { AccessPolicy, Identity } from '../../../common/policy/types';
import { SecretStore } from '../../secrets';
import type { HttpApprovalGate } from '../../approvals/hold';
import { startFakeOpenAI, type FakeOpenAI } from '../../../test/support/sidecar/fake-openai';
import { createRouteHandler, parseRoute, type RouteHandler } from './route-proxy';
import type { HttpAuditEvent } from '../../audit/events';

const run = promisify(execFile);
const SECRET = 'sk-real-SECRET-7f3a9c';
const AGENT_KEY = 'sk-agent-found-this-somewhere';
const CARD = '4111 1111 1111 1111';
const EMAIL = 'jane.doe@example.com';
const identity: Identity = { subject: 'system:serviceaccount:agents:support', groups: [], source: 'pod' };

let upstream: FakeOpenAI;
let downPort: number;
let secretsDir: string;
let policy: CompiledPolicy;
const audits: HttpAuditEvent[] = [];
const bodies: string[] = []; // every response body the agent saw (except /echo), for the leak check
const servers: Array<{ server: http.Server; handler: RouteHandler }> = [];
let port: number; // proxy without an approval gate
let gatedPort: number; // proxy whose gate approves
const client = new Agent({ keepAliveTimeout: 1000 });

async function startProxy(approvals?: HttpApprovalGate): Promise<number> {
  const handler = createRouteHandler({
    policy: () => policy,
    secrets: new SecretStore(secretsDir),
    identity,
    audit: (e) => audits.push(e),
    approvals,
    limits: { maxRequestBodyBytes: 64 * 1024 },
  });
  const server = http.createServer(handler);
  server.on('checkContinue', handler.checkContinue);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push({ server, handler });
  return (server.address() as AddressInfo).port;
}

function buildPolicy(): AccessPolicy {
  const base = `http://127.0.0.1:${upstream.port}`;
  return {
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'route-test', namespace: 'agents' },
    spec: {
      defaultAction: 'allow',
      targets: [
        { name: 'openai', http: { baseUrl: base, credentialsSecret: 'openai', timeout: '3s' } },
        { name: 'raw', http: { baseUrl: base, credentialsSecret: 'openai' } },
        { name: 'keyed', http: { baseUrl: `${base}/echo/`, credentialsSecret: 'openai', auth: { header: 'X-Api-Key' } } },
        { name: 'query', http: { baseUrl: base, credentialsSecret: 'openai', auth: { queryParam: 'key' } } },
        { name: 'basic', http: { baseUrl: base, credentialsSecret: 'basic-svc', auth: { basic: true } } },
        { name: 'slow', http: { baseUrl: base, credentialsSecret: 'openai', timeout: '300ms' } },
        { name: 'down', http: { baseUrl: `http://127.0.0.1:${downPort}`, credentialsSecret: 'openai' } },
        { name: 'nosecret', http: { baseUrl: base, credentialsSecret: 'missing-secret' } },
        { name: 'crm', postgres: { host: 'db', database: 'crm', credentialsSecret: 'crm', listenPort: 15432 } },
      ],
      rules: [
        { name: 'no-files', action: 'deny', match: { target: 'openai', http: { methods: ['POST'], paths: ['/v1/files/**'] } } },
        { name: 'batches-need-approval', action: 'hold', match: { target: 'openai', http: { paths: ['/v1/batches'] } } },
      ],
      masking: [{ name: 'pii', detectors: ['credit-card', 'email'], strategy: 'redact', targets: ['openai'] }],
    },
  };
}

beforeAll(async () => {
  upstream = await startFakeOpenAI();
  // Port 1 (tcpmux): nothing listens there. A port freed by closing a probe server could be taken
  // by another suite running in parallel, and then "down" answers.
  downPort = 1;
  secretsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-routes-'));
  fs.mkdirSync(path.join(secretsDir, 'openai'));
  fs.writeFileSync(path.join(secretsDir, 'openai', 'token'), SECRET + '\n');
  fs.mkdirSync(path.join(secretsDir, 'basic-svc'));
  fs.writeFileSync(path.join(secretsDir, 'basic-svc', 'username'), 'svc-user');
  fs.writeFileSync(path.join(secretsDir, 'basic-svc', 'password'), 'svc-pass-' + SECRET);
  policy = compilePolicy(buildPolicy());
  port = await startProxy();
  gatedPort = await startProxy({ hold: async (req) => ({ approved: req.operation.path === '/v1/batches', reason: 'approved by test' }) });
});

afterAll(async () => {
  for (const { server, handler } of servers) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await handler.close();
  }
  await client.close();
  await upstream.close();
  fs.rmSync(secretsDir, { recursive: true, force: true });
});

beforeEach(() => {
  upstream.reply = 'Hello from the fake model.';
  upstream.chunks = ['Hello', ' from', ' the', ' fake', ' model.'];
});

async function get(p: string, init: Parameters<typeof undiciFetch>[1] = {}, proxyPort = port) {
  const res = await undiciFetch(`http://127.0.0.1:${proxyPort}${p}`, { dispatcher: client, ...init });
  const text = await res.text();
  if (!p.includes('/echo') && !p.startsWith('/keyed')) bodies.push(text);
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

function sdk(apiKey = 'warden-managed', route = 'openai'): OpenAI {
  return new OpenAI({ baseURL: `http://127.0.0.1:${port}/${route}/v1`, apiKey, maxRetries: 0, timeout: 5000 });
}

describe('official openai SDK through the route', () => {
  test('chat completion: real credential injected, agent key dropped', async () => {
    const before = upstream.requests.length;
    const r = await sdk(AGENT_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    bodies.push(JSON.stringify(r));
    expect(r.choices[0].message.content).toBe('Hello from the fake model.');
    const seen = upstream.requests[before];
    expect(seen.url).toBe('/v1/chat/completions');
    expect(seen.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(JSON.stringify(seen.headers)).not.toContain(AGENT_KEY);
    expect(seen.headers.host).toBe(`127.0.0.1:${upstream.port}`);
    expect(JSON.parse(seen.body.toString()).model).toBe('gpt-4o-mini');
  });

  test('streaming chat completion arrives as deltas (unmasked route: event for event)', async () => {
    const stream = await sdk('warden-managed', 'raw').chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    const deltas: string[] = [];
    for await (const chunk of stream) deltas.push(chunk.choices[0]?.delta?.content ?? '');
    bodies.push(deltas.join(''));
    expect(deltas.join('')).toBe('Hello from the fake model.');
    expect(deltas.filter((d) => d !== '')).toEqual(upstream.chunks);
  });

  test('masked streaming still streams: text beyond the hold-back window arrives before the end', async () => {
    upstream.chunks = Array.from({ length: 120 }, (_, i) => ` w${i}`);
    upstream.chunkDelayMs = 1;
    try {
      const stream = await sdk().chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'hi' }],
        stream: true,
      });
      const deltas: string[] = [];
      for await (const chunk of stream) deltas.push(chunk.choices[0]?.delta?.content ?? '');
      bodies.push(deltas.join(''));
      expect(deltas.join('')).toBe(upstream.chunks.join(''));
      expect(deltas.filter((d) => d !== '').length).toBeGreaterThan(10);
    } finally {
      upstream.chunkDelayMs = 5;
    }
  });

  test('a card number split across streamed deltas is masked', async () => {
    upstream.chunks = ['Your card is 4111', ' 1111', ' 1111', ' 1111', ' and mail ', 'jane.doe@', 'example.com', ' ok'];
    const stream = await sdk().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    bodies.push(text);
    expect(text).not.toContain(CARD);
    expect(text).not.toContain(EMAIL);
    expect(text).toContain('[REDACTED]');
    expect(text.startsWith('Your card is ')).toBe(true);
    expect(text.endsWith(' ok')).toBe(true);
  });

  test('embeddings (base64, decoded by the SDK)', async () => {
    const r = await sdk().embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
    expect(r.data).toHaveLength(2);
    expect(r.data[1].embedding).toEqual([0.25, -0.5, 0.125, 1]);
  });

  test('card number and email in a JSON completion are masked', async () => {
    upstream.reply = `Card ${CARD}, contact ${EMAIL}.`;
    const r = await sdk().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    bodies.push(JSON.stringify(r));
    expect(r.choices[0].message.content).toBe('Card [REDACTED], contact [REDACTED].');
    const ev = audits.filter((e) => e.path === '/v1/chat/completions').at(-1)!;
    expect(ev.decision).toBe('mask');
    expect(ev.masked).toBe(2);
  });
});

describe('undici fetch and curl', () => {
  test('headers: hop-by-hop and agent credentials dropped, custom headers kept', async () => {
    // curl, because fetch refuses to send Connection itself.
    const { stdout } = await run('curl', [
      '-sS',
      ...[
        'authorization: Bearer ' + AGENT_KEY,
        'x-api-key: ' + AGENT_KEY,
        'api-key: ' + AGENT_KEY,
        'connection: keep-alive, x-secret-hop',
        'x-secret-hop: 1',
        'x-trace: kept',
        'proxy-authorization: Basic eDp5',
        'te: trailers',
      ].flatMap((h) => ['-H', h]),
      `http://127.0.0.1:${port}/openai/echo/x?a=1`,
    ]);
    const echo = JSON.parse(stdout);
    expect(echo.url).toBe('/echo/x?a=1');
    // Injected upstream; the echo of it never reaches the agent (credential-scrub.ts).
    expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(echo.headers.authorization).toBe('[REDACTED:credential]');
    expect(echo.headers['x-api-key']).toBeUndefined();
    expect(echo.headers['api-key']).toBeUndefined();
    expect(echo.headers['x-secret-hop']).toBeUndefined();
    expect(echo.headers['proxy-authorization']).toBeUndefined();
    expect(echo.headers.te).toBeUndefined();
    expect(echo.headers['x-trace']).toBe('kept');
  });

  test('auth styles: custom header, query parameter, basic', async () => {
    const keyed = (await get('/keyed/y', { headers: { 'x-api-key': AGENT_KEY } })).json();
    expect(keyed.url).toBe('/echo/y');
    expect(upstream.requests.at(-1)!.headers['x-api-key']).toBe(SECRET);
    expect(keyed.headers['x-api-key']).toBe('[REDACTED:credential]');
    expect(keyed.headers.authorization).toBeUndefined();
    const q = (await get('/query/echo?key=agent&x=2')).json();
    expect(new URL(upstream.requests.at(-1)!.url!, 'http://h').searchParams.getAll('key')).toEqual([SECRET]);
    expect(new URL(q.url, 'http://h').searchParams.getAll('key')).toEqual(['[REDACTED:credential]']);
    expect(new URL(q.url, 'http://h').searchParams.get('x')).toBe('2');
    const b = (await get('/basic/echo', { headers: { authorization: 'Basic Zm9vOmJhcg==' } })).json();
    expect(upstream.requests.at(-1)!.headers.authorization).toBe('Basic ' + Buffer.from(`svc-user:svc-pass-${SECRET}`).toString('base64'));
    expect(b.headers.authorization).toBe('[REDACTED:credential]');
  });

  test('upstream connections are pooled (keep-alive)', async () => {
    const before = upstream.requests.length;
    await get('/openai/echo/1');
    await get('/openai/echo/2');
    const [a, b] = upstream.requests.slice(before);
    expect(a.remotePort).toBe(b.remotePort);
  });

  test('gzip JSON and text responses are decoded and masked', async () => {
    upstream.reply = `call me at ${EMAIL} or pay with ${CARD}`;
    const r = await get('/openai/gzip-json', { headers: { 'accept-encoding': 'gzip' } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-encoding')).toBeNull();
    expect(r.json()).toEqual({
      note: 'call me at [REDACTED] or pay with [REDACTED]',
      nested: [{ contact: 'call me at [REDACTED] or pay with [REDACTED]' }],
    });
    const t = await get('/openai/text');
    expect(t.text).toBe('call me at [REDACTED] or pay with [REDACTED]');
  });

  test('malformed JSON from upstream is blocked (fail closed)', async () => {
    upstream.reply = `card ${CARD}`;
    const r = await get('/openai/malformed-json');
    expect(r.status).toBe(502);
    expect(r.json().error.type).toBe('unmaskable_response');
    expect(r.text).not.toContain('4111');
  });

  test('curl: chat completion with the agent key replaced', async () => {
    const before = upstream.requests.length;
    const { stdout } = await run('curl', [
      '-sS',
      '-H',
      'content-type: application/json',
      '-H',
      `authorization: Bearer ${AGENT_KEY}`,
      '--data',
      JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
      `http://127.0.0.1:${port}/openai/v1/chat/completions`,
    ]);
    bodies.push(stdout);
    expect(JSON.parse(stdout).choices[0].message.content).toBe('Hello from the fake model.');
    expect(upstream.requests[before].headers.authorization).toBe(`Bearer ${SECRET}`);
  });

  test('curl: Expect 100-continue; a denied upload is refused before its body is sent', async () => {
    const file = path.join(secretsDir, 'upload.bin');
    fs.writeFileSync(file, Buffer.alloc(32 * 1024, 7));
    const ok = await run('curl', [
      '-sS',
      '-H',
      'Expect: 100-continue',
      '-H',
      'content-type: application/octet-stream',
      '--data-binary',
      `@${file}`,
      `http://127.0.0.1:${port}/openai/echo/up`,
    ]);
    expect(JSON.parse(ok.stdout).bodyBytes).toBe(32 * 1024);
    const before = upstream.requests.length;
    const denied = await run('curl', [
      '-sS',
      '-w',
      '\n%{http_code}',
      '-H',
      'Expect: 100-continue',
      '--data-binary',
      `@${file}`,
      `http://127.0.0.1:${port}/openai/v1/files/upload`,
    ]);
    bodies.push(denied.stdout);
    expect(denied.stdout.split('\n').at(-1)).toBe('403');
    expect(upstream.requests.length).toBe(before);
  });
});

describe('policy, limits and failures', () => {
  test('deny: 403 with the contract body, upstream never called', async () => {
    const before = upstream.requests.length;
    const r = await get('/openai/v1/files/abc', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"purpose":"x"}',
    });
    expect(r.status).toBe(403);
    expect(r.json()).toEqual({ error: { type: 'policy_denied', rule: 'no-files', message: 'denied by rule "no-files"' } });
    expect(upstream.requests.length).toBe(before);
    const ev = audits.at(-1)!;
    expect(ev).toMatchObject({ target: 'openai', method: 'POST', path: '/v1/files/abc', status: 403, decision: 'deny', rule: 'no-files' });
  });

  test('dot segments cannot dodge a rule', async () => {
    const before = upstream.requests.length;
    // fetch would resolve the dot segments itself; curl --path-as-is sends them.
    for (const p of ['/openai/v1/chat/../files/abc', '/openai/v1/chat/%2e%2e/files/abc', '/openai/v1%2ffiles/abc']) {
      const r = await run('curl', ['-sS', '--path-as-is', '-X', 'POST', '-w', '\n%{http_code}', `http://127.0.0.1:${port}${p}`]);
      expect(r.stdout.split('\n').at(-1)).toBe('400');
    }
    expect(upstream.requests.length).toBe(before);
    expect(parseRoute('/openai//v1///files/x?y=1')).toEqual({ target: 'openai', path: '/v1/files/x', rest: 'v1/files/x', search: '?y=1' });
  });

  test('hold: 403 without an approval service, forwarded once approved', async () => {
    const r = await get('/openai/echo', { method: 'POST' }, port);
    const denied = await get('/openai/v1/batches', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(denied.status).toBe(403);
    expect(denied.json().error).toMatchObject({ type: 'policy_denied', rule: 'batches-need-approval' });
    expect(denied.json().error.message).toMatch(/no approval service is configured/);
    const approved = await get('/openai/v1/batches', { method: 'POST' }, gatedPort);
    expect(approved.status).toBe(404); // the fake has no /v1/batches: it reached the upstream
  });

  test('unknown route: 404', async () => {
    for (const p of ['/nope/v1/x', '/crm/x', '/']) {
      const r = await get(p);
      expect(r.status).toBe(404);
      expect(r.json().error.type).toBe('unknown_route');
    }
  });

  test('missing secret: 503 naming the secret', async () => {
    const r = await get('/nosecret/echo');
    expect(r.status).toBe(503);
    expect(r.json().error).toMatchObject({ type: 'credential_unavailable', secret: 'missing-secret' });
  });

  test('upstream down: 502 naming the target', async () => {
    const r = await get('/down/v1/models');
    expect(r.status).toBe(502);
    expect(r.json().error.type).toBe('upstream_unavailable');
    expect(r.json().error.message).toContain('"down"');
  });

  test('upstream slow: 504 naming the target within the target timeout', async () => {
    const t0 = Date.now();
    const r = await get('/slow/slow');
    expect(r.status).toBe(504);
    expect(r.json().error.message).toContain('"slow"');
    expect(Date.now() - t0).toBeLessThan(3000); // undici's timers are coarse (~0.5 s)
  });

  test('oversized bodies: 413 by content-length and while streaming', async () => {
    const big = Buffer.alloc(100 * 1024, 97);
    const before = upstream.requests.length;
    const a = await get('/openai/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    expect(a.status).toBe(413);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 10; i++) c.enqueue(new Uint8Array(big.subarray(0, 10 * 1024)));
        c.close();
      },
    });
    const b = await get('/openai/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: stream,
      duplex: 'half',
    } as never);
    expect(b.status).toBe(413);
    expect(upstream.requests.slice(before).every((r) => r.body.length <= 64 * 1024)).toBe(true);
  });

  test('the secret never appears in a response or an audit event', () => {
    expect(bodies.length).toBeGreaterThan(10);
    for (const b of bodies) expect(b).not.toContain(SECRET);
    expect(audits.length).toBeGreaterThan(10);
    for (const e of audits) expect(JSON.stringify(e)).not.toContain(SECRET);
  });
});
