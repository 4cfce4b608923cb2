// What the audit record says about one MCP message (issue 13, decision 10): the `mcp` block of
// its record, from the agent's message and headers and from the answer it got. Pure.
import { createHash } from 'node:crypto';
import type { AuditMcp } from '../../common/audit/record';

/** The parts of a client message the record reads (sidecar/mcp/messages.ts ClientMessage fits). */
export interface MessageFacts {
  kind: 'request' | 'notification' | 'response' | 'invalid';
  id?: string | number | null;
  method?: string;
  params?: Record<string, unknown>;
}

export interface RequestFacts {
  /** The Mcp-Session-Id header, when the agent sent one. */
  sessionId?: string;
  /** The MCP-Protocol-Version header. */
  protocolVersion?: string;
  /** Messages in the body, when it was a batch. */
  batch?: number;
}

/** Longest identifier kept (ids, tool names, URIs come from the agent): longer ones are cut. */
const MAX_FIELD = 512;

function cut(s: string): string {
  return s.length <= MAX_FIELD ? s : `${s.slice(0, MAX_FIELD)}…`;
}

/**
 * mcp.session.id: the first 32 hex of the SHA-256 of the Mcp-Session-Id. The id itself is a
 * bearer secret for the session (whoever has it may continue it), so it never reaches a span.
 */
export function sessionDigest(id: string): string {
  return createHash('sha256').update(id, 'utf8').digest('hex').slice(0, 32);
}

/** The record's mcp block for one message of the agent's request. */
export function auditMcpOf(m: MessageFacts, req: RequestFacts): AuditMcp {
  // A response the agent sends has no method (`''`, as the engine sees it).
  const out: AuditMcp = { method: m.kind === 'response' ? '' : (m.method ?? '') };
  if (m.id !== undefined && m.id !== null) out.requestId = cut(String(m.id));
  const p = m.params;
  if (m.method === 'tools/call' && typeof p?.name === 'string') out.tool = cut(p.name);
  else if (m.method === 'prompts/get' && typeof p?.name === 'string') out.prompt = cut(p.name);
  else if (
    (m.method === 'resources/read' || m.method === 'resources/subscribe' || m.method === 'resources/unsubscribe') &&
    typeof p?.uri === 'string'
  ) {
    out.resource = cut(p.uri);
  }
  if (req.sessionId) out.sessionId = sessionDigest(req.sessionId);
  if (req.protocolVersion) out.protocolVersion = cut(req.protocolVersion);
  if (req.batch !== undefined) out.batch = req.batch;
  return out;
}

/** How an answer ended, for error.type: its JSON-RPC error code, or a tool result with isError. */
export function answerOutcome(answer: Record<string, unknown>): { errorCode?: number; toolError?: boolean } {
  const error = answer.error;
  if (error !== null && typeof error === 'object') {
    const code = (error as Record<string, unknown>).code;
    return typeof code === 'number' && Number.isFinite(code) ? { errorCode: code } : { errorCode: 0 };
  }
  const result = answer.result;
  if (result !== null && typeof result === 'object' && (result as Record<string, unknown>).isError === true) return { toolError: true };
  return {};
}
