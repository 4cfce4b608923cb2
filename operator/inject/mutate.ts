// injectPod: the one pure function behind the webhook and `warden inject`. It decides (skip,
// refuse or inject), mutates a deep copy, and returns the RFC 6902 patch from the original to it
// (json-diff.ts; the tests check it against fast-json-patch's applyPatch and compare).
import type { Operation } from 'fast-json-patch';
import { ANNOTATIONS, LOCKDOWN_CONTAINER, SIDECAR_CONTAINER } from '../../common/k8s/names';
import type { AccessPolicy } from '../../common/policy/types';
import { appEnv, applyEnv, proxyEnvConflict, targetEnv } from './app-env';
import type { InjectorConfig, SidecarPorts } from './config';
import { injectionConfigHash } from './hash';
import { ISTIO_PORTS, istioInboundExclusion, istioMode, istioProblems, type IstioMode } from './istio';
import { diffPatch } from './json-diff';
import { applyIdentityToken } from './identity-token';
import type { Container, EnvVar, Pod, PodSpec } from './k8s-types';
import { lockdownContainer, lockdownEscapes, lockdownWanted } from './lockdown';
import { NameAllocator } from './names-alloc';
import { skipReason } from './predicates';
import { selectingPolicies } from './select';
import { buildSidecar, InjectionError } from './sidecar';

/** Format of the ANNOTATIONS.injected JSON. */
export const INJECTED_ANNOTATION_VERSION = 1;

export interface InjectContext {
  /** The namespace the pod is created in. */
  namespace: string;
  namespaceLabels: Record<string, string> | undefined;
  /** AccessPolicies of every namespace (the informer's cache); only the pod's namespace counts. */
  policies: readonly AccessPolicy[];
  config: InjectorConfig;
}

export type InjectResult =
  | { outcome: 'injected'; pod: Pod; patch: Operation[]; policy: AccessPolicy; warnings: string[] }
  | { outcome: 'skipped'; reason: string }
  /** Not safe to create as it is: the webhook denies it with `reason`, which says what to fix. */
  | { outcome: 'refused'; reason: string };

/** What the injected annotation records. */
export interface InjectedRecord {
  version: number;
  policy: { namespace: string; name: string; generation?: number; uid?: string };
  image: string;
  lockdown: boolean;
  targets: Array<{ name: string; kind: 'postgres' | 'http' | 'mcp'; env: string }>;
  /** Every variable set in the app containers; their injected values replace the manifest's own. */
  env: string[];
  /** Containers left out of the env rewrite by ANNOTATIONS.excludeContainers (absent when none). */
  excluded?: string[];
  envPrecedence: 'injected';
}

export function injectPod(pod: Pod, ctx: InjectContext): InjectResult {
  const reason = skipReason({ pod, namespace: ctx.namespace, namespaceLabels: ctx.namespaceLabels, config: ctx.config });
  if (reason !== undefined) {
    const late = reinvocationProblem(pod, ctx);
    return late !== undefined ? { outcome: 'refused', reason: late } : { outcome: 'skipped', reason };
  }
  if (!pod.spec || !Array.isArray(pod.spec.containers)) return { outcome: 'refused', reason: 'pod has no spec.containers' };
  const matches = selectingPolicies(ctx.policies, ctx.namespace, pod.metadata?.labels ?? {});
  if (matches.length === 0) return { outcome: 'skipped', reason: `no AccessPolicy in namespace ${ctx.namespace} selects this pod` };
  if (matches.length > 1) return { outcome: 'refused', reason: ambiguous(matches, ctx.namespace) };
  try {
    return inject(pod, matches[0], ctx);
  } catch (err) {
    if (err instanceof InjectionError) return { outcome: 'refused', reason: err.message };
    throw err;
  }
}

/**
 * A pod we injected, seen again: the API server reinvokes the webhook after later webhooks changed
 * the pod (reinvocationPolicy IfNeeded), e.g. Istio's injector adding its proxy where no label
 * announced it. What injection checked must still hold for what was added: Istio beside the sidecar
 * (with lockdown, or on our ports or user), or a container lockdown cannot fence. Undefined when
 * it holds, or when this is not a pod we injected.
 */
function reinvocationProblem(pod: Pod, ctx: InjectContext): string | undefined {
  const spec = pod.spec;
  const ours = new Set([SIDECAR_CONTAINER, LOCKDOWN_CONTAINER]);
  const all = [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
  if (!spec || pod.metadata?.annotations?.[ANNOTATIONS.injected] === undefined || !all.some((c) => c.name === SIDECAR_CONTAINER))
    return undefined;
  const { config } = ctx;
  const lockdown = all.some((c) => c.name === LOCKDOWN_CONTAINER);
  const istio = istioMode(pod, ctx.namespaceLabels);
  const problems = istio
    ? istioProblems({ istio, lockdown, ports: config.ports, runAsUser: config.runAsUser, runAsGroup: config.runAsGroup })
    : [];
  if (problems.length > 0)
    return `pod runs Istio (${istio!.evidence}), added after Agent Warden's injection, and ${problems.join('; and ')}`;
  if (!lockdown) return undefined;
  const theirs: PodSpec = {
    ...spec,
    initContainers: (spec.initContainers ?? []).filter((c) => !ours.has(c.name)),
    containers: spec.containers.filter((c) => !ours.has(c.name)),
  };
  try {
    checkLockdownUids(theirs, config.runAsUser);
  } catch (err) {
    if (err instanceof InjectionError) return err.message;
    throw err;
  }
  return lockdownEscapes(theirs, { uid: config.runAsUser, gid: config.runAsGroup });
}

function ambiguous(policies: AccessPolicy[], namespace: string): string {
  const names = policies.map((p) => p.metadata.name);
  return (
    `AccessPolicies ${names.map((n) => JSON.stringify(n)).join(' and ')} in namespace ${namespace} all select this pod; ` +
    `a pod runs under exactly one policy: narrow their spec.podSelector so only one matches, ` +
    `or merge them into one policy`
  );
}

// Informer objects are replaced, never mutated, on change: identity is a safe cache key, and the
// hash is a fifth of the handler's time otherwise.
const hashCache = new WeakMap<AccessPolicy, { config: InjectorConfig; hash: string }>();

function cachedConfigHash(config: InjectorConfig, policy: AccessPolicy): string {
  const hit = hashCache.get(policy);
  if (hit?.config === config) return hit.hash;
  const hash = injectionConfigHash(config, policy);
  hashCache.set(policy, { config, hash });
  return hash;
}

function inject(original: Pod, policy: AccessPolicy, ctx: InjectContext): InjectResult {
  const { config } = ctx;
  // The pod came from JSON: a JSON round trip copies it faster than structuredClone.
  const pod = JSON.parse(JSON.stringify(original)) as Pod;
  const spec = pod.spec as PodSpec;
  const annotations = pod.metadata?.annotations ?? {};
  const lockdown = lockdownWanted(policy, annotations, config);
  const istio = istioMode(original, ctx.namespaceLabels);
  if (istio) {
    const problems = istioProblems({ istio, lockdown, ports: config.ports, runAsUser: config.runAsUser, runAsGroup: config.runAsGroup });
    if (problems.length > 0) throw new InjectionError(`pod runs Istio (${istio.evidence}), and ${problems.join('; and ')}`);
  }
  checkPorts(spec, policy, config.ports, istio);
  const conflict = proxyEnvConflict(policy);
  if (conflict !== undefined) throw new InjectionError(conflict);
  if (lockdown) {
    checkLockdownUids(spec, config.runAsUser);
    const escape = lockdownEscapes(spec, { uid: config.runAsUser, gid: config.runAsGroup });
    if (escape !== undefined) throw new InjectionError(escape);
  }

  const names = new NameAllocator((spec.volumes ?? []).map((v) => v.name));
  const sidecar = buildSidecar({ policy, config, annotations, names });
  const env = appEnv(policy, config.ports.egress);
  const excluded = excludedContainers(spec, annotations, new Set(env.map((e) => e.name)));
  const warnings = rewriteEnv(spec, env, excluded, lockdown);
  const identityEnv = applyIdentityToken(spec, policy, names, excluded); // spec.identity.kubernetes only (identity-token.ts)
  spec.initContainers = [...(lockdown ? [lockdownContainer(config)] : []), sidecar.container, ...(spec.initContainers ?? [])];
  spec.volumes = [...(spec.volumes ?? []), ...sidecar.volumes];
  if (spec.shareProcessNamespace === true) {
    warnings.push("shareProcessNamespace is true: the app containers can see the sidecar's processes; turn it off for agent pods");
  }

  const record: InjectedRecord = {
    version: INJECTED_ANNOTATION_VERSION,
    policy: {
      namespace: policy.metadata.namespace ?? '',
      name: policy.metadata.name,
      ...(policy.metadata.generation !== undefined ? { generation: policy.metadata.generation } : {}),
      ...(typeof policy.metadata.uid === 'string' ? { uid: policy.metadata.uid } : {}),
    },
    image: config.image,
    lockdown,
    targets: targetEnv(policy, config.ports.egress).map((t) => ({ name: t.target, kind: t.kind, env: t.name })),
    env: [...env.map((e) => e.name), ...identityEnv],
    envPrecedence: 'injected',
    ...(excluded.size > 0 ? { excluded: [...excluded].sort() } : {}),
  };
  pod.metadata = pod.metadata ?? {};
  pod.metadata.annotations = {
    ...pod.metadata.annotations,
    [ANNOTATIONS.injected]: JSON.stringify(record),
    [ANNOTATIONS.configHash]: cachedConfigHash(config, policy),
    ...(istio?.mode === 'sidecar' ? istioInboundExclusion(pod.metadata.annotations ?? {}, config.ports.health) : {}),
  };
  return { outcome: 'injected', pod, patch: diffPatch(original, pod), policy, warnings };
}

/** Sets the app env in every container but the excluded ones; returns the warnings to show. */
function rewriteEnv(spec: PodSpec, env: EnvVar[], excluded: ReadonlySet<string>, lockdown: boolean): string[] {
  const warnings: string[] = [];
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    if (excluded.has(c.name)) {
      warnings.push(
        `container ${c.name}: excluded by ${ANNOTATIONS.excludeContainers}, its environment is left as written ` +
          `(no target or proxy variables)${lockdown ? '; egress lockdown still fences it' : ''}`,
      );
    }
    const replaced = excluded.has(c.name) ? [] : applyEnv(c, env);
    if (replaced.length > 0)
      warnings.push(`container ${c.name}: ${replaced.join(', ')} replaced by Agent Warden (the sidecar's address wins)`);
    const direct = secretsInEnv(c);
    if (direct.length > 0)
      warnings.push(
        `container ${c.name}: still gets Secret ${direct.join(', ')} in its environment; the agent holds that credential directly`,
      );
  }
  return warnings;
}

/**
 * The containers the pod author left out of the env rewrite. Only the env: the sidecar, its
 * Secrets and the lockdown rules are the pod's, not a container's, so an excluded container is
 * fenced like any other and can reach nothing the agent could not. A name that is not a container
 * of the pod is refused (a typo would otherwise rewrite the container the author meant to spare).
 */
function excludedContainers(spec: PodSpec, annotations: Record<string, string>, injectedNames: ReadonlySet<string>): Set<string> {
  const value = annotations[ANNOTATIONS.excludeContainers];
  if (value === undefined) return new Set();
  const names = value
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  const known = new Set([...(spec.initContainers ?? []), ...spec.containers].map((c) => c.name));
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new InjectionError(
      `annotation ${ANNOTATIONS.excludeContainers} names ${unknown.map((n) => JSON.stringify(n)).join(', ')}, ` +
        `which ${unknown.length > 1 ? 'are not containers' : 'is not a container'} of this pod (containers: ${[...known].join(', ')})`,
    );
  }
  const excluded = new Set(names);
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    if (!excluded.has(c.name)) continue;
    const kept = secretsInjectionWouldReplace(c, injectedNames);
    if (kept !== undefined) {
      throw new InjectionError(
        `annotation ${ANNOTATIONS.excludeContainers} would leave container ${c.name} ${kept}, which injection replaces ` +
          `for every other container; exclusion never hands a container a credential (give it a literal value, or do not exclude it)`,
      );
    }
  }
  return excluded;
}

/**
 * Whoever can annotate the pod (a SandboxClaim's author, say) must not undo what the template
 * relied on: a Secret-fed variable that injection would have replaced, or an envFrom Secret (its
 * keys cannot be seen here) in an excluded container. What it says, or undefined.
 */
function secretsInjectionWouldReplace(c: Container, injectedNames: ReadonlySet<string>): string | undefined {
  for (const e of c.env ?? []) {
    const ref = (e.valueFrom as { secretKeyRef?: unknown } | undefined)?.secretKeyRef;
    if (ref !== undefined && injectedNames.has(e.name)) return `its ${e.name} from a Secret`;
  }
  const from = ((c.envFrom ?? []) as Array<{ secretRef?: { name?: string } }>).find((f) => f.secretRef !== undefined);
  return from ? `the variables of Secret ${from.secretRef?.name ?? ''} (envFrom)` : undefined;
}

/** Secrets that reach a container's environment other than through the sidecar. */
function secretsInEnv(c: Container): string[] {
  const names = new Set<string>();
  for (const e of c.env ?? []) {
    const ref = (e.valueFrom as { secretKeyRef?: { name?: string } } | undefined)?.secretKeyRef;
    if (ref?.name) names.add(ref.name);
  }
  for (const from of (c.envFrom ?? []) as Array<{ secretRef?: { name?: string } }>) {
    if (from.secretRef?.name) names.add(from.secretRef.name);
  }
  return [...names].sort();
}

/**
 * The sidecar binds these ports in the pod's shared network namespace; a container that already
 * uses one would leave either the sidecar or the app crash-looping. (Istio's proxy listens without
 * declaring its ports: istio.ts checks those.)
 */
function checkPorts(spec: PodSpec, policy: AccessPolicy, ports: SidecarPorts, istio: IstioMode | undefined): void {
  const ours = new Map<number, string>([
    [ports.admin, 'admin API'],
    [ports.egress, 'HTTP egress'],
    [ports.health, 'health probes'],
  ]);
  for (const t of policy.spec.targets) {
    if (!t.postgres) continue;
    const use = ours.get(t.postgres.listenPort);
    // The policy's schema keeps listenPort off the default ports only; moved ports can meet it.
    if (use !== undefined) {
      throw new InjectionError(
        `target ${t.name}: listenPort ${t.postgres.listenPort} is the sidecar's ${use} port in this cluster's operator configuration; choose another listenPort`,
      );
    }
    // Istio's proxy listens on its ports in the pod without declaring them (istioProblems checks ours).
    if (istio && ISTIO_PORTS.includes(t.postgres.listenPort)) {
      throw new InjectionError(
        `target ${t.name}: listenPort ${t.postgres.listenPort} is a port Istio's proxy listens on in the pod (${istio.evidence}); choose another listenPort`,
      );
    }
    ours.set(t.postgres.listenPort, `PostgreSQL listener for target ${t.name}`);
  }
  const all: Container[] = [...(spec.initContainers ?? []), ...spec.containers];
  for (const c of all) {
    for (const p of c.ports ?? []) {
      const use = ours.get(p.containerPort);
      if (use !== undefined) {
        throw new InjectionError(
          `container ${c.name} declares port ${p.containerPort}, which the Agent Warden sidecar uses for its ${use}; move the container to another port`,
        );
      }
    }
  }
}

/** Lockdown exempts the sidecar's UID; an app container running as that UID would be exempt too. */
function checkLockdownUids(spec: PodSpec, sidecarUid: number): void {
  const podUid = spec.securityContext?.runAsUser;
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    if (c.name === LOCKDOWN_CONTAINER) continue;
    if ((c.securityContext?.runAsUser ?? podUid) === sidecarUid) {
      throw new InjectionError(
        `container ${c.name} runs as UID ${sidecarUid}, the sidecar's UID, which egress lockdown lets through; run it as another user`,
      );
    }
  }
}
