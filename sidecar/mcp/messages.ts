// JSON-RPC 2.0 messages as MCP clients send them, classified from the strict reader's value
// (strict-json.ts), and each turned into the McpOperation the policy judges. What the server
// could read otherwise than we do is invalid here, never guessed: `jsonrpc` other than "2.0", a
// method that is not a string, an id that is neither a string nor a number, a tools/call whose
// name is not a string, params that are not an object.
import type { McpOperation } from '../../common/policy/types';

export type JsonRpcId = string | number;

export type ClientMessage =
  | { kind: 'request'; id: JsonRpcId; method: string; params: Record<string, unknown> | undefined }
  | { kind: 'notification'; method: string; params: Record<string, unknown> | undefined }
  /** A response the client sends (to a server's sampling or elicitation request). */
  | { kind: 'response'; id: JsonRpcId | null }
  | { kind: 'invalid'; id: JsonRpcId | null; message: string };

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function validId(v: unknown): v is JsonRpcId {
  return typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
}

/** One element of a body (or the whole body when it is not a batch). */
export function classifyMessage(v: unknown): ClientMessage {
  if (!isObject(v)) return { kind: 'invalid', id: null, message: 'a JSON-RPC message must be an object' };
  const id = validId(v.id) ? v.id : null;
  if (v.jsonrpc !== '2.0') return { kind: 'invalid', id, message: 'jsonrpc must be "2.0"' };
  if ('method' in v) {
    if (typeof v.method !== 'string') return { kind: 'invalid', id, message: 'method must be a string' };
    const params = v.params;
    if (params !== undefined && !isObject(params)) return { kind: 'invalid', id, message: 'params must be an object' };
    const invalid = invalidParams(v.method, params);
    if (invalid) return { kind: 'invalid', id, message: invalid };
    if (!('id' in v)) return { kind: 'notification', method: v.method, params };
    if (id === null) return { kind: 'invalid', id, message: 'id must be a string or a number' };
    return { kind: 'request', id, method: v.method, params };
  }
  if (!('id' in v) || (v.id !== null && id === null))
    return { kind: 'invalid', id, message: 'a message without a method must be a response with an id' };
  if ('result' in v === 'error' in v) return { kind: 'invalid', id, message: 'a response carries exactly one of result and error' };
  return { kind: 'response', id };
}

/** Fields the operation reads must have the type the server reads them as. */
function invalidParams(method: string, params: Record<string, unknown> | undefined): string | undefined {
  if (method === 'tools/call') {
    if (typeof params?.name !== 'string') return 'tools/call params.name must be a string';
  } else if (method === 'resources/read') {
    if (typeof params?.uri !== 'string') return 'resources/read params.uri must be a string';
  } else if (method === 'prompts/get') {
    if (typeof params?.name !== 'string') return 'prompts/get params.name must be a string';
  }
  return undefined;
}

/** The operation the policy judges; undefined for an invalid message (answered as such, never forwarded). */
export function toOperation(target: string, m: ClientMessage): McpOperation | undefined {
  switch (m.kind) {
    case 'invalid':
      return undefined;
    case 'response':
      return { type: 'mcp', target, method: '' };
    default: {
      const op: McpOperation = { type: 'mcp', target, method: m.method };
      const p = m.params;
      if (m.method === 'tools/call') {
        op.tool = p!.name as string;
        op.arguments = p!.arguments;
      } else if (m.method === 'resources/read') {
        op.resource = p!.uri as string;
      } else if (m.method === 'prompts/get') {
        op.resource = p!.name as string;
      }
      return op;
    }
  }
}

/** A key for a request id in maps (`1` and `"1"` are different ids). */
export function idKey(id: JsonRpcId): string {
  return typeof id === 'number' ? `n:${id}` : `s:${id}`;
}
