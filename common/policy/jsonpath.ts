// JSONPath evaluation for the subset in syntax.ts, shared by rule matching (selectJsonPath, the
// engine) and masking (the NFA step in ../masking/stream/json.ts), with one nesting limit.
//
// Depth limit: documents come from agents and upstreams, and both walks recurse. Nothing here
// may silently stop early (a `..x` that gave up at depth 64 would let a deny rule miss a value
// nested deeper) or overflow the stack (a misleading 502). Beyond MAX_JSON_DEPTH both throw
// JsonTooDeepError; callers check jsonTooDeep() first and fail closed: rule matching treats the
// document like an unparseable body (restrictive rules match), masking refuses it as unmaskable.
import type { JsonPathSegment } from './syntax';

/** Deepest nesting (objects/arrays inside each other) matched or masked; deeper fails closed. */
export const MAX_JSON_DEPTH = 128;

export class JsonTooDeepError extends Error {
  readonly code = 'EJSON_TOO_DEEP';
  constructor() {
    super(`JSON nested deeper than ${MAX_JSON_DEPTH} levels cannot be inspected`);
  }
}

/** Whether doc nests objects/arrays deeper than limit (iterative: no recursion on hostile input). */
export function jsonTooDeep(doc: unknown, limit: number = MAX_JSON_DEPTH): boolean {
  if (doc === null || typeof doc !== 'object') return false;
  const stack: Array<[unknown, number]> = [[doc, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (depth > limit) return true;
    const children = Array.isArray(node) ? node : Object.values(node as object);
    for (let i = 0; i < children.length; i++) {
      const c: unknown = children[i];
      if (c !== null && typeof c === 'object') stack.push([c, depth + 1]);
    }
  }
  return false;
}

/** Whether one path segment selects the child at key (an array index or an object key). */
export function segmentMatches(seg: JsonPathSegment, key: string | number): boolean {
  switch (seg.type) {
    case 'wildcard':
      return true;
    case 'name':
      // Case-folded, as for rules (step below): `$..salary` also masks a Go or .NET `"Salary"`.
      return typeof key === 'string' && (key === seg.name || (key.length === seg.name.length && foldKey(key) === foldKey(seg.name)));
    case 'index':
      return typeof key === 'number' && key === seg.index;
  }
}

/** Per path, the segment positions reached at a node (an NFA over the segments). */
export type PathStates = ReadonlyArray<readonly number[]>;

/** The start states for paths: every path at its first segment. */
export function startStates(paths: readonly (readonly JsonPathSegment[])[]): PathStates {
  return paths.map(() => [0]);
}

/** Whether some path is complete in states: the node is selected. */
export function selectedIn(states: PathStates, paths: readonly (readonly JsonPathSegment[])[]): boolean {
  for (let p = 0; p < states.length; p++) if (states[p].includes(paths[p].length)) return true;
  return false;
}

/** Advances every path's states over one child step (an array index or an object key). */
export function stepStates(states: PathStates, paths: readonly (readonly JsonPathSegment[])[], key: string | number): PathStates {
  if (paths.length === 0) return states;
  return states.map((s, p) => {
    const segs = paths[p];
    const next: number[] = [];
    for (const i of s) {
      if (i >= segs.length) continue;
      const seg = segs[i];
      if (segmentMatches(seg, key) && !next.includes(i + 1)) next.push(i + 1);
      // `..x` may match at any depth below: stay at this position for the descendants.
      if (seg.descendant && !next.includes(i)) next.push(i);
    }
    return next;
  });
}

/** The values segments select in doc. Throws JsonTooDeepError when `..` would have to go deeper than the limit. */
export function selectJsonPath(doc: unknown, segments: readonly JsonPathSegment[]): unknown[] {
  let current: unknown[] = [doc];
  for (const seg of segments) {
    const next: unknown[] = [];
    for (const node of current) {
      if (seg.descendant) collectDescendants(node, seg, next);
      else step(node, seg, next);
    }
    current = next;
    if (current.length === 0) break;
  }
  return current;
}

function pushAll(out: unknown[], values: readonly unknown[]): void {
  // Not out.push(...values): spreading a 200k-element array overflows the call stack.
  for (let i = 0; i < values.length; i++) out.push(values[i]);
}

function step(node: unknown, seg: JsonPathSegment, out: unknown[]): void {
  if (node === null || typeof node !== 'object') return;
  if (seg.type === 'wildcard') {
    pushAll(out, Array.isArray(node) ? node : Object.values(node));
  } else if (seg.type === 'index') {
    if (Array.isArray(node) && seg.index < node.length) out.push(node[seg.index]);
  } else if (!Array.isArray(node)) {
    // Every key equal to the name once case-folded: Go's encoding/json (and others) read
    // `"MODEL"` into the field tagged `model`, so a rule on `$.model` must see it too.
    const name = seg.name;
    let want: string | undefined;
    for (const k of Object.keys(node)) {
      // Simple case folding keeps the length (`ſ`, `K` included): only keys as long can be equal.
      if (k.length !== name.length) continue;
      if (k === name || foldKey(k) === (want ??= foldKey(name))) out.push((node as Record<string, unknown>)[k]);
    }
  }
}

/**
 * A JSON object key under Unicode case folding, as the case-insensitive parsers compare them (Go
 * encoding/json: simple folding, so `ſ` U+017F is `s` and `K` U+212A is `k`). Upper- then
 * lower-casing gets those; it folds a few more (`ß` as `ss`), which only makes matching stricter.
 */
export function foldKey(key: string): string {
  // ASCII lower case is the common case: no allocation beyond toLowerCase.
  return /^[\x00-\x7f]*$/.test(key) ? key.toLowerCase() : key.toUpperCase().toLowerCase();
}

/** `..x`: x applied at this node and every node below it (iterative, document order). */
function collectDescendants(root: unknown, seg: JsonPathSegment, out: unknown[]): void {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > MAX_JSON_DEPTH) throw new JsonTooDeepError();
    step(node, seg, out);
    const children = Array.isArray(node) ? node : Object.values(node);
    for (let i = children.length - 1; i >= 0; i--) stack.push([children[i], depth + 1]);
  }
}
