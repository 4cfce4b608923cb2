// AdmissionReview v1 requests as the API server sends them, for tests and benches: one builder
// instead of a hand-written envelope in every suite.
import type { AdmissionRequest, AdmissionReview, GroupVersionKind, GroupVersionResource, UserInfo } from '../../../operator/webhook/types';

/** The uid admissionReview() uses unless told otherwise (from the Kubernetes docs' example). */
export const REVIEW_UID = '705ab4f5-6393-11e8-b7cc-42010a800002';

/** Who creates a Deployment's pods. */
export const REPLICASET_CONTROLLER: UserInfo = {
  username: 'system:serviceaccount:kube-system:replicaset-controller',
  groups: ['system:serviceaccounts', 'system:authenticated'],
};

/** request.kind and request.resource for objects of `apiVersion` (`v1`, `agentwarden.io/v1alpha1`). */
export function requestType(
  apiVersion: string,
  kind: string,
  resource: string,
): { kind: GroupVersionKind; resource: GroupVersionResource } {
  const slash = apiVersion.indexOf('/');
  const group = slash < 0 ? '' : apiVersion.slice(0, slash);
  const version = apiVersion.slice(slash + 1);
  return { kind: { group, version, kind }, resource: { group, version, resource } };
}

export const POD_TYPE = requestType('v1', 'Pod', 'pods');

/** An AdmissionReview around `request`; what it leaves out is a Pod CREATE by the ReplicaSet controller. */
export function admissionReview<T = unknown>(request: Partial<AdmissionRequest<T>> = {}): AdmissionReview<T> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: REVIEW_UID, ...POD_TYPE, operation: 'CREATE', userInfo: REPLICASET_CONTROLLER, ...request },
  };
}
