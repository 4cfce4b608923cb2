// The strict reader of JSON-RPC bodies: what the sidecar judges must be what the server will act
// on, so everything two JSON parsers may read differently is refused instead of guessed:
//   - invalid UTF-8 (decoders differ: U+FFFD, skipped bytes, an error),
//   - a lone surrogate, escaped (`"\ud800"`) or not (servers in Go, Rust and Python differ),
//   - a key repeated in one object at any depth, compared unescaped and case-folded (JSON.parse
//     keeps the last value, Go's encoding/json matches struct fields case-insensitively),
//   - a `__proto__` key (JavaScript servers that copy params with Object.assign read its members),
//   - nesting deeper than MAX_JSON_DEPTH (the rules and maskers could not walk it).
// Escapes are decoded by the parse: `"delete\u005fuser"` is judged as `delete_user`, as the server reads it.
import { findDuplicateKey, describeKey } from '../../common/masking/stream/json-duplicates';
import { jsonTooDeep, MAX_JSON_DEPTH } from '../../common/policy/jsonpath';

export type StrictJson = { ok: true; value: unknown; text: string } | { ok: false; message: string };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The parsed body, or why it is refused (the caller answers a JSON-RPC parse error). */
export function readStrictJson(raw: Buffer | Uint8Array): StrictJson {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { ok: false, message: 'body is not valid UTF-8' };
  }
  return readStrictJsonText(text);
}

/** As readStrictJson, for text already decoded (an SSE event's data). */
export function readStrictJsonText(text: string): StrictJson {
  if (text.charCodeAt(0) === 0xfeff) return { ok: false, message: 'body starts with a byte order mark' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, message: 'body is not valid JSON' };
  }
  if (jsonTooDeep(value)) return { ok: false, message: `JSON nested deeper than ${MAX_JSON_DEPTH} levels` };
  const dup = findDuplicateKey(text, { foldCase: true });
  if (dup !== undefined) return { ok: false, message: `the key ${describeKey(dup)} is repeated in one object` };
  const bad = findIllFormed(value);
  if (bad !== undefined) return { ok: false, message: bad };
  return { ok: true, value, text };
}

/** A lone surrogate in a key or string, or a `__proto__` key (iterative: depth is already bounded). */
function findIllFormed(doc: unknown): string | undefined {
  const stack: unknown[] = [doc];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node === 'string') {
      if (LONE_SURROGATE.test(node)) return 'a string holds a lone surrogate';
      continue;
    }
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      for (const v of node) stack.push(v);
      continue;
    }
    for (const k of Object.keys(node)) {
      if (k === '__proto__') return 'an object has a "__proto__" key';
      if (LONE_SURROGATE.test(k)) return 'a key holds a lone surrogate';
      stack.push((node as Record<string, unknown>)[k]);
    }
  }
  return undefined;
}
