// OTLP exporters of audit records (spans and log records). Loaded only by the export thread
// (export-thread.ts), never on the sidecar's main thread: the settings and the resource are in
// otlp-settings.ts, the metrics exporter in otlp-metrics.ts.
import type { Resource } from '@opentelemetry/resources';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import type { ExportResult } from '@opentelemetry/core';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { AuditRecord } from '../../common/audit/record';
import type { MetricsSnapshot } from '../../common/metrics';
import { BatchEncoder, encodeLogs, encodeMetrics, encodeTraces } from './otlp-encode';
import type { OtlpSettings } from './otlp-settings';
import { toLogRecord, toSpans } from './to-otlp';

export {
  OtlpConfigError,
  otlpSettingsFromEnv,
  sidecarResource,
  type OtlpProtocol,
  type OtlpSettings,
  type OtlpSignalSettings,
} from './otlp-settings';

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

/** Records already serialized by a BatchEncoder: the request body and how many records it holds. */
export interface EncodedBatch {
  encoded: Uint8Array;
  count: number;
}

/** An exporter that also takes request bodies serialized beforehand. */
export interface EncodedExporter {
  export(batch: EncodedBatch, done: (result: ExportResult) => void): void;
}

/**
 * The span and log exporters (the export thread's part; metrics stay with the registry). `encoded`
 * is there when both signals are http/protobuf: the shipper then writes both requests while it
 * decodes the batch (BatchEncoder) instead of decoding all of it first.
 */
export type RecordExporters = Pick<Exporters, 'traces' | 'logs'> & {
  encoded?: { encoder: BatchEncoder; traces: EncodedExporter; logs: EncodedExporter };
};

/**
 * http/protobuf: the SDK's OTLP HTTP transport (headers, timeout, compression, certificates and
 * retries from OTEL_EXPORTER_OTLP_*) with our own serializer, which encodes records directly
 * (otlp-encode.ts). http/json: the SDK's JSON exporters over the records' ReadableSpans.
 */
function protobufExporter(
  signal: 'TRACES' | 'LOGS',
  url: string,
  encode: (r: AuditRecord[]) => Uint8Array,
): RecordExporter & EncodedExporter {
  const path = signal === 'TRACES' ? 'v1/traces' : 'v1/logs';
  const delegate = createOtlpHttpExportDelegate<AuditRecord[] | EncodedBatch, unknown>(
    convertLegacyHttpOptions({ url }, signal, path, { 'Content-Type': 'application/x-protobuf' }),
    { serializeRequest: (b) => (Array.isArray(b) ? encode(b) : b.encoded), deserializeResponse: () => ({}) },
    signal === 'TRACES' ? 'otlp_http_span_exporter' : 'otlp_http_log_exporter',
    { name: signal === 'TRACES' ? 'span' : 'log', countItems: (b) => (Array.isArray(b) ? b.length : b.count) },
    undefined,
  );
  return new OTLPExporterBase<AuditRecord[] | EncodedBatch>(delegate);
}

export function createRecordExporters(s: Pick<OtlpSettings, 'traces' | 'logs'>, resource: Resource): RecordExporters {
  let traces: RecordExporter;
  let tracesPb: EncodedExporter | undefined;
  let logsPb: EncodedExporter | undefined;
  if (s.traces.protocol === 'http/json') {
    // The SDK's JSON exporters (and the transformer they bring) load only when asked for: memory.
    const { OTLPTraceExporter: TracesJson } =
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
    const sdk = new TracesJson({ url: s.traces.url });
    traces = {
      export: (records, done) =>
        sdk.export(
          records.flatMap((r) => toSpans(r, resource)),
          done,
        ),
      shutdown: () => sdk.shutdown(),
    };
  } else {
    traces = tracesPb = protobufExporter('TRACES', s.traces.url, (records) => encodeTraces(records, resource));
  }
  let logs: RecordExporter;
  if (s.logs.protocol === 'http/json') {
    const { OTLPLogExporter: LogsJson } =
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('@opentelemetry/exporter-logs-otlp-http') as typeof import('@opentelemetry/exporter-logs-otlp-http');
    const sdk = new LogsJson({ url: s.logs.url });
    logs = {
      export: (records, done) =>
        sdk.export(
          records.map((r) => toLogRecord(r, resource)),
          done,
        ),
      shutdown: () => sdk.shutdown(),
    };
  } else {
    logs = logsPb = protobufExporter('LOGS', s.logs.url, (records) => encodeLogs(records, resource));
  }
  if (tracesPb && logsPb) return { traces, logs, encoded: { encoder: new BatchEncoder(resource), traces: tracesPb, logs: logsPb } };
  return { traces, logs };
}

/** Exports registry snapshots as OTLP metrics. */
export interface SnapshotExporter {
  export(snapshot: MetricsSnapshot, done: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

/**
 * http/protobuf metrics with our encoder (otlp-encode.ts) over the SDK's HTTP transport, as for
 * spans and logs: the metrics SDK and the proto exporter's protobuf runtime stay unloaded.
 * Timestamps: points are cumulative from startMs.
 */
export function createProtobufMetricsExporter(url: string, resource: Resource, startMs: number): SnapshotExporter {
  const delegate = createOtlpHttpExportDelegate<MetricsSnapshot, unknown>(
    convertLegacyHttpOptions({ url }, 'METRICS', 'v1/metrics', { 'Content-Type': 'application/x-protobuf' }),
    {
      serializeRequest: (snap) => encodeMetrics(snap, resource, startMs, performance.timeOrigin + performance.now()),
      deserializeResponse: () => ({}),
    },
    'otlp_http_metric_exporter',
    { name: 'metric_data_point', countItems: (snap: MetricsSnapshot) => snap.counters.length + snap.histograms.length },
    undefined,
  );
  return new OTLPExporterBase<MetricsSnapshot>(delegate);
}
