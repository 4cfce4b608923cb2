// Data-path events to audit records. Pure apart from ids: a record is built once, when the
// operation ends, and is what the spool stores.
import type {
  AuditApproval,
  AuditDb,
  AuditGenAi,
  AuditHttp,
  AuditMcp,
  AuditPayload,
  AuditRecord,
  AuditTrace,
} from '../../common/audit/record';
import type { Identity } from '../../common/policy/types';
import type { HoldOutcome } from '../approvals/hold';
import { newRecordId, newSpanId } from './ids';
import { startTrace, traceparentFromSql } from './trace-context';

/** Longest statement text kept in a record (spans and logs carry it); longer ones are cut. */
export const MAX_QUERY_TEXT = 16 * 1024;

export interface OperationCommon {
  session: string;
  seq: number;
  start: number;
  durationMs: number;
  upstreamMs?: number;
  policy: string;
  target: string;
  decision: AuditRecord['decision'];
  rule?: string;
  reason: string;
  identity: Identity;
  approval?: AuditApproval;
  masked: number;
  maskedBy?: Record<string, number>;
  error?: string;
}

function base(kind: AuditRecord['kind'], c: OperationCommon, trace: AuditTrace): AuditRecord {
  const r: AuditRecord = {
    v: 1,
    id: newRecordId(),
    kind,
    session: c.session,
    seq: c.seq,
    start: c.start,
    durationMs: c.durationMs,
    trace,
    policy: c.policy,
    target: c.target,
    decision: c.decision,
    reason: c.reason,
    identity: { subject: c.identity.subject, groups: [...c.identity.groups] },
    masked: c.masked,
  };
  if (c.upstreamMs !== undefined) r.upstreamMs = c.upstreamMs;
  if (c.rule !== undefined) r.rule = c.rule;
  if (c.approval) r.approval = c.approval;
  if (c.maskedBy) r.maskedBy = c.maskedBy;
  if (c.error !== undefined) r.error = c.error;
  return r;
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, max) + '…';
}

/** A SQL statement: the trace parent comes from a sqlcommenter `traceparent` in the text, if any. */
export function postgresRecord(c: OperationCommon, db: Omit<AuditDb, 'system'>, payload?: AuditPayload): AuditRecord {
  const r = base('postgres', c, startTrace(traceparentFromSql(db.text)));
  r.db = { system: 'postgresql', ...db, text: cut(db.text, MAX_QUERY_TEXT) };
  if (payload) r.payload = payload;
  return r;
}

/** An HTTP request: its trace was started when the request arrived (it was propagated upstream). */
export function httpRecord(
  kind: 'http' | 'egress',
  c: OperationCommon,
  trace: AuditTrace,
  http: AuditHttp,
  extra: { genAi?: AuditGenAi; payload?: AuditPayload; mcp?: AuditMcp } = {},
): AuditRecord {
  const r = base(kind, c, trace);
  r.http = http;
  if (extra.genAi) r.genAi = extra.genAi;
  if (extra.payload) r.payload = extra.payload;
  if (extra.mcp) r.mcp = extra.mcp;
  return r;
}

/** An approver's answer for the audit record (and its `warden.approval.wait` child span). */
export function approvalRecord(outcome: HoldOutcome, waitStartedAt: number /* performance.now() */): AuditApproval {
  return {
    id: outcome.approvalId,
    approved: outcome.approved,
    outcome: outcome.state ?? (outcome.approved ? 'approved' : 'denied'),
    reason: outcome.reason,
    decidedBy: outcome.decidedBy,
    waitStart: performance.timeOrigin + waitStartedAt,
    waitMs: performance.now() - waitStartedAt,
    spanId: newSpanId(),
  };
}
