// RBAC for approvals, as plain objects the Helm chart copies into its templates (and the tests
// check for least privilege). Who may decide what is the admission webhook's job; RBAC only says
// who may talk to ApprovalRequests at all.
import { APPROVAL_REQUEST, GROUP } from '../../common/k8s/names';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

const AR = APPROVAL_REQUEST.plural;
const AR_STATUS = `${AR}/status`;

/**
 * The sidecar's service account, in its own namespace only (a Role, never a ClusterRole): create a
 * request per hold and watch it. Status `patch` is for cancelling its own request when the agent
 * goes away (and marking a new one pending); the webhook refuses any other status change from it,
 * so `update` on status is not needed. No delete: the operator cleans up.
 */
export const SIDECAR_APPROVALS_RULES: readonly PolicyRule[] = [
  { apiGroups: [GROUP], resources: [AR], verbs: ['create', 'get', 'list', 'watch'] },
  { apiGroups: [GROUP], resources: [AR_STATUS], verbs: ['patch'] },
];

/** People who decide: read requests anywhere and append a decision through the status subresource. */
export const APPROVER_RULES: readonly PolicyRule[] = [
  { apiGroups: [GROUP], resources: [AR], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [GROUP], resources: [AR_STATUS], verbs: ['patch'] },
];

/** The operator's sweeper: expire pending requests and delete decided ones after the TTL. */
export const OPERATOR_APPROVALS_RULES: readonly PolicyRule[] = [
  { apiGroups: [GROUP], resources: [AR], verbs: ['get', 'list', 'watch', 'delete'] },
  { apiGroups: [GROUP], resources: [AR_STATUS], verbs: ['patch'] },
];

export const APPROVER_CLUSTER_ROLE_NAME = 'agent-warden-approver';
export const SIDECAR_APPROVALS_ROLE_NAME = 'agent-warden-sidecar-approvals';

const LABELS = { 'app.kubernetes.io/name': 'agent-warden', 'app.kubernetes.io/component': 'approvals' };

export interface RoleObject {
  apiVersion: 'rbac.authorization.k8s.io/v1';
  kind: 'Role' | 'ClusterRole';
  metadata: { name: string; namespace?: string; labels: Record<string, string> };
  rules: PolicyRule[];
}

/** Bind it to the agent's service account with a RoleBinding in the same namespace. */
export function sidecarApprovalsRole(namespace: string): RoleObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: SIDECAR_APPROVALS_ROLE_NAME, namespace, labels: { ...LABELS } },
    rules: structuredClone([...SIDECAR_APPROVALS_RULES]),
  };
}

/** Bind to approver groups with a ClusterRoleBinding, or per namespace with RoleBindings. */
export function approverClusterRole(): RoleObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: APPROVER_CLUSTER_ROLE_NAME, labels: { ...LABELS } },
    rules: structuredClone([...APPROVER_RULES]),
  };
}
