// The one interface a held forward-proxy request calls. The approval machinery (ApprovalRequest
// objects, the local admin API) implements it elsewhere; the proxy only waits on the promise.
import type { Decision, Identity } from '../../../common/policy/types';
import type { HttpOperationWithPort } from '../../../common/policy/engine';
import type { HoldOutcome } from '../../postgres/runtime';

export interface HeldHttpRequest {
  /** The operation exactly as decided (target '' for the forward proxy). */
  operation: HttpOperationWithPort;
  /** The engine's decision (action 'hold', with the rule and its approval spec). */
  decision: Decision;
  identity: Identity;
  /** Policy that held it, for the approval record. */
  policy: { name: string; namespace?: string };
  /** Aborted when the agent gives up (closes its connection) before a decision. */
  signal: AbortSignal;
}

export interface HttpApprovalGate {
  hold(req: HeldHttpRequest): Promise<HoldOutcome>;
}
