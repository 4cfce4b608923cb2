// Red team, issue 14 (owners: inject, sandbox). A SandboxClaim's additionalPodMetadata annotations
// may be in any domain but kubernetes.io, k8s.io and agents.x-k8s.io (docs/agent-sandbox.md), so
// the claim's author, whom the docs treat as unable to take the pod out of the policy, can write
// agentwarden.io/exclude-containers. Excluding the agent container leaves its env "as written": a
// template that, like operator/inject/testdata/fixtures/langchain-deployment.yaml, still carries
// DATABASE_URL (or OPENAI_API_KEY) from a secretKeyRef, relying on injection to replace it, then
// hands the real credential to the agent. The claim author thus undoes what the template author
// and the policy arranged.
import { ANNOTATIONS } from '../../common/k8s/names';
import { fixture, OPTED_IN, testConfig } from '../../test/support/operator/inject-fixtures';
import { parsePolicyYaml } from '../../common/policy/load';
import type { Container, Pod } from './k8s-types';
import { injectPod } from './mutate';

const POLICY = `
apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: code-agent, namespace: sandboxes}
spec:
  podSelector:
    matchLabels: {app.kubernetes.io/name: code-agent}
  targets:
    - name: crm
      postgres: {host: crm-db.crm.svc, database: crm, credentialsSecret: crm-db, listenPort: 15432}
      env: DATABASE_URL
`;

function policy() {
  const [doc] = parsePolicyYaml(POLICY, 'policy.yaml');
  if (doc?.status !== 'valid') throw new Error(JSON.stringify(doc));
  return doc.policy;
}

const secretRefs = (c: Container): string[] =>
  (c.env ?? []).filter((e) => (e.valueFrom as { secretKeyRef?: unknown } | undefined)?.secretKeyRef !== undefined).map((e) => e.name);

describe('red team 14: what a SandboxClaim annotation can undo', () => {
  it('RT14-07 a claim excluding the agent container gets it the Secret that injection would have replaced', () => {
    const pod = fixture<Pod>('sandbox-claim-pod.yaml');
    const agent = pod.spec!.containers[0];
    // The template's author wrote the credential the usual way; injection replaces DATABASE_URL.
    agent.env = [{ name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'crm-db', key: 'url' } } }];
    // The claim's additionalPodMetadata, merged into the cold-start pod by agent-sandbox.
    pod.metadata!.annotations = { ...pod.metadata!.annotations, [ANNOTATIONS.excludeContainers]: 'agent' };
    const result = injectPod(pod, { namespace: 'sandboxes', namespaceLabels: OPTED_IN, policies: [policy()], config: testConfig() });
    if (result.outcome !== 'injected') return; // refusing the pod is a fix too
    expect(secretRefs(result.pod.spec!.containers[0])).toEqual([]);
  });
});
