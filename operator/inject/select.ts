// Which AccessPolicies govern a pod: those in the pod's namespace whose podSelector matches its
// labels. Semantics follow metav1.LabelSelector: all matchLabels and all matchExpressions must hold;
// an empty selector ({}) selects every pod; an omitted podSelector selects none (standalone use).
import type { AccessPolicy, LabelSelector } from '../../common/policy/types';

type Requirement = NonNullable<LabelSelector['matchExpressions']>[number];

export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return false;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  return (selector.matchExpressions ?? []).every((req) => requirementHolds(req, labels));
}

function requirementHolds(req: Requirement, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, req.key);
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return has && values.includes(labels[req.key]);
    case 'NotIn':
      return !has || !values.includes(labels[req.key]);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    default:
      // An operator this code does not know selects nothing rather than everything.
      return false;
  }
}

/** The policies of `namespace` that select a pod with these labels, in a stable (name) order. */
export function selectingPolicies(policies: readonly AccessPolicy[], namespace: string, labels: Record<string, string>): AccessPolicy[] {
  return policies
    .filter((p) => p.metadata.namespace === namespace && selectorMatches(p.spec.podSelector, labels))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}
