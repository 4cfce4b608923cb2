// The Kubernetes object shapes the operator reads and writes, as plain JSON (what an
// AdmissionReview or the API server carries): metav1 metadata, the LabelSelector AccessPolicies use,
// status conditions, and the subset of core/v1 Pod the injector touches. Everything else passes
// through untouched, hence the index signatures. The one place for these shapes: the controller and
// the approvals code import them from here.
export type { LabelSelector } from '../../common/policy/types';
export type { Condition, ObjectMeta, OwnerReference } from '../../common/k8s/meta';
import type { ObjectMeta } from '../../common/k8s/meta';

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Record<string, unknown>;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  [k: string]: unknown;
}

export interface ContainerPort {
  containerPort: number;
  name?: string;
  protocol?: string;
  hostPort?: number;
  [k: string]: unknown;
}

export interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  [k: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: Array<Record<string, unknown>>;
  volumeMounts?: VolumeMount[];
  ports?: ContainerPort[];
  restartPolicy?: string;
  securityContext?: SecurityContext;
  [k: string]: unknown;
}

export interface Volume {
  name: string;
  [k: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  hostNetwork?: boolean;
  serviceAccountName?: string;
  shareProcessNamespace?: boolean;
  securityContext?: SecurityContext;
  [k: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: PodSpec;
  [k: string]: unknown;
}

/** The part of a Pod a workload's template carries. */
export interface PodTemplate {
  metadata?: ObjectMeta;
  spec?: PodSpec;
  [k: string]: unknown;
}
