// The hook chain every server→client message of an MCP route goes through (sidecar/mcp/hooks.ts),
// created per response. In order:
//   1. tools-list: a tools/list result keeps only the tools this caller may call (mcpToolVisible)
//      whose definition did not change from what this caller was first shown or the policy
//      pins (pins.ts); nextCursor and everything else untouched;
//   2. answer-facts: how each answer ended, for the audit record (mcp-mask-hooks.ts);
//   3. mask: every string in results, errors and server requests/notifications
//      (mcp-mask-hooks.ts over sidecar/mcp/mask-messages.ts).
// The injected credential is scrubbed from the serialised text afterwards (mcp-respond.ts).
import { mcpToolVisible } from '../../../common/policy/engine';
import { filterToolsResult } from '../../mcp/list-filter';
import { MessageRefusedError, type ServerMessage, type ServerMessageHook } from '../../mcp/hooks';
import { toolFingerprint } from '../../mcp/fingerprint';
import { MAX_TOOL_NAME_LENGTH, PinLimitError, ToolNameError } from '../../mcp/pins';
import type { RouteExchange } from './exchange';
import { answerFactsHook, maskMessagesHook } from './mcp-mask-hooks';

export type ServerMessageHookFactory = (ex: RouteExchange) => ServerMessageHook | undefined;

/** A response that is (or, answering an unknown request, looks like) a tools/list result. */
function isToolsList(m: ServerMessage): boolean {
  if (m.kind !== 'response') return false;
  const result = m.value.result;
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return false;
  if (m.method === 'tools/list') return true;
  return m.method === undefined && Array.isArray((result as Record<string, unknown>).tools);
}

const toolsListHook: ServerMessageHookFactory = (ex) => {
  const plan = ex.plan!;
  const { pins, spec, pinScope } = plan.mcp!;
  const pinning = spec.pinToolDefinitions !== false;
  return {
    name: 'tools-list',
    message(m) {
      if (!isToolsList(m)) return m.value;
      const result = m.value.result as Record<string, unknown>;
      if (!Array.isArray(result.tools)) throw new MessageRefusedError('a tools/list result has no tools array');
      const filtered = filterToolsResult(result, (tool) => {
        // the MCP spec's bound (SHOULD), whether pinned or not: what the sidecar keeps and logs stays small
        if (tool.name.length > MAX_TOOL_NAME_LENGTH) throw new MessageRefusedError(new ToolNameError(tool.name.length).message);
        if (pinning) {
          let s;
          try {
            s = ex.services.mcpPins.observe(pinScope, ex.identity.subject, tool.name, toolFingerprint(tool), pins.get(tool.name));
          } catch (err) {
            if (err instanceof PinLimitError)
              throw new MessageRefusedError(
                err.unit === 'tools'
                  ? `it lists more than ${err.limit} tools, the most the sidecar pins per target`
                  : `its tools need more than the ${err.limit} bytes the sidecar keeps for pinning`,
              );
            throw err;
          }
          if (s.changed) {
            ex.mcp!.pinChanges.push({ tool: tool.name, expected: s.expected, actual: s.actual });
            return false;
          }
        }
        return mcpToolVisible(ex.policy!, ex.target, tool.name, ex.identity);
      });
      return filtered.hidden.length === 0 ? m.value : { ...m.value, result: filtered.result };
    },
  };
};

/** The hooks, in order (a factory returns undefined when it has nothing to do for this route). */
export const SERVER_MESSAGE_HOOKS: readonly ServerMessageHookFactory[] = [toolsListHook, answerFactsHook, maskMessagesHook];

export function serverMessageHooks(ex: RouteExchange): ServerMessageHook[] {
  const out: ServerMessageHook[] = [];
  for (const f of SERVER_MESSAGE_HOOKS) {
    const h = f(ex);
    if (h) out.push(h);
  }
  return out;
}
