// The hook chain every server→client message of an MCP route goes through (sidecar/mcp/hooks.ts),
// created per response. In order:
//   1. tools-list: a tools/list result keeps only the tools this caller may call (mcpToolVisible)
//      whose definition did not change (pins); nextCursor and everything else untouched;
//   2. masking of every string in results, errors and server requests/notifications
//      (mcp-results: sidecar/mcp/mask-messages.ts, plugged in as one more factory here).
// The injected credential is scrubbed from the serialised text afterwards (mcp-respond.ts).
import { decide } from '../../../common/policy/engine';
import { filterToolsResult } from '../../mcp/list-filter';
import { MessageRefusedError, type ServerMessage, type ServerMessageHook } from '../../mcp/hooks';
import { toolFingerprint } from '../../mcp/fingerprint';
import { PinLimitError } from '../../mcp/pins';
import type { CompiledPolicy } from '../../../common/policy/compile';
import type { Identity } from '../../../common/policy/types';
import type { RouteExchange } from './exchange';

export type ServerMessageHookFactory = (ex: RouteExchange) => ServerMessageHook | undefined;

/** Whether a caller may see a tool in a listing (decision 1 of issue 13). */
// TODO(mcp-policy): common/policy/engine.ts mcpToolVisible once it lands on main.
function toolVisible(policy: CompiledPolicy, target: string, tool: string, identity: Identity): boolean {
  return decide(policy, { type: 'mcp', target, method: 'tools/call', tool }, identity).action !== 'deny';
}

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
  const { pins, spec } = plan.mcp!;
  const pinning = spec.pinToolDefinitions !== false;
  return {
    name: 'tools-list',
    message(m) {
      if (!isToolsList(m)) return m.value;
      const result = m.value.result as Record<string, unknown>;
      if (!Array.isArray(result.tools)) throw new MessageRefusedError('a tools/list result has no tools array');
      const filtered = filterToolsResult(result, (tool) => {
        if (pinning) {
          let s;
          try {
            s = ex.services.mcpPins.observe(ex.target, tool.name, toolFingerprint(tool), pins.get(tool.name));
          } catch (err) {
            if (err instanceof PinLimitError) throw new MessageRefusedError(err.message);
            throw err;
          }
          if (s.changed) {
            ex.mcp!.pinChanges.push({ tool: tool.name, expected: s.expected, actual: s.actual });
            return false;
          }
        }
        return toolVisible(ex.policy!, ex.target, tool.name, ex.identity);
      });
      return filtered.hidden.length === 0 ? m.value : { ...m.value, result: filtered.result };
    },
  };
};

/** The hooks, in order (a factory returns undefined when it has nothing to do for this route). */
export const SERVER_MESSAGE_HOOKS: readonly ServerMessageHookFactory[] = [toolsListHook];

export function serverMessageHooks(ex: RouteExchange): ServerMessageHook[] {
  const out: ServerMessageHook[] = [];
  for (const f of SERVER_MESSAGE_HOOKS) {
    const h = f(ex);
    if (h) out.push(h);
  }
  return out;
}
