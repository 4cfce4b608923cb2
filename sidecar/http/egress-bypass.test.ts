// Issue 10 §5, end to end through the sidecar's egress port (started in-process with startSidecar)
// with real clients (undici fetch and request, the openai SDK, curl when present) and a real Node
// HTTP upstream on port 0 that behaves as each test asks: echoes the request headers (debug
// endpoints do), streams events split across writes, answers in UTF-16, repeats JSON keys.
// Each test here failed on the code before the fix it proves.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { fetch as undiciFetch, request as undiciRequest } from 'undici';
import type { RunningSidecar } from '../main';
import type { HttpAuditEvent } from '../audit/events';
import { startSidecarFromFiles, type SidecarFromFiles } from '../../test/support/sidecar/sidecar-fixture';
import {
  startBehaviourUpstream,
  type Behaviour,
  type BehaviourUpstream,
  type SeenRequest,
} from '../../test/support/sidecar/behaviour-upstream';

const TOKEN = 'sk-live-Zq8Wd3Rt6Yh1Uj4Ik7Ol0Pa2Sx5Dc9Fv';
const USER = 'svc-reporting';
const PASSWORD = 'pw-Hx7!Qm2$Lr9#Tz4';

let upstream: BehaviourUpstream;
let upPort: number;
let sidecar: RunningSidecar;
let egress: string;
let started: SidecarFromFiles;
let seen: SeenRequest[];
let audits: HttpAuditEvent[] = [];
let behaviours: Map<string, Behaviour>;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function policyYaml(port: number): string {
  const base = `http://127.0.0.1:${port}`;
  return `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: egress-bypass}
spec:
  defaultAction: allow
  targets:
    - name: echo
      http: {baseUrl: ${base}, credentialsSecret: api, timeout: 5s}
    - name: echo-prefixed
      http: {baseUrl: ${base}, credentialsSecret: api, timeout: 5s, auth: {header: X-Api-Key, valuePrefix: "Token "}}
    - name: echo-basic
      http: {baseUrl: ${base}, credentialsSecret: basic, timeout: 5s, auth: {basic: true}}
    - name: echo-query
      http: {baseUrl: ${base}, credentialsSecret: api, timeout: 5s, auth: {queryParam: key}}
    - name: masked
      http: {baseUrl: ${base}, timeout: 5s}
    - name: echo-masked
      http: {baseUrl: ${base}, credentialsSecret: api, timeout: 5s}
    - name: rules
      http: {baseUrl: ${base}, timeout: 5s}
  rules:
    - name: no-forbidden-model
      action: deny
      match: {http: {json: [{path: $.model, values: [forbidden]}]}}
    - name: no-delete
      action: deny
      match: {http: {methods: [DELETE]}}
    - name: no-admin
      action: deny
      match: {http: {paths: ["/admin", "/admin/**"]}}
    - name: no-loopback
      action: deny
      # Not 127.0.0.1 itself (nor localhost, which covers it): the routes' upstream is there.
      match: {http: {hosts: ["::1"]}}
  masking:
    - name: pii
      targets: [masked, echo-masked]
      detectors: [credit-card, email, us-ssn, secret-key]
      strategy: redact
`;
}

beforeAll(async () => {
  upstream = await startBehaviourUpstream();
  ({ port: upPort, seen, behaviours } = upstream);
  started = await startSidecarFromFiles({
    policy: policyYaml(upPort),
    secrets: { api: { token: TOKEN }, basic: { username: USER, password: PASSWORD } },
  });
  ({ sidecar, egress, events: audits } = started);
});

afterAll(async () => {
  await started?.close();
  await upstream?.close();
});

beforeEach(() => {
  upstream.reset();
});

/** Raw HTTP/1.1 to the egress port (paths and headers exactly as given). */
function raw(
  pathname: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: sidecar.egressPort, path: pathname, method: opts.method ?? 'GET', headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const bytes = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: bytes.toString('utf8'), bytes });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Every spelling of a credential an echo can produce. */
function leaks(text: string, secret: string): string[] {
  const b64 = Buffer.from(secret).toString('base64');
  const forms = [secret, encodeURIComponent(secret), b64, b64.replace(/=+$/, '').slice(4, -4)];
  return forms.filter((f) => f.length > 0 && text.includes(f));
}

function curlAvailable(): boolean {
  try {
    fs.accessSync('/usr/bin/curl', fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('curl', ['-s', '--max-time', '5', ...args], (err, stdout) =>
      err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(stdout),
    ),
  );
}

// ------------------------------------------------------------------------------------------------
describe('the injected credential never comes back', () => {
  const echoJson: Behaviour = (req, _b, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ headers: req.headers, url: req.url }));
  };

  test('an upstream echoing the request headers in a JSON body (undici fetch)', async () => {
    behaviours.set('anything', echoJson);
    const res = await undiciFetch(`${egress}/echo/anything`);
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(seen[0].headers.authorization).toBe(`Bearer ${TOKEN}`); // it was injected
    expect(leaks(text, TOKEN)).toEqual([]);
    expect(JSON.parse(text).headers.authorization).toBe('[REDACTED:credential]');
    await sleep(20);
    expect(audits.at(-1)).toMatchObject({ target: 'echo', decision: 'mask', maskedBy: { credential: 1 } });
    expect(JSON.stringify(audits.at(-1))).not.toContain(TOKEN);
  });

  test('echoed in response headers, raw, base64 and URL-encoded (undici request)', async () => {
    behaviours.set('hdr', (req, _b, res) => {
      const auth = String(req.headers.authorization);
      res.writeHead(200, {
        'content-type': 'text/plain',
        'x-echo-authorization': auth,
        'x-echo-b64': Buffer.from(auth).toString('base64'),
        location: `/next?token=${encodeURIComponent(auth)}`,
        'content-disposition': `attachment; filename="${auth.slice(7)}.txt"`,
      });
      res.end('ok');
    });
    const r = await undiciRequest(`${egress}/echo/hdr`);
    const body = await r.body.text();
    expect(body).toBe('ok');
    const all = JSON.stringify(r.headers);
    expect(leaks(all, TOKEN)).toEqual([]);
    expect(r.headers['x-echo-authorization']).toBe('[REDACTED:credential]');
  });

  test('an event stream echoing the key split across writes (raw and base64)', async () => {
    behaviours.set('sse', async (req, _b, res) => {
      const auth = String(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const line = `data: ${JSON.stringify({ echo: auth })}\n\n`;
      const cut = line.indexOf(TOKEN) + 9;
      res.write(line.slice(0, cut));
      await sleep(30);
      res.write(line.slice(cut));
      await sleep(30);
      // The base64 form, split in three writes.
      const b64 = `data: ${Buffer.from(auth).toString('base64')}\n\n`;
      res.write(b64.slice(0, 12));
      await sleep(20);
      res.write(b64.slice(12, 30));
      await sleep(20);
      res.end(b64.slice(30) + 'data: [DONE]\n\n');
    });
    const res = await undiciFetch(`${egress}/echo/sse`);
    const text = await res.text();
    expect(leaks(text, TOKEN)).toEqual([]);
    expect(leaks(text, `Bearer ${TOKEN}`)).toEqual([]);
    expect(text).toContain('[REDACTED:credential]');
    expect(text).toContain('data: [DONE]');
  });

  test.each([
    ['OpenAI chat deltas', (t: string) => JSON.stringify({ choices: [{ index: 0, delta: { content: t }, finish_reason: null }] })],
    ['a format nobody modelled', (t: string) => JSON.stringify({ seq: 1, output: { text: t } })],
  ])('the key split across SSE events (%s) is found whole', async (_name, event) => {
    behaviours.set('split', async (req, _b, res) => {
      const auth = String(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const cuts = [0, 12, 13, 25, auth.length];
      for (let i = 0; i + 1 < cuts.length; i++) {
        res.write(`data: ${event(auth.slice(cuts[i], cuts[i + 1]))}\n\n`);
        await sleep(10);
      }
      res.end('data: [DONE]\n\n');
    });
    const text = await (await undiciFetch(`${egress}/echo/split`)).text();
    const pieces = text
      .split('\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => JSON.parse(l.slice(6)) as { choices?: Array<{ delta: { content: string } }>; output?: { text: string } })
      .map((o) => o.choices?.[0].delta.content ?? o.output?.text ?? '');
    expect(pieces.join('')).toBe('[REDACTED:credential]');
    expect(text).not.toContain(TOKEN.slice(0, 8));
    expect(text).not.toContain(TOKEN.slice(-8));
  });

  test('the same event stream on a masked route, and gzip-compressed bodies', async () => {
    behaviours.set('sse', async (req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const line = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: String(req.headers.authorization) }, finish_reason: null }] })}\n\n`;
      const cut = line.indexOf(TOKEN) + 5;
      res.write(line.slice(0, cut));
      await sleep(20);
      res.end(line.slice(cut) + 'data: [DONE]\n\n');
    });
    // Masked event streams go through the SSE maskers; the scrubber runs on what they send.
    const text = await (await undiciFetch(`${egress}/echo-masked/sse`)).text();
    expect(leaks(text, TOKEN)).toEqual([]);
    const zlib = await import('node:zlib');
    behaviours.set('gz', (req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' });
      res.end(zlib.gzipSync(Buffer.from(`binary\0${String(req.headers.authorization)}\0end`)));
    });
    const gz = await undiciRequest(`${egress}/echo/gz`);
    const bytes = Buffer.from(await gz.body.arrayBuffer());
    expect(bytes.toString('latin1')).not.toContain(TOKEN);
    expect(bytes.toString('latin1')).toContain('[REDACTED:credential]');
    // An encoding the sidecar cannot decode cannot be scrubbed: refused.
    behaviours.set('zz', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-encoding': 'x-unknown' });
      res.end('opaque');
    });
    const zz = await raw('/echo/zz');
    expect(zz.status).toBe(502);
    expect(JSON.parse(zz.text).error.type).toBe('unmaskable_response');
  });

  test('valuePrefix + secret, Basic credentials and query-parameter keys are scrubbed too', async () => {
    behaviours.set('anything', echoJson);
    const prefixed = await (await undiciFetch(`${egress}/echo-prefixed/anything`)).text();
    expect(seen[0].headers['x-api-key']).toBe(`Token ${TOKEN}`);
    expect(leaks(prefixed, TOKEN)).toEqual([]);
    const basic = await (await undiciFetch(`${egress}/echo-basic/anything`)).text();
    expect(seen[1].headers.authorization).toBe(`Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`);
    expect(leaks(basic, `${USER}:${PASSWORD}`)).toEqual([]);
    expect(leaks(basic, PASSWORD)).toEqual([]);
    const query = await (await undiciFetch(`${egress}/echo-query/anything`)).text();
    expect(seen[2].url).toContain(encodeURIComponent(TOKEN));
    expect(leaks(query, TOKEN)).toEqual([]);
  });

  test('base64 of a larger echo (the key at any offset) is scrubbed', async () => {
    for (const pad of ['', 'x', 'xy']) {
      behaviours.set('b64', (req, _b, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(Buffer.from(`${pad}{"authorization":"${String(req.headers.authorization)}"}`).toString('base64'));
      });
      const text = await (await undiciFetch(`${egress}/echo/b64`)).text();
      const decoded = Buffer.from(text.replace('[REDACTED:credential]', ''), 'base64').toString('latin1');
      expect(decoded).not.toContain(TOKEN.slice(3, -3));
    }
  });

  test('the openai SDK reading an echoing endpoint gets no key', async () => {
    const { default: OpenAI } = await import('openai');
    behaviours.set('completions', (req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-debug-auth': String(req.headers.authorization) });
      res.end(
        JSON.stringify({
          id: 'c1',
          object: 'chat.completion',
          created: 1,
          model: 'm',
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: `your key is ${String(req.headers.authorization)}` },
              finish_reason: 'stop',
            },
          ],
        }),
      );
    });
    const client = new OpenAI({ baseURL: `${egress}/echo/v1`, apiKey: 'warden-managed', maxRetries: 0, timeout: 5000 });
    const { data, response } = await client.chat.completions
      .create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    expect(data.choices[0].message.content).toBe('your key is [REDACTED:credential]');
    expect(response.headers.get('x-debug-auth')).toBe('[REDACTED:credential]');
  });

  (curlAvailable() ? test : test.skip)('curl sees no key either', async () => {
    behaviours.set('anything', echoJson);
    const out = await curl(['-i', `${egress}/echo/anything`]);
    expect(out).toContain('200');
    expect(leaks(out, TOKEN)).toEqual([]);
  });
});

// ------------------------------------------------------------------------------------------------
/** An absolute-form (forward proxy) request to the upstream, through the egress port. */
function viaProxy(pathname: string, opts: { method?: string; headers?: Record<string, string>; body?: string; host?: string } = {}) {
  return raw(`http://${opts.host ?? `127.0.0.1:${upPort}`}${pathname}`, opts);
}

describe('what is judged is what is sent: repeated JSON keys', () => {
  const bodies = [
    ['plain', '{"model":"forbidden","model":"ok"}'],
    ['escaped-equal key', '{"model":"forbidden","mod\\u0065l":"ok"}'],
    ['nested', '{"a":{"b":[{"x":1,"x":2}]},"model":"ok"}'],
  ] as const;

  test.each(bodies)('a request body with a repeated key (%s) is refused with 400 on a route (undici fetch)', async (_n, body) => {
    const res = await undiciFetch(`${egress}/rules/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { type: string; message: string } }).error).toMatchObject({ type: 'duplicate_json_key' });
    expect(seen).toHaveLength(0);
  });

  test('the same on the forward proxy (absolute-form)', async () => {
    const r = await viaProxy('/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: bodies[0][1],
    });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text).error.type).toBe('duplicate_json_key');
    expect(seen).toHaveLength(0);
  });

  test('a single forbidden value is denied by the rule; a clean body passes', async () => {
    const denied = await undiciFetch(`${egress}/rules/v1/chat/completions`, { method: 'POST', body: '{"model":"forbidden"}' });
    expect(denied.status).toBe(403);
    const ok = await undiciFetch(`${egress}/rules/v1/chat/completions`, { method: 'POST', body: '{"model":"ok"}' });
    expect(ok.status).toBe(200);
  });

  test('a masked response with a repeated key is sent re-serialised, never with the unmasked first value', async () => {
    behaviours.set('dup', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // JSON.parse keeps the last value (nothing to mask); a first-wins client would read the card.
      res.end('{"note":"4111 1111 1111 1111","note":"fine"}');
    });
    const text = await (await undiciFetch(`${egress}/masked/dup`)).text();
    expect(text).not.toContain('4111');
    expect(JSON.parse(text)).toEqual({ note: 'fine' });
    behaviours.set('dupsse', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('data: {"t":"4111 1111 1111 1111","t":"x"}\n\ndata: [DONE]\n\n');
    });
    const sse = await (await undiciFetch(`${egress}/masked/dupsse`)).text();
    expect(sse).not.toContain('4111');
  });
});

describe('rules see what the upstream will act on', () => {
  test.each(['X-HTTP-Method-Override', 'X-Method-Override', 'X-HTTP-Method'])(
    'POST + %s: DELETE is judged as DELETE (route and forward proxy)',
    async (header) => {
      const r = await undiciFetch(`${egress}/rules/items/1`, { method: 'POST', headers: { [header]: 'delete' } });
      expect(r.status).toBe(403);
      expect(((await r.json()) as { error: { rule: string } }).error.rule).toBe('no-delete');
      const f = await viaProxy('/items/1', { method: 'POST', headers: { [header]: 'DELETE' } });
      expect(f.status).toBe(403);
      expect(JSON.parse(f.text).error.rule).toBe('no-delete');
      expect(seen).toHaveLength(0);
    },
  );

  test('overrides that disagree are refused; an override to an allowed method passes and is forwarded', async () => {
    const r = await raw('/rules/items/1', { method: 'POST', headers: { 'x-http-method-override': 'PUT', 'x-method-override': 'DELETE' } });
    expect(r.status).toBe(400);
    const ok = await raw('/rules/items/1', { method: 'POST', headers: { 'x-http-method-override': 'PATCH' } });
    expect(ok.status).toBe(200);
    expect(seen[0]).toMatchObject({ method: 'POST', headers: { 'x-http-method-override': 'PATCH' } });
  });

  const sneaky = ['/admin;x=1/users', '/%61dmin/users', '//admin//users', '/admin;jsessionid=1', '/./admin/users'];
  test.each(sneaky)('route path %s is judged as /admin/... (denied) or refused', async (p) => {
    const r = await raw(`/rules${p}`);
    expect([400, 403]).toContain(r.status);
    expect(seen).toHaveLength(0);
  });
  test.each(sneaky)('forward-proxy path %s is judged as /admin/... (denied) or refused', async (p) => {
    const r = await viaProxy(p);
    expect([400, 403]).toContain(r.status);
    expect(seen).toHaveLength(0);
  });
  test.each(['/x/%2e%2e/admin', '/x/..;/admin', '/x/%252e%252e/admin', '/admin%2Fusers', '/x/%2e%2e%2fadmin'])(
    '%s is refused with 400 on both',
    async (p) => {
      expect((await raw(`/rules${p}`)).status).toBe(400);
      expect((await viaProxy(p)).status).toBe(400);
      expect(seen).toHaveLength(0);
    },
  );

  test('JSON body rules apply to forward-proxy requests (whatever the content type)', async () => {
    const denied = await viaProxy('/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{"model":"forbidden"}',
    });
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.text).error.rule).toBe('no-forbidden-model');
    expect(seen).toHaveLength(0);
    const ok = await viaProxy('/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model":"ok"}',
    });
    expect(ok.status).toBe(200);
    expect(seen[0].body).toBe('{"model":"ok"}');
  });
});

describe('the unspecified addresses count as loopback in host rules', () => {
  test.each(['0.0.0.0', '0', '0x0', '[::]', '[::ffff:0.0.0.0]'])('forward proxy to %s is denied by the loopback rule', async (h) => {
    const r = await viaProxy('/x', { host: `${h}:${upPort}` });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text).error.rule).toBe('no-loopback');
    expect(seen).toHaveLength(0);
  });
  test('CONNECT [::]:port is denied too', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: sidecar.egressPort, method: 'CONNECT', path: `[::]:${upPort}`, agent: false });
      req.on('connect', (res, socket) => {
        socket.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
  });
});

// ------------------------------------------------------------------------------------------------
describe('masking coverage', () => {
  const CARD = '4111 1111 1111 1111';
  const EMAIL = 'jane.doe@example.com';

  test('JSON object keys are masked (a map keyed by email)', async () => {
    behaviours.set('keyed', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ customers: { [EMAIL]: { plan: 'pro' }, 'bob@example.com': { plan: 'free' } } }));
    });
    const text = await (await undiciFetch(`${egress}/masked/keyed`)).text();
    expect(text).not.toContain(EMAIL);
    expect(text).not.toContain('bob@example.com');
    expect(Object.values(JSON.parse(text).customers)).toEqual([{ plan: 'pro' }, { plan: 'free' }]);
  });

  test('SSE comment, id: and event: lines, and lines that are no field, are masked', async () => {
    behaviours.set('lines', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`: debug ${EMAIL}\n\nid: ${CARD}\nevent: card-${CARD}\ndata: {"ok":1}\n\n{"text":"${CARD}"}\n\ndata: [DONE]\n\n`);
    });
    const text = await (await undiciFetch(`${egress}/masked/lines`)).text();
    expect(text).not.toContain(EMAIL);
    expect(text).not.toContain(CARD);
    expect(text).toContain('data: {"ok":1}');
    expect(text).toContain(': debug [REDACTED]');
  });

  test('response headers that carry data are masked; framing headers are left alone', async () => {
    behaviours.set('hdrs', (_req, _b, res) => {
      res.writeHead(200, {
        'content-type': 'text/plain',
        'content-disposition': `attachment; filename="${EMAIL}.csv"`,
        location: `/customers/${CARD.replace(/ /g, '')}`,
        'x-customer-email': EMAIL,
        'cache-control': 'max-age=4111111111111111',
      });
      res.end('ok');
    });
    const r = await undiciRequest(`${egress}/masked/hdrs`);
    await r.body.text();
    expect(JSON.stringify(r.headers)).not.toContain(EMAIL);
    expect(r.headers.location).toBe('/customers/[REDACTED]');
    expect(r.headers['cache-control']).toBe('max-age=4111111111111111');
  });

  test.each([
    ['utf-16le', (s: string) => Buffer.from(s, 'utf16le')],
    ['utf-16be', (s: string) => Buffer.from(s, 'utf16le').swap16()],
    ['iso-8859-1', (s: string) => Buffer.from(s, 'latin1')],
  ] as const)('a text body in %s is decoded as declared, masked, and sent as UTF-8', async (charset, encode) => {
    behaviours.set('cs', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': `text/plain; charset=${charset}` });
      res.end(encode(`Café card ${CARD} for ${EMAIL}`));
    });
    const res = await undiciFetch(`${egress}/masked/cs`);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await res.text()).toBe('Café card [REDACTED] for [REDACTED]');
  });

  test('UTF-16 JSON and event streams too; an unknown charset is refused', async () => {
    behaviours.set('cs16', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-16le' });
      res.end(Buffer.from(JSON.stringify({ note: CARD }), 'utf16le'));
    });
    expect(await (await undiciFetch(`${egress}/masked/cs16`)).json()).toEqual({ note: '[REDACTED]' });
    behaviours.set('sse16', async (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-16le' });
      const bytes = Buffer.from(`data: {"note":"${CARD}"}\n\ndata: [DONE]\n\n`, 'utf16le');
      res.write(bytes.subarray(0, 11)); // splits a UTF-16 code unit
      await sleep(20);
      res.end(bytes.subarray(11));
    });
    const sse = await (await undiciFetch(`${egress}/masked/sse16`)).text();
    expect(sse).toBe('data: {"note":"[REDACTED]"}\n\ndata: [DONE]\n\n');
    behaviours.set('csx', (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; charset=x-made-up' });
      res.end(CARD);
    });
    const refused = await raw('/masked/csx');
    expect(refused.status).toBe(502);
    expect(refused.text).not.toContain('4111');
  });
});

// ------------------------------------------------------------------------------------------------
describe('streamed values split across events and lines are masked (generic hold-back)', () => {
  const CARD = '4111 1111 1111 1111';
  /** The card split in two, with text around it. */
  const pieces = ['Card: 4111 11', '11 1111 1111 ok'];

  async function streamOut(
    behaviour: string,
    contentType: string,
    lines: string[],
  ): Promise<{ text: string; firstAt: number; lastSentAt: number }> {
    let lastSentAt = 0;
    behaviours.set(behaviour, async (_req, _b, res) => {
      res.writeHead(200, { 'content-type': contentType });
      for (const l of lines) {
        res.write(l);
        await sleep(15);
      }
      lastSentAt = performance.now();
      res.end();
    });
    const res = await undiciFetch(`${egress}/masked/${behaviour}`);
    let text = '';
    let firstAt = 0;
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (firstAt === 0) firstAt = performance.now();
      text += decoder.decode(chunk, { stream: true });
    }
    return { text, firstAt, lastSentAt };
  }

  const joined = (text: string, pick: (o: any) => string | undefined, sse: boolean): string =>
    text
      .split('\n')
      .filter((l) => l.trim() !== '' && (!sse || l.startsWith('data: {')))
      .map((l) => pick(JSON.parse(sse ? l.slice(6) : l)) ?? '')
      .join('');

  test('Ollama NDJSON (/api/chat), the card split across lines and chunks, streamed line by line', async () => {
    const lines = pieces.map((p) => JSON.stringify({ model: 'llama3', message: { role: 'assistant', content: p }, done: false }) + '\n');
    lines.push(JSON.stringify({ model: 'llama3', message: { role: 'assistant', content: '' }, done: true, eval_count: 5 }) + '\n');
    // The first line also split mid-way, across two writes.
    const split = [lines[0].slice(0, 20), lines[0].slice(20), ...lines.slice(1)];
    const out = await streamOut('ollama', 'application/x-ndjson', split);
    expect(out.text).not.toContain('4111');
    expect(joined(out.text, (o) => o.message?.content, false)).toBe('Card: [REDACTED] ok');
    // Each line is valid JSON, and the last one still says done.
    const parsed = out.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(parsed.at(-1)).toMatchObject({ done: true });
    expect(out.firstAt).toBeLessThan(out.lastSentAt); // streamed, not buffered whole
  });

  test('Ollama /api/generate (`response`) too', async () => {
    const lines = [
      ...pieces.map((p) => JSON.stringify({ response: p, done: false }) + '\n'),
      JSON.stringify({ response: '', done: true }) + '\n',
    ];
    const out = await streamOut('generate', 'application/x-ndjson', lines);
    expect(joined(out.text, (o) => o.response, false)).toBe('Card: [REDACTED] ok');
  });

  test('OpenAI legacy completions (choices[].text)', async () => {
    const ev = (text: string, finish: string | null) =>
      `data: ${JSON.stringify({ id: 'c', object: 'text_completion', choices: [{ index: 0, text, finish_reason: finish }] })}\n\n`;
    const out = await streamOut('legacy', 'text/event-stream', [
      ev(pieces[0], null),
      ev(pieces[1], null),
      ev('', 'stop'),
      'data: [DONE]\n\n',
    ]);
    expect(out.text).not.toContain('4111');
    expect(joined(out.text, (o) => o.choices?.[0]?.text, true)).toBe('Card: [REDACTED] ok');
  });

  test('Gemini streamGenerateContent (candidates[].content.parts[].text), the last chunk carrying text and finishReason', async () => {
    const ev = (text: string, finish?: string) =>
      `data: ${JSON.stringify({ candidates: [{ content: { role: 'model', parts: [{ text }] }, index: 0, ...(finish ? { finishReason: finish } : {}) }] })}\r\n\r\n`;
    const out = await streamOut('gemini', 'text/event-stream', [ev(pieces[0]), ev(pieces[1], 'STOP')]);
    expect(out.text).not.toContain('4111');
    expect(joined(out.text, (o) => o.candidates?.[0]?.content?.parts?.[0]?.text, true)).toBe('Card: [REDACTED] ok');
  });

  test('TGI token stream (token.text), generated_text in the final event masked whole', async () => {
    const ev = (text: string, final: boolean) =>
      `data:${JSON.stringify({ index: 1, token: { id: 1, text, logprob: 0, special: false }, generated_text: final ? `${pieces.join('')}` : null, details: null })}\n\n`;
    const out = await streamOut('tgi', 'text/event-stream', [ev(pieces[0], false), ev(pieces[1], false), ev('', true)]);
    expect(out.text).not.toContain('4111');
    expect(out.text).not.toContain(CARD);
  });
});

// ------------------------------------------------------------------------------------------------
describe('limits', () => {
  const body = (size: number): string => {
    const head = '{"model":"ok","pad":"';
    return head + 'x'.repeat(size - head.length - 2) + '"}';
  };

  test('the forward proxy reads a judged body of MAX_FORWARD_BODY_BYTES, and refuses one byte more (413)', async () => {
    const { MAX_FORWARD_BODY_BYTES } = await import('./forward/forward-proxy');
    const at = await viaProxy('/v1/x', { method: 'POST', body: body(MAX_FORWARD_BODY_BYTES) });
    expect(at.status).toBe(200);
    expect(seen[0].body.length).toBe(MAX_FORWARD_BODY_BYTES);
    const past = await viaProxy('/v1/x', { method: 'POST', body: body(MAX_FORWARD_BODY_BYTES + 1) });
    expect(past.status).toBe(413);
    expect(seen).toHaveLength(1);
  });

  test('an NDJSON line is held up to MAX_NDJSON_LINE_CHARS; past it the stream ends with an error line', async () => {
    const { MAX_NDJSON_LINE_CHARS } = await import('./routes/route-proxy');
    const send =
      (n: number, terminate: boolean): Behaviour =>
      async (_req, _b, res) => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        const line = body(n);
        res.write(line.slice(0, n >> 1));
        await sleep(20);
        res.end(line.slice(n >> 1) + (terminate ? '\n' : ''));
      };
    behaviours.set('big', send(MAX_NDJSON_LINE_CHARS, true));
    const at = await (await undiciFetch(`${egress}/masked/big`)).text();
    expect(at.length).toBe(MAX_NDJSON_LINE_CHARS + 1);
    // Never terminated: however the transport chunks it, more than the limit is held.
    behaviours.set('big', send(MAX_NDJSON_LINE_CHARS + 1, false));
    const past = await (await undiciFetch(`${egress}/masked/big`)).text();
    expect(JSON.parse(past.trim()).error.type).toBe('unmaskable_response');
  });
});

test('an event stream that never completes an event is buffered up to MAX_SSE_EVENT_BYTES, then refused', async () => {
  const { MAX_SSE_EVENT_BYTES } = await import('./routes/route-proxy');
  const send =
    (n: number, terminate: boolean): Behaviour =>
    async (_req, _b, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const line = 'data: ' + 'x'.repeat(n - 6);
      res.write(line.slice(0, n >> 1));
      await sleep(20);
      res.write(line.slice(n >> 1));
      await sleep(20);
      res.end(terminate ? '\n\n' : '');
    };
  behaviours.set('long', send(MAX_SSE_EVENT_BYTES, true));
  const at = await (await undiciFetch(`${egress}/masked/long`)).text();
  // Plain-text data is held back like streamed text: its tail may come as an event of its own.
  const data = at
    .split('\n\n')
    .filter((e) => e !== '')
    .map((e) => e.replace(/^data: ?/, ''))
    .join('');
  expect(data.length).toBe(MAX_SSE_EVENT_BYTES - 6);
  behaviours.set('long', send(MAX_SSE_EVENT_BYTES + 1, false));
  const past = await (await undiciFetch(`${egress}/masked/long`)).text();
  expect(past).toMatch(/^event: error\ndata: \{"error":\{"type":"unmaskable_response"/);
});
