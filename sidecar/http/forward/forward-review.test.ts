// Forward-path regressions from review, with real servers on 127.0.0.1:0: an upstream that never
// answers gets 504, a failing token verifier's internals are not echoed, and `Expect:
// 100-continue` on the egress port is answered only after the decision.
import * as http from 'node:http';
import * as net from 'node:net';
import { compilePolicy, type CompiledPolicy } from '../../../common/policy/compile';
import type { Identity } from '../../../common/policy/types';
import { createEgressServer } from '../egress-server';
import type { RouteHandler } from '../routes/route-proxy';
import { createForwardProxyServer, type ForwardProxyContext } from './forward-proxy';

const who: Identity = { subject: 'agent', groups: [], source: 'pod' };
const listen = (s: net.Server): Promise<number> =>
  new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as net.AddressInfo).port)));
const close = (s: net.Server): Promise<void> => new Promise((r) => s.close(() => r()));

function policy(defaultAction: 'allow' | 'deny'): CompiledPolicy {
  return compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'fwd' },
    spec: { defaultAction, targets: [] },
  });
}

function get(port: number, url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: url, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

it('answers 504 when the upstream accepts the request but never responds', async () => {
  const silent = http.createServer(() => undefined); // reads the request, never answers
  const upPort = await listen(silent);
  const ctx: ForwardProxyContext = {
    policy: () => policy('allow'),
    identity: who,
    connectTimeoutMs: 1000,
    responseTimeoutMs: 300,
    audit: () => undefined,
  };
  const proxy = createForwardProxyServer(ctx);
  const port = await listen(proxy);
  try {
    const started = Date.now();
    const r = await get(port, `http://127.0.0.1:${upPort}/slow`);
    expect(r.status).toBe(504);
    expect(JSON.parse(r.body).error.type).toBe('upstream_timeout');
    expect(Date.now() - started).toBeLessThan(3000);
  } finally {
    proxy.closeAllConnections();
    silent.closeAllConnections();
    await close(proxy);
    await close(silent);
  }
});

it('does not echo a failing verifier’s internal message in the 407', async () => {
  const ctx: ForwardProxyContext = {
    policy: () => policy('allow'),
    identity: () => Promise.reject(new Error('jwks fetch failed: https://internal-idp.local/keys ECONNREFUSED')),
    connectTimeoutMs: 1000,
    audit: () => undefined,
  };
  const proxy = createForwardProxyServer(ctx);
  const port = await listen(proxy);
  try {
    const r = await get(port, 'http://127.0.0.1:9/x');
    expect(r.status).toBe(407);
    expect(JSON.parse(r.body).error.message).toBe('token refused: the token could not be verified');
  } finally {
    proxy.closeAllConnections();
    await close(proxy);
  }
});

it('sends 100 Continue for an absolute-form request only once it is allowed', async () => {
  let current = policy('deny');
  const routes = Object.assign(() => undefined, {
    checkContinue: () => undefined,
    close: async () => undefined,
  }) as unknown as RouteHandler;
  const egress = createEgressServer({
    routes,
    forward: { policy: () => current, identity: who, connectTimeoutMs: 1000, audit: () => undefined },
  });
  const port = await listen(egress);
  const upstream = http.createServer((req, res) => req.resume().on('end', () => res.end('ok')));
  const upPort = await listen(upstream);
  const attempt = (): Promise<{ status: number; continued: boolean }> =>
    new Promise((resolve, reject) => {
      let continued = false;
      const req = http.request({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `http://127.0.0.1:${upPort}/x`,
        headers: { expect: '100-continue', 'content-length': '2' },
        agent: false,
      });
      req.on('continue', () => {
        continued = true;
        req.end('hi');
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, continued }));
      });
      req.on('error', reject);
      req.flushHeaders();
    });
  try {
    expect(await attempt()).toEqual({ status: 403, continued: false });
    current = policy('allow');
    expect(await attempt()).toEqual({ status: 200, continued: true });
  } finally {
    egress.closeAllConnections();
    upstream.closeAllConnections();
    await close(egress);
    await close(upstream);
  }
});
