// Label and field selectors as the API server parses them from `?labelSelector=` / `?fieldSelector=`.
// Pure: strings and objects in, booleans out. Used by the fake API server only.

export type Requirement =
  | { key: string; op: 'eq' | 'neq'; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'notexists' };

/** Splits on commas that are not inside `(...)`. */
function splitTop(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '') parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

/** Parses a label selector string; throws with the offending term when it is malformed. */
export function parseLabelSelector(s: string): Requirement[] {
  return splitTop(s).map((term) => {
    let m = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
    if (m)
      return {
        key: m[1],
        op: m[2] as 'in' | 'notin',
        values: m[3]
          .split(',')
          .map((v) => v.trim())
          .filter((v) => v !== ''),
      };
    m = /^([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)$/.exec(term);
    if (m) return { key: m[1], op: m[2] === '!=' ? 'neq' : 'eq', value: m[3] };
    m = /^!\s*([^\s!=]+)$/.exec(term);
    if (m) return { key: m[1], op: 'notexists' };
    m = /^([^\s!=()]+)$/.exec(term);
    if (m) return { key: m[1], op: 'exists' };
    throw new Error(`unable to parse requirement: "${term}"`);
  });
}

export function matchRequirements(reqs: Requirement[], lookup: (key: string) => string | undefined): boolean {
  return reqs.every((r) => {
    const v = lookup(r.key);
    switch (r.op) {
      case 'eq':
        return v === r.value;
      case 'neq':
        return v !== r.value;
      case 'in':
        return v !== undefined && r.values.includes(v);
      case 'notin':
        return v === undefined || !r.values.includes(v);
      case 'exists':
        return v !== undefined;
      case 'notexists':
        return v === undefined;
    }
    return false;
  });
}

/** Field selectors support only `=`, `==` and `!=` on dotted paths (metadata.name, status.phase, ...). */
export function parseFieldSelector(s: string): Requirement[] {
  const reqs = parseLabelSelector(s);
  for (const r of reqs) {
    if (r.op !== 'eq' && r.op !== 'neq') throw new Error(`field selector "${s}": only =, == and != are supported`);
  }
  return reqs;
}

export function fieldValue(obj: unknown, dotted: string): string {
  let cur: unknown = obj;
  for (const part of dotted.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[part];
  }
  // The API server's field sets hold '' for unset fields (spec.nodeName= selects unscheduled pods).
  if (cur === undefined || cur === null) return '';
  return typeof cur === 'object' ? JSON.stringify(cur) : String(cur);
}
