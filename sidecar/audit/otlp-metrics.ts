// The sidecar's metrics over OTLP: the OTel metrics SDK's periodic reader and OTLP exporter, fed
// by a MetricProducer that reads the same registry /metrics renders (cumulative temporality), so
// Prometheus scrapes and OTLP pushes always agree.
import { ValueType } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  PeriodicExportingMetricReader,
  type CollectionResult,
  type MetricData,
  type MetricProducer,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics';
import type { HrTime } from '@opentelemetry/api';
import { SCOPE } from '../../common/audit/names';
import type { Metrics, MetricsSnapshot } from '../../common/metrics';
import type { OtlpSignalSettings } from './otlp-settings';

/** The OTLP metrics exporter for these settings (http/protobuf or http/json); only that one is loaded. */
export function createMetricExporter(s: OtlpSignalSettings): PushMetricExporter {
  if (s.protocol === 'http/json') {
    const { OTLPMetricExporter } =
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('@opentelemetry/exporter-metrics-otlp-http') as typeof import('@opentelemetry/exporter-metrics-otlp-http');
    return new OTLPMetricExporter({ url: s.url });
  }
  const { OTLPMetricExporter } =
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@opentelemetry/exporter-metrics-otlp-proto') as typeof import('@opentelemetry/exporter-metrics-otlp-proto');
  return new OTLPMetricExporter({ url: s.url });
}

function hrNow(): HrTime {
  const ms = performance.timeOrigin + performance.now();
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** Converts the registry to OTLP metric data; pure apart from the clock. */
export function registryProducer(
  metrics: Pick<Metrics, 'snapshot'> | { snapshot(): MetricsSnapshot },
  resource: Resource,
  startTime: HrTime = hrNow(),
): MetricProducer {
  return {
    collect: async (): Promise<CollectionResult> => {
      const snap = metrics.snapshot();
      const now = hrNow();
      const out: MetricData[] = [];
      for (const c of snap.counters) {
        if (c.points.length === 0) continue;
        const dataPoints = c.points.map((p) => ({ startTime, endTime: now, attributes: p.labels, value: p.value }));
        const descriptor = { name: c.name, description: c.help, unit: '', valueType: ValueType.DOUBLE };
        if (c.monotonic) {
          out.push({
            descriptor,
            aggregationTemporality: AggregationTemporality.CUMULATIVE,
            dataPointType: DataPointType.SUM,
            dataPoints,
            isMonotonic: true,
          });
        } else {
          out.push({
            descriptor,
            aggregationTemporality: AggregationTemporality.CUMULATIVE,
            dataPointType: DataPointType.GAUGE,
            dataPoints,
          });
        }
      }
      for (const h of snap.histograms) {
        if (h.points.length === 0) continue;
        out.push({
          descriptor: { name: h.name, description: h.help, unit: 's', valueType: ValueType.DOUBLE },
          aggregationTemporality: AggregationTemporality.CUMULATIVE,
          dataPointType: DataPointType.HISTOGRAM,
          dataPoints: h.points.map((p) => ({
            startTime,
            endTime: now,
            attributes: p.labels,
            value: { buckets: { boundaries: [...h.bounds], counts: p.counts }, sum: p.sum, count: p.count, hasMinMax: false },
          })),
        });
      }
      return {
        resourceMetrics: { resource, scopeMetrics: [{ scope: { name: SCOPE.name, version: SCOPE.version }, metrics: out }] },
        errors: [],
      };
    },
  };
}

export interface OtlpMetricsHandle {
  /** Exports now (tests, shutdown). */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

export function startOtlpMetrics(opts: {
  metrics: Pick<Metrics, 'snapshot'>;
  resource: Resource;
  exporter: PushMetricExporter;
  intervalMs?: number;
}): OtlpMetricsHandle {
  const reader = new PeriodicExportingMetricReader({
    exporter: opts.exporter,
    exportIntervalMillis: opts.intervalMs ?? 15_000,
    exportTimeoutMillis: Math.min(opts.intervalMs ?? 15_000, 10_000),
    metricProducers: [registryProducer(opts.metrics, opts.resource)],
  });
  const provider = new MeterProvider({ resource: opts.resource, readers: [reader] });
  return {
    flush: () => provider.forceFlush(),
    stop: () => provider.shutdown(),
  };
}
