// Enforce the decision: a denial refuses (403 policy_denied); a hold waits on the approval gate
// while the agent waits, and goes on only when approved. No gate, or a gate that fails, denies
// (fail closed), in the same words on named routes and the forward proxy.
import type { AuditApproval } from '../../../common/audit/record';
import type { CompiledPolicy } from '../../../common/policy/compile';
import type { HttpOperationWithPort } from '../../../common/policy/engine';
import type { Decision, Identity } from '../../../common/policy/types';
import { approvalRecord } from '../../audit/records';
import { denial } from '../errors';
import type { HttpApprovalGate } from '../forward/approval';
import { decideMethods } from './decide';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const holdStage: Stage<RouteExchange> = {
  name: 'hold',
  run(ex) {
    const decision = ex.decision!;
    if (decision.action === 'hold') return holdRoute(ex, decision);
    if (decision.action === 'deny') throw denial(decision);
    return undefined;
  },
};

async function holdRoute(ex: RouteExchange, decision: Decision): Promise<void> {
  const { res } = ex;
  const abort = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) abort.abort();
  };
  res.once('close', onClose);
  try {
    const base = ex.plan!.base;
    const port = Number(base.port) || (base.protocol === 'https:' ? 443 : 80);
    const auth = await holdForApproval({ approvals: ex.services.options.approvals }, ex.policy!, { ...ex.op!, port }, decision, ex.identity, abort.signal);
    ex.approval = auth.record;
    if (!auth.ok) {
      ex.decision = { ...decision, reason: auth.message };
      throw denial(ex.decision);
    }
  } finally {
    res.off('close', onClose);
  }
}

export type Authorized =
  | { ok: true; decision: Decision; approval?: { approved: boolean; reason: string }; record?: AuditApproval }
  | { ok: false; decision: Decision; approval?: { approved: boolean; reason: string }; record?: AuditApproval; message: string };

/**
 * Decides op and, for a hold, waits on the approval gate (holdForApproval). Never rejects because
 * of the gate.
 */
export async function authorize(
  gate: { approvals?: HttpApprovalGate },
  policy: CompiledPolicy,
  op: HttpOperationWithPort,
  identity: Identity,
  signal: AbortSignal,
  /** Every method the upstream may act on (request-view.ts methodsToJudge); default op.method. */
  methods: readonly string[] = [op.method],
): Promise<Authorized> {
  const decision = decideMethods(policy, op, methods, identity);
  if (decision.action === 'allow') return { ok: true, decision };
  if (decision.action === 'deny') return { ok: false, decision, message: decision.reason };
  return holdForApproval(gate, policy, op, decision, identity, signal);
}

/**
 * A held decision: waits on the approval gate. No gate, or a gate that fails (rejects, or answers
 * nothing usable), is a denial (fail closed) whose message says so; never rejects.
 */
export async function holdForApproval(
  gate: { approvals?: HttpApprovalGate },
  policy: CompiledPolicy,
  op: HttpOperationWithPort,
  decision: Decision,
  identity: Identity,
  signal: AbortSignal,
): Promise<Authorized> {
  if (!gate.approvals) {
    return { ok: false, decision, message: `${decision.reason}, but no approval service is configured; denied` };
  }
  let approval: { approved: boolean; reason: string; approvalId?: string; decidedBy?: string };
  const waitStart = performance.now();
  try {
    approval = await gate.approvals.hold({ operation: op, decision, identity, policy: { name: policy.name, namespace: policy.namespace }, signal });
    if (typeof approval?.approved !== 'boolean') throw new Error('the approval service gave no answer');
  } catch (e) {
    approval = { approved: false, reason: `approval failed: ${(e as Error)?.message ?? String(e)}` };
  }
  const record = approvalRecord(approval, waitStart);
  if (approval.approved) return { ok: true, decision, approval, record };
  return { ok: false, decision, approval, record, message: `${decision.reason}; approval denied: ${approval.reason}` };
}
