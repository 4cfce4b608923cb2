// Rules on what the LLM returns (`match.http.response`): a deny rule on the tool an LLM asks to
// call blocks a non-streamed completion with 403 before any byte reaches the agent, and cuts a
// streamed one with an `event: error` before the tool-call delta is written — with and without
// response masking on the route — while harmless tool calls and plain answers pass.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { compilePolicy, type CompiledPolicy } from '../../../common/policy/compile';
import type { AccessPolicy, Identity } from '../../../common/policy/types';
import { SecretStore } from '../../secrets';
import { startFakeOpenAI, type FakeOpenAI } from '../../../test/support/sidecar/fake-openai';
import { createRouteHandler, type RouteHandler } from './route-proxy';
import type { HttpAuditEvent } from '../../audit/events';

const SECRET = 'sk-real-SECRET-resp-rules';
const RULE_MESSAGE = 'the model asked for a forbidden tool';
const identity: Identity = { subject: 'system:serviceaccount:agents:support', groups: [], source: 'pod' };

let upstream: FakeOpenAI;
let splitter: http.Server; // writes a tool-call event in pieces, to prove half an event never leaks
let secretsDir: string;
let policy: CompiledPolicy;
let handler: RouteHandler;
let server: http.Server;
let port: number;
const audits: HttpAuditEvent[] = [];
const client = new Agent({ keepAliveTimeout: 1000 });

function buildPolicy(splitPort: number): AccessPolicy {
  const base = `http://127.0.0.1:${upstream.port}`;
  return {
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'response-rules', namespace: 'agents' },
    spec: {
      defaultAction: 'allow',
      targets: [
        // masked: response masking applies, the response rule runs alongside it
        { name: 'llm', http: { baseUrl: base, credentialsSecret: 'openai', timeout: '3s' } },
        // raw: no masking plan, so inspection alone makes the proxy buffer / parse
        { name: 'raw', http: { baseUrl: base, credentialsSecret: 'openai', timeout: '3s' } },
        { name: 'split', http: { baseUrl: `http://127.0.0.1:${splitPort}`, timeout: '3s' } },
        { name: 'split-masked', http: { baseUrl: `http://127.0.0.1:${splitPort}`, timeout: '3s' } },
      ],
      rules: [
        {
          name: 'no-delete-database',
          action: 'deny',
          message: RULE_MESSAGE,
          match: {
            http: {
              methods: ['POST'],
              paths: ['/v1/chat/completions'],
              // $..tool_calls reaches both message.tool_calls (non-streamed) and delta.tool_calls (stream)
              response: { json: [{ path: '$..tool_calls[*].function.name', values: ['delete_database'] }] },
            },
          },
        },
      ],
      masking: [{ name: 'pii', detectors: ['credit-card', 'email'], strategy: 'redact', targets: ['llm', 'split-masked'] }],
    },
  };
}

beforeAll(async () => {
  upstream = await startFakeOpenAI();
  upstream.chunkDelayMs = 20;
  splitter = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const first = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'ok' } }] })}\n\n`;
      const evil = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_split', function: { name: 'delete_database', arguments: '' } }] } }] })}\n\n`;
      const cut1 = evil.indexOf('delete_') + 'delete_'.length;
      const pieces = [first, evil.slice(0, cut1), evil.slice(cut1, evil.length - 1), evil.slice(evil.length - 1), 'data: [DONE]\n\n'];
      let i = 0;
      const next = (): void => {
        if (res.destroyed) return;
        if (i < pieces.length) {
          res.write(pieces[i++]);
          setTimeout(next, 30);
        } else res.end();
      };
      next();
    });
  });
  await new Promise<void>((resolve) => splitter.listen(0, '127.0.0.1', resolve));
  secretsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-resp-rules-'));
  fs.mkdirSync(path.join(secretsDir, 'openai'));
  fs.writeFileSync(path.join(secretsDir, 'openai', 'token'), SECRET + '\n');
  policy = compilePolicy(buildPolicy((splitter.address() as AddressInfo).port));
  handler = createRouteHandler({ policy: () => policy, secrets: new SecretStore(secretsDir), identity, audit: (e) => audits.push(e) });
  server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await handler.close();
  await client.close();
  await upstream.close();
  splitter.closeAllConnections();
  await new Promise<void>((resolve) => splitter.close(() => resolve()));
  fs.rmSync(secretsDir, { recursive: true, force: true });
});

beforeEach(() => {
  audits.length = 0;
});

function sdk(route: string): OpenAI {
  return new OpenAI({ baseURL: `http://127.0.0.1:${port}/${route}/v1`, apiKey: 'warden-managed', maxRetries: 0, timeout: 5000 });
}

async function post(route: string, body: unknown, p = '/v1/chat/completions') {
  const res = await undiciFetch(`http://127.0.0.1:${port}/${route}${p}`, {
    dispatcher: client,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The audit event is written when the response closes, which can be just after the agent has it. */
async function lastAudit(): Promise<HttpAuditEvent> {
  for (let i = 0; i < 100 && audits.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(audits).toHaveLength(1);
  return audits[0];
}

const messages = [{ role: 'user' as const, content: 'clean up the database' }];

describe.each(['llm', 'raw'])('route "%s"', (route) => {
  test('non-streamed: a tool call to delete_database is refused with 403 (PermissionDeniedError); the upstream answer is discarded', async () => {
    const before = upstream.requests.length;
    const err = await sdk(route)
      .chat.completions.create({ model: 'tool-caller', messages })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((err as InstanceType<typeof OpenAI.PermissionDeniedError>).status).toBe(403);
    expect((err as InstanceType<typeof OpenAI.PermissionDeniedError>).error).toEqual({
      type: 'policy_denied',
      rule: 'no-delete-database',
      message: RULE_MESSAGE,
    });
    // The request was forwarded (the rule is about the answer), so the upstream did answer.
    expect(upstream.requests.length).toBe(before + 1);
    expect(await lastAudit()).toMatchObject({
      target: route,
      path: '/v1/chat/completions',
      status: 403,
      decision: 'deny',
      rule: 'no-delete-database',
      reason: RULE_MESSAGE,
    });

    // Byte for byte: the contract body, nothing of the upstream's answer.
    audits.length = 0;
    const r = await post(route, { model: 'tool-caller', messages });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text)).toEqual({ error: { type: 'policy_denied', rule: 'no-delete-database', message: RULE_MESSAGE } });
    expect(r.text).not.toContain('call_fake1');
    expect(r.text).not.toContain('delete_database');
    await lastAudit();
  });

  test('non-streamed: a harmless tool call passes untouched', async () => {
    const r = await sdk(route).chat.completions.create({ model: 'tool-caller:get_weather', messages });
    expect(r.choices[0].finish_reason).toBe('tool_calls');
    const call = r.choices[0].message.tool_calls![0] as { function: { name: string; arguments: string } };
    expect(call.function).toEqual({ name: 'get_weather', arguments: '{"name":"prod"}' });
    expect(await lastAudit()).toMatchObject({ status: 200, decision: 'allow' });
    expect((await lastAudit()).rule).toBeUndefined();
  });

  test('streamed: the stream is cut with an error event before the tool-call delta reaches the agent', async () => {
    const stream = await sdk(route).chat.completions.create({ model: 'tool-caller', messages, stream: true });
    const seen: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    let err: unknown;
    try {
      for await (const chunk of stream) seen.push(chunk);
    } catch (e) {
      err = e;
    }
    // The SDK surfaces the error event as an APIError carrying the policy_denied body.
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).error).toEqual({
      type: 'policy_denied',
      rule: 'no-delete-database',
      message: RULE_MESSAGE,
    });
    // What came before the tool call did stream; no tool call ever did.
    expect(seen.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe('Sure.');
    expect(seen.some((c) => c.choices[0]?.delta?.tool_calls !== undefined)).toBe(false);
    expect(await lastAudit()).toMatchObject({
      target: route,
      status: 200,
      decision: 'deny',
      rule: 'no-delete-database',
      reason: RULE_MESSAGE,
    });

    audits.length = 0;
    const r = await post(route, { model: 'tool-caller', messages, stream: true });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/event-stream');
    expect(r.text).not.toContain('tool_calls');
    expect(r.text).not.toContain('[DONE]');
    expect(r.text).toContain('"content":"Sure."');
    expect(
      r.text.endsWith(
        `event: error\ndata: ${JSON.stringify({ error: { type: 'policy_denied', rule: 'no-delete-database', message: RULE_MESSAGE } })}\n\n`,
      ),
    ).toBe(true);
    await lastAudit();
  });

  test('streamed: a harmless tool call and a plain answer stream through to [DONE]', async () => {
    const stream = await sdk(route).chat.completions.create({ model: 'tool-caller:get_weather', messages, stream: true });
    let name = '';
    let args = '';
    for await (const chunk of stream) {
      const tc = chunk.choices[0]?.delta?.tool_calls?.[0];
      name += tc?.function?.name ?? '';
      args += tc?.function?.arguments ?? '';
    }
    expect({ name, args }).toEqual({ name: 'get_weather', args: '{"name":"prod"}' });
    expect(await lastAudit()).toMatchObject({ status: 200, decision: 'allow' });

    audits.length = 0;
    const r = await post(route, { model: 'gpt-4o-mini', messages, stream: true });
    expect(r.text).toContain('data: [DONE]');
    expect(r.text).not.toContain('policy_denied');
    await lastAudit();
  });
});

test('requests the rule does not cover are not inspected (other paths pass as before)', async () => {
  const r = await post('raw', { model: 'tool-caller', input: 'x' }, '/v1/embeddings');
  expect(r.status).toBe(200);
  expect(JSON.parse(r.text).object).toBe('list');
});

test.each(['split', 'split-masked'])('route "%s": a tool-call event split across TCP chunks is never partly forwarded', async (route) => {
  const r = await post(route, { model: 'm', messages, stream: true });
  expect(r.status).toBe(200);
  expect(r.text).toContain('"content":"ok"');
  // Not even the first half of the event (which ends in "delete_") reached the agent.
  expect(r.text).not.toContain('call_split');
  expect(r.text).not.toContain('delete_');
  expect(r.text).toMatch(/event: error\ndata: \{"error":\{"type":"policy_denied","rule":"no-delete-database"/);
  expect(await lastAudit()).toMatchObject({ target: route, decision: 'deny', rule: 'no-delete-database' });
});
