// The sidecar's audit sink: for every operation, metrics (Prometheus and OTLP), a JSON log line for
// anything other than a plain allow, and an audit record in the spool, from which the shipper
// exports the span and log record. The data paths only call `statement` / `http` / `egress`.
import { METRIC } from '../../common/audit/names';
import type { AuditRecord } from '../../common/audit/record';
import type { Logger } from '../../common/log';
import type { Metrics } from '../../common/metrics';
import type { AuditSink, ForwardAuditEvent, HttpAuditEvent, SessionEvent, StatementEvent } from './events';
import { httpRecord, postgresRecord, type OperationCommon } from './records';
import { startTrace } from './trace-context';

/** Where records go: the spool (which counts and logs a record it refuses). */
export interface AuditRecorder {
  append(record: AuditRecord): void;
  /** Set while new operations must be refused (spool full, `whenFull: block`): the reason to give. */
  blocked(): string | undefined;
}

type Inc = { inc(by?: number): void };
type Obs = { observe(v: number): void };

/** A lookup of bound series without building key strings per operation. */
function cache<T>(make: (labels: Record<string, string>) => T): (...values: string[]) => T {
  const root = new Map<string, unknown>();
  return (...values: string[]): T => {
    let m = root;
    for (let i = 0; i < values.length - 1; i++) {
      let next = m.get(values[i]) as Map<string, unknown> | undefined;
      if (!next) m.set(values[i], (next = new Map()));
      m = next;
    }
    const last = values[values.length - 1];
    let s = m.get(last) as T | undefined;
    if (!s) m.set(last, (s = make(Object.fromEntries(values.map((v, i) => [String(i), v])))));
    return s;
  };
}

export interface AuditSinkOptions {
  log: Logger;
  metrics: Metrics;
  /** Without a recorder, operations are counted and logged but no records are kept (no spool configured). */
  recorder?: AuditRecorder;
}

export interface WardenAuditSink extends AuditSink {
  http(e: HttpAuditEvent): void;
  egress(e: ForwardAuditEvent): void;
  /** Reason to refuse new operations (the audit trail cannot take more), or undefined. */
  blocked(): string | undefined;
}

/** The fields every data path reports the same way. */
function common(e: StatementEvent | HttpAuditEvent, session: string): OperationCommon {
  return {
    session,
    seq: e.seq,
    start: e.startedAt,
    durationMs: e.durationMs,
    upstreamMs: e.upstreamMs,
    policy: e.policy,
    target: e.target,
    decision: e.decision,
    rule: e.rule,
    reason: e.reason,
    identity: e.identity,
    approval: e.approval,
    masked: e.masked,
    maskedBy: e.maskedBy,
    error: e.error,
  };
}

export function createAuditSink(opts: AuditSinkOptions): WardenAuditSink {
  const { log, metrics, recorder } = opts;
  const ops = metrics.counter(METRIC.operations, 'Operations seen by the sidecar, by target, decision and rule.');
  const masked = metrics.counter(
    METRIC.masked,
    'Values masked, by target and detector (`column` for column rules, `json` for JSON bodies).',
  );
  const sessions = metrics.counter(METRIC.sessions, 'Session lifecycle events, by target and event.');
  const approvals = metrics.counter(METRIC.approvals, 'Approval requests by outcome.');
  const wait = metrics.histogram(METRIC.approvalWait, 'Time operations waited for an approver, in seconds.');
  const duration = metrics.histogram(METRIC.operationDuration, 'Operation duration as the agent saw it, in seconds.');
  const added = metrics.histogram(
    METRIC.addedLatency,
    'Latency the sidecar added to an operation (its duration minus upstream time and approval wait), in seconds.',
  );
  const upstream = metrics.histogram(METRIC.upstreamLatency, 'Upstream time of an operation, in seconds.');
  const lost = metrics.counter(
    METRIC.spoolDropped,
    'Audit records dropped, by reason: drop-oldest (spool full), refused (full in block mode, or the write failed), damaged (found on open), unwritable (could not be built).',
  );

  const opSeries = cache<Inc>((l) => ops.bind({ target: l[0], decision: l[1], rule: l[2] }));
  const maskSeries = cache<Inc>((l) => masked.bind({ target: l[0], detector: l[1] }));
  const durSeries = cache<Obs>((l) => duration.bind({ target: l[0], kind: l[1] }));
  const addSeries = cache<Obs>((l) => added.bind({ target: l[0], kind: l[1] }));
  const upSeries = cache<Obs>((l) => upstream.bind({ target: l[0], kind: l[1] }));

  const count = (c: OperationCommon, kind: string): void => {
    opSeries(c.target, c.decision, c.rule ?? '').inc();
    if (c.masked > 0) {
      if (c.maskedBy) for (const [d, n] of Object.entries(c.maskedBy)) maskSeries(c.target, d).inc(n);
      else maskSeries(c.target, 'other').inc(c.masked);
    }
    durSeries(c.target, kind).observe(c.durationMs / 1000);
    const waited = c.approval?.waitMs ?? 0;
    if (c.upstreamMs !== undefined) {
      upSeries(c.target, kind).observe(c.upstreamMs / 1000);
      addSeries(c.target, kind).observe(Math.max(0, c.durationMs - c.upstreamMs - waited) / 1000);
    }
    if (c.approval) {
      const outcome = c.approval.outcome;
      approvals.inc({ target: c.target, rule: c.rule ?? '', outcome });
      wait.observe({ target: c.target, rule: c.rule ?? '', outcome }, c.approval.waitMs / 1000);
    }
  };

  const record = (make: () => AuditRecord): void => {
    if (!recorder) return;
    // A record the spool refuses is counted there (reason "refused"); one that cannot even be built
    // or written is counted here.
    try {
      recorder.append(make());
    } catch (err) {
      lost.inc({ reason: 'unwritable' });
      log.error('audit record could not be built', { error: (err as Error).message });
    }
  };

  return {
    statement(e: StatementEvent): void {
      const c = common(e, e.sessionId);
      count(c, 'postgres');
      record(() =>
        postgresRecord(c, {
          namespace: e.database,
          text: e.maskText(e.text),
          operations: e.kinds,
          protocol: e.protocol,
          rows: e.rows,
          params: e.params,
        }),
      );
      if ((e.decision === 'allow' || e.decision === 'mask') && !e.error) return; // routine: counted, recorded, not logged
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
      const c = common(e, e.session);
      count(c, e.mcp ? 'mcp' : 'http');
      record(() =>
        httpRecord(
          'http',
          c,
          e.trace,
          {
            method: e.method,
            route: e.target,
            path: e.path,
            url: e.url,
            status: e.status,
            serverAddress: e.serverAddress,
            serverPort: e.serverPort,
          },
          { genAi: e.genAi, payload: e.payload, mcp: e.mcp },
        ),
      );
      if ((e.decision === 'allow' || e.decision === 'mask') && !e.error) return; // routine: counted, recorded, not logged
      log.info('request', {
        target: e.target,
        policy: e.policy,
        method: e.method,
        path: e.path,
        ...(e.mcp ? { mcp: e.mcp.method, tool: e.mcp.tool } : {}),
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
      const start = e.startedAt ?? performance.timeOrigin + performance.now() - e.durationMs;
      const c: OperationCommon = {
        session: e.session ?? 'egress',
        seq: e.seq ?? 0,
        start,
        durationMs: e.durationMs,
        policy: e.policy ?? '',
        target: '(egress)',
        decision: e.decision,
        rule: e.rule,
        reason: e.reason,
        identity: e.identity ?? { subject: '', groups: [], source: 'pod' },
        approval: e.approvalRecord,
        masked: 0,
        error: e.error,
      };
      count(c, 'egress');
      record(() =>
        httpRecord('egress', c, e.trace ?? startTrace(undefined), {
          method: e.method,
          route: e.host,
          path: e.path,
          status: e.status,
          serverAddress: e.host,
          serverPort: e.port,
          tunnel: e.kind === 'connect',
        }),
      );
      if (e.decision === 'allow' && !e.error) return; // routine: counted, recorded, not logged
      log.info('egress', {
        host: e.host,
        port: e.port,
        method: e.method,
        decision: e.decision,
        rule: e.rule,
        reason: e.reason,
        status: e.status,
        error: e.error,
      });
    },
    blocked(): string | undefined {
      return recorder?.blocked();
    },
  };
}
