// Decide: the operation as the upstream will act on it is judged by the policy engine over every
// method the upstream may act on (request line and override headers); the strictest decision
// stands. Enforcing it (a denial, a hold) is hold.ts. Shared by named routes and the forward proxy
// (absolute-form requests and CONNECT): each builds its operation, then both run these stages.
import type { AuditApproval } from '../../../common/audit/record';
import type { CompiledPolicy } from '../../../common/policy/compile';
import { decide, type HttpOperationWithPort } from '../../../common/policy/engine';
import type { Decision, HttpOperation, Identity } from '../../../common/policy/types';
import type { HttpApprovalGate } from '../../approvals/hold';
import { strictest } from '../request-view';
import type { Stage } from './stage';

/** What deciding and holding read and write: the part of a request's context both proxies share. */
export interface Judgement {
  readonly policy: CompiledPolicy | undefined;
  readonly identity: Identity;
  /** The operation as judged (set by the proxy's own stage before decide runs). */
  readonly op: HttpOperation | undefined;
  /** Every method the upstream may act on (request-view.ts methodsToJudge). */
  readonly methods: readonly string[];
  decision: Decision | undefined;
  /** The approval of a hold, for the audit record. */
  approval: AuditApproval | undefined;
  /** The approver's answer to a hold. */
  approvalAnswer: { approved: boolean; reason: string } | undefined;
  /** Without a gate, a hold is denied saying that no approval service is configured. */
  readonly approvals: HttpApprovalGate | undefined;
  /** The operation as the approver sees it (with the port it goes to). */
  heldOperation(): HttpOperationWithPort;
  /** A signal that fires when the agent goes away while held; done() stops watching. */
  watchAgent(): { signal: AbortSignal; done(): void };
}

export const decideStage: Stage<Judgement> = {
  name: 'decide',
  run(ex) {
    ex.decision = decideMethods(ex.policy!, ex.op!, ex.methods, ex.identity);
  },
};

/** The strictest decision for op over every method the upstream may act on. */
export function decideMethods<O extends HttpOperation>(
  policy: CompiledPolicy,
  op: O,
  methods: readonly string[],
  identity: Identity,
): Decision {
  return strictest(methods.map((method) => decide(policy, { ...op, method }, identity)));
}
