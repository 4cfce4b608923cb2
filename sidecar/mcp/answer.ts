// Forward or answer (decisions 4 and 5 of issue 13): the messages of one body and their
// decisions in, what happens out. One message allowed: forwarded. One message refused: its
// denial (a tool error for tools/call, a JSON-RPC error for other requests, nothing — 202 — for a
// notification or a client response). A batch is forwarded unchanged only when every message in
// it is allowed; otherwise NOTHING of it is sent, and every request in it is answered: the refused
// ones with their denial, the others saying they were not sent because of the batch.
import type { Decision } from '../../common/policy/types';
import {
  MCP_INVALID_REQUEST,
  MCP_NOT_SENT,
  requestDenial,
  rpcError,
  toolDenial,
  type JsonRpcErrorMessage,
  type JsonRpcResultMessage,
} from './denials';
import type { ClientMessage } from './messages';

export interface Verdict {
  message: ClientMessage;
  /** undefined for an invalid message (never forwarded). */
  decision: Decision | undefined;
}

export type AnswerMessage = JsonRpcErrorMessage | JsonRpcResultMessage;

export type Answer =
  | { forward: true }
  /** body undefined: 202 Accepted with nothing (refused notifications and client responses). */
  | { forward: false; status: 200 | 202 | 400; body: AnswerMessage | AnswerMessage[] | undefined };

export function planAnswer(verdicts: readonly Verdict[], batch: boolean): Answer {
  if (batch && verdicts.length === 0) {
    return { forward: false, status: 400, body: rpcError(null, MCP_INVALID_REQUEST, 'an empty batch is not a valid JSON-RPC request') };
  }
  if (verdicts.every((v) => v.decision?.action === 'allow')) return { forward: true };
  if (!batch) {
    const v = verdicts[0];
    const body = answerOne(v, undefined);
    return { forward: false, status: v.message.kind === 'invalid' ? 400 : body ? 200 : 202, body };
  }
  const reason = verdicts.some((v) => v.decision === undefined)
    ? 'it held an invalid message'
    : verdicts.some((v) => v.decision?.action === 'deny')
      ? 'it held a denied message'
      : 'it held a message that needs approval (approval is not available inside a batch)';
  const out: AnswerMessage[] = [];
  for (const v of verdicts) {
    const a = answerOne(v, `Agent Warden: not sent, the batch was not forwarded because ${reason}`);
    if (a) out.push(a);
  }
  return { forward: false, status: out.length > 0 ? 200 : 202, body: out.length > 0 ? out : undefined };
}

/** The answer to one message; undefined when none is due (notifications, client responses). */
function answerOne(v: Verdict, notSent: string | undefined): AnswerMessage | undefined {
  const m = v.message;
  if (m.kind === 'invalid') return rpcError(m.id, MCP_INVALID_REQUEST, `invalid JSON-RPC message: ${m.message}`);
  if (m.kind !== 'request') return undefined;
  const d = v.decision!;
  if (d.action === 'allow') return rpcError(m.id, MCP_NOT_SENT, notSent ?? 'Agent Warden: not sent');
  return m.method === 'tools/call' ? toolDenial(m.id, d) : requestDenial(m.id, d);
}
