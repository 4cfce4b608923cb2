// The audit trail end to end: a real PostgreSQL and a fake OpenAI upstream behind one in-process
// sidecar, real clients (pg, the openai SDK), and a real OTLP/HTTP receiver decoding what the
// OpenTelemetry exporters send (protobuf, from the sidecar's own OTEL_EXPORTER_OTLP_ENDPOINT).
// Allowed, masked, denied and held operations on both data paths; parent/child linkage with an
// incoming traceparent; payload recordings; metrics; the secret scan over every exported byte.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import OpenAI from 'openai';
import { Client } from 'pg';
import { ATTR, METRIC, SPAN } from '../common/audit/names';
import { startFakeOpenAI, type FakeOpenAI } from './support/sidecar/fake-openai';
import { crmPolicy, startPg, startStack, type Stack } from './support/stack';
import { decideOverApi, pendingApproval } from './support/approvals';
import { startOtlpReceiver, type FlatSpan, type OtlpReceiver } from './support/otlp-receiver';
import type { PgServer } from '../tools/pg-server';

const OPENAI_KEY = 'sk-live-openai-secret-7f3a9c1e5b2d4f60';
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

let pg: PgServer;
let upstream: FakeOpenAI;
let receiver: OtlpReceiver;
let stack: Stack;

const policy = (db: PgServer): string =>
  crmPolicy(
    db,
    `    - name: openai
      http:
        baseUrl: http://127.0.0.1:${upstream.port}
        credentialsSecret: openai
        auth: {header: Authorization, valuePrefix: "Bearer "}
        timeout: 5s
  rules:
    - name: no-ddl
      action: deny
      match: {target: crm, sql: {statements: [DROP, TRUNCATE]}}
    - name: deletes-need-approval
      action: hold
      approval: {approvers: {groups: [local-approvers]}, timeout: 1m}
      match: {target: crm, sql: {statements: [DELETE]}}
    - name: no-admin-api
      action: deny
      match: {target: openai, http: {paths: ["/v1/admin/**"]}}
  masking:
    - name: pii
      detectors: [email, credit-card]
      columns: ["customers.card"]
      strategy: redact
      direction: both
  audit:
    payloads: true
`,
  );

async function spanWhere(pred: (s: FlatSpan) => boolean, what: string): Promise<FlatSpan> {
  await receiver
    .waitFor((r) => r.spans().some(pred), 10_000)
    .catch(() => {
      throw new Error(
        `no span ${what}; got: ${receiver
          .spans()
          .map((s) => `${s.name} ${JSON.stringify(s.attributes[ATTR.dbQueryText] ?? s.attributes[ATTR.urlPath])}`)
          .join(' | ')}`,
      );
    });
  return receiver.spans().find(pred)!;
}

beforeAll(async () => {
  pg = await startPg();
  upstream = await startFakeOpenAI();
  receiver = await startOtlpReceiver();
  stack = await startStack(
    {
      policy,
      setupSql: `DROP TABLE IF EXISTS customers; CREATE TABLE customers (id int primary key, name text, email text, card text);
        INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com', '4111 1111 1111 1111'), (2, 'Bob', 'bob@example.com', '5500 0000 0000 0004'), (3, 'Cy', 'cy@example.com', '4012 8888 8888 1881');`,
      beforeSidecar: (secretsDir) => {
        fs.mkdirSync(path.join(secretsDir, 'openai'), { recursive: true });
        fs.writeFileSync(path.join(secretsDir, 'openai', 'token'), OPENAI_KEY);
      },
      sidecar: {
        audit: undefined,
        localApprovals: true,
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
        auditTiming: { lingerMs: 10, metricsIntervalMs: 300, maxBackoffMs: 300 },
      },
    },
    pg,
  );
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
  await upstream?.close();
  await pg?.stop();
});

describe('PostgreSQL operations as spans and log records', () => {
  test('an allowed query carrying a sqlcommenter traceparent is a child span of the agent span, with db.* attributes', async () => {
    const c = new Client({ connectionString: stack.agentUrl() });
    await c.connect();
    await c.query(`SELECT name FROM customers WHERE id = 2 /*traceparent='00-${TRACE}-${PARENT}-01'*/`);
    await c.end();
    const span = await spanWhere(
      (s) => s.name === SPAN.postgres && String(s.attributes[ATTR.dbQueryText]).includes('WHERE id = 2'),
      'for the traced SELECT',
    );
    expect(span.traceId).toBe(TRACE);
    expect(span.parentSpanId).toBe(PARENT);
    expect(span.attributes).toMatchObject({
      [ATTR.dbSystem]: 'postgresql',
      [ATTR.dbNamespace]: 'crm',
      [ATTR.dbOperation]: 'SELECT',
      [ATTR.decision]: 'allow',
      [ATTR.policy]: 'test-policy',
      [ATTR.target]: 'crm',
      [ATTR.dbRows]: 1,
    });
    expect(span.status.code).not.toBe(2);
    expect(span.resource['service.name']).toBe('warden-sidecar');
    // its log record is linked to it
    await receiver.waitFor((r) => r.logs().some((l) => l.spanId === span.spanId), 10_000);
    const log = receiver.logs().find((l) => l.spanId === span.spanId)!;
    expect(log.traceId).toBe(TRACE);
    expect(log.attributes[ATTR.auditId]).toEqual(span.attributes[ATTR.auditId]);
  });

  test('a masked result: decision mask, the count, masked values by detector; card numbers in the SQL text are masked too', async () => {
    const c = new Client({ connectionString: stack.agentUrl() });
    await c.connect();
    const r = await c.query(`SELECT id, email, card FROM customers WHERE card <> '4012 8888 8888 1881' ORDER BY id`);
    await c.end();
    expect(r.rows[0].email).not.toContain('ada@example.com');
    const span = await spanWhere(
      (s) => s.name === SPAN.postgres && String(s.attributes[ATTR.dbQueryText]).includes('ORDER BY id'),
      'for the masked SELECT',
    );
    expect(span.attributes[ATTR.decision]).toBe('mask');
    expect(Number(span.attributes[ATTR.maskedCount])).toBeGreaterThanOrEqual(4);
    expect(String(span.attributes[ATTR.dbQueryText])).not.toContain('4012 8888 8888 1881');
    const log = await (async () => {
      await receiver.waitFor((rr) => rr.logs().some((l) => l.spanId === span.spanId), 10_000);
      return receiver.logs().find((l) => l.spanId === span.spanId)!;
    })();
    expect(Number(log.attributes['warden.masked.by.column'])).toBe(2);
    expect(Number(log.attributes['warden.masked.by.email'])).toBe(2);
  });

  test('a denied statement: span status ERROR naming the rule, a WARN log record', async () => {
    const c = new Client({ connectionString: stack.agentUrl() });
    await c.connect();
    await expect(c.query('DROP TABLE customers')).rejects.toMatchObject({ code: '42501' });
    await c.end();
    const span = await spanWhere(
      (s) => s.name === SPAN.postgres && s.attributes[ATTR.decision] === 'deny' && s.attributes[ATTR.rule] === 'no-ddl',
      'for the denied DROP',
    );
    expect(span.status.code).toBe(2);
    expect(span.status.message).toContain('denied');
    await receiver.waitFor((r) => r.logs().some((l) => l.spanId === span.spanId), 10_000);
    const log = receiver.logs().find((l) => l.spanId === span.spanId)!;
    expect(log.severityText).toBe('WARN');
    expect((log.body as Record<string, unknown>).statement).toBe('DROP TABLE customers');
  });

  test('a held DELETE: approval id and approver on the span, and a child span for the wait', async () => {
    const c = new Client({ connectionString: stack.agentUrl() });
    await c.connect();
    const del = c.query('DELETE FROM customers WHERE id = 3');
    const pending = await pendingApproval(stack.sidecar);
    await new Promise((r) => setTimeout(r, 50));
    expect(await decideOverApi(stack.sidecar, pending.id, 'approve', 'ticket OPS-7')).toBe(200);
    await del;
    await c.end();
    const span = await spanWhere((s) => s.name === SPAN.postgres && s.attributes[ATTR.approvalId] === pending.id, 'for the held DELETE');
    expect(span.attributes[ATTR.decision]).toBe('hold');
    expect(span.attributes[ATTR.rule]).toBe('deletes-need-approval');
    expect(span.attributes[ATTR.approvalDecidedBy]).toBe(os.userInfo().username);
    const wait = await spanWhere((s) => s.name === SPAN.approvalWait && s.parentSpanId === span.spanId, 'for the approval wait');
    expect(wait.traceId).toBe(span.traceId);
    expect(Number(wait.endNs - wait.startNs) / 1e6).toBeGreaterThanOrEqual(40);
    expect(wait.attributes[ATTR.approvalOutcome]).toBe('approved');
  });
});

describe('HTTP requests as spans', () => {
  const client = (headers: Record<string, string> = {}): OpenAI =>
    new OpenAI({
      apiKey: 'placeholder',
      baseURL: `http://127.0.0.1:${stack.sidecar.egressPort}/openai/v1`,
      defaultHeaders: headers,
      maxRetries: 0,
    });

  test('an LLM call: parented by the agent traceparent, propagated upstream with our span id, gen_ai.* attributes', async () => {
    const out = await client({ traceparent: `00-${TRACE}-${PARENT}-01` }).chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(out.usage?.prompt_tokens).toBe(5);
    const span = await spanWhere(
      (s) => s.name === SPAN.http && s.attributes[ATTR.genAiRequestModel] === 'gpt-4o-mini' && s.parentSpanId === PARENT,
      'for the chat completion',
    );
    expect(span.traceId).toBe(TRACE);
    expect(span.attributes).toMatchObject({
      [ATTR.httpMethod]: 'POST',
      [ATTR.httpStatus]: 200,
      [ATTR.genAiOperation]: 'chat',
      [ATTR.genAiInputTokens]: 5,
      [ATTR.genAiOutputTokens]: 7,
      [ATTR.target]: 'openai',
    });
    const seen = upstream.requests.filter((r) => r.url.endsWith('/chat/completions')).at(-1)!;
    expect(seen.headers.traceparent).toBe(`00-${TRACE}-${span.spanId}-01`);
  });

  test('a streamed LLM call: token usage read from the stream', async () => {
    const stream = await client().chat.completions.create({
      model: 'gpt-stream-test',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'hi' }],
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('Hello from the fake model.');
    const span = await spanWhere(
      (s) => s.name === SPAN.http && s.attributes[ATTR.genAiRequestModel] === 'gpt-stream-test',
      'for the streamed completion',
    );
    expect(span.attributes[ATTR.genAiInputTokens]).toBe(5);
    expect(span.attributes[ATTR.genAiOutputTokens]).toBe(5);
  });

  test('a denied request: 403 for the agent, span status ERROR, the masked payload recorded in the log record', async () => {
    const res = await fetch(`http://127.0.0.1:${stack.sidecar.egressPort}/openai/v1/admin/keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ owner: 'eve@example.com' }),
    });
    expect(res.status).toBe(403);
    await res.arrayBuffer();
    const span = await spanWhere((s) => s.name === SPAN.http && s.attributes[ATTR.rule] === 'no-admin-api', 'for the denied request');
    expect(span.status.code).toBe(2);
    const ok = await client().chat.completions.create({
      model: 'payload-check',
      messages: [{ role: 'user', content: 'mail me at zed@example.com' }],
    });
    expect(ok.choices[0].message.content).toBeDefined();
    const llm = await spanWhere(
      (s) => s.name === SPAN.http && s.attributes[ATTR.genAiRequestModel] === 'payload-check',
      'for the payload check',
    );
    await receiver.waitFor((r) => r.logs().some((l) => l.spanId === llm.spanId), 10_000);
    const body = receiver.logs().find((l) => l.spanId === llm.spanId)!.body as Record<string, string>;
    expect(body.requestBody).toContain('payload-check');
    expect(body.requestBody).not.toContain('zed@example.com');
    expect(body.responseBody).toContain('Hello from the fake model');
  });
});

describe('metrics and secrets', () => {
  test('metrics arrive over OTLP with the operation, masking and latency series', async () => {
    const want = ['crm/deny/no-ddl', 'crm/hold/deletes-need-approval', 'openai/deny/no-admin-api'];
    const latest = (): string[] =>
      (
        receiver
          .metrics()
          .filter((m) => m.name === METRIC.operations)
          .at(-1)?.dataPoints ?? []
      ).map((p) => `${p.attributes.target}/${p.attributes.decision}/${p.attributes.rule}`);
    // Metrics go out every 300 ms here: wait for an export taken after the last operation above.
    await receiver.waitFor(
      (r) => r.metrics().some((m) => m.name === METRIC.approvalWait) && want.every((w) => latest().includes(w)),
      10_000,
    );
    const labels = latest();
    expect(labels).toEqual(expect.arrayContaining(['crm/deny/no-ddl', 'crm/hold/deletes-need-approval', 'openai/deny/no-admin-api']));
    const masked = receiver
      .metrics()
      .filter((m) => m.name === METRIC.masked)
      .at(-1)!;
    expect(masked.dataPoints.map((p) => p.attributes.detector)).toEqual(expect.arrayContaining(['column', 'email']));
    const added = receiver
      .metrics()
      .filter((m) => m.name === METRIC.addedLatency)
      .at(-1)!;
    expect(added.type).toBe('histogram');
    // and the same series on /metrics for Prometheus
    const text = await (await fetch(`http://127.0.0.1:${stack.sidecar.adminPort}/metrics`)).text();
    expect(text).toContain(`${METRIC.addedLatency}_bucket{`);
    expect(text).toMatch(new RegExp(`${METRIC.masked}\\{[^}]*detector="email"`));
  });

  test('no credential appears in any exported byte, in the spool, or in the logs', async () => {
    await stack.sidecar.audit!.drain(5000);
    const secrets = [OPENAI_KEY, pg.password];
    for (const req of receiver.raw()) {
      for (const s of secrets) {
        expect(req.body.includes(s)).toBe(false);
        expect(req.wire.includes(s)).toBe(false);
      }
    }
    expect(receiver.raw().length).toBeGreaterThan(3);
    const dir = stack.sidecar.audit!.spool.dir;
    const files = fs.readdirSync(dir);
    expect(files.some((f) => f.endsWith('.seg'))).toBe(true);
    for (const f of files) {
      const bytes = fs.readFileSync(path.join(dir, f));
      for (const s of secrets) expect(bytes.includes(s)).toBe(false);
    }
  });
});
