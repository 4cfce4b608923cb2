// Per-caller identity on the HTTP paths (spec.identity). Named routes: requests carry the caller's
// JWT as `Authorization: Bearer` or `Proxy-Authorization`; the sidecar verifies it against a local
// OIDC issuer stand-in, answers 401 when it is missing or refused, and decides for the token's
// groups; the agent's token never reaches the upstream, which gets the route's injected credential.
// Forward proxy: the token travels only in Proxy-Authorization; 407 when missing or refused.
import * as http from 'node:http';
import * as net from 'node:net';
import { makeKey, TestIssuer, type IssuerKey } from '../../../test/support/common/oidc-issuer';
import { startSidecarFixture, type SidecarFixture } from '../../../test/support/sidecar/sidecar-fixture';

const AUD = 'agent-warden';
const UPSTREAM_KEY = 'sk-real-upstream-key-0123456789';
let issuer: TestIssuer;
let key: IssuerKey;
let fx: SidecarFixture;

beforeAll(async () => {
  key = await makeKey('key-1');
  issuer = await TestIssuer.start([key]);
  fx = await startSidecarFixture({
    secrets: { api: { token: UPSTREAM_KEY } },
    sidecar: { identityVerifier: { allowInsecureLoopback: true } },
    policy: (port) => `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: caller-identity}
spec:
  defaultAction: allow
  identity:
    issuer: ${issuer.url}
    audiences: [${AUD}]
  targets:
    - name: api
      http:
        baseUrl: http://127.0.0.1:${port}
        credentialsSecret: api
        auth: {header: Authorization, valuePrefix: "Bearer "}
        timeout: 5s
  rules:
    - name: supervisors-may-delete
      action: allow
      match: {groups: [supervisors], http: {methods: [DELETE], paths: ["/echo/**"]}}
    - name: no-deletes
      action: deny
      match: {http: {methods: [DELETE]}}
`,
  });
});

afterAll(async () => {
  await fx?.close();
  await issuer?.stop();
});

const nowS = (): number => Math.floor(Date.now() / 1000);

function token(sub: string, groups: string[], extra: Record<string, unknown> = {}, k: IssuerKey = key): Promise<string> {
  return issuer.sign({ sub, groups, aud: AUD, iat: nowS(), exp: nowS() + 300, ...extra }, k);
}

async function call(method: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${fx.egress}/api/echo/items/7`, { method, headers });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

test('no token: 401 unauthenticated with a Bearer challenge; nothing reaches the upstream', async () => {
  const before = fx.upstream.requests.length;
  const r = await call('GET');
  expect(r.status).toBe(401);
  expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
  expect(r.body).toEqual({ error: { type: 'unauthenticated', message: expect.stringMatching(/no token/) } });
  expect(fx.upstream.requests.length).toBe(before);
  expect(fx.events.at(-1)).toMatchObject({ status: 401, decision: 'deny', reason: expect.stringMatching(/no token/) });
});

test('forged or expired tokens: 401 naming the failed check, never echoing the token', async () => {
  const forged = await token('supervisor-agent', ['supervisors'], {}, await makeKey('key-1'));
  const r = await call('DELETE', { authorization: `Bearer ${forged}` });
  expect(r.status).toBe(401);
  expect(r.body.error.type).toBe('unauthenticated');
  expect(r.body.error.message).toMatch(/signature/);
  expect(JSON.stringify(r.body)).not.toContain(forged.split('.')[2]);

  const expired = await token('supervisor-agent', ['supervisors'], { iat: nowS() - 3600, exp: nowS() - 600 });
  const e = await call('GET', { authorization: `Bearer ${expired}` });
  expect(e.status).toBe(401);
  expect(e.body.error.message).toMatch(/expired/);
});

test('a valid token: 200; the upstream gets the injected credential, not the agent token', async () => {
  const t = await token('worker-agent', ['workers']);
  const r = await call('GET', { authorization: `Bearer ${t}` });
  expect(r.status).toBe(200);
  const seen = fx.upstream.requests.at(-1)!;
  expect(seen.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
  expect(JSON.stringify(seen.headers)).not.toContain(t);
  expect(fx.events.at(-1)).toMatchObject({ status: 200, identity: { subject: 'worker-agent', groups: ['workers'], source: 'token' } });
});

test('group rule: a supervisor may DELETE, a worker may not', async () => {
  const worker = await call('DELETE', { authorization: `Bearer ${await token('worker-agent', ['workers'])}` });
  expect(worker.status).toBe(403);
  expect(worker.body.error).toMatchObject({ type: 'policy_denied', rule: 'no-deletes' });

  const sup = await token('supervisor-agent', ['supervisors']);
  // Proxy-Authorization works too, and is not forwarded either
  const r = await call('DELETE', { 'proxy-authorization': `Bearer ${sup}` });
  expect(r.status).toBe(200);
  expect(fx.upstream.requests.at(-1)!.method).toBe('DELETE');
  expect(JSON.stringify(fx.upstream.requests.at(-1)!.headers)).not.toContain(sup);
  // 'mask': the fake upstream echoes the injected key, which is scrubbed from the answer.
  expect(fx.events.at(-1)).toMatchObject({ decision: 'mask', rule: 'supervisors-may-delete', identity: { subject: 'supervisor-agent' } });
});

describe('forward proxy (absolute-form and CONNECT): the token travels in Proxy-Authorization', () => {
  function viaProxy(
    method: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    const egress = new URL(fx.egress);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: egress.hostname,
          port: egress.port,
          method,
          path: `http://127.0.0.1:${fx.upstream.port}/echo/items/7`,
          headers: { ...headers, host: `127.0.0.1:${fx.upstream.port}` },
          agent: false,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  function connect(headers: Record<string, string>): Promise<string> {
    const egress = new URL(fx.egress);
    return new Promise((resolve, reject) => {
      const s = net.connect(Number(egress.port), egress.hostname, () => {
        const extra = Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('');
        s.write(`CONNECT 127.0.0.1:${fx.upstream.port} HTTP/1.1\r\nHost: 127.0.0.1:${fx.upstream.port}\r\n${extra}\r\n`);
      });
      let raw = '';
      s.on('data', (c) => {
        raw += c.toString('latin1');
        if (raw.includes('\r\n\r\n')) {
          s.destroy();
          resolve(raw);
        }
      });
      s.on('close', () => resolve(raw));
      s.on('error', reject);
    });
  }

  test('no token, or the token only in Authorization (which belongs to the destination): 407 with a Bearer challenge', async () => {
    const none = await viaProxy('GET', {});
    expect(none.status).toBe(407);
    expect(none.headers['proxy-authenticate']).toBe('Bearer');
    expect(JSON.parse(none.body).error).toMatchObject({ type: 'unauthenticated', message: expect.stringMatching(/no token/) });
    const wrongHeader = await viaProxy('GET', { authorization: `Bearer ${await token('supervisor-agent', ['supervisors'])}` });
    expect(wrongHeader.status).toBe(407);
    expect((await connect({})).startsWith('HTTP/1.1 407 ')).toBe(true);
  });

  test('an expired token: 407 naming expiry', async () => {
    const expired = await token('supervisor-agent', ['supervisors'], { iat: nowS() - 3600, exp: nowS() - 600 });
    const r = await viaProxy('GET', { 'proxy-authorization': `Bearer ${expired}` });
    expect(r.status).toBe(407);
    expect(JSON.parse(r.body).error.message).toMatch(/expired/);
    expect(r.body).not.toContain(expired.split('.')[1]);
  });

  test('group rule: a supervisor may DELETE, a worker may not; the token is not forwarded', async () => {
    const worker = await viaProxy('DELETE', { 'proxy-authorization': `Bearer ${await token('worker-agent', ['workers'])}` });
    expect(worker.status).toBe(403);
    expect(JSON.parse(worker.body).error).toMatchObject({ type: 'policy_denied', rule: 'no-deletes' });
    const sup = await token('supervisor-agent', ['supervisors']);
    // Basic with the token as the password is how ordinary clients send proxy credentials
    const basic = 'Basic ' + Buffer.from(`agent:${sup}`).toString('base64');
    const r = await viaProxy('DELETE', { 'proxy-authorization': basic });
    expect(r.status).toBe(200);
    const seen = fx.upstream.requests.at(-1)!;
    expect(seen.method).toBe('DELETE');
    expect(seen.headers['proxy-authorization']).toBeUndefined();
    expect((await connect({ 'proxy-authorization': `Bearer ${sup}` })).startsWith('HTTP/1.1 200 ')).toBe(true);
  });
});
