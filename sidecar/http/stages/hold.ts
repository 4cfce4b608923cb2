// Enforce the decision: a denial refuses (403 policy_denied); a hold waits on the approval gate
// while the agent waits, and goes on only when approved. No gate, or a gate that fails, denies
// (fail closed), in the same words on named routes and the forward proxy.
import type { AuditApproval } from '../../../common/audit/record';
import type { Decision } from '../../../common/policy/types';
import { approvalRecord } from '../../audit/records';
import { denial } from '../errors';
import { noApproverReason } from '../../approvals/hold';
import type { Judgement } from './decide';
import type { Stage } from './stage';

export const holdStage: Stage<Judgement> = {
  name: 'hold',
  run(ex) {
    const decision = ex.decision!;
    if (decision.action === 'hold') return hold(ex, decision);
    if (decision.action === 'deny') throw denial(decision);
    return undefined;
  },
};

async function hold(ex: Judgement, decision: Decision): Promise<void> {
  const watch = ex.watchAgent();
  try {
    const auth = await holdForApproval(ex, decision, watch.signal);
    ex.approval = auth.record;
    ex.approvalAnswer = auth.approval;
    if (!auth.ok) {
      ex.decision = { ...decision, reason: auth.message };
      throw denial(ex.decision);
    }
  } finally {
    watch.done();
  }
}

type Held = { ok: boolean; approval?: { approved: boolean; reason: string }; record?: AuditApproval; message: string };

/**
 * A held decision: waits on the approval gate. No gate, or a gate that fails (rejects, or answers
 * nothing usable), is a denial (fail closed) whose message says so; never rejects.
 */
async function holdForApproval(ex: Judgement, decision: Decision, signal: AbortSignal): Promise<Held> {
  const gate = ex.approvals;
  const policy = ex.policy!;
  if (!gate) {
    return { ok: false, message: noApproverReason(decision.reason) };
  }
  let approval: { approved: boolean; reason: string; approvalId?: string; decidedBy?: string };
  const waitStart = performance.now();
  try {
    approval = await gate.hold({
      operation: ex.heldOperation(),
      decision,
      identity: ex.identity,
      policy: { name: policy.name, namespace: policy.namespace },
      signal,
    });
    if (typeof approval?.approved !== 'boolean') throw new Error('the approval service gave no answer');
  } catch (e) {
    approval = { approved: false, reason: `approval failed: ${(e as Error)?.message ?? String(e)}` };
  }
  const record = approvalRecord(approval, waitStart);
  if (approval.approved) return { ok: true, approval, record, message: decision.reason };
  return { ok: false, approval, record, message: `${decision.reason}; approval denied: ${approval.reason}` };
}
