// Admission for ApprovalRequest objects: the only place that decides who asked and who decided.
// Design: the mutating handler sets everything derived (spec.requester on CREATE; on a status
// update the new decision's by/groups/at from userInfo, then state, finalReason and the Decided
// condition from the decisions). The validating handler recomputes the same desired status from
// oldObject and the body and admits only an exact match, so a body that skipped or fought the
// mutating webhook (a forged `by`, a state that does not follow from the decisions) is refused.
// Derivation is a fixed point: applied to its own output it changes nothing.
import { compare } from 'fast-json-patch';
import type { AdmissionHandler, AdmissionRequest, AdmissionResponse, AdmissionReview, UserInfo } from '../webhook/types';
import { APPROVAL_REQUEST, GROUP, VERSION } from '../../common/k8s/names';
import { parseDuration } from '../../common/policy/syntax';
import type { AccessPolicy } from '../../common/policy/types';
import {
  DECIDED_CONDITION,
  expiredReason,
  isFinal,
  stateOf,
  type ApprovalRequestObject,
  type ApprovalRequestStatus,
  type ApprovalState,
  type Condition,
  type DecisionEntry,
} from '../../common/approvals/object';

/** The operator's own identity: it may expire (and cancel) requests. */
export const DEFAULT_OPERATOR_USERNAME = 'system:serviceaccount:agent-warden:agent-warden-operator';
/** How far a webhook-stamped time may be from this webhook's clock and still be kept as is. */
const CLOCK_SKEW_MS = 60_000;

export interface ApprovalRuleInfo {
  approvers: { users?: string[]; groups?: string[] };
  /** approval.count, default 1. */
  required: number;
  /** approval.timeout in ms, when the rule sets one: bounds spec.expiresAt. */
  timeoutMs?: number;
}

/** The sidecar's wait when a rule sets no approval.timeout (the contract's default). */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 10 * 60_000;

/**
 * `policyRule` for one AccessPolicy object (from the operator's informer cache): the hold rule's
 * approvers, count and timeout, or undefined when the policy has no hold rule of that name.
 */
export function approvalRuleFromPolicy(policy: AccessPolicy, ruleName: string): ApprovalRuleInfo | undefined {
  const rule = policy.spec?.rules?.find((r) => r.name === ruleName);
  if (!rule || rule.action !== 'hold') return undefined;
  const a = rule.approval ?? {};
  let timeoutMs = DEFAULT_APPROVAL_TIMEOUT_MS;
  try {
    if (a.timeout !== undefined) timeoutMs = parseDuration(a.timeout);
  } catch {
    return undefined; // a policy that does not parse holds nothing the webhook can vouch for
  }
  return {
    approvers: { users: [...(a.approvers?.users ?? [])], groups: [...(a.approvers?.groups ?? [])] },
    required: a.count ?? 1,
    timeoutMs,
  };
}

export interface ApprovalAdmissionContext {
  /** The hold rule `ruleName` of AccessPolicy namespace/policyName; undefined when there is none (or it is not a hold rule). */
  policyRule(namespace: string, policyName: string, ruleName: string): ApprovalRuleInfo | undefined | Promise<ApprovalRuleInfo | undefined>;
  now?(): Date;
  /** userInfo.username of the operator (default DEFAULT_OPERATOR_USERNAME). */
  operatorUsername?: string;
}

export interface ApprovalAdmission {
  mutate: AdmissionHandler;
  validate: AdmissionHandler;
}

/** Refusal with an HTTP-ish code for the AdmissionResponse status. */
class Refusal extends Error {
  constructor(
    message: string,
    readonly code: 400 | 403 | 409 = 403,
  ) {
    super(message);
  }
}

const REASONS: Record<number, string> = { 400: 'BadRequest', 403: 'Forbidden', 409: 'Conflict' };

function allow(uid: string, patched?: { from: unknown; to: unknown }): AdmissionResponse {
  const res: AdmissionResponse = { uid, allowed: true };
  if (patched) {
    const ops = compare(patched.from as object, patched.to as object);
    if (ops.length > 0) {
      res.patchType = 'JSONPatch';
      res.patch = Buffer.from(JSON.stringify(ops)).toString('base64');
    }
  }
  return res;
}

function refuse(uid: string, e: Refusal): AdmissionResponse {
  return { uid, allowed: false, status: { code: e.code, reason: REASONS[e.code], message: e.message } };
}

function sameSet(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = new Set(a ?? []);
  const y = new Set(b ?? []);
  return x.size === y.size && [...x].every((v) => y.has(v));
}

function list(v: readonly string[] | undefined): string {
  return v && v.length > 0 ? `[${v.join(', ')}]` : '[]';
}

/** JSON with sorted keys and undefined dropped: equality that ignores key order. */
function canonical(v: unknown): string | undefined {
  return JSON.stringify(v, (_k, val: unknown) => {
    if (val && typeof val === 'object' && !Array.isArray(val)) {
      return Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)));
    }
    return val;
  });
}

function username(user: UserInfo): string {
  if (!user.username) throw new Refusal('the request has no authenticated user name (userInfo.username); approval requests need one', 400);
  return user.username;
}

/** `ns/name` or `name` (then in the request's namespace). */
function splitPolicy(policy: string, namespace: string): { namespace: string; name: string } {
  const i = policy.indexOf('/');
  if (i < 0) return { namespace, name: policy };
  const ns = policy.slice(0, i);
  if (ns !== namespace) {
    throw new Refusal(
      `spec.policy "${policy}" names an AccessPolicy in namespace ${ns}; an ApprovalRequest must name a policy in its own namespace (${namespace})`,
    );
  }
  return { namespace: ns, name: policy.slice(i + 1) };
}

// ---- CREATE ----------------------------------------------------------------------------------

function checkRequesterNotForged(obj: ApprovalRequestObject, user: UserInfo): void {
  const body = obj.spec?.requester;
  if (body === undefined) return;
  const name = username(user);
  if (body.subject !== name || (body.groups !== undefined && !sameSet(body.groups, user.groups))) {
    throw new Refusal(
      `spec.requester is set from the authenticated user (${name}); this request names ${body.subject}${body.groups ? ` ${list(body.groups)}` : ''}, and nobody can make an approval request in someone else's name`,
    );
  }
}

/** The object with spec.requester stamped from userInfo. Refuses a body that names someone else. */
export function stampRequester(obj: ApprovalRequestObject, user: UserInfo): ApprovalRequestObject {
  checkRequesterNotForged(obj, user);
  const out = structuredClone(obj);
  out.spec = { ...out.spec, requester: { subject: username(user), groups: [...(user.groups ?? [])] } };
  return out;
}

/** Every CREATE rule except the requester stamp; throws Refusal. */
export async function checkCreate(
  obj: ApprovalRequestObject,
  opts: { user: UserInfo; namespace: string; ctx: ApprovalAdmissionContext; now: Date },
): Promise<void> {
  const { user, namespace, ctx, now } = opts;
  const spec = obj.spec;
  if (!spec || typeof spec !== 'object') throw new Refusal('spec is required', 400);
  const name = username(user);
  if (!spec.requester)
    throw new Refusal(
      `spec.requester is missing; the mutating webhook stamps it from the authenticated user (${name}), so the webhook is not running`,
      400,
    );
  if (spec.requester.subject !== name || !sameSet(spec.requester.groups, user.groups)) {
    throw new Refusal(
      `spec.requester (${spec.requester.subject} ${list(spec.requester.groups)}) is not the authenticated user (${name} ${list(user.groups)}); nobody can make an approval request in someone else's name`,
    );
  }
  if (typeof spec.policy !== 'string' || spec.policy === '') throw new Refusal('spec.policy is required', 400);
  if (typeof spec.rule !== 'string' || spec.rule === '') throw new Refusal('spec.rule is required', 400);
  const pol = splitPolicy(spec.policy, namespace);
  const rule = await ctx.policyRule(pol.namespace, pol.name, spec.rule);
  if (!rule)
    throw new Refusal(
      `AccessPolicy ${pol.namespace}/${pol.name} has no hold rule "${spec.rule}"; an approval request must name the rule that held it`,
    );
  const a = spec.approvers ?? {};
  if (!sameSet(a.users, rule.approvers.users) || !sameSet(a.groups, rule.approvers.groups)) {
    throw new Refusal(
      `spec.approvers (users ${list(a.users)}, groups ${list(a.groups)}) do not match rule "${spec.rule}" of AccessPolicy ${pol.namespace}/${pol.name} (users ${list(rule.approvers.users)}, groups ${list(rule.approvers.groups)}); a request must name the rule's own approvers`,
    );
  }
  if (spec.required !== rule.required) {
    throw new Refusal(
      `spec.required is ${spec.required} but rule "${spec.rule}" of AccessPolicy ${pol.namespace}/${pol.name} needs ${rule.required} approval(s)`,
    );
  }
  const expires = Date.parse(spec.expiresAt);
  if (Number.isNaN(expires)) throw new Refusal(`spec.expiresAt "${spec.expiresAt}" is not an RFC 3339 time`, 400);
  if (expires <= now.getTime()) throw new Refusal(`spec.expiresAt ${spec.expiresAt} is already past`, 400);
  if (rule.timeoutMs !== undefined && expires > now.getTime() + rule.timeoutMs + CLOCK_SKEW_MS) {
    throw new Refusal(
      `spec.expiresAt ${spec.expiresAt} is later than rule "${spec.rule}" allows (timeout ${rule.timeoutMs}ms from now)`,
      400,
    );
  }
  const st = obj.status;
  if (st && (stateOf(obj) !== 'pending' || (st.decisions?.length ?? 0) > 0 || st.finalReason)) {
    throw new Refusal('a new approval request must be pending with no decisions (status.state pending, status.decisions empty)', 400);
  }
}

// ---- UPDATE of the status subresource ----------------------------------------------------------

export interface StatusUpdate {
  old: ApprovalRequestObject;
  body: ApprovalRequestObject;
  user: UserInfo;
  now: Date;
  operatorUsername: string;
}

function keepTime(claimed: string | undefined, now: Date): string {
  const t = claimed === undefined ? NaN : Date.parse(claimed);
  return Number.isFinite(t) && Math.abs(t - now.getTime()) <= CLOCK_SKEW_MS ? (claimed as string) : now.toISOString();
}

const CONDITION_REASON: Record<ApprovalState, string> = {
  pending: 'Pending',
  approved: 'Approved',
  denied: 'Denied',
  expired: 'Expired',
  cancelled: 'Cancelled',
};

function withDecided(u: StatusUpdate, state: ApprovalState, finalReason: string): Condition[] {
  const others = (u.old.status?.conditions ?? []).filter((c) => c.type !== DECIDED_CONDITION);
  const claimed = u.body.status?.conditions?.find((c) => c.type === DECIDED_CONDITION);
  const cond: Condition = {
    type: DECIDED_CONDITION,
    status: 'True',
    reason: CONDITION_REASON[state],
    message: finalReason,
    lastTransitionTime: keepTime(claimed?.lastTransitionTime, u.now),
  };
  if (u.old.metadata.generation !== undefined) cond.observedGeneration = u.old.metadata.generation;
  return [...others, cond];
}

function approverList(spec: ApprovalRequestObject['spec']): string {
  const who = [
    spec.approvers?.users?.length ? `users ${spec.approvers.users.join(', ')}` : '',
    spec.approvers?.groups?.length ? `groups ${spec.approvers.groups.join(', ')}` : '',
  ].filter(Boolean);
  return who.join(' and ');
}

function checkDecider(u: StatusUpdate, name: string, entry: DecisionEntry): void {
  const { old } = u;
  const id = old.metadata.name ?? '?';
  const spec = old.spec;
  const state = stateOf(old);
  if (state !== 'pending') {
    const by = [...new Set((old.status?.decisions ?? []).map((d) => d.by).filter(Boolean))];
    throw new Refusal(
      `approval request ${id} is already ${state}${by.length && state !== 'cancelled' && state !== 'expired' ? ` by ${by.join(', ')}` : ''}; approvals are single-use`,
      409,
    );
  }
  if (u.now.getTime() >= Date.parse(spec.expiresAt))
    throw new Refusal(`approval request ${id} expired at ${spec.expiresAt}; it can no longer be decided`, 409);
  if (name === spec.requester?.subject || name === spec.onBehalfOf?.subject) {
    throw new Refusal(`${name} made approval request ${id} and cannot decide it; another approver must`);
  }
  const groups = u.user.groups ?? [];
  const isApprover = (spec.approvers?.users ?? []).includes(name) || groups.some((g) => (spec.approvers?.groups ?? []).includes(g));
  if (!isApprover) {
    const who = approverList(spec);
    throw new Refusal(
      who === ''
        ? `rule "${spec.rule}" lists no approvers, so no one can approve request ${id}`
        : `${name} (groups: ${groups.join(', ') || 'none'}) is not an approver for rule "${spec.rule}"; approvers are ${who}`,
    );
  }
  if ((old.status?.decisions ?? []).some((d) => d.by === name)) {
    throw new Refusal(`${name} already decided approval request ${id}; it needs ${spec.required} distinct approvers`, 409);
  }
  if (entry.verdict !== 'approve' && entry.verdict !== 'deny')
    throw new Refusal(`a decision's verdict must be approve or deny, not "${String(entry.verdict)}"`, 400);
  if (entry.reason !== undefined && typeof entry.reason !== 'string') throw new Refusal("a decision's reason must be a string", 400);
  if (entry.verdict === 'deny' && (entry.reason ?? '').trim() === '')
    throw new Refusal('a denial needs a reason; the agent is told it', 400);
}

/** State and finalReason that follow from the decisions (the same wording as the local store). */
function outcome(decisions: DecisionEntry[], required: number): { state: ApprovalState; finalReason?: string } {
  const deny = decisions.find((d) => d.verdict === 'deny');
  if (deny) return { state: 'denied', finalReason: `denied by ${deny.by}${deny.reason ? `: ${deny.reason}` : ''}` };
  const approvals = decisions.filter((d) => d.verdict === 'approve');
  if (approvals.length < required) return { state: 'pending' };
  const reasons = approvals.filter((d) => d.reason).map((d) => `${d.by}: ${d.reason}`);
  return {
    state: 'approved',
    finalReason: `approved by ${approvals.map((d) => d.by).join(', ')}${reasons.length ? ` (${reasons.join('; ')})` : ''}`,
  };
}

function normalise(st: ApprovalRequestStatus | undefined): ApprovalRequestStatus {
  const out: ApprovalRequestStatus = {};
  if (st?.state !== undefined) out.state = st.state;
  if (st?.decisions && st.decisions.length > 0) out.decisions = st.decisions;
  if (st?.finalReason) out.finalReason = st.finalReason;
  if (st?.conditions && st.conditions.length > 0) out.conditions = st.conditions;
  return out;
}

/**
 * The status this update is allowed to produce, derived from the old object, the authenticated
 * user and the body's one new decision (or its cancel/expire); throws Refusal when the update is
 * not allowed at all. The mutating handler writes the result; the validating one requires it.
 */
export function desiredStatus(u: StatusUpdate): ApprovalRequestStatus {
  const name = username(u.user);
  const id = u.old.metadata.name ?? '?';
  const oldStatus = normalise(u.old.status);
  const body = normalise(u.body.status);
  const oldDecisions = oldStatus.decisions ?? [];
  const decisions = body.decisions ?? [];
  for (let i = 0; i < Math.min(oldDecisions.length, decisions.length); i++) {
    if (canonical(oldDecisions[i]) !== canonical(decisions[i]))
      throw new Refusal(`status.decisions[${i}] was changed; recorded decisions cannot be changed or removed`);
  }
  if (decisions.length < oldDecisions.length)
    throw new Refusal('status.decisions lost entries; recorded decisions cannot be changed or removed');
  const added = decisions.length - oldDecisions.length;
  if (added > 1) throw new Refusal(`exactly one decision may be added per update; this one adds ${added}`, 400);

  if (added === 1) {
    const entry = decisions[decisions.length - 1];
    checkDecider(u, name, entry);
    const stamped: DecisionEntry = {
      by: name,
      groups: [...(u.user.groups ?? [])],
      verdict: entry.verdict,
      reason: (entry.reason ?? '').trim(),
      at: keepTime(entry.at, u.now),
    };
    const all = [...oldDecisions, stamped];
    const result = outcome(all, u.old.spec.required);
    const out: ApprovalRequestStatus = { ...oldStatus, state: result.state, decisions: all };
    if (result.finalReason !== undefined) {
      out.finalReason = result.finalReason;
      out.conditions = withDecided(u, result.state, result.finalReason);
    }
    return out;
  }

  const from = stateOf(u.old);
  const to = body.state ?? from;
  if (to === from && isFinal(from) && canonical(body) !== canonical(oldStatus)) {
    throw new Refusal(`approval request ${id} is already ${from}; its status cannot change`, 409);
  }
  if (to === from) {
    // Nothing to decide; marking a fresh request pending (its status is empty after create) is fine.
    return { ...oldStatus, ...(to === 'pending' && body.state === 'pending' ? { state: 'pending' as const } : {}) };
  }
  if (isFinal(from)) throw new Refusal(`approval request ${id} is already ${from}; its state cannot change`, 409);
  const isOperator = name === u.operatorUsername;
  if (to === 'cancelled') {
    if (!isOperator && name !== u.old.spec.requester?.subject) {
      throw new Refusal(
        `only the requester (${u.old.spec.requester?.subject ?? 'unknown'}) or the operator may cancel approval request ${id}; ${name} may not`,
      );
    }
    const reason = body.finalReason?.trim() || `cancelled by ${name}`;
    return { ...oldStatus, state: 'cancelled', finalReason: reason, conditions: withDecided(u, 'cancelled', reason) };
  }
  if (to === 'expired') {
    if (!isOperator)
      throw new Refusal(`only the operator expires approval requests; ${name} may not set approval request ${id} to expired`);
    if (u.now.getTime() + CLOCK_SKEW_MS < Date.parse(u.old.spec.expiresAt)) {
      throw new Refusal(`approval request ${id} does not expire until ${u.old.spec.expiresAt}`, 409);
    }
    const reason = body.finalReason?.trim() || expiredReason(u.old);
    return { ...oldStatus, state: 'expired', finalReason: reason, conditions: withDecided(u, 'expired', reason) };
  }
  throw new Refusal(`status.state cannot be set to ${to}: it follows from the decisions (add one with kubectl warden approve|deny ${id})`);
}

/** The first field where the body differs from what is allowed, for a message that names it. */
function firstDifference(body: ApprovalRequestStatus, want: ApprovalRequestStatus): string {
  const bd = body.decisions ?? [];
  const wd = want.decisions ?? [];
  for (let i = 0; i < wd.length; i++) {
    for (const f of ['by', 'groups', 'at'] as const) {
      if (canonical(bd[i]?.[f]) !== canonical(wd[i][f])) {
        return `status.decisions[${i}].${f} is set by the admission webhook from the authenticated user and the time (${canonical(wd[i][f])}), not ${canonical(bd[i]?.[f]) ?? 'missing'}`;
      }
    }
  }
  for (const f of ['state', 'finalReason', 'conditions', 'decisions'] as const) {
    if (canonical(body[f]) !== canonical(want[f])) {
      return `status.${f} does not follow from the decisions (expected ${canonical(want[f]) ?? 'none'}); the mutating webhook derives it`;
    }
  }
  return 'status differs from what the admission webhook derives';
}

// ---- handlers ---------------------------------------------------------------------------------

function checkResource(req: AdmissionRequest): void {
  if (req.resource?.group !== GROUP || req.resource.resource !== APPROVAL_REQUEST.plural) {
    throw new Refusal(
      `this webhook handles ${APPROVAL_REQUEST.plural}.${GROUP} only, not ${req.resource?.resource}.${req.resource?.group}`,
      400,
    );
  }
}

function objects(req: AdmissionRequest): { obj: ApprovalRequestObject; old?: ApprovalRequestObject } {
  const obj = req.object as ApprovalRequestObject | null | undefined;
  if (!obj || typeof obj !== 'object') throw new Refusal(`${req.operation} carries no object`, 400);
  const old = (req.oldObject ?? undefined) as ApprovalRequestObject | undefined;
  if (req.operation === 'UPDATE' && !old) throw new Refusal('UPDATE carries no oldObject', 400);
  return { obj, old };
}

function checkSpecUnchanged(obj: ApprovalRequestObject, old: ApprovalRequestObject): void {
  if (canonical(obj.spec) !== canonical(old.spec)) throw new Refusal('spec is immutable; a new hold is a new ApprovalRequest', 400);
}

export function createApprovalRequestAdmission(ctx: ApprovalAdmissionContext): ApprovalAdmission {
  const now = (): Date => ctx.now?.() ?? new Date();
  const operatorUsername = ctx.operatorUsername ?? DEFAULT_OPERATOR_USERNAME;

  async function run(review: AdmissionReview, step: (req: AdmissionRequest) => Promise<AdmissionResponse>): Promise<AdmissionResponse> {
    const req = review.request;
    if (!req) return { uid: '', allowed: false, status: { code: 400, reason: 'BadRequest', message: 'AdmissionReview has no request' } };
    try {
      checkResource(req);
      return await step(req);
    } catch (e) {
      if (e instanceof Refusal) return refuse(req.uid, e);
      // fail closed, without echoing internals that might hold object contents
      return refuse(req.uid, new Refusal(`approval admission failed: ${(e as Error).message}`, 400));
    }
  }

  const mutate: AdmissionHandler = (review) =>
    run(review, async (req) => {
      if (req.operation === 'CREATE' && !req.subResource) {
        const { obj } = objects(req);
        return allow(req.uid, { from: obj, to: stampRequester(obj, req.userInfo) });
      }
      if (req.operation === 'UPDATE' && req.subResource === 'status') {
        const { obj, old } = objects(req);
        const status = desiredStatus({ old: old!, body: obj, user: req.userInfo, now: now(), operatorUsername });
        return allow(req.uid, { from: obj, to: { ...obj, status } });
      }
      return allow(req.uid);
    });

  const validate: AdmissionHandler = (review) =>
    run(review, async (req) => {
      if (req.operation === 'CREATE' && !req.subResource) {
        const { obj } = objects(req);
        await checkCreate(obj, { user: req.userInfo, namespace: req.namespace ?? obj.metadata?.namespace ?? '', ctx, now: now() });
        return allow(req.uid);
      }
      if (req.operation === 'UPDATE') {
        const { obj, old } = objects(req);
        checkSpecUnchanged(obj, old!);
        if (req.subResource === 'status') {
          const want = desiredStatus({ old: old!, body: obj, user: req.userInfo, now: now(), operatorUsername });
          const body = normalise(obj.status);
          if (canonical(body) !== canonical(want)) throw new Refusal(firstDifference(body, want));
        }
      }
      return allow(req.uid);
    });

  return { mutate, validate };
}

/**
 * What the webhook configurations register (the HTTPS server and the chart own the rest): the
 * mutating and validating webhooks both see CREATE of approvalrequests and UPDATE of
 * approvalrequests and approvalrequests/status. failurePolicy must be Fail.
 */
export const APPROVAL_WEBHOOK_RULES = [
  {
    apiGroups: [GROUP],
    apiVersions: [VERSION],
    operations: ['CREATE', 'UPDATE'],
    resources: [APPROVAL_REQUEST.plural, `${APPROVAL_REQUEST.plural}/status`],
    scope: 'Namespaced',
  },
] as const;
