// RFC 6902 patch from `before` to `after`, shaped the way Kubernetes objects change: list items
// with a `name` (containers, env, volumes) are matched by name, so putting the sidecar first is one
// `add` at index 0 instead of every existing init container being rewritten into the next one
// (what an index-by-index diff such as fast-json-patch's compare produces). Smaller and readable
// in audit logs, and about twice as fast, since nothing is copied: the patch shares values with
// `after`, which the caller serializes straight away.
import type { Operation } from 'fast-json-patch';

type Json = unknown;

export function diffPatch(before: Json, after: Json): Operation[] {
  const ops: Operation[] = [];
  diffValue(before, after, '', ops);
  return ops;
}

function diffValue(a: Json, b: Json, path: string, ops: Operation[]): void {
  if (a === b) return;
  if (isObject(a) && isObject(b)) return diffObject(a, b, path, ops);
  if (Array.isArray(a) && Array.isArray(b)) return diffArray(a, b, path, ops);
  if (!deepEqual(a, b)) ops.push({ op: 'replace', path, value: b });
}

function diffObject(a: Record<string, Json>, b: Record<string, Json>, path: string, ops: Operation[]): void {
  for (const key of Object.keys(a)) {
    if (!hasOwn(b, key) || b[key] === undefined) {
      if (a[key] !== undefined) ops.push({ op: 'remove', path: `${path}/${escape(key)}` });
    }
  }
  for (const key of Object.keys(b)) {
    if (b[key] === undefined) continue;
    const p = `${path}/${escape(key)}`;
    if (!hasOwn(a, key) || a[key] === undefined) ops.push({ op: 'add', path: p, value: b[key] });
    else diffValue(a[key], b[key], p, ops);
  }
}

function diffArray(a: Json[], b: Json[], path: string, ops: Operation[]): void {
  const aligned = alignByName(a, b);
  if (aligned !== undefined) {
    // Adds applied in ascending index order leave each matched item at its new index.
    aligned.forEach((from, i) => {
      if (from === undefined) ops.push({ op: 'add', path: `${path}/${i}`, value: b[i] });
      else diffValue(a[from], b[i], `${path}/${i}`, ops);
    });
    return;
  }
  if (a.length === b.length) {
    a.forEach((item, i) => diffValue(item, b[i], `${path}/${i}`, ops));
    return;
  }
  if (b.length > a.length && a.every((item, i) => deepEqual(item, b[i]))) {
    for (let i = a.length; i < b.length; i++) ops.push({ op: 'add', path: `${path}/-`, value: b[i] });
    return;
  }
  ops.push({ op: 'replace', path, value: b });
}

/**
 * For lists of uniquely named objects where `b` only inserts items (the old names appear in `b`
 * in the same order): for each index of `b`, the index in `a` it came from, or undefined for an
 * insertion. undefined when the lists are not of that shape.
 */
function alignByName(a: Json[], b: Json[]): Array<number | undefined> | undefined {
  if (a.length === 0 || b.length <= a.length) return undefined;
  const an = names(a);
  const bn = names(b);
  if (an === undefined || bn === undefined) return undefined;
  const out: Array<number | undefined> = [];
  let j = 0;
  for (const name of bn) {
    if (j < an.length && name === an[j]) out.push(j++);
    else if (an.includes(name))
      return undefined; // reordered
    else out.push(undefined);
  }
  return j === an.length ? out : undefined;
}

function names(list: Json[]): string[] | undefined {
  const out: string[] = [];
  for (const item of list) {
    const name = isObject(item) ? item.name : undefined;
    if (typeof name !== 'string') return undefined;
    out.push(name);
  }
  return new Set(out).size === out.length ? out : undefined;
}

/** RFC 6901: `~` → `~0`, `/` → `~1` (annotation keys such as agentwarden.io/injected). */
function escape(key: string): string {
  return key.includes('~') || key.includes('/') ? key.replace(/~/g, '~0').replace(/\//g, '~1') : key;
}

function deepEqual(a: Json, b: Json): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

function isObject(v: Json): v is Record<string, Json> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function hasOwn(o: Record<string, Json>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key);
}
