// OTLP exporters from the standard environment: OTEL_EXPORTER_OTLP_ENDPOINT (and the per-signal
// *_ENDPOINT variables), OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf by default, http/json),
// OTEL_EXPORTER_OTLP_HEADERS / _TIMEOUT / _COMPRESSION / certificates (read by the exporters
// themselves), OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES for the resource.
import { OTLPLogExporter as LogsJson } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPMetricExporter as MetricsJson } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as MetricsProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as TracesJson } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, envDetector, detectResources, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import type { ExportResult } from '@opentelemetry/core';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { AuditRecord } from '../../common/audit/record';
import { encodeLogs, encodeTraces } from './otlp-encode';
import { toLogRecord, toSpans } from './to-otlp';

export type OtlpProtocol = 'http/protobuf' | 'http/json';

export interface OtlpSignalSettings {
  protocol: OtlpProtocol;
  url: string;
}

export interface OtlpSettings {
  traces: OtlpSignalSettings;
  logs: OtlpSignalSettings;
  metrics: OtlpSignalSettings;
}

export class OtlpConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OtlpConfigError';
  }
}

function protocol(env: NodeJS.ProcessEnv, signal: 'TRACES' | 'LOGS' | 'METRICS'): OtlpProtocol {
  const raw = (env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf').trim();
  if (raw === 'http/protobuf' || raw === 'http/json') return raw;
  const name = env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] !== undefined ? `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL` : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  throw new OtlpConfigError(`${name}="${raw}" is not supported: use http/protobuf (the default) or http/json`);
}

/**
 * The OTLP settings, or undefined when no collector is configured (no endpoint, or
 * OTEL_SDK_DISABLED=true): records are then kept in the spool for `warden replay` only.
 */
export function otlpSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): OtlpSettings | undefined {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return undefined;
  const any = ['', 'TRACES_', 'LOGS_', 'METRICS_'].some((s) => (env[`OTEL_EXPORTER_OTLP_${s}ENDPOINT`] ?? '').trim() !== '');
  if (!any) return undefined;
  const signal = (name: 'TRACES' | 'LOGS' | 'METRICS'): OtlpSignalSettings => ({ protocol: protocol(env, name), url: endpoint(env, name) });
  return { traces: signal('TRACES'), logs: signal('LOGS'), metrics: signal('METRICS') };
}

/** Per the OTLP exporter spec: a signal's own endpoint is used as is; the shared one gets /v1/<signal>. */
function endpoint(env: NodeJS.ProcessEnv, signal: 'TRACES' | 'LOGS' | 'METRICS'): string {
  const own = (env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`] ?? '').trim();
  const raw = own || `${(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '').trim().replace(/\/+$/, '')}/v1/${signal.toLowerCase()}`;
  const name = own ? `OTEL_EXPORTER_OTLP_${signal}_ENDPOINT` : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new OtlpConfigError(`${name} is not a URL: "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OtlpConfigError(`${name} must be an http or https URL, not "${url.protocol}"`);
  return url.href;
}

/** Exports audit records as one signal (their spans, or their log records). */
export interface RecordExporter {
  export(records: AuditRecord[], done: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

export interface Exporters {
  traces: RecordExporter;
  logs: RecordExporter;
  metrics: PushMetricExporter;
}

/**
 * http/protobuf: the SDK's OTLP HTTP transport (headers, timeout, compression, certificates and
 * retries from OTEL_EXPORTER_OTLP_*) with our own serializer, which encodes records directly
 * (otlp-encode.ts). http/json: the SDK's JSON exporters over the records' ReadableSpans.
 */
function protobufExporter(signal: 'TRACES' | 'LOGS', url: string, encode: (r: AuditRecord[]) => Uint8Array): RecordExporter {
  const path = signal === 'TRACES' ? 'v1/traces' : 'v1/logs';
  const delegate = createOtlpHttpExportDelegate<AuditRecord[], unknown>(
    convertLegacyHttpOptions({ url }, signal, path, { 'Content-Type': 'application/x-protobuf' }),
    { serializeRequest: encode, deserializeResponse: () => ({}) },
    signal === 'TRACES' ? 'otlp_http_span_exporter' : 'otlp_http_log_exporter',
    { name: signal === 'TRACES' ? 'span' : 'log', countItems: (r: AuditRecord[]) => r.length },
    undefined,
  );
  return new OTLPExporterBase<AuditRecord[]>(delegate);
}

export function createExporters(s: OtlpSettings, resource: Resource): Exporters {
  let traces: RecordExporter;
  if (s.traces.protocol === 'http/json') {
    const sdk = new TracesJson({ url: s.traces.url });
    traces = { export: (records, done) => sdk.export(records.flatMap((r) => toSpans(r, resource)), done), shutdown: () => sdk.shutdown() };
  } else {
    traces = protobufExporter('TRACES', s.traces.url, (records) => encodeTraces(records, resource));
  }
  let logs: RecordExporter;
  if (s.logs.protocol === 'http/json') {
    const sdk = new LogsJson({ url: s.logs.url });
    logs = { export: (records, done) => sdk.export(records.map((r) => toLogRecord(r, resource)), done), shutdown: () => sdk.shutdown() };
  } else {
    logs = protobufExporter('LOGS', s.logs.url, (records) => encodeLogs(records, resource));
  }
  return {
    traces,
    logs,
    metrics: s.metrics.protocol === 'http/json' ? new MetricsJson({ url: s.metrics.url }) : new MetricsProto({ url: s.metrics.url }),
  };
}

/** service.name defaults to warden-sidecar; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override. */
export function sidecarResource(env: NodeJS.ProcessEnv = process.env): Resource {
  const detected = detectResources({ detectors: [envDetector] });
  const base = defaultResource().merge(resourceFromAttributes({ 'service.name': 'warden-sidecar', 'service.version': '0.1.0' }));
  const own = resourceFromAttributes(env.OTEL_SERVICE_NAME ? { 'service.name': env.OTEL_SERVICE_NAME } : {});
  return base.merge(detected).merge(own);
}
