import { applyPatch, type Operation } from 'fast-json-patch';
import { approvalRuleFromPolicy, createApprovalRequestAdmission, DEFAULT_OPERATOR_USERNAME, type ApprovalRuleInfo } from './admission';
import YAML from 'yaml';
import type { AccessPolicy } from '../../common/policy/types';
import type { ApprovalRequestObject, DecisionEntry } from '../../common/approvals/object';
import type { AdmissionRequest, AdmissionResponse, AdmissionReview, UserInfo } from '../webhook/types';
import { admissionReview, requestType } from '../../test/support/operator/admission-review';
import { API_VERSION, APPROVAL_REQUEST } from '../../common/k8s/names';

const NOW = new Date('2026-03-01T12:00:00Z');
const SIDECAR: UserInfo = {
  username: 'system:serviceaccount:agents:support-agent',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:agents', 'system:authenticated'],
};
const ALICE: UserInfo = { username: 'alice', groups: ['sre', 'system:authenticated'] };
const BOB: UserInfo = { username: 'bob', groups: ['sre', 'system:authenticated'] };
const CAROL: UserInfo = { username: 'carol', groups: ['dev', 'system:authenticated'] };
const OPERATOR: UserInfo = { username: DEFAULT_OPERATOR_USERNAME, groups: ['system:serviceaccounts'] };

const RULES: Record<string, ApprovalRuleInfo> = {
  'agents/support-agent/deletes-need-approval': { approvers: { groups: ['sre'] }, required: 1, timeoutMs: 600_000 },
  'agents/support-agent/two-person': { approvers: { users: ['dana'], groups: ['sre'] }, required: 2 },
};

const admission = createApprovalRequestAdmission({
  policyRule: (ns, name, rule) => RULES[`${ns}/${name}/${rule}`],
  now: () => NOW,
});

function newObject(over: Partial<ApprovalRequestObject['spec']> = {}): ApprovalRequestObject {
  return {
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'ApprovalRequest',
    metadata: {
      name: '0123456789abcdef01234567',
      namespace: 'agents',
      creationTimestamp: '2026-03-01T11:59:00Z',
      resourceVersion: '7',
      generation: 1,
    },
    spec: {
      policy: 'agents/support-agent',
      rule: 'deletes-need-approval',
      target: 'crm',
      operation: { kind: 'sql', display: 'DELETE FROM orders WHERE id = 1', digest: 'a'.repeat(64) },
      approvers: { users: [], groups: ['sre'] },
      required: 1,
      expiresAt: '2026-03-01T12:09:00Z',
      ...over,
    },
  };
}

/** As stored after a create through the webhooks. */
function stored(over: Partial<ApprovalRequestObject['spec']> = {}, status?: ApprovalRequestObject['status']): ApprovalRequestObject {
  const o = newObject({ requester: { subject: SIDECAR.username!, groups: SIDECAR.groups }, ...over });
  if (status) o.status = status;
  return o;
}

const APPROVAL_REQUEST_TYPE = requestType(API_VERSION, APPROVAL_REQUEST.kind, APPROVAL_REQUEST.plural);

function review(req: Partial<AdmissionRequest> & Pick<AdmissionRequest, 'operation' | 'userInfo'>): AdmissionReview {
  return admissionReview({ uid: 'uid-1', ...APPROVAL_REQUEST_TYPE, namespace: 'agents', name: '0123456789abcdef01234567', ...req });
}

function patched(obj: unknown, res: AdmissionResponse): ApprovalRequestObject {
  if (!res.patch) return structuredClone(obj) as ApprovalRequestObject;
  expect(res.patchType).toBe('JSONPatch');
  const ops = JSON.parse(Buffer.from(res.patch, 'base64').toString('utf8')) as Operation[];
  return applyPatch(structuredClone(obj), ops, true, false).newDocument as ApprovalRequestObject;
}

/** The API server's sequence: mutate, apply its patch, validate the result. */
async function admit(
  req: Partial<AdmissionRequest> & Pick<AdmissionRequest, 'operation' | 'userInfo'>,
): Promise<{ ok: boolean; message?: string; code?: number; object?: ApprovalRequestObject }> {
  const m = await admission.mutate(review(req));
  expect(m.uid).toBe('uid-1');
  if (!m.allowed) return { ok: false, message: m.status?.message, code: m.status?.code };
  const object = patched(req.object, m);
  const v = await admission.validate(review({ ...req, object }));
  if (!v.allowed) return { ok: false, message: v.status?.message, code: v.status?.code };
  return { ok: true, object };
}

function decide(old: ApprovalRequestObject, user: UserInfo, entry: DecisionEntry): ReturnType<typeof admit> {
  const object = structuredClone(old);
  object.status = { ...object.status, decisions: [...(old.status?.decisions ?? []), entry] };
  return admit({ operation: 'UPDATE', subResource: 'status', userInfo: user, object, oldObject: old });
}

function setStatus(old: ApprovalRequestObject, user: UserInfo, status: ApprovalRequestObject['status']): ReturnType<typeof admit> {
  const object = { ...structuredClone(old), status: { ...old.status, ...status } };
  return admit({ operation: 'UPDATE', subResource: 'status', userInfo: user, object, oldObject: old });
}

describe('CREATE', () => {
  test('the mutating webhook stamps spec.requester from userInfo; the result validates', async () => {
    const r = await admit({ operation: 'CREATE', userInfo: SIDECAR, object: newObject() });
    expect(r).toMatchObject({ ok: true });
    expect(r.object!.spec.requester).toEqual({ subject: SIDECAR.username, groups: SIDECAR.groups });
  });

  test('a forged requester is refused by both handlers, naming who is authenticated', async () => {
    const forged = newObject({ requester: { subject: 'alice', groups: ['sre'] } });
    const m = await admission.mutate(review({ operation: 'CREATE', userInfo: SIDECAR, object: forged }));
    expect(m.allowed).toBe(false);
    expect(m.status?.message).toBe(
      `spec.requester is set from the authenticated user (${SIDECAR.username}); this request names alice [sre], and nobody can make an approval request in someone else's name`,
    );
    // had the mutating webhook been skipped, the validating one still refuses
    const v = await admission.validate(review({ operation: 'CREATE', userInfo: SIDECAR, object: forged }));
    expect(v).toMatchObject({ allowed: false, status: { code: 403, reason: 'Forbidden' } });
    expect(v.status?.message).toContain("nobody can make an approval request in someone else's name");
    // and so is a missing requester (the mutating webhook is not running)
    const missing = await admission.validate(review({ operation: 'CREATE', userInfo: SIDECAR, object: newObject() }));
    expect(missing.status?.message).toContain('spec.requester is missing');
  });

  test("approvers and required must be the AccessPolicy rule's own", async () => {
    const friendly = await admit({
      operation: 'CREATE',
      userInfo: SIDECAR,
      object: newObject({ approvers: { users: ['friend'], groups: ['sre'] } }),
    });
    expect(friendly.ok).toBe(false);
    expect(friendly.message).toBe(
      'spec.approvers (users [friend], groups [sre]) do not match rule "deletes-need-approval" of AccessPolicy agents/support-agent (users [], groups [sre]); a request must name the rule\'s own approvers',
    );
    const fewer = await admit({
      operation: 'CREATE',
      userInfo: SIDECAR,
      object: newObject({
        rule: 'two-person',
        approvers: { users: ['dana'], groups: ['sre'] },
        required: 1,
        expiresAt: '2026-03-02T00:00:00Z',
      }),
    });
    expect(fewer.message).toBe('spec.required is 1 but rule "two-person" of AccessPolicy agents/support-agent needs 2 approval(s)');
    const ok = await admit({
      operation: 'CREATE',
      userInfo: SIDECAR,
      object: newObject({ rule: 'two-person', approvers: { groups: ['sre'], users: ['dana'] }, required: 2 }),
    });
    expect(ok.ok).toBe(true);
  });

  test('unknown rule, a policy in another namespace, a bad expiry and a non-pending status are refused', async () => {
    const cases: Array<[Partial<ApprovalRequestObject['spec']>, string]> = [
      [{ rule: 'nope' }, 'AccessPolicy agents/support-agent has no hold rule "nope"'],
      [{ policy: 'other/support-agent' }, 'spec.policy "other/support-agent" names an AccessPolicy in namespace other'],
      [{ expiresAt: '2026-03-01T11:00:00Z' }, 'spec.expiresAt 2026-03-01T11:00:00Z is already past'],
      [{ expiresAt: '2026-03-01T14:00:00Z' }, 'is later than rule "deletes-need-approval" allows'],
    ];
    for (const [over, msg] of cases) {
      const r = await admit({ operation: 'CREATE', userInfo: SIDECAR, object: newObject(over) });
      expect(r.ok).toBe(false);
      expect(r.message).toContain(msg);
    }
    const preApproved = {
      ...newObject(),
      status: { state: 'approved' as const, decisions: [{ by: 'alice', verdict: 'approve' as const }] },
    };
    const r = await admit({ operation: 'CREATE', userInfo: SIDECAR, object: preApproved });
    expect(r.message).toContain('a new approval request must be pending with no decisions');
    // a bare policy name means the request's own namespace
    expect((await admit({ operation: 'CREATE', userInfo: SIDECAR, object: newObject({ policy: 'support-agent' }) })).ok).toBe(true);
  });
});

describe('status UPDATE: decisions', () => {
  test('the decider comes from userInfo even when the body claims someone else', async () => {
    const r = await decide(stored(), ALICE, {
      by: 'mallory',
      groups: ['admins'],
      verdict: 'approve',
      reason: ' ticket OPS-1 ',
      at: '2020-01-01T00:00:00Z',
    });
    expect(r.ok).toBe(true);
    expect(r.object!.status).toEqual({
      state: 'approved',
      decisions: [
        { by: 'alice', groups: ['sre', 'system:authenticated'], verdict: 'approve', reason: 'ticket OPS-1', at: NOW.toISOString() },
      ],
      finalReason: 'approved by alice (alice: ticket OPS-1)',
      conditions: [
        {
          type: 'Decided',
          status: 'True',
          reason: 'Approved',
          message: 'approved by alice (alice: ticket OPS-1)',
          lastTransitionTime: NOW.toISOString(),
          observedGeneration: 1,
        },
      ],
    });
  });

  test('the validating webhook alone refuses a forged decider or a state that does not follow', async () => {
    const old = stored();
    const forged = {
      ...structuredClone(old),
      status: {
        state: 'approved' as const,
        decisions: [{ by: 'bob', groups: ['sre'], verdict: 'approve' as const, reason: '', at: NOW.toISOString() }],
        finalReason: 'approved by bob',
      },
    };
    const v = await admission.validate(
      review({ operation: 'UPDATE', subResource: 'status', userInfo: ALICE, object: forged, oldObject: old }),
    );
    expect(v.allowed).toBe(false);
    expect(v.status?.message).toBe(
      'status.decisions[0].by is set by the admission webhook from the authenticated user and the time ("alice"), not "bob"',
    );
    const wrongState = await admission.validate(
      review({
        operation: 'UPDATE',
        subResource: 'status',
        userInfo: ALICE,
        object: {
          ...structuredClone(old),
          status: { decisions: [{ by: 'alice', groups: ALICE.groups, verdict: 'approve', reason: '', at: NOW.toISOString() }] },
        },
        oldObject: old,
      }),
    );
    expect(wrongState.status?.message).toContain('status.state does not follow from the decisions (expected "approved")');
  });

  test('mutating is a fixed point: applied to its own output it patches nothing', async () => {
    const old = stored();
    const r = await decide(old, ALICE, { verdict: 'approve' });
    const again = await admission.mutate(
      review({ operation: 'UPDATE', subResource: 'status', userInfo: ALICE, object: r.object, oldObject: old }),
    );
    expect(again).toEqual({ uid: 'uid-1', allowed: true });
  });

  test('self-approval is refused, for the creator and for the caller it acted for', async () => {
    const r = await decide(stored({ approvers: { users: [SIDECAR.username!], groups: ['sre'] } }), SIDECAR, { verdict: 'approve' });
    expect(r).toMatchObject({
      ok: false,
      code: 403,
      message: `${SIDECAR.username} made approval request 0123456789abcdef01234567 and cannot decide it; another approver must`,
    });
    const onBehalf = await decide(stored({ onBehalfOf: { subject: 'alice' } }), ALICE, { verdict: 'approve' });
    expect(onBehalf.message).toBe('alice made approval request 0123456789abcdef01234567 and cannot decide it; another approver must');
  });

  test('a non-approver is refused with the list of approvers', async () => {
    const r = await decide(stored(), CAROL, { verdict: 'approve' });
    expect(r.message).toBe(
      'carol (groups: dev, system:authenticated) is not an approver for rule "deletes-need-approval"; approvers are groups sre',
    );
    const none = await decide(stored({ approvers: {} }), ALICE, { verdict: 'approve' });
    expect(none.message).toBe('rule "deletes-need-approval" lists no approvers, so no one can approve request 0123456789abcdef01234567');
  });

  test('two-person rule: distinct approvers, one vote each; a user listed by name counts', async () => {
    const old = stored({ rule: 'two-person', approvers: { users: ['dana'], groups: ['sre'] }, required: 2 });
    const first = await decide(old, ALICE, { verdict: 'approve', reason: 'ok' });
    expect(first.object!.status).toMatchObject({ state: 'pending', decisions: [{ by: 'alice' }] });
    expect(first.object!.status?.finalReason).toBeUndefined();
    const twice = await decide(first.object!, ALICE, { verdict: 'approve' });
    expect(twice).toMatchObject({
      ok: false,
      code: 409,
      message: 'alice already decided approval request 0123456789abcdef01234567; it needs 2 distinct approvers',
    });
    const second = await decide(first.object!, { username: 'dana', groups: [] }, { verdict: 'approve' });
    expect(second.object!.status).toMatchObject({ state: 'approved', finalReason: 'approved by alice, dana (alice: ok)' });
    const late = await decide(second.object!, BOB, { verdict: 'deny', reason: 'no' });
    expect(late).toMatchObject({
      ok: false,
      code: 409,
      message: 'approval request 0123456789abcdef01234567 is already approved by alice, dana; approvals are single-use',
    });
  });

  test('deny needs a reason and ends the request', async () => {
    expect((await decide(stored(), BOB, { verdict: 'deny', reason: '  ' })).message).toBe('a denial needs a reason; the agent is told it');
    const r = await decide(stored(), BOB, { verdict: 'deny', reason: 'use a soft delete' });
    expect(r.object!.status).toMatchObject({
      state: 'denied',
      finalReason: 'denied by bob: use a soft delete',
      conditions: [{ type: 'Decided', reason: 'Denied' }],
    });
  });

  test('earlier decisions cannot change; one decision per update', async () => {
    const old = stored({ rule: 'two-person', approvers: { users: ['dana'], groups: ['sre'] }, required: 2 });
    const first = (await decide(old, ALICE, { verdict: 'approve' })).object!;
    const rewritten = structuredClone(first);
    rewritten.status!.decisions![0].verdict = 'deny';
    rewritten.status!.decisions!.push({ verdict: 'approve' });
    expect((await admit({ operation: 'UPDATE', subResource: 'status', userInfo: BOB, object: rewritten, oldObject: first })).message).toBe(
      'status.decisions[0] was changed; recorded decisions cannot be changed or removed',
    );
    const removed = { ...structuredClone(first), status: { ...first.status, decisions: [] } };
    expect(
      (await admit({ operation: 'UPDATE', subResource: 'status', userInfo: BOB, object: removed, oldObject: first })).message,
    ).toContain('lost entries');
    const two = { ...structuredClone(old), status: { decisions: [{ verdict: 'approve' as const }, { verdict: 'approve' as const }] } };
    expect((await admit({ operation: 'UPDATE', subResource: 'status', userInfo: BOB, object: two, oldObject: old })).message).toBe(
      'exactly one decision may be added per update; this one adds 2',
    );
  });

  test('no decision after expiresAt, even while still pending', async () => {
    const r = await decide(stored({ expiresAt: '2026-03-01T11:59:59Z' }), ALICE, { verdict: 'approve' });
    expect(r).toMatchObject({
      ok: false,
      code: 409,
      message: 'approval request 0123456789abcdef01234567 expired at 2026-03-01T11:59:59Z; it can no longer be decided',
    });
  });
});

describe('status UPDATE: cancel, expire, direct state changes', () => {
  test('the requester may cancel its own pending request; others may not', async () => {
    const r = await setStatus(stored(), SIDECAR, {
      state: 'cancelled',
      finalReason: 'cancelled: the agent disconnected before a decision',
    });
    expect(r.object!.status).toMatchObject({
      state: 'cancelled',
      finalReason: 'cancelled: the agent disconnected before a decision',
      conditions: [{ type: 'Decided', reason: 'Cancelled' }],
    });
    const other = await setStatus(stored(), ALICE, { state: 'cancelled' });
    expect(other.message).toBe(
      `only the requester (${SIDECAR.username}) or the operator may cancel approval request 0123456789abcdef01234567; alice may not`,
    );
    const approved = (await decide(stored(), ALICE, { verdict: 'approve' })).object!;
    expect((await setStatus(approved, SIDECAR, { state: 'cancelled' })).message).toBe(
      'approval request 0123456789abcdef01234567 is already approved; its state cannot change',
    );
  });

  test('only the operator expires, and only once expiresAt has passed', async () => {
    const due = stored({ expiresAt: '2026-03-01T11:59:00Z' });
    const r = await setStatus(due, OPERATOR, { state: 'expired' });
    expect(r.object!.status).toMatchObject({
      state: 'expired',
      finalReason: 'approval request 0123456789abcdef01234567 expired at 2026-03-01T11:59:00Z without a decision',
    });
    expect((await setStatus(due, SIDECAR, { state: 'expired' })).message).toContain('only the operator expires approval requests');
    expect((await setStatus(stored({ expiresAt: '2026-03-01T12:05:00Z' }), OPERATOR, { state: 'expired' })).message).toBe(
      'approval request 0123456789abcdef01234567 does not expire until 2026-03-01T12:05:00Z',
    );
  });

  test('approved/denied cannot be set directly; marking a fresh request pending is fine', async () => {
    expect((await setStatus(stored(), ALICE, { state: 'approved' })).message).toBe(
      'status.state cannot be set to approved: it follows from the decisions (add one with kubectl warden approve|deny 0123456789abcdef01234567)',
    );
    const r = await setStatus(stored(), SIDECAR, { state: 'pending' });
    expect(r.object!.status).toEqual({ state: 'pending' });
  });
});

describe('other requests', () => {
  test('spec is immutable', async () => {
    const old = stored();
    const changed = stored({ approvers: { users: ['carol'] } });
    const main = await admission.validate(review({ operation: 'UPDATE', userInfo: ALICE, object: changed, oldObject: old }));
    expect(main).toMatchObject({ allowed: false, status: { message: 'spec is immutable; a new hold is a new ApprovalRequest' } });
    const labels = { ...structuredClone(old), metadata: { ...old.metadata, labels: { a: 'b' } } };
    expect((await admission.validate(review({ operation: 'UPDATE', userInfo: ALICE, object: labels, oldObject: old }))).allowed).toBe(true);
  });

  test('a review for another resource, or without a request or user, is refused', async () => {
    const other = review({ operation: 'CREATE', userInfo: SIDECAR, object: newObject() });
    other.request!.resource = { group: '', version: 'v1', resource: 'pods' };
    expect((await admission.validate(other)).status?.message).toBe('this webhook handles approvalrequests.agentwarden.io only, not pods.');
    expect(await admission.mutate({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' })).toMatchObject({ allowed: false });
    const anon = await admit({ operation: 'CREATE', userInfo: {}, object: newObject() });
    expect(anon.message).toContain('no authenticated user name');
  });
});

test('approvalRuleFromPolicy reads a hold rule from an AccessPolicy (defaults: count 1, timeout 10m)', () => {
  const policy = YAML.parse(`apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: support-agent, namespace: agents}
spec:
  targets:
    - name: crm
      postgres: {host: db, database: crm, credentialsSecret: crm-db, listenPort: 15432}
  rules:
    - name: no-ddl
      action: deny
      match: {target: crm, sql: {statements: [DROP]}}
    - name: deletes-need-approval
      action: hold
      approval: {approvers: {groups: [sre]}}
      match: {target: crm, sql: {statements: [DELETE]}}
    - name: two-person
      action: hold
      approval: {approvers: {users: [dana], groups: [sre]}, count: 2, timeout: 30m}
      match: {target: crm, sql: {statements: [TRUNCATE]}}
`) as AccessPolicy;
  expect(approvalRuleFromPolicy(policy, 'deletes-need-approval')).toEqual({
    approvers: { users: [], groups: ['sre'] },
    required: 1,
    timeoutMs: 600_000,
  });
  expect(approvalRuleFromPolicy(policy, 'two-person')).toEqual({
    approvers: { users: ['dana'], groups: ['sre'] },
    required: 2,
    timeoutMs: 1_800_000,
  });
  expect(approvalRuleFromPolicy(policy, 'no-ddl')).toBeUndefined();
  expect(approvalRuleFromPolicy(policy, 'missing')).toBeUndefined();
});
