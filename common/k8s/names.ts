// Names shared by the operator (which writes them into objects) and the sidecar (which reads them
// from its environment and mounts). One place, so the two never drift apart.
export const GROUP = 'agentwarden.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const ACCESS_POLICY = { kind: 'AccessPolicy', plural: 'accesspolicies' } as const;
export const APPROVAL_REQUEST = { kind: 'ApprovalRequest', plural: 'approvalrequests' } as const;

/** Namespace label that opts a namespace in to injection. */
export const INJECTION_LABEL = `${GROUP}/injection`;
export const INJECTION_ENABLED = 'enabled';
/** Pod label `agentwarden.io/inject=false` opts one pod out. */
export const INJECT_POD_LABEL = `${GROUP}/inject`;

/** Annotations written on an injected pod. */
export const ANNOTATIONS = {
  /** JSON: what was injected (policy, sidecar image, config hash, targets, env vars set). */
  injected: `${GROUP}/injected`,
  /** Hash of the injected configuration (image + policy generation + injector settings): stale-sidecar detection. */
  configHash: `${GROUP}/config-hash`,
  /** Per-pod overrides of the sidecar's resources. */
  cpuRequest: `${GROUP}/sidecar-cpu-request`,
  cpuLimit: `${GROUP}/sidecar-cpu-limit`,
  memoryRequest: `${GROUP}/sidecar-memory-request`,
  memoryLimit: `${GROUP}/sidecar-memory-limit`,
  /** `true` adds the iptables init container for this pod even if the policy does not ask for lockdown. */
  lockdown: `${GROUP}/lockdown`,
  /** Comma-separated container names whose environment the injector leaves alone (never unfenced: lockdown still applies). */
  excludeContainers: `${GROUP}/exclude-containers`,
} as const;

/** Label the operator puts on objects it owns (ConfigMaps, webhook Secret). */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'agent-warden';
export const FIELD_MANAGER = 'agent-warden-operator';
/** Label on the rendered ConfigMap naming its AccessPolicy. */
export const POLICY_LABEL = `${GROUP}/policy`;

/** The ConfigMap holding one AccessPolicy's rendered form, in the policy's namespace. */
export function policyConfigMapName(policyName: string): string {
  return `warden-policy-${policyName}`.slice(0, 253);
}
export const POLICY_CONFIGMAP_KEY = 'policy.yaml';

export const SIDECAR_CONTAINER = 'warden-sidecar';
export const LOCKDOWN_CONTAINER = 'warden-lockdown';
/** The sidecar runs as this UID; the lockdown rules exempt it. */
export const SIDECAR_UID = 1337;

/** Mount paths inside the sidecar container. */
export const PATHS = {
  policyDir: '/etc/warden/policy',
  secretsDir: '/var/run/warden/secrets',
  tokenDir: '/var/run/warden/token',
  spoolDir: '/var/run/warden/spool',
} as const;
export const TOKEN_FILE = 'token';

/**
 * Sidecar ports (the contract's defaults). `health`: only /healthz and /readyz, on all interfaces,
 * for kubelet probes (the admin API stays on loopback).
 */
export const PORTS = { admin: 15000, egress: 15001, health: 15021 } as const;

/** Environment the webhook sets on the sidecar (downward API and settings). */
export const SIDECAR_ENV = {
  podName: 'POD_NAME',
  podNamespace: 'POD_NAMESPACE',
  serviceAccount: 'POD_SERVICE_ACCOUNT',
  /** `kubernetes`: holds become ApprovalRequest objects in POD_NAMESPACE. */
  approvals: 'WARDEN_APPROVALS',
} as const;
