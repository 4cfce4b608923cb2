import * as https from 'node:https';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { createLogger } from '../../common/log';
import { Metrics } from '../../common/metrics';
import { generateCa, issueServingCert, serviceDnsNames, type PemPair } from './ca';
import { parseAdmissionReview, startWebhookServer, type WebhookServer } from './server';
import { admissionReview } from '../../test/support/operator/admission-review';
import type { AdmissionHandler, AdmissionRequest, AdmissionReview } from './types';

const HOST = 'warden-webhook.agent-warden.svc';
const NAMES = serviceDnsNames('warden-webhook', 'agent-warden');

interface Reply {
  status: number;
  body: string;
  json(): AdmissionReview & { error?: string };
  reusedSocket: boolean;
  fingerprint: string;
}

function review(uid: string, extra: Partial<AdmissionRequest> = {}): AdmissionReview {
  return admissionReview({
    uid,
    namespace: 'agents',
    name: 'agent-1',
    object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'agent-1' } },
    ...extra,
  });
}

interface PostOptions {
  port: number;
  ca: string;
  path?: string;
  body?: string | Buffer;
  method?: string;
  contentType?: string;
  agent?: https.Agent;
  chunked?: boolean;
}

function post(o: PostOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const body = o.body ?? '';
    const headers: Record<string, string> = { 'content-type': o.contentType ?? 'application/json' };
    if (!o.chunked) headers['content-length'] = String(Buffer.byteLength(body));
    const req = https.request(
      {
        host: '127.0.0.1',
        port: o.port,
        servername: HOST,
        ca: o.ca,
        path: o.path ?? '/mutate',
        method: o.method ?? 'POST',
        headers,
        agent: o.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        const peer = (res.socket as tls.TLSSocket).getPeerCertificate();
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({
            status: res.statusCode ?? 0,
            body: text,
            json: () => JSON.parse(text),
            reusedSocket: req.reusedSocket,
            fingerprint: peer.fingerprint256,
          });
        });
      },
    );
    req.on('error', reject);
    if (o.chunked) {
      // Several writes, no content-length: the size is only known while reading.
      const b = Buffer.from(body);
      for (let i = 0; i < b.length; i += 256 * 1024) req.write(b.subarray(i, i + 256 * 1024));
      req.end();
    } else req.end(body);
  });
}

describe('parseAdmissionReview', () => {
  it('accepts a v1 review and names what is wrong otherwise', () => {
    expect(parseAdmissionReview(JSON.stringify(review('u1'))).ok).toBe(true);
    const err = (s: string): string => {
      const r = parseAdmissionReview(s);
      return r.ok ? 'ok' : r.error;
    };
    expect(err('{nope')).toMatch(/not valid JSON/);
    expect(err('[]')).toMatch(/not a JSON object/);
    expect(err(JSON.stringify({ ...review('u'), apiVersion: 'admission.k8s.io/v1beta1' }))).toMatch(
      /apiVersion must be admission.k8s.io\/v1/,
    );
    expect(err(JSON.stringify({ ...review('u'), kind: 'Pod' }))).toMatch(/kind must be AdmissionReview/);
    expect(err(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }))).toMatch(/request is missing/);
    expect(err(JSON.stringify(review('')))).toMatch(/request.uid is missing/);
  });
});

describe('startWebhookServer', () => {
  let ca: PemPair;
  let leaf: PemPair;
  let current: PemPair;
  let server: WebhookServer;
  let release: () => void = () => undefined;
  const metrics = new Metrics();
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({}, 'debug', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
  const seen: AdmissionReview[] = [];

  const handlers: Record<string, AdmissionHandler> = {
    '/mutate': (r) => {
      seen.push(r);
      return { uid: 'the handler may get this wrong', allowed: true, patch: Buffer.from('[]').toString('base64'), patchType: 'JSONPatch' };
    },
    '/validate': () => ({ uid: '', allowed: false, status: { code: 403, message: 'spec.rules[0].action: must be allow, deny or hold' } }),
    '/throws': () => {
      throw new Error('policy cache not synced');
    },
    '/rejects': () => Promise.reject(new Error('lookup failed')),
    '/slow': () =>
      new Promise((resolve) => {
        release = (): void => resolve({ uid: '', allowed: true });
      }),
  };

  beforeAll(async () => {
    const now = new Date();
    ca = await generateCa({ now });
    leaf = await issueServingCert({ ca, dnsNames: NAMES, now });
    current = leaf;
    server = await startWebhookServer({ port: 0, host: '127.0.0.1', tls: () => current, handlers, log, metrics, maxBodyBytes: 64 * 1024 });
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers a review with the request uid over a reused TLS connection', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await post({ port: server.port, ca: ca.cert, body: JSON.stringify(review('uid-1')), agent });
      expect(first.status).toBe(200);
      expect(first.json()).toEqual({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        response: { uid: 'uid-1', allowed: true, patch: 'W10=', patchType: 'JSONPatch' },
      });
      expect(seen.at(-1)?.request?.name).toBe('agent-1');
      const second = await post({ port: server.port, ca: ca.cert, body: JSON.stringify(review('uid-2')), agent });
      expect(second.json().response?.uid).toBe('uid-2');
      expect(second.reusedSocket).toBe(true);
    } finally {
      agent.destroy();
    }
  });

  it('passes a denial through with its message', async () => {
    const r = await post({ port: server.port, ca: ca.cert, path: '/validate', body: JSON.stringify(review('uid-v')) });
    expect(r.json().response).toEqual({
      uid: 'uid-v',
      allowed: false,
      status: { code: 403, message: 'spec.rules[0].action: must be allow, deny or hold' },
    });
  });

  it('denies when the handler throws or rejects, and logs the uid, kind, namespace/name and duration', async () => {
    for (const path of ['/throws', '/rejects']) {
      const r = await post({ port: server.port, ca: ca.cert, path, body: JSON.stringify(review(`uid${path}`)) });
      expect(r.status).toBe(200);
      const resp = r.json().response;
      expect(resp?.uid).toBe(`uid${path}`);
      expect(resp?.allowed).toBe(false);
      expect(resp?.status?.message).toMatch(/agent-warden webhook failed: (policy cache not synced|lookup failed)/);
    }
    const logged = lines.find((l) => l.msg === 'admission handler failed' && l.uid === 'uid/throws');
    expect(logged).toMatchObject({
      level: 'error',
      kind: 'Pod',
      namespace: 'agents',
      name: 'agent-1',
      operation: 'CREATE',
      error: 'policy cache not synced',
    });
    expect(typeof logged?.durationMs).toBe('number');
    expect(metrics.counter('warden_webhook_requests_total', '').get({ path: '/throws', result: 'error' })).toBe(1);
  });

  it('rejects malformed reviews with 400 and a reason', async () => {
    const bad = await post({ port: server.port, ca: ca.cert, body: '{"apiVersion":' });
    expect(bad.status).toBe(400);
    expect(bad.json().error).toMatch(/invalid AdmissionReview: body is not valid JSON/);
    const noUid = await post({ port: server.port, ca: ca.cert, body: JSON.stringify(review('')) });
    expect(noUid.status).toBe(400);
    expect(noUid.json().error).toMatch(/request.uid is missing/);
    const wrongKind = await post({ port: server.port, ca: ca.cert, body: JSON.stringify({ ...review('u'), kind: 'ConversionReview' }) });
    expect(wrongKind.status).toBe(400);
  });

  it('answers 413 to an oversized body, declared or streamed, and keeps serving', async () => {
    const big = JSON.stringify(review('big', { object: { pad: 'x'.repeat(200 * 1024) } }));
    expect((await post({ port: server.port, ca: ca.cert, body: big })).status).toBe(413);
    const streamed = await post({ port: server.port, ca: ca.cert, body: big, chunked: true });
    expect(streamed.status).toBe(413);
    expect(streamed.json().error).toMatch(/larger than 65536 bytes/);
    expect((await post({ port: server.port, ca: ca.cert, body: JSON.stringify(review('after')) })).status).toBe(200);
  });

  it('answers 404 to an unknown path, 405 to GET and 415 to a non-JSON body', async () => {
    expect((await post({ port: server.port, ca: ca.cert, path: '/nope', body: '{}' })).status).toBe(404);
    expect((await post({ port: server.port, ca: ca.cert, path: '/__proto__', body: '{}' })).status).toBe(404);
    const get = await post({ port: server.port, ca: ca.cert, method: 'GET' });
    expect(get.status).toBe(405);
    const text = await post({ port: server.port, ca: ca.cert, body: JSON.stringify(review('t')), contentType: 'text/plain' });
    expect(text.status).toBe(415);
    const withCharset = await post({
      port: server.port,
      ca: ca.cert,
      body: JSON.stringify(review('cs')),
      contentType: 'application/json; charset=utf-8',
    });
    expect(withCharset.status).toBe(200);
  });

  it('counts requests and fills the duration histogram', () => {
    const rendered = metrics.render();
    expect(rendered).toMatch(/warden_webhook_requests_total\{path="\/mutate",result="allowed"\} \d+/);
    expect(rendered).toMatch(/warden_webhook_requests_total\{path="\/mutate",result="too_large"\} 2/);
    expect(rendered).toMatch(/warden_webhook_requests_total\{path="unknown",result="not_found"\} 2/);
    const count = metrics.histogram('warden_webhook_duration_seconds', '').count({ path: '/mutate' });
    expect(count).toBeGreaterThanOrEqual(3);
    expect(rendered).toContain(`warden_webhook_duration_seconds_bucket{path="/mutate",le="+Inf"} ${count}`);
    expect(rendered).toMatch(/warden_webhook_duration_seconds_bucket\{path="\/mutate",le="0.005"\} \d+/);
  });

  it('refuses TLS below 1.2', async () => {
    await expect(
      new Promise((resolve, reject) => {
        const s = tls.connect(
          { host: '127.0.0.1', port: server.port, servername: HOST, ca: ca.cert, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' },
          () => resolve(s.getProtocol()),
        );
        s.on('error', reject);
      }),
    ).rejects.toThrow();
  });

  it('serves a new certificate to new connections after reloadTls, and keeps the old one on a bad reload', async () => {
    const fp = (pem: string): string => new X509Certificate(pem).fingerprint256;
    const before = await post({ port: server.port, ca: ca.cert, body: JSON.stringify(review('r0')) });
    expect(before.fingerprint).toBe(fp(leaf.cert));

    const next = await issueServingCert({ ca, dnsNames: NAMES, now: new Date() });
    current = next;
    server.reloadTls();
    const after = await post({ port: server.port, ca: ca.cert, body: JSON.stringify(review('r1')) });
    expect(after.fingerprint).toBe(fp(next.cert));

    current = { cert: 'not a certificate', key: next.key };
    expect(() => server.reloadTls()).toThrow();
    const still = await post({ port: server.port, ca: ca.cert, body: JSON.stringify(review('r2')) });
    expect(still.fingerprint).toBe(fp(next.cert));
    current = next;
  });

  it('finishes an in-flight review on close, then stops accepting', async () => {
    const own = await startWebhookServer({ port: 0, host: '127.0.0.1', tls: () => leaf, handlers, log });
    const inflight = post({ port: own.port, ca: ca.cert, path: '/slow', body: JSON.stringify(review('slow-1')) });
    await new Promise((r) => setTimeout(r, 100));
    let closed = false;
    const closing = own.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    release();
    const r = await inflight;
    expect(r.json().response).toEqual({ uid: 'slow-1', allowed: true });
    await closing;
    await expect(post({ port: own.port, ca: ca.cert, body: JSON.stringify(review('late')) })).rejects.toThrow(/ECONNREFUSED/);
  });
});
