// The hand-written OTLP encoder against the OpenTelemetry SDK's own serializer: both outputs are
// decoded with the opentelemetry-proto definitions and must describe the same spans and log
// records (ids, parentage, times, status, every attribute and value type, bodies).
import { ProtobufLogsSerializer, ProtobufMetricsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { Metrics } from '../../common/metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { AuditRecord } from '../../common/audit/record';
import { decodeExport } from '../../test/support/otlp-proto/decode';
import { BatchEncoder, encodeLogs, encodeMetrics, encodeTraces } from './otlp-encode';
import { registryProducer } from './otlp-metrics';
import { httpRecord, postgresRecord } from './records';
import { startTrace } from './trace-context';

const resource = resourceFromAttributes({ 'service.name': 'warden-sidecar', 'k8s.pod.name': 'agent-0', 'process.pid': 4242 });
const identity = { subject: 'system:serviceaccount:agents:bot', groups: ['system:serviceaccounts', 'sre'], source: 'pod' as const };

function samples(): AuditRecord[] {
  const held = postgresRecord(
    {
      session: 's-1',
      seq: 7,
      start: 1_763_800_000_123.456,
      durationMs: 2_500.25,
      upstreamMs: 0.75,
      policy: 'agents/support',
      target: 'crm',
      decision: 'hold',
      rule: 'deletes-need-approval',
      reason: 'approved: ticket OPS-7 ✓',
      identity,
      approval: {
        id: 'ab12',
        approved: true,
        outcome: 'approved',
        reason: 'ticket OPS-7 ✓',
        decidedBy: 'alice',
        waitStart: 1_763_800_000_124,
        waitMs: 2_400.5,
        spanId: '1111222233334444',
      },
      masked: 3,
      maskedBy: { column: 2, email: 1 },
    },
    {
      namespace: 'crm',
      text: "DELETE FROM orders WHERE id = 3 /*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/",
      operations: ['DELETE'],
      protocol: 'extended',
      rows: 1,
      params: ['3', null],
    },
  );
  const denied = httpRecord(
    'http',
    {
      session: 'http-9',
      seq: 1,
      start: 1_763_800_001_000,
      durationMs: 1.5,
      policy: 'agents/support',
      target: 'openai',
      decision: 'deny',
      rule: 'no-admin',
      reason: 'admin API is off limits',
      identity,
      masked: 0,
      error: 'upstream said no',
    },
    startTrace(undefined),
    {
      method: 'POST',
      route: 'openai',
      path: '/v1/chat/completions',
      url: 'https://api.openai.com/v1/chat/completions',
      status: 403,
      serverAddress: 'api.openai.com',
      serverPort: 443,
    },
    {
      genAi: {
        provider: 'openai',
        operation: 'chat',
        requestModel: 'gpt-4o-mini',
        inputTokens: 5,
        outputTokens: 7,
        finishReasons: ['stop', 'length'],
      },
      payload: { request: '{"model":"gpt-4o-mini"}', response: 'x'.repeat(300), truncated: true },
    },
  );
  return [held, denied];
}

describe('encodeTraces / encodeLogs', () => {
  test('spans decode to exactly what the SDK serializer produces for the same records', async () => {
    const { toSpans } = await import('./to-otlp');
    const records = samples();
    const ours = decodeExport('traces', 'protobuf', Buffer.from(encodeTraces(records, resource))).spans;
    const sdk = decodeExport(
      'traces',
      'protobuf',
      Buffer.from(ProtobufTraceSerializer.serializeRequest(records.flatMap((r) => toSpans(r, resource)))!),
    ).spans;
    expect(ours).toHaveLength(3); // two operations and one approval wait
    expect(ours).toEqual(sdk);
    const wait = ours.find((s) => s.name === 'warden.approval.wait')!;
    expect(wait.parentSpanId).toBe(records[0].trace.spanId);
    expect(ours[0].parentSpanId).toBe('00f067aa0ba902b7');
    expect(ours[0].attributes['warden.identity.groups']).toEqual(['system:serviceaccounts', 'sre']);
    expect(ours[0].resource['process.pid']).toBe(4242);
  });

  test('log records decode to what the SDK serializer produces', async () => {
    const { toLogRecord } = await import('./to-otlp');
    const records = samples();
    const ours = decodeExport('logs', 'protobuf', Buffer.from(encodeLogs(records, resource))).logs;
    const sdk = decodeExport(
      'logs',
      'protobuf',
      Buffer.from(ProtobufLogsSerializer.serializeRequest(records.map((r) => toLogRecord(r, resource)))!),
    ).logs;
    expect(ours).toEqual(sdk);
    expect((ours[1].body as Record<string, unknown>).truncated).toBe(true);
    expect(ours[0].attributes['warden.masked.by.column']).toBe(2);
  });

  test('edge values (empty strings, nulls, short non-ASCII, a denied wait, batches, counts by detector) match the SDK serializer', async () => {
    const { toLogRecord, toSpans } = await import('./to-otlp');
    const odd = postgresRecord(
      {
        session: '',
        seq: 0,
        start: 1_763_800_002_000 + 0.999_999, // rounds up to the next millisecond
        durationMs: 0,
        policy: 'agents/support',
        target: 'crm',
        decision: 'hold',
        reason: '',
        identity: { subject: 'ü', groups: [], source: 'pod' as const },
        approval: {
          approved: false,
          outcome: 'expired',
          reason: 'nobody answered é',
          waitStart: 1_763_800_002_000.5,
          waitMs: 0.25,
          spanId: '5555666677778888',
        },
        masked: 0,
        maskedBy: { '7': 1, 'json-path': 0 },
      },
      { text: "SELECT 1; SELECT 'é'", operations: ['SELECT', 'SELECT'], protocol: 'simple', rows: 0, params: [null, '', 'ß'] },
    );
    const records = [...samples(), odd, odd];
    const spans = decodeExport('traces', 'protobuf', Buffer.from(encodeTraces(records, resource))).spans;
    const sdkSpans = decodeExport(
      'traces',
      'protobuf',
      Buffer.from(ProtobufTraceSerializer.serializeRequest(records.flatMap((r) => toSpans(r, resource)))!),
    ).spans;
    expect(spans).toEqual(sdkSpans);
    const logs = decodeExport('logs', 'protobuf', Buffer.from(encodeLogs(records, resource))).logs;
    const sdkLogs = decodeExport(
      'logs',
      'protobuf',
      Buffer.from(ProtobufLogsSerializer.serializeRequest(records.map((r) => toLogRecord(r, resource)))!),
    ).logs;
    // The SDK writes a body key holding undefined (no rule) as an empty value; ours leaves it out,
    // as the record's JSON does (and as the encoder always has).
    for (const l of sdkLogs) if ((l.body as Record<string, unknown>).rule === null) delete (l.body as Record<string, unknown>).rule;
    expect(logs).toEqual(sdkLogs);
    expect(logs[2].attributes['warden.masked.by.7']).toBe(1);
  });

  test('MCP records: the MCP and GenAI attributes, span name and status match the SDK serializer', async () => {
    const { toLogRecord, toSpans } = await import('./to-otlp');
    const c = {
      session: 'http-1',
      seq: 1,
      start: 1_763_800_003_000,
      durationMs: 3,
      policy: 'agents/support',
      target: 'crm-tools',
      identity,
    };
    const http = { method: 'POST', route: 'crm-tools', path: '/', status: 200 };
    const call = httpRecord('http', { ...c, decision: 'mask', reason: 'masked', masked: 2 }, startTrace(undefined), http, {
      mcp: { method: 'tools/call', requestId: '7', tool: 'search_customers', sessionId: 'ab'.repeat(16), protocolVersion: '2025-11-25' },
    });
    const failed = httpRecord('http', { ...c, decision: 'allow', reason: 'allowed', masked: 0 }, startTrace(undefined), http, {
      mcp: { method: 'resources/read', requestId: 'r-1', resource: 'crm://customers/1', errorCode: -32002, batch: 2 },
    });
    const toolError = httpRecord(
      'http',
      { ...c, decision: 'deny', rule: 'no-deletes', reason: 'denied', masked: 0 },
      startTrace(undefined),
      http,
      {
        mcp: {
          method: 'tools/call',
          requestId: '8',
          tool: 'delete_customer',
          toolError: true,
          pinChanges: [{ tool: 'delete_customer', expected: 'sha256:aa', actual: 'sha256:bb' }],
        },
      },
    );
    const note = httpRecord('http', { ...c, decision: 'allow', reason: 'plumbing', masked: 0 }, startTrace(undefined), http, {
      mcp: { method: 'notifications/initialized', prompt: undefined },
    });
    const records = [call, failed, toolError, note];
    const spans = decodeExport('traces', 'protobuf', Buffer.from(encodeTraces(records, resource))).spans;
    const sdk = decodeExport(
      'traces',
      'protobuf',
      Buffer.from(ProtobufTraceSerializer.serializeRequest(records.flatMap((r) => toSpans(r, resource)))!),
    ).spans;
    expect(spans).toEqual(sdk);
    expect(spans[0].name).toBe('warden.mcp.request');
    expect(spans[0].attributes).toMatchObject({
      'mcp.method.name': 'tools/call',
      'gen_ai.tool.name': 'search_customers',
      'gen_ai.operation.name': 'execute_tool',
      'jsonrpc.request.id': '7',
      'mcp.session.id': 'ab'.repeat(16),
      'mcp.protocol.version': '2025-11-25',
      'warden.decision': 'mask',
    });
    expect(spans[0].attributes['error.type']).toBeUndefined();
    expect(spans[1].attributes).toMatchObject({
      'mcp.resource.uri': 'crm://customers/1',
      'rpc.response.status_code': '-32002',
      'error.type': '-32002',
    });
    expect(spans[1].attributes['gen_ai.operation.name']).toBeUndefined();
    expect(spans[2].attributes).toMatchObject({ 'error.type': 'tool_error', 'warden.mcp.pin.actual': ['sha256:bb'] });
    const logs = decodeExport('logs', 'protobuf', Buffer.from(encodeLogs(records, resource))).logs;
    const sdkLogs = decodeExport(
      'logs',
      'protobuf',
      Buffer.from(ProtobufLogsSerializer.serializeRequest(records.map((r) => toLogRecord(r, resource)))!),
    ).logs;
    for (const l of sdkLogs) if ((l.body as Record<string, unknown>).rule === null) delete (l.body as Record<string, unknown>).rule;
    expect(logs).toEqual(sdkLogs);
    expect((logs[0].body as Record<string, unknown>).mcp).toBe('tools/call search_customers');
    expect((logs[3].body as Record<string, unknown>).mcp).toBe('notifications/initialized');
  });

  test('ids are written as bytes whatever the case of their hex digits', () => {
    const r = samples()[0];
    const upper = { ...r, trace: { ...r.trace, traceId: r.trace.traceId.toUpperCase(), spanId: r.trace.spanId.toUpperCase() } };
    expect(Buffer.from(encodeTraces([upper], resource)).equals(Buffer.from(encodeTraces([r], resource)))).toBe(true);
    expect(Buffer.from(encodeLogs([upper], resource)).equals(Buffer.from(encodeLogs([r], resource)))).toBe(true);
  });

  test('long and non-ASCII strings and large batches keep their lengths right', () => {
    const r = samples()[0];
    const big = { ...r, db: { ...r.db!, text: 'é'.repeat(70_000) } };
    const decoded = decodeExport(
      'traces',
      'protobuf',
      Buffer.from(
        encodeTraces(
          Array.from({ length: 300 }, () => big),
          resource,
        ),
      ),
    ).spans;
    expect(decoded).toHaveLength(600);
    const text = String(decoded[598].attributes['db.query.text']);
    expect(decoded[598].name).toBe('warden.postgres.query');
    expect(text.length).toBe(70_000);
    expect(text === 'é'.repeat(70_000)).toBe(true);
  });

  test('BatchEncoder writes the same bytes as encodeTraces and encodeLogs, batch after batch', () => {
    const enc = new BatchEncoder(resource);
    const base = samples();
    const big = { ...base[0], db: { ...base[0].db!, text: 'é'.repeat(40_000) } };
    // A large batch (the writers grow), then a small one (they are reused), then an empty one.
    for (const records of [[...base, big, ...base, big], base, []]) {
      enc.begin();
      for (const r of records) enc.add(r);
      expect(enc.count).toBe(records.length);
      const out = enc.finish();
      expect(Buffer.from(out.traces).equals(Buffer.from(encodeTraces(records, resource)))).toBe(true);
      expect(Buffer.from(out.logs).equals(Buffer.from(encodeLogs(records, resource)))).toBe(true);
    }
  });
});

describe('encodeMetrics', () => {
  test('a registry snapshot decodes to what the SDK serializer produces from the registry producer', async () => {
    const m = new Metrics();
    m.counter('warden_operations_total', 'ops').inc({ target: 'crm', decision: 'allow' }, 3);
    m.counter('warden_operations_total', 'ops').inc({ target: 'crm', decision: 'deny' });
    m.gauge('warden_spool_bytes', 'bytes').set({}, 4096);
    m.histogram('warden_added_latency_seconds', 'added').observe({ target: 'crm' }, 0.0004);
    m.histogram('warden_added_latency_seconds', 'added').observe({ target: 'crm' }, 0.02);
    const start = 1_763_800_000_000.5;
    const now = 1_763_800_015_000.25;
    const ours = decodeExport('metrics', 'protobuf', Buffer.from(encodeMetrics(m.snapshot(), resource, start, now))).metrics;
    const hr = (ms: number): [number, number] => [Math.floor(ms / 1000), Math.round((ms - Math.floor(ms / 1000) * 1000) * 1e6)];
    const collected = await registryProducer(m, resource, hr(start)).collect();
    const sm = collected.resourceMetrics.scopeMetrics[0];
    for (const metric of sm.metrics) for (const p of metric.dataPoints) (p as { endTime: [number, number] }).endTime = hr(now);
    const sdk = decodeExport(
      'metrics',
      'protobuf',
      Buffer.from(ProtobufMetricsSerializer.serializeRequest(collected.resourceMetrics)!),
    ).metrics;
    expect(ours.length).toBe(3);
    expect(ours).toEqual(sdk);
  });
});
