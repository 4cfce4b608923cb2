// The Kubernetes object shapes the controller reads and writes: only the fields it uses. Metadata
// and conditions are the shared shapes from operator/inject/k8s-types.ts.
import type { Condition, ObjectMeta as BaseObjectMeta } from '../inject/k8s-types';

export type { Condition };

/** Every object the controller lists or watches has a name. */
export interface ObjectMeta extends BaseObjectMeta {
  name: string;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface PolicyStatus {
  observedGeneration?: number;
  targetCount?: number;
  governedPods?: number;
  outdatedPods?: string[];
  outdatedPodCount?: number;
  conditions?: Condition[];
}

/** An AccessPolicy as the API server returns it: the spec is unvalidated until reconcile checks it. */
export interface PolicyObject extends KubeObject {
  spec?: unknown;
  status?: PolicyStatus;
}

export interface PodObject extends KubeObject {
  spec?: { containers?: Array<{ name: string }>; initContainers?: Array<{ name: string }> };
  status?: { phase?: string };
}

export interface ConfigMapObject extends KubeObject {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  data: Record<string, string>;
}

export interface ObjectReference {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
}

/** An Event to record about an object (type and reason are CamelCase, as kubectl shows them). */
export interface EventSpec {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  involvedObject: ObjectReference;
}
