// The audit trail: the spool that every record is written to before the agent sees its result,
// the export thread that ships spooled records (and the metrics) to the OTLP collector.
// Opened once per sidecar.
//
// Records flow: recorder.append (main thread: encode once, binary.ts; one write to the kernel,
// spool.ts) -> spool files -> export thread (export-thread.ts: reads the files, decodes, encodes
// OTLP, exports, acknowledges) -> collector. The main thread never reads a record back, never
// parses one and never loads the span and log exporters; the two threads share only two numbers
// (last written, last acknowledged) in a SharedArrayBuffer, so `whenSpoolFull: block` is still
// answered synchronously here.
//
// Durability is the spool's: a record is in the kernel when append returns, before the data path
// answers the agent; a thread that dies (or a process killed) loses nothing, the next one reads
// what was not acknowledged from disk.
import type { Resource } from '@opentelemetry/resources';
import type { AuditRecord } from '../../common/audit/record';
import { METRIC } from '../../common/audit/names';
import type { Logger } from '../../common/log';
import type { Metrics } from '../../common/metrics';
import { encodeRecord } from './binary';
import type { Exporters } from './exporters';
import { startExportThread, type ExportThread } from './export-worker';
import type { OtlpMetricsHandle } from './otlp-metrics';
import { sidecarResource, type OtlpSettings } from './otlp-settings';
import type { Shipper } from './shipper';
import type { AuditRecorder } from './sink';
import { Spool, type WhenFull } from './spool';
import { SpoolTail } from './spool-tail';

export interface AuditTrailOptions {
  dir: string;
  maxBytes: number;
  /** The policy's audit.whenSpoolFull; a reload changes it with setWhenFull. */
  whenFull: WhenFull;
  log: Logger;
  metrics: Metrics;
  /** Without OTLP settings records are kept for `warden replay` only and count as delivered at once. */
  otlp?: OtlpSettings;
  /**
   * Tests pass exporters pointed at their receiver; default: from otlp. Objects cannot cross into
   * the export thread, so these run on the calling thread (same code, same spool reading).
   */
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
  /** The export thread, when records are exported from one (tests end it to prove a restart loses nothing). */
  exportThread?: Pick<ExportThread, 'restarts' | 'kill'>;
}

export function openAuditTrail(opts: AuditTrailOptions): AuditTrail {
  const { log, metrics } = opts;
  const spool = Spool.open({ dir: opts.dir, maxBytes: opts.maxBytes, whenFull: opts.whenFull, log, metrics });
  // Block mode refuses new operations while this much room is still left, so that the records of
  // operations already running (pipelined statements, streams) always fit: none is ever lost.
  const reserve = Math.max(4096, Math.min(Math.floor(opts.maxBytes / 8), 4 * 1024 * 1024));
  const blockedOps = metrics.counter(METRIC.spoolBlocked, 'Operations refused because the audit spool was full (whenSpoolFull: block).');
  let thread: ExportThread | undefined;
  let shipper: Shipper | undefined;
  let otlpMetrics: OtlpMetricsHandle | undefined;
  let ackTimer: NodeJS.Timeout | undefined;
  let tail: SpoolTail | undefined;
  if (opts.exporters) {
    // In-process export (tests' own exporters): the same reading and acknowledging as the thread.
    // Loaded here only, so a sidecar's main thread never loads the shipper or the metrics SDK.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { startShipper } = require('./shipper') as typeof import('./shipper');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { startOtlpMetrics } = require('./otlp-metrics') as typeof import('./otlp-metrics');
    const t = (tail = new SpoolTail(opts.dir, spool.shareProgress(), log));
    shipper = startShipper({ spool: t, exporters: opts.exporters, log, metrics, lingerMs: opts.lingerMs, maxBackoffMs: opts.maxBackoffMs });
    const s = shipper;
    ackTimer = setInterval(() => {
      const st = t.stats();
      if (st.lastSeq > st.ackedSeq) s.kick();
    }, opts.lingerMs ?? 500); // shipper.ts's DEFAULT_LINGER_MS (not imported: the main thread never loads the shipper)
    ackTimer.unref();
    s.kick();
    otlpMetrics = startOtlpMetrics({
      metrics,
      resource: opts.resource ?? sidecarResource(),
      exporter: opts.exporters.metrics,
      intervalMs: opts.metricsIntervalMs,
    });
  } else if (opts.otlp) {
    thread = startExportThread({
      data: {
        dir: opts.dir,
        progress: spool.shareProgress(),
        otlp: { traces: opts.otlp.traces, logs: opts.otlp.logs },
        // The thread builds the default resource itself (from the same environment).
        resource: opts.resource ? { ...opts.resource.attributes } : undefined,
        lingerMs: opts.lingerMs,
        maxBackoffMs: opts.maxBackoffMs,
        metrics: { settings: opts.otlp.metrics, intervalMs: opts.metricsIntervalMs ?? 15_000 },
        startedAt: performance.timeOrigin + performance.now(),
      },
      log,
      metrics,
      // Acknowledgements move the spool's gauges (and can unblock a full spool) as they happen.
      onActivity: () => void spool.stats(),
    });
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
      spool.append(encodeRecord(record));
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
    exportThread: thread,
    setWhenFull: (mode) => {
      spool.whenFull = mode;
    },
    drain: (timeoutMs) => (thread ? thread.drain(timeoutMs) : shipper ? shipper.drain(timeoutMs) : Promise.resolve(true)),
    async close(graceMs: number): Promise<void> {
      if (ackTimer) clearInterval(ackTimer);
      if (thread) {
        await thread.drain(Math.min(graceMs, 5000));
        await thread.stop(Math.min(graceMs, 5000));
      }
      if (shipper) {
        await shipper.drain(Math.min(graceMs, 5000));
        await shipper.stop();
        tail?.close();
      }
      if (otlpMetrics) await otlpMetrics.flush().catch(() => undefined);
      if (otlpMetrics) await otlpMetrics.stop().catch(() => undefined);
      if (!thread && !shipper) {
        const s = spool.stats();
        if (s.lastSeq > s.ackedSeq) spool.ack(s.lastSeq);
      }
      await spool.close();
    },
  };
}
