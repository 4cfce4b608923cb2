// Upstream HTTP/2 through the named-route proxy: an undici Agent with `allowH2: true` (the
// route's dispatcher) negotiates h2 by ALPN with a local `node:http2` TLS server (self-signed
// certificate made with the openssl CLI, trusted through `connect: { ca }`). Requests, JSON and
// streamed bodies, and masked SSE reach the upstream as HTTP/2; the same Agent still speaks
// HTTP/1.1 to TLS servers without h2 and to plain-http upstreams; without allowH2 it is HTTP/1.1.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent } from 'undici';
import { compilePolicy, type CompiledPolicy } from '../../../common/policy/compile';
import type { Identity } from '../../../common/policy/types';
import { SecretStore } from '../../secrets';
import { startFakeOpenAI, type FakeOpenAI } from '../../../test/support/sidecar/fake-openai';
import { createRouteHandler, type RouteHandler } from './route-proxy';
import type { HttpAuditEvent } from '../../audit/events';

const TOKEN = 'sk-real-h2-upstream-key-0123456789';
const identity: Identity = { subject: 'system:serviceaccount:agents:h2', groups: [], source: 'pod' };

interface Seen {
  httpVersion: string;
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let dir: string;
let key: Buffer;
let cert: Buffer;
let h2Server: http2.Http2SecureServer;
let h2Port: number;
let h1TlsServer: https.Server;
let h1TlsPort: number;
let plain: FakeOpenAI;
const seen: Seen[] = [];
const audits: HttpAuditEvent[] = [];
const cleanups: Array<() => Promise<void>> = [];

/** Echo, or an OpenAI-style SSE stream carrying a card split across deltas at /v1/chat/completions. */
function answer(req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const s: Seen = {
      httpVersion: req.httpVersion,
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers as http.IncomingHttpHeaders,
      body: Buffer.concat(chunks).toString(),
    };
    seen.push(s);
    if (req.url === '/slow') {
      const t = setTimeout(() => res.end('late'), 3000);
      res.on('close', () => clearTimeout(t));
      return;
    }
    if (req.url === '/v1/chat/completions') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const deltas = ['Card ', '4111 11', '11 1111 1', '111', ' on file.'];
      const write = (chunk: string): unknown => (res as http.ServerResponse).write(chunk); // both response types take a string
      for (const d of deltas)
        write(
          `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: d }, finish_reason: null }] })}\n\n`,
        );
      write(
        `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`,
      );
      res.end('data: [DONE]\n\n');
      return;
    }
    const body = JSON.stringify({ httpVersion: s.httpVersion, method: s.method, url: s.url, bodyBytes: s.body.length });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  });
}

async function listen(server: { listen(port: number, host: string, cb: () => void): unknown; address(): unknown }): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A route proxy on port 0 whose upstream requests go through `dispatcher`. */
async function proxyWith(dispatcher: Agent): Promise<number> {
  const policy: CompiledPolicy = compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'h2-test', namespace: 'agents' },
    spec: {
      defaultAction: 'allow',
      targets: [
        { name: 'h2', http: { baseUrl: `https://127.0.0.1:${h2Port}`, credentialsSecret: 'svc', timeout: '5s' } },
        { name: 'h2slow', http: { baseUrl: `https://127.0.0.1:${h2Port}`, credentialsSecret: 'svc', timeout: '300ms' } },
        { name: 'h1tls', http: { baseUrl: `https://127.0.0.1:${h1TlsPort}`, credentialsSecret: 'svc', timeout: '5s' } },
        { name: 'plain', http: { baseUrl: `http://127.0.0.1:${plain.port}`, credentialsSecret: 'svc', timeout: '5s' } },
      ],
      masking: [{ name: 'pii', detectors: ['credit-card'], strategy: 'redact' }],
    },
  });
  const handler: RouteHandler = createRouteHandler({
    policy: () => policy,
    secrets: new SecretStore(path.join(dir, 'secrets')),
    identity,
    audit: (e) => audits.push(e),
    dispatcher,
  });
  const server = http.createServer(handler);
  server.on('checkContinue', handler.checkContinue);
  const port = await listen(server);
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await handler.close();
    await dispatcher.close();
  });
  return port;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-h2-'));
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
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  key = fs.readFileSync(path.join(dir, 'key.pem'));
  cert = fs.readFileSync(path.join(dir, 'cert.pem'));
  fs.mkdirSync(path.join(dir, 'secrets', 'svc'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'secrets', 'svc', 'token'), TOKEN);

  h2Server = http2.createSecureServer({ key, cert, allowHTTP1: true }, answer); // offers h2 and http/1.1 by ALPN
  h2Port = await listen(h2Server);
  h1TlsServer = https.createServer({ key, cert }, answer); // http/1.1 only
  h1TlsPort = await listen(h1TlsServer);
  plain = await startFakeOpenAI();
});

afterAll(async () => {
  for (const c of cleanups) await c();
  await new Promise<void>((resolve) => h2Server.close(() => resolve()));
  h1TlsServer.closeAllConnections();
  await new Promise<void>((resolve) => h1TlsServer.close(() => resolve()));
  await plain.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('Agent({ allowH2: true, connect: { ca } }) as the route dispatcher', () => {
  let port: number;
  beforeAll(async () => {
    port = await proxyWith(new Agent({ allowH2: true, keepAliveTimeout: 1000, connect: { ca: cert } }));
  });

  test('GET reaches the upstream over HTTP/2, with the credential injected and the agent key dropped', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/h2/echo/a?x=1`, {
      headers: { authorization: 'Bearer warden-managed', connection: 'keep-alive' },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ httpVersion: '2.0', method: 'GET', url: '/echo/a?x=1' });
    const s = seen.at(-1)!;
    expect(s.httpVersion).toBe('2.0');
    expect(s.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(s.headers[':authority']).toBe(`127.0.0.1:${h2Port}`);
    expect([...res.headers.keys()].filter((k) => k.startsWith(':'))).toEqual([]); // no pseudo-header leaks into the HTTP/1.1 answer
  });

  test('POST with a JSON body and with a streamed (octet-stream, chunked) body over HTTP/2', async () => {
    const json = JSON.stringify({ model: 'm', input: 'x'.repeat(5000) });
    const r1 = await fetch(`http://127.0.0.1:${port}/h2/echo/json`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: json,
    });
    expect(await r1.json()).toMatchObject({ httpVersion: '2.0', method: 'POST', bodyBytes: json.length });
    expect(seen.at(-1)!.body).toBe(json);

    const parts = ['alpha-', 'beta-', 'gamma'];
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        const p = parts.shift();
        if (p === undefined) return c.close();
        await new Promise((r) => setTimeout(r, 20));
        c.enqueue(new TextEncoder().encode(p));
      },
    });
    const r2 = await fetch(`http://127.0.0.1:${port}/h2/echo/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(await r2.json()).toMatchObject({ httpVersion: '2.0', method: 'POST', bodyBytes: 'alpha-beta-gamma'.length });
    expect(seen.at(-1)!.body).toBe('alpha-beta-gamma');
  });

  test('an SSE answer over HTTP/2 is masked (card split across deltas)', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/h2/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model":"m","stream":true}',
    });
    const raw = await res.text();
    expect(seen.at(-1)!.httpVersion).toBe('2.0');
    let text = '';
    for (const m of raw.matchAll(/^data: (\{.*\})$/gm))
      text += (JSON.parse(m[1]) as { choices: Array<{ delta: { content?: string } }> }).choices[0].delta.content ?? '';
    expect(text).toBe('Card [REDACTED] on file.');
    expect(audits.at(-1)).toMatchObject({ target: 'h2', decision: 'mask', status: 200 });
  });

  test('several concurrent requests multiplex over HTTP/2', async () => {
    const rs = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        fetch(`http://127.0.0.1:${port}/h2/echo/m${i}`).then((r) => r.json() as Promise<{ httpVersion: string; url: string }>),
      ),
    );
    expect(rs.map((r) => r.httpVersion)).toEqual(Array(10).fill('2.0'));
    expect(rs.map((r) => r.url).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `/echo/m${i}`).sort());
  });

  test('an HTTP/2 upstream that does not answer in time: 504 naming the target, no hang', async () => {
    const t0 = Date.now();
    const res = await fetch(`http://127.0.0.1:${port}/h2slow/slow`);
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ error: { type: 'upstream_timeout', target: 'h2slow' } });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(seen.at(-1)!.httpVersion).toBe('2.0');
  });

  test('the same Agent still speaks HTTP/1.1 to a TLS upstream without h2, and to a plain-http upstream', async () => {
    const r1 = await fetch(`http://127.0.0.1:${port}/h1tls/echo/b`);
    expect(await r1.json()).toMatchObject({ httpVersion: '1.1', url: '/echo/b' });
    const r2 = await fetch(`http://127.0.0.1:${port}/plain/echo/c`);
    expect(r2.status).toBe(200);
    expect(plain.requests.at(-1)!.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });
});

test('control: without allowH2 the same upstream is reached over HTTP/1.1', async () => {
  const port = await proxyWith(new Agent({ keepAliveTimeout: 1000, connect: { ca: cert } }));
  const res = await fetch(`http://127.0.0.1:${port}/h2/echo/d`);
  expect(await res.json()).toMatchObject({ httpVersion: '1.1' });
});
