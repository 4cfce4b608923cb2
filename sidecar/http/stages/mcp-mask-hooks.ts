// Server→agent hooks of an MCP route (sidecar/mcp/hooks.ts), placed in mcp-hooks.ts's list:
//   - answer-facts: how each answer ended (its JSON-RPC error code, a tool result with isError),
//     by the request it answers, for the audit record's error.type;
//   - mask: every message through the target's response maskers (sidecar/mcp/mask-messages.ts):
//     results, errors, server notifications and requests; a message that cannot be masked is
//     refused (MessageRefusedError), never passed unmasked.
import { maskServerMessage, McpUnmaskableError } from '../../mcp/mask-messages';
import { MessageRefusedError, type ServerMessageHook } from '../../mcp/hooks';
import { answerOutcome } from '../../mcp/audit-facts';
import { idKey } from '../../mcp/messages';
import type { RouteExchange } from './exchange';

export function answerFactsHook(ex: RouteExchange): ServerMessageHook | undefined {
  const outcomes = ex.mcp!.outcomes;
  return {
    name: 'answer-facts',
    message(m) {
      if (m.kind === 'response' && (typeof m.id === 'string' || typeof m.id === 'number')) {
        const o = answerOutcome(m.value);
        if (o.errorCode !== undefined || o.toolError) outcomes.set(idKey(m.id), o);
      }
      return m.value;
    },
  };
}

export function maskMessagesHook(ex: RouteExchange): ServerMessageHook | undefined {
  const plan = ex.plan!.responsePlan;
  if (!plan) return undefined;
  return {
    name: 'mask',
    message(m) {
      let r;
      try {
        r = maskServerMessage(m.value, plan);
      } catch (err) {
        if (err instanceof McpUnmaskableError) throw new MessageRefusedError(err.message);
        throw err;
      }
      if (r.count > 0) {
        ex.masked += r.count;
        ex.countMasked(['json'], r.count);
      }
      return r.message as Record<string, unknown>;
    },
  };
}
