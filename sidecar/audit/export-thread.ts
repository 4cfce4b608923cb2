// The audit export thread (node:worker_threads): reads the records the main thread spooled,
// decodes them, encodes OTLP and exports them, and moves the acknowledged mark; it also runs the
// OTLP metrics export from the registry snapshots the main thread posts. Everything the export
// needs — the OTLP exporters, the OpenTelemetry SDKs, the protobuf encoder — is loaded here only,
// never on the main thread. Started and restarted by export-worker.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { Logger } from '../../common/log';
import type { Labels, MetricsSnapshot } from '../../common/metrics';
import { createProtobufMetricsExporter, createRecordExporters } from './exporters';
import { sidecarResource } from './otlp-settings';
import { DEFAULT_LINGER_MS, startShipper, type ShipperMetrics } from './shipper';
import { SpoolTail } from './spool-tail';
import type { ExportThreadData, FromThread, ToThread } from './export-worker';

const port = parentPort!;
const data = workerData as ExportThreadData;
const post = (m: FromThread): void => port.postMessage(m);

// Logs and counters go to the main thread's logger and registry (one message per event: per
// export batch at most, never per record).
function relayLogger(fields: Record<string, unknown> = {}): Logger {
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (msg: string, f?: Record<string, unknown>): void =>
      post({ t: 'log', level, msg, fields: { ...fields, ...f } });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (f) => relayLogger({ ...fields, ...f }) };
}

const metrics: ShipperMetrics = {
  counter: (name, help) => ({ inc: (labels?: Labels, by = 1) => post({ t: 'inc', name, help, labels: labels ?? {}, by }) }),
};

const log = relayLogger();
const tail = new SpoolTail(data.dir, data.progress, log);
const resource = data.resource ? resourceFromAttributes(data.resource) : sidecarResource();
const exporters = createRecordExporters(data.otlp, resource);
let snapshot: MetricsSnapshot = { counters: [], histograms: [] };
const otlpMetrics = data.metrics ? startMetrics(data.metrics) : undefined;

/**
 * The metrics export: http/protobuf with our encoder on a plain timer (no metrics SDK loaded);
 * http/json through the SDK's reader and JSON exporter, loaded only then.
 */
function startMetrics(m: NonNullable<ExportThreadData['metrics']>): { flush(): Promise<void>; stop(): Promise<void> } {
  if (m.settings.protocol === 'http/json') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createMetricExporter, startOtlpMetrics } = require('./otlp-metrics') as typeof import('./otlp-metrics');
    return startOtlpMetrics({
      metrics: { snapshot: () => snapshot },
      resource,
      exporter: createMetricExporter(m.settings),
      intervalMs: m.intervalMs,
    });
  }
  const exporter = createProtobufMetricsExporter(m.settings.url, resource, data.startedAt);
  const send = (): Promise<void> =>
    new Promise((resolve) => {
      if (snapshot.counters.length === 0 && snapshot.histograms.length === 0) return resolve();
      exporter.export(snapshot, (r) => {
        if (r.error) log.debug('audit: metrics export failed', { error: r.error.message });
        resolve();
      });
    });
  let sending: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    sending = sending.then(send);
  }, m.intervalMs);
  return {
    flush: () => (sending = sending.then(send)),
    stop: async () => {
      clearInterval(timer);
      await sending;
      await exporter.shutdown();
    },
  };
}
const shipper = startShipper({ spool: tail, exporters, log, metrics, lingerMs: data.lingerMs, maxBackoffMs: data.maxBackoffMs });

// New records are noticed by polling the shared mark every linger interval: the main thread sends
// nothing per record. Records a previous run (or a crashed thread) left unacknowledged go first.
const linger = data.lingerMs ?? DEFAULT_LINGER_MS;
const poll = setInterval(() => {
  const s = tail.stats();
  if (s.lastSeq > s.ackedSeq) shipper.kick();
}, linger);
shipper.kick();

port.on('message', (m: ToThread) => {
  if (m.t === 'metrics') {
    snapshot = m.snapshot;
  } else if (m.t === 'drain') {
    void shipper.drain(m.timeoutMs);
  } else if (m.t === 'stop') {
    clearInterval(poll);
    const metricsDone = otlpMetrics
      ? otlpMetrics
          .flush()
          .then(() => otlpMetrics.stop())
          .catch(() => undefined)
      : Promise.resolve();
    void Promise.allSettled([metricsDone, shipper.stop()]).finally(() => {
      tail.close();
      post({ t: 'stopped' });
      port.close();
    });
  }
});
post({ t: 'ready' });
