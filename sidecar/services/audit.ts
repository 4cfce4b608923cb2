// The audit sink every data path writes to and, when records are kept, the spool and shipper
// behind it (OTLP collector, local spool that survives the collector being away).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '../../common/log';
import type { Metrics } from '../../common/metrics';
import { createAuditSink } from '../audit/sink';
import { openAuditTrail, type AuditTrail } from '../audit/trail';
import type { Exporters, OtlpSettings } from '../audit/exporters';
import type { AuditSink } from '../audit/events';
import type { PolicyStore } from '../policy-store';

export interface AuditServiceOptions {
  /** A sink given by the caller (tests) replaces the whole service: no spool, no shipper. */
  audit?: AuditSink;
  spoolDir?: string;
  spoolMaxBytes?: number;
  otlp?: OtlpSettings;
  exporters?: Exporters;
  timing?: { lingerMs?: number; maxBackoffMs?: number; metricsIntervalMs?: number };
  store: PolicyStore;
  log: Logger;
  metrics: Metrics;
}

export interface AuditService {
  sink: AuditSink;
  /** The spool and shipper, when records are kept. */
  trail?: AuditTrail;
}

/**
 * Records are kept when a spool directory or a collector is configured: with a collector but no
 * directory, in a fresh temporary directory (records then do not survive a restart).
 */
export function openAudit(opts: AuditServiceOptions): AuditService {
  const { log, metrics } = opts;
  let trail: AuditTrail | undefined;
  if (!opts.audit && (opts.spoolDir || opts.otlp || opts.exporters)) {
    let dir = opts.spoolDir;
    if (!dir) {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-spool-'));
      log.warn('no --spool-dir: audit records are spooled in a temporary directory and will not survive a restart', { dir });
    }
    trail = openAuditTrail({
      dir,
      maxBytes: opts.spoolMaxBytes ?? 200 * 1024 * 1024,
      whenFull: opts.store.current.auditWhenSpoolFull,
      log,
      metrics,
      otlp: opts.otlp,
      exporters: opts.exporters,
      ...opts.timing,
    });
  }
  const sink: AuditSink = opts.audit ?? createAuditSink({ log, metrics, recorder: trail?.recorder });
  return { sink, trail };
}
