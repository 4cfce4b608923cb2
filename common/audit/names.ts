// Span, attribute and metric names in one place (dashboards and tests use these too).
// Semantic-convention names follow OpenTelemetry's database, HTTP and GenAI conventions.
export const SCOPE = { name: 'agent-warden', version: '0.1.0' } as const;

export const SPAN = {
  postgres: 'warden.postgres.query',
  http: 'warden.http.request',
  egress: 'warden.egress.request',
  approvalWait: 'warden.approval.wait',
} as const;

export const ATTR = {
  policy: 'warden.policy',
  target: 'warden.target',
  decision: 'warden.decision',
  rule: 'warden.rule',
  reason: 'warden.reason',
  approvalId: 'warden.approval.id',
  approvalDecidedBy: 'warden.approval.decided_by',
  approvalOutcome: 'warden.approval.outcome',
  maskedCount: 'warden.masked.count',
  session: 'warden.session.id',
  seq: 'warden.session.seq',
  auditId: 'warden.audit.id',
  subject: 'warden.identity.subject',
  groups: 'warden.identity.groups',
  upstreamMs: 'warden.upstream.duration_ms',
  // OpenTelemetry semantic conventions
  dbSystem: 'db.system.name',
  dbNamespace: 'db.namespace',
  dbQueryText: 'db.query.text',
  dbOperation: 'db.operation.name',
  dbRows: 'db.response.returned_rows',
  httpMethod: 'http.request.method',
  httpStatus: 'http.response.status_code',
  httpRoute: 'http.route',
  urlFull: 'url.full',
  urlPath: 'url.path',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  errorType: 'error.type',
  genAiProvider: 'gen_ai.provider.name',
  genAiSystem: 'gen_ai.system',
  genAiOperation: 'gen_ai.operation.name',
  genAiRequestModel: 'gen_ai.request.model',
  genAiResponseModel: 'gen_ai.response.model',
  genAiResponseId: 'gen_ai.response.id',
  genAiInputTokens: 'gen_ai.usage.input_tokens',
  genAiOutputTokens: 'gen_ai.usage.output_tokens',
  genAiFinishReasons: 'gen_ai.response.finish_reasons',
} as const;

/** Prometheus metric names (also exported over OTLP under the same names). */
export const METRIC = {
  operations: 'warden_operations_total',
  masked: 'warden_masked_values_total',
  sessions: 'warden_sessions_total',
  activeConnections: 'warden_active_connections',
  policyReloads: 'warden_policy_reloads_total',
  approvalWait: 'warden_approval_wait_seconds',
  approvals: 'warden_approvals_total',
  operationDuration: 'warden_operation_duration_seconds',
  addedLatency: 'warden_added_latency_seconds',
  upstreamLatency: 'warden_upstream_latency_seconds',
  spoolBytes: 'warden_audit_spool_bytes',
  spoolRecords: 'warden_audit_spool_pending_records',
  spoolDropped: 'warden_audit_dropped_records_total',
  spoolBlocked: 'warden_audit_blocked_operations_total',
  exported: 'warden_audit_exported_records_total',
  exportFailures: 'warden_audit_export_failures_total',
} as const;
