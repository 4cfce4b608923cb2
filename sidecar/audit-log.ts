// The first audit sink: metrics for every operation and a structured log line for every decision
// other than a plain allow. The OpenTelemetry exporter plugs in beside it as another AuditSink.
import type { Logger } from '../common/log';
import type { Metrics } from '../common/metrics';
import type { ForwardAuditEvent } from './http/forward/forward-proxy';
import type { HttpAuditEvent } from './http/routes/route-proxy';
import type { AuditSink, SessionEvent, StatementEvent } from './postgres/runtime';

export function createAuditLog(log: Logger, metrics: Metrics): AuditSink {
  const ops = metrics.counter('warden_operations_total', 'Operations seen by the sidecar, by target, decision and rule.');
  const masked = metrics.counter('warden_masked_values_total', 'Values masked in responses, by target.');
  const sessions = metrics.counter('warden_sessions_total', 'Session lifecycle events, by target and event.');
  // Bound series, looked up without building a key string: this runs for every statement.
  const bound = new Map<string, Map<string, Map<string, { inc(by?: number): void }>>>();
  const series = (target: string, decision: string, rule: string): { inc(by?: number): void } => {
    let byDecision = bound.get(target);
    if (!byDecision) bound.set(target, (byDecision = new Map()));
    let byRule = byDecision.get(decision);
    if (!byRule) byDecision.set(decision, (byRule = new Map()));
    let s = byRule.get(rule);
    if (!s) byRule.set(rule, (s = ops.bind({ target, decision, rule })));
    return s;
  };
  const maskedByTarget = new Map<string, { inc(by?: number): void }>();
  const countMasked = (target: string, n: number): void => {
    let s = maskedByTarget.get(target);
    if (!s) maskedByTarget.set(target, (s = masked.bind({ target })));
    s.inc(n);
  };
  return {
    statement(e: StatementEvent): void {
      series(e.target, e.decision, e.rule ?? '').inc();
      if (e.masked > 0) countMasked(e.target, e.masked);
      if (e.decision === 'allow' && !e.error) return;
      log.info('operation', {
        session: e.sessionId,
        target: e.target,
        policy: e.policy,
        decision: e.decision,
        rule: e.rule,
        reason: e.reason,
        kinds: e.kinds,
        masked: e.masked,
        rows: e.rows,
        error: e.error,
        durationMs: Math.round(e.durationMs * 1000) / 1000,
      });
    },
    session(e: SessionEvent): void {
      sessions.inc({ target: e.target, event: e.event });
      if (e.event !== 'connect' && e.event !== 'disconnect') log.warn('session', { ...e });
    },
    http(e: HttpAuditEvent): void {
      series(e.target, e.decision, e.rule ?? '').inc();
      if (e.masked > 0) countMasked(e.target, e.masked);
      if (e.decision === 'allow' && !e.error) return;
      log.info('request', {
        target: e.target,
        policy: e.policy,
        method: e.method,
        path: e.path,
        status: e.status,
        decision: e.decision,
        rule: e.rule,
        reason: e.reason,
        masked: e.masked,
        error: e.error,
        durationMs: Math.round(e.durationMs * 1000) / 1000,
      });
    },
    egress(e: ForwardAuditEvent): void {
      series('(egress)', e.decision, e.rule ?? '').inc();
      if (e.decision === 'allow' && !e.error) return;
      log.info('egress', { host: e.host, port: e.port, method: e.method, decision: e.decision, rule: e.rule, reason: e.reason, status: e.status, error: e.error });
    },
  };
}

