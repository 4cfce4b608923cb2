// The egress port of a running sidecar: a named route to an OpenAI-compatible upstream used by the
// official SDK, and the forward proxy governed by host rules, both on one port.
import * as http from 'node:http';
import OpenAI from 'openai';
import type { RunningSidecar } from '../main';
import type { FakeOpenAI } from '../../test/support/sidecar/fake-openai';
import type { HttpAuditEvent } from '../audit/events';
import { startSidecarFixture, type SidecarFixture } from '../../test/support/sidecar/sidecar-fixture';

let fx: SidecarFixture;
let upstream: FakeOpenAI;
let sidecar: RunningSidecar;
let events: HttpAuditEvent[];

beforeAll(async () => {
  fx = await startSidecarFixture({
    secrets: { openai: { token: 'sk-real-upstream-key-0123456789' } },
    policy: (port) => `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: egress-test}
spec:
  defaultAction: deny
  targets:
    - name: openai
      http:
        baseUrl: http://127.0.0.1:${port}
        credentialsSecret: openai
        auth: {header: Authorization, valuePrefix: "Bearer "}
  rules:
    - name: llm-calls
      action: allow
      match: {target: openai, http: {methods: [POST], paths: ["/v1/**"]}}
    - name: internal-net
      action: deny
      match: {http: {hosts: ["10.0.0.0/8"]}}
  masking:
    - name: pii
      detectors: [credit-card, email]
`,
  });
  ({ upstream, sidecar, events } = fx);
});

afterAll(async () => {
  await fx?.close();
});

test('the openai SDK works unchanged through the route, with the real key injected', async () => {
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${sidecar.egressPort}/openai/v1`, apiKey: 'warden-managed' });
  const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  expect(r.choices[0].message).toBeDefined();
  const seen = upstream.requests.at(-1)!;
  expect(seen.headers.authorization).toBe('Bearer sk-real-upstream-key-0123456789');
  expect(events.at(-1)).toMatchObject({ target: 'openai', method: 'POST', decision: expect.stringMatching(/allow|mask/) });
  expect(JSON.stringify(events)).not.toContain('sk-real-upstream-key');
});

test('a request no rule allows is denied with the contract body (defaultAction deny)', async () => {
  const res = await fetch(`http://127.0.0.1:${sidecar.egressPort}/openai/v1/models`);
  expect(res.status).toBe(403);
  const body = (await res.json()) as { error: { type: string } };
  expect(body.error.type).toBe('policy_denied');
});

test('the forward proxy on the same port refuses a CONNECT to a denied range before connecting', async () => {
  const status = await new Promise<number | undefined>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: sidecar.egressPort, method: 'CONNECT', path: '10.1.2.3:443' });
    req.on('connect', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.end();
  });
  expect(status).toBe(403);
});
