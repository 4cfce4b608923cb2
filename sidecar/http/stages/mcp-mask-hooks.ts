// Server→agent hooks of an MCP route (sidecar/mcp/hooks.ts), placed in mcp-hooks.ts's list:
//   - answer-facts: how each answer ended (its JSON-RPC error code, a tool result with isError),
//     by the request it answers, for the audit record's error.type.
import type { ServerMessageHook } from '../../mcp/hooks';
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
