// The audit record: one per operation the sidecar sees (a SQL statement, an HTTP request through a
// route, a request or tunnel through the forward proxy). It is what the spool stores and what the
// exporter turns into one OTel span (plus a child span for an approval wait) and one OTel log
// record, so everything an SRE reads — traces, logs, `warden replay` — comes from the same data.
// Plain data only (no classes, no functions): the spool stores it in a compact binary form
// (sidecar/audit/binary.ts) that decodes back to exactly this shape, and `warden replay` prints it.

export type AuditDecision = 'allow' | 'deny' | 'hold' | 'mask';

export interface AuditTrace {
  /** 32 lower-case hex. Inherited from the agent's `traceparent` when it sent one. */
  traceId: string;
  /** 16 lower-case hex: this operation's span. */
  spanId: string;
  /** The agent's span (from `traceparent`), when there was one. */
  parentSpanId?: string;
  /** W3C trace flags (1 = sampled). Recorded as received; audit spans are exported regardless. */
  flags: number;
  /** W3C tracestate, passed through. */
  state?: string;
}

export interface AuditApproval {
  id?: string;
  approved: boolean;
  /** How the request ended: approved, denied (also: nobody could decide), expired, cancelled. */
  outcome: 'approved' | 'denied' | 'expired' | 'cancelled';
  reason: string;
  decidedBy?: string;
  /** Epoch milliseconds when the hold started waiting. */
  waitStart: number;
  waitMs: number;
  /** 16 hex: the child span `warden.approval.wait`. */
  spanId: string;
}

export interface AuditDb {
  system: 'postgresql';
  /** The database name (db.namespace). */
  namespace?: string;
  /** The statement text, masked by the policy's content detectors. */
  text: string;
  /** Statement kinds (SELECT, DELETE, ...), in order. */
  operations: string[];
  protocol: 'simple' | 'extended';
  rows: number;
  /** Bound parameters, masked; only with `audit.payloads`. */
  params?: Array<string | null>;
}

export interface AuditHttp {
  method: string;
  /** The route (target name) or, for the forward proxy, the host. */
  route?: string;
  /** Path as decided, without the query string. */
  path: string;
  /** Upstream URL without query string and without credentials. */
  url?: string;
  status: number;
  serverAddress?: string;
  serverPort?: number;
  /** connect: a CONNECT tunnel through the forward proxy. */
  tunnel?: boolean;
}

export interface AuditGenAi {
  /** gen_ai.provider.name: openai, anthropic, ... */
  provider?: string;
  /** gen_ai.operation.name: chat, text_completion, embeddings, ... */
  operation?: string;
  requestModel?: string;
  responseModel?: string;
  responseId?: string;
  inputTokens?: number;
  outputTokens?: number;
  finishReasons?: string[];
  streamed?: boolean;
}

/** An MCP JSON-RPC message (OpenTelemetry's MCP conventions); each message of a batch has its own record. */
export interface AuditMcp {
  /** mcp.method.name: `tools/call`, `tools/list`, ...; '' for a response the agent sent. */
  method: string;
  /** jsonrpc.request.id, as a string; absent for notifications. */
  requestId?: string;
  /** gen_ai.tool.name (tools/call). */
  tool?: string;
  /** gen_ai.prompt.name (prompts/get). */
  prompt?: string;
  /** mcp.resource.uri (resources/read, resources/subscribe). */
  resource?: string;
  /**
   * mcp.session.id: the first 32 hex of the SHA-256 of the Mcp-Session-Id header, never the id
   * itself (whoever holds the id can continue the session).
   */
  sessionId?: string;
  /** mcp.protocol.version (the MCP-Protocol-Version header). */
  protocolVersion?: string;
  /** The JSON-RPC error code of the answer (rpc.response.status_code, error.type). */
  errorCode?: number;
  /** The tool's result said isError: true (error.type `tool_error`). */
  toolError?: boolean;
  /** Tools whose definition no longer matches what was first listed or pinned (hidden or refused). */
  pinChanges?: Array<{ tool: string; expected: string; actual: string }>;
  /** Messages in the agent's batch, when the message came in one. */
  batch?: number;
}

export interface AuditPayload {
  /** The request as the sidecar forwarded it (or would have), masked. */
  request?: string;
  /** The response as the agent received it, masked. */
  response?: string;
  /** True when either was cut at the payload size limit. */
  truncated?: boolean;
}

export interface AuditRecord {
  /** Record format version. */
  v: 1;
  /** Unique id (32 hex); the key collectors deduplicate on after a replayed export. */
  id: string;
  kind: 'postgres' | 'http' | 'egress';
  /** The connection (PostgreSQL session, HTTP client connection) the operation belongs to. */
  session: string;
  /** Order of the operation within its session, from 1. */
  seq: number;
  /** Epoch milliseconds (fractional) when the sidecar received the operation. */
  start: number;
  durationMs: number;
  /** Time spent waiting for the upstream, when it was contacted. */
  upstreamMs?: number;
  trace: AuditTrace;
  /** `namespace/name` of the AccessPolicy. */
  policy: string;
  target: string;
  decision: AuditDecision;
  rule?: string;
  reason: string;
  identity: { subject: string; groups: string[] };
  approval?: AuditApproval;
  /** Values masked in the response (and request), in all. */
  masked: number;
  /** Masked values by detector or source (`column`, `json-path`, `credit-card`, ...). */
  maskedBy?: Record<string, number>;
  /** Upstream failure or refusal detail, for the agent-facing error see `reason`. */
  error?: string;
  db?: AuditDb;
  http?: AuditHttp;
  genAi?: AuditGenAi;
  payload?: AuditPayload;
  mcp?: AuditMcp;
}
