// One error shape for every policy check (schema, semantic, YAML), with paths written the way
// Kubernetes and kubectl write them, so a message can be pasted next to the manifest it refers to.

export interface PolicyError {
  /** Where the problem is, like `spec.rules[2].match.sql.statements[0]`; '' for the document itself. */
  path: string;
  /** What is wrong, in words, without the path. */
  message: string;
  /** The field a missing-field or unknown-field error is about (a child of `path`). */
  field?: string;
  /** 1-based line in the YAML source, when the document came from YAML. */
  line?: number;
}

export type PathSegment = string | number;

export type ValidationResult<T> = { ok: true; policy: T } | { ok: false; errors: PolicyError[] };

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `['spec', 'rules', 2, 'name']` → `spec.rules[2].name`; keys that are not identifiers go in brackets. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (IDENTIFIER.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${seg}]`;
  }
  return out;
}

/** The inverse of formatPath, for looking a path up in the YAML source. */
export function parsePath(path: string): PathSegment[] {
  const segments: PathSegment[] = [];
  const re = /\.?([A-Za-z_$][A-Za-z0-9_$]*)|\[([^\]]*)\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(path)) !== null) {
    if (m[1] !== undefined) segments.push(m[1]);
    else if (/^\d+$/.test(m[2])) segments.push(Number(m[2]));
    else segments.push(m[2]);
  }
  return segments;
}

/** Drops exact duplicates, which overlapping checks can produce, keeping the first occurrence. */
export function dedupeErrors(errors: PolicyError[]): PolicyError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${e.path}\u0000${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Closest candidate by case-insensitive edit distance (a swap of two letters counts once), for "did you mean" hints. */
export function closestMatch(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(w.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** `spec.rules[2].action: must be one of: allow, deny, hold (got "block") (line 31)`. */
export function formatPolicyError(e: PolicyError): string {
  const where = e.path === '' ? '' : `${e.path}: `;
  const line = e.line === undefined || e.message.includes(`line ${e.line},`) ? '' : ` (line ${e.line})`;
  return `${where}${e.message}${line}`;
}
