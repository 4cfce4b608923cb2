// Mutating admission for Pod CREATE: decides with injectPod and answers with its patch. The handler
// never throws. A skip is allowed without a patch; a refusal or an internal error in an opted-in
// namespace is denied (an agent must not start unguarded there), and allowed elsewhere.
import { INJECTION_ENABLED, INJECTION_LABEL } from '../../common/k8s/names';
import { silentLogger, type Logger } from '../../common/log';
import type { AccessPolicy } from '../../common/policy/types';
import type { InjectorConfig } from '../inject/config';
import type { Pod } from '../inject/k8s-types';
import { injectPod } from '../inject/mutate';
import { namespaceExemption } from '../inject/predicates';
import type { AdmissionHandler, AdmissionRequest, AdmissionResponse, AdmissionReview } from './types';

export interface PodMutatorContext {
  /** The current AccessPolicies of every namespace (the informer's cache). */
  policies(): AccessPolicy[];
  /** A namespace's labels; undefined when the namespace is not known (yet). */
  namespaceLabels(namespace: string): Record<string, string> | undefined;
  config(): InjectorConfig;
  log?: Logger;
}

export function createPodMutator(ctx: PodMutatorContext): AdmissionHandler {
  const log = ctx.log ?? silentLogger;
  return (review: AdmissionReview): AdmissionResponse => mutatePodReview(review, ctx, log);
}

function mutatePodReview(review: AdmissionReview, ctx: PodMutatorContext, log: Logger): AdmissionResponse {
  const req = review.request;
  if (!req) return { uid: '', allowed: false, status: { code: 400, reason: 'BadRequest', message: 'AdmissionReview has no request' } };
  const uid = req.uid;
  if (!isPodCreate(req)) return { uid, allowed: true };
  const pod = req.object as Pod | null | undefined;
  const namespace = req.namespace || pod?.metadata?.namespace || '';
  const who = { namespace, pod: pod?.metadata?.name ?? (pod?.metadata?.generateName ? `${pod.metadata.generateName}*` : '') };
  let nsLabels: Record<string, string> | undefined;
  try {
    nsLabels = ctx.namespaceLabels(namespace);
    const config = ctx.config();
    // The API server only calls this webhook for opted-in namespaces; one the cache has not seen yet
    // (just created) is most likely opted in too. Deny: the ReplicaSet or Job controller retries.
    if (nsLabels === undefined && namespaceExemption(namespace, config) === undefined)
      return deny(
        uid,
        503,
        'ServiceUnavailable',
        `Agent Warden: namespace ${JSON.stringify(namespace)} is not in the operator's cache yet; retry shortly`,
      );
    if (!pod || typeof pod !== 'object') return deny(uid, 400, 'BadRequest', 'AdmissionReview request.object is not a Pod');
    const result = injectPod(pod, { namespace, namespaceLabels: nsLabels, policies: ctx.policies(), config });
    switch (result.outcome) {
      case 'skipped':
        log.info('pod not injected', { ...who, reason: result.reason });
        return { uid, allowed: true, auditAnnotations: { skipped: result.reason } };
      case 'refused':
        log.warn('pod refused', { ...who, reason: result.reason });
        return deny(uid, 403, 'Forbidden', `Agent Warden: ${result.reason}`);
      case 'injected': {
        const policy = `${result.policy.metadata.namespace ?? namespace}/${result.policy.metadata.name}`;
        log.info('pod injected', { ...who, policy, operations: result.patch.length });
        return {
          uid,
          allowed: true,
          patchType: 'JSONPatch',
          patch: Buffer.from(JSON.stringify(result.patch)).toString('base64'),
          auditAnnotations: { policy },
          ...(result.warnings.length > 0 ? { warnings: result.warnings } : {}),
        };
      }
    }
  } catch (err) {
    const message = (err as Error)?.message ?? String(err);
    log.error('injection failed', { ...who, error: message });
    // Fail closed where injection was asked for (or cannot be ruled out); elsewhere an injector bug must not block pods.
    if (nsLabels === undefined || nsLabels[INJECTION_LABEL] === INJECTION_ENABLED)
      return deny(uid, 500, 'InternalError', `Agent Warden could not inject the sidecar: ${message}`);
    return { uid, allowed: true, warnings: [`Agent Warden injection failed: ${message}`] };
  }
}

function isPodCreate(req: AdmissionRequest): boolean {
  const kind = req.kind?.kind;
  const resource = req.resource?.resource;
  return req.operation === 'CREATE' && !req.subResource && (kind === 'Pod' || resource === 'pods');
}

function deny(uid: string, code: number, reason: string, message: string): AdmissionResponse {
  return { uid, allowed: false, status: { code, reason, message } };
}
