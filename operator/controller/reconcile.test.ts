import { ANNOTATIONS, MANAGED_BY, MANAGED_BY_LABEL, POLICY_CONFIGMAP_KEY, POLICY_LABEL } from '../../common/k8s/names';
import { parsePolicyYaml } from '../../common/policy/load';
import { condition, labelValue, MAX_LISTED_PODS, reconcilePolicy, type ReconcileInput } from './reconcile';
import { expectedHashFor, injectedPod, injectorConfig, plainPod, policyObject } from '../../test/support/operator/controller-fixtures';
import type { PodObject } from './types';

const NOW = new Date('2025-06-01T12:00:00.123Z');

function input(over: Partial<ReconcileInput> = {}): ReconcileInput {
  return {
    policy: policyObject(),
    pods: [],
    secrets: ['crm-db', 'openai'],
    otherPolicies: [],
    expectedHash: expectedHashFor(),
    now: NOW,
    ...over,
  };
}

describe('reconcilePolicy', () => {
  it('renders a valid policy into an owned ConfigMap the sidecar loader accepts, and reports Accepted/Ready True', () => {
    const policy = policyObject();
    const r = reconcilePolicy(input({ policy }));
    const cm = r.configMap!;
    expect(cm.metadata).toMatchObject({
      name: 'warden-policy-support-agent',
      namespace: 'agents',
      labels: { [POLICY_LABEL]: 'support-agent', [MANAGED_BY_LABEL]: MANAGED_BY },
      ownerReferences: [
        {
          apiVersion: 'agentwarden.io/v1alpha1',
          kind: 'AccessPolicy',
          name: 'support-agent',
          uid: policy.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    });
    // the real loader (what `warden sidecar --policy FILE` runs) accepts the rendered text
    const docs = parsePolicyYaml(cm.data[POLICY_CONFIGMAP_KEY], 'configmap');
    expect(docs).toHaveLength(1);
    expect(docs[0].status).toBe('valid');
    const loaded = docs[0].status === 'valid' ? docs[0].policy : undefined;
    expect(loaded?.metadata).toEqual({ name: 'support-agent', namespace: 'agents', generation: 3, uid: policy.metadata.uid });
    expect(loaded?.spec.targets.map((t) => t.name)).toEqual(['crm', 'openai']);
    expect(cm.data[POLICY_CONFIGMAP_KEY]).not.toContain('resourceVersion');

    expect(r.status).toMatchObject({ observedGeneration: 3, targetCount: 2, governedPods: 0, outdatedPods: [], outdatedPodCount: 0 });
    expect(r.status.conditions).toEqual([
      {
        type: 'Accepted',
        status: 'True',
        reason: 'Valid',
        message: expect.any(String),
        lastTransitionTime: '2025-06-01T12:00:00Z',
        observedGeneration: 3,
      },
      {
        type: 'Ready',
        status: 'True',
        reason: 'Rendered',
        message: 'rendered to ConfigMap warden-policy-support-agent',
        lastTransitionTime: '2025-06-01T12:00:00Z',
        observedGeneration: 3,
      },
    ]);
    expect(r.events).toEqual([]);
  });

  it('rejects an invalid policy with Accepted False naming the field, and leaves the ConfigMap alone', () => {
    const good = policyObject();
    const spec = structuredClone(good.spec) as { targets: Array<{ postgres?: Record<string, unknown> }>; defaultAction: string };
    delete spec.targets[0].postgres!.host;
    spec.defaultAction = 'block';
    const r = reconcilePolicy(input({ policy: policyObject({ spec, generation: 4 }) }));
    expect(r.configMap).toBeUndefined();
    const accepted = r.status.conditions!.find((c) => c.type === 'Accepted')!;
    expect(accepted).toMatchObject({ status: 'False', reason: 'InvalidSpec', observedGeneration: 4 });
    expect(accepted.message).toContain('spec.targets[0].postgres');
    expect(accepted.message).toContain('host');
    expect(accepted.message).toContain('spec.defaultAction');
    expect(r.status.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(r.status.observedGeneration).toBe(4);
    expect(r.events).toEqual([
      expect.objectContaining({
        type: 'Warning',
        reason: 'InvalidSpec',
        involvedObject: expect.objectContaining({ kind: 'AccessPolicy', name: 'support-agent' }),
      }),
    ]);
  });

  it('reports a missing Secret as Ready False and a Warning Event naming it and the field', () => {
    const r = reconcilePolicy(input({ secrets: ['crm-db'] }));
    expect(r.configMap).toBeDefined();
    expect(r.status.conditions!.find((c) => c.type === 'Accepted')?.status).toBe('True');
    const ready = r.status.conditions!.find((c) => c.type === 'Ready')!;
    expect(ready).toMatchObject({ status: 'False', reason: 'SecretMissing' });
    expect(ready.message).toContain('openai');
    expect(r.events).toEqual([
      {
        type: 'Warning',
        reason: 'SecretMissing',
        message: 'Secret "openai" referenced by spec.targets[1].http.credentialsSecret does not exist in namespace agents',
        involvedObject: {
          apiVersion: 'agentwarden.io/v1alpha1',
          kind: 'AccessPolicy',
          name: 'support-agent',
          namespace: 'agents',
          uid: policyObject().metadata.uid,
        },
      },
    ]);
  });

  it('a missing MCP credential Secret is reported with its field too', () => {
    const good = policyObject();
    const spec = structuredClone(good.spec) as { targets: unknown[] };
    spec.targets.push({ name: 'crm-tools', mcp: { url: 'https://tools.internal/mcp', credentialsSecret: 'crm-tools' } });
    const r = reconcilePolicy(input({ policy: policyObject({ spec }), secrets: ['crm-db', 'openai'] }));
    expect(r.status.conditions!.find((c) => c.type === 'Accepted')?.status).toBe('True');
    expect(r.status.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'SecretMissing' });
    expect(r.events).toEqual([
      expect.objectContaining({
        reason: 'SecretMissing',
        message: `Secret "crm-tools" referenced by spec.targets[${spec.targets.length - 1}].mcp.credentialsSecret does not exist in namespace agents`,
      }),
    ]);
  });

  it('warns on both policies when two select the same pod', () => {
    const a = policyObject();
    const b = policyObject({
      name: 'catch-all',
      uid: '11111111-2222-3333-4444-555555555555',
      spec: { ...(a.spec as object), podSelector: {} },
    });
    const pods = [plainPod('agent-1') as unknown as PodObject, plainPod('unrelated', { app: 'other' }) as unknown as PodObject];
    const ra = reconcilePolicy(input({ policy: a, pods, otherPolicies: [b] }));
    const rb = reconcilePolicy(input({ policy: b, pods, otherPolicies: [a] }));
    expect(ra.events.filter((e) => e.reason === 'OverlappingPolicies').map((e) => [e.involvedObject.name, e.message])).toEqual([
      ['support-agent', expect.stringContaining('AccessPolicy "catch-all" also selects pod(s) agent-1;')],
    ]);
    expect(rb.events.filter((e) => e.reason === 'OverlappingPolicies').map((e) => [e.involvedObject.name, e.message])).toEqual([
      ['catch-all', expect.stringContaining('AccessPolicy "support-agent" also selects pod(s) agent-1;')],
    ]);
  });

  it('counts governed pods and lists those injected with an older configuration (bounded)', () => {
    const policy = policyObject();
    const old = injectorConfig('ghcr.io/agent-warden/agent-warden:0.1.0');
    const current = [injectedPod('fresh-1', policy), injectedPod('fresh-2', policy)];
    const outdated = Array.from({ length: 25 }, (_, i) => injectedPod(`old-${String(i).padStart(2, '0')}`, policy, old));
    const finished = { ...injectedPod('done', policy, old), status: { phase: 'Succeeded' } };
    const notInjected = plainPod('plain') as unknown as PodObject;
    const r = reconcilePolicy(input({ policy, pods: [...current, ...outdated, finished, notInjected] }));
    expect(r.status.governedPods).toBe(27);
    expect(r.status.outdatedPodCount).toBe(25);
    expect(r.status.outdatedPods).toHaveLength(MAX_LISTED_PODS);
    expect(r.status.outdatedPods![0]).toBe('old-00');
    const ev = r.events.find((e) => e.reason === 'SidecarOutdated')!;
    expect(ev.type).toBe('Warning');
    expect(ev.message).toMatch(/^25 pod\(s\) run a sidecar injected with an older configuration/);
    expect(ev.message).toContain('and 5 more');
    // the hash on a fresh pod is exactly what the injector writes today
    expect(current[0].metadata.annotations![ANNOTATIONS.configHash]).toBe(expectedHashFor()(r.policy!));
  });

  it('says how to replace outdated pods, per workload: a rollout for a Deployment, the pool for warm sandboxes', () => {
    const policy = policyObject();
    const old = injectorConfig('ghcr.io/agent-warden/agent-warden:0.1.0');
    const withOwner = (pod: PodObject, labels: Record<string, string>, apiVersion: string, kind: string, owner: string): PodObject => ({
      ...pod,
      metadata: {
        ...pod.metadata,
        labels: { ...pod.metadata.labels, ...labels },
        ownerReferences: [{ apiVersion, kind, name: owner, uid: `uid-${owner}`, controller: true }],
      },
    });
    const pods = [
      withOwner(injectedPod('web-7d9-a', policy, old), { 'pod-template-hash': '7d9' }, 'apps/v1', 'ReplicaSet', 'web-7d9'),
      withOwner(
        injectedPod('pool-x1', policy, old),
        { 'agents.x-k8s.io/warm-pool-sandbox': '2fd415a8' },
        'agents.x-k8s.io/v1beta1',
        'Sandbox',
        'pool-x1',
      ),
      withOwner(
        injectedPod('pool-x2', policy, old),
        { 'agents.x-k8s.io/warm-pool-sandbox': '2fd415a8' },
        'agents.x-k8s.io/v1beta1',
        'Sandbox',
        'pool-x2',
      ),
    ];
    const r = reconcilePolicy(input({ policy, pods }));
    const ev = r.events.find((e) => e.reason === 'SidecarOutdated')!;
    expect(ev.message).toBe(
      '3 pod(s) run a sidecar injected with an older configuration and need replacing: pool-x1, pool-x2, web-7d9-a. To replace them: ' +
        'kubectl delete sandbox -n agents -l agents.x-k8s.io/warm-pool-sandbox=2fd415a8 (unclaimed warm-pool sandboxes: their SandboxWarmPool replaces them); ' +
        'kubectl rollout restart deployment/web -n agents',
    );
  });

  it('reports running pods it selects that have no sidecar (made before the policy), with how to replace them', () => {
    const policy = policyObject();
    const bare = (name: string, labels: Record<string, string> = { app: 'support-agent' }): PodObject => ({
      ...(plainPod(name, labels) as unknown as PodObject),
      status: { phase: 'Running' },
    });
    const warm = (name: string): PodObject => {
      const p = bare(name, { app: 'support-agent', 'agents.x-k8s.io/warm-pool-sandbox': '2fd415a8' });
      return {
        ...p,
        metadata: {
          ...p.metadata,
          ownerReferences: [{ apiVersion: 'agents.x-k8s.io/v1beta1', kind: 'Sandbox', name, uid: 'u', controller: true }],
        },
      };
    };
    const pods = [
      warm('pool-b'),
      warm('pool-a'),
      bare('debug'),
      injectedPod('guarded', policy),
      bare('opted-out', { app: 'support-agent', 'agentwarden.io/inject': 'false' }),
      bare('elsewhere', { app: 'other' }),
      { ...bare('done'), status: { phase: 'Succeeded' } },
    ];
    const r = reconcilePolicy(input({ policy, pods }));
    expect(r.events.filter((e) => e.reason === 'PodsWithoutSidecar').map((e) => [e.type, e.message])).toEqual([
      [
        'Warning',
        '3 pod(s) selected by this policy run without the Agent Warden sidecar (created before the policy, or before namespace agents was ' +
          'labelled agentwarden.io/injection=enabled): debug, pool-a, pool-b. To replace them: ' +
          'kubectl delete pod debug -n agents (no controller re-creates it: apply its manifest again); ' +
          'kubectl delete sandbox -n agents -l agents.x-k8s.io/warm-pool-sandbox=2fd415a8 (unclaimed warm-pool sandboxes: their SandboxWarmPool replaces them)',
      ],
    ]);
    // none once every selected pod has its sidecar
    expect(reconcilePolicy(input({ policy, pods: [injectedPod('guarded', policy)] })).events.map((e) => e.reason)).not.toContain(
      'PodsWithoutSidecar',
    );
  });

  it('keeps lastTransitionTime while a condition keeps its status, and moves it on a change', () => {
    const first = reconcilePolicy(input());
    const later = new Date('2025-06-02T00:00:00Z');
    const policy = { ...policyObject({ generation: 5 }), status: first.status };
    const second = reconcilePolicy(input({ policy, now: later }));
    expect(second.status.conditions!.map((c) => [c.type, c.lastTransitionTime, c.observedGeneration])).toEqual([
      ['Accepted', '2025-06-01T12:00:00Z', 5],
      ['Ready', '2025-06-01T12:00:00Z', 5],
    ]);
    const third = reconcilePolicy(input({ policy: { ...policy, status: second.status }, secrets: [], now: later }));
    expect(third.status.conditions!.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      lastTransitionTime: '2025-06-02T00:00:00Z',
    });
    expect(third.status.conditions!.find((c) => c.type === 'Accepted')?.lastTransitionTime).toBe('2025-06-01T12:00:00Z');
  });

  it('condition() and labelValue() follow the API conventions', () => {
    const prev = { conditions: [{ type: 'Ready', status: 'True' as const, reason: 'A', message: 'a', lastTransitionTime: 'T0' }] };
    expect(condition(prev, { type: 'Ready', status: 'True', reason: 'B', message: 'b' }, 'T1')).toMatchObject({
      reason: 'B',
      lastTransitionTime: 'T0',
    });
    expect(condition(prev, { type: 'Ready', status: 'False', reason: 'B', message: 'b' }, 'T1').lastTransitionTime).toBe('T1');
    const long = 'a'.repeat(100);
    expect(labelValue(long)).toHaveLength(63);
    expect(labelValue(long)).not.toBe(labelValue('a'.repeat(99)));
  });
});
