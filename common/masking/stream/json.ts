// Masking a parsed JSON document (an HTTP response or request body).
//
//   maskJsonDocument(JSON.parse(body), { masker, jsonPaths: rule.jsonPaths.map(parseJsonPath), hashKey })
//
// Two passes in one walk:
//   - a value selected by any jsonPath is sensitive whatever it looks like: it is masked whole
//     with the masker's strategy (maskWhole). Numbers and booleans become the masked *string*
//     (a masked value cannot keep its type: "[REDACTED]" is not a number, and keeping the
//     number would leak it). null stays null (nothing to hide). A selected object or array
//     keeps its shape and every scalar inside it is masked whole, so `$..address` hides all of
//     an address without breaking clients that expect an object there.
//   - every other string *value* goes through the detectors (masker.mask). Object keys are not
//     masked: they are schema, and rewriting them would break the document's meaning.
// The input is never mutated; unchanged subtrees are shared, and the very same document object
// is returned when nothing changed (callers then forward the original bytes).

import type { JsonPathSegment } from '../../policy/syntax';
import { maskWhole, type TextMasker } from '../masker';

export interface MaskJsonOptions {
  masker: TextMasker;
  jsonPaths: JsonPathSegment[][];
  /**
   * HMAC key for whole-value masking with the hash strategy. TextMasker keeps its key private,
   * so it is passed again here; only needed when masker.strategy is 'hash' and a path selects
   * something.
   */
  hashKey?: Buffer;
}

export interface MaskJsonResult {
  doc: unknown;
  /** Values masked: one per whole-masked scalar plus the detector count of every string. */
  count: number;
}

/** Walk state: for each jsonPath, the set of segment positions reached at this node (an NFA). */
type PathStates = ReadonlyArray<readonly number[]>;

const NO_KEY = Buffer.alloc(0);

export function maskJsonDocument(doc: unknown, opts: MaskJsonOptions): MaskJsonResult {
  const counter = { count: 0 };
  const paths = opts.jsonPaths;
  const start: PathStates = paths.map(() => [0]);
  const whole = (v: string): string => maskWhole(v, opts.masker.strategy, opts.hashKey ?? NO_KEY);
  const out = walk(doc, start, paths, opts.masker, whole, counter, false);
  return { doc: out, count: counter.count };
}

/** Mask every string value in a document with the detectors only (no paths): SSE payloads. */
export function maskJsonStrings(doc: unknown, masker: TextMasker): MaskJsonResult {
  return maskJsonDocument(doc, { masker, jsonPaths: [] });
}

function walk(
  node: unknown,
  states: PathStates,
  paths: JsonPathSegment[][],
  masker: TextMasker,
  whole: (v: string) => string,
  counter: { count: number },
  selected: boolean,
): unknown {
  const isSelected = selected || states.some((s, p) => s.includes(paths[p].length));
  if (node === null || node === undefined) return node;
  if (typeof node === 'string') {
    if (isSelected) {
      counter.count++;
      return whole(node);
    }
    const r = masker.mask(node);
    counter.count += r.count;
    return r.text;
  }
  if (typeof node === 'number' || typeof node === 'boolean' || typeof node === 'bigint') {
    if (!isSelected) return node;
    counter.count++;
    return whole(String(node));
  }
  if (Array.isArray(node)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < node.length; i++) {
      const v = walk(node[i], step(states, paths, i), paths, masker, whole, counter, isSelected);
      if (v !== node[i]) (copy ??= node.slice())[i] = v;
    }
    return copy ?? node;
  }
  if (typeof node === 'object') {
    const obj = node as Record<string, unknown>;
    let copy: Record<string, unknown> | null = null;
    for (const key of Object.keys(obj)) {
      const v = walk(obj[key], step(states, paths, key), paths, masker, whole, counter, isSelected);
      if (v !== obj[key]) (copy ??= { ...obj })[key] = v;
    }
    return copy ?? node;
  }
  return node;
}

/** Advance every path's NFA states over one child step (an array index or an object key). */
function step(states: PathStates, paths: JsonPathSegment[][], key: string | number): PathStates {
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

function segmentMatches(seg: JsonPathSegment, key: string | number): boolean {
  switch (seg.type) {
    case 'wildcard':
      return true;
    case 'name':
      return typeof key === 'string' && key === seg.name;
    case 'index':
      return typeof key === 'number' && key === seg.index;
  }
}
