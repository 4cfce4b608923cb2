// @ts-check
// Emits telemetry with the REAL OpenTelemetry JS SDK and OTLP/HTTP exporters, in a plain Node
// process: the exporters load node:http with a dynamic import(), which Jest cannot run without
// --experimental-vm-modules, so otlp-receiver.test.ts starts this script instead.
//
//   node sdk-emitter.js '{"url":"http://127.0.0.1:PORT","scenario":"spans","protocol":"http/protobuf","gzip":false}'
//
// Scenarios: spans (a server span with a child), logs (a structured and a plain record), metrics
// (a counter, a histogram and a gauge), export-once (one span straight through exporter.export).
// Prints one JSON line: the ids it generated and the export results it saw.
'use strict';
const { context, SpanKind, SpanStatusCode, trace } = require('@opentelemetry/api');
const { SeverityNumber } = require('@opentelemetry/api-logs');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { LoggerProvider, BatchLogRecordProcessor } = require('@opentelemetry/sdk-logs');
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');

const opts = JSON.parse(process.argv[2] ?? '{}');
const resource = resourceFromAttributes({ 'service.name': 'warden-test', 'k8s.namespace.name': 'agents' });
const exporterConfig = (signal) => ({ url: `${opts.url}/v1/${signal}`, ...(opts.gzip ? { compression: 'gzip' } : {}) });
const json = opts.protocol === 'http/json';

/** Records each export's result code (0 success, 1 failed) on a real exporter, leaving it otherwise as is. */
function recording(exporter, results) {
  const send = exporter.export.bind(exporter);
  exporter.export = (items, done) =>
    send(items, (r) => {
      results.push(r.code);
      done(r);
    });
  return exporter;
}

async function spans(results) {
  const { OTLPTraceExporter } = require(json ? '@opentelemetry/exporter-trace-otlp-http' : '@opentelemetry/exporter-trace-otlp-proto');
  const exporter = recording(new OTLPTraceExporter(exporterConfig('traces')), results);
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
  const tracer = provider.getTracer('agent-warden', '0.1.0');
  const parent = tracer.startSpan('warden.postgres.query', {
    kind: SpanKind.SERVER,
    attributes: {
      'warden.decision': 'deny',
      'db.response.returned_rows': 3,
      'warden.upstream.duration_ms': 1.5,
      'warden.masked': true,
      'warden.identity.groups': ['sre', 'dev'],
    },
  });
  parent.addEvent('masked', { detector: 'credit-card' });
  parent.setStatus({ code: SpanStatusCode.ERROR, message: 'denied by rule no-ddl' });
  const child = tracer.startSpan('warden.approval.wait', {}, trace.setSpan(context.active(), parent));
  child.end();
  parent.end();
  await provider.forceFlush();
  await provider.shutdown();
  return { traceId: parent.spanContext().traceId, parentId: parent.spanContext().spanId, childId: child.spanContext().spanId };
}

async function logs(results) {
  const { OTLPLogExporter } = require(json ? '@opentelemetry/exporter-logs-otlp-http' : '@opentelemetry/exporter-logs-otlp-proto');
  const exporter = recording(new OTLPLogExporter(exporterConfig('logs')), results);
  const provider = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter })] });
  const span = new BasicTracerProvider().getTracer('t').startSpan('op');
  provider.getLogger('agent-warden', '0.1.0').emit({
    severityNumber: SeverityNumber.WARN,
    severityText: 'WARN',
    body: { decision: 'deny', rule: 'no-ddl', rows: 0 },
    attributes: { 'warden.target': 'crm', 'warden.masked.count': 2 },
    eventName: 'warden.audit',
    context: trace.setSpan(context.active(), span),
  });
  provider.getLogger('agent-warden').emit({ severityNumber: SeverityNumber.INFO, body: 'plain text body' });
  await provider.forceFlush();
  await provider.shutdown();
  return { traceId: span.spanContext().traceId, spanId: span.spanContext().spanId };
}

async function metrics(results) {
  const { OTLPMetricExporter } = require(json ? '@opentelemetry/exporter-metrics-otlp-http' : '@opentelemetry/exporter-metrics-otlp-proto');
  const exporter = recording(new OTLPMetricExporter(exporterConfig('metrics')), results);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
  const provider = new MeterProvider({ resource, readers: [reader] });
  const meter = provider.getMeter('agent-warden', '0.1.0');
  const ops = meter.createCounter('warden_operations_total');
  ops.add(2, { target: 'crm', decision: 'deny', rule: 'no-ddl' });
  ops.add(5, { target: 'crm', decision: 'allow', rule: '' });
  const latency = meter.createHistogram('warden_added_latency_seconds', {
    unit: 's',
    advice: { explicitBucketBoundaries: [0.005, 0.1, 1] },
  });
  latency.record(0.003, { target: 'crm', kind: 'postgres' });
  latency.record(0.2, { target: 'crm', kind: 'postgres' });
  meter.createObservableGauge('warden_audit_spool_bytes').addCallback((r) => r.observe(4096));
  await reader.forceFlush();
  await provider.shutdown();
  return {};
}

async function exportOnce(results) {
  const { OTLPTraceExporter } = require(json ? '@opentelemetry/exporter-trace-otlp-http' : '@opentelemetry/exporter-trace-otlp-proto');
  const exporter = recording(new OTLPTraceExporter(exporterConfig('traces')), results);
  const provider = new BasicTracerProvider({ resource });
  const span = provider.getTracer('agent-warden').startSpan('warden.http.request');
  span.end();
  await new Promise((resolve) => exporter.export([span], resolve));
  await exporter.shutdown();
  return {};
}

const SCENARIOS = { spans, logs, metrics, 'export-once': exportOnce };

async function main() {
  const run = SCENARIOS[opts.scenario];
  if (!run) throw new Error(`unknown scenario "${opts.scenario}"; choose ${Object.keys(SCENARIOS).join(', ')}`);
  const results = [];
  const ids = await run(results);
  process.stdout.write(JSON.stringify({ ...ids, results }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
