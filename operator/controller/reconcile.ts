// Reconcile, as a pure function: one AccessPolicy and what the informers observed around it in, the
// desired ConfigMap, status and Events out. No API calls, no clock (the caller passes `now`).
// An invalid policy yields no ConfigMap, so the sidecars keep running the last good one.
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import {
  ANNOTATIONS,
  API_VERSION,
  INJECT_POD_LABEL,
  INJECTION_ENABLED,
  INJECTION_LABEL,
  ACCESS_POLICY,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  POLICY_CONFIGMAP_KEY,
  POLICY_LABEL,
  SIDECAR_CONTAINER,
  policyConfigMapName,
} from '../../common/k8s/names';
import { CLUSTER_KEYS_FILE } from '../../common/identity/cluster-keys';
import { formatPolicyError } from '../../common/policy/errors';
import { validateAccessPolicy } from '../../common/policy/schema';
import type { AccessPolicy } from '../../common/policy/types';
import { referencedSecrets } from '../../common/k8s/referenced-secrets';
import { selectorMatches } from '../../common/k8s/selector';
import type { ClusterKeysState } from './cluster-keys';
import { groupRecycles } from './recycle';
import type { Condition, ConfigMapObject, EventSpec, ObjectReference, PodObject, PolicyObject, PolicyStatus } from './types';

export const CONDITION_ACCEPTED = 'Accepted';
export const CONDITION_READY = 'Ready';
/** status.outdatedPods lists at most this many names; outdatedPodCount has the total. */
export const MAX_LISTED_PODS = 20;
const MAX_LISTED_ERRORS = 10;
/** The outdated-sidecar Event names at most this many recycle commands. */
const MAX_LISTED_RECYCLES = 5;
/** events.k8s.io/v1 rejects a note of 1 kB or more. */
const MAX_EVENT_MESSAGE = 1000;

export const REASONS = {
  valid: 'Valid',
  invalid: 'InvalidSpec',
  rendered: 'Rendered',
  secretMissing: 'SecretMissing',
  overlapping: 'OverlappingPolicies',
  outdated: 'SidecarOutdated',
  uninjected: 'PodsWithoutSidecar',
  clusterKeysUnavailable: 'ClusterKeysUnavailable',
  audienceIsIssuer: 'AudienceIsClusterIssuer',
} as const;

export interface ReconcileInput {
  policy: PolicyObject;
  /** Pods in the policy's namespace. */
  pods: readonly PodObject[];
  /** Names of the Secrets that exist in the policy's namespace (at least those it references). */
  secrets: readonly string[];
  /** The other AccessPolicies of the same namespace. */
  otherPolicies: readonly PolicyObject[];
  /** The config hash a pod injected for this policy today carries (operator/inject/hash.ts). */
  expectedHash(policy: AccessPolicy): string;
  now: Date;
  /** spec.identity.kubernetes: the cluster's issuer and keys as last fetched (cluster-keys.ts). */
  clusterKeys?: ClusterKeysState;
  /** The ConfigMap's cluster-keys entry as it is now: kept when the keys were never fetched. */
  currentClusterKeys?: string;
}

export interface ReconcileResult {
  /** The desired ConfigMap; undefined when the policy is invalid (leave the last good one alone). */
  configMap?: ConfigMapObject;
  status: PolicyStatus;
  events: EventSpec[];
  /** The validated policy (defaults applied), when valid. */
  policy?: AccessPolicy;
}

export function reconcilePolicy(input: ReconcileInput): ReconcileResult {
  const { policy } = input;
  const ref = policyRef(policy);
  const generation = policy.metadata.generation;
  const now = rfc3339(input.now);
  const previous = policy.status ?? {};
  const governed = input.pods.filter((p) => isRunning(p) && hasSidecar(p) && governs(policy, p));
  const checked = validateAccessPolicy(normalisedDocument(policy, policy.spec));

  if (!checked.ok) {
    const lines = checked.errors.slice(0, MAX_LISTED_ERRORS).map(formatPolicyError);
    if (checked.errors.length > MAX_LISTED_ERRORS) lines.push(`... and ${checked.errors.length - MAX_LISTED_ERRORS} more`);
    const message = lines.join('; ');
    return {
      status: {
        ...previous,
        observedGeneration: generation,
        governedPods: governed.length,
        conditions: [
          condition(
            previous,
            { type: CONDITION_ACCEPTED, status: 'False', reason: REASONS.invalid, message, observedGeneration: generation },
            now,
          ),
          condition(
            previous,
            {
              type: CONDITION_READY,
              status: 'False',
              reason: REASONS.invalid,
              message: 'the spec is invalid (see the Accepted condition); sidecars keep enforcing the last accepted version',
              observedGeneration: generation,
            },
            now,
          ),
        ],
      },
      events: [{ type: 'Warning', reason: REASONS.invalid, message: truncate(`AccessPolicy is invalid: ${message}`), involvedObject: ref }],
    };
  }

  const valid = checked.policy;
  const events: EventSpec[] = [];
  const missing = referencedSecrets(valid).filter((s) => !input.secrets.includes(s));
  for (const s of missing) {
    events.push({
      type: 'Warning',
      reason: REASONS.secretMissing,
      message: truncate(
        `Secret "${s}" referenced by ${secretFields(valid, s).join(', ')} does not exist in namespace ${policy.metadata.namespace ?? ''}`,
      ),
      involvedObject: ref,
    });
  }
  events.push(...overlapEvents(policy, valid, input));

  const expected = input.expectedHash(valid);
  const outdatedPods = governed
    .filter((p) => p.metadata.annotations?.[ANNOTATIONS.configHash] !== expected)
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const outdated = outdatedPods.map((p) => p.metadata.name);
  if (outdated.length > 0) {
    const listed = outdated.slice(0, MAX_LISTED_PODS).join(', ');
    const more = outdated.length > MAX_LISTED_PODS ? ` and ${outdated.length - MAX_LISTED_PODS} more` : '';
    events.push({
      type: 'Warning',
      reason: REASONS.outdated,
      message: truncate(
        `${outdated.length} pod(s) run a sidecar injected with an older configuration and need replacing: ${listed}${more}. ${recycleText(outdatedPods)}`,
      ),
      involvedObject: ref,
    });
  }

  events.push(...uninjectedEvents(valid, input.pods, ref));

  const keys = valid.spec.identity?.kubernetes ? clusterKeysFor(valid, input) : undefined;
  if (keys?.problem)
    events.push({ type: 'Warning', reason: keys.problem.reason, message: truncate(keys.problem.message), involvedObject: ref });
  const ready: Omit<Condition, 'lastTransitionTime'> = keys?.problem
    ? { type: CONDITION_READY, status: 'False', ...keys.problem, observedGeneration: generation }
    : missing.length > 0
      ? {
          type: CONDITION_READY,
          status: 'False',
          reason: REASONS.secretMissing,
          message: `missing Secret(s) in namespace ${policy.metadata.namespace ?? ''}: ${missing.join(', ')}; pods using this policy cannot start`,
          observedGeneration: generation,
        }
      : {
          type: CONDITION_READY,
          status: 'True',
          reason: REASONS.rendered,
          message: `rendered to ConfigMap ${policyConfigMapName(policy.metadata.name)}`,
          observedGeneration: generation,
        };
  return {
    configMap: renderConfigMap(policy, valid, keys?.document),
    policy: valid,
    events,
    status: {
      observedGeneration: generation,
      targetCount: valid.spec.targets.length,
      governedPods: governed.length,
      outdatedPods: outdated.slice(0, MAX_LISTED_PODS),
      outdatedPodCount: outdated.length,
      conditions: [
        condition(
          previous,
          {
            type: CONDITION_ACCEPTED,
            status: 'True',
            reason: REASONS.valid,
            message: 'the spec passed schema and semantic validation',
            observedGeneration: generation,
          },
          now,
        ),
        condition(previous, ready, now),
      ],
    },
  };
}

/** The document the sidecar loads (`warden sidecar --policy FILE`): identity and spec, nothing else. */
export function normalisedDocument(policy: PolicyObject, spec: unknown): Record<string, unknown> {
  const m = policy.metadata;
  const metadata: Record<string, unknown> = { name: m.name };
  if (m.namespace !== undefined) metadata.namespace = m.namespace;
  if (m.generation !== undefined) metadata.generation = m.generation;
  if (m.uid !== undefined) metadata.uid = m.uid;
  return { apiVersion: API_VERSION, kind: ACCESS_POLICY.kind, metadata, spec };
}

/**
 * The cluster-keys document for a spec.identity.kubernetes policy: as fetched, else the one the
 * ConfigMap already holds (an operator that restarts while the API server's keys are unreachable
 * must not take them away from running sidecars); and what is wrong, for the Ready condition.
 */
function clusterKeysFor(valid: AccessPolicy, input: ReconcileInput): { document?: string; problem?: { reason: string; message: string } } {
  const fetched = input.clusterKeys;
  const document = fetched?.document ?? input.currentClusterKeys;
  if (fetched?.error !== undefined || document === undefined) {
    const why = fetched?.error ?? 'the operator has not fetched them';
    const consequence =
      document === undefined
        ? 'sidecars refuse every token until they can be read'
        : 'sidecars keep the keys fetched earlier (a key the cluster added since is not accepted yet)';
    return { document, problem: { reason: REASONS.clusterKeysUnavailable, message: `${why}; ${consequence}` } };
  }
  let issuer: string | undefined;
  try {
    issuer = (JSON.parse(document) as { issuer?: string }).issuer;
  } catch {
    issuer = undefined;
  }
  if (issuer !== undefined && valid.spec.identity!.kubernetes!.audiences.includes(issuer)) {
    return {
      document,
      problem: {
        reason: REASONS.audienceIsIssuer,
        message: `spec.identity.kubernetes.audiences includes ${issuer}, the cluster's issuer and the API server's own audience: sidecars refuse every token until it names an audience of your own (such as agent-warden)`,
      },
    };
  }
  return { document };
}

export function renderConfigMap(policy: PolicyObject, valid: AccessPolicy, clusterKeys?: string): ConfigMapObject {
  const m = policy.metadata;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: policyConfigMapName(m.name),
      namespace: m.namespace,
      labels: { [POLICY_LABEL]: labelValue(m.name), [MANAGED_BY_LABEL]: MANAGED_BY },
      ownerReferences: m.uid
        ? [{ apiVersion: API_VERSION, kind: ACCESS_POLICY.kind, name: m.name, uid: m.uid, controller: true, blockOwnerDeletion: true }]
        : undefined,
    },
    data: {
      [POLICY_CONFIGMAP_KEY]: stringify(normalisedDocument(policy, valid.spec)),
      ...(clusterKeys !== undefined ? { [CLUSTER_KEYS_FILE]: clusterKeys } : {}),
    },
  };
}

/**
 * A condition with lastTransitionTime carried over when its status did not change, as
 * meta.SetStatusCondition does: the time says when it became so, not when we last looked.
 */
export function condition(previous: PolicyStatus, next: Omit<Condition, 'lastTransitionTime'>, now: string): Condition {
  const old = previous.conditions?.find((c) => c.type === next.type);
  const lastTransitionTime = old && old.status === next.status && old.lastTransitionTime ? old.lastTransitionTime : now;
  return { ...next, lastTransitionTime };
}

/** Label values are at most 63 characters: long names keep a prefix plus a hash. */
export function labelValue(name: string): string {
  if (name.length <= 63) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${name.slice(0, 54).replace(/[-.]+$/, '')}-${hash}`;
}

export function policyRef(policy: PolicyObject): ObjectReference {
  return {
    apiVersion: API_VERSION,
    kind: ACCESS_POLICY.kind,
    name: policy.metadata.name,
    namespace: policy.metadata.namespace,
    uid: policy.metadata.uid,
  };
}

export function hasSidecar(pod: PodObject): boolean {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].some((c) => c.name === SIDECAR_CONTAINER);
}

export function isRunning(pod: PodObject): boolean {
  const phase = pod.status?.phase;
  return pod.metadata.deletionTimestamp === undefined && phase !== 'Succeeded' && phase !== 'Failed';
}

/** The policy named in the pod's injected annotation; undefined when absent or unreadable. */
export function injectedPolicyName(pod: PodObject): string | undefined {
  const raw = pod.metadata.annotations?.[ANNOTATIONS.injected];
  if (raw === undefined) return undefined;
  try {
    const name = (JSON.parse(raw) as { policy?: { name?: unknown } }).policy?.name;
    return typeof name === 'string' ? name : undefined;
  } catch {
    return undefined;
  }
}

/** The injected annotation says which policy a sidecar enforces; the selector is the fallback. */
function governs(policy: PolicyObject, pod: PodObject): boolean {
  const named = injectedPolicyName(pod);
  if (named !== undefined) return named === policy.metadata.name;
  return selectorMatches(podSelectorOf(policy), pod.metadata.labels ?? {});
}

export function podSelectorOf(policy: PolicyObject): AccessPolicy['spec']['podSelector'] {
  const spec = policy.spec as { podSelector?: AccessPolicy['spec']['podSelector'] } | undefined;
  return spec?.podSelector;
}

/** One Warning per other policy that selects some of the same pods: a pod runs under one policy only. */
function overlapEvents(policy: PolicyObject, valid: AccessPolicy, input: ReconcileInput): EventSpec[] {
  const mine = input.pods.filter((p) => isRunning(p) && selectorMatches(valid.spec.podSelector, p.metadata.labels ?? {}));
  const out: EventSpec[] = [];
  for (const other of [...input.otherPolicies].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    if (other.metadata.name === policy.metadata.name) continue;
    const both = mine
      .filter((p) => selectorMatches(podSelectorOf(other), p.metadata.labels ?? {}))
      .map((p) => p.metadata.name)
      .sort();
    if (both.length === 0) continue;
    const listed =
      both.slice(0, MAX_LISTED_PODS).join(', ') + (both.length > MAX_LISTED_PODS ? ` and ${both.length - MAX_LISTED_PODS} more` : '');
    out.push({
      type: 'Warning',
      reason: REASONS.overlapping,
      message: truncate(
        `AccessPolicy "${other.metadata.name}" also selects pod(s) ${listed}; a pod runs under exactly one policy, so new pods are refused: narrow spec.podSelector of one of them`,
      ),
      involvedObject: policyRef(policy),
    });
  }
  return out;
}

/**
 * Running pods this policy selects that have no sidecar: created before the policy (an agent-sandbox
 * warm pool filled ahead of it, a Deployment rolled out first) or before the namespace was opted
 * in. They reach everything unguarded, and nothing else reports them. A pod labelled
 * agentwarden.io/inject=false opted out on purpose and is left out.
 */
function uninjectedEvents(valid: AccessPolicy, pods: readonly PodObject[], ref: ObjectReference): EventSpec[] {
  const bare = pods
    .filter((p) => isRunning(p) && !hasSidecar(p) && p.metadata.labels?.[INJECT_POD_LABEL] !== 'false')
    .filter((p) => selectorMatches(valid.spec.podSelector, p.metadata.labels ?? {}))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  if (bare.length === 0) return [];
  const names = bare.map((p) => p.metadata.name);
  const listed =
    names.slice(0, MAX_LISTED_PODS).join(', ') + (names.length > MAX_LISTED_PODS ? ` and ${names.length - MAX_LISTED_PODS} more` : '');
  return [
    {
      type: 'Warning',
      reason: REASONS.uninjected,
      message: truncate(
        `${names.length} pod(s) selected by this policy run without the Agent Warden sidecar (created before the policy, or before namespace ` +
          `${valid.metadata.namespace ?? ''} was labelled ${INJECTION_LABEL}=${INJECTION_ENABLED}): ${listed}. ${recycleText(bare)}`,
      ),
      involvedObject: ref,
    },
  ];
}

/** The commands that replace these pods, one per workload (Deployment, warm pool, ...). */
function recycleText(pods: readonly PodObject[]): string {
  const groups = groupRecycles(pods.map((p) => ({ ...p.metadata, name: p.metadata.name })));
  const shown = groups.slice(0, MAX_LISTED_RECYCLES).map((g) => `${g.command}${g.note ? ` (${g.note})` : ''}`);
  const more = groups.length > MAX_LISTED_RECYCLES ? `; and ${groups.length - MAX_LISTED_RECYCLES} more workloads` : '';
  return `To replace them: ${shown.join('; ')}${more}`;
}

function secretFields(policy: AccessPolicy, secret: string): string[] {
  const fields: string[] = [];
  policy.spec.targets.forEach((t, i) => {
    if (t.postgres?.credentialsSecret === secret) fields.push(`spec.targets[${i}].postgres.credentialsSecret`);
    if (t.http?.credentialsSecret === secret) fields.push(`spec.targets[${i}].http.credentialsSecret`);
    if (t.mcp?.credentialsSecret === secret) fields.push(`spec.targets[${i}].mcp.credentialsSecret`);
  });
  return fields;
}

function truncate(s: string): string {
  return s.length <= MAX_EVENT_MESSAGE ? s : `${s.slice(0, MAX_EVENT_MESSAGE - 3)}...`;
}

/** RFC 3339 at second precision, as metav1.Time serialises. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}
