import YAML from 'yaml';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES_DIR } from '../../test/support/operator/inject-fixtures';
import type { Pod } from '../inject/k8s-types';
import { groupRecycles, recycleHint, type RecyclePod } from './recycle';

const owned = (name: string, apiVersion: string, kind: string, owner: string, labels: Record<string, string> = {}): RecyclePod => ({
  name,
  namespace: 'agents',
  labels,
  ownerReferences: [{ apiVersion, kind, name: owner, uid: `uid-${owner}`, controller: true }],
});
const sandboxPod = (file: string): RecyclePod => {
  const pod = YAML.parse(fs.readFileSync(path.join(FIXTURES_DIR, file), 'utf8')) as Pod;
  return { ...pod.metadata!, name: pod.metadata!.name! };
};

describe('recycleHint: how to replace a pod whose sidecar is outdated', () => {
  it('a Deployment is restarted by a rollout, named from its ReplicaSet and pod-template-hash', () => {
    const pod = owned('crm-agent-5f7b9c6d4-abcde', 'apps/v1', 'ReplicaSet', 'crm-agent-5f7b9c6d4', { 'pod-template-hash': '5f7b9c6d4' });
    expect(recycleHint(pod)).toEqual({ key: 'deployment/crm-agent', command: 'kubectl rollout restart deployment/crm-agent -n agents' });
  });

  it('a ReplicaSet of its own (no matching pod-template-hash) gets the pod deleted', () => {
    const pod = owned('rs-only-x1', 'apps/v1', 'ReplicaSet', 'rs-only', { 'pod-template-hash': 'zzz' });
    expect(recycleHint(pod).command).toBe('kubectl delete pod rs-only-x1 -n agents');
  });

  it.each([
    ['StatefulSet', 'statefulset/db'],
    ['DaemonSet', 'daemonset/db'],
  ])('a %s is restarted by a rollout', (kind, target) => {
    expect(recycleHint(owned('db-0', 'apps/v1', kind, 'db')).command).toBe(`kubectl rollout restart ${target} -n agents`);
  });

  it('a Job pod: delete it, and say what that costs', () => {
    const hint = recycleHint(owned('nightly-x', 'batch/v1', 'Job', 'nightly'));
    expect(hint.command).toBe('kubectl delete pod nightly-x -n agents');
    expect(hint.note).toContain('failed attempt');
  });

  it("an unclaimed warm-pool sandbox: delete the pool's unclaimed Sandboxes by label, the pool replaces them", () => {
    expect(recycleHint(sandboxPod('sandbox-warm-pod.yaml'))).toEqual({
      key: 'warm-pool/2fd415a8',
      command: 'kubectl delete sandbox -n sandboxes -l agents.x-k8s.io/warm-pool-sandbox=2fd415a8',
      note: expect.stringContaining('SandboxWarmPool replaces them'),
    });
  });

  it('a claimed (or standalone) Sandbox: delete the pod, its Sandbox re-creates it, and the session restarts', () => {
    const hint = recycleHint(sandboxPod('sandbox-claim-pod.yaml'));
    expect(hint.command).toBe('kubectl delete pod alice-session -n sandboxes');
    expect(hint.note).toMatch(/Sandbox alice-session re-creates it; the session in it restarts/);
  });

  it('the agent-sandbox rule needs the agent-sandbox group: a Sandbox kind from elsewhere is not trusted to come back', () => {
    const pod = owned('x', 'example.com/v1', 'Sandbox', 'x', { 'agents.x-k8s.io/warm-pool-sandbox': 'aaaa' });
    expect(recycleHint(pod)).toEqual({
      key: 'pod/x',
      command: 'kubectl delete pod x -n agents',
      note: 'its Sandbox x decides whether it comes back',
    });
  });

  it('a pod without a controller is deleted and applied again; non-controller owners do not count', () => {
    const bare: RecyclePod = {
      name: 'debug',
      namespace: 'agents',
      ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'n', uid: 'u' }],
    };
    expect(recycleHint(bare)).toMatchObject({
      command: 'kubectl delete pod debug -n agents',
      note: expect.stringContaining('apply its manifest again'),
    });
  });

  it('groups pods by command, stably', () => {
    const rs = (n: string): RecyclePod => owned(`web-abc-${n}`, 'apps/v1', 'ReplicaSet', 'web-abc', { 'pod-template-hash': 'abc' });
    const warm = sandboxPod('sandbox-warm-pod.yaml');
    const warm2 = { ...warm, name: 'code-agent-q9z8w' };
    const groups = groupRecycles([rs('1'), warm, rs('2'), warm2, sandboxPod('sandbox-claim-pod.yaml')]);
    expect(groups.map((g) => [g.command, g.pods])).toEqual([
      ['kubectl delete pod alice-session -n sandboxes', ['alice-session']],
      ['kubectl delete sandbox -n sandboxes -l agents.x-k8s.io/warm-pool-sandbox=2fd415a8', ['code-agent-x7k2p', 'code-agent-q9z8w']],
      ['kubectl rollout restart deployment/web -n agents', ['web-abc-1', 'web-abc-2']],
    ]);
  });
});
