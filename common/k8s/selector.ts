// metav1.LabelSelector semantics: all matchLabels and all matchExpressions must hold; an empty
// selector ({}) selects every object; an omitted one (undefined) selects none.
import type { LabelSelector } from '../policy/types';

type Requirement = NonNullable<LabelSelector['matchExpressions']>[number];

export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return false;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  return (selector.matchExpressions ?? []).every((req) => requirementHolds(req, labels));
}

function requirementHolds(req: Requirement, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, req.key);
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return has && values.includes(labels[req.key]);
    case 'NotIn':
      return !has || !values.includes(labels[req.key]);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    default:
      // An operator this code does not know selects nothing rather than everything.
      return false;
  }
}
