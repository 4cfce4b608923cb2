// Parsers for the small languages inside policy strings: durations, masked column patterns and
// JSONPaths. The validator uses them to reject bad policies; the data path uses the same parsers
// so that whatever validated is exactly what runs.

export class PolicySyntaxError extends Error {
  readonly code = 'POLICY_SYNTAX';
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `10m`, `30s`, `1h30m`, `1.5h`, `250ms` → milliseconds (the units Go and CEL durations use). */
export function parseDuration(s: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (m === null) throw new PolicySyntaxError(`"${s}" is not a duration; write it like 30s, 10m or 1h30m (units: ms, s, m, h)`);
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    pos = re.lastIndex;
  }
  if (pos === 0) throw new PolicySyntaxError('a duration must not be empty; write it like 30s, 10m or 1h30m');
  return total;
}

export interface ColumnPattern {
  /** Lower case; undefined when written as `table.column`. `*` is a wildcard within the part. */
  schema?: string;
  table: string;
  column: string;
}

const IDENT_PART = /^[A-Za-z_*][A-Za-z0-9_$*]*$/;

/** `customers.card_number`, `public.customers.ssn`, `*.ssn` → parts, lower-cased like unquoted SQL identifiers. */
export function parseColumnPattern(s: string): ColumnPattern {
  const parts = s.split('.');
  if (parts.length < 2 || parts.length > 3) {
    throw new PolicySyntaxError(`"${s}" must be table.column or schema.table.column ("*" matches any name)`);
  }
  for (const p of parts) {
    if (!IDENT_PART.test(p)) {
      throw new PolicySyntaxError(
        p === ''
          ? `"${s}" has an empty name part`
          : `"${p}" in "${s}" is not a valid name: use letters, digits, "_", "$" and "*" and do not start with a digit`,
      );
    }
  }
  const lower = parts.map((p) => p.toLowerCase());
  return lower.length === 3 ? { schema: lower[0], table: lower[1], column: lower[2] } : { table: lower[0], column: lower[1] };
}

export type JsonPathSegment =
  | { type: 'name'; name: string; descendant: boolean }
  | { type: 'index'; index: number; descendant: boolean }
  | { type: 'wildcard'; descendant: boolean };

const DOT_NAME = /[A-Za-z_$][A-Za-z0-9_$-]*/y;

/**
 * The JSONPath subset masking and matching need: `$` then any of `.name`, `.*`, `..name`, `..*`,
 * `[*]`, `[n]`, `['name']` / `["name"]` (also after `..`). No filters or slices: they would make
 * what gets masked depend on the data, which a reviewer cannot check by reading the policy.
 */
export function parseJsonPath(path: string): JsonPathSegment[] {
  if (!path.startsWith('$')) throw new PolicySyntaxError(`JSONPath "${path}" must start with $`);
  const segments: JsonPathSegment[] = [];
  let pos = 1;
  const fail = (what: string): never => {
    throw new PolicySyntaxError(`JSONPath "${path}": ${what} at position ${pos + 1}`);
  };
  while (pos < path.length) {
    let descendant = false;
    if (path.startsWith('..', pos)) {
      descendant = true;
      pos += 2;
    } else if (path[pos] === '.') {
      pos += 1;
      if (path[pos] === '[') fail('a name or "*" must follow "."');
    } else if (path[pos] !== '[') {
      fail(`unexpected "${path[pos]}"`);
    }
    if (path[pos] === '[') {
      const { segment, end } = parseBracket(path, pos, descendant, fail);
      segments.push(segment);
      pos = end;
      continue;
    }
    if (path[pos] === '*') {
      segments.push({ type: 'wildcard', descendant });
      pos += 1;
      continue;
    }
    DOT_NAME.lastIndex = pos;
    const m = DOT_NAME.exec(path);
    if (m === null) fail('expected a name, "*" or "["');
    segments.push({ type: 'name', name: m![0], descendant });
    pos = DOT_NAME.lastIndex;
  }
  return segments;
}

function parseBracket(
  path: string,
  start: number,
  descendant: boolean,
  fail: (what: string) => never,
): { segment: JsonPathSegment; end: number } {
  const close = (after: number): number => {
    if (path[after] !== ']') fail('expected "]"');
    return after + 1;
  };
  const inner = start + 1;
  if (path[inner] === '*') return { segment: { type: 'wildcard', descendant }, end: close(inner + 1) };
  const digits = /\d+/y;
  digits.lastIndex = inner;
  const num = digits.exec(path);
  if (num !== null) return { segment: { type: 'index', index: Number(num[0]), descendant }, end: close(digits.lastIndex) };
  const quote = path[inner];
  if (quote === "'" || quote === '"') {
    const endQuote = path.indexOf(quote, inner + 1);
    if (endQuote < 0) fail('unterminated quoted name');
    const name = path.slice(inner + 1, endQuote);
    if (name === '') fail('empty quoted name');
    return { segment: { type: 'name', name, descendant }, end: close(endQuote + 1) };
  }
  return fail('expected *, a non-negative index or a quoted name inside [ ]');
}

/** A duration in milliseconds the way policies write it: 10m, 90s, 250ms. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
