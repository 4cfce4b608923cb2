// The AccessPolicy controller: informers feed a work queue of policy keys; workers run the pure
// reconcile for a key and write only what differs from what the informers show. Every replica
// keeps its informers warm (the webhooks read the same caches); only the leader's workers write.
import { ANNOTATIONS, ACCESS_POLICY, API_VERSION, MANAGED_BY, MANAGED_BY_LABEL, policyConfigMapName } from '../../common/k8s/names';
import type { Logger } from '../../common/log';
import type { Metrics } from '../../common/metrics';
import type { AccessPolicy } from '../../common/policy/types';
import { canonicalJson } from '../../common/k8s/canonical-json';
import { selectorMatches } from '../../common/k8s/selector';
import { CLUSTER_KEYS_FILE } from '../../common/identity/cluster-keys';
import type { Applier } from './apply';
import type { ClusterKeysSource, ClusterKeysState } from './cluster-keys';
import { Informer } from './informers';
import { isNotFound, KubeApiError, type KubeRest } from './kube-rest';
import { WorkQueue } from './queue';
import { injectedPolicyName, podSelectorOf, reconcilePolicy } from './reconcile';
import type { ConfigMapObject, KubeObject, PodObject, PolicyObject, PolicyStatus } from './types';

export interface ControllerOptions {
  rest: KubeRest;
  log: Logger;
  metrics: Metrics;
  applier: Applier;
  expectedHash: (policy: AccessPolicy) => string;
  isLeader(): boolean;
  /** spec.identity.kubernetes: the cluster's issuer and keys (absent: such policies are not Ready). */
  clusterKeys?: ClusterKeysSource;
  workers?: number;
  /** Every policy is reconciled again this often (catches what no watch reports). */
  resyncMs?: number;
  /** A policy with a missing Secret is checked again after this long (Secrets are not watched). */
  secretRecheckMs?: number;
  informer?: { stallTimeoutMs?: number; backoffInitialMs?: number; backoffMaxMs?: number };
  queue?: { baseDelayMs?: number; maxDelayMs?: number };
  now?: () => Date;
}

export const POLICIES_PATH = `/apis/${API_VERSION}/${ACCESS_POLICY.plural}`;

/** Only what reconcile reads, so a cluster's worth of pods stays small in memory. */
export function slimPod(raw: KubeObject): PodObject {
  const pod = raw as PodObject;
  const m = pod.metadata;
  const annotations: Record<string, string> = {};
  for (const k of [ANNOTATIONS.injected, ANNOTATIONS.configHash]) if (m.annotations?.[k] !== undefined) annotations[k] = m.annotations[k];
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      labels: m.labels,
      annotations,
      deletionTimestamp: m.deletionTimestamp,
      // The controller only: what the outdated-sidecar Event tells to restart (recycle.ts).
      ownerReferences: m.ownerReferences?.filter((o) => o.controller === true),
    },
    spec: {
      containers: (pod.spec?.containers ?? []).map((c) => ({ name: c.name })),
      initContainers: (pod.spec?.initContainers ?? []).map((c) => ({ name: c.name })),
    },
    status: { phase: pod.status?.phase },
  };
}

export class PolicyController {
  readonly policies: Informer<PolicyObject>;
  readonly pods: Informer<PodObject>;
  readonly configMaps: Informer<ConfigMapObject>;
  readonly queue: WorkQueue;
  private workers: Array<Promise<void>> = [];
  private resyncTimer?: NodeJS.Timeout;
  private keysTimer?: NodeJS.Timeout;
  private readonly reconciles;
  private readonly depth;

  constructor(private readonly opts: ControllerOptions) {
    const common = { rest: opts.rest, log: opts.log, ...opts.informer };
    this.policies = new Informer<PolicyObject>({ ...common, path: POLICIES_PATH });
    this.pods = new Informer<PodObject>({ ...common, path: '/api/v1/pods', transform: slimPod });
    this.configMaps = new Informer<ConfigMapObject>({
      ...common,
      path: '/api/v1/configmaps',
      labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}`,
    });
    this.queue = new WorkQueue(opts.queue);
    this.reconciles = opts.metrics.counter('warden_operator_reconciles_total', 'AccessPolicy reconciles by result (success, error).');
    this.depth = opts.metrics.gauge('warden_operator_queue_depth', 'AccessPolicy keys waiting to be reconciled.');

    this.policies.on((_type, p) => this.enqueue(p.metadata.namespace, p.metadata.name));
    this.pods.on((_type, pod, old) => {
      for (const p of [pod, old]) if (p) for (const k of this.policiesFor(p)) this.queue.add(k);
      this.updateDepth();
    });
    this.configMaps.on((_type, cm) => {
      for (const o of cm.metadata.ownerReferences ?? [])
        if (o.kind === ACCESS_POLICY.kind && o.apiVersion === API_VERSION) this.enqueue(cm.metadata.namespace, o.name);
    });
  }

  start(): void {
    this.policies.start();
    this.pods.start();
    this.configMaps.start();
    for (let i = 0; i < (this.opts.workers ?? 2); i++) this.workers.push(this.work());
    const resync = this.opts.resyncMs ?? 5 * 60_000;
    this.resyncTimer = setInterval(() => this.enqueueAll(), resync);
    this.resyncTimer.unref?.();
    const keys = this.opts.clusterKeys;
    if (keys) {
      // Key rotation reaches the ConfigMaps within refreshMs (plus the kubelet's sync for the pods).
      this.keysTimer = setInterval(() => {
        if (keys.wanted && this.opts.isLeader()) void keys.refresh().then(() => this.enqueueKubernetesIdentity());
      }, keys.refreshMs);
      this.keysTimer.unref?.();
    }
  }

  synced(): boolean {
    return this.policies.hasSynced() && this.pods.hasSynced() && this.configMaps.hasSynced();
  }

  async waitForSync(): Promise<void> {
    await Promise.all([this.policies.waitForSync(), this.pods.waitForSync(), this.configMaps.waitForSync()]);
  }

  /** Queue every known policy (on becoming leader, and on resync). */
  enqueueAll(): void {
    for (const p of this.policies.list()) this.enqueue(p.metadata.namespace, p.metadata.name);
  }

  /** Finishes in-flight reconciles, then stops the workers and informers. */
  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    clearInterval(this.keysTimer);
    await this.queue.drain();
    await Promise.all(this.workers);
    await Promise.all([this.policies.stop(), this.pods.stop(), this.configMaps.stop()]);
  }

  /** Queue the policies that use spec.identity.kubernetes (their ConfigMaps carry the cluster's keys). */
  private enqueueKubernetesIdentity(): void {
    for (const p of this.policies.list()) if (usesClusterKeys(p.spec)) this.enqueue(p.metadata.namespace, p.metadata.name);
  }

  private enqueue(namespace: string | undefined, name: string): void {
    this.queue.add(`${namespace ?? ''}/${name}`);
    this.updateDepth();
  }

  private updateDepth(): void {
    this.depth.set({}, this.queue.len());
  }

  /** Keys of the policies a pod event concerns: those selecting it, and the one it was injected for. */
  private policiesFor(pod: PodObject): string[] {
    const ns = pod.metadata.namespace ?? '';
    const names = new Set<string>();
    const injected = injectedPolicyName(pod);
    if (injected) names.add(injected);
    for (const p of this.policies.list(ns)) if (selectorMatches(podSelectorOf(p), pod.metadata.labels ?? {})) names.add(p.metadata.name);
    return [...names].map((n) => `${ns}/${n}`);
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      this.updateDepth();
      if (key === undefined) return;
      try {
        // Followers keep their caches warm but write nothing; the leader re-queues all on takeover.
        if (this.opts.isLeader()) {
          await this.reconcileKey(key);
          this.reconciles.inc({ result: 'success' });
        }
        this.queue.forget(key);
      } catch (e) {
        this.reconciles.inc({ result: 'error' });
        const delay = this.queue.addRateLimited(key);
        this.opts.log.warn('reconcile failed: retrying', { policy: key, error: (e as Error).message, retryInMs: delay });
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async reconcileKey(key: string): Promise<void> {
    const i = key.indexOf('/');
    const namespace = key.slice(0, i);
    const name = key.slice(i + 1);
    const policy = this.policies.get(namespace, name);
    if (!policy) return; // deleted: the ConfigMap goes with it (ownerReferences → garbage collector)
    const secrets = await this.existingSecrets(namespace, secretRefs(policy.spec));
    const current = this.configMaps.get(namespace, policyConfigMapName(name));
    let clusterKeys: ClusterKeysState | undefined;
    if (usesClusterKeys(policy.spec)) {
      clusterKeys = this.opts.clusterKeys
        ? await this.opts.clusterKeys.get()
        : { error: 'this operator was started without access to the cluster’s service-account keys' };
    }
    const result = reconcilePolicy({
      clusterKeys,
      currentClusterKeys: current?.data?.[CLUSTER_KEYS_FILE],
      policy,
      pods: this.pods.list(namespace),
      secrets,
      otherPolicies: this.policies.list(namespace).filter((p) => p.metadata.name !== name),
      expectedHash: this.opts.expectedHash,
      now: this.opts.now?.() ?? new Date(),
    });
    if (result.configMap && !sameConfigMap(result.configMap, current)) {
      await this.opts.applier.applyConfigMap(result.configMap);
      this.opts.log.info('rendered policy ConfigMap', { policy: key, generation: policy.metadata.generation });
    }
    if (!sameStatus(result.status, policy.status)) await this.opts.applier.applyPolicyStatus({ namespace, name }, result.status);
    for (const ev of result.events) {
      // Events are best effort: a failure to record one must not fail (and retry) the reconcile.
      await this.opts.applier
        .emitEvent(ev)
        .catch((e: Error) => this.opts.log.warn('could not record Event', { policy: key, reason: ev.reason, error: e.message }));
    }
    if (result.policy && secrets.length < secretRefs(policy.spec).length) this.queue.addAfter(key, this.opts.secretRecheckMs ?? 30_000);
    if (clusterKeys?.error !== undefined && this.opts.clusterKeys) this.queue.addAfter(key, this.opts.clusterKeys.retryMs);
  }

  /** Which of `names` exist; asks for metadata only, so no Secret value is ever read. */
  private async existingSecrets(namespace: string, names: string[]): Promise<string[]> {
    const present: string[] = [];
    for (const n of names) {
      try {
        await this.opts.rest.request({
          method: 'GET',
          path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(n)}`,
          accept: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json',
        });
        present.push(n);
      } catch (e) {
        if (e instanceof KubeApiError && e.status === 403) {
          // RBAC without Secret reads (the chart lets platform teams drop it): cannot check, so do not claim "missing"
          present.push(n);
          continue;
        }
        if (!isNotFound(e)) throw e;
      }
    }
    return present;
  }
}

/** Whether an (unvalidated) spec asks for spec.identity.kubernetes. */
function usesClusterKeys(spec: unknown): boolean {
  const identity = (spec as { identity?: { kubernetes?: unknown } } | undefined)?.identity;
  return identity?.kubernetes !== undefined && identity.kubernetes !== null;
}

/** Secret names an (unvalidated) spec refers to. */
function secretRefs(spec: unknown): string[] {
  const targets = (spec as { targets?: unknown } | undefined)?.targets;
  if (!Array.isArray(targets)) return [];
  const names = new Set<string>();
  type Ref = { credentialsSecret?: unknown };
  for (const t of targets as Array<{ postgres?: Ref; http?: Ref; mcp?: Ref }>) {
    for (const s of [t?.postgres?.credentialsSecret, t?.http?.credentialsSecret, t?.mcp?.credentialsSecret]) {
      if (typeof s === 'string' && s !== '') names.add(s);
    }
  }
  return [...names].sort();
}

function sameConfigMap(want: ConfigMapObject, have: ConfigMapObject | undefined): boolean {
  if (!have) return false;
  const pick = (c: ConfigMapObject): unknown => ({
    data: c.data,
    labels: c.metadata.labels,
    owners: (c.metadata.ownerReferences ?? []).map((o) => o.uid),
  });
  return canonicalJson(pick(want)) === canonicalJson(pick(have));
}

/** Whether the fields we write already hold these values (fields others write are ignored). */
function sameStatus(want: PolicyStatus, have: PolicyStatus | undefined): boolean {
  if (!have) return false;
  const subset = Object.fromEntries(Object.keys(want).map((k) => [k, (have as Record<string, unknown>)[k]]));
  return canonicalJson(want) === canonicalJson(subset);
}
