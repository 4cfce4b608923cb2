// Red-team pass over the HTTP egress path (issue 10 §5), end to end through the sidecar's egress
// port (started in-process with startSidecar), with real clients (undici, raw node:http) and a real
// Node HTTP upstream on port 0 that records what reached it. Each test here failed on the code
// before the fix it proves.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as zlib from 'node:zlib';
import { fetch as undiciFetch } from 'undici';
import type { RunningSidecar } from '../main';
import { startSidecarFromFiles, type SidecarFromFiles } from '../../test/support/sidecar/sidecar-fixture';
import {
  startBehaviourUpstream,
  type Behaviour,
  type BehaviourUpstream,
  type SeenRequest,
} from '../../test/support/sidecar/behaviour-upstream';

/** A base64-style key with the characters HTML-safe JSON encoders escape (`+`, `&`, `<`). */
const TOKEN = 'Zq8Wd3+Rt6Yh1Uj4Ik7/Ol0Pa2&Sx5Dc<9Fv==';

let upstream: BehaviourUpstream;
let upPort: number;
let sidecar: RunningSidecar;
let egress: string;
let started: SidecarFromFiles;
/** Another local service, behind a rule that names it as localhost:<port>. */
let local: http.Server;
let localPort: number;
let localHits = 0;
let seen: SeenRequest[];
let behaviours: Map<string, Behaviour>;

function policyYaml(port: number): string {
  const base = `http://127.0.0.1:${port}`;
  return `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: egress-redteam}
spec:
  defaultAction: allow
  targets:
    - name: rules
      http: {baseUrl: ${base}, timeout: 5s}
    - name: masked
      http: {baseUrl: ${base}, timeout: 5s}
    - name: echo
      http: {baseUrl: ${base}, credentialsSecret: api, timeout: 5s, auth: {header: X-Api-Key}}
    - name: checked
      http: {baseUrl: ${base}, timeout: 5s, unparseable: allow}
  rules:
    - name: no-secret-plans
      action: deny
      match: {target: checked, http: {response: {json: [{path: $.plan, values: [secret]}]}}}
    - name: no-forbidden-model
      action: deny
      match: {http: {json: [{path: $.model, values: [forbidden]}]}}
    - name: no-streaming
      action: deny
      match: {http: {json: [{path: $.stream, values: ["true"]}]}}
    - name: no-export
      action: deny
      match: {http: {methods: [GET], paths: ["/export"]}}
    - name: no-delete-tool
      action: deny
      match: {http: {json: [{path: $.params.name, values: [delete_db]}]}}
    - name: no-localhost
      action: deny
      match: {http: {hosts: ["localhost:${localPort}"]}}
  masking:
    - name: pii
      targets: [masked]
      detectors: [credit-card, email, us-ssn]
      strategy: redact
    - name: pay
      targets: [masked]
      jsonPaths: ["$..salary"]
      strategy: redact
`;
}

beforeAll(async () => {
  upstream = await startBehaviourUpstream();
  ({ port: upPort, seen, behaviours } = upstream);
  local = http.createServer((_req, res) => {
    localHits++;
    res.end('reached');
  });
  localPort = await new Promise<number>((r) => local.listen(0, '127.0.0.1', () => r((local.address() as AddressInfo).port)));
  started = await startSidecarFromFiles({ policy: policyYaml(upPort), secrets: { api: { token: TOKEN } } });
  ({ sidecar, egress } = started);
});

afterAll(async () => {
  await started?.close();
  await upstream?.close();
  local?.closeAllConnections();
  await new Promise<void>((r) => (local ? local.close(() => r()) : r()));
});

beforeEach(() => {
  upstream.reset();
});

/** Raw HTTP/1.1 to the egress port (path exactly as given: origin-form or absolute-form). */
function raw(
  target: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: sidecar.egressPort, path: target, method: opts.method ?? 'GET', headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

// ------------------------------------------------------------------------------------------------
describe('JSON keys that differ only in case (Go encoding/json matches struct fields case-insensitively)', () => {
  // Go's encoding/json (Ollama, most Go services) puts `"MODEL"`, `"Model"`, and even `"ſtream"`
  // (U+017F folds to s) into the field tagged `json:"model"`/`"stream"`, the last one winning.
  const single = [
    ['upper case', '{"MODEL":"forbidden"}', 'no-forbidden-model'],
    ['mixed case', '{"mOdEl":"forbidden"}', 'no-forbidden-model'],
    ['Unicode simple folding (long s)', '{"model":"ok","ſtream":true}', 'no-streaming'],
  ] as const;

  test.each(single)('a lone key spelled in another case (%s) meets the rule on that key (route)', async (_n, body, rule) => {
    const r = await undiciFetch(`${egress}/rules/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(r.status).toBe(403);
    expect(((await r.json()) as { error: { rule: string } }).error.rule).toBe(rule);
    expect(seen).toHaveLength(0);
  });

  const collisions = [
    '{"model":"ok","Model":"forbidden"}',
    '{"Model":"forbidden","model":"ok"}',
    '{"a":[{"x":1,"X":2}],"model":"ok"}',
    '{"\u212Aey":1,"key":2}',
  ];
  test.each(collisions)(
    'keys of one object that collide once case-folded (%s) are refused with 400 (route and forward proxy)',
    async (body) => {
      const r = await undiciFetch(`${egress}/rules/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: { type: string } }).error.type).toBe('duplicate_json_key');
      const f = await raw(`http://127.0.0.1:${upPort}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(f.status).toBe(400);
      expect(JSON.parse(f.text).error.type).toBe('duplicate_json_key');
      expect(seen).toHaveLength(0);
    },
  );

  test('the forward proxy judges a lone upper-case key like the route', async () => {
    const f = await raw(`http://127.0.0.1:${upPort}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"MODEL":"forbidden"}',
    });
    expect(f.status).toBe(403);
    expect(JSON.parse(f.text).error.rule).toBe('no-forbidden-model');
    expect(seen).toHaveLength(0);
  });

  test('distinct keys and clean bodies still pass, forwarded as sent', async () => {
    const body = '{"model":"ok","models":["a"],"Stream":false}';
    const r = await undiciFetch(`${egress}/rules/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(r.status).toBe(200);
    expect(seen[0].body).toBe(body);
  });
});

// ------------------------------------------------------------------------------------------------
describe('numbers carry data too: a card number sent as a JSON number is masked', () => {
  const CARD = 4111111111111111;
  const serve =
    (type: string, body: string): Behaviour =>
    (_req, _b, res) => {
      res.writeHead(200, { 'content-type': type });
      res.end(body);
    };

  test('in a JSON body (undici fetch)', async () => {
    behaviours.set('num', serve('application/json', `{"customer":{"card":${CARD},"visits":42,"score":4.5}}`));
    const text = await (await undiciFetch(`${egress}/masked/num`)).text();
    expect(text).not.toContain('4111111111111111');
    const doc = JSON.parse(text) as { customer: { card: unknown; visits: unknown; score: unknown } };
    expect(doc.customer).toMatchObject({ visits: 42, score: 4.5 });
    expect(typeof doc.customer.card).toBe('string');
  });

  test('in an event stream and in NDJSON lines', async () => {
    behaviours.set('numsse', serve('text/event-stream', `data: {"card":${CARD},"n":1}\n\ndata: [DONE]\n\n`));
    const sse = await (await undiciFetch(`${egress}/masked/numsse`)).text();
    expect(sse).not.toContain('4111111111111111');
    expect(sse).toContain('"n":1');
    behaviours.set('numnd', serve('application/x-ndjson', `{"card":${CARD}}\n{"card":[${CARD}],"n":2}\n`));
    const nd = await (await undiciFetch(`${egress}/masked/numnd`)).text();
    expect(nd).not.toContain('4111111111111111');
    expect(nd).toContain('"n":2');
  });
});

// ------------------------------------------------------------------------------------------------
describe('streamed values split across events are masked whole', () => {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const stream =
    (type: string, parts: string[]): Behaviour =>
    async (_req, _b, res) => {
      res.writeHead(200, { 'content-type': type });
      for (const p of parts) {
        res.write(p);
        await sleep(15);
      }
      res.end();
    };

  test('plain-text SSE data (`data: <token>`), the card split over events', async () => {
    behaviours.set('plain', stream('text/event-stream', ['data: card 4111 1111\n\n', 'data:  1111 1111\n\n', 'data: , thanks\n\n']));
    const text = await (await undiciFetch(`${egress}/masked/plain`)).text();
    const joined = text
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.replace(/^data: ?/, ''))
      .join('');
    expect(joined.replace(/\s/g, '')).not.toContain('4111111111111111');
    expect(joined).toContain('card ');
    expect(joined).toContain(', thanks');
  });

  test.each([
    [
      'Anthropic legacy completions (SSE `completion`)',
      'text/event-stream',
      (t: string) => `event: completion\ndata: ${JSON.stringify({ type: 'completion', completion: t, stop_reason: null })}\n\n`,
    ],
    ['Bedrock Llama via NDJSON (`generation`)', 'application/x-ndjson', (t: string) => JSON.stringify({ generation: t }) + '\n'],
  ])('%s', async (_n, type, ev) => {
    behaviours.set('fmt', stream(type, [ev('card 4111 1111'), ev(' 1111 1111'), ev(' done')]));
    const text = await (await undiciFetch(`${egress}/masked/fmt`)).text();
    const pieces = text
      .split('\n')
      .map((l) => l.replace(/^data: ?/, ''))
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { completion?: string; generation?: string });
    const joined = pieces.map((p) => p.completion ?? p.generation ?? '').join('');
    expect(joined.replace(/\s/g, '')).not.toContain('4111111111111111');
    expect(joined).toContain('card ');
    expect(joined).toContain(' done');
  });
});

// ------------------------------------------------------------------------------------------------
describe('the injected credential echoed by HTML-safe JSON encoders', () => {
  /** `\uXXXX` for the characters the encoder escapes. */
  const escape = (v: string, chars: RegExp, upper: boolean): string =>
    JSON.stringify(v)
      .slice(1, -1)
      .replace(chars, (c) => '\\u' + (upper ? c.charCodeAt(0).toString(16).toUpperCase() : c.charCodeAt(0).toString(16)).padStart(4, '0'));

  test.each([
    // System.Text.Json's default encoder (ASP.NET Core): `+`, `&`, `<`, `>`, `'`, `` ` `` as upper-case \u.
    ['ASP.NET Core (System.Text.Json)', (v: string) => escape(v, /[+&<>'`]/g, true)],
    // Go encoding/json: `<`, `>`, `&` as lower-case \u.
    ['Go (encoding/json)', (v: string) => escape(v, /[<>&]/g, false)],
  ])('%s', async (_n, encode) => {
    behaviours.set('headers', (req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"headers":{"x-api-key":"${encode(String(req.headers['x-api-key']))}"}}`);
    });
    const res = await undiciFetch(`${egress}/echo/headers`);
    const text = await res.text();
    const echoed = (JSON.parse(text) as { headers: Record<string, string> }).headers['x-api-key'];
    expect(echoed).not.toContain(TOKEN.slice(8, 24));
    expect(echoed).toBe('[REDACTED:credential]');
  });

  test.each([
    // An HTML error page quoting the request: Go's html/template writes `+` as `&#43;`, `&` as `&amp;`.
    [
      'HTML (html/template)',
      'text/html',
      (v: string) => `<pre>x-api-key: ${v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/\+/g, '&#43;')}</pre>`,
    ],
    ['HTML (numeric references)', 'text/html', (v: string) => `<td>${v.replace(/[&<+]/g, (c) => `&#${c.charCodeAt(0)};`)}</td>`],
    ['a hex dump of the request', 'text/plain', (v: string) => `headers: ${Buffer.from(`x-api-key: ${v}`).toString('hex')}`],
  ])('%s', async (_n, type, render) => {
    behaviours.set('page', (req, _b, res) => {
      res.writeHead(500, { 'content-type': type });
      res.end(render(String(req.headers['x-api-key'])));
    });
    const text = await (await undiciFetch(`${egress}/echo/page`)).text();
    expect(text).toContain('[REDACTED:credential]');
    expect(text).not.toContain('Rt6Yh1Uj4Ik7');
    expect(text.toLowerCase()).not.toContain(Buffer.from('Rt6Yh1Uj4Ik7').toString('hex'));
  });
});

// ------------------------------------------------------------------------------------------------
describe('a __proto__ key hides members from the rules that JavaScript upstreams read', () => {
  // The upstream copies the body as many Express handlers do: Object.assign runs the __proto__
  // setter, so the copy inherits {model: "forbidden"} while JSON.parse's object has no `model`.
  const assignModel: Behaviour = (_req, body, res) => {
    const params = Object.assign({}, JSON.parse(body.toString('utf8'))) as { model?: string };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ actedOnModel: params.model ?? null }));
  };

  test.each([
    '{"__proto__":{"model":"forbidden"}}',
    '{"messages":[],"\\u005f_proto__":{"model":"forbidden"}}',
    '{"a":{"__proto__":{"x":1}}}',
  ])('%s is refused with 400 (route and forward proxy)', async (body) => {
    behaviours.set('assign', assignModel);
    const r = await undiciFetch(`${egress}/rules/assign`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { type: string } }).error.type).toBe('prototype_json_key');
    const f = await raw(`http://127.0.0.1:${upPort}/assign`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(f.status).toBe(400);
    expect(JSON.parse(f.text).error.type).toBe('prototype_json_key');
    expect(seen).toHaveLength(0);
  });

  test('a body naming __proto__ only in a value passes', async () => {
    behaviours.set('assign', assignModel);
    const r = await undiciFetch(`${egress}/rules/assign`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model":"ok","note":"__proto__"}',
    });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ actedOnModel: 'ok' });
  });
});

// ------------------------------------------------------------------------------------------------
describe('a body that is JSON to the sidecar but a form to the upstream', () => {
  // `"x&model=forbidden&y="` is valid JSON (a string: no `model` for the rules) and, as
  // application/x-www-form-urlencoded, the fields {x, model: "forbidden", y} to the upstream.
  const formModel: Behaviour = (req, body, res) => {
    const type = String(req.headers['content-type'] ?? '');
    const model = type.startsWith('application/x-www-form-urlencoded') ? new URLSearchParams(body.toString('utf8')).get('model') : null;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ actedOnModel: model }));
  };

  test.each(['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-8', 'multipart/form-data; boundary=x'])(
    'a JSON string body sent as %s meets the deny rule on body fields (route and forward proxy)',
    async (type) => {
      behaviours.set('form', formModel);
      const body = '"x&model=forbidden&y="';
      const r = await undiciFetch(`${egress}/rules/form`, { method: 'POST', headers: { 'content-type': type }, body });
      expect(r.status).toBe(403);
      expect(((await r.json()) as { error: { rule: string } }).error.rule).toBe('no-forbidden-model');
      const f = await raw(`http://127.0.0.1:${upPort}/form`, { method: 'POST', headers: { 'content-type': type }, body });
      expect(f.status).toBe(403);
      expect(seen).toHaveLength(0);
    },
  );

  test('the same JSON sent as JSON (or text/plain) is judged as JSON and passes', async () => {
    behaviours.set('form', formModel);
    for (const type of ['application/json', 'text/plain']) {
      const r = await undiciFetch(`${egress}/rules/form`, { method: 'POST', headers: { 'content-type': type }, body: '{"model":"ok"}' });
      expect(r.status).toBe(200);
    }
  });
});

// ------------------------------------------------------------------------------------------------
describe('HEAD runs the GET handler upstream', () => {
  // Flask, Express, Spring, Rails and Go's ServeMux all answer HEAD by running the GET handler
  // (side effects included) and dropping the body; checked against a real Flask app.
  let exports = 0;
  const exportView: Behaviour = (req, _b, res) => {
    if (req.method === 'GET' || req.method === 'HEAD') exports++;
    res.writeHead(200, { 'content-type': 'application/json', 'x-rows': '3' });
    res.end(req.method === 'HEAD' ? undefined : '{"rows":3}');
  };

  test.each(['HEAD', 'head'])('a rule denying GET denies HEAD (%s) too, route and forward proxy', async (method) => {
    behaviours.set('export', exportView);
    exports = 0;
    expect((await raw('/rules/export', { method: 'GET' })).status).toBe(403);
    const r = await raw('/rules/export', { method });
    expect(r.status).toBe(403);
    const f = await raw(`http://127.0.0.1:${upPort}/export`, { method });
    expect(f.status).toBe(403);
    expect(seen).toHaveLength(0);
    expect(exports).toBe(0);
  });

  test('as a method override too; HEAD elsewhere passes', async () => {
    behaviours.set('export', exportView);
    expect((await raw('/rules/export', { method: 'POST', headers: { 'x-http-method-override': 'HEAD' } })).status).toBe(403);
    expect((await raw('/rules/other', { method: 'HEAD' })).status).toBe(200);
    expect(seen.map((x) => x.method)).toEqual(['HEAD']);
  });
});

// ------------------------------------------------------------------------------------------------
describe('percent-encoded data in response headers', () => {
  test('Content-Disposition filename* (RFC 5987) and a Location query carrying an email and a card are masked', async () => {
    behaviours.set('enc', (_req, _b, res) => {
      res.writeHead(302, {
        'content-type': 'text/plain',
        // What browsers and SDKs decode for the file name: alice@example.com.csv.
        'content-disposition': `attachment; filename="export.csv"; filename*=UTF-8''${encodeURIComponent('alice@example.com')}.csv`,
        location: `/search?email=${encodeURIComponent('alice+tag@example.com')}&card=${encodeURIComponent('4111 1111 1111 1111')}&page=2`,
      });
      res.end('ok');
    });
    const r = await raw('/masked/enc');
    expect(r.status).toBe(302);
    const headers = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: sidecar.egressPort, path: '/masked/enc', agent: false }, (res) => {
          res.resume();
          resolve(res.headers);
        })
        .on('error', reject);
    });
    const all = decodeURIComponent(JSON.stringify(headers));
    expect(all).not.toContain('alice');
    expect(all.replace(/\D/g, '')).not.toContain('4111111111111111');
    expect(headers.location).toMatch(/^\/search\?email=.*&card=.*&page=2$/);
    expect(headers['content-disposition']).toMatch(/^attachment; filename="export.csv"; filename\*=UTF-8''/);
  });

  test('a percent-encoded run with an escape that is not UTF-8 is masked all the same', async () => {
    // `%FF` makes decodeURIComponent throw: the run was passed unread, and the address with it.
    behaviours.set('bad', (_req, _b, res) => {
      res.writeHead(302, { 'content-type': 'text/plain', location: '/search?q=alice%40example.com%FF&page=2' });
      res.end('ok');
    });
    const headers = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: sidecar.egressPort, path: '/masked/bad', agent: false }, (res) => {
          res.resume();
          resolve(res.headers);
        })
        .on('error', reject);
    });
    expect(headers.location).not.toMatch(/alice/i);
    expect(headers.location).toMatch(/^\/search\?q=.*&page=2$/);
  });
});

// ------------------------------------------------------------------------------------------------
describe('HTML character references spell data the reader decodes', () => {
  /** WordPress's antispambot(): each character randomly as itself, a decimal or a hex reference. */
  const antispambot = (s: string): string =>
    [...s].map((c, i) => (i % 3 === 0 ? `&#${c.charCodeAt(0)};` : i % 3 === 1 ? `&#x${c.charCodeAt(0).toString(16)};` : c)).join('');

  test('an obfuscated e-mail address and a card spaced with &#32; in an HTML page are masked', async () => {
    behaviours.set('staff', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        `<p>Contact <a href="mailto:${antispambot('alice@example.com')}">${antispambot('alice@example.com')}</a>, card 4111&#32;1111&#32;1111&#32;1111 &amp; more</p>`,
      );
    });
    const text = await (await undiciFetch(`${egress}/masked/staff`)).text();
    const decoded = text
      .replace(/&#(\d+);/g, (_m, d: string) => String.fromCharCode(Number(d)))
      .replace(/&#x([0-9a-f]+);/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
    expect(decoded).not.toContain('alice');
    expect(decoded.replace(/\D/g, '')).not.toContain('4111111111111111');
    expect(text).toContain('<p>Contact <a href="mailto:');
    expect(text).toContain('&amp; more</p>');
  });
});

// ------------------------------------------------------------------------------------------------
describe('a host rule naming localhost', () => {
  test('covers 127.0.0.1 and its other spellings on the forward proxy, absolute-form and CONNECT', async () => {
    for (const h of ['127.0.0.1', '127.1', '2130706433', '[::ffff:127.0.0.1]', 'localhost']) {
      const r = await raw(`http://${h}:${localPort}/x`);
      expect([h, r.status, JSON.parse(r.text).error.rule]).toEqual([h, 403, 'no-localhost']);
    }
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: sidecar.egressPort,
        method: 'CONNECT',
        path: `127.0.0.1:${localPort}`,
        agent: false,
      });
      req.on('connect', (res, socket) => {
        socket.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
    expect(localHits).toBe(0);
  });
});

// ------------------------------------------------------------------------------------------------
describe('JSON-RPC batches (an array of calls) are judged call by call', () => {
  // JSON-RPC 2.0 servers (MCP streamable HTTP 2025-03-26, Ethereum nodes, ...) run every call of a
  // batch; a rule on `$.params.name` must see each one, not the array.
  const executed: string[] = [];
  const rpc: Behaviour = (_req, body, res) => {
    const msg = JSON.parse(body.toString('utf8')) as unknown;
    const calls = (Array.isArray(msg) ? msg : [msg]) as Array<{ id: number; params?: { name?: string } }>;
    for (const c of calls) executed.push(c.params?.name ?? '');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(calls.map((c) => ({ jsonrpc: '2.0', id: c.id, result: {} }))));
  };
  const call = (id: number, name: string): object => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

  test.each([
    ['a batch of one', [call(1, 'delete_db')]],
    ['a forbidden call after an allowed one', [call(1, 'list_tables'), call(2, 'delete_db')]],
  ])('%s meets the deny rule (route and forward proxy)', async (_n, batch) => {
    behaviours.set('mcp', rpc);
    executed.length = 0;
    const body = JSON.stringify(batch);
    const r = await undiciFetch(`${egress}/rules/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(r.status).toBe(403);
    expect(((await r.json()) as { error: { rule: string } }).error.rule).toBe('no-delete-tool');
    const f = await raw(`http://127.0.0.1:${upPort}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(f.status).toBe(403);
    expect(executed).toEqual([]);
  });

  test('a batch of allowed calls passes', async () => {
    behaviours.set('mcp', rpc);
    executed.length = 0;
    const r = await undiciFetch(`${egress}/rules/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([call(1, 'list_tables'), call(2, 'describe')]),
    });
    expect(r.status).toBe(200);
    expect(executed).toEqual(['list_tables', 'describe']);
  });
});

// ------------------------------------------------------------------------------------------------
describe('Range requests on a masked route', () => {
  // A file served with range support (Flask send_file, Express static, S3, nginx): each range is
  // masked alone, so a card cut at the range boundary comes back whole once the agent joins them.
  const CSV = 'name,card\nalice,4111 1111 1111 1111\n';
  const ranged: Behaviour = (req, _b, res) => {
    const m = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
    if (!m) {
      res.writeHead(200, { 'content-type': 'text/csv', 'accept-ranges': 'bytes' });
      res.end(CSV);
      return;
    }
    const from = Number(m[1]);
    const to = m[2] === '' ? CSV.length - 1 : Number(m[2]);
    res.writeHead(206, { 'content-type': 'text/csv', 'content-range': `bytes ${from}-${to}/${CSV.length}` });
    res.end(CSV.slice(from, to + 1));
  };

  test('the range is not forwarded: the whole document is masked and sent', async () => {
    behaviours.set('export.csv', ranged);
    const first = await raw('/masked/export.csv', { headers: { range: 'bytes=0-25' } });
    const second = await raw('/masked/export.csv', { headers: { range: 'bytes=26-', 'if-range': '"x"' } });
    expect((first.text + second.text).replace(/\D/g, '')).not.toContain('4111111111111111');
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(first.text).toBe('name,card\nalice,[REDACTED]\n');
  });

  test('nor on a route with response rules (a range of JSON does not parse, so it would pass unchecked under unparseable: allow)', async () => {
    const DOC = '{"plan":"secret","steps":[1,2,3]}';
    behaviours.set('plan.json', (req, _b, res) => {
      const m = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
      if (!m) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(DOC);
        return;
      }
      const to = m[2] === '' ? DOC.length - 1 : Number(m[2]);
      res.writeHead(206, { 'content-type': 'application/json', 'content-range': `bytes ${m[1]}-${to}/${DOC.length}` });
      res.end(DOC.slice(Number(m[1]), to + 1));
    });
    const parts = await Promise.all(['bytes=0-9', 'bytes=10-'].map((range) => raw('/checked/plan.json', { headers: { range } })));
    expect(parts.map((p) => p.status)).toEqual([403, 403]);
    expect(parts.map((p) => p.text).join('')).not.toContain('"plan":"secret"');
  });

  test('routes that mask nothing keep range requests', async () => {
    behaviours.set('export.csv', ranged);
    const r = await raw('/rules/export.csv', { headers: { range: 'bytes=0-3' } });
    expect([r.status, r.text]).toEqual([206, 'name']);
  });
});

// ------------------------------------------------------------------------------------------------
describe('masking jsonPaths read keys case-folded', () => {
  test('`$..salary` masks "Salary" (Go structs without json tags, PascalCase .NET serializers), in bodies and streams', async () => {
    behaviours.set('emp', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"Employees":[{"Name":"Bo","Salary":120000},{"name":"Al","SALARY":"95k","salary_band":"B"}]}');
    });
    const doc = (await (await undiciFetch(`${egress}/masked/emp`)).json()) as { Employees: Array<Record<string, unknown>> };
    expect(doc.Employees[0]).toEqual({ Name: 'Bo', Salary: '[REDACTED]' });
    expect(doc.Employees[1]).toEqual({ name: 'Al', SALARY: '[REDACTED]', salary_band: 'B' });
    behaviours.set('empsse', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('data: {"Salary":120000}\n\n');
    });
    expect(await (await undiciFetch(`${egress}/masked/empsse`)).text()).not.toContain('120000');
  });
});

// ------------------------------------------------------------------------------------------------
describe('deflate as servers send it', () => {
  test.each([
    ['raw deflate', (b: Buffer) => zlib.deflateRawSync(b)],
    ['zlib-wrapped deflate', (b: Buffer) => zlib.deflateSync(b)],
  ])('a streamed %s body is decoded and scrubbed (not torn off after the headers)', async (_n, deflate) => {
    behaviours.set('dump', (req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'deflate' });
      res.end(deflate(Buffer.from(`x-api-key: ${String(req.headers['x-api-key'])}\n`)));
    });
    const r = await undiciFetch(`${egress}/echo/dump`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('x-api-key: [REDACTED:credential]\n');
  });
});
