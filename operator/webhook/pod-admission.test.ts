import { applyPatch, type Operation } from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { createLogger } from '../../common/log';
import { ANNOTATIONS, SIDECAR_CONTAINER } from '../../common/k8s/names';
import { fixture, fixturePolicies, OPTED_IN, podFromWorkload, podReview, testConfig } from '../../test/support/operator/inject-fixtures';
import type { Pod } from '../inject/k8s-types';
import { createPodMutator, type PodMutatorContext } from './pod-admission';
import type { AdmissionResponse, AdmissionReview } from './types';

const policies = fixturePolicies();
const namespaces: Record<string, Record<string, string>> = { agents: OPTED_IN, default: { 'kubernetes.io/metadata.name': 'default' } };

function handler(over: Partial<PodMutatorContext> = {}, logLines: string[] = []): (review: AdmissionReview) => AdmissionResponse {
  const h = createPodMutator({
    policies: () => policies,
    namespaceLabels: (ns) => namespaces[ns],
    config: () => testConfig(),
    log: createLogger({}, 'debug', (line) => logLines.push(line)),
    ...over,
  });
  // Through JSON and back, as the HTTPS server will hand it over.
  return (review) => h(JSON.parse(JSON.stringify(review))) as AdmissionResponse;
}

function decodePatch(res: AdmissionResponse): Operation[] {
  expect(res.patchType).toBe('JSONPatch');
  return JSON.parse(Buffer.from(res.patch!, 'base64').toString('utf8')) as Operation[];
}

describe('pod mutating webhook', () => {
  it('injects a Deployment pod: the base64 patch applies to the original and yields a valid Pod', () => {
    const pod = podFromWorkload(fixture('langchain-deployment.yaml'));
    const logs: string[] = [];
    const res = handler({}, logs)(podReview(pod));
    expect(res).toMatchObject({
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      allowed: true,
      auditAnnotations: { policy: 'agents/support-agent' },
    });
    expect(res.warnings).toEqual([expect.stringContaining('container langserve: OPENAI_API_KEY, DATABASE_URL replaced')]);
    const out = applyPatch(structuredClone(pod), decodePatch(res), true, false).newDocument as Pod;
    new PodModel(out as never).validate();
    expect(out.spec!.initContainers![0]).toMatchObject({ name: SIDECAR_CONTAINER, restartPolicy: 'Always' });
    expect(out.metadata!.annotations![ANNOTATIONS.injected]).toBeDefined();
    expect(JSON.parse(logs[0])).toMatchObject({
      level: 'info',
      msg: 'pod injected',
      namespace: 'agents',
      pod: 'support-agent-5f7b9c6d4-*',
      policy: 'agents/support-agent',
    });
    // the log line names no credential and no env value
    expect(logs.join('\n')).not.toMatch(/secretKeyRef|postgresql:\/\//);
  });

  it('re-invoked on its own output (reinvocationPolicy: IfNeeded): allowed, no patch', () => {
    const pod = fixture<Pod>('agent-pod.yaml');
    const first = handler()(podReview(pod));
    const injected = applyPatch(structuredClone(pod), decodePatch(first), true, false).newDocument as Pod;
    const again = handler()(podReview(injected));
    expect(again).toEqual({
      uid: expect.any(String),
      allowed: true,
      auditAnnotations: { skipped: expect.stringContaining('already carries') },
    });
  });

  it.each<[string, () => Pod, string]>([
    ['hostNetwork pod', () => fixture<Pod>('hostnetwork-pod.yaml'), 'agents'],
    ['namespace not opted in', () => fixture<Pod>('agent-pod.yaml'), 'default'],
    ['unselected pod', () => ({ ...fixture<Pod>('agent-pod.yaml'), metadata: { name: 'web', labels: { app: 'web' } } }), 'agents'],
  ])('%s: allowed without a patch, reason logged', (_name, make, ns) => {
    const logs: string[] = [];
    const res = handler({}, logs)(podReview(make(), ns));
    expect(res.allowed).toBe(true);
    expect(res.patch).toBeUndefined();
    expect(res.auditAnnotations?.skipped).toBeTruthy();
    expect(JSON.parse(logs[0])).toMatchObject({ msg: 'pod not injected', reason: res.auditAnnotations!.skipped });
  });

  it('an Istio-injected pod is denied with the reason and the fix', () => {
    const res = handler()(podReview(fixture<Pod>('istio-pod.yaml')));
    expect(res.allowed).toBe(false);
    expect(res.status).toMatchObject({
      code: 403,
      reason: 'Forbidden',
      message: expect.stringMatching(/^Agent Warden: pod runs Istio \(it has Istio's istio-init container\), and .*sidecar.ports/),
    });
  });

  it('two policies selecting the pod: denied, naming both', () => {
    const extra = structuredClone(policies[0]);
    extra.metadata.name = 'support-agent-v2';
    const res = handler({ policies: () => [...policies, extra] })(podReview(fixture<Pod>('agent-pod.yaml')));
    expect(res.allowed).toBe(false);
    expect(res.status!.message).toContain('"support-agent" and "support-agent-v2"');
  });

  it('a namespace missing from the cache: denied so the controller retries, never admitted unguarded', () => {
    const res = handler()(podReview(fixture<Pod>('agent-pod.yaml'), 'brand-new'));
    expect(res).toMatchObject({
      allowed: false,
      status: { code: 503, message: expect.stringContaining('"brand-new" is not in the operator\'s cache yet') },
    });
  });

  it('never throws: an internal error denies in an opted-in namespace and allows (with a warning) elsewhere', () => {
    const broken = handler({
      policies: () => {
        throw new Error('informer not synced');
      },
    });
    expect(broken(podReview(fixture<Pod>('agent-pod.yaml'), 'agents'))).toMatchObject({
      allowed: false,
      status: { code: 500, message: 'Agent Warden could not inject the sidecar: informer not synced' },
    });
    expect(broken(podReview(fixture<Pod>('agent-pod.yaml'), 'default'))).toMatchObject({
      allowed: true,
      warnings: ['Agent Warden injection failed: informer not synced'],
    });
    const badConfig = handler({
      config: () => {
        throw new Error('image: must be set');
      },
    });
    expect(badConfig(podReview(fixture<Pod>('agent-pod.yaml'))).allowed).toBe(false);
  });

  it('only Pod CREATE is mutated; other operations pass untouched', () => {
    const pod = fixture<Pod>('agent-pod.yaml');
    expect(handler()(podReview(pod, 'agents', 'UPDATE'))).toEqual({ uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
    const eviction = podReview(pod);
    eviction.request!.subResource = 'ephemeralcontainers';
    expect(handler()(eviction)).toEqual({ uid: eviction.request!.uid, allowed: true });
  });

  it('a review without a request is refused, not thrown', () => {
    expect(handler()({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' })).toMatchObject({
      uid: '',
      allowed: false,
      status: { code: 400 },
    });
  });
});
