// What the upstream will act on, for the rules: one reading of a request's method, path and JSON
// body, shared by the named routes and the forward proxy so both judge the same request the
// same way.
//
// Method overrides. `X-HTTP-Method-Override`, `X-Method-Override` and `X-HTTP-Method` make many
// frameworks (Google APIs, ASP.NET, Express's method-override) act on another method than the
// request line's: `POST` + `X-HTTP-Method-Override: DELETE` deletes. They are forwarded as sent
// and the request is judged as BOTH methods, the strictest decision winning (deny over hold over
// allow): an upstream that honours the header and one that ignores it are both covered. Overrides
// that disagree with each other, or are not a method token, are refused (400).
//
// HEAD. Frameworks answer HEAD by running the GET handler (and dropping the body), so HEAD is
// judged as HEAD and as GET, the strictest decision winning, like an override.
//
// Paths. The path rules see is decoded and normalised the way the upstream frameworks most
// likely to be fooled read it; anything that could still mean two things is refused (400):
//   - repeated slashes collapse (`//admin` is `/admin`), in the judged and the forwarded path;
//   - `;params` are dropped from each segment for judging (Tomcat, Jetty and Spring route
//     `/admin;x=1/users` as `/admin/users`); the forwarded path keeps them as sent;
//   - segments are percent-decoded once (`/%61dmin` is `/admin`);
//   - dot segments (`.`, `..`, also `%2e%2e` and `..;x`), encoded slashes (`%2F`, `%5C`, `\`),
//     encoded control characters (`%00`, `%0a`) and double encoding (`%252e`: a segment still
//     holding `%XX` after decoding, which a second decode would change) are refused.
//
// JSON bodies (parseJsonBody) are judged as JSON whatever the Content-Type says, except forms
// (the upstream reads a form field from `"x&model=y"`, a JSON string to us). Refused (400) where
// upstream parsers read something else than JSON.parse: a key repeated in one object, also once
// case-folded (Go's encoding/json reads `"Model"` into the field `model`, last one winning), and a
// `__proto__` key (JavaScript upstreams that copy the body with Object.assign inherit its members).
import { describeKey, findDuplicateKey } from '../../common/masking/stream/json-duplicates';
import type { CompiledPolicy } from '../../common/policy/compile';
import { jsonTooDeep } from '../../common/policy/jsonpath';

/** The request headers that override the method, lower case. */
export const METHOD_OVERRIDE_HEADERS: readonly string[] = ['x-http-method-override', 'x-method-override', 'x-http-method'];

/** A request the sidecar refuses to judge because it could mean two things (answered 400). */
export class AmbiguousRequestError extends Error {
  readonly code = 'EWARDEN_AMBIGUOUS_REQUEST';
}

const METHOD_TOKEN = /^[A-Za-z]+$/;

/**
 * The methods to judge: the request line's, and the override's when one is given (first); GET
 * too when either is HEAD. Throws AmbiguousRequestError for overrides that disagree or are not a
 * method name.
 */
export function methodsToJudge(method: string, headers: Record<string, string | string[] | undefined>): string[] {
  const wire = method.toUpperCase();
  let override: string | undefined;
  for (const name of METHOD_OVERRIDE_HEADERS) {
    const v = headers[name];
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) {
      const m = one.trim();
      if (!METHOD_TOKEN.test(m)) throw new AmbiguousRequestError(`${name} "${m.slice(0, 32)}" is not a method name`);
      const up = m.toUpperCase();
      if (override !== undefined && override !== up) throw new AmbiguousRequestError(`method overrides disagree (${override} and ${up})`);
      override = up;
    }
  }
  const methods = override === undefined || override === wire ? [wire] : [override, wire];
  // HEAD runs the GET handler in nearly every framework (Flask, Express, Spring, Rails, Go's
  // ServeMux), side effects included: it is judged as GET too.
  if (methods.includes('HEAD') && !methods.includes('GET')) methods.push('GET');
  return methods;
}

export interface NormalizedPath {
  /** What the rules match: decoded, `;params` dropped, `//` collapsed; starts with `/`. */
  judged: string;
  /** What is forwarded: the segments as sent (encoding and `;params` kept), `//` collapsed; starts with `/`. */
  forwarded: string;
}

/**
 * A path the normalisation leaves as it is: `/`-separated non-empty segments of unreserved and
 * sub-delim characters, none `.` or `..` (no `%`, `;`, `\\`, control characters, `//`). Most
 * requests; checked in one linear match (each segment starts at its `/`).
 */
const PLAIN_PATH = /^(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9\-._~!$&'()*+,=:@]+)*\/?$/;

/** Normalises a raw request path (no query string); throws AmbiguousRequestError naming what was refused. */
export function normalizeRequestPath(rawPath: string): NormalizedPath {
  if (PLAIN_PATH.test(rawPath)) {
    const p = rawPath === '' ? '/' : rawPath;
    return { judged: p, forwarded: p };
  }
  const segments = rawPath.split('/').filter((s) => s !== '');
  const judged: string[] = [];
  for (const s of segments) {
    if (/%2f|%5c/i.test(s) || s.includes('\\')) throw new AmbiguousRequestError('encoded slashes are not allowed in paths');
    const semi = s.indexOf(';');
    let d: string;
    try {
      d = decodeURIComponent(semi >= 0 ? s.slice(0, semi) : s);
    } catch {
      throw new AmbiguousRequestError('malformed percent-encoding in the path');
    }
    if (/%[0-9a-f]{2}/i.test(d)) throw new AmbiguousRequestError('double percent-encoding is not allowed in paths');
    if (d === '.' || d === '..') throw new AmbiguousRequestError('dot segments are not allowed in paths');
    if (d.includes('/') || d.includes('\\')) throw new AmbiguousRequestError('encoded slashes are not allowed in paths');
    // A NUL or line break ends the path early for some servers (C strings, line-based logs and parsers).
    if (/[\x00-\x1f\x7f]/.test(d)) throw new AmbiguousRequestError('control characters are not allowed in paths');
    if (d !== '') judged.push(d);
  }
  const trailing = rawPath.endsWith('/') && segments.length > 0 ? '/' : '';
  return { judged: '/' + judged.join('/') + trailing, forwarded: '/' + segments.join('/') + trailing };
}

/**
 * Whether a rule that applies to `target` (a named route; '' for the forward proxy) matches on
 * JSON request body fields: then the body is read and judged.
 */
export function rulesReadBody(policy: CompiledPolicy, target: string): boolean {
  return policy.rules.some((r) => (r.target === undefined || r.target === target) && (r.http?.json?.length ?? 0) > 0);
}

/** A request body read for the rules. */
export type ParsedJsonBody =
  | { kind: 'empty'; raw: Buffer }
  | { kind: 'json'; raw: Buffer; doc: unknown }
  /** Not JSON (whatever the Content-Type said), or JSON nested beyond the JSONPath depth limit. */
  | { kind: 'unparseable'; raw: Buffer; tooDeep: boolean }
  /**
   * JSON refused (400 with this error type): a key repeated within one object (parsers disagree on
   * which value counts), or a `__proto__` key (JavaScript upstreams that copy the body with
   * Object.assign or a merge read its members as the body's own).
   */
  | { kind: 'refused'; raw: Buffer; type: 'duplicate_json_key' | 'prototype_json_key'; message: string };

/**
 * Parses a body as JSON whatever its Content-Type says (a wrong or missing type must not let it
 * past a rule), except a form type: the upstream reads a form whatever the bytes look like, and
 * `"x&model=y"` is JSON (a string) to us but the field `model` to it, so a form is unparseable.
 */
export function parseJsonBody(raw: Buffer, contentType?: string | string[]): ParsedJsonBody {
  if (raw.length === 0) return { kind: 'empty', raw };
  if (isFormType(contentType)) return { kind: 'unparseable', raw, tooDeep: false };
  const text = raw.toString('utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { kind: 'unparseable', raw, tooDeep: false };
  }
  // Case-folded: `{"model":"ok","Model":"x"}` is one key, read last-wins, to Go upstreams.
  const key = findDuplicateKey(text, { foldCase: true });
  if (key !== undefined) {
    const message = `request body repeats the key ${describeKey(key)} in one object; parsers disagree on which value counts, so it is refused`;
    return { kind: 'refused', raw, type: 'duplicate_json_key', message };
  }
  if (jsonTooDeep(doc)) return { kind: 'unparseable', raw, tooDeep: true };
  // `{"__proto__":{"model":"x"}}` has no `model` for the rules; `Object.assign({}, body).model` is "x".
  if ((text.includes('__proto__') || text.includes('\\u')) && hasProtoKey(doc)) {
    const message =
      'request body has a "__proto__" key; JavaScript upstreams that copy the body read its members as the body\'s own, so it is refused';
    return { kind: 'refused', raw, type: 'prototype_json_key', message };
  }
  return { kind: 'json', raw, doc };
}

/** application/x-www-form-urlencoded and multipart/*: what form parsers read. */
function isFormType(contentType: string | string[] | undefined): boolean {
  const t = String(contentType ?? '')
    .toLowerCase()
    .split(';')[0]
    .trim();
  return t === 'application/x-www-form-urlencoded' || t.startsWith('multipart/');
}

/** Whether some object in doc has an own `__proto__` key (iterative; doc is within the depth limit). */
function hasProtoKey(doc: unknown): boolean {
  const stack: unknown[] = [doc];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== 'object') continue;
    if (!Array.isArray(node) && Object.prototype.hasOwnProperty.call(node, '__proto__')) return true;
    for (const v of Array.isArray(node) ? node : Object.values(node)) if (v !== null && typeof v === 'object') stack.push(v);
  }
  return false;
}

type Action = 'allow' | 'hold' | 'deny';
const STRICTNESS: Record<Action, number> = { allow: 0, hold: 1, deny: 2 };

/** The strictest of several decisions (deny over hold over allow; the first among equals). */
export function strictest<D extends { action: Action }>(decisions: readonly D[]): D {
  let best = decisions[0];
  for (const d of decisions) if (STRICTNESS[d.action] > STRICTNESS[best.action]) best = d;
  return best;
}
