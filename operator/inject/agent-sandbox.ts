// Names from kubernetes-sigs/agent-sandbox that the operator reads: its API groups, and the labels
// its controllers stamp on the pods they create (api/v1beta1/sandbox_types.go). Its controllers
// drop any agents.x-k8s.io/ label or annotation a template or claim tries to set, so these values
// come from them, never from the pod's author.
export const SANDBOX_GROUP = 'agents.x-k8s.io';
export const SANDBOX_EXTENSIONS_GROUP = 'extensions.agents.x-k8s.io';

export const SANDBOX_LABELS = {
  /** Every pod of a Sandbox: a hash of the Sandbox's name (the pod is named after the Sandbox). */
  nameHash: `${SANDBOX_GROUP}/sandbox-name-hash`,
  /** On a pod whose Sandbox a SandboxWarmPool still owns (unclaimed): a hash of the pool's name. */
  warmPool: `${SANDBOX_GROUP}/warm-pool-sandbox`,
  /** On pods made from a SandboxTemplate (claims, warm pools): a hash of the template's name; its NetworkPolicy selects on it. */
  templateRefHash: `${SANDBOX_GROUP}/sandbox-template-ref-hash`,
  /** On a claimed sandbox's pod: the SandboxClaim's UID. */
  claimUid: `${SANDBOX_GROUP}/claim-uid`,
} as const;

/** The API group of an apiVersion ("apps/v1" -> "apps", "v1" -> ""). */
export function apiGroup(apiVersion: unknown): string {
  if (typeof apiVersion !== 'string') return '';
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}
