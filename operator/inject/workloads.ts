// Where a workload keeps its pod template, so `warden inject` can inject Deployments, Jobs, agent-
// sandbox Sandboxes and SandboxTemplates and the rest exactly as the webhook will inject the pods
// they create.
import { apiGroup, SANDBOX_EXTENSIONS_GROUP, SANDBOX_GROUP } from './agent-sandbox';
import type { PodTemplate } from './k8s-types';

const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

/**
 * Custom resources with a pod template, by kind and the API group that must go with it (another
 * project's kind called Sandbox is left alone). A SandboxWarmPool or SandboxClaim only names a
 * SandboxTemplate, so injecting the template covers the pods made from it.
 */
const CUSTOM_TEMPLATE_PATHS: Readonly<Record<string, { group: string; path: readonly string[] }>> = {
  Sandbox: { group: SANDBOX_GROUP, path: ['spec', 'podTemplate'] },
  SandboxTemplate: { group: SANDBOX_EXTENSIONS_GROUP, path: ['spec', 'podTemplate'] },
};

/** The path from the object to its pod (template), or undefined for a kind that has none. */
export function podTemplatePath(kind: unknown, apiVersion?: unknown): readonly string[] | undefined {
  if (typeof kind !== 'string') return undefined;
  if (Object.prototype.hasOwnProperty.call(TEMPLATE_PATHS, kind)) return TEMPLATE_PATHS[kind];
  if (!Object.prototype.hasOwnProperty.call(CUSTOM_TEMPLATE_PATHS, kind)) return undefined;
  const custom = CUSTOM_TEMPLATE_PATHS[kind];
  return apiGroup(apiVersion) === custom.group ? custom.path : undefined;
}

/** The object's pod template (the object itself for a Pod), or undefined when it has none. */
export function podTemplateOf(obj: Record<string, unknown>): PodTemplate | undefined {
  const path = podTemplatePath(obj.kind, obj.apiVersion);
  if (path === undefined) return undefined;
  let node: unknown = obj;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node !== null && typeof node === 'object' && !Array.isArray(node) ? (node as PodTemplate) : undefined;
}

/** A copy of `obj` with its pod template replaced by `template` (for a Pod: the template's metadata and spec). */
export function withPodTemplate<T extends Record<string, unknown>>(obj: T, template: PodTemplate): T {
  const path = podTemplatePath(obj.kind, obj.apiVersion);
  if (path === undefined) throw new Error(`kind ${String(obj.kind)} has no pod template`);
  if (path.length === 0) return { ...obj, ...template };
  const copy = structuredClone(obj);
  let node = copy as Record<string, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>;
  node[path[path.length - 1]] = template;
  return copy;
}
