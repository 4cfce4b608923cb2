// Audit: the payload recordings start with what is sent upstream (capturePayloadsStage), and one
// record per request goes to the sink once the answer is finished (or the agent went away).
// A sink failure never breaks the data path.
import type { AuditPayload } from '../../../common/audit/record';
import type { HttpAuditEvent } from '../../audit/events';
import { PayloadCapture } from '../../audit/capture';
import type { RouteExchange } from './exchange';
import { mcpAuditEvents } from './mcp-audit';
import type { Stage } from './stage';

/** With `audit.payloads`, records the request as sent (masked) and prepares the response's recording. */
export const capturePayloadsStage: Stage<RouteExchange> = {
  name: 'capture-payloads',
  run(ex) {
    if (!ex.recordPayloads) return;
    ex.requestCapture = new PayloadCapture();
    ex.responseCapture = new PayloadCapture();
    if (ex.bufferedBody) ex.requestCapture.add(ex.bufferedBody);
  },
};

/** Sends the request's record once the answer is finished, or the connection closed. */
export function auditWhenDone(ex: RouteExchange): void {
  const { res } = ex;
  if (res.writableFinished || res.destroyed) auditRoute(ex, res.statusCode);
  else res.once('close', () => auditRoute(ex, res.statusCode));
}

/** The request's record (once); an MCP route's, one per JSON-RPC message (mcp-audit.ts). */
export function auditRoute(ex: RouteExchange, status: number): void {
  if (ex.audited) return;
  ex.audited = true;
  const event = routeEvent(ex, status);
  const events = ex.mcp ? mcpAuditEvents(ex, event) : [event];
  try {
    for (const e of events) ex.services.options.audit(e);
  } catch {
    /* an audit sink failure must not break the data path */
  }
}

/** The request's audit event, as a whole. */
export function routeEvent(ex: RouteExchange, status: number): HttpAuditEvent {
  const d = ex.decision;
  let genAi = ex.genAi;
  if (genAi && ex.tap) genAi = ex.tap.result(genAi);
  let payload: AuditPayload | undefined;
  if (ex.requestCapture || ex.responseCapture) {
    payload = {};
    if (ex.requestCapture) payload.request = ex.requestCapture.text();
    if (ex.responseCapture) payload.response = ex.responseCapture.text();
    if (ex.requestCapture?.truncated || ex.responseCapture?.truncated) payload.truncated = true;
  }
  return {
    session: ex.session,
    seq: ex.seq,
    startedAt: performance.timeOrigin + ex.start,
    trace: ex.trace,
    url: ex.url,
    serverAddress: ex.serverAddress,
    serverPort: ex.serverPort,
    upstreamMs: ex.upstreamMs,
    approval: ex.approval,
    genAi,
    payload,
    maskedBy: ex.maskedBy,
    target: ex.target,
    policy: ex.policy?.name ?? '',
    method: ex.method,
    path: ex.path,
    status,
    decision: d && d.action === 'allow' && ex.masked > 0 ? 'mask' : (d?.action ?? 'deny'),
    rule: d?.rule,
    reason: d?.reason ?? ex.error ?? 'refused before a decision',
    durationMs: performance.now() - ex.start,
    masked: ex.masked,
    error: ex.error,
    identity: ex.identity,
  };
}
