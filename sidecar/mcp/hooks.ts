// The per-server-message hook chain (decision 7 of issue 13): EVERY message the server sends the
// agent — responses, server requests (sampling, elicitation), notifications (logging, progress),
// in a JSON body, a batch, or an event stream (POST or GET) — goes through each hook in order
// before the agent sees it. A hook returns the message to pass on (the same object, or a changed
// copy), or null to drop it; it throws MessageRefusedError when the message cannot be passed
// (it cannot be masked, a limit is reached): the response is then refused, never passed
// unmasked. Hooks are created per response, so one may keep state across the events of a stream.
//
// The chain is assembled in sidecar/http/stages/mcp-hooks.ts: tool-list filtering and pin
// checks, then masking (mask-messages.ts), then the credential scrub of the serialised text.
import type { JsonRpcId } from './messages';

export interface ServerMessage {
  /** The parsed message (a JSON object); hooks must not mutate it in place, but return a copy. */
  value: Record<string, unknown>;
  kind: 'response' | 'request' | 'notification';
  /** The id of a response or server request. */
  id: JsonRpcId | null | undefined;
  /** A request or notification: its method. A response: the method of the client request it answers, when known. */
  method: string | undefined;
}

export interface ServerMessageHook {
  readonly name: string;
  message(msg: ServerMessage): Record<string, unknown> | null;
  /** Called when the response or stream ends normally (optional). */
  end?(): void;
}

export class MessageRefusedError extends Error {}

/** The kind of a server message; undefined when it is not a JSON-RPC message at all. */
export function serverMessageKind(v: unknown): ServerMessage['kind'] | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.method === 'string') return 'id' in o ? 'request' : 'notification';
  if ('result' in o || 'error' in o) return 'response';
  return undefined;
}

/** Runs msg through the chain: the value to send, or null when a hook dropped it. */
export function runHooks(hooks: readonly ServerMessageHook[], msg: ServerMessage): Record<string, unknown> | null {
  let value: Record<string, unknown> | null = msg.value;
  for (const h of hooks) {
    value = h.message({ ...msg, value });
    if (value === null) return null;
  }
  return value;
}
