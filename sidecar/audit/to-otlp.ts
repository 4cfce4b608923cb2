// An audit record as OpenTelemetry data: the operation's span, a child span for an approval wait,
// and one log record (the session recording) linked to the span. Pure: the shipper hands the
// results to the SDK's OTLP exporters, which take exactly these ReadableSpan / ReadableLogRecord
// shapes. Spans are built here from the spooled record, not by the SDK's Tracer, because the
// record must survive the collector being away (the SDK keeps unexported spans in memory only).
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime, type SpanContext } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { AuditApproval, AuditMcp, AuditRecord } from '../../common/audit/record';
import { ATTR, SCOPE, SPAN } from '../../common/audit/names';
import { TraceState } from '@opentelemetry/core';

const scope = { name: SCOPE.name, version: SCOPE.version };

function hr(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

function ctx(traceId: string, spanId: string, flags: number, state?: string, remote = false): SpanContext {
  const c: SpanContext = {
    traceId,
    spanId,
    traceFlags: flags & TraceFlags.SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: remote,
  };
  if (state) c.traceState = new TraceState(state);
  return c;
}

function set(attrs: Attributes, key: string, v: string | number | boolean | string[] | undefined): void {
  if (v === undefined || v === '') return;
  attrs[key] = v;
}

/** The attributes of the operation's span: OTel semantic conventions plus `warden.*`. */
export function spanAttributes(r: AuditRecord): Attributes {
  const a: Attributes = {};
  set(a, ATTR.policy, r.policy);
  set(a, ATTR.target, r.target);
  set(a, ATTR.decision, r.decision);
  set(a, ATTR.rule, r.rule);
  set(a, ATTR.reason, r.reason);
  a[ATTR.maskedCount] = r.masked;
  set(a, ATTR.session, r.session);
  a[ATTR.seq] = r.seq;
  set(a, ATTR.auditId, r.id);
  set(a, ATTR.subject, r.identity.subject);
  if (r.identity.groups.length > 0) a[ATTR.groups] = r.identity.groups;
  if (r.upstreamMs !== undefined) a[ATTR.upstreamMs] = Math.round(r.upstreamMs * 1000) / 1000;
  if (r.approval) {
    set(a, ATTR.approvalId, r.approval.id);
    set(a, ATTR.approvalDecidedBy, r.approval.decidedBy);
    set(a, ATTR.approvalOutcome, r.approval.outcome);
  }
  if (r.db) {
    a[ATTR.dbSystem] = r.db.system;
    set(a, ATTR.dbNamespace, r.db.namespace);
    set(a, ATTR.dbQueryText, r.db.text);
    if (r.db.operations.length > 0) a[ATTR.dbOperation] = r.db.operations.length === 1 ? r.db.operations[0] : `BATCH ${r.db.operations[0]}`;
    a[ATTR.dbRows] = r.db.rows;
  }
  if (r.http) {
    set(a, ATTR.httpMethod, r.http.method);
    if (r.http.status > 0) a[ATTR.httpStatus] = r.http.status;
    set(a, ATTR.httpRoute, r.http.route);
    set(a, ATTR.urlPath, r.http.path);
    set(a, ATTR.urlFull, r.http.url);
    set(a, ATTR.serverAddress, r.http.serverAddress);
    if (r.http.serverPort) a[ATTR.serverPort] = r.http.serverPort;
  }
  if (r.genAi) {
    set(a, ATTR.genAiProvider, r.genAi.provider);
    set(a, ATTR.genAiOperation, r.genAi.operation);
    set(a, ATTR.genAiRequestModel, r.genAi.requestModel);
    set(a, ATTR.genAiResponseModel, r.genAi.responseModel);
    set(a, ATTR.genAiResponseId, r.genAi.responseId);
    if (r.genAi.inputTokens !== undefined) a[ATTR.genAiInputTokens] = r.genAi.inputTokens;
    if (r.genAi.outputTokens !== undefined) a[ATTR.genAiOutputTokens] = r.genAi.outputTokens;
    if (r.genAi.finishReasons?.length) a[ATTR.genAiFinishReasons] = r.genAi.finishReasons;
  }
  if (r.mcp) mcpAttributes(a, r.mcp);
  set(a, ATTR.errorType, errorType(r));
  return a;
}

/** OpenTelemetry's MCP span attributes (gen_ai.operation.name `execute_tool` for tools/call). */
function mcpAttributes(a: Attributes, m: AuditMcp): void {
  set(a, ATTR.mcpMethod, m.method);
  set(a, ATTR.jsonrpcRequestId, m.requestId);
  set(a, ATTR.mcpSession, m.sessionId);
  set(a, ATTR.mcpProtocolVersion, m.protocolVersion);
  set(a, ATTR.mcpResourceUri, m.resource);
  set(a, ATTR.genAiToolName, m.tool);
  set(a, ATTR.genAiPromptName, m.prompt);
  if (m.method === 'tools/call') a[ATTR.genAiOperation] = 'execute_tool';
  if (m.errorCode !== undefined) a[ATTR.rpcStatusCode] = String(m.errorCode);
  if (m.pinChanges?.length) {
    a[ATTR.mcpPinTools] = m.pinChanges.map((p) => p.tool);
    a[ATTR.mcpPinExpected] = m.pinChanges.map((p) => p.expected);
    a[ATTR.mcpPinActual] = m.pinChanges.map((p) => p.actual);
  }
  if (m.batch !== undefined) a[ATTR.mcpBatch] = m.batch;
}

/** error.type: the upstream failure, else an MCP message's JSON-RPC error code or `tool_error`; undefined when none. */
export function errorType(r: AuditRecord): string | undefined {
  if (r.error) return r.http && r.http.status >= 400 ? String(r.http.status) : 'upstream_error';
  if (r.mcp?.errorCode !== undefined) return String(r.mcp.errorCode);
  if (r.mcp?.toolError) return 'tool_error';
  return undefined;
}

export function spanName(r: AuditRecord): string {
  if (r.mcp) return SPAN.mcp;
  return r.kind === 'postgres' ? SPAN.postgres : r.kind === 'http' ? SPAN.http : SPAN.egress;
}

/** ERROR for denials (and approvals that ended in a denial) and upstream failures. */
export function spanStatus(r: AuditRecord): { code: SpanStatusCode; message?: string } {
  if (r.decision === 'deny' || (r.approval && !r.approval.approved)) return { code: SpanStatusCode.ERROR, message: `denied: ${r.reason}` };
  if (r.error) return { code: SpanStatusCode.ERROR, message: r.error };
  if (r.http && r.http.status >= 500) return { code: SpanStatusCode.ERROR, message: `HTTP ${r.http.status}` };
  if (r.mcp?.errorCode !== undefined) return { code: SpanStatusCode.ERROR, message: `JSON-RPC error ${r.mcp.errorCode}` };
  if (r.mcp?.toolError) return { code: SpanStatusCode.ERROR, message: 'tool_error' };
  return { code: SpanStatusCode.UNSET };
}

function span(fields: {
  name: string;
  context: SpanContext;
  parent?: SpanContext;
  start: number;
  durationMs: number;
  attributes: Attributes;
  status: { code: SpanStatusCode; message?: string };
  resource: Resource;
}): ReadableSpan {
  const end = fields.start + fields.durationMs;
  return {
    name: fields.name,
    kind: SpanKind.SERVER,
    spanContext: () => fields.context,
    parentSpanContext: fields.parent,
    startTime: hr(fields.start),
    endTime: hr(end),
    duration: hr(fields.durationMs),
    status: fields.status,
    attributes: fields.attributes,
    links: [],
    events: [],
    ended: true,
    resource: fields.resource,
    instrumentationScope: scope,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

/** The child span of a held operation: how long it waited, and who decided. */
export function approvalWaitAttributes(r: AuditRecord, a: AuditApproval): Attributes {
  const attrs: Attributes = { [ATTR.policy]: r.policy, [ATTR.target]: r.target, [ATTR.approvalOutcome]: a.outcome };
  set(attrs, ATTR.rule, r.rule);
  set(attrs, ATTR.approvalId, a.id);
  set(attrs, ATTR.approvalDecidedBy, a.decidedBy);
  set(attrs, ATTR.reason, a.reason);
  return attrs;
}

export function approvalWaitStatus(a: AuditApproval): { code: SpanStatusCode; message?: string } {
  return a.approved ? { code: SpanStatusCode.UNSET } : { code: SpanStatusCode.ERROR, message: a.reason };
}

export function toSpans(r: AuditRecord, resource: Resource): ReadableSpan[] {
  const t = r.trace;
  const own = ctx(t.traceId, t.spanId, t.flags, t.state);
  const parent = t.parentSpanId ? ctx(t.traceId, t.parentSpanId, t.flags, t.state, true) : undefined;
  const out = [
    span({
      name: spanName(r),
      context: own,
      parent,
      start: r.start,
      durationMs: r.durationMs,
      attributes: spanAttributes(r),
      status: spanStatus(r),
      resource,
    }),
  ];
  if (r.approval) {
    const a = r.approval;
    out.push(
      span({
        name: SPAN.approvalWait,
        context: ctx(t.traceId, a.spanId, t.flags),
        parent: own,
        start: a.waitStart,
        durationMs: a.waitMs,
        attributes: approvalWaitAttributes(r, a),
        status: approvalWaitStatus(a),
        resource,
      }),
    );
  }
  return out;
}

/** What a reader of logs alone needs; the span carries the rest (see toLogRecord). */
export function logAttributes(r: AuditRecord): Record<string, string | number> {
  const a: Record<string, string | number> = {
    [ATTR.auditId]: r.id,
    [ATTR.decision]: r.decision,
    [ATTR.target]: r.target,
    [ATTR.policy]: r.policy,
  };
  if (r.rule) a[ATTR.rule] = r.rule;
  if (r.maskedBy) for (const [k, n] of Object.entries(r.maskedBy)) a[`warden.masked.by.${k}`] = n;
  return a;
}

export function logBody(r: AuditRecord): Record<string, unknown> {
  const body: Record<string, unknown> = {
    id: r.id,
    kind: r.kind,
    session: r.session,
    seq: r.seq,
    decision: r.decision,
    rule: r.rule,
    reason: r.reason,
    subject: r.identity.subject,
  };
  if (r.db) body.statement = r.db.text;
  if (r.db?.params) body.params = r.db.params;
  if (r.http) {
    body.request = `${r.http.method} ${r.http.path}`;
    body.status = r.http.status;
  }
  if (r.mcp) body.mcp = mcpSummary(r.mcp);
  if (r.payload?.request !== undefined) body.requestBody = r.payload.request;
  if (r.payload?.response !== undefined) body.responseBody = r.payload.response;
  if (r.payload?.truncated) body.truncated = true;
  return body;
}

/** `tools/call run_query`, `resources/read crm://x`, `tools/list`: what an MCP message was, in the log body. */
export function mcpSummary(m: AuditMcp): string {
  const what = m.tool ?? m.prompt ?? m.resource;
  return what === undefined ? m.method || '(response)' : `${m.method} ${what}`;
}

/** The log record: what happened, with the masked payloads when the policy records them. */
export function toLogRecord(r: AuditRecord, resource: Resource): ReadableLogRecord {
  // Lean on purpose: the span carries the attributes and the log record links to it by trace and
  // span id; serializing them twice doubled the export cost (profiled).
  const denied = r.decision === 'deny' || (r.approval !== undefined && !r.approval.approved);
  return {
    hrTime: hr(r.start + r.durationMs),
    hrTimeObserved: hr(r.start + r.durationMs),
    spanContext: ctx(r.trace.traceId, r.trace.spanId, r.trace.flags),
    severityNumber: denied || r.error ? SeverityNumber.WARN : SeverityNumber.INFO,
    severityText: denied || r.error ? 'WARN' : 'INFO',
    eventName: 'warden.audit',
    body: logBody(r) as ReadableLogRecord['body'],
    resource,
    instrumentationScope: scope,
    attributes: logAttributes(r),
    droppedAttributesCount: 0,
  };
}
