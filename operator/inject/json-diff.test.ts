import { applyPatch, compare, deepClone } from 'fast-json-patch';
import { fixture, fixturePolicies, OPTED_IN, podFromWorkload, testConfig } from '../../test/support/operator/inject-fixtures';
import { diffPatch } from './json-diff';
import type { Pod } from './k8s-types';
import { injectPod } from './mutate';

const apply = (doc: unknown, ops: ReturnType<typeof diffPatch>): unknown =>
  applyPatch(deepClone(doc), deepClone(ops), true, false).newDocument;

describe('diffPatch', () => {
  const cases: Array<[string, unknown, unknown]> = [
    ['equal', { a: 1, b: [1, 2] }, { a: 1, b: [1, 2] }],
    ['scalar change, add, remove', { a: 1, b: 2 }, { a: 3, c: 4 }],
    ['type change', { a: { x: 1 } }, { a: [1] }],
    ['root replace', [1], { a: 1 }],
    ['keys that need escaping', { m: { 'a/b': 1, 'c~d': 2 } }, { m: { 'a/b': 2, 'e/f~g': 3 } }],
    ['append to a list', { l: [1, 2] }, { l: [1, 2, 3, 4] }],
    ['shrink a list', { l: [1, 2, 3] }, { l: [1] }],
    [
      'named insert first and middle, with edits',
      { l: [{ name: 'a', v: 1 }, { name: 'b' }] },
      { l: [{ name: 's' }, { name: 'a', v: 2 }, { name: 'x' }, { name: 'b', w: 1 }] },
    ],
    ['named reorder falls back', { l: [{ name: 'a' }, { name: 'b' }] }, { l: [{ name: 'b' }, { name: 'a' }, { name: 'c' }] }],
    ['duplicate names fall back', { l: [{ name: 'a' }, { name: 'a', v: 1 }] }, { l: [{ name: 'x' }, { name: 'a' }, { name: 'a', v: 2 }] }],
    ['named removal falls back', { l: [{ name: 'a' }, { name: 'b' }] }, { l: [{ name: 'c' }, { name: 'd' }, { name: 'a' }] }],
  ];

  it.each(cases)('%s: applying the patch yields the target, like compare()', (_name, before, after) => {
    const expected = JSON.parse(JSON.stringify(after)) as unknown;
    expect(apply(before, diffPatch(before, after))).toEqual(expected);
    expect(apply(before, compare(before as object, after as object))).toEqual(expected);
  });

  it('an undefined property counts as absent (JSON has none)', () => {
    expect(diffPatch({ a: 1, b: undefined }, { a: 1, c: undefined })).toEqual([]);
    expect(diffPatch({ a: undefined }, { a: 2 })).toEqual([{ op: 'add', path: '/a', value: 2 }]);
  });

  it('putting a container first is one add at index 0, not a rewrite of the existing ones', () => {
    const before = {
      initContainers: [
        { name: 'migrate', image: 'm' },
        { name: 'fetch', image: 'f' },
      ],
    };
    const after = { initContainers: [{ name: 'warden-sidecar', image: 'w' }, ...before.initContainers] };
    expect(diffPatch(before, after)).toEqual([{ op: 'add', path: '/initContainers/0', value: { name: 'warden-sidecar', image: 'w' } }]);
  });

  it.each(['agent-pod.yaml', 'pod-with-init.yaml'])(
    "injecting %s: the patch is smaller than compare()'s and applies to the same pod",
    (file) => {
      const original = fixture<Pod>(file);
      const result = injectPod(original, {
        namespace: 'agents',
        namespaceLabels: OPTED_IN,
        policies: fixturePolicies(),
        config: testConfig(),
      });
      if (result.outcome !== 'injected') throw new Error(result.outcome);
      const ours = diffPatch(original, result.pod);
      const theirs = compare(original, result.pod);
      expect(apply(original, ours)).toEqual(apply(original, theirs));
      expect(ours.length).toBeLessThanOrEqual(theirs.length);
    },
  );

  it('a Deployment pod: every op on the init containers is an add or an env change, never a rename', () => {
    const original = podFromWorkload(fixture('langchain-deployment.yaml'));
    const result = injectPod(original, {
      namespace: 'agents',
      namespaceLabels: OPTED_IN,
      policies: fixturePolicies(),
      config: testConfig(),
    });
    if (result.outcome !== 'injected') throw new Error(result.outcome);
    const paths = result.patch.filter((o) => o.path.startsWith('/spec/initContainers')).map((o) => `${o.op} ${o.path}`);
    expect(paths).toEqual(['add /spec/initContainers/0', 'add /spec/initContainers/1/env']);
  });
});
