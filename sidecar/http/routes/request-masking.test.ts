// Request masking (prompts and tool results leaving for an LLM), per-target body limits, and the
// `unparseable` setting, through the route proxy with the openai SDK and plain HTTP.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import OpenAI from 'openai';
import { compilePolicy, type CompiledPolicy } from '../../../common/policy/compile';
import type { Identity } from '../../../common/policy/types';
import { SecretStore } from '../../secrets';
import { startFakeOpenAI, type FakeOpenAI } from '../../../test/support/sidecar/fake-openai';
import { createRouteHandler, type RouteHandler } from './route-proxy';
import type { HttpAuditEvent } from '../../audit/events';

const identity: Identity = { subject: 'agent', groups: [], source: 'pod' };
const CARD = '4111 1111 1111 1111';
const SSN = '219-09-9999';

let upstream: FakeOpenAI;
let policy: CompiledPolicy;
let handler: RouteHandler;
let server: http.Server;
let port: number;
let dir: string;
const audits: HttpAuditEvent[] = [];

beforeAll(async () => {
  upstream = await startFakeOpenAI();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-reqmask-'));
  fs.mkdirSync(path.join(dir, 'openai'));
  fs.writeFileSync(path.join(dir, 'openai', 'token'), 'sk-upstream-secret');
  const base = `http://127.0.0.1:${upstream.port}`;
  policy = compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'reqmask' },
    spec: {
      defaultAction: 'allow',
      targets: [
        { name: 'openai', http: { baseUrl: base, credentialsSecret: 'openai' } },
        { name: 'small', http: { baseUrl: base, credentialsSecret: 'openai', maxBodyBytes: 2048 } },
        { name: 'lenient', http: { baseUrl: base, credentialsSecret: 'openai', unparseable: 'allow' } },
      ],
      masking: [
        { name: 'outbound-pii', detectors: ['credit-card', 'us-ssn', 'email'], direction: 'request', targets: ['openai'] },
        { name: 'inbound-pii', detectors: ['email'], direction: 'response' },
      ],
    },
  });
  handler = createRouteHandler({ policy: () => policy, secrets: new SecretStore(dir), identity, audit: (e) => audits.push(e) });
  server = http.createServer(handler);
  server.on('checkContinue', handler.checkContinue);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await handler.close();
  await upstream.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('PII in a prompt and in a tool result is masked before it leaves for the LLM', async () => {
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/openai/v1`, apiKey: 'warden-managed' });
  await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'user', content: `Refund the customer with card ${CARD} and SSN ${SSN}` },
      { role: 'tool', tool_call_id: 'call_1', content: JSON.stringify({ email: 'jane@example.com', plan: 'gold' }) },
    ],
  });
  const sent = upstream.requests.at(-1)!.body.toString('utf8');
  expect(sent).not.toContain('4111');
  expect(sent).not.toContain(SSN);
  expect(sent).not.toContain('jane@example.com');
  expect(sent).toContain('Refund the customer with card');
  expect(sent).toContain('gold');
  expect(JSON.parse(sent).model).toBe('gpt-4o-mini');
  expect(audits.at(-1)).toMatchObject({ decision: 'mask', masked: 3 });
});

test('request masking applies only where the policy says (direction and targets)', async () => {
  const res = await fetch(`http://127.0.0.1:${port}/lenient/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `card ${CARD}` }] }),
  });
  expect(res.status).toBe(200);
  expect(upstream.requests.at(-1)!.body.toString('utf8')).toContain(CARD);
});

test('a JSON request that cannot be parsed is not sent when its body must be masked', async () => {
  const before = upstream.requests.length;
  const res = await fetch(`http://127.0.0.1:${port}/openai/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: `{"messages": [{"content": "card ${CARD}"`,
  });
  expect(res.status).toBe(422);
  expect(((await res.json()) as { error: { type: string } }).error.type).toBe('unmaskable_request');
  expect(upstream.requests.length).toBe(before);
});

test('a per-target body limit answers 413 before the upstream is called', async () => {
  const before = upstream.requests.length;
  const res = await fetch(`http://127.0.0.1:${port}/small/v1/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ input: 'x'.repeat(4096) }),
  });
  expect(res.status).toBe(413);
  expect(upstream.requests.length).toBe(before);
});

test('malformed upstream JSON is blocked by default and passed through, audited, where the target allows it', async () => {
  const blocked = await fetch(`http://127.0.0.1:${port}/openai/malformed-json`);
  expect(blocked.status).toBe(502);
  expect(((await blocked.json()) as { error: { type: string } }).error.type).toBe('unmaskable_response');
  const passed = await fetch(`http://127.0.0.1:${port}/lenient/malformed-json`);
  expect(passed.status).toBe(200);
  expect((await passed.text()).length).toBeGreaterThan(0);
  expect(audits.at(-1)).toMatchObject({ target: 'lenient', error: expect.stringContaining('passed unmasked') });
});
