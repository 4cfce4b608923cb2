// Which AccessPolicies govern a pod: those in the pod's namespace whose podSelector matches its
// labels (metav1.LabelSelector semantics, common/k8s/selector.ts); an omitted podSelector selects
// none (standalone use).
import { selectorMatches } from '../../common/k8s/selector';
import type { AccessPolicy } from '../../common/policy/types';

/** The policies of `namespace` that select a pod with these labels, in a stable (name) order. */
export function selectingPolicies(policies: readonly AccessPolicy[], namespace: string, labels: Record<string, string>): AccessPolicy[] {
  return policies
    .filter((p) => p.metadata.namespace === namespace && selectorMatches(p.spec.podSelector, labels))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}
