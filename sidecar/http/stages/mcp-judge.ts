// Judge every message of the body (decisions 1 and 2 of issue 13): a tools/call of a tool whose
// definition changed since this caller was first shown it (or differs from the policy's pin) is refused
// whatever the rules say; everything else is decided by the policy engine, one McpOperation per
// message. The record's decision is the strictest. A single held tools/call is left for the hold
// stage (ex.mcp.held); anything else held is answered by mcp-answer.ts.
import { decide } from '../../../common/policy/engine';
import type { Decision } from '../../../common/policy/types';
import { denialText, MCP_POLICY_DENIED, ruleOf } from '../../mcp/denials';
import { toOperation } from '../../mcp/messages';
import { HttpError } from '../errors';
import { strictest } from '../request-view';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const mcpJudgeStage: Stage<RouteExchange> = {
  name: 'mcp-judge',
  run(ex) {
    const mcp = ex.mcp!;
    const policy = ex.policy!;
    if (mcp.verdicts.length === 0) return judgeStreamOrEnd(ex);
    const plan = ex.plan!;
    const pinning = plan.mcp!.spec.pinToolDefinitions !== false;
    const decisions: Decision[] = [];
    for (const v of mcp.verdicts) {
      const op = toOperation(ex.target, v.message);
      if (!op) continue; // invalid: answered as such
      let d: Decision | undefined;
      if (pinning && op.tool !== undefined) {
        const s = ex.services.mcpPins.check(plan.mcp!.pinScope, ex.identity.subject, op.tool, plan.mcp!.pins.get(op.tool));
        if (s?.changed) {
          mcp.pinChanges.push({ tool: op.tool, expected: s.expected, actual: s.actual });
          d = {
            action: 'deny',
            rule: 'pinToolDefinitions',
            reason:
              `the definition of tool "${op.tool}" changed since it was ${s.pinned ? 'pinned' : 'first listed to this caller'} ` +
              `(${s.expected} -> ${s.actual}); it is refused until the policy pins the new definition`,
          };
        }
      }
      v.decision = d ?? decide(policy, op, ex.identity);
      decisions.push(v.decision);
    }
    ex.decision =
      decisions.length === mcp.verdicts.length
        ? strictest(decisions)
        : { action: 'deny', reason: 'the request holds an invalid JSON-RPC message' };
    const only = mcp.verdicts[0];
    if (!mcp.batch && only.decision?.action === 'hold' && only.message.kind === 'request' && only.message.method === 'tools/call') {
      mcp.held = only;
    }
  },
};

/**
 * GET (the server's event stream, its messages masked like any answer) and DELETE (session end)
 * carry no message; they are judged as the plumbing of a client response (method ''): they pass
 * when no rule matches, and a rule that matches every op on the target (a target-wide deny, a deny
 * on the caller's identity) refuses them, 403 naming the rule, before the server sees them. Held
 * is refused too: a stream or a session end cannot wait for an approver.
 */
function judgeStreamOrEnd(ex: RouteExchange): void {
  const d = decide(ex.policy!, { type: 'mcp', target: ex.target, method: '' }, ex.identity);
  if (d.action === 'allow') {
    ex.decision = { ...d, reason: `MCP ${ex.method} passes: ${d.reason}` };
    return;
  }
  const reason = d.action === 'hold' ? `${d.reason} (an MCP ${ex.method} cannot wait for approval)` : d.reason;
  ex.decision = { ...d, action: 'deny', reason };
  const message = denialText(ex.decision).replace('this call', `this ${ex.method}`);
  throw new HttpError(403, 'policy_denied', message, { code: MCP_POLICY_DENIED, rule: ruleOf(d) });
}
