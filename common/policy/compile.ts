// Turns a validated AccessPolicy into the lookup structures the engine needs, once per load,
// so deciding on the hot path is set lookups rather than string juggling.
import type {
  AccessPolicy,
  ApprovalSpec,
  DefaultAction,
  MaskingSpec,
  RuleAction,
  TargetSpec,
} from './types';

export interface CompiledSqlMatch {
  statements?: Set<string>;
  tables?: Matcher;
  functions?: Matcher;
}

export interface CompiledHttpMatch {
  methods?: Set<string>;
  paths?: RegExp[];
  hosts?: Matcher;
  headers?: Array<{ name: string; value: RegExp }>;
  json?: Array<{ path: string; values?: Set<string> }>;
}

export interface CompiledRule {
  name: string;
  action: RuleAction;
  target?: string;
  sql?: CompiledSqlMatch;
  http?: CompiledHttpMatch;
  subjects?: Matcher;
  groups?: Set<string>;
  approval?: ApprovalSpec;
  message?: string;
}

export interface CompiledPolicy {
  name: string;
  namespace?: string;
  defaultAction: DefaultAction;
  targets: Map<string, TargetSpec>;
  rules: CompiledRule[];
  masking: MaskingSpec[];
  auditPayloads: boolean;
  source: AccessPolicy;
}

/** Exact names plus `*` globs, case-insensitive. */
export interface Matcher {
  exact: Set<string>;
  globs: RegExp[];
}

export function compileMatcher(patterns: string[]): Matcher {
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const raw of patterns) {
    const p = raw.toLowerCase();
    if (p.includes('*')) globs.push(globToRegExp(p, '.'));
    else exact.add(p);
  }
  return { exact, globs };
}

export function matcherHas(m: Matcher, value: string): boolean {
  if (m.exact.has(value)) return true;
  for (const g of m.globs) if (g.test(value)) return true;
  return false;
}

/**
 * `*` matches within one segment (no `separator`), `**` across segments.
 * Used for table names (`public.*`), hosts (`*.example.com`) and URL paths (`/v1/refunds/**`).
 */
export function globToRegExp(glob: string, separator: string): RegExp {
  const sep = separator.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else {
        re += `[^${sep}]*`;
      }
    } else {
      re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}$`, 'i');
}

export function compilePolicy(policy: AccessPolicy): CompiledPolicy {
  const spec = policy.spec;
  const targets = new Map<string, TargetSpec>();
  for (const t of spec.targets) targets.set(t.name, t);
  return {
    name: policy.metadata.name,
    namespace: policy.metadata.namespace,
    defaultAction: spec.defaultAction ?? 'deny',
    targets,
    rules: (spec.rules ?? []).map(compileRule),
    masking: spec.masking ?? [],
    auditPayloads: spec.audit?.payloads ?? false,
    source: policy,
  };
}

function compileRule(rule: NonNullable<AccessPolicy['spec']['rules']>[number]): CompiledRule {
  const m = rule.match ?? {};
  const out: CompiledRule = {
    name: rule.name,
    action: rule.action,
    target: m.target,
    approval: rule.approval,
    message: rule.message,
  };
  if (m.sql) {
    // A deny or hold naming `public.secrets` must also catch `FROM secrets`: the proxy cannot
    // resolve the session's search_path, so restrictive rules match the bare name too (a
    // `secrets` table in another schema is caught as well, the safe direction). Allow rules
    // stay exact so they never grant more than they name.
    const widen = rule.action !== 'allow';
    out.sql = {
      statements: m.sql.statements ? new Set(m.sql.statements.map((s) => s.toUpperCase())) : undefined,
      tables: m.sql.tables ? compileMatcher(widen ? withBareNames(m.sql.tables) : m.sql.tables) : undefined,
      functions: m.sql.functions ? compileMatcher(widen ? withBareNames(m.sql.functions) : m.sql.functions) : undefined,
    };
  }
  if (m.http) {
    out.http = {
      methods: m.http.methods ? new Set(m.http.methods.map((s) => s.toUpperCase())) : undefined,
      paths: m.http.paths?.map((p) => globToRegExp(p, '/')),
      hosts: m.http.hosts ? compileMatcher(m.http.hosts) : undefined,
      headers: m.http.headers
        ? Object.entries(m.http.headers).map(([name, value]) => ({
            name: name.toLowerCase(),
            value: globToRegExp(value, '\u0000'),
          }))
        : undefined,
      json: m.http.json?.map((j) => ({ path: j.path, values: j.values ? new Set(j.values) : undefined })),
    };
  }
  if (m.subjects) out.subjects = compileMatcher(m.subjects);
  if (m.groups) out.groups = new Set(m.groups);
  return out;
}

/** Adds the last dotted part of each qualified name (`pg_catalog.pg_read_file` → `pg_read_file`). */
function withBareNames(names: string[]): string[] {
  const out = [...names];
  for (const n of names) {
    const i = n.lastIndexOf('.');
    if (i > 0 && i < n.length - 1) out.push(n.slice(i + 1));
  }
  return out;
}
