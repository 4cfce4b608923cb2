// ajv reports JSON pointers and schema jargon ("must NOT have additional properties"); a platform
// engineer reading `warden validate` output wants the field path and what to write instead.
import type { ErrorObject } from 'ajv';
import { closestMatch, formatPath, type PathSegment, type PolicyError } from './errors';

/** Words for every `pattern` in the CRD; schema.test.ts fails when a new pattern has none. */
export const PATTERN_DESCRIPTIONS: Record<string, string> = {
  '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$':
    'must be a lowercase name of letters, digits and "-", starting and ending with a letter or digit, like crm-db',
  '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$':
    'must be a Kubernetes object name: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit',
  '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$': 'must be a duration like 30s, 10m or 1h30m, in units ms, s, m and h',
  '^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)$':
    'must be a host name or an IP address, without scheme or port',
  '^https?://[^\\s/?#]+(/[^\\s?#]*)?$': 'must be an http:// or https:// URL without query string or fragment, like https://api.openai.com',
  "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$": 'must be an HTTP header name, like Authorization or x-api-key',
  '^[^\\r\\n]*$': 'must not contain line breaks',
  '^[A-Za-z0-9_.~-]+$': 'must be a URL query parameter name of letters, digits, "_", ".", "~" and "-"',
  '^[A-Za-z_][A-Za-z0-9_]*$': 'must be an environment variable name: letters, digits and "_", not starting with a digit',
  '^[A-Za-z_*][A-Za-z0-9_$*]*(\\.[A-Za-z_*][A-Za-z0-9_$*]*)?$':
    'must be a name or schema.name of letters, digits, "_" and "$", with "*" as a wildcard',
  '^[A-Z]+$': 'must be an upper-case HTTP method, like GET or POST',
  '^/[^\\s?#]*$': 'must be a path starting with "/", without spaces, query string or fragment',
  '^[A-Za-z0-9*.:/\\[\\]-]+$':
    'must be a host like api.example.com or *.example.com, an IP address, or a CIDR range like 10.0.0.0/8, optionally with :port',
  '^\\$': 'must be a JSONPath starting with $, like $.model or $..email',
  '^[A-Za-z_*][A-Za-z0-9_$*]*(\\.[A-Za-z_*][A-Za-z0-9_$*]*){1,2}$':
    'must be table.column or schema.table.column, like customers.card_number, with "*" as a wildcard',
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$':
    'must be a condition type in CamelCase, like Ready',
  '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$': 'must be a reason in CamelCase, like PolicyRendered',
  '^sha256:[0-9a-f]{64}$': 'must be a tool fingerprint: sha256: and 64 lower-case hex digits, as the sidecar reports it',
};

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping (key: value)',
  null: 'empty',
};

export function translateAjvErrors(errors: ErrorObject[], root: unknown): PolicyError[] {
  return errors.map((e) => translateAjvError(e, root));
}

function translateAjvError(e: ErrorObject, root: unknown): PolicyError {
  const path = formatPath(pointerToSegments(e.instancePath, root));
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required': {
      const field = String(p.missingProperty);
      return { path, field, message: `required field "${field}" is missing` };
    }
    case 'additionalProperties': {
      const field = String(p.additionalProperty);
      const known = Object.keys((e.parentSchema?.properties as object | undefined) ?? {});
      const hint = closestMatch(field, known);
      const suffix = hint ? ` (did you mean "${hint}"?)` : known.length ? ` (known fields: ${known.join(', ')})` : '';
      return { path, field, message: `unknown field "${field}"${suffix}` };
    }
    default:
      return { path, message: describeValueError(e) };
  }
}

function describeValueError(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  const parent = (e.parentSchema ?? {}) as Record<string, unknown>;
  const got = describeValue(e.data);
  switch (e.keyword) {
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map(String);
      const hint = typeof e.data === 'string' ? closestMatch(e.data, allowed) : undefined;
      const extra = hint ? `; did you mean "${hint}"?` : '';
      return allowed.length === 1
        ? `must be ${allowed[0]} (got ${got}${extra})`
        : `must be one of: ${allowed.join(', ')} (got ${got}${extra})`;
    }
    case 'type': {
      const types = String(p.type)
        .split(',')
        .map((t) => TYPE_WORDS[t] ?? t);
      return `must be ${types.join(' or ')} (got ${got})`;
    }
    case 'pattern': {
      const words = PATTERN_DESCRIPTIONS[String(p.pattern)] ?? `must match the pattern ${String(p.pattern)}`;
      return `${words} (got ${got})`;
    }
    case 'minimum':
    case 'maximum':
      return typeof parent.minimum === 'number' && typeof parent.maximum === 'number'
        ? `must be between ${parent.minimum} and ${parent.maximum} (got ${got})`
        : `must be ${e.keyword === 'minimum' ? 'at least' : 'at most'} ${String(p.limit)} (got ${got})`;
    case 'minLength':
      return p.limit === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters long`;
    case 'maxLength':
      return `must be at most ${String(p.limit)} characters long (it has ${String((e.data as string).length)})`;
    case 'minItems':
      return p.limit === 1 ? 'must list at least one item' : `must list at least ${String(p.limit)} items`;
    case 'maxItems':
      return `must list at most ${String(p.limit)} items (it has ${String((e.data as unknown[]).length)})`;
    case 'maxProperties':
      return `must have at most ${String(p.limit)} entries`;
    case 'uniqueItems': {
      const [first, second] = [Number(p.i), Number(p.j)].sort((a, b) => a - b);
      return `lists ${describeValue((e.data as unknown[])[first])} twice (items [${first}] and [${second}]); each value may appear once`;
    }
    case 'format':
      return `${formatWords(String(p.format))} (got ${got})`;
    default:
      return e.message ?? `fails the ${e.keyword} check`;
  }
}

function formatWords(format: string): string {
  if (format === 'date-time') return 'must be an RFC 3339 timestamp, like 2024-01-31T12:00:00Z';
  if (format === 'int32') return 'must be a 32-bit whole number';
  if (format === 'int64') return 'must be a whole number';
  return `must be in ${format} format`;
}

export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- numbers and booleans here; objects returned above
  return String(v);
}

/** JSON pointer → path segments; walks the document so array indexes and numeric map keys differ. */
function pointerToSegments(pointer: string, root: unknown): PathSegment[] {
  if (pointer === '') return [];
  const segments: PathSegment[] = [];
  let node: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      segments.push(Number(key));
      node = node[Number(key)];
    } else {
      segments.push(key);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
    }
  }
  return segments;
}
