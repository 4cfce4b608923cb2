// Duplicate object keys in JSON text: a parser differential. `{"model":"forbidden","model":"ok"}`
// is `{model: "ok"}` to JSON.parse (last wins: what the rules and the maskers see) and
// `{model: "forbidden"}` to parsers that keep the first value (what some upstreams act on). So a
// request body with a repeated key is refused, and a response with one is never forwarded as the
// upstream wrote it (it is re-serialised from the parse that was masked, or refused).
//
//   findDuplicateKey('{"a":1,"\u0061":2}')  // 'a': keys are compared after unescaping
//
// Requests are also checked with `foldCase`: keys equal once case-folded (`"model"` and `"Model"`)
// are one key to Go's encoding/json, which matches struct fields case-insensitively (last wins).
//
// One pass, an explicit stack (no recursion, so nesting depth costs no stack), over text that
// JSON.parse has already accepted (so it does not validate).

import { foldKey } from '../../policy/jsonpath';

/**
 * The first key repeated within one object (unescaped), or undefined. `text` must be valid JSON.
 * With `foldCase`, keys are compared case-folded (jsonpath.ts foldKey).
 */
export function findDuplicateKey(text: string, opts: { foldCase?: boolean } = {}): string | undefined {
  // Fast path: no object can repeat a key when there are fewer than two colons.
  if (text.indexOf(':') === text.lastIndexOf(':')) return undefined;
  /** Per open container: the keys seen (object), or null (array). */
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x5c /* \ */) {
          escaped = true;
          j += 2;
          continue;
        }
        if (d === 0x22) break;
        j++;
      }
      const top = stack.length > 0 ? stack[stack.length - 1] : null;
      if (expectKey && top) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        const seenAs = opts.foldCase ? foldKey(key) : key;
        if (top.has(seenAs)) return key;
        top.add(seenAs);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
    }
  }
  return undefined;
}

/** For error messages: the key, shortened, as JSON. */
export function describeKey(key: string): string {
  return JSON.stringify(key.length > 64 ? key.slice(0, 64) + '…' : key);
}
