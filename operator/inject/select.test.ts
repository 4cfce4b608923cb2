import type { AccessPolicy, LabelSelector } from '../../common/policy/types';
import { selectingPolicies } from './select';

const labels = { app: 'support-agent', tier: 'backend', 'app.kubernetes.io/version': '1.4.2' };

describe('selectingPolicies', () => {
  const policy = (name: string, namespace: string, podSelector?: LabelSelector): AccessPolicy => ({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name, namespace },
    spec: { podSelector, targets: [] },
  });

  it('keeps the policies of the pod namespace that select it, sorted by name', () => {
    const all = [
      policy('zeta', 'agents', {}),
      policy('alpha', 'agents', { matchLabels: { app: 'support-agent' } }),
      policy('other-ns', 'staging', {}),
      policy('no-selector', 'agents'),
      policy('miss', 'agents', { matchLabels: { app: 'x' } }),
    ];
    expect(selectingPolicies(all, 'agents', labels).map((p) => p.metadata.name)).toEqual(['alpha', 'zeta']);
  });
});
