// The pod webhook as agent-sandbox's controller meets it: the AdmissionReview for a sandbox pod it
// creates (operator/inject/testdata/fixtures/sandbox-*.yaml), with the example's AccessPolicy.
import fs from 'node:fs';
import path from 'node:path';
import { applyPatch, type Operation } from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { SIDECAR_CONTAINER, ANNOTATIONS } from '../../common/k8s/names';
import { parsePolicyYaml } from '../../common/policy/load';
import { findRepoRoot } from '../../common/policy/schema';
import type { AccessPolicy } from '../../common/policy/types';
import { admissionReview, POD_TYPE } from '../../test/support/operator/admission-review';
import { fixture, OPTED_IN, testConfig } from '../../test/support/operator/inject-fixtures';
import type { Pod } from '../inject/k8s-types';
import { createPodMutator } from './pod-admission';
import type { AdmissionResponse, AdmissionReview } from './types';

const [doc] = parsePolicyYaml(
  fs.readFileSync(path.join(findRepoRoot(), 'examples', 'agent-sandbox', 'policy.yaml'), 'utf8'),
  'policy.yaml',
);
const policies: AccessPolicy[] = doc?.status === 'valid' ? [doc.policy] : [];

/** agent-sandbox's controller creates the pods under its own ServiceAccount (k8s/controller.yaml). */
const SANDBOX_CONTROLLER = {
  username: 'system:serviceaccount:agent-sandbox-system:agent-sandbox-controller',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:agent-sandbox-system', 'system:authenticated'],
};

function review(pod: Pod): AdmissionReview {
  return JSON.parse(
    JSON.stringify(
      admissionReview<Pod>({ ...POD_TYPE, name: pod.metadata!.name, namespace: 'sandboxes', object: pod, userInfo: SANDBOX_CONTROLLER }),
    ),
  ) as AdmissionReview;
}

const mutate = (
  namespaces: Record<string, Record<string, string>> = { sandboxes: OPTED_IN },
): ((r: AdmissionReview) => AdmissionResponse) => {
  const h = createPodMutator({ policies: () => policies, namespaceLabels: (ns) => namespaces[ns], config: () => testConfig() });
  return (r) => h(r) as AdmissionResponse;
};

describe('pod webhook, for pods agent-sandbox creates', () => {
  it.each(['sandbox-claim-pod.yaml', 'sandbox-warm-pod.yaml'])('%s: allowed with a patch that yields the injected, valid Pod', (file) => {
    expect(policies).toHaveLength(1);
    const pod = fixture<Pod>(file);
    const res = mutate()(review(pod));
    expect(res).toMatchObject({ allowed: true, patchType: 'JSONPatch', auditAnnotations: { policy: 'sandboxes/code-agent' } });
    const patch = JSON.parse(Buffer.from(res.patch!, 'base64').toString('utf8')) as Operation[];
    const out = applyPatch(structuredClone(pod), patch, true, false).newDocument as Pod;
    new PodModel(out as never).validate();
    expect(out.spec!.initContainers!.some((c) => c.name === SIDECAR_CONTAINER)).toBe(true);
    expect(out.metadata!.labels).toEqual(pod.metadata!.labels);
    if (file === 'sandbox-claim-pod.yaml')
      expect(res.warnings).toEqual([expect.stringContaining('container agent: DATABASE_URL replaced')]);
  });

  it("a claim's malformed sidecar annotation: denied, saying which, so agent-sandbox reports it and retries", () => {
    const pod = fixture<Pod>('sandbox-claim-pod.yaml');
    pod.metadata!.annotations![ANNOTATIONS.cpuLimit] = 'all of it';
    expect(mutate()(review(pod))).toMatchObject({
      allowed: false,
      status: { code: 403, message: expect.stringContaining(ANNOTATIONS.cpuLimit) },
    });
  });

  it('a namespace the operator has not seen yet: denied for now (503), never let through uninjected', () => {
    expect(mutate({})(review(fixture<Pod>('sandbox-warm-pod.yaml')))).toMatchObject({ allowed: false, status: { code: 503 } });
  });
});
