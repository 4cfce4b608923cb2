import { ANNOTATIONS } from '../../common/k8s/names';
import { OPTED_IN, testConfig } from '../../test/support/operator/inject-fixtures';
import type { Pod } from './k8s-types';
import { PREDICATES, skipReason, type PredicateInput } from './predicates';

const pod = (): Pod => ({ metadata: { name: 'a', labels: { app: 'x' } }, spec: { containers: [{ name: 'agent', image: 'x' }] } });
const input = (over: Partial<PredicateInput> = {}): PredicateInput => ({
  pod: pod(),
  namespace: 'agents',
  namespaceLabels: OPTED_IN,
  config: testConfig(),
  ...over,
});

describe('injection predicates', () => {
  it('an ordinary pod in an opted-in namespace passes every predicate', () => {
    expect(PREDICATES.map((p) => p.check(input()))).toEqual(PREDICATES.map(() => undefined));
    expect(skipReason(input())).toBeUndefined();
  });

  it('every predicate has a distinct name', () => {
    expect(new Set(PREDICATES.map((p) => p.name)).size).toBe(PREDICATES.length);
  });

  it.each<[string, Partial<PredicateInput>, string | undefined]>([
    ['operator namespace', { namespace: 'agent-warden' }, "namespace agent-warden is the operator's own namespace"],
    ['kube-public', { namespace: 'kube-public' }, 'namespace kube-public is a system namespace'],
    ['label missing', { namespaceLabels: {} }, 'namespace agents is not labelled agentwarden.io/injection=enabled'],
    [
      'label disabled',
      { namespaceLabels: { 'agentwarden.io/injection': 'disabled' } },
      'namespace agents is not labelled agentwarden.io/injection=enabled',
    ],
    ['unknown namespace', { namespaceLabels: undefined }, 'namespace agents is not labelled agentwarden.io/injection=enabled'],
    [
      'pod opt-out',
      { pod: { ...pod(), metadata: { labels: { 'agentwarden.io/inject': 'false' } } } },
      'pod is labelled agentwarden.io/inject=false',
    ],
    ['hostNetwork', { pod: { ...pod(), spec: { hostNetwork: true, containers: [] } } }, 'pod uses hostNetwork'],
    [
      'annotation and sidecar present',
      {
        pod: { ...pod(), metadata: { annotations: { [ANNOTATIONS.injected]: '{}' } }, spec: { containers: [{ name: 'warden-sidecar' }] } },
      },
      'pod already carries the agentwarden.io/injected annotation',
    ],
    // Text in the metadata is no proof: whoever may add annotations (an agent-sandbox claim) must not switch injection off.
    [
      'annotation without a sidecar (forged)',
      { pod: { ...pod(), metadata: { annotations: { [ANNOTATIONS.injected]: '{}' } } } },
      undefined,
    ],
    [
      'sidecar present (native)',
      { pod: { ...pod(), spec: { containers: [], initContainers: [{ name: 'warden-sidecar' }] } } },
      'pod already has a warden-sidecar container',
    ],
  ])('%s', (_name, over, reason) => {
    expect(skipReason(input(over))).toBe(reason);
  });

  it('a label inject=true does not opt a pod into a namespace that is not opted in', () => {
    const p = pod();
    p.metadata!.labels!['agentwarden.io/inject'] = 'true';
    expect(skipReason(input({ pod: p, namespaceLabels: {} }))).toMatch(/not labelled/);
  });
});
