// agent-sandbox pods through the injector: the pods its Sandbox controller creates (a cold claim's
// and a warm pool's, operator/inject/testdata/fixtures/sandbox-*.yaml) get the sidecar with the
// AccessPolicy of examples/agent-sandbox, keep everything agent-sandbox relies on (its labels,
// annotations, owner), and stay valid Pods; `warden inject` handles Sandbox and SandboxTemplate.
import fs from 'node:fs';
import path from 'node:path';
import { applyPatch, deepClone } from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import YAML from 'yaml';
import { ANNOTATIONS, LOCKDOWN_CONTAINER, PATHS, SIDECAR_CONTAINER } from '../../common/k8s/names';
import { parsePolicyYaml } from '../../common/policy/load';
import { findRepoRoot } from '../../common/policy/schema';
import type { AccessPolicy } from '../../common/policy/types';
import { fixture, OPTED_IN, testConfig } from '../../test/support/operator/inject-fixtures';
import { apiGroup, SANDBOX_LABELS } from './agent-sandbox';
import { postgresUrl } from './app-env';
import type { Container, Pod, PodTemplate } from './k8s-types';
import { injectPod, type InjectContext, type InjectResult } from './mutate';
import { podTemplateOf, podTemplatePath, withPodTemplate } from './workloads';

const EXAMPLE = path.join(findRepoRoot(), 'examples', 'agent-sandbox');
const readExample = (file: string): Record<string, unknown> =>
  YAML.parse(fs.readFileSync(path.join(EXAMPLE, file), 'utf8')) as Record<string, unknown>;

function examplePolicy(): AccessPolicy {
  const [doc] = parsePolicyYaml(fs.readFileSync(path.join(EXAMPLE, 'policy.yaml'), 'utf8'), 'policy.yaml');
  if (doc?.status !== 'valid') throw new Error(`examples/agent-sandbox/policy.yaml: ${JSON.stringify(doc)}`);
  return doc.policy;
}

const policy = examplePolicy();
const ctx = (over: Partial<InjectContext> = {}): InjectContext => ({
  namespace: 'sandboxes',
  namespaceLabels: OPTED_IN,
  policies: [policy],
  config: testConfig(),
  ...over,
});

function injected(result: InjectResult): Extract<InjectResult, { outcome: 'injected' }> {
  if (result.outcome !== 'injected') throw new Error(`expected injection, got ${result.outcome}: ${result.reason}`);
  return result;
}

const sandboxPods: Array<[string, string]> = [
  ['cold pod of a SandboxClaim', 'sandbox-claim-pod.yaml'],
  ['warm pod of a SandboxWarmPool', 'sandbox-warm-pod.yaml'],
];
const agent = (pod: Pod): Container => pod.spec!.containers.find((c) => c.name === 'agent')!;

describe('agent-sandbox pods, as its controller creates them', () => {
  it.each(sandboxPods)('%s: made from the example SandboxTemplate (the fixture cannot drift from it)', (_name, file) => {
    const pod = fixture<Pod>(file);
    const template = podTemplateOf(readExample('sandbox-template.yaml'))!;
    for (const [k, v] of Object.entries(template.metadata!.labels!)) expect(pod.metadata!.labels![k]).toBe(v);
    const { env: _claimEnv, ...container } = agent(pod);
    expect(container).toEqual(template.spec!.containers[0]);
    expect(pod.spec!.serviceAccountName).toBe(template.spec!.serviceAccountName);
    expect(pod.metadata!.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'Sandbox', name: pod.metadata!.name, controller: true }),
    ]);
    expect(apiGroup(pod.metadata!.ownerReferences![0].apiVersion)).toBe('agents.x-k8s.io');
    expect(pod.metadata!.labels![SANDBOX_LABELS.nameHash]).toMatch(/^[0-9a-f]{8}$/);
  });

  it.each(sandboxPods)('%s: injected; the patch applies, the result is a valid Pod, agent-sandbox metadata untouched', (_name, file) => {
    const pod = fixture<Pod>(file);
    const r = injected(injectPod(pod, ctx()));
    expect(r.policy.metadata.name).toBe('code-agent');
    const out = applyPatch(deepClone(pod), deepClone(r.patch), true, false).newDocument as Pod;
    expect(out).toEqual(r.pod);
    new PodModel(out as never).validate();

    // What agent-sandbox reads back (its name-hash index, pool and template labels, its owner) is unchanged.
    expect(out.metadata!.labels).toEqual(pod.metadata!.labels);
    expect(out.metadata!.ownerReferences).toEqual(pod.metadata!.ownerReferences);
    expect(out.metadata!.name).toBe(pod.metadata!.name);
    for (const [k, v] of Object.entries(pod.metadata!.annotations ?? {})) expect(out.metadata!.annotations![k]).toBe(v);
    const touched = r.patch.map((op) => op.path).filter((p) => p.startsWith('/metadata'));
    expect(touched.every((p) => p === '/metadata/annotations' || p.startsWith('/metadata/annotations/agentwarden.io'))).toBe(true);

    // The policy asks for lockdown: the sandbox's container reaches only the sidecar (and DNS).
    expect(out.spec!.initContainers!.map((c) => c.name)).toEqual([LOCKDOWN_CONTAINER, SIDECAR_CONTAINER]);
    // DATABASE_URL points at the sidecar, whatever the claim put there, and appears once.
    const env = agent(out).env ?? [];
    expect(env.filter((e) => e.name === 'DATABASE_URL')).toEqual([{ name: 'DATABASE_URL', value: postgresUrl(15432, 'crm') }]);
  });

  it.each(sandboxPods)(
    '%s: with automountServiceAccountToken false, only the sidecar gets a token, and no credential reaches the agent',
    (_n, file) => {
      const out = injected(injectPod(fixture<Pod>(file), ctx())).pod;
      expect(out.spec!.automountServiceAccountToken).toBe(false);
      const sidecar = out.spec!.initContainers!.find((c) => c.name === SIDECAR_CONTAINER)!;
      const tokenMount = sidecar.volumeMounts!.find((m) => m.mountPath === PATHS.tokenDir)!;
      const tokenVolume = out.spec!.volumes!.find((v) => v.name === tokenMount.name)!;
      expect(JSON.stringify(tokenVolume)).toContain('serviceAccountToken');
      const credentialVolumes = new Set(
        out.spec!.volumes!.filter((v) => v.secret !== undefined || v.projected !== undefined).map((v) => v.name),
      );
      expect(credentialVolumes.size).toBeGreaterThan(1);
      for (const m of agent(out).volumeMounts ?? []) expect(credentialVolumes.has(m.name)).toBe(false);
      expect(JSON.stringify(agent(out).env ?? [])).not.toContain('secretKeyRef');
    },
  );

  it('under lockdown, a template whose container could step through the fence is refused, naming it', () => {
    const pod = fixture<Pod>('sandbox-warm-pod.yaml');
    delete agent(pod).securityContext; // root, with its default capabilities
    expect(injectPod(pod, ctx())).toEqual({ outcome: 'refused', reason: expect.stringContaining('agent') });
  });

  it('a policy that selects only agent-sandbox labels would follow a warm pod out of its pool: the template label is the one to select', () => {
    // The pool label is removed from the pod once a claim adopts it; the template's label stays.
    const warm = fixture<Pod>('sandbox-warm-pod.yaml');
    const claimed = structuredClone(warm);
    delete claimed.metadata!.labels![SANDBOX_LABELS.warmPool];
    for (const pod of [warm, claimed]) expect(injectPod(pod, ctx()).outcome).toBe('injected');
  });

  it('pods of a namespace that is not opted in, or that no policy selects, are left alone', () => {
    expect(injectPod(fixture<Pod>('sandbox-warm-pod.yaml'), ctx({ namespaceLabels: {} })).outcome).toBe('skipped');
    const other = fixture<Pod>('sandbox-warm-pod.yaml');
    other.metadata!.labels!['app.kubernetes.io/name'] = 'python-runtime';
    expect(injectPod(other, ctx())).toEqual({ outcome: 'skipped', reason: 'no AccessPolicy in namespace sandboxes selects this pod' });
  });
});

describe('what a SandboxClaim can put on the pod does not get it out of the policy', () => {
  // additionalPodMetadata: labels only in allowed domains (sandbox.users.io by default), but
  // annotations in any domain except kubernetes.io, k8s.io and agents.x-k8s.io, merged into the
  // pod at creation (cold start) or onto the adopted warm pod afterwards.
  const claimed = (annotations: Record<string, string>): Pod => {
    const pod = fixture<Pod>('sandbox-claim-pod.yaml');
    pod.metadata!.annotations = { ...pod.metadata!.annotations, ...annotations };
    return pod;
  };

  it('a forged agentwarden.io/injected annotation does not skip injection, and is overwritten', () => {
    const forged = JSON.stringify({ version: 1, policy: { namespace: 'sandboxes', name: 'code-agent' } });
    const r = injected(injectPod(claimed({ [ANNOTATIONS.injected]: forged, [ANNOTATIONS.configHash]: '0000' }), ctx()));
    expect(r.pod.spec!.initContainers!.map((c) => c.name)).toContain(SIDECAR_CONTAINER);
    expect(r.pod.metadata!.annotations![ANNOTATIONS.injected]).not.toBe(forged);
    expect(JSON.parse(r.pod.metadata!.annotations![ANNOTATIONS.injected])).toMatchObject({ lockdown: true, image: testConfig().image });
    expect(r.pod.metadata!.annotations![ANNOTATIONS.configHash]).not.toBe('0000');
  });

  it('agentwarden.io/lockdown "false" does not turn off the lockdown the policy asks for', () => {
    const r = injected(injectPod(claimed({ [ANNOTATIONS.lockdown]: 'false' }), ctx()));
    expect(r.pod.spec!.initContainers![0].name).toBe(LOCKDOWN_CONTAINER);
  });

  it("agentwarden.io/exclude-containers: the container keeps the claim's env, and stays fenced and without credentials", () => {
    const pod = claimed({ [ANNOTATIONS.excludeContainers]: 'agent' });
    const r = injected(injectPod(pod, ctx()));
    expect(r.pod.spec!.initContainers!.map((c) => c.name)).toEqual([LOCKDOWN_CONTAINER, SIDECAR_CONTAINER]);
    // the claim's own DATABASE_URL (straight to the database) stays, which lockdown refuses to let out, with no password in it
    expect(agent(r.pod).env).toEqual(agent(pod).env);
    expect(JSON.stringify(agent(r.pod))).not.toMatch(/secretKeyRef|warden-secret|password/);
    expect(r.warnings.join('\n')).toContain('excluded by agentwarden.io/exclude-containers');
  });

  it('a malformed sidecar resource annotation refuses the pod (its own sandbox only), never injects it half', () => {
    expect(injectPod(claimed({ [ANNOTATIONS.memoryLimit]: 'lots' }), ctx())).toEqual({
      outcome: 'refused',
      reason: expect.stringContaining(ANNOTATIONS.memoryLimit),
    });
  });
});

describe('warden inject on agent-sandbox objects', () => {
  it('finds the pod template of a Sandbox and a SandboxTemplate, and of nothing else from agent-sandbox', () => {
    expect(podTemplatePath('Sandbox', 'agents.x-k8s.io/v1beta1')).toEqual(['spec', 'podTemplate']);
    expect(podTemplatePath('Sandbox', 'agents.x-k8s.io/v1alpha1')).toEqual(['spec', 'podTemplate']);
    expect(podTemplatePath('SandboxTemplate', 'extensions.agents.x-k8s.io/v1beta1')).toEqual(['spec', 'podTemplate']);
    // Another project's kind of the same name, and the kinds that only name a template.
    expect(podTemplatePath('Sandbox', 'example.com/v1')).toBeUndefined();
    expect(podTemplatePath('Sandbox')).toBeUndefined();
    expect(podTemplatePath('SandboxTemplate', 'agents.x-k8s.io/v1beta1')).toBeUndefined();
    expect(podTemplatePath('SandboxWarmPool', 'extensions.agents.x-k8s.io/v1beta1')).toBeUndefined();
    expect(podTemplatePath('SandboxClaim', 'extensions.agents.x-k8s.io/v1beta1')).toBeUndefined();
    expect(podTemplateOf(readExample('warm-pool.yaml'))).toBeUndefined();
  });

  it('an injected SandboxTemplate makes pods the webhook then leaves alone (injection is idempotent)', () => {
    const template = readExample('sandbox-template.yaml');
    const r = injected(injectPod(podTemplateOf(template) as Pod, ctx()));
    const out = withPodTemplate(template, r.pod as PodTemplate);
    expect(out.spec).toMatchObject({ networkPolicy: (template.spec as Record<string, unknown>).networkPolicy });
    // The pod agent-sandbox then creates from it carries the sidecar already.
    const pod: Pod = { apiVersion: 'v1', kind: 'Pod', ...(podTemplateOf(out) as PodTemplate) };
    const again = injectPod(pod, ctx());
    expect(again.outcome).toBe('skipped');
    expect(pod.metadata!.annotations![ANNOTATIONS.injected]).toBeDefined();
  });
});
