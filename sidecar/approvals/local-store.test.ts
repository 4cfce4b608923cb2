import { LocalApprovalStore } from './local-store';
import { sqlOperation } from './operation';
import { ApprovalError, type NewApprovalRequest } from './types';
import type { Identity } from '../../common/policy/types';

import { newApprovalRequest } from '../../test/support/sidecar/approvals-admin';

const agent: Identity = { subject: 'system:serviceaccount:shop:agent', groups: ['agents'], source: 'pod' };
const alice: Identity = { subject: 'alice', groups: ['sre'], source: 'token' };
const bob: Identity = { subject: 'bob', groups: ['sre'], source: 'token' };
const carol: Identity = { subject: 'carol', groups: [], source: 'token' };
const mallory: Identity = { subject: 'mallory', groups: ['dev'], source: 'token' };

function newReq(over: Partial<NewApprovalRequest> = {}): NewApprovalRequest {
  return newApprovalRequest({
    policy: 'shop/agent-policy',
    operation: sqlOperation('DELETE FROM orders WHERE id = $1', ['42']),
    approvers: { groups: ['sre'], users: ['carol'] },
    ...over,
  });
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ApprovalError);
    return (e as ApprovalError).code;
  }
  throw new Error('expected an ApprovalError');
}

describe('LocalApprovalStore', () => {
  let store: LocalApprovalStore;
  beforeEach(() => {
    store = new LocalApprovalStore();
  });
  afterEach(() => store.close());

  test('creates a pending record with a URL-safe random id, expiry and the operation', async () => {
    const r = await store.create(newReq());
    expect(r.id).toMatch(/^[0-9a-f]{24}$/);
    expect(r.state).toBe('pending');
    expect(r.required).toBe(1);
    expect(Date.parse(r.expiresAt) - Date.parse(r.createdAt)).toBe(60_000);
    expect(r.operation.display).toContain("$1 = '42'");
    expect(r.operation.digest).toMatch(/^[0-9a-f]{64}$/);
    const other = await store.create(newReq());
    expect(other.id).not.toBe(r.id);
    expect((await store.list({ state: 'pending' })).map((x) => x.id)).toEqual([r.id, other.id]);
    expect(await store.get(r.id)).toEqual(r);
  });

  test('approval by a group member resolves waiters; approvals are single-use', async () => {
    const r = await store.create(newReq());
    const waiting = store.wait(r.id);
    const after = await store.decide(r.id, alice, 'approve', 'looks fine');
    expect(after.state).toBe('approved');
    const final = await waiting;
    expect(final.state).toBe('approved');
    expect(final.finalReason).toBe('approved by alice (alice: looks fine)');
    expect(final.decisions).toEqual([expect.objectContaining({ by: 'alice', groups: ['sre'], verdict: 'approve', reason: 'looks fine' })]);
    expect(await code(store.decide(r.id, bob, 'approve', ''))).toBe('already_decided');
    expect(await code(store.decide(r.id, bob, 'deny', 'no'))).toBe('already_decided');
  });

  test('a user listed by name may decide without a group', async () => {
    const r = await store.create(newReq());
    expect((await store.decide(r.id, carol, 'approve', '')).state).toBe('approved');
  });

  test('deny carries the approver reason', async () => {
    const r = await store.create(newReq());
    await store.decide(r.id, alice, 'deny', 'not during business hours');
    const final = await store.wait(r.id);
    expect(final.state).toBe('denied');
    expect(final.finalReason).toBe('denied by alice: not during business hours');
  });

  test('the requester can never approve their own request, even when in the approver group', async () => {
    const r = await store.create(newReq({ approvers: { groups: ['agents'] } }));
    const self: Identity = { ...agent, source: 'token' };
    expect(await code(store.decide(r.id, self, 'approve', ''))).toBe('self_approval');
    expect((await store.get(r.id))!.state).toBe('pending');
  });

  test('the decider must be in the rule users or groups; no approvers means nobody', async () => {
    const r = await store.create(newReq());
    const e = await store.decide(r.id, mallory, 'approve', '').catch((x: ApprovalError) => x);
    expect((e as ApprovalError).code).toBe('not_an_approver');
    expect((e as ApprovalError).status).toBe(403);
    expect((e as ApprovalError).message).toContain('groups sre');
    const none = await store.create(newReq({ approvers: undefined }));
    expect(await code(store.decide(none.id, alice, 'approve', ''))).toBe('not_an_approver');
  });

  test('unknown id → not_found; wrong digest → digest_mismatch', async () => {
    expect(await code(store.decide('nope', alice, 'approve', ''))).toBe('not_found');
    const r = await store.create(newReq());
    const other = sqlOperation('DELETE FROM orders');
    expect(await code(store.decide(r.id, alice, 'approve', '', other.digest))).toBe('digest_mismatch');
    expect((await store.decide(r.id, alice, 'approve', '', r.operation.digest)).state).toBe('approved');
  });

  test('two-person rule: needs distinct approvers; one approver cannot vote twice', async () => {
    const r = await store.create(newReq({ required: 2 }));
    const after1 = await store.decide(r.id, alice, 'approve', '');
    expect(after1.state).toBe('pending');
    expect(await code(store.decide(r.id, alice, 'approve', ''))).toBe('already_voted');
    const after2 = await store.decide(r.id, bob, 'approve', 'second pair of eyes');
    expect(after2.state).toBe('approved');
    expect(after2.finalReason).toContain('approved by alice, bob');
  });

  test('two-person rule: a deny by any authorised approver denies', async () => {
    const r = await store.create(newReq({ required: 2 }));
    await store.decide(r.id, alice, 'approve', '');
    const after = await store.decide(r.id, bob, 'deny', 'wrong table');
    expect(after.state).toBe('denied');
    expect(after.finalReason).toBe('denied by bob: wrong table');
  });

  test('an unauthorised deny does nothing', async () => {
    const r = await store.create(newReq());
    expect(await code(store.decide(r.id, mallory, 'deny', 'ha'))).toBe('not_an_approver');
    expect((await store.get(r.id))!.state).toBe('pending');
  });

  test('expiry timer moves a request to expired and deciding it then fails', async () => {
    const r = await store.create(newReq({ timeoutMs: 40 }));
    const final = await store.wait(r.id);
    expect(final.state).toBe('expired');
    expect(final.finalReason).toBe(`approval request ${r.id} expired after 40ms without a decision`);
    const e = await store.decide(r.id, alice, 'approve', '').catch((x: ApprovalError) => x);
    expect((e as ApprovalError).code).toBe('expired');
    expect((e as ApprovalError).message).toContain('expired at');
  });

  test('expiry with fake timers, including a partly approved two-person request', async () => {
    jest.useFakeTimers();
    try {
      const r = await store.create(newReq({ timeoutMs: 10 * 60_000, required: 2 }));
      await store.decide(r.id, alice, 'approve', '');
      const waiting = store.wait(r.id);
      jest.advanceTimersByTime(10 * 60_000);
      const final = await waiting;
      expect(final.state).toBe('expired');
      expect(final.finalReason).toContain('expired after 10m without a decision (1 of 2 approvals)');
    } finally {
      jest.useRealTimers();
    }
  });

  test('a due request expires on access even if its timer has not fired yet', async () => {
    jest.useFakeTimers();
    try {
      const r = await store.create(newReq({ timeoutMs: 1000 }));
      jest.setSystemTime(Date.now() + 5000); // clock moved, timer not run
      expect(await code(store.decide(r.id, alice, 'approve', ''))).toBe('expired');
    } finally {
      jest.useRealTimers();
    }
  });

  test('cancel (agent disconnected) ends a pending request; deciding it then fails', async () => {
    const r = await store.create(newReq());
    const waiting = store.wait(r.id);
    await store.cancel(r.id);
    const final = await waiting;
    expect(final.state).toBe('cancelled');
    expect(final.finalReason).toContain('agent disconnected');
    expect(await code(store.decide(r.id, alice, 'approve', ''))).toBe('already_decided');
    // cancel after a decision changes nothing
    const r2 = await store.create(newReq());
    await store.decide(r2.id, alice, 'approve', '');
    expect((await store.cancel(r2.id))!.state).toBe('approved');
  });

  test('wait stops on its signal without cancelling the request', async () => {
    const r = await store.create(newReq());
    const ac = new AbortController();
    const p = store.wait(r.id, ac.signal);
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect((await store.get(r.id))!.state).toBe('pending');
  });

  test('records are returned as copies', async () => {
    const r = await store.create(newReq());
    r.state = 'approved';
    r.approvers.users.push('mallory');
    expect((await store.get(r.id))!.state).toBe('pending');
    expect(await code(store.decide(r.id, mallory, 'approve', ''))).toBe('not_an_approver');
  });

  test('final records are forgotten after the retention time', async () => {
    const short = new LocalApprovalStore({ retainMs: 20 });
    const r = await short.create(newReq());
    await short.decide(r.id, alice, 'approve', '');
    expect(await short.get(r.id)).toBeDefined();
    await new Promise((res) => setTimeout(res, 50));
    expect(await short.get(r.id)).toBeUndefined();
    short.close();
  });

  test('rejects a bad timeout or count', async () => {
    expect(await code(store.create(newReq({ timeoutMs: 0 })))).toBe('invalid_request');
    expect(await code(store.create(newReq({ required: 0 })))).toBe('invalid_request');
  });

  test('100 concurrent holds are decided independently', async () => {
    const recs = await Promise.all(
      Array.from({ length: 100 }, (_, i) => store.create(newReq({ operation: sqlOperation(`DELETE FROM t WHERE id = ${i}`) }))),
    );
    expect(new Set(recs.map((r) => r.id)).size).toBe(100);
    const waits = recs.map((r) => store.wait(r.id));
    await Promise.all(
      recs.map((r, i) =>
        i % 3 === 0
          ? store.decide(r.id, alice, 'approve', `ok ${i}`)
          : i % 3 === 1
            ? store.decide(r.id, bob, 'deny', `no ${i}`)
            : store.cancel(r.id),
      ),
    );
    const finals = await Promise.all(waits);
    finals.forEach((f, i) => {
      expect(f.id).toBe(recs[i].id);
      expect(f.operation.display).toBe(`DELETE FROM t WHERE id = ${i}`);
      expect(f.state).toBe(i % 3 === 0 ? 'approved' : i % 3 === 1 ? 'denied' : 'cancelled');
      if (i % 3 === 1) expect(f.finalReason).toBe(`denied by bob: no ${i}`);
    });
    expect(await store.list({ state: 'pending' })).toEqual([]);
  });
});
