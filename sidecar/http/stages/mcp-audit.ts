// The audit records of an MCP request (issue 13, decision 10): one per JSON-RPC message, each a
// `warden.mcp.request` span with the MCP and GenAI attributes (method, tool, request id, session
// digest, protocol version, error.type) and that message's own decision, rule and reason. The
// first message's span is the one whose id went upstream in `traceparent`; the others of a batch
// are its siblings in the agent's trace. What the request as a whole carries — masked counts,
// payload recordings, the approval wait — is on the first message's record only, so metrics and
// payloads are not counted twice. GET (the server's stream) and DELETE carry no message: one
// record as an HTTP request.
import type { AuditMcp } from '../../../common/audit/record';
import type { Decision } from '../../../common/policy/types';
import type { HttpAuditEvent } from '../../audit/events';
import { newSpanId } from '../../audit/ids';
import type { Verdict } from '../../mcp/answer';
import { answerOutcome, auditMcpOf } from '../../mcp/audit-facts';
import { idKey } from '../../mcp/messages';
import type { RouteExchange } from './exchange';

function header(ex: RouteExchange, name: string): string | undefined {
  const v = ex.req.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function mcpAuditEvents(ex: RouteExchange, whole: HttpAuditEvent): HttpAuditEvent[] {
  const mcp = ex.mcp!;
  if (mcp.verdicts.length === 0) return [whole]; // GET, DELETE: judged as a whole by mcp-judge.ts
  const req = {
    sessionId: header(ex, 'mcp-session-id'),
    protocolVersion: header(ex, 'mcp-protocol-version'),
    batch: mcp.batch ? mcp.verdicts.length : undefined,
  };
  const answered = sidecarOutcomes(ex);
  return mcp.verdicts.map((v, i) => {
    const block = auditMcpOf(v.message, req);
    const id = 'id' in v.message ? v.message.id : null;
    const outcome = id !== null && id !== undefined ? (mcp.outcomes.get(idKey(id)) ?? answered.get(idKey(id))) : undefined;
    if (outcome?.errorCode !== undefined) block.errorCode = outcome.errorCode;
    if (outcome?.toolError) block.toolError = true;
    const pins = pinChangesFor(ex, v, block, i);
    if (pins.length > 0) block.pinChanges = pins;
    return messageEvent(ex, whole, v, block, i);
  });
}

function messageEvent(ex: RouteExchange, whole: HttpAuditEvent, v: Verdict, mcp: AuditMcp, i: number): HttpAuditEvent {
  const held = ex.mcp!.heldVerdict === v;
  const d: Decision | undefined = v.decision;
  const e: HttpAuditEvent = {
    ...whole,
    mcp,
    decision: held ? 'hold' : d?.action === 'allow' && i === 0 && whole.masked > 0 ? 'mask' : (d?.action ?? 'deny'),
    rule: d?.rule,
    reason: d?.reason ?? (v.message.kind === 'invalid' ? `invalid JSON-RPC message: ${v.message.message}` : whole.reason),
  };
  if (!held) delete e.approval;
  if (i > 0) {
    e.trace = { ...whole.trace, spanId: newSpanId() };
    e.masked = 0;
    delete e.maskedBy;
    delete e.payload;
  }
  return e;
}

/** How the sidecar's own answers ended (denials: isError tool results, JSON-RPC errors), by request. */
function sidecarOutcomes(ex: RouteExchange): Map<string, { errorCode?: number; toolError?: boolean }> {
  const out = new Map<string, { errorCode?: number; toolError?: boolean }>();
  const answer = ex.mcp!.answer;
  if (!answer || answer.forward || answer.body === undefined) return out;
  for (const m of Array.isArray(answer.body) ? answer.body : [answer.body]) {
    if (m.id === null) continue;
    out.set(idKey(m.id), answerOutcome(m as unknown as Record<string, unknown>));
  }
  return out;
}

/** A call's own pin change; the changes a listing found go on the tools/list message (else the first). */
function pinChangesFor(ex: RouteExchange, v: Verdict, mcp: AuditMcp, i: number): Array<{ tool: string; expected: string; actual: string }> {
  const all = ex.mcp!.pinChanges;
  if (all.length === 0) return [];
  if (mcp.tool !== undefined) return all.filter((p) => p.tool === mcp.tool);
  const lists = ex.mcp!.verdicts.findIndex((x) => x.message.kind === 'request' && x.message.method === 'tools/list');
  if (i === (lists >= 0 ? lists : 0) && v.message.kind !== 'invalid') return all.filter((p) => !isCalled(ex, p.tool));
  return [];
}

function isCalled(ex: RouteExchange, tool: string): boolean {
  return ex.mcp!.verdicts.some((x) => x.message.kind === 'request' && x.message.method === 'tools/call' && x.message.params?.name === tool);
}
