// The JSON error answers of the HTTP egress port (named routes, forward proxy, egress server):
//   {"error":{"type":"...","message":"...", ...extra}}
//   {"error":{"type":"policy_denied","rule":"...","message":"..."}}
import type { ServerResponse } from 'node:http';
import type { Decision } from '../../common/policy/types';

export function errorBody(type: string, message: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ error: { type, message, ...extra } });
}

/**
 * The 403 body. `rule` is the rule that decided; a denial by the policy's default action (no rule
 * matched) or by a failure (no usable policy) says "defaultAction", on every path, so the field is
 * always a non-empty string.
 */
export function policyDeniedBody(decision: Pick<Decision, 'rule'>, message: string): string {
  return JSON.stringify({ error: { type: 'policy_denied', rule: deniedRule(decision), message } });
}

export function deniedRule(decision: Pick<Decision, 'rule'>): string {
  return decision.rule || 'defaultAction';
}

/**
 * Writes a JSON error answer; a response already under way is destroyed instead (the agent sees
 * a cut connection rather than a corrupt body). closeConnection: the request body was not read,
 * so the connection cannot be reused.
 */
export function sendJsonError(res: ServerResponse, status: number, body: string, opts: { headers?: Record<string, string>; closeConnection?: boolean } = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = { ...opts.headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
  if (opts.closeConnection) headers['connection'] = 'close';
  res.writeHead(status, headers);
  res.end(body);
}
