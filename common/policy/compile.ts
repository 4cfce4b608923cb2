// Turns a validated AccessPolicy into the lookup structures the engine needs, once per load,
// so deciding on the hot path is set lookups rather than string juggling.
import { BlockList, isIP } from 'node:net';
import { parseJsonPath, type JsonPathSegment } from './syntax';
import { domainToASCII } from 'node:url';
import { FILE_FUNCTIONS, isStatementClass, type StatementClass } from './statement-classes';
import type { Decision, AccessPolicy, ApprovalSpec, DefaultAction, MaskingSpec, RuleAction, TargetSpec } from './types';

export interface CompiledSqlMatch {
  /** Statement kinds named in `statements`. */
  statements?: Set<string>;
  /** Statement classes named in `statements` (statement-classes.ts). */
  classes?: StatementClass[];
  tables?: Matcher;
  functions?: Matcher;
  /** The functions name a server-file function: COPY to/from a file or PROGRAM matches too. */
  functionsCatchCopy?: boolean;
}

export interface CompiledHttpMatch {
  methods?: Set<string>;
  paths?: RegExp[];
  hosts?: HostMatcher;
  headers?: Array<{ name: string; value: RegExp }>;
  json?: Array<CompiledJsonCriterion>;
  /** Criteria on the response; a rule with them is decided by decideResponse, not decide. */
  response?: { json: Array<CompiledJsonCriterion> };
}

/** `match.mcp`. `tools` and `arguments` only match `tools/call` (an operation with a tool). */
export interface CompiledMcpMatch {
  /** Exact JSON-RPC method names (case-sensitive, as servers read them). */
  methods?: Set<string>;
  /** Tool name globs (`*` any run of characters); case-insensitive for deny and hold rules, exact case for allow rules. */
  tools?: Matcher;
  /** Conditions on the call's arguments object, as `http.json` on a body. */
  arguments?: CompiledJsonCriterion[];
}

export interface CompiledJsonCriterion {
  path: string;
  segments: JsonPathSegment[];
  values?: Set<string>;
}

export interface CompiledRule {
  name: string;
  action: RuleAction;
  target?: string;
  sql?: CompiledSqlMatch;
  http?: CompiledHttpMatch;
  mcp?: CompiledMcpMatch;
  subjects?: Matcher;
  groups?: Set<string>;
  approval?: ApprovalSpec;
  message?: string;
  /** What the engine returns when this rule decides: built once, shared (frozen). */
  decision: Decision;
}

export interface CompiledPolicy {
  name: string;
  namespace?: string;
  defaultAction: DefaultAction;
  /** The decision when no rule matches (shared, frozen). */
  defaultDecision: Decision;
  targets: Map<string, TargetSpec>;
  rules: CompiledRule[];
  masking: MaskingSpec[];
  auditPayloads: boolean;
  /** What the sidecar does when the audit spool is full. */
  auditWhenSpoolFull: 'block' | 'drop-oldest';
  source: AccessPolicy;
}

/** Exact names plus `*` globs, case-insensitive. */
export interface Matcher {
  exact: Set<string>;
  globs: RegExp[];
}

/**
 * `separator` is what `*` does not cross: `.` for SQL names (`audit.*` is one schema's tables);
 * none (`\u0000`) for subjects, where `*@example.com` must match `alice.smith@example.com`.
 */
export function compileMatcher(patterns: string[], separator = '.'): Matcher {
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const raw of patterns) {
    const p = raw.toLowerCase();
    if (p.includes('*')) globs.push(globToRegExp(p, separator));
    else exact.add(p);
  }
  return { exact, globs };
}

/** Like compileMatcher, but exact case: values are compared as given, not lower-cased. */
export function compileCaseSensitiveMatcher(patterns: string[], separator: string): Matcher {
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const p of patterns) {
    if (p.includes('*')) globs.push(new RegExp(globToRegExp(p, separator).source));
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
    // `/v1/refunds/**` covers `/v1/refunds` itself too (POST there creates one), not only what is below.
    if (c === separator && glob.startsWith('**', i + 1) && (i + 3 === glob.length || glob[i + 3] === separator)) {
      re += `(?:${sep}.*)?`;
      i += 2;
      continue;
    }
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
  const defaultAction = spec.defaultAction ?? 'deny';
  return {
    name: policy.metadata.name,
    namespace: policy.metadata.namespace,
    defaultAction,
    defaultDecision: Object.freeze({ action: defaultAction, reason: `no rule matched; policy default is ${defaultAction}` }),
    targets,
    rules: (spec.rules ?? []).map(compileRule),
    masking: spec.masking ?? [],
    auditPayloads: spec.audit?.payloads ?? false,
    auditWhenSpoolFull: spec.audit?.whenSpoolFull ?? 'block',
    source: policy,
  };
}

function compileRule(rule: NonNullable<AccessPolicy['spec']['rules']>[number]): CompiledRule {
  const m = rule.match ?? {};
  const verb = rule.action === 'deny' ? 'denied' : rule.action === 'hold' ? 'held for approval' : 'allowed';
  const out: CompiledRule = {
    name: rule.name,
    action: rule.action,
    target: m.target,
    approval: rule.approval,
    message: rule.message,
    decision: Object.freeze({
      action: rule.action,
      rule: rule.name,
      reason: rule.message ?? `${verb} by rule "${rule.name}"`,
      approval: rule.action === 'hold' ? rule.approval : undefined,
    }),
  };
  if (m.sql) {
    // A deny or hold naming `public.secrets` must also catch `FROM secrets`: the proxy cannot
    // resolve the session's search_path, so restrictive rules match the bare name too (a
    // `secrets` table in another schema is caught as well, the safe direction). Allow rules
    // stay exact so they never grant more than they name.
    const widen = rule.action !== 'allow';
    const named = m.sql.statements?.map((s) => s.toUpperCase());
    const functions = m.sql.functions ? compileMatcher(widen ? withBareNames(m.sql.functions) : m.sql.functions) : undefined;
    out.sql = {
      statements: named ? new Set(named.filter((s) => !isStatementClass(s))) : undefined,
      classes: named?.filter(isStatementClass),
      tables: m.sql.tables ? compileMatcher(widen ? withBareNames(m.sql.tables) : m.sql.tables) : undefined,
      functions,
      // Restrictive rules on server-file functions catch COPY to/from a file or PROGRAM too; an
      // allow rule on pg_read_file must not start allowing COPY ... PROGRAM.
      functionsCatchCopy: widen && functions !== undefined && [...FILE_FUNCTIONS].some((f) => matcherHas(functions, f)),
    };
  }
  if (m.http) {
    out.http = {
      methods: m.http.methods ? new Set(m.http.methods.map((s) => s.toUpperCase())) : undefined,
      paths: m.http.paths?.map((p) => globToRegExp(p, '/')),
      hosts: m.http.hosts ? compileHostMatcher(m.http.hosts) : undefined,
      headers: m.http.headers
        ? Object.entries(m.http.headers).map(([name, value]) => ({
            name: name.toLowerCase(),
            value: globToRegExp(value, '\u0000'),
          }))
        : undefined,
      json: m.http.json?.map(compileJsonCriterion),
      response: m.http.response ? { json: (m.http.response.json ?? []).map(compileJsonCriterion) } : undefined,
    };
  }
  if (m.mcp) {
    // MCP tool names are case-sensitive on the server. A deny or hold on `delete_*` also catches
    // `Delete_user` (the safe direction); an allow rule vouches only for the exact names it lists.
    const tools = m.mcp.tools;
    out.mcp = {
      methods: m.mcp.methods ? new Set(m.mcp.methods) : undefined,
      tools: tools ? (rule.action === 'allow' ? compileCaseSensitiveMatcher(tools, '\u0000') : compileMatcher(tools, '\u0000')) : undefined,
      arguments: m.mcp.arguments?.map(compileJsonCriterion),
    };
  }
  if (m.subjects) out.subjects = compileMatcher(m.subjects, '\u0000');
  if (m.groups) out.groups = new Set(m.groups);
  return out;
}

function compileJsonCriterion(j: { path: string; values?: string[] }): CompiledJsonCriterion {
  return { path: j.path, segments: parseJsonPath(j.path), values: j.values ? new Set(j.values) : undefined };
}

/**
 * Adds the last dotted part of each qualified name (`pg_catalog.pg_read_file` → `pg_read_file`).
 * Not for a wildcard-only last part: `audit.*` must not become `*`, which would match every name;
 * such a rule sees only names written qualified.
 */
function withBareNames(names: string[]): string[] {
  const out = [...names];
  for (const n of names) {
    const i = n.lastIndexOf('.');
    const bare = n.slice(i + 1);
    if (i > 0 && bare !== '' && !/^\*+$/.test(bare)) out.push(bare);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Host matching for `match.http.hosts` (the forward proxy and, where set, named routes).
//
// Entry forms, each optionally followed by `:PORT` (IPv6 in brackets when a port is given):
//   api.example.com        exact host name
//   *.example.com          any name with one or more labels before `.example.com` (a.example.com,
//                          a.b.example.com); NOT the apex `example.com` — list it separately
//   api-*.example.com      `*` elsewhere matches within one label
//   *                      any host
//   10.1.2.3, ::1          IP literals
//   10.0.0.0/8, fd00::/8   CIDR ranges (node:net BlockList; IPv4-mapped IPv6 addresses match IPv4 ranges)
// Names are compared lower-case, without a trailing dot, IDNA (punycode) normalised. Name patterns
// never match IP literals and CIDR patterns never match names: a rule about `10.0.0.0/8` does not
// see that a name resolves there (callers that resolve names can decide again on the address).

export interface HostMatcher {
  /** Normalised exact names, any port. */
  names: Set<string>;
  /** `name:port` for exact names with a port. */
  namesWithPort: Set<string>;
  /** `*.x.y` → suffix `.x.y` (one or more labels); other globs as regexps. */
  wildcards: Array<{ suffix?: string; re?: RegExp; port?: number }>;
  /** IP literals and CIDR ranges, any port. */
  addresses: BlockList;
  /** IP literals and CIDR ranges restricted to a port. */
  addressesByPort: Map<number, BlockList>;
  any: boolean;
  anyPorts: Set<number>;
  /** The patterns as written, for diagnostics. */
  patterns: string[];
}

type ParsedHostPattern =
  | { kind: 'any'; port?: number }
  | { kind: 'name'; host: string; port?: number }
  | { kind: 'wildcard'; host: string; port?: number }
  | { kind: 'address'; address: string; family: 'ipv4' | 'ipv6'; prefix?: number; port?: number };

/** Normalises a host as the proxy sees it: lower case, IDNA, WHATWG IPv4 forms, no brackets, no trailing dot. Undefined when it is not a valid host. */
export function normalizeHost(host: string): string | undefined {
  let h = host.trim();
  if (h === '') return undefined;
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (isIP(h) === 6) {
    // Canonical text via the URL parser (compresses zeros, lower-cases, rewrites embedded IPv4).
    try {
      return new URL(`http://[${h}]/`).hostname.slice(1, -1);
    } catch {
      return undefined;
    }
  }
  if (/[/?#@\s:[\]%]/.test(h)) return undefined;
  let out: string;
  try {
    // The URL host parser applies IDNA (domainToASCII) and the WHATWG IPv4 number forms
    // (`2130706433`, `0x7f.1` → 127.0.0.1), so a name cannot hide an address from CIDR rules.
    out = new URL(`http://${h}/`).hostname;
  } catch {
    return undefined;
  }
  while (out.endsWith('.')) out = out.slice(0, -1);
  return out === '' ? undefined : out;
}

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** Parses one `hosts` entry; a string is the error. */
export function parseHostPattern(raw: string): ParsedHostPattern | string {
  let text = raw.trim();
  let port: number | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return `host pattern "${raw}": missing "]"`;
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':') || (port = parsePort(rest.slice(1))) === undefined) return `host pattern "${raw}": invalid port`;
    }
    text = text.slice(1, close);
  } else {
    const colons = text.split(':').length - 1;
    if (colons === 1) {
      const i = text.indexOf(':');
      port = parsePort(text.slice(i + 1));
      if (port === undefined) return `host pattern "${raw}": invalid port`;
      text = text.slice(0, i);
    }
  }
  if (text === '*') return { kind: 'any', port };
  const slash = text.indexOf('/');
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  const fam = isIP(addrText);
  if (fam !== 0) {
    const family = fam === 4 ? 'ipv4' : 'ipv6';
    let prefix: number | undefined;
    if (slash >= 0) {
      const p = text.slice(slash + 1);
      prefix = /^\d{1,3}$/.test(p) ? Number(p) : NaN;
      if (!(prefix >= 0 && prefix <= (fam === 4 ? 32 : 128))) return `host pattern "${raw}": invalid CIDR prefix`;
    }
    return { kind: 'address', address: addrText, family, prefix, port };
  }
  if (slash >= 0) return `host pattern "${raw}": CIDR needs an IP address`;
  if (text.includes('*')) {
    // Literal labels are normalised like hosts (IDNA, lower case); `*` labels are kept.
    const labels = text.replace(/\.$/, '').split('.');
    const out: string[] = [];
    for (const l of labels) {
      if (l.includes('*')) {
        if (!/^[-a-z0-9*_]+$/i.test(l)) return `host pattern "${raw}": invalid wildcard label`;
        out.push(l.toLowerCase());
        continue;
      }
      const n = /^[-a-z0-9_]+$/i.test(l) ? l.toLowerCase() : domainToASCII(l);
      if (n === '' || n.includes('.')) return `host pattern "${raw}": invalid host name`;
      out.push(n);
    }
    return { kind: 'wildcard', host: out.join('.'), port };
  }
  const host = normalizeHost(text);
  if (host === undefined) return `host pattern "${raw}": invalid host name`;
  if (isIP(host) !== 0) return { kind: 'address', address: host, family: isIP(host) === 4 ? 'ipv4' : 'ipv6', port };
  return { kind: 'name', host, port };
}

/** Compiles `hosts` entries once per policy load. Throws on an entry that is not a host pattern (fail closed). */
export function compileHostMatcher(patterns: string[]): HostMatcher {
  const m: HostMatcher = {
    names: new Set(),
    namesWithPort: new Set(),
    wildcards: [],
    addresses: new BlockList(),
    addressesByPort: new Map(),
    any: false,
    anyPorts: new Set(),
    patterns: [...patterns],
  };
  for (const raw of patterns) {
    const p = parseHostPattern(raw);
    if (typeof p === 'string') throw new Error(p);
    switch (p.kind) {
      case 'any':
        if (p.port === undefined) m.any = true;
        else m.anyPorts.add(p.port);
        break;
      case 'name':
        if (p.port === undefined) m.names.add(p.host);
        else m.namesWithPort.add(`${p.host}:${p.port}`);
        if (p.host === 'localhost') {
          // `localhost` is the loopback addresses (fixed, never looked up): `127.1` or `[::1]`
          // must not walk past a rule that names it.
          let list = m.addresses;
          if (p.port !== undefined) {
            list = m.addressesByPort.get(p.port) ?? new BlockList();
            m.addressesByPort.set(p.port, list);
          }
          list.addSubnet('127.0.0.0', 8, 'ipv4');
          list.addAddress('::1', 'ipv6');
        }
        break;
      case 'wildcard': {
        const h = p.host;
        if (h.startsWith('*.') && !h.slice(2).includes('*')) {
          m.wildcards.push({ suffix: h.slice(1), port: p.port });
        } else {
          // `*` within a label; a leading `*.` still spans one or more labels.
          const lead = h.startsWith('*.') ? '(?:[^.]+\\.)+' : '';
          const body = (lead ? h.slice(2) : h)
            .split('*')
            .map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
            .join('[^.]*');
          m.wildcards.push({ re: new RegExp(`^${lead}${body}$`), port: p.port });
        }
        break;
      }
      case 'address': {
        let list = m.addresses;
        if (p.port !== undefined) {
          list = m.addressesByPort.get(p.port) ?? new BlockList();
          m.addressesByPort.set(p.port, list);
        }
        if (p.prefix === undefined) list.addAddress(p.address, p.family);
        else list.addSubnet(p.address, p.prefix, p.family);
        break;
      }
    }
  }
  return m;
}

/**
 * Whether `host` (as sent by the client; normalised here) on `port` matches. A pattern with a port
 * matches only that port; without a port it matches any port. An unparseable host matches nothing.
 */
// One request is checked against every host rule with the same host: normalize it once.
let lastHost: string | undefined;
let lastNormalized: string | undefined;

function normalizeHostCached(host: string): string | undefined {
  if (host !== lastHost) {
    lastNormalized = normalizeHost(host);
    lastHost = host;
  }
  return lastNormalized;
}

export function hostMatcherHas(m: HostMatcher, host: string, port?: number): boolean {
  const h = normalizeHostCached(host);
  if (h === undefined) return false;
  if (normalizedHostMatches(m, h, port)) return true;
  // Connecting to an unspecified address reaches this host: a rule about loopback covers it.
  for (const alias of unspecifiedAliases(h)) if (normalizedHostMatches(m, alias, port)) return true;
  return false;
}

/**
 * The unspecified addresses (`0.0.0.0`, `::`, and every spelling that normalises to them: `0`,
 * `0x0`, `[::]`, `::ffff:0.0.0.0`) reach the local host when connected to, so host rules treat
 * them as loopback: the names they also answer to; [] for any other (normalised) host.
 */
export function unspecifiedAliases(normalized: string): readonly string[] {
  return UNSPECIFIED.has(normalized) ? LOOPBACK_ALIASES : [];
}

/** normalizeHost's output for the unspecified addresses (IPv4, IPv6, IPv4-mapped IPv6). */
const UNSPECIFIED: ReadonlySet<string> = new Set(['0.0.0.0', '::', '::ffff:0:0']);
const LOOPBACK_ALIASES: readonly string[] = Object.freeze(['127.0.0.1', '::1', 'localhost']);

function normalizedHostMatches(m: HostMatcher, h: string, port?: number): boolean {
  if (m.any || (port !== undefined && m.anyPorts.has(port))) return true;
  const fam = isIP(h);
  if (fam !== 0) {
    const type = fam === 4 ? 'ipv4' : 'ipv6';
    if (m.addresses.check(h, type)) return true;
    if (port !== undefined) {
      const list = m.addressesByPort.get(port);
      if (list && list.check(h, type)) return true;
    }
    return false;
  }
  if (m.names.has(h)) return true;
  if (port !== undefined && m.namesWithPort.has(`${h}:${port}`)) return true;
  for (const w of m.wildcards) {
    if (w.port !== undefined && w.port !== port) continue;
    if (w.suffix !== undefined ? h.length > w.suffix.length && h.endsWith(w.suffix) : w.re!.test(h)) return true;
  }
  return false;
}
