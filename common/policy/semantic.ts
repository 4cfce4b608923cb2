// Checks the JSON schema cannot express. Most mirror a CEL rule in crds/accesspolicy.yaml so the
// offline validator and the API server agree; the rest (JSONPath and column syntax, reserved
// ports, approver counts) only the data path would otherwise notice, at the worst moment.
// Every check reads the document defensively: it also runs on documents that failed the schema,
// so one `warden validate` run reports every mistake.
import { formatPath, type PathSegment, type PolicyError } from './errors';
import { parseHostPattern } from './compile';
import { parseColumnPattern, parseDuration, parseJsonPath } from './syntax';
import { resolveIdentitySpec } from '../identity/spec';

export { parseColumnPattern, parseDuration, parseJsonPath, PolicySyntaxError } from './syntax';
export type { ColumnPattern, JsonPathSegment } from './syntax';

type Obj = Record<string, unknown>;

/** Ports the sidecar itself listens on (ARCHITECTURE.md, "Sidecar ports"). */
export const RESERVED_PORTS: ReadonlyMap<number, string> = new Map([
  [15000, "the sidecar's admin API"],
  [15001, "the sidecar's HTTP egress"],
  [15021, "the sidecar's health probe port"],
]);

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

interface TargetInfo {
  index: number;
  name: string;
  kind: 'postgres' | 'http' | 'mcp' | 'unknown';
}

interface Context {
  spec: Obj;
  /** undefined when spec.targets is not a list: reference checks would only add noise then. */
  targets?: Map<string, TargetInfo>;
}

export function checkSemantics(doc: unknown): PolicyError[] {
  const spec = obj(obj(doc)?.spec);
  if (!spec) return [];
  const ctx: Context = { spec, targets: Array.isArray(spec.targets) ? targetIndex(spec.targets) : undefined };
  return [...checkTargets(ctx), ...checkRules(ctx), ...checkMasking(ctx), ...checkSelector(spec), ...checkIdentity(spec)];
}

function targetIndex(list: unknown[]): Map<string, TargetInfo> {
  const out = new Map<string, TargetInfo>();
  list.forEach((t, index) => {
    const o = obj(t);
    const name = str(o?.name);
    if (name === undefined || out.has(name)) return;
    const kinds = TARGET_KINDS.filter((k) => o?.[k] !== undefined);
    out.set(name, { index, name, kind: kinds.length === 1 ? kinds[0] : 'unknown' });
  });
  return out;
}

// ---- targets

const TARGET_KINDS = ['postgres', 'http', 'mcp'] as const;

function checkTargets(ctx: Context): PolicyError[] {
  const errors: PolicyError[] = [];
  const targets = list(ctx.spec.targets);
  errors.push(...uniqueNames(targets, ['spec', 'targets'], 'target'));
  const ports = new Map<number, number>();
  const envs = new Map<string, number>();
  targets.forEach((raw, i) => {
    const t = obj(raw);
    if (!t) return;
    const at: PathSegment[] = ['spec', 'targets', i];
    errors.push(...exactlyOneKind(t, at));
    const pg = obj(t.postgres);
    if (pg) errors.push(...checkPostgres(pg, [...at, 'postgres'], ports));
    const http = obj(t.http);
    if (http) errors.push(...checkHttpTarget(http, [...at, 'http']));
    const mcp = obj(t.mcp);
    if (mcp) errors.push(...checkMcpTarget(mcp, [...at, 'mcp']));
    const env = str(t.env);
    if (env !== undefined) {
      if (!ENV_NAME.test(env)) {
        errors.push(
          err([...at, 'env'], `"${env}" is not a valid environment variable name: use letters, digits and "_", not starting with a digit`),
        );
      } else if (envs.has(env)) {
        errors.push(err([...at, 'env'], `env ${env} is already set by spec.targets[${envs.get(env)}]; each target needs its own variable`));
      } else envs.set(env, i);
    }
  });
  return errors;
}

function exactlyOneKind(t: Obj, at: PathSegment[]): PolicyError[] {
  const set = TARGET_KINDS.filter((k) => t[k] !== undefined);
  if (set.length > 1) {
    return [err(at, `sets both ${set.join(' and ')}; a target is exactly one of postgres, http or mcp (split it into separate targets)`)];
  }
  if (set.length === 0) return [err(at, 'must set one of postgres, http or mcp')];
  return [];
}

function checkPostgres(pg: Obj, at: PathSegment[], ports: Map<number, number>): PolicyError[] {
  const errors: PolicyError[] = [];
  const port = pg.listenPort;
  if (typeof port === 'number') {
    const reserved = RESERVED_PORTS.get(port);
    const portAt = [...at, 'listenPort'];
    if (reserved) {
      errors.push(err(portAt, `port ${port} is used by ${reserved}; choose another listenPort`));
    } else if (ports.has(port)) {
      errors.push(
        err(portAt, `listenPort ${port} is already used by spec.targets[${ports.get(port)}]; each postgres target needs its own port`),
      );
    } else ports.set(port, at[2] as number);
  }
  errors.push(...checkDuration(pg.connectTimeout, [...at, 'connectTimeout']));
  return errors;
}

function checkHttpTarget(http: Obj, at: PathSegment[]): PolicyError[] {
  const errors = checkDuration(http.timeout, [...at, 'timeout']);
  const auth = obj(http.auth);
  if (!auth) return errors;
  const authAt = [...at, 'auth'];
  if (http.credentialsSecret === undefined) {
    errors.push(err(authAt, 'auth needs credentialsSecret: the credential it attaches comes from that Secret'));
  }
  const ways = [
    auth.header !== undefined && 'header',
    auth.queryParam !== undefined && 'queryParam',
    auth.basic === true && 'basic',
  ].filter(Boolean);
  if (ways.length > 1) errors.push(err(authAt, `sets ${ways.join(' and ')}; set only one of header, queryParam or basic`));
  if (auth.valuePrefix !== undefined && auth.header === undefined) {
    errors.push(err([...authAt, 'valuePrefix'], 'valuePrefix is only used together with header'));
  }
  return errors;
}

/** An mcp target: the http target's checks (timeout, auth), a url the sidecar can reach, and pins it can compare. */
function checkMcpTarget(mcp: Obj, at: PathSegment[]): PolicyError[] {
  const errors = checkHttpTarget(mcp, at);
  const url = str(mcp.url);
  if (url !== undefined) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      errors.push(
        err([...at, 'url'], `"${url}" is not a URL; give the server's streamable-HTTP endpoint, like https://tools.internal/mcp`),
      );
    }
    if (parsed && parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      errors.push(err([...at, 'url'], `"${url}" must be an http:// or https:// URL`));
    }
  }
  const pins = list(mcp.pins);
  if (pins.length > 0 && mcp.pinToolDefinitions === false) {
    errors.push(err([...at, 'pins'], 'pins are only checked when pinToolDefinitions is true; remove them or turn pinning on'));
  }
  const seen = new Map<string, number>();
  pins.forEach((raw, i) => {
    const pin = obj(raw);
    const tool = str(pin?.tool);
    if (tool === undefined) return;
    const prev = seen.get(tool);
    if (prev !== undefined) {
      errors.push(
        err([...at, 'pins', i, 'tool'], `tool "${tool}" is already pinned by ${formatPath([...at, 'pins', prev])}; pin each tool once`),
      );
    } else seen.set(tool, i);
  });
  return errors;
}

// ---- rules

function checkRules(ctx: Context): PolicyError[] {
  const rules = list(ctx.spec.rules);
  const errors = uniqueNames(rules, ['spec', 'rules'], 'rule');
  rules.forEach((raw, i) => {
    const rule = obj(raw);
    if (rule) errors.push(...checkRule(ctx, rule, ['spec', 'rules', i]));
  });
  return errors;
}

function checkRule(ctx: Context, rule: Obj, at: PathSegment[]): PolicyError[] {
  const errors = checkApproval(rule, at);
  const match = obj(rule.match);
  if (!match) return errors;
  const matchAt = [...at, 'match'];
  const target = str(match.target);
  const info = target !== undefined ? ctx.targets?.get(target) : undefined;
  if (target !== undefined && ctx.targets && !info) {
    errors.push(err([...matchAt, 'target'], `target "${target}" is not defined in spec.targets${knownNames(ctx.targets)}`));
  }
  errors.push(...checkMatchKinds(ctx, match, matchAt, info));
  const mcp = obj(match.mcp);
  if (mcp) errors.push(...checkMcpMatch(mcp, [...matchAt, 'mcp']));
  const http = obj(match.http);
  if (http) errors.push(...checkHttpMatch(http, [...matchAt, 'http']));
  // Mirrors the CEL rule on rules[]: a response cannot be held (the agent is already waiting on
  // it and part of a stream may be out) and allowing by response would grant after the fact.
  if (http && http.response !== undefined && typeof rule.action === 'string' && rule.action !== 'deny') {
    errors.push(
      err(
        [...matchAt, 'http', 'response'],
        `response criteria are only allowed on rules with action "deny" (this rule's action is "${rule.action}"); split the rule or make it deny`,
      ),
    );
  }
  return errors;
}

/** What each match kind applies to; sql and mcp rules without a target need some target of their kind (http ones have the forward proxy). */
const MATCH_KINDS = [
  { key: 'sql', target: 'postgres', targetless: true },
  { key: 'http', target: 'http', targetless: false },
  { key: 'mcp', target: 'mcp', targetless: true },
] as const;

function checkMatchKinds(ctx: Context, match: Obj, matchAt: PathSegment[], info: TargetInfo | undefined): PolicyError[] {
  const errors: PolicyError[] = [];
  const kinds = MATCH_KINDS.filter((k) => match[k.key] !== undefined).map((k) => k.key);
  if (kinds.length > 1) {
    errors.push(
      err(
        matchAt,
        `has both ${kinds.join(' and ')}; a rule matches SQL statements, HTTP requests or MCP messages, one of them (split it into separate rules)`,
      ),
    );
  }
  for (const k of MATCH_KINDS) {
    if (match[k.key] === undefined) continue;
    if (info !== undefined && info.kind !== 'unknown' && info.kind !== k.target) {
      const article = info.kind === 'postgres' ? 'a' : 'an';
      errors.push(
        err(
          [...matchAt, k.key],
          `${k.key} matches apply only to ${k.target} targets, but "${info.name}" is ${article} ${info.kind} target`,
        ),
      );
    } else if (k.targetless && match.target === undefined && ctx.targets && ![...ctx.targets.values()].some((t) => t.kind === k.target)) {
      errors.push(err([...matchAt, k.key], `${k.key} match can never apply: the policy has no ${k.target} target`));
    }
  }
  return errors;
}

function checkApproval(rule: Obj, at: PathSegment[]): PolicyError[] {
  const action = rule.action;
  const approval = obj(rule.approval);
  if (action !== 'hold') {
    return rule.approval !== undefined && typeof action === 'string'
      ? [err([...at, 'approval'], `approval is only used by rules with action "hold" (this rule's action is "${action}")`)]
      : [];
  }
  if (!approval) {
    return rule.approval === undefined ? [missing(at, 'approval', 'a rule with action "hold" needs someone to approve')] : [];
  }
  const errors = checkDuration(approval.timeout, [...at, 'approval', 'timeout']);
  const approvers = obj(approval.approvers);
  if (!approvers) {
    if (approval.approvers === undefined)
      errors.push(missing([...at, 'approval'], 'approvers', 'name at least one user or group who can approve'));
    return errors;
  }
  const users = list(approvers.users);
  const groups = list(approvers.groups);
  if (users.length === 0 && groups.length === 0) {
    errors.push(err([...at, 'approval', 'approvers'], 'must name at least one user or group who can approve'));
  }
  const count = approval.count;
  if (typeof count === 'number' && groups.length === 0 && users.length > 0 && count > new Set(users).size) {
    errors.push(
      err(
        [...at, 'approval', 'count'],
        `needs ${count} different approvers but only ${new Set(users).size} user(s) are listed and no groups`,
      ),
    );
  }
  return errors;
}

function checkHttpMatch(http: Obj, at: PathSegment[]): PolicyError[] {
  const errors: PolicyError[] = [];
  const headers = obj(http.headers);
  for (const name of Object.keys(headers ?? {})) {
    if (!HEADER_NAME.test(name)) errors.push(err([...at, 'headers'], `"${name}" is not a valid HTTP header name`));
  }
  list(http.hosts).forEach((raw, i) => {
    const host = str(raw);
    if (host === undefined) return;
    const parsed = parseHostPattern(host);
    if (typeof parsed === 'string') errors.push(err([...at, 'hosts', i], parsed));
  });
  list(http.json).forEach((raw, i) => {
    const path = str(obj(raw)?.path);
    if (path !== undefined) errors.push(...checkJsonPath(path, [...at, 'json', i, 'path'], true));
  });
  list(obj(http.response)?.json).forEach((raw, i) => {
    const path = str(obj(raw)?.path);
    if (path !== undefined) errors.push(...checkJsonPath(path, [...at, 'response', 'json', i, 'path'], true));
  });
  return errors;
}

/** `tools` and `arguments` only match tools/call: with methods that leave it out the rule never matches. */
function checkMcpMatch(mcp: Obj, at: PathSegment[]): PolicyError[] {
  const errors: PolicyError[] = [];
  const methods = list(mcp.methods);
  if (methods.length > 0 && !methods.includes('tools/call')) {
    for (const field of ['tools', 'arguments'] as const) {
      if (mcp[field] !== undefined) {
        errors.push(
          err(
            [...at, field],
            `${field} only match tools/call, but methods does not include tools/call (${methods.map(String).join(', ')}): the rule would never match; add tools/call to methods or drop ${field}`,
          ),
        );
      }
    }
  }
  list(mcp.tools).forEach((raw, i) => {
    if (typeof raw === 'string' && raw.trim() === '') errors.push(err([...at, 'tools', i], 'a tool name pattern cannot be empty'));
  });
  list(mcp.arguments).forEach((raw, i) => {
    const path = str(obj(raw)?.path);
    if (path !== undefined) errors.push(...checkJsonPath(path, [...at, 'arguments', i, 'path'], true));
  });
  return errors;
}

// ---- masking

function checkMasking(ctx: Context): PolicyError[] {
  const entries = list(ctx.spec.masking);
  const errors = uniqueNames(entries, ['spec', 'masking'], 'masking');
  entries.forEach((raw, i) => {
    const m = obj(raw);
    if (!m) return;
    const at: PathSegment[] = ['spec', 'masking', i];
    if (m.detectors === undefined && m.columns === undefined && m.jsonPaths === undefined) {
      errors.push(err(at, 'masks nothing: set at least one of detectors, columns or jsonPaths'));
    }
    list(m.columns).forEach((c, j) => {
      if (typeof c === 'string') errors.push(...parseOrError(() => parseColumnPattern(c), [...at, 'columns', j]));
    });
    list(m.jsonPaths).forEach((p, j) => {
      if (typeof p === 'string') errors.push(...checkJsonPath(p, [...at, 'jsonPaths', j], false));
    });
    if (ctx.targets) {
      list(m.targets).forEach((t, j) => {
        if (typeof t === 'string' && !ctx.targets!.has(t)) {
          errors.push(err([...at, 'targets', j], `target "${t}" is not defined in spec.targets${knownNames(ctx.targets!)}`));
        }
      });
    }
  });
  return errors;
}

function checkJsonPath(path: string, at: PathSegment[], rootAllowed: boolean): PolicyError[] {
  const errors = parseOrError(() => parseJsonPath(path), at);
  if (errors.length === 0 && !rootAllowed && path === '$') {
    return [err(at, '"$" would mask the whole body; select the fields to mask, like $.card or $..email')];
  }
  return errors;
}

// ---- podSelector

function checkSelector(spec: Obj): PolicyError[] {
  const errors: PolicyError[] = [];
  list(obj(spec.podSelector)?.matchExpressions).forEach((raw, i) => {
    const e = obj(raw);
    const op = str(e?.operator);
    const values = list(e?.values);
    const at: PathSegment[] = ['spec', 'podSelector', 'matchExpressions', i];
    if ((op === 'In' || op === 'NotIn') && values.length === 0) {
      errors.push(err([...at, 'values'], `operator ${op} needs at least one value`));
    } else if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0) {
      errors.push(err([...at, 'values'], `operator ${op} takes no values`));
    }
  });
  return errors;
}

// ---- helpers

function uniqueNames(items: unknown[], at: PathSegment[], what: string): PolicyError[] {
  const first = new Map<string, number>();
  const errors: PolicyError[] = [];
  items.forEach((raw, i) => {
    const name = str(obj(raw)?.name);
    if (name === undefined) return;
    const prev = first.get(name);
    if (prev !== undefined) {
      errors.push(err([...at, i, 'name'], `duplicate ${what} name "${name}" (also used by ${formatPath([...at, prev])})`));
    } else first.set(name, i);
  });
  return errors;
}

/** Node timers cannot run past 2^31-1 ms (~24.8 days; a longer one fires at once): cap at 576h, as the CRD does. */
export const MAX_DURATION_MS = 576 * 3_600_000;

function checkDuration(value: unknown, at: PathSegment[]): PolicyError[] {
  if (typeof value !== 'string') return [];
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (e) {
    return [err(at, (e as Error).message)];
  }
  if (ms === 0) return [err(at, 'must be longer than zero')];
  if (ms > MAX_DURATION_MS) return [err(at, `${value} is longer than the maximum of 576h (24 days)`)];
  return [];
}

/**
 * The same checks the sidecar's token verifier makes (https issuer and JWKS, clock skew at most
 * 5m, maxTokenAge above zero). Loopback http issuers pass here: they are for local development,
 * where the sidecar must also be started with the insecure-loopback option; the CRD refuses them.
 */
function checkIdentity(spec: Obj): PolicyError[] {
  const identity = obj(spec.identity);
  if (!identity) return [];
  try {
    resolveIdentitySpec(identity, true);
    return [];
  } catch (e) {
    const message = (e as Error).message;
    const field = /^spec\.identity\.([\w.]+):/.exec(message)?.[1];
    return [err(['spec', 'identity', ...(field ? field.split('.') : [])], message.replace(/^spec\.identity(\.[\w.]+)?:\s*/, ''))];
  }
}

function parseOrError(parse: () => unknown, at: PathSegment[]): PolicyError[] {
  try {
    parse();
    return [];
  } catch (e) {
    return [err(at, (e as Error).message)];
  }
}

function knownNames(targets: Map<string, TargetInfo>): string {
  return targets.size > 0 ? ` (defined: ${[...targets.keys()].join(', ')})` : '';
}

function err(at: PathSegment[], message: string): PolicyError {
  return { path: formatPath(at), message };
}

function missing(at: PathSegment[], field: string, why: string): PolicyError {
  return { path: formatPath(at), field, message: `required field "${field}" is missing: ${why}` };
}

function obj(v: unknown): Obj | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined;
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
