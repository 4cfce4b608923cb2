// "Should we inject?" as an ordered list of small predicates. Each returns undefined to go on, or
// the reason it says no, so every skip is logged and explained. Order matters only for which
// reason is reported; each predicate alone is a sufficient reason to leave the pod alone.
import { ANNOTATIONS, INJECTION_ENABLED, INJECTION_LABEL, INJECT_POD_LABEL, SIDECAR_CONTAINER } from '../../common/k8s/names';
import type { InjectorConfig } from './config';
import type { Pod } from './k8s-types';

export interface PredicateInput {
  pod: Pod;
  /** The namespace the pod is created in (the request's, since a pod from a ReplicaSet carries none). */
  namespace: string;
  /** The namespace's labels; undefined when the namespace is unknown (not in the informer cache yet). */
  namespaceLabels: Record<string, string> | undefined;
  config: InjectorConfig;
}

export interface Predicate {
  name: string;
  /** undefined: no objection; a string: why the pod is not injected. */
  check: (input: PredicateInput) => string | undefined;
}

/** Namespaces that hold the cluster's own machinery: injecting there could break the cluster. */
const SYSTEM_NAMESPACES: ReadonlySet<string> = new Set(['kube-system', 'kube-public', 'kube-node-lease']);

/**
 * Why pods in `namespace` are never injected whatever its labels say (the operator's own namespace,
 * where the webhook must not depend on itself, or a system namespace), or undefined.
 */
export function namespaceExemption(namespace: string, config: InjectorConfig): string | undefined {
  if (namespace === config.operatorNamespace) return `namespace ${namespace} is the operator's own namespace`;
  if (SYSTEM_NAMESPACES.has(namespace)) return `namespace ${namespace} is a system namespace`;
  return undefined;
}

export const PREDICATES: readonly Predicate[] = [
  {
    name: 'exempt-namespace',
    check: ({ namespace, config }) => namespaceExemption(namespace, config),
  },
  {
    name: 'namespace-opted-in',
    check: ({ namespace, namespaceLabels }) =>
      namespaceLabels?.[INJECTION_LABEL] === INJECTION_ENABLED
        ? undefined
        : `namespace ${namespace} is not labelled ${INJECTION_LABEL}=${INJECTION_ENABLED}`,
  },
  {
    name: 'pod-opted-out',
    check: ({ pod }) => (pod.metadata?.labels?.[INJECT_POD_LABEL] === 'false' ? `pod is labelled ${INJECT_POD_LABEL}=false` : undefined),
  },
  {
    name: 'host-network',
    // The sidecar's ports would be the node's ports, and lockdown rules would land on the node.
    check: ({ pod }) => (pod.spec?.hostNetwork === true ? 'pod uses hostNetwork' : undefined),
  },
  {
    name: 'already-injected',
    // The sidecar container is the proof. The annotation alone is text that whoever shapes the
    // pod's metadata can write (an agent-sandbox SandboxClaim's additionalPodMetadata, a copied
    // manifest) and would switch injection off; injecting such a pod overwrites it.
    check: ({ pod }: PredicateInput): string | undefined => {
      const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
      if (!all.some((c) => c.name === SIDECAR_CONTAINER)) return undefined;
      return pod.metadata?.annotations?.[ANNOTATIONS.injected] !== undefined
        ? `pod already carries the ${ANNOTATIONS.injected} annotation`
        : `pod already has a ${SIDECAR_CONTAINER} container`;
    },
  },
];

/** The first predicate's objection, or undefined when every predicate lets the pod through. */
export function skipReason(input: PredicateInput): string | undefined {
  for (const p of PREDICATES) {
    const reason = p.check(input);
    if (reason !== undefined) return reason;
  }
  return undefined;
}
