// The forward proxy with real clients (curl, node:http, raw sockets) and real servers on 127.0.0.1.
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { compilePolicy, type CompiledPolicy } from '../../../common/policy/compile';
import type { AccessPolicySpec, Identity } from '../../../common/policy/types';
import type { HttpApprovalGate, HeldHttpRequest } from '../../approvals/hold';
import { createForwardProxyServer, type ForwardProxyContext } from './forward-proxy';
import type { ForwardAuditEvent } from '../../audit/events';

const who: Identity = { subject: 'system:serviceaccount:agents:worker', groups: [], source: 'pod' };
let dir: string;
let tlsServer: tls.Server;
let tlsPort: number;
let tlsAccepts = 0;
let upstream: http.Server;
let upPort: number;
let upAccepts = 0;
let upRequests: Array<{ method?: string; url?: string; headers: http.IncomingHttpHeaders; body: string }> = [];
let proxy: http.Server;
let proxyPort: number;
let current: CompiledPolicy;
let events: ForwardAuditEvent[] = [];
const ctx: ForwardProxyContext = {
  policy: () => current,
  identity: who,
  connectTimeoutMs: 300,
  audit: (e) => events.push(e),
};

function policy(spec: Partial<AccessPolicySpec>): CompiledPolicy {
  return compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'egress' },
    spec: { targets: [], ...spec },
  });
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

/** Resolves every name to 127.0.0.1, so rules about public names can be exercised locally. */
const toLoopback: net.LookupFunction = ((_h: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) =>
  opts.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)) as unknown as net.LookupFunction;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fwd-proxy-'));
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
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  tlsServer = tls.createServer(
    { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) },
    (s) => {
      s.on('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\ntls-ok'));
      s.on('error', () => {});
    },
  );
  tlsServer.on('connection', () => tlsAccepts++);
  tlsPort = await listen(tlsServer);
  upstream = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      upRequests.push({ method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(200, {
        'content-type': 'text/plain',
        connection: 'keep-alive, x-secret-hop',
        'x-secret-hop': '1',
        'keep-alive': 'timeout=77',
      });
      res.end(`echo ${req.method} ${req.url} ${body}`);
    });
    req.on('error', () => {});
  });
  upstream.on('connection', () => upAccepts++);
  upPort = await listen(upstream);
  proxy = createForwardProxyServer(ctx);
  proxyPort = await listen(proxy);
});

afterAll(async () => {
  await new Promise((r) => proxy.close(r));
  proxy.closeAllConnections();
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  await new Promise((r) => tlsServer.close(r));
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  events = [];
  upRequests = [];
  ctx.lookup = undefined;
  ctx.approvals = undefined;
  current = policy({ defaultAction: 'deny' });
});

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '5', ...args], (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Sends raw bytes to the proxy and returns everything it answers until it closes (or 1 s). */
function raw(text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(proxyPort, '127.0.0.1', () => s.write(text));
    let out = '';
    s.on('data', (c) => (out += c));
    s.on('error', () => {});
    const t = setTimeout(() => s.destroy(), 1000);
    s.on('close', () => {
      clearTimeout(t);
      resolve(out);
    });
  });
}

function get(
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
  body?: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method, path: url, headers, agent: false }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: b }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 300 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
};

test('allowed CONNECT tunnels real TLS end to end (curl -k -x), and the tunnel is audited', async () => {
  current = policy({
    defaultAction: 'deny',
    rules: [{ name: 'local-tls', action: 'allow', match: { http: { hosts: [`localhost:${tlsPort}`] } } }],
  });
  const r = await curl(['-k', '-x', `http://127.0.0.1:${proxyPort}`, `https://localhost:${tlsPort}/`]);
  expect(r.stderr).toBe('');
  expect(r.stdout).toBe('tls-ok');
  await until(() => events.length > 0);
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({
    kind: 'connect',
    method: 'CONNECT',
    host: 'localhost',
    port: tlsPort,
    decision: 'allow',
    rule: 'local-tls',
    outcome: 'forwarded',
    status: 200,
  });
  expect(events[0].bytesUp).toBeGreaterThan(100); // ClientHello and more
  expect(events[0].bytesDown).toBeGreaterThan(100); // certificate and more
});

test('denied CONNECT: 403 with the contract body, and the target never sees a connection', async () => {
  current = policy({
    defaultAction: 'allow',
    rules: [
      { name: 'no-local', action: 'deny', message: 'local TLS is off limits', match: { http: { hosts: ['localhost', '127.0.0.0/8'] } } },
    ],
  });
  const before = tlsAccepts;
  const r = await curl([
    '-k',
    '-o',
    '/dev/null',
    '-w',
    '%{http_connect}',
    '-x',
    `http://127.0.0.1:${proxyPort}`,
    `https://localhost:${tlsPort}/`,
  ]);
  expect(r.stdout).toBe('403');
  const answer = await raw(`CONNECT 127.0.0.1:${tlsPort} HTTP/1.1\r\nHost: 127.0.0.1:${tlsPort}\r\n\r\n`);
  expect(answer).toMatch(/^HTTP\/1.1 403 Forbidden\r\n/);
  expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
    error: { type: 'policy_denied', rule: 'no-local', message: 'local TLS is off limits' },
  });
  await new Promise((res) => setTimeout(res, 50));
  expect(tlsAccepts).toBe(before);
  expect(events.map((e) => [e.decision, e.rule, e.status, e.outcome])).toEqual([
    ['deny', 'no-local', 403, 'denied'],
    ['deny', 'no-local', 403, 'denied'],
  ]);
});

test('absolute-form GET/POST allowed: forwarded with hop-by-hop headers stripped both ways, streamed back', async () => {
  current = policy({ defaultAction: 'deny', rules: [{ name: 'loopback', action: 'allow', match: { http: { hosts: ['127.0.0.1'] } } }] });
  const r = await get(`http://127.0.0.1:${upPort}/v1/x?q=1`, {
    'proxy-authorization': 'Basic c2VjcmV0',
    'proxy-connection': 'keep-alive',
    connection: 'x-drop-me',
    'x-drop-me': 'gone',
    te: 'trailers',
    'x-keep': 'kept',
  });
  expect(r.status).toBe(200);
  expect(r.body).toBe('echo GET /v1/x?q=1 ');
  expect(r.headers['x-secret-hop']).toBeUndefined();
  expect(r.headers['keep-alive']).not.toBe('timeout=77'); // the proxy's own keep-alive may appear
  const seen = upRequests[0].headers;
  expect(seen.host).toBe(`127.0.0.1:${upPort}`);
  expect(seen['x-keep']).toBe('kept');
  for (const h of ['proxy-authorization', 'proxy-connection', 'x-drop-me', 'te']) expect(seen[h]).toBeUndefined();
  const p = await get(`http://127.0.0.1:${upPort}/submit`, { 'content-type': 'text/plain' }, 'POST', 'hello body');
  expect(p.body).toBe('echo POST /submit hello body');
  await until(() => events.length === 2);
  expect(events[1]).toMatchObject({
    kind: 'http',
    method: 'POST',
    host: '127.0.0.1',
    port: upPort,
    path: '/submit',
    decision: 'allow',
    rule: 'loopback',
    status: 200,
    outcome: 'forwarded',
    bytesUp: 10,
  });
  expect(events[1].bytesDown).toBe('echo POST /submit hello body'.length);
});

test('absolute-form denied by defaultAction: 403 naming defaultAction, nothing sent upstream', async () => {
  const before = upAccepts;
  const r = await get(`http://127.0.0.1:${upPort}/x`);
  expect(r.status).toBe(403);
  expect(JSON.parse(r.body)).toEqual({
    error: { type: 'policy_denied', rule: 'defaultAction', message: 'no rule matched; policy default is deny' },
  });
  expect(upAccepts).toBe(before);
  expect(events[0]).toMatchObject({ decision: 'deny', outcome: 'denied', status: 403 });
  current = policy({ defaultAction: 'allow' });
  expect((await get(`http://127.0.0.1:${upPort}/x`)).status).toBe(200);
});

test('wildcard rules: *.example.com allows subdomains of any depth, not the apex or look-alikes', async () => {
  ctx.lookup = toLoopback;
  current = policy({ defaultAction: 'deny', rules: [{ name: 'example', action: 'allow', match: { http: { hosts: ['*.example.com'] } } }] });
  expect((await get(`http://api.example.com:${upPort}/`)).status).toBe(200);
  expect((await get(`http://a.b.EXAMPLE.com.:${upPort}/`)).status).toBe(200);
  expect((await get(`http://example.com:${upPort}/`)).status).toBe(403);
  expect((await get(`http://evilexample.com:${upPort}/`)).status).toBe(403);
  expect(upRequests.map((u) => u.headers.host)).toEqual([`api.example.com:${upPort}`, `a.b.example.com.:${upPort}`]);
});

test('CIDR rules: allow by range; a name that resolves into a denied range is refused before connecting', async () => {
  current = policy({
    defaultAction: 'deny',
    rules: [{ name: 'loopback-range', action: 'allow', match: { http: { hosts: ['127.0.0.0/8'] } } }],
  });
  expect((await get(`http://127.0.0.1:${upPort}/`)).status).toBe(200);
  expect((await get(`http://2130706433:${upPort}/`)).status).toBe(200); // 127.0.0.1 written as a number
  ctx.lookup = toLoopback;
  current = policy({
    defaultAction: 'deny',
    rules: [
      { name: 'example', action: 'allow', match: { http: { hosts: ['*.example.com'] } } },
      { name: 'no-loopback', action: 'deny', match: { http: { hosts: ['127.0.0.0/8'] } } },
    ],
  });
  const before = upAccepts;
  const r = await get(`http://rebind.example.com:${upPort}/`);
  expect(r.status).toBe(403);
  expect(JSON.parse(r.body).error).toMatchObject({ type: 'policy_denied', rule: 'no-loopback' });
  expect(JSON.parse(r.body).error.message).toMatch(/rebind.example.com resolves to 127.0.0.1/);
  const c = await raw(`CONNECT rebind.example.com:${tlsPort} HTTP/1.1\r\n\r\n`);
  expect(c).toMatch(/^HTTP\/1.1 403 /);
  expect(upAccepts).toBe(before);
});

test('unreachable host: 502 naming the host; connect timeout: 504', async () => {
  const closed = net.createServer();
  const deadPort = await listen(closed);
  await new Promise((r) => closed.close(r));
  current = policy({ defaultAction: 'allow' });
  const c = await raw(`CONNECT 127.0.0.1:${deadPort} HTTP/1.1\r\n\r\n`);
  expect(c).toMatch(/^HTTP\/1.1 502 /);
  expect(JSON.parse(c.slice(c.indexOf('\r\n\r\n') + 4)).error).toMatchObject({
    type: 'upstream_unreachable',
    host: '127.0.0.1',
    port: deadPort,
  });
  const g = await get(`http://127.0.0.1:${deadPort}/`);
  expect(g.status).toBe(502);
  expect(g.body).toMatch(/cannot reach 127.0.0.1/);

  ctx.lookup = (() => {}) as unknown as net.LookupFunction; // DNS that never answers
  const t0 = Date.now();
  const t = await raw(`CONNECT slow.example:443 HTTP/1.1\r\n\r\n`);
  expect(t).toMatch(/^HTTP\/1.1 504 /);
  expect(t).toMatch(/slow.example:443 timed out/);
  expect((await get('http://slow.example/')).status).toBe(504);
  expect(Date.now() - t0).toBeLessThan(1500);
  await until(() => events.length === 4);
  expect(events.map((e) => [e.status, e.outcome])).toEqual([
    [502, 'error'],
    [502, 'error'],
    [504, 'error'],
    [504, 'error'],
  ]);
});

test('request smuggling shapes answer 400 and never reach the upstream', async () => {
  current = policy({ defaultAction: 'allow' });
  const target = `http://127.0.0.1:${upPort}/`;
  const before = upAccepts;
  const shapes = [
    // rejected by node's parser (llhttp) before the handler runs
    `POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n`,
    `GET ${target} HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n`,
    `POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`,
    `POST ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    // accepted by node, refused by the proxy
    `POST ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc`,
  ];
  for (const s of shapes) expect(await raw(s)).toMatch(/^HTTP\/1.1 400 /);
  // A bad chunk size after a valid start: the upstream request is aborted, never completed.
  await raw(`POST ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nGET /smuggled HTTP/1.1\r\n\r\n`);
  await new Promise((r) => setTimeout(r, 50));
  expect(upRequests).toEqual([]);
  expect(upAccepts - before).toBeLessThanOrEqual(1);
});

test('hold: without a gate it is a 403 saying so; with a gate, approval forwards and refusal denies', async () => {
  current = policy({ defaultAction: 'deny', rules: [{ name: 'ask-first', action: 'hold', match: { http: { hosts: ['127.0.0.1'] } } }] });
  const r = await get(`http://127.0.0.1:${upPort}/`);
  expect(r.status).toBe(403);
  expect(JSON.parse(r.body).error).toMatchObject({
    rule: 'ask-first',
    message: expect.stringMatching(/no approval service is configured/),
  });
  const held: HeldHttpRequest[] = [];
  let answer = { approved: true, reason: 'ok by alice' };
  const gate: HttpApprovalGate = { hold: async (h) => (held.push(h), answer) };
  ctx.approvals = gate;
  expect((await get(`http://127.0.0.1:${upPort}/ok`)).status).toBe(200);
  expect(held[0].operation).toMatchObject({ target: '', method: 'GET', host: '127.0.0.1', port: upPort, path: '/ok' });
  expect(held[0].decision).toMatchObject({ action: 'hold', rule: 'ask-first' });
  answer = { approved: false, reason: 'not today' };
  const d = await raw(`CONNECT 127.0.0.1:${tlsPort} HTTP/1.1\r\n\r\n`);
  expect(d).toMatch(/^HTTP\/1.1 403 /);
  expect(d).toMatch(/approval denied: not today/);
  await until(() => events.length === 3);
  expect(events.map((e) => [e.decision, e.outcome, e.approval?.approved])).toEqual([
    ['hold', 'denied', undefined],
    ['hold', 'forwarded', true],
    ['hold', 'denied', false],
  ]);
});
