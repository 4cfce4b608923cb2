import type { LabelSelector } from '../policy/types';
import { selectorMatches } from './selector';

const labels = { app: 'support-agent', tier: 'backend', 'app.kubernetes.io/version': '1.4.2' };

describe('selectorMatches (metav1.LabelSelector semantics)', () => {
  it.each<[string, LabelSelector | undefined, boolean]>([
    ['omitted selector selects nothing', undefined, false],
    ['empty selector selects everything', {}, true],
    ['matchLabels all present', { matchLabels: { app: 'support-agent', tier: 'backend' } }, true],
    ['matchLabels one differs', { matchLabels: { app: 'support-agent', tier: 'frontend' } }, false],
    ['matchLabels key missing', { matchLabels: { team: 'a' } }, false],
    ['In hit', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['frontend', 'backend'] }] }, true],
    ['In miss', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['frontend'] }] }, false],
    ['In on a missing key', { matchExpressions: [{ key: 'team', operator: 'In', values: ['a'] }] }, false],
    ['NotIn hit', { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['backend'] }] }, false],
    ['NotIn on a missing key holds', { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a'] }] }, true],
    ['Exists', { matchExpressions: [{ key: 'app.kubernetes.io/version', operator: 'Exists' }] }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, false],
    [
      'labels and expressions are ANDed',
      { matchLabels: { app: 'support-agent' }, matchExpressions: [{ key: 'team', operator: 'Exists' }] },
      false,
    ],
    ['unknown operator selects nothing', { matchExpressions: [{ key: 'tier', operator: 'Matches' as 'In', values: ['backend'] }] }, false],
  ])('%s', (_name, selector, expected) => {
    expect(selectorMatches(selector, labels)).toBe(expected);
  });
});
