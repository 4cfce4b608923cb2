// What the sidecar answers itself, as JSON-RPC (decision 4 of issue 13). The error codes are in
// the JSON-RPC "server error" range and documented in docs/ (mcp-policy) and ARCHITECTURE.md:
//   -32700 parse error       the body cannot be read strictly (strict-json.ts)
//   -32600 invalid request   a message the server could read otherwise (messages.ts), an empty batch
//   -32001 policy denied     a denied request other than tools/call (names the rule)
//   -32002 not sent          a batch was held back because another of its messages was denied or held
//   -32003 response refused  the server's answer could not be read or masked (fail closed)
//   -32000 sidecar error     any other refusal (the HTTP error's type is in data.type)
// A denied tools/call is not an error but a tool result with isError, so the model reads why.
import type { Decision } from '../../common/policy/types';
import type { JsonRpcId } from './messages';

export const MCP_PARSE_ERROR = -32700;
export const MCP_INVALID_REQUEST = -32600;
export const MCP_POLICY_DENIED = -32001;
export const MCP_NOT_SENT = -32002;
export const MCP_RESPONSE_REFUSED = -32003;
export const MCP_SIDECAR_ERROR = -32000;

export interface JsonRpcErrorMessage {
  jsonrpc: '2.0';
  id: JsonRpcId | null;
  error: { code: number; message: string; data?: Record<string, unknown> };
}

export interface JsonRpcResultMessage {
  jsonrpc: '2.0';
  id: JsonRpcId;
  result: Record<string, unknown>;
}

export function rpcError(id: JsonRpcId | null, code: number, message: string, data?: Record<string, unknown>): JsonRpcErrorMessage {
  return data === undefined ? { jsonrpc: '2.0', id, error: { code, message } } : { jsonrpc: '2.0', id, error: { code, message, data } };
}

/** The rule that decided, as the agent reads it ("defaultAction" when none matched). */
export function ruleOf(d: Pick<Decision, 'rule'>): string {
  return d.rule || 'defaultAction';
}

/** What the model reads for a refused call: which rule, and why. */
export function denialText(d: Decision): string {
  const verb = d.action === 'hold' ? 'was held for approval and not approved' : 'was denied';
  return `Agent Warden: this call ${verb} by rule "${ruleOf(d)}": ${d.reason}`;
}

/** A denied tools/call: a tool result with isError (the call never reached the server). */
export function toolDenial(id: JsonRpcId, d: Decision): JsonRpcResultMessage {
  return { jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: denialText(d) }], isError: true } };
}

/** A denied request of another method. */
export function requestDenial(id: JsonRpcId, d: Decision): JsonRpcErrorMessage {
  return rpcError(id, MCP_POLICY_DENIED, denialText(d), { type: 'policy_denied', rule: ruleOf(d) });
}
