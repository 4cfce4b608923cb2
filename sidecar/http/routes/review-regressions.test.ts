// Regressions from review, with real servers on 127.0.0.1:0: body rules and request masking
// whatever the Content-Type, opaque responses under masking, compressed event streams that die,
// upstream connections released after refused bodies, jsonPaths in event streams, a failing
// approval gate, the default-action denial body, deep JSON, decompression bombs.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { compilePolicy, type CompiledPolicy } from '../../../common/policy/compile';
import type { AccessPolicySpec, Identity } from '../../../common/policy/types';
import { SecretStore } from '../../secrets';
import type { HttpApprovalGate } from '../../approvals/hold';
import { createRouteHandler, type RouteHandler } from './route-proxy';
import type { HttpAuditEvent } from '../../audit/events';

const identity: Identity = { subject: 'agent', groups: [], source: 'pod' };

type Behaviour = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void;
let behaviour: Behaviour;
let received: Array<{ url?: string; headers: http.IncomingHttpHeaders; body: Buffer }> = [];
let upSocketsClosed = 0;
let upstream: http.Server;
let upPort: number;
let dir: string;
let server: http.Server;
let port: number;
let handler: RouteHandler;
let policy: CompiledPolicy;
const audits: HttpAuditEvent[] = [];
let gate: HttpApprovalGate | undefined;

function listen(s: http.Server): Promise<number> {
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));
}

function setPolicy(spec: Partial<AccessPolicySpec>): void {
  const base = `http://127.0.0.1:${upPort}`;
  policy = compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'review' },
    spec: {
      defaultAction: 'allow',
      targets: [
        { name: 'plain', http: { baseUrl: base } },
        { name: 'masked', http: { baseUrl: base, maxBodyBytes: 4096 } },
        { name: 'lenient', http: { baseUrl: base, unparseable: 'allow', maxBodyBytes: 4096 } },
      ],
      ...spec,
    },
  });
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

function send(pathname: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: pathname, method: opts.method ?? 'POST', headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const err = (r: Reply): { type: string; rule?: string; message: string } => JSON.parse(r.text).error;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push({ url: req.url, headers: req.headers, body });
      behaviour(req, body, res);
    });
  });
  upstream.on('connection', (s) => s.on('close', () => upSocketsClosed++));
  upPort = await listen(upstream);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-review-'));
  setPolicy({});
  handler = createRouteHandler({
    policy: () => policy,
    secrets: new SecretStore(dir),
    identity,
    audit: (e) => audits.push(e),
    get approvals() {
      return gate;
    },
  });
  server = http.createServer(handler);
  server.on('checkContinue', handler.checkContinue);
  port = await listen(server);
});

afterAll(async () => {
  server.closeAllConnections();
  upstream.closeAllConnections();
  await new Promise((r) => server.close(r));
  await new Promise((r) => upstream.close(r));
  await handler.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  received = [];
  gate = undefined;
  behaviour = (_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  };
});

describe('body rules whatever the Content-Type (fail closed)', () => {
  beforeEach(() =>
    setPolicy({
      rules: [{ name: 'no-gpt4', action: 'deny', match: { target: 'plain', http: { json: [{ path: '$.model', values: ['gpt-4'] }] } } }],
    }),
  );

  it.each([
    ['no Content-Type', undefined],
    ['octet-stream', 'application/octet-stream'],
    ['text/plain', 'text/plain'],
  ])('denies a JSON body sent with %s', async (_label, type) => {
    const r = await send('/plain/v1/chat', { headers: type ? { 'content-type': type } : {}, body: '{"model":"gpt-4"}' });
    expect(r.status).toBe(403);
    expect(err(r)).toMatchObject({ type: 'policy_denied', rule: 'no-gpt4' });
    expect(received).toHaveLength(0);
  });

  it('a body that is not JSON (form-urlencoded) cannot be checked: the deny rule matches', async () => {
    const r = await send('/plain/v1/chat', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'model=gpt-4' });
    expect(r.status).toBe(403);
    expect(received).toHaveLength(0);
  });

  it('lets other JSON bodies through, byte for byte', async () => {
    const r = await send('/plain/v1/chat', { body: '{"model":"gpt-3.5"}' });
    expect(r.status).toBe(200);
    expect(received[0].body.toString()).toBe('{"model":"gpt-3.5"}');
  });

  it('a body nested beyond the depth limit fails closed (403, not a 502)', async () => {
    const deep = '['.repeat(300) + '{"model":"gpt-4"}' + ']'.repeat(300);
    setPolicy({
      rules: [{ name: 'no-gpt4', action: 'deny', match: { target: 'plain', http: { json: [{ path: '$..model', values: ['gpt-4'] }] } } }],
    });
    const r = await send('/plain/v1/chat', { headers: { 'content-type': 'application/json' }, body: deep });
    expect(r.status).toBe(403);
    expect(received).toHaveLength(0);
  });

  it('a target without body rules or request masking streams any body untouched (no parsing)', async () => {
    setPolicy({
      rules: [{ name: 'no-gpt4', action: 'deny', match: { target: 'masked', http: { json: [{ path: '$.model', values: ['gpt-4'] }] } } }],
    });
    const r = await send('/plain/v1/upload', { headers: { 'content-type': 'application/octet-stream' }, body: 'model=gpt-4\x00\x01' });
    expect(r.status).toBe(200);
    expect(received[0].body.toString('latin1')).toBe('model=gpt-4\x00\x01');
  });
});

describe('request masking whatever the Content-Type', () => {
  beforeEach(() => setPolicy({ masking: [{ name: 'out', detectors: ['email'], direction: 'request', targets: ['masked', 'lenient'] }] }));

  it('masks a JSON body sent without a Content-Type', async () => {
    const r = await send('/masked/v1/chat', { body: '{"prompt":"mail bob@example.com"}' });
    expect(r.status).toBe(200);
    expect(received[0].body.toString()).toBe('{"prompt":"mail [REDACTED]"}');
  });

  it.each([
    ['application/octet-stream', 'bob@example.com'],
    ['application/x-www-form-urlencoded', 'to=bob%40example.com'],
    ['multipart/form-data; boundary=x', '--x\r\n\r\nbob@example.com\r\n--x--'],
  ])('refuses a %s body it cannot mask (422), passes it with unparseable: allow', async (type, body) => {
    const r = await send('/masked/v1/upload', { headers: { 'content-type': type }, body });
    expect(r.status).toBe(422);
    expect(err(r).type).toBe('unmaskable_request');
    expect(received).toHaveLength(0);
    const ok = await send('/lenient/v1/upload', { headers: { 'content-type': type }, body });
    expect(ok.status).toBe(200);
    expect(received[0].body.toString()).toBe(body);
  });

  it('refuses JSON nested beyond the depth limit as unmaskable (422), not a 502', async () => {
    const r = await send('/masked/v1/chat', {
      headers: { 'content-type': 'application/json' },
      body: '['.repeat(300) + '"bob@example.com"' + ']'.repeat(300),
    });
    expect(r.status).toBe(422);
    expect(err(r).message).toMatch(/nested deeper than/);
  });
});

describe('masked responses the maskers cannot read', () => {
  beforeEach(() => setPolicy({ masking: [{ name: 'in', detectors: ['email'], targets: ['masked', 'lenient'] }] }));

  it('refuses an octet-stream response (502 unmaskable_response) unless unparseable: allow', async () => {
    behaviour = (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end('bob@example.com');
    };
    const r = await send('/masked/v1/file', { method: 'GET' });
    expect(r.status).toBe(502);
    expect(err(r).type).toBe('unmaskable_response');
    const ok = await send('/lenient/v1/file', { method: 'GET' });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe('bob@example.com');
  });

  it('a gzip bomb is refused as too large even with unparseable: allow', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(1024 * 1024, 'a'));
    expect(bomb.length).toBeLessThan(4096);
    behaviour = (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
      res.end(bomb);
    };
    const r = await send('/lenient/v1/file', { method: 'GET' });
    expect(r.status).toBe(502);
    expect(err(r).message).toMatch(/exceeds the 4096-byte limit/);
  });

  it('a JSON response nested beyond the depth limit is refused as unmaskable', async () => {
    behaviour = (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('['.repeat(300) + ']'.repeat(300));
    };
    const r = await send('/masked/v1/x', { method: 'GET' });
    expect(r.status).toBe(502);
    expect(err(r)).toMatchObject({ type: 'unmaskable_response', message: expect.stringMatching(/nested deeper than/) });
  });

  it('releases the upstream connection at once after refusing an over-size response (no wait for bodyTimeout)', async () => {
    let upRes: http.ServerResponse | undefined;
    behaviour = (_req, _b, res) => {
      upRes = res;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('['.padEnd(8192, ' ')); // over the 4096-byte limit, and the response never ends
    };
    const closedBefore = upSocketsClosed;
    const r = await send('/masked/v1/big', { method: 'GET' });
    expect(r.status).toBe(502);
    const deadline = Date.now() + 3000;
    while (upSocketsClosed === closedBefore && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    expect(upSocketsClosed).toBeGreaterThan(closedBefore);
    upRes?.destroy();
  });
});

describe('event streams', () => {
  it('a gzip event stream whose upstream dies mid-stream settles (no hang)', async () => {
    setPolicy({ masking: [{ name: 'in', detectors: ['email'], targets: ['masked'] }] });
    behaviour = (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' });
      const gz = zlib.createGzip();
      gz.on('data', (c: Buffer) => res.write(c));
      gz.write('data: {"a":"hello"}\n\n');
      // The upstream dies once the agent has the first event (or after 3 s): a fixed delay raced the sidecar on loaded machines.
      gz.flush(() => void Promise.race([sawFirst, new Promise((r) => setTimeout(r, 3000))]).then(() => res.socket?.destroy()));
    };
    let firstSeen: () => void = () => undefined;
    const sawFirst = new Promise<void>((r) => (firstSeen = r));
    const started = Date.now();
    const outcome = await new Promise<string>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/masked/v1/stream', agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c;
          if (text.includes('hello')) firstSeen();
        });
        res.on('end', () => resolve(`end ${text}`));
        res.on('error', () => resolve(`error ${text}`));
        res.on('aborted', () => resolve(`aborted ${text}`));
      });
      req.on('error', () => resolve('request error'));
    });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(outcome).toMatch(/hello/);
    expect(outcome.startsWith('end')).toBe(false); // cut, not a clean end that looks complete
  });

  it('applies a jsonPaths-only masking rule to every event (examples/policy.yaml `$..email`)', async () => {
    setPolicy({ masking: [{ name: 'paths', jsonPaths: ['$..email'], targets: ['masked'] }] });
    behaviour = (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"user":{"email":"bob@example.com","name":"Bob"}}\n\n');
      res.end('data: {"items":[{"email":"ann@example.com"}]}\n\ndata: [DONE]\n\n');
    };
    const r = await send('/masked/v1/stream', { method: 'GET' });
    expect(r.status).toBe(200);
    expect(r.text).not.toMatch(/example\.com/);
    expect(r.text).toContain('"name":"Bob"');
    expect(r.text).toContain('data: [DONE]');
    expect(audits[audits.length - 1].masked).toBe(2);
  });

  it('runs the response rule and several masking rules over one parse of each event', async () => {
    setPolicy({
      rules: [
        {
          name: 'no-shell',
          action: 'deny',
          match: { target: 'masked', http: { response: { json: [{ path: '$..name', values: ['shell'] }] } } },
        },
      ],
      masking: [
        { name: 'emails', detectors: ['email'], targets: ['masked'] },
        { name: 'paths', jsonPaths: ['$..ssn'], targets: ['masked'] },
      ],
    });
    behaviour = (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"note":"bob@example.com","ssn":"x"}\n\n');
      res.end('data: {"tool":{"name":"shell"}}\n\ndata: {"after":1}\n\n');
    };
    const parse = jest.spyOn(JSON, 'parse');
    const r = await send('/masked/v1/stream', { method: 'GET' });
    const parses = parse.mock.calls.filter(([t]) => typeof t === 'string' && t.startsWith('{"'));
    parse.mockRestore();
    expect(r.text).toContain('data: {"note":"[REDACTED]","ssn":"[REDACTED]"}');
    expect(r.text).toMatch(/event: error\ndata: \{"error":\{"type":"policy_denied","rule":"no-shell"/);
    expect(r.text).not.toContain('after');
    expect(parses).toHaveLength(2); // two events read, each parsed once
  });
});

describe('denials', () => {
  it('a failing approval gate is a denial (403), not 502 upstream_unavailable', async () => {
    setPolicy({ rules: [{ name: 'ask', action: 'hold', match: { target: 'plain' } }] });
    gate = { hold: () => Promise.reject(new Error('approval store down')) };
    const r = await send('/plain/v1/x', { method: 'GET' });
    expect(r.status).toBe(403);
    expect(err(r)).toMatchObject({
      type: 'policy_denied',
      rule: 'ask',
      message: expect.stringMatching(/approval failed: approval store down/),
    });
    expect(received).toHaveLength(0);
  });

  it('a default-action denial names "defaultAction", as on the forward path', async () => {
    setPolicy({ defaultAction: 'deny' });
    const r = await send('/plain/v1/x', { method: 'GET' });
    expect(r.status).toBe(403);
    expect(err(r)).toEqual({ type: 'policy_denied', rule: 'defaultAction', message: 'no rule matched; policy default is deny' });
  });

  it('never forwards proxy-* or trailers headers upstream', async () => {
    setPolicy({});
    await send('/plain/v1/x', { method: 'GET', headers: { 'proxy-foo': '1', trailers: 'x-t', 'x-keep': 'yes' } });
    expect(received[0].headers['proxy-foo']).toBeUndefined();
    expect(received[0].headers['trailers']).toBeUndefined();
    expect(received[0].headers['x-keep']).toBe('yes');
  });
});

// Issue 10 §5: what the rules judge is what the upstream acts on. Each request here reached the
// upstream before (as something no rule denied); now it is refused before any byte leaves.
describe('smuggling corpus: paths, method overrides, repeated JSON keys', () => {
  beforeEach(() =>
    setPolicy({
      rules: [
        { name: 'no-delete', action: 'deny', match: { target: 'plain', http: { methods: ['DELETE'] } } },
        { name: 'no-admin', action: 'deny', match: { target: 'plain', http: { paths: ['/admin', '/admin/**'] } } },
        { name: 'no-gpt4', action: 'deny', match: { target: 'plain', http: { json: [{ path: '$..model', values: ['gpt-4'] }] } } },
      ],
    }),
  );

  it.each([
    ['matrix parameter', 'GET', '/plain/admin;a=b/users', {}, undefined, 403],
    ['matrix parameter on the last segment', 'GET', '/plain/admin;jsessionid=1', {}, undefined, 403],
    ['dot-dot with a matrix parameter', 'GET', '/plain/x/..;/admin', {}, undefined, 400],
    ['encoded dot segment', 'GET', '/plain/x/%2e%2e/admin', {}, undefined, 400],
    ['double-encoded dot segment', 'GET', '/plain/x/%252e%252e/admin', {}, undefined, 400],
    ['double-encoded letter', 'GET', '/plain/%2561dmin', {}, undefined, 400],
    ['encoded NUL after the segment', 'GET', '/plain/admin%00/users', {}, undefined, 400],
    ['encoded line break', 'GET', '/plain/admin%0a/users', {}, undefined, 400],
    ['X-HTTP-Method-Override', 'POST', '/plain/items/1', { 'x-http-method-override': 'DELETE' }, undefined, 403],
    ['X-Method-Override (lower case value)', 'POST', '/plain/items/1', { 'x-method-override': 'delete' }, undefined, 403],
    ['X-HTTP-Method', 'PUT', '/plain/items/1', { 'x-http-method': 'DELETE' }, undefined, 403],
    ['disagreeing overrides', 'POST', '/plain/items/1', { 'x-http-method-override': 'GET', 'x-http-method': 'DELETE' }, undefined, 400],
    ['an override that is no method', 'POST', '/plain/items/1', { 'x-http-method-override': 'DELETE /admin' }, undefined, 400],
    ['repeated key, forbidden value first', 'POST', '/plain/v1/chat', {}, '{"model":"gpt-4","model":"gpt-4o-mini"}', 400],
    ['repeated key spelled with an escape', 'POST', '/plain/v1/chat', {}, '{"model":"gpt-4","\\u006dodel":"ok"}', 400],
    ['repeated key deep inside', 'POST', '/plain/v1/chat', {}, '{"a":[{"b":{"model":"gpt-4","model":"ok"}}]}', 400],
  ] as const)('%s', async (_name, method, pathname, headers, body, status) => {
    const r = await send(pathname, { method, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, body });
    expect(r.status).toBe(status);
    expect(received).toHaveLength(0);
  });

  it('the same shapes without anything forbidden still pass, as sent', async () => {
    const r = await send('/plain/items;v=2/1', {
      method: 'POST',
      headers: { 'x-http-method-override': 'PATCH' },
      body: '{"model":"ok","other":{"model":"ok"}}',
    });
    expect(r.status).toBe(200);
    expect(received[0].url).toBe('/items;v=2/1');
    expect(received[0].headers['x-http-method-override']).toBe('PATCH');
  });
});
