// The audit contract: what each data path reports about the operations it handled, and the sink it
// reports to. The PostgreSQL session emits StatementEvent/SessionEvent, the named HTTP routes
// HttpAuditEvent, the forward proxy ForwardAuditEvent; sink.ts turns them into audit records.
import type { AuditApproval, AuditGenAi, AuditMcp, AuditPayload, AuditTrace } from '../../common/audit/record';
import type { Decision, Identity, RuleAction } from '../../common/policy/types';

/** One finished (or refused) operation, for the audit trail. */
export interface StatementEvent {
  sessionId: string;
  /** Order within the session, from 1. */
  seq: number;
  /** Epoch milliseconds (fractional) when the statement arrived. */
  startedAt: number;
  target: string;
  policy: string;
  /** The database (db.namespace). */
  database?: string;
  /** The statement as the agent sent it: mask it with maskText before it leaves the process. */
  text: string;
  /**
   * Masks what the policy's detectors find (a card number in a WHERE clause). Called only where the
   * text is kept (the audit record), so a sidecar that keeps no records never pays for it.
   */
  maskText(text: string): string;
  /** Bound parameters, masked; only when the policy records payloads. */
  params?: Array<string | null>;
  /** From forwarding to the server's answer. */
  upstreamMs?: number;
  approval?: AuditApproval;
  maskedBy?: Record<string, number>;
  decision: Decision['action'] | 'mask';
  rule?: string;
  reason: string;
  kinds: string[];
  durationMs: number;
  masked: number;
  rows: number;
  error?: string;
  identity: Identity;
  protocol: 'simple' | 'extended';
}

export interface SessionEvent {
  sessionId: string;
  target: string;
  /** `catalog-error`: table names for masking could not be looked up; the affected columns were masked whole. */
  event: 'connect' | 'disconnect' | 'login-failed' | 'protocol-error' | 'guard' | 'catalog-error';
  message?: string;
}

export interface AuditSink {
  statement(e: StatementEvent): void;
  /** Set while new operations must be refused because the audit trail cannot record them (fail closed). */
  blocked?(): string | undefined;
  session(e: SessionEvent): void;
  /** A request through a named HTTP route. */
  http?(e: HttpAuditEvent): void;
  /** A request or tunnel through the forward proxy. */
  egress?(e: ForwardAuditEvent): void;
}

/** One proxied (or refused) HTTP request through a named route, for the audit trail. */
export interface HttpAuditEvent {
  /** The agent's connection, and the request's order on it. */
  session: string;
  seq: number;
  /** Epoch milliseconds (fractional) when the request arrived. */
  startedAt: number;
  /** This request's span; its id was sent upstream in `traceparent`. */
  trace: AuditTrace;
  /** Upstream URL without query string. */
  url?: string;
  serverAddress?: string;
  serverPort?: number;
  upstreamMs?: number;
  approval?: AuditApproval;
  genAi?: AuditGenAi;
  payload?: AuditPayload;
  /** An MCP message (one event per JSON-RPC message of the request). */
  mcp?: AuditMcp;
  maskedBy?: Record<string, number>;
  target: string;
  policy: string;
  method: string;
  /** The path as decided (`/v1/chat/completions`), without the query string. */
  path: string;
  status: number;
  decision: Decision['action'] | 'mask';
  rule?: string;
  reason: string;
  durationMs: number;
  /** Values masked in the response. */
  masked: number;
  error?: string;
  identity: Identity;
}

/** One record per forward-proxy request or tunnel, emitted when it ends. */
export interface ForwardAuditEvent {
  kind: 'connect' | 'http';
  method: string;
  /** Normalised host (lower case, IDNA, no brackets); the raw text when it could not be parsed. */
  host: string;
  port: number;
  path: string;
  /** The engine's action ('hold' when it was held, whatever the approver said). */
  decision: RuleAction;
  rule?: string;
  reason: string;
  approval?: { approved: boolean; reason: string };
  /** forwarded: the tunnel was established / the request sent upstream. */
  outcome: 'forwarded' | 'denied' | 'error';
  /** Status the agent got (200 for an established tunnel; 0 when the connection just closed). */
  status: number;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  error?: string;
  /** The address actually connected to, when known. */
  remoteAddress?: string;
  /** The agent's connection and the request's order on it. */
  session?: string;
  seq?: number;
  startedAt?: number;
  trace?: AuditTrace;
  identity?: Identity;
  policy?: string;
  /** The approval, for the audit record's child span. */
  approvalRecord?: AuditApproval;
}
