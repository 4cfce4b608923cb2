// The audit trail: the spool that every record is written to before the agent sees its result,
// the shipper that exports spooled records to the OTLP collector, and the metrics export. Opened
// once per sidecar; records flow recorder.append -> spool -> shipper -> collector.
import type { Resource } from '@opentelemetry/resources';
import type { AuditRecord } from '../../common/audit/record';
import { METRIC } from '../../common/audit/names';
import type { Logger } from '../../common/log';
import type { Metrics } from '../../common/metrics';
import { createExporters, sidecarResource, type Exporters, type OtlpSettings } from './exporters';
import { startOtlpMetrics, type OtlpMetricsHandle } from './otlp-metrics';
import { startShipper, type Shipper } from './shipper';
import type { AuditRecorder } from './sink';
import { Spool, type WhenFull } from './spool';

export interface AuditTrailOptions {
  dir: string;
  maxBytes: number;
  /** The policy's audit.whenSpoolFull; a reload changes it with setWhenFull. */
  whenFull: WhenFull;
  log: Logger;
  metrics: Metrics;
  /** Without OTLP settings records are kept for `warden replay` only and count as delivered at once. */
  otlp?: OtlpSettings;
  /** Tests pass exporters pointed at their receiver; default: from otlp. */
  exporters?: Exporters;
  resource?: Resource;
  metricsIntervalMs?: number;
  lingerMs?: number;
  maxBackoffMs?: number;
}

export interface AuditTrail {
  recorder: AuditRecorder;
  spool: Spool;
  /** A reloaded policy's audit.whenSpoolFull. */
  setWhenFull(mode: WhenFull): void;
  /** Ships everything recorded so far (bounded by timeoutMs); true when all of it was acknowledged. */
  drain(timeoutMs: number): Promise<boolean>;
  close(graceMs: number): Promise<void>;
}

export function openAuditTrail(opts: AuditTrailOptions): AuditTrail {
  const { log, metrics } = opts;
  const spool = Spool.open({ dir: opts.dir, maxBytes: opts.maxBytes, whenFull: opts.whenFull, log, metrics });
  // Block mode refuses new operations while this much room is still left, so that the records of
  // operations already running (pipelined statements, streams) always fit: none is ever lost.
  const reserve = Math.max(4096, Math.min(Math.floor(opts.maxBytes / 8), 4 * 1024 * 1024));
  const blockedOps = metrics.counter(METRIC.spoolBlocked, 'Operations refused because the audit spool was full (whenSpoolFull: block).');
  const resource = opts.resource ?? sidecarResource();
  const exporters = opts.exporters ?? (opts.otlp ? createExporters(opts.otlp, resource) : undefined);
  let shipper: Shipper | undefined;
  let otlpMetrics: OtlpMetricsHandle | undefined;
  let ackTimer: NodeJS.Timeout | undefined;
  if (exporters) {
    shipper = startShipper({ spool, exporters, log, metrics, lingerMs: opts.lingerMs, maxBackoffMs: opts.maxBackoffMs });
    otlpMetrics = startOtlpMetrics({ metrics, resource, exporter: exporters.metrics, intervalMs: opts.metricsIntervalMs });
    shipper.kick(); // records a previous run left unacknowledged
  } else {
    // Nobody to deliver to: records are kept for replay, and count as delivered (so they never block).
    ackTimer = setInterval(() => {
      const s = spool.stats();
      if (s.lastSeq > s.ackedSeq) spool.ack(s.lastSeq);
    }, 1000);
    ackTimer.unref();
  }

  const recorder: AuditRecorder = {
    append(record: AuditRecord): void {
      if (spool.append(JSON.stringify(record)) !== undefined) shipper?.kick();
    },
    blocked(): string | undefined {
      if (!spool.full && spool.hasRoom(reserve)) return undefined;
      if (spool.whenFull !== 'block') return undefined;
      blockedOps.inc();
      return 'the audit trail is full (the OpenTelemetry collector has been unreachable too long) and this policy blocks operations it cannot record (audit.whenSpoolFull: block)';
    },
  };

  return {
    recorder,
    spool,
    setWhenFull: (mode) => {
      spool.whenFull = mode;
    },
    drain: (timeoutMs) => (shipper ? shipper.drain(timeoutMs) : Promise.resolve(true)),
    async close(graceMs: number): Promise<void> {
      if (ackTimer) clearInterval(ackTimer);
      if (shipper) {
        await shipper.drain(Math.min(graceMs, 5000));
        await shipper.stop();
      }
      if (otlpMetrics) await otlpMetrics.flush().catch(() => undefined);
      if (otlpMetrics) await otlpMetrics.stop().catch(() => undefined);
      if (!exporters) {
        const s = spool.stats();
        if (s.lastSeq > s.ackedSeq) spool.ack(s.lastSeq);
      }
      await spool.close();
    },
  };
}
