// The ApprovalRequest custom resource as it travels over the API (crds/approvalrequest.yaml), and
// the small pure helpers every reader of it shares: the operator's webhook and sweeper, the
// sidecar's Kubernetes back end and the CLI. Nothing here but names and pure functions.
import { APPROVAL_REQUEST, GROUP, VERSION } from '../k8s/names';
import type { Condition, ObjectMeta } from '../k8s/meta';

export type { Condition, ObjectMeta };

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled';
export type Verdict = 'approve' | 'deny';
const FINAL_STATES: readonly ApprovalState[] = ['approved', 'denied', 'expired', 'cancelled'];

export interface Subject {
  subject: string;
  groups?: string[];
}

export interface DecisionEntry {
  /** Set by the mutating webhook from userInfo.username; a body value is overwritten. */
  by?: string;
  groups?: string[];
  verdict: Verdict;
  reason?: string;
  /** RFC 3339, set by the mutating webhook. */
  at?: string;
}

export interface ApprovalRequestSpec {
  policy: string;
  rule: string;
  target?: string;
  operation: { kind: 'sql' | 'http' | 'mcp'; display: string; digest: string };
  approvers: { users?: string[]; groups?: string[] };
  required: number;
  expiresAt: string;
  /** Stamped by the mutating webhook from userInfo. */
  requester?: Subject;
  /** The caller the sidecar verified (its token's subject); cannot decide either. */
  onBehalfOf?: Subject;
}

export interface ApprovalRequestStatus {
  state?: ApprovalState;
  decisions?: DecisionEntry[];
  finalReason?: string;
  conditions?: Condition[];
}

export interface ApprovalRequestObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: ApprovalRequestSpec;
  status?: ApprovalRequestStatus;
}

export interface ApprovalRequestList {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: ApprovalRequestObject[];
}

/** The condition that says a request left pending (its lastTransitionTime drives TTL deletion). */
export const DECIDED_CONDITION = 'Decided';

export const APPROVAL_API = { group: GROUP, version: VERSION, plural: APPROVAL_REQUEST.plural } as const;

/** An empty status means pending: the API server drops status on create, so a new object has none. */
export function stateOf(obj: Pick<ApprovalRequestObject, 'status'>): ApprovalState {
  return obj.status?.state ?? 'pending';
}

export function isFinal(state: ApprovalState): boolean {
  return FINAL_STATES.includes(state);
}

/** Why a request expired; the sweeper writes it and the sidecar tells the agent. */
export function expiredReason(obj: ApprovalRequestObject): string {
  const approvals = (obj.status?.decisions ?? []).filter((d) => d.verdict === 'approve').length;
  const got = approvals > 0 ? ` (${approvals} of ${obj.spec.required} approvals)` : '';
  return `approval request ${obj.metadata.name ?? '?'} expired at ${obj.spec.expiresAt} without a decision${got}`;
}
