// The JSON masking fast path (stages/body-scan.ts): a body whose bytes hold nothing a masker looks
// for goes out as it came, without a walk; anything a detector could find once the document is
// parsed (an escaped '@', a number written with an exponent, an escaped key) still takes the slow
// way and is masked, in requests and in responses.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { compilePolicy, type CompiledPolicy } from '../../../common/policy/compile';
import type { Identity } from '../../../common/policy/types';
import { SecretStore } from '../../secrets';
import type { HttpAuditEvent } from '../../audit/events';
import { createRouteHandler, type RouteHandler } from './route-proxy';

const identity: Identity = { subject: 'agent', groups: [], source: 'pod' };
let upstream: http.Server;
let server: http.Server;
let handler: RouteHandler;
let port: number;
let policy: CompiledPolicy;
const received: Buffer[] = [];
const audits: HttpAuditEvent[] = [];

beforeAll(async () => {
  // Records the request body; answers with the raw bytes given in x-reply (base64), or an echo.
  upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push(body);
      const reply = req.headers['x-reply'] ? Buffer.from(String(req.headers['x-reply']), 'base64') : body;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': reply.length });
      res.end(reply);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  policy = compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'fast-path' },
    spec: {
      defaultAction: 'allow',
      targets: [
        { name: 'mail', http: { baseUrl: base } },
        { name: 'card', http: { baseUrl: base } },
      ],
      masking: [
        { name: 'mail', detectors: ['email'], direction: 'both', targets: ['mail'] },
        { name: 'card', detectors: ['credit-card'], direction: 'both', targets: ['card'] },
      ],
    },
  });
  handler = createRouteHandler({ policy: () => policy, secrets: new SecretStore(undefined), identity, audit: (e) => audits.push(e) });
  server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await handler.close();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

/** POSTs body to the route; reply: raw bytes the upstream answers with (else it echoes what it got). */
async function post(route: string, body: string, reply?: string): Promise<{ sent: string; got: string; masked: number }> {
  const res = await fetch(`http://127.0.0.1:${port}/${route}/v1/x`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(reply !== undefined ? { 'x-reply': Buffer.from(reply).toString('base64') } : {}) },
    body,
  });
  expect(res.status).toBe(200);
  const got = await res.text();
  await new Promise((r) => setImmediate(r)); // the audit record is written once the answer is finished
  return { sent: received.at(-1)!.toString('utf8'), got, masked: audits.at(-1)!.masked };
}

test('a body with nothing to mask goes out byte for byte, both ways (the fast path)', async () => {
  const body = '{ "model" : "m",\n  "messages": [ {"role":"user", "content":"plain words, nothing more"} ], "n": 1.50 }';
  const r = await post('mail', body);
  expect(r.sent).toBe(body);
  expect(r.got).toBe(body);
  expect(r.masked).toBe(0);
});

test('an e-mail written with a JSON escape is masked, in the request and in the response', async () => {
  const body = '{"content":"write to jane\\u0040example.com"}';
  const r = await post('mail', body, body);
  expect(JSON.parse(r.sent).content).not.toContain('jane');
  expect(JSON.parse(r.got).content).not.toContain('jane');
  expect(r.masked).toBeGreaterThanOrEqual(1);
});

test('an e-mail in an escaped key, or after another escape, is masked', async () => {
  const body = '{"jane\\u0040example.com":{"note":"line\\nbob@example.org"}}';
  const r = await post('mail', body, body);
  expect(r.sent).not.toContain('jane');
  expect(r.sent).not.toContain('bob@');
  expect(r.got).not.toContain('jane');
  expect(r.got).not.toContain('bob@');
});

test('a card number written as a JSON number with an exponent is masked, in the request and in the response', async () => {
  const body = '{"card":4.111111111111111e15,"qty":2}';
  const r = await post('card', body, body);
  expect(r.sent).not.toContain('4.111111111111111e15');
  expect(JSON.parse(r.sent).card).not.toBe(4111111111111111);
  expect(JSON.parse(r.got).card).not.toBe(4111111111111111);
  expect(JSON.parse(r.got).qty).toBe(2);
});

test('a plain e-mail is masked (the scan sends the body the slow way)', async () => {
  const r = await post('mail', '{"to":"jane@example.com"}', '{"from":"bob@example.org"}');
  expect(r.sent).not.toContain('jane@');
  expect(r.got).not.toContain('bob@');
});
