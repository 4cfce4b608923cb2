// How to give a pod a sidecar injected with today's configuration: the webhook injects at pod
// creation only, so the pod must be replaced, and how depends on what created it. Pure: a pod's
// name, labels and controller in, the workload to act on and the command out.
import { apiGroup, SANDBOX_GROUP, SANDBOX_LABELS } from '../inject/agent-sandbox';
import type { OwnerReference } from '../inject/k8s-types';

export interface RecyclePod {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface Recycle {
  /** Pods with the same key are recycled by the same command. */
  key: string;
  /** The command that replaces them (one per workload). */
  command: string;
  /** What the command does to the workload, when that is worth knowing. */
  note?: string;
}

const POD_TEMPLATE_HASH = 'pod-template-hash';
const ROLLOUT_KINDS: ReadonlySet<string> = new Set(['StatefulSet', 'DaemonSet']);

export function recycleHint(pod: RecyclePod): Recycle {
  const ns = pod.namespace ? ` -n ${pod.namespace}` : '';
  const owner = pod.ownerReferences?.find((o) => o.controller === true);
  const deletePod = (note?: string): Recycle => ({ key: `pod/${pod.name}`, command: `kubectl delete pod ${pod.name}${ns}`, note });
  if (owner === undefined) return deletePod('no controller re-creates it: apply its manifest again');
  const group = apiGroup(owner.apiVersion);

  if (group === 'apps' && owner.kind === 'ReplicaSet') {
    const deployment = deploymentOf(owner.name, pod.labels?.[POD_TEMPLATE_HASH]);
    if (deployment === undefined) return deletePod('its ReplicaSet re-creates it');
    return rollout('deployment', deployment, ns);
  }
  if (group === 'apps' && ROLLOUT_KINDS.has(owner.kind)) return rollout(owner.kind.toLowerCase(), owner.name, ns);
  if (group === 'batch' && owner.kind === 'Job') {
    return deletePod(`Job ${owner.name}'s next pod gets the new sidecar; deleting this one now counts as a failed attempt`);
  }

  if (group === SANDBOX_GROUP && owner.kind === 'Sandbox') {
    const pool = pod.labels?.[SANDBOX_LABELS.warmPool];
    if (pool !== undefined && pool !== '') {
      // Unclaimed warm sandboxes: the pool label leaves the Sandbox once a claim adopts it, so the
      // selector never reaches a claimed (in-use) sandbox. The pool creates fresh ones.
      return {
        key: `warm-pool/${pool}`,
        command: `kubectl delete sandbox${ns} -l ${SANDBOX_LABELS.warmPool}=${pool}`,
        note: 'unclaimed warm-pool sandboxes: their SandboxWarmPool replaces them',
      };
    }
    return deletePod(`Sandbox ${owner.name} re-creates it; the session in it restarts (its volumeClaimTemplates volumes stay)`);
  }
  return deletePod(`its ${owner.kind} ${owner.name} decides whether it comes back`);
}

function rollout(kind: string, name: string, ns: string): Recycle {
  return { key: `${kind}/${name}`, command: `kubectl rollout restart ${kind}/${name}${ns}` };
}

/** A Deployment's ReplicaSet is named `<deployment>-<pod-template-hash>`. */
function deploymentOf(replicaSet: string, hash: string | undefined): string | undefined {
  if (hash === undefined || hash === '' || !replicaSet.endsWith(`-${hash}`)) return undefined;
  return replicaSet.slice(0, -hash.length - 1);
}

/** One entry per command, with the pods it recycles, in a stable order (by command). */
export function groupRecycles(pods: readonly RecyclePod[]): Array<Recycle & { pods: string[] }> {
  const groups = new Map<string, Recycle & { pods: string[] }>();
  for (const pod of pods) {
    const hint = recycleHint(pod);
    const g = groups.get(hint.key) ?? { ...hint, pods: [] };
    g.pods.push(pod.name);
    groups.set(hint.key, g);
  }
  return [...groups.values()].sort((a, b) => a.command.localeCompare(b.command));
}
