// Proves the test OTLP receiver against the real OpenTelemetry JS SDK and exporters: what they
// send over OTLP/HTTP (protobuf and JSON, gzip or not) decodes to the spans, logs and metrics the
// SDK produced, with their ids, attributes and values. The SDK runs in a plain Node child process
// (otlp-proto/sdk-emitter.js): its exporters import node:http dynamically, which Jest cannot run.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver';

const EMITTER = path.join(__dirname, 'otlp-proto', 'sdk-emitter.js');

interface Emitted {
  traceId?: string;
  parentId?: string;
  childId?: string;
  spanId?: string;
  /** Export result codes the SDK saw (0 success, 1 failed). */
  results: number[];
}

interface EmitOptions {
  scenario: 'spans' | 'logs' | 'metrics' | 'export-once';
  protocol?: 'http/protobuf' | 'http/json';
  gzip?: boolean;
}

function emit(r: OtlpReceiver, opts: EmitOptions): Promise<Emitted> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [EMITTER, JSON.stringify({ url: r.url, ...opts })], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`sdk-emitter ${opts.scenario} failed: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout) as Emitted);
    });
  });
}

let rx: OtlpReceiver;
beforeEach(async () => {
  rx = await startOtlpReceiver();
});
afterEach(async () => {
  await rx.close();
});

function expectSpans(r: OtlpReceiver, ids: Emitted): void {
  const spans = r.spans();
  expect(spans.map((s) => s.name).sort()).toEqual(['warden.approval.wait', 'warden.postgres.query']);
  const parent = spans.find((s) => s.name === 'warden.postgres.query')!;
  const child = spans.find((s) => s.name === 'warden.approval.wait')!;
  expect(parent.traceId).toMatch(/^[0-9a-f]{32}$/);
  expect(parent.traceId).toBe(ids.traceId);
  expect(parent.spanId).toBe(ids.parentId);
  expect(parent.parentSpanId).toBeUndefined();
  expect(child.traceId).toBe(ids.traceId);
  expect(child.spanId).toBe(ids.childId);
  expect(child.parentSpanId).toBe(ids.parentId);
  expect(parent.kind).toBe(2); // SPAN_KIND_SERVER
  expect(child.kind).toBe(1); // SPAN_KIND_INTERNAL
  expect(parent.status).toEqual({ code: 2, message: 'denied by rule no-ddl' });
  expect(parent.attributes).toEqual({
    'warden.decision': 'deny',
    'db.response.returned_rows': 3,
    'warden.upstream.duration_ms': 1.5,
    'warden.masked': true,
    'warden.identity.groups': ['sre', 'dev'],
  });
  expect(parent.events).toEqual([expect.objectContaining({ name: 'masked', attributes: { detector: 'credit-card' } })]);
  expect(parent.resource).toMatchObject({ 'service.name': 'warden-test', 'k8s.namespace.name': 'agents' });
  expect(parent.scope).toMatchObject({ name: 'agent-warden', version: '0.1.0' });
  expect(parent.endNs).toBeGreaterThanOrEqual(parent.startNs);
  expect(Math.abs(parent.startMs - Date.now())).toBeLessThan(60_000);
  expect(ids.results).toEqual([0]);
}

test('decodes spans from the real OTLP/HTTP protobuf exporter, gzip-compressed too', async () => {
  expectSpans(rx, await emit(rx, { scenario: 'spans' }));
  expect(rx.raw()).toEqual([expect.objectContaining({ path: '/v1/traces', contentType: 'application/x-protobuf', status: 200 })]);

  rx.reset();
  expectSpans(rx, await emit(rx, { scenario: 'spans', gzip: true }));
  const [req] = rx.raw();
  expect(req.contentEncoding).toBe('gzip');
  expect(zlib.gunzipSync(req.wire).equals(req.body)).toBe(true);
  // secret scans search the decoded body: the attribute text is in it, not in the gzip bytes
  expect(req.body.includes('denied by rule no-ddl')).toBe(true);
  expect(req.wire.includes('denied by rule no-ddl')).toBe(false);
});

test('decodes spans from the real OTLP/HTTP JSON exporter (hex ids)', async () => {
  const ids = await emit(rx, { scenario: 'spans', protocol: 'http/json' });
  expectSpans(rx, ids);
  const [req] = rx.raw();
  expect(req.contentType).toBe('application/json');
  expect(req.body.toString()).toContain(`"traceId":"${ids.traceId}"`);
});

test('decodes log records from the real log exporters, with trace context and a structured body', async () => {
  for (const protocol of ['http/protobuf', 'http/json'] as const) {
    rx.reset();
    const ids = await emit(rx, { scenario: 'logs', protocol });
    const [structured, plain] = rx.logs();
    expect(structured).toMatchObject({
      severityNumber: 13,
      severityText: 'WARN',
      body: { decision: 'deny', rule: 'no-ddl', rows: 0 },
      attributes: { 'warden.target': 'crm', 'warden.masked.count': 2 },
      eventName: 'warden.audit',
      traceId: ids.traceId,
      spanId: ids.spanId,
      scope: { name: 'agent-warden', version: '0.1.0' },
      resource: { 'service.name': 'warden-test' },
    });
    expect(structured.timeNs).toBeGreaterThan(0n);
    expect(plain).toMatchObject({ severityNumber: 9, body: 'plain text body' });
    expect(plain.traceId).toBeUndefined();
    expect(ids.results).toEqual([0]);
  }
});

test('decodes a counter, a histogram and a gauge from the real metric exporters', async () => {
  for (const protocol of ['http/protobuf', 'http/json'] as const) {
    rx.reset();
    await emit(rx, { scenario: 'metrics', protocol });
    const byName = new Map(rx.metrics().map((m) => [m.name, m]));
    const counter = byName.get('warden_operations_total')!;
    expect(counter).toMatchObject({ type: 'sum', isMonotonic: true, temporality: 2, scope: { name: 'agent-warden' } });
    const points = counter.dataPoints.map((p) => [p.attributes.decision, p.attributes.rule, p.value]).sort();
    expect(points).toEqual([
      ['allow', '', 5],
      ['deny', 'no-ddl', 2],
    ]);
    const hist = byName.get('warden_added_latency_seconds')!;
    expect(hist).toMatchObject({ type: 'histogram', unit: 's' });
    expect(hist.dataPoints).toHaveLength(1);
    expect(hist.dataPoints[0]).toMatchObject({
      attributes: { target: 'crm', kind: 'postgres' },
      count: 2,
      bucketCounts: [1, 0, 1, 0],
      explicitBounds: [0.005, 0.1, 1],
      min: 0.003,
      max: 0.2,
    });
    expect(hist.dataPoints[0].sum).toBeCloseTo(0.203);
    expect(byName.get('warden_audit_spool_bytes')).toMatchObject({ type: 'gauge', dataPoints: [expect.objectContaining({ value: 4096 })] });
  }
});

/** Replays a body the real exporter sent, so failure tests need no exporter retry back-off. */
async function post(r: OtlpReceiver, path: string, body: Buffer, contentType = 'application/x-protobuf'): Promise<Response> {
  return fetch(`${r.url}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });
}

test('setFailing answers every attempt with the status, counts it and keeps nothing', async () => {
  await emit(rx, { scenario: 'spans' });
  const body = rx.raw()[0].body;
  rx.reset();
  rx.setFailing(503);
  expect((await post(rx, '/v1/traces', body)).status).toBe(503);
  expect((await post(rx, '/v1/traces', body)).status).toBe(503);
  expect(rx.requests).toBe(2);
  expect(rx.spans()).toEqual([]);
  expect(rx.raw().map((q) => q.status)).toEqual([503, 503]);

  rx.setFailing(null);
  const ok = await post(rx, '/v1/traces', body);
  expect(ok.status).toBe(200);
  expect(ok.headers.get('content-type')).toBe('application/x-protobuf');
  expect((await ok.arrayBuffer()).byteLength).toBe(0); // empty ExportTraceServiceResponse
  expect(rx.spans()).toHaveLength(2);
});

test('the real exporter sees the failure while the collector refuses', async () => {
  rx.setFailing(400); // not retryable, so the exporter gives up at once (503 would be retried with back-off)
  const { results } = await emit(rx, { scenario: 'export-once' });
  expect(results).toEqual([1]);
  expect(rx.requests).toBe(1);
  expect(rx.spans()).toEqual([]);
});

test('down() makes the collector unreachable and up() listens again on the same port', async () => {
  const json = Buffer.from(JSON.stringify({ resourceSpans: [] }));
  expect((await post(rx, '/v1/traces', json, 'application/json')).status).toBe(200);
  const url = rx.url;
  await rx.down();
  await expect(post(rx, '/v1/traces', json, 'application/json')).rejects.toThrow();
  await rx.up();
  expect(rx.url).toBe(url);
  const res = await post(rx, '/v1/traces', json, 'application/json');
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({});
  expect(rx.requests).toBe(2);
});

test('rejects unknown paths, content types and encodings the receiver was told not to accept', async () => {
  const json = Buffer.from('{}');
  expect((await post(rx, '/v1/profiles', json, 'application/json')).status).toBe(404);
  expect((await post(rx, '/v1/traces', json, 'text/plain')).status).toBe(415);
  expect((await post(rx, '/v1/traces', Buffer.from('{not json'), 'application/json')).status).toBe(400);
  const jsonOnly = await startOtlpReceiver({ protocol: 'http/json' });
  try {
    expect((await post(jsonOnly, '/v1/traces', Buffer.alloc(0))).status).toBe(415);
    expect((await post(jsonOnly, '/v1/traces', json, 'application/json; charset=utf-8')).status).toBe(200);
  } finally {
    await jsonOnly.close();
  }
});

test('waitFor rejects with what was received when the condition never holds', async () => {
  await expect(rx.waitFor((r) => r.spans().length > 0, 50)).rejects.toThrow(/within 50ms \(requests=0, spans=0/);
});
