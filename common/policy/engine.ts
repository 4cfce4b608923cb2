// The policy engine: a pure function from (operation, identity) to a decision.
// First matching rule wins per statement; a multi-statement SQL string takes the strictest
// outcome of its statements (deny > hold > allow), so one denied statement denies the string.
//
// Rules with `match.http.response` (deny only) are about what the upstream returns: `decide` skips
// them (they cannot match before there is a response), and `decideResponse` checks them against
// each parsed response document (a JSON body, or one event's JSON data in an event stream).
//
// MCP messages (issue 13): only rules without sql/http criteria can match them, and a rule with
// `match.mcp` matches nothing else. Protocol plumbing (initialize, ping, notifications, the list
// methods, responses the client sends) is allowed when no rule matches, whatever defaultAction
// says, so a deny-by-default policy still lets the agent connect and see what it may call.
import { hostMatcherHas, matcherHas, type CompiledPolicy, type CompiledRule, type CompiledSqlMatch } from './compile';
import type { Decision, HttpOperation, Identity, McpOperation, Operation, SqlOperation, SqlStatementInfo } from './types';
import { JsonTooDeepError, selectJsonPath } from './jsonpath';
import { classOfFunction, classOfKind, COPY_FILE_FUNCTION, COPY_PROGRAM_FUNCTION, inStatementClass } from './statement-classes';
import type { JsonPathSegment } from './syntax';

/** An HTTP operation with the upstream port, for host patterns that name one (`example.com:443`). */
export type HttpOperationWithPort = HttpOperation & { port?: number };

const SEVERITY: Record<Decision['action'], number> = { allow: 0, hold: 1, deny: 2 };

export function decide(policy: CompiledPolicy, op: Operation, identity: Identity): Decision {
  const caller: Caller = { subject: identity.subject.toLowerCase(), groups: identity.groups };
  if (op.type === 'sql') return decideSql(policy, op, caller);
  if (op.type === 'mcp') return decideMcp(policy, op, caller);
  for (const rule of policy.rules) {
    if (!appliesToTarget(rule, op.target) || rule.sql !== undefined || rule.mcp !== undefined || rule.http?.response !== undefined)
      continue;
    if (!identityMatches(rule, caller)) continue;
    if (rule.http === undefined || httpMatches(rule, op)) return rule.decision;
  }
  return policy.defaultDecision;
}

/** The identity as rules compare it: the subject lower-cased once per decision, not per rule. */
interface Caller {
  subject: string;
  groups: readonly string[];
}

/**
 * The response rules that can still deny this request's response: deny rules with response
 * criteria whose target, identity and request criteria (method, path, host, headers, request JSON)
 * all match `op`, in policy order. Empty when nothing needs to inspect the response, so the
 * caller can skip buffering or parsing it. Independent of which rule (or default) allowed the
 * request: the request-phase decision never consults response rules.
 */
export function responseRulesFor(policy: CompiledPolicy, op: HttpOperation, identity: Identity): CompiledRule[] {
  const out: CompiledRule[] = [];
  const caller: Caller = { subject: identity.subject.toLowerCase(), groups: identity.groups };
  for (const rule of policy.rules) {
    if (rule.action !== 'deny' || rule.http?.response === undefined) continue;
    if (!appliesToTarget(rule, op.target) || !identityMatches(rule, caller)) continue;
    if (httpMatches(rule, op)) out.push(rule);
  }
  return out;
}

/**
 * Checks one parsed response document against rules from responseRulesFor: the first rule whose
 * response criteria all match denies; undefined lets the response through. A document that is
 * not JSON (undefined) matches nothing.
 */
export function decideResponseWith(rules: readonly CompiledRule[], responseDoc: unknown): Decision | undefined {
  if (responseDoc === undefined) return undefined;
  for (const rule of rules) {
    const criteria = rule.http?.response?.json;
    if (!criteria) continue;
    if (!criteria.every((j) => jsonCriterionMatches(rule, j, responseDoc))) continue;
    return { action: 'deny', rule: rule.name, reason: rule.message ?? `response denied by rule "${rule.name}"` };
  }
  return undefined;
}

/**
 * `decide` for what the upstream returned: the first deny rule whose request criteria match `op`
 * and whose response criteria match `responseDoc`; undefined lets the response through.
 */
export function decideResponse(policy: CompiledPolicy, op: HttpOperation, identity: Identity, responseDoc: unknown): Decision | undefined {
  return decideResponseWith(responseRulesFor(policy, op, identity), responseDoc);
}

// ---- MCP

/** Methods that only set up, keep alive or list: allowed when no rule matches, whatever defaultAction says. */
const MCP_PLUMBING: ReadonlySet<string> = new Set([
  'initialize',
  'ping',
  'tools/list',
  'resources/list',
  'resources/templates/list',
  'prompts/list',
  '', // a response the client sends (to a server's sampling, elicitation or roots request)
]);

export function isMcpPlumbing(method: string): boolean {
  return MCP_PLUMBING.has(method) || method.startsWith('notifications/');
}

const MCP_PLUMBING_DECISION: Decision = Object.freeze({ action: 'allow', reason: 'MCP protocol message; no rule matched' });

function decideMcp(policy: CompiledPolicy, op: McpOperation, caller: Caller): Decision {
  for (const rule of policy.rules) {
    if (!appliesToTarget(rule, op.target) || rule.sql !== undefined || rule.http !== undefined) continue;
    if (!identityMatches(rule, caller)) continue;
    if (rule.mcp === undefined || mcpMatches(rule, op)) return rule.decision;
  }
  return isMcpPlumbing(op.method) ? MCP_PLUMBING_DECISION : policy.defaultDecision;
}

function mcpMatches(rule: CompiledRule, op: McpOperation): boolean {
  const m = rule.mcp!;
  if (m.methods && !m.methods.has(op.method)) return false;
  if (m.tools || m.arguments) {
    if (op.tool === undefined) return false;
    if (m.tools && !mcpToolMatches(rule, op.tool)) return false;
    if (m.arguments) {
      for (const j of m.arguments) if (!argumentCriterionMatches(rule, j, op.arguments)) return false;
    }
  }
  return true;
}

function mcpToolMatches(rule: CompiledRule, tool: string): boolean {
  return matcherHas(rule.mcp!.tools!, rule.action === 'allow' ? tool : tool.toLowerCase());
}

/**
 * `http.json` on the arguments object: absent arguments select nothing; arguments too deep to
 * search (or marked unparseable) match restrictive rules and no allow rule (fail closed).
 */
function argumentCriterionMatches(rule: CompiledRule, j: { segments: JsonPathSegment[]; values?: Set<string> }, args: unknown): boolean {
  if (args === UNPARSEABLE_BODY) return rule.action !== 'allow';
  if (args === undefined) return false;
  let selected: unknown[];
  try {
    selected = selectJsonPath(args, j.segments);
  } catch (err) {
    if (err instanceof JsonTooDeepError) return rule.action !== 'allow';
    throw err;
  }
  if (!j.values) return selected.length > 0;
  return selected.some((v) => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') && j.values!.has(String(v)));
}

/**
 * Whether `tools/list` shows `tool` to this caller: the rules are walked as for a `tools/call` of
 * it. A rule with argument conditions cannot say for every call: allow or hold shows the tool
 * (some call may pass), deny keeps walking. A rule without them decides: deny hides, allow and hold
 * show. No rule: shown when defaultAction is allow.
 */
export function mcpToolVisible(policy: CompiledPolicy, target: string, tool: string, identity: Identity): boolean {
  const caller: Caller = { subject: identity.subject.toLowerCase(), groups: identity.groups };
  for (const rule of policy.rules) {
    if (!appliesToTarget(rule, target) || rule.sql !== undefined || rule.http !== undefined) continue;
    if (!identityMatches(rule, caller)) continue;
    const m = rule.mcp;
    if (m?.methods && !m.methods.has('tools/call')) continue;
    if (m?.tools && !mcpToolMatches(rule, tool)) continue;
    if (m?.arguments) {
      if (rule.action === 'deny') continue;
      return true;
    }
    return rule.action !== 'deny';
  }
  return policy.defaultAction === 'allow';
}

// ---- SQL

function decideSql(policy: CompiledPolicy, op: SqlOperation, caller: Caller): Decision {
  if (op.parseError !== undefined) {
    // Fail closed whatever defaultAction says: the server accepts text our parser rejects (deeper
    // nesting, future grammar), so forwarding it would run statements no rule has seen.
    if (op.parserFailure) {
      return {
        action: 'deny',
        reason: `statement could not be classified (${op.parseError}); refused whatever the target's unparseable setting says`,
      };
    }
    if (policy.targets.get(op.target)?.postgres?.unparseable === 'allow') {
      return {
        action: 'allow',
        reason: `statement could not be parsed (${op.parseError}); forwarded because the target sets unparseable: allow`,
      };
    }
    return { action: 'deny', reason: `statement could not be parsed (${op.parseError}); the sidecar refuses what it cannot classify` };
  }
  let worst: Decision | undefined;
  for (const stmt of op.statements) {
    const d = decideStatement(policy, op.target, stmt, caller);
    if (worst === undefined || SEVERITY[d.action] > SEVERITY[worst.action]) worst = d;
    if (worst.action === 'deny') break;
  }
  return worst ?? { action: policy.defaultAction, reason: `empty statement; default action ${policy.defaultAction}` };
}

function decideStatement(policy: CompiledPolicy, target: string, stmt: SqlStatementInfo, caller: Caller): Decision {
  let worst: Decision | undefined;
  for (const rule of policy.rules) {
    if (!appliesToTarget(rule, target) || !identityMatches(rule, caller)) continue;
    if (!sqlMatches(rule, stmt)) continue;
    if (stmt.opaque !== true) return rule.decision;
    // SQL we cannot see: assume the worst, so the strictest matching rule decides wherever it
    // stands in the list (an earlier allow does not hide a later deny).
    if (worst === undefined || SEVERITY[rule.action] > SEVERITY[worst.action]) worst = rule.decision;
    if (worst.action === 'deny') break;
  }
  return worst ?? policy.defaultDecision;
}

function appliesToTarget(rule: CompiledRule, target: string): boolean {
  return rule.target === undefined || rule.target === target;
}

function identityMatches(rule: CompiledRule, caller: Caller): boolean {
  if (rule.subjects && !matcherHas(rule.subjects, caller.subject)) return false;
  if (rule.groups) {
    let any = false;
    for (const g of caller.groups) if (rule.groups.has(g)) any = true;
    if (!any) return false;
  }
  return true;
}

/**
 * All criteria given must match (AND); within one criterion any value matches (OR). `statements`
 * matches a kind the statement runs or a class it belongs to (by kind or side-effect function).
 *
 * An opaque statement (DYNAMIC with SQL text we cannot see) could run anything, so every deny or
 * hold rule's SQL criteria match it; an allow rule with SQL criteria matches it only when it names
 * DYNAMIC itself (so no rule vouches for what it cannot see unless it says so) and its other
 * criteria (tables, functions, the statement's other kinds) match what can be seen.
 */
export function sqlMatches(rule: CompiledRule, stmt: SqlStatementInfo): boolean {
  const m: CompiledSqlMatch | undefined = rule.sql;
  if ((rule.http !== undefined || rule.mcp !== undefined) && m === undefined) return false;
  if (m === undefined) return true;
  if (stmt.opaque === true) {
    if (rule.action !== 'allow') return true;
    // An allow rule must name DYNAMIC, and its other criteria still bound what it vouches for.
    if (m.statements?.has('DYNAMIC') !== true) return false;
  }
  if ((m.statements || m.classes) && !statementsMatch(m, stmt)) return false;
  if (rule.action === 'allow' && (m.statements || m.classes) && !allowCoversStatement(m, stmt)) return false;
  if (m.tables && !stmt.tables.some((t) => matcherHas(m.tables!, t))) return false;
  if (m.functions && !functionsMatch(m, stmt)) return false;
  return true;
}

function statementsMatch(m: CompiledSqlMatch, stmt: SqlStatementInfo): boolean {
  if (m.statements && stmt.kinds.some((k) => m.statements!.has(k))) return true;
  if (m.classes) for (const c of m.classes) if (inStatementClass(c, stmt.kinds, stmt.functions)) return true;
  return false;
}

/**
 * An allow rule vouches for the whole statement, not one part of it: every kind the statement runs
 * must be named (itself or through its class), except reads (a subquery inside an allowed DELETE);
 * and every side-effect function it calls must be in a class the rule names (or READ), whether the
 * rule names classes or only kinds. So `allow [READ]` does not let `WITH d AS (DELETE ...) SELECT`
 * or `SELECT nextval(...)` through, and `allow [SELECT]` allows neither `EXPLAIN ANALYZE DELETE`
 * nor `SELECT pg_read_file(...)`.
 */
function allowCoversStatement(m: CompiledSqlMatch, stmt: SqlStatementInfo): boolean {
  for (const k of stmt.kinds) {
    if (m.statements?.has(k)) continue;
    const cls = classOfKind(k);
    if (cls === 'READ' || (cls !== undefined && m.classes?.includes(cls))) continue;
    return false;
  }
  for (const f of stmt.functions) {
    const cls = classOfFunction(f);
    if (cls !== undefined && cls !== 'READ' && m.classes?.includes(cls) !== true) return false;
  }
  return true;
}

function functionsMatch(m: CompiledSqlMatch, stmt: SqlStatementInfo): boolean {
  for (const f of stmt.functions) {
    if (matcherHas(m.functions!, f)) return true;
    // A rule on server-file functions also catches COPY to/from a server file or PROGRAM.
    if (m.functionsCatchCopy && (f === COPY_FILE_FUNCTION || f === COPY_PROGRAM_FUNCTION)) return true;
  }
  return false;
}

function httpMatches(rule: CompiledRule, op: Extract<Operation, { type: 'http' }>): boolean {
  const m = rule.http!;
  if (m.methods && !m.methods.has(op.method.toUpperCase())) return false;
  if (m.paths && !m.paths.some((re) => re.test(op.path))) return false;
  if (m.hosts && (op.host === undefined || !hostMatcherHas(m.hosts, op.host, (op as HttpOperationWithPort).port))) return false;
  if (m.headers) {
    for (const h of m.headers) {
      const v = op.headers[h.name];
      const values = Array.isArray(v) ? v : v === undefined ? [] : [v];
      if (!values.some((x) => h.value.test(x))) return false;
    }
  }
  if (m.json) {
    for (const j of m.json) if (!jsonCriterionMatches(rule, j, op.json)) return false;
  }
  return true;
}

/**
 * A body criterion matches when the path selects a value in `values` (any selected value, when no
 * values are listed); for restrictive rules, in the body or in any element of a top-level array. A request without a JSON body does not match; one that claimed JSON but did
 * not parse cannot be checked, so restrictive rules treat it as a match (fail closed) and allow
 * rules as no match.
 */
function jsonCriterionMatches(rule: CompiledRule, j: { segments: JsonPathSegment[]; values?: Set<string> }, body: unknown): boolean {
  if (body === UNPARSEABLE_BODY) return rule.action !== 'allow';
  if (body === undefined) return false; // no JSON body: nothing for the criterion to select
  let selected: unknown[];
  try {
    selected = selectJsonPath(body, j.segments);
    // A top-level array is a batch (JSON-RPC 2.0: MCP, Ethereum nodes) whose every element the
    // server acts on as a request of its own: restrictive rules also look into each one.
    if (rule.action !== 'allow' && Array.isArray(body)) {
      for (const element of body) for (const v of selectJsonPath(element, j.segments)) selected.push(v);
    }
  } catch (err) {
    // Too deep to search: like an unparseable body, restrictive rules match (fail closed).
    if (err instanceof JsonTooDeepError) return rule.action !== 'allow';
    throw err;
  }
  if (!j.values) return selected.length > 0;
  return selected.some((v) => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') && j.values!.has(String(v)));
}

/** Put in HttpOperation.json when the request claimed JSON but did not parse. */
export const UNPARSEABLE_BODY: unique symbol = Symbol('unparseable JSON body');
