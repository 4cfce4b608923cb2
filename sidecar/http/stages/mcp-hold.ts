// A held tools/call (issue 13, decision 9): the one call of a request that a `hold` rule matched
// waits for an approver through the approval gate (sidecar/approvals/hold.ts). The approver sees
// the target, the tool and the arguments as they will be sent (after request masking); the
// approval is bound to their digest (approvals/operation.ts mcpDigest) and releases exactly this
// call, once: a retry is a new request. Approved, the call's verdict becomes allow and the
// forwarding stages send it; denied, expired, cancelled or undecidable, it stays held and is
// answered as not approved, with the reason (a tool result with isError, mcp-answer.ts). No gate, or a gate that fails,
// denies (fail closed). When the agent accepts an event stream, the answer is an event stream
// opened at once, with a heartbeat while the approver decides (mcp-stream.ts).
import type { Decision, McpOperation } from '../../../common/policy/types';
import { noApproverReason, type HoldOutcome } from '../../approvals/hold';
import { approvalRecord } from '../../audit/records';
import { progressTokenOf, HEARTBEAT_INTERVAL_MS } from '../../mcp/heartbeat';
import type { Verdict } from '../../mcp/answer';
import type { RouteExchange } from './exchange';
import { acceptsEventStream, HeldStream } from './mcp-stream';
import type { Stage } from './stage';

export const mcpHoldStage: Stage<RouteExchange> = {
  name: 'mcp-hold',
  run(ex) {
    const mcp = ex.mcp!;
    const held = mcp.held;
    if (!held) return undefined;
    mcp.held = undefined;
    mcp.heldVerdict = held;
    return holdCall(ex, held);
  },
};

/** The call as it will be sent: its arguments (and other params) after request masking. */
function heldOperation(ex: RouteExchange, held: Verdict): { op: McpOperation; params: Record<string, unknown> | undefined } {
  const m = held.message;
  if (m.kind !== 'request') throw new Error('only a request can be held');
  const sent = ex.mcp!.sent?.[0] as { params?: Record<string, unknown> } | undefined;
  const params = sent ? sent.params : m.params;
  const op: McpOperation = { type: 'mcp', target: ex.target, method: m.method, tool: m.params?.name as string };
  if (params?.arguments !== undefined) op.arguments = params.arguments;
  return { op, params: otherParams(params) };
}

/** What else the call carries to the server: params but name and arguments, `_meta` without its progressToken. */
function otherParams(params: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!params) return undefined;
  const { name: _name, arguments: _args, _meta, ...rest } = params;
  if (_meta !== null && typeof _meta === 'object' && !Array.isArray(_meta)) {
    const { progressToken: _token, ...meta } = _meta as Record<string, unknown>;
    if (Object.keys(meta).length > 0) rest._meta = meta;
  } else if (_meta !== undefined) {
    rest._meta = _meta;
  }
  return Object.keys(rest).length > 0 ? rest : undefined;
}

async function holdCall(ex: RouteExchange, held: Verdict): Promise<void> {
  const decision = held.decision!;
  const options = ex.services.options;
  const gate = options.mcpApprovals;
  if (!gate) {
    held.decision = { ...decision, reason: noApproverReason(decision.reason) };
    return;
  }
  const m = held.message;
  const params = m.kind === 'request' ? m.params : undefined;
  const policy = ex.policy!;
  const watch = ex.watchAgent();
  const stream = acceptsEventStream(ex.req.headers['accept'])
    ? HeldStream.open(ex.res, progressTokenOf(params), options.mcpHeartbeatMs ?? HEARTBEAT_INTERVAL_MS)
    : undefined;
  ex.mcp!.stream = stream;
  const waitStart = performance.now();
  let outcome: HoldOutcome;
  try {
    const { op, params: other } = heldOperation(ex, held);
    outcome = await gate.hold({
      operation: op,
      params: other,
      decision,
      identity: ex.identity,
      policy: { name: policy.name, namespace: policy.namespace },
      signal: watch.signal,
    });
    if (typeof outcome?.approved !== 'boolean') throw new Error('the approval service gave no answer');
  } catch (e) {
    outcome = { approved: false, reason: `approval failed: ${(e as Error)?.message ?? String(e)}` };
  } finally {
    stream?.stop();
    watch.done();
  }
  ex.approval = approvalRecord(outcome, waitStart);
  ex.approvalAnswer = { approved: outcome.approved, reason: outcome.reason };
  // Not approved: the verdict stays `hold` (its answer says "held for approval and not approved"), with why.
  held.decision = outcome.approved ? released(decision) : { ...decision, reason: `${decision.reason}; approval denied: ${outcome.reason}` };
}

/** The held decision, now allowing this one call (the rule stays named for the audit record). */
function released(d: Decision): Decision {
  return { ...d, action: 'allow' };
}
