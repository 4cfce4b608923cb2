// The hold contract: what a data path hands over when the policy says `hold` (HoldRequest from the
// PostgreSQL session, HeldHttpRequest from the HTTP routes and forward proxy, HeldMcpRequest from
// the MCP routes), what it gets back
// (HoldOutcome), the gates it waits on, and the one wording of "nobody can approve this".
// gate.ts implements both gates; the data paths only wait on the promise.
import type { HttpOperationWithPort } from '../../common/policy/engine';
import type { Decision, Identity, McpOperation } from '../../common/policy/types';

export interface HoldRequest {
  target: string;
  policy: string;
  rule: string;
  decision: Decision;
  identity: Identity;
  /** Exactly what will run if approved: the SQL text and its bound parameters. */
  operation: { sql: string; params?: Array<string | null> };
  signal: AbortSignal;
}

export interface HoldOutcome {
  approved: boolean;
  reason: string;
  /** How the approval request ended, when one was opened. */
  state?: 'approved' | 'denied' | 'expired' | 'cancelled';
  approvalId?: string;
  decidedBy?: string;
}

/** The approval machinery (built separately) plugs in here; without it a hold is a denial. */
export interface ApprovalGate {
  hold(req: HoldRequest): Promise<HoldOutcome>;
}

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

export interface HeldMcpRequest {
  /**
   * The call exactly as it will be sent if approved: `arguments` after request masking (what the
   * approver sees and what the approval's digest binds, operation.ts mcpDigest).
   */
  operation: McpOperation;
  /** Every other param the call carries (`_meta` but its progressToken, unknown keys), as sent: shown and bound too. */
  params?: Record<string, unknown>;
  /** The engine's decision (action 'hold', with the rule and its approval spec). */
  decision: Decision;
  identity: Identity;
  policy: { name: string; namespace?: string };
  /** Aborted when the agent gives up before a decision. */
  signal: AbortSignal;
}

export interface McpApprovalGate {
  hold(req: HeldMcpRequest): Promise<HoldOutcome>;
}

/** The one wording every data path uses when a hold cannot be decided by anyone. */
export function noApproverReason(ruleReason: string, why = 'no approval service is configured for this sidecar'): string {
  return `${ruleReason}, but ${why}, so it is denied`;
}
