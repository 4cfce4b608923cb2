// Masking a parsed JSON document (an HTTP response or request body).
//
//   maskJsonDocument(JSON.parse(body), { masker, jsonPaths: rule.jsonPaths.map(parseJsonPath) })
//
// Two passes in one walk:
//   - a value selected by any jsonPath is sensitive whatever it looks like: it is masked whole
//     with the masker's strategy (maskWhole). Numbers and booleans become the masked *string*
//     (a masked value cannot keep its type: "[REDACTED]" is not a number, and keeping the
//     number would leak it). null stays null (nothing to hide). A selected object or array
//     keeps its shape and every scalar inside it is masked whole, so `$..address` hides all of
//     an address without breaking clients that expect an object there.
//   - every other string *value* goes through the detectors (masker.mask), and so do numbers
//     (their digits: a card stored as a JSON number; a match becomes the masked string) and every
//     object key: keys are usually schema, but a map keyed by email or card number (`{"jane@x.io":
//     {...}}`) carries data in them. A masked key that collides with another key of the same
//     object gets a ` #2`, ` #3`... suffix, so no member is lost. jsonPaths select by the
//     original keys.
// The input is never mutated; unchanged subtrees are shared, and the very same document object
// is returned when nothing changed (callers then forward the original bytes).

// Nesting deeper than MAX_JSON_DEPTH (../../policy/jsonpath.ts) throws JsonTooDeepError (the
// input is never mutated, so nothing half-masked escapes): callers refuse such a document as
// unmaskable, instead of a stack overflow surfacing as a misleading upstream error.

import { JsonTooDeepError, MAX_JSON_DEPTH, selectedIn, startStates, stepStates, type PathStates } from '../../policy/jsonpath';
import type { JsonPathSegment } from '../../policy/syntax';
import type { TextMasker } from '../masker';

export interface MaskJsonOptions {
  /** Its strategy (and key) masks selected values whole (masker.maskWhole); its detectors scan the other strings. */
  masker: TextMasker;
  jsonPaths: readonly (readonly JsonPathSegment[])[];
  /** false: only mask what jsonPaths select (the detectors run elsewhere, e.g. the SSE masker). Default true. */
  detectors?: boolean;
}

export interface MaskJsonResult {
  doc: unknown;
  /** Values masked: one per whole-masked scalar plus the detector count of every string. */
  count: number;
}

interface Walk {
  paths: readonly (readonly JsonPathSegment[])[];
  masker: TextMasker;
  detectors: boolean;
  count: number;
}

export function maskJsonDocument(doc: unknown, opts: MaskJsonOptions): MaskJsonResult {
  const w: Walk = { paths: opts.jsonPaths, masker: opts.masker, detectors: opts.detectors ?? true, count: 0 };
  if (!w.detectors && w.paths.length === 0) return { doc, count: 0 };
  const out = walk(doc, startStates(w.paths), w, false, 1);
  return { doc: out, count: w.count };
}

/**
 * A number through the detectors, as its digits: a card or SSN stored as a JSON number
 * (`{"card":4111111111111111}`) is data like its string. A match becomes the masked string.
 */
function maskNumber(node: number | bigint, w: Walk): unknown {
  const r = maskNumberText(node, w.masker);
  if (r === undefined) return node;
  w.count += r.count;
  return r.text;
}

/** The masked text of a number when a detector matches its digits; undefined otherwise. */
export function maskNumberText(n: number | bigint, masker: TextMasker): { text: string; count: number } | undefined {
  // Fewer than 6 digits is no detector's match (and most numbers are small): skip the scan.
  if (typeof n === 'number' && Math.abs(n) < 100_000) return undefined;
  const r = masker.mask(String(n));
  return r.count > 0 ? { text: r.text, count: r.count } : undefined;
}

function walk(node: unknown, states: PathStates, w: Walk, selected: boolean, depth: number): unknown {
  const isSelected = selected || selectedIn(states, w.paths);
  if (node === null || node === undefined) return node;
  if (typeof node === 'string') {
    if (isSelected) {
      w.count++;
      return w.masker.maskWhole(node);
    }
    if (!w.detectors) return node;
    const r = w.masker.mask(node);
    w.count += r.count;
    return r.text;
  }
  if (typeof node === 'number' || typeof node === 'boolean' || typeof node === 'bigint') {
    if (!isSelected) return typeof node === 'boolean' || !w.detectors ? node : maskNumber(node, w);
    w.count++;
    return w.masker.maskWhole(String(node));
  }
  if (typeof node !== 'object') return node;
  if (depth > MAX_JSON_DEPTH) throw new JsonTooDeepError();
  if (Array.isArray(node)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < node.length; i++) {
      const v = walk(node[i], stepStates(states, w.paths, i), w, isSelected, depth + 1);
      if (v !== node[i]) (copy ??= node.slice())[i] = v;
    }
    return copy ?? node;
  }
  const obj = node as Record<string, unknown>;
  let copy: Record<string, unknown> | null = null;
  let renamed: Map<string, string> | null = null;
  for (const key of Object.keys(obj)) {
    const v = walk(obj[key], stepStates(states, w.paths, key), w, isSelected, depth + 1);
    if (v !== obj[key]) (copy ??= { ...obj })[key] = v;
    if (w.detectors) {
      const k = w.masker.mask(key);
      if (k.count > 0) {
        w.count += k.count;
        (renamed ??= new Map()).set(key, k.text);
      }
    }
  }
  if (renamed) return renameKeys(copy ?? obj, renamed);
  return copy ?? node;
}

/** A copy of obj with keys renamed, in the same order; a name already taken gets a ` #n` suffix. */
export function renameKeys(obj: Record<string, unknown>, renamed: ReadonlyMap<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const taken = new Set(Object.keys(obj).filter((k) => !renamed.has(k)));
  for (const key of Object.keys(obj)) {
    let name = renamed.get(key);
    if (name === undefined) {
      name = key;
    } else {
      const base = name;
      for (let n = 2; taken.has(name); n++) name = `${base} #${n}`;
      taken.add(name);
    }
    Object.defineProperty(out, name, { value: obj[key], enumerable: true, writable: true, configurable: true });
  }
  return out;
}
