// The approval record and the back-end interface both approval stores implement: the in-memory
// store in the sidecar (standalone mode, admin API) and, later, Kubernetes ApprovalRequest
// objects (the operator). Everything here is plain JSON-serialisable data so that a record can be
// a custom resource's spec/status without translation; times are RFC 3339 strings.
import type { ApprovalState, Verdict } from '../../common/approvals/object';
import type { Identity } from '../../common/policy/types';

export interface ApprovalDecision {
  /** Subject of the approver who decided (from a verified token, the local OS user, or admission userInfo). */
  by: string;
  groups: string[];
  verdict: Verdict;
  reason: string;
  /** RFC 3339. */
  at: string;
}

export interface ApprovalOperation {
  kind: 'sql' | 'http' | 'mcp';
  /** Shown to the approver in full: SQL with its bound parameters, METHOD URL and a body excerpt, or an MCP call with its arguments. */
  display: string;
  /** SHA-256 hex of exactly what will run (see digest.ts); an approval is bound to it. */
  digest: string;
}

export interface ApprovalRequest {
  /** Random (96 bits), lower-case hex: URL-safe and a valid Kubernetes object name. */
  id: string;
  /** `namespace/name` when the policy has a namespace, else `name`. */
  policy: string;
  rule: string;
  target: string;
  requester: { subject: string; groups: string[] };
  operation: ApprovalOperation;
  /** Who may decide (the rule's approval.approvers); empty lists mean no one can approve (fail closed). */
  approvers: { users: string[]; groups: string[] };
  /** Distinct approvals needed (approval.count, default 1). */
  required: number;
  createdAt: string;
  expiresAt: string;
  state: ApprovalState;
  decisions: ApprovalDecision[];
  /** Set when the request leaves `pending`: a human-readable account of why. */
  finalReason?: string;
}

/** What a data path hands the back end to open a request. */
export interface NewApprovalRequest {
  policy: string;
  rule: string;
  target: string;
  requester: { subject: string; groups: string[] };
  operation: ApprovalOperation;
  approvers?: { users?: string[]; groups?: string[] };
  required?: number;
  /** Milliseconds until the request expires. */
  timeoutMs: number;
}

export type ApprovalErrorCode =
  | 'not_found'
  | 'already_decided'
  | 'expired'
  | 'already_voted'
  | 'digest_mismatch'
  | 'self_approval'
  | 'not_an_approver'
  | 'invalid_request';

const STATUS: Record<ApprovalErrorCode, number> = {
  not_found: 404,
  already_decided: 409,
  expired: 409,
  already_voted: 409,
  digest_mismatch: 409,
  self_approval: 403,
  not_an_approver: 403,
  invalid_request: 400,
};

/** A refused decision or lookup; `code` is stable (scripts and the admin API rely on it). */
export class ApprovalError extends Error {
  readonly status: number;
  constructor(
    readonly code: ApprovalErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApprovalError';
    this.status = STATUS[code];
  }
}

export interface ListFilter {
  /** Default: every state. */
  state?: ApprovalState;
}

/**
 * The approval store. Implementations enforce every rule (single use, expiry, no self-approval,
 * approver membership, distinct approvers for `required` > 1, digest binding) in `decide`, so no
 * caller can get around them; callers only supply a verified decider identity.
 */
export interface ApprovalBackend {
  create(req: NewApprovalRequest): Promise<ApprovalRequest>;
  /** undefined when unknown (or already forgotten after its retention time). */
  get(id: string): Promise<ApprovalRequest | undefined>;
  list(filter?: ListFilter): Promise<ApprovalRequest[]>;
  /**
   * Records one approver's verdict. Throws ApprovalError (not_found, expired, already_decided,
   * already_voted, digest_mismatch, self_approval, not_an_approver). Returns the updated record:
   * still `pending` when more distinct approvals are needed.
   */
  decide(id: string, decider: Identity, verdict: Verdict, reason: string, expectedDigest?: string): Promise<ApprovalRequest>;
  /** The agent went away: a pending request becomes `cancelled`. No-op on a final one. */
  cancel(id: string, reason?: string): Promise<ApprovalRequest | undefined>;
  /**
   * Resolves with the record once it is no longer pending. `signal` only stops the waiting
   * (rejects with an AbortError); cancelling the request is `cancel`'s job.
   */
  wait(id: string, signal?: AbortSignal): Promise<ApprovalRequest>;
}
