import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { FakeApiServer } from '../../test/support/operator/fake-apiserver';
import { silentLogger } from '../../common/log';
import { createApprovalRequestAdmission, DEFAULT_OPERATOR_USERNAME } from './admission';
import { finishedAt, startApprovalSweeper, sweepApprovalRequests } from './gc';
import type { ApprovalRequestObject } from '../../common/approvals/object';
import { startAdmissionProxy, type AdmissionProxy } from '../../test/support/operator/admission-proxy';

const NOW = new Date('2026-03-01T12:00:00Z');
const TTL = 60 * 60_000;

function obj(
  name: string,
  over: { expiresAt?: string; status?: ApprovalRequestObject['status']; created?: string } = {},
): ApprovalRequestObject {
  return {
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'ApprovalRequest',
    metadata: { name, namespace: 'agents', resourceVersion: '5', creationTimestamp: over.created ?? '2026-03-01T10:00:00Z' },
    spec: {
      policy: 'support-agent',
      rule: 'deletes-need-approval',
      operation: { kind: 'sql', display: 'DELETE FROM t', digest: 'a'.repeat(64) },
      approvers: { groups: ['sre'] },
      required: 1,
      expiresAt: over.expiresAt ?? '2026-03-01T12:10:00Z',
      requester: { subject: 'system:serviceaccount:agents:agent' },
    },
    ...(over.status ? { status: over.status } : {}),
  };
}

const decided = (at: string, state: 'approved' | 'denied' | 'cancelled' | 'expired' = 'approved'): ApprovalRequestObject['status'] => ({
  state,
  finalReason: state,
  conditions: [{ type: 'Decided', status: 'True', reason: 'X', message: state, lastTransitionTime: at }],
});

describe('sweepApprovalRequests (pure)', () => {
  test('pending past expiresAt expires with a reason; pending in time and fresh final ones stay', () => {
    const plan = sweepApprovalRequests(
      [
        obj('due', { expiresAt: '2026-03-01T11:59:59Z', status: { state: 'pending', decisions: [{ by: 'alice', verdict: 'approve' }] } }),
        obj('fresh-status', { expiresAt: '2026-03-01T11:00:00Z' }),
        obj('waiting'),
        obj('recent', { status: decided('2026-03-01T11:30:00Z') }),
      ],
      NOW,
      TTL,
    );
    expect(plan.expire).toEqual([
      {
        namespace: 'agents',
        name: 'due',
        resourceVersion: '5',
        finalReason: 'approval request due expired at 2026-03-01T11:59:59Z without a decision (1 of 1 approvals)',
      },
      {
        namespace: 'agents',
        name: 'fresh-status',
        resourceVersion: '5',
        finalReason: 'approval request fresh-status expired at 2026-03-01T11:00:00Z without a decision',
      },
    ]);
    expect(plan.delete).toEqual([]);
  });

  test('decided, denied, cancelled and expired requests are deleted once older than the TTL', () => {
    const plan = sweepApprovalRequests(
      [
        obj('old-approved', { status: decided('2026-03-01T10:59:59Z') }),
        obj('old-cancelled', { status: decided('2026-03-01T10:00:00Z', 'cancelled') }),
        obj('edge', { status: decided('2026-03-01T11:00:00Z', 'denied') }),
        obj('young', { status: decided('2026-03-01T11:00:01Z', 'expired') }),
        // no condition: the expiry time stands in for when an expired request finished
        obj('expired-no-condition', { expiresAt: '2026-03-01T10:30:00Z', status: { state: 'expired' } }),
      ],
      NOW,
      TTL,
    );
    expect(plan.delete.map((d) => d.name)).toEqual(['old-approved', 'old-cancelled', 'edge', 'expired-no-condition']);
    expect(plan.expire).toEqual([]);
  });

  test('finishedAt falls back from the condition to the last decision to creation', () => {
    expect(finishedAt(obj('a', { status: { state: 'denied', decisions: [{ verdict: 'deny', at: '2026-03-01T11:00:00Z' }] } }))).toBe(
      Date.parse('2026-03-01T11:00:00Z'),
    );
    expect(finishedAt(obj('b', { status: { state: 'cancelled' }, created: '2026-03-01T09:00:00Z' }))).toBe(
      Date.parse('2026-03-01T09:00:00Z'),
    );
  });

  test('an unreadable expiry fails closed: the request expires', () => {
    expect(sweepApprovalRequests([obj('bad', { expiresAt: 'soon' })], NOW, TTL).expire.map((e) => e.name)).toEqual(['bad']);
  });
});

describe('startApprovalSweeper against the fake API server (through the admission webhooks)', () => {
  let fake: FakeApiServer;
  let proxy: AdmissionProxy;
  let now: Date;
  beforeEach(async () => {
    fake = await FakeApiServer.start();
    now = new Date();
    proxy = await startAdmissionProxy(
      fake,
      createApprovalRequestAdmission({ policyRule: () => ({ approvers: { groups: ['sre'] }, required: 1 }), now: () => now }),
    );
  });
  afterEach(async () => {
    await proxy.close();
    await fake.close();
  });

  test('expires a due pending request (the webhook accepts it from the operator), then deletes it after the TTL', async () => {
    const sidecar = proxy.kubeConfig('system:serviceaccount:agents:agent', [], 'agents').makeApiClient(CustomObjectsApi);
    const body = obj('due', { expiresAt: new Date(now.getTime() + 1000).toISOString() });
    delete body.spec.requester; // stamped by the webhook
    delete (body.metadata as Record<string, unknown>).resourceVersion;
    delete (body.metadata as Record<string, unknown>).creationTimestamp;
    await sidecar.createNamespacedCustomObject({
      group: 'agentwarden.io',
      version: 'v1alpha1',
      namespace: 'agents',
      plural: 'approvalrequests',
      body,
    });
    fake.put({
      ...obj('kept', { expiresAt: new Date(now.getTime() + 3_600_000).toISOString() }),
      metadata: { name: 'kept', namespace: 'agents' },
    } as unknown as Record<string, unknown>);

    const client = proxy.kubeConfig(DEFAULT_OPERATOR_USERNAME, ['system:serviceaccounts']).makeApiClient(CustomObjectsApi);
    const sweeper = startApprovalSweeper({ client, log: silentLogger, ttlMs: 60_000, intervalMs: 3_600_000, now: () => now });
    try {
      expect(await sweeper.sweepNow()).toEqual({ expire: [], delete: [] });
      now = new Date(now.getTime() + 2000);
      const first = await sweeper.sweepNow();
      expect(first.expire.map((e) => e.name)).toEqual(['due']);
      const stored = fake.object('agentwarden.io/v1alpha1', 'ApprovalRequest', 'agents', 'due') as unknown as ApprovalRequestObject;
      expect(stored.status).toMatchObject({
        state: 'expired',
        finalReason: expect.stringMatching(/^approval request due expired at .* without a decision$/),
        conditions: [{ type: 'Decided', reason: 'Expired' }],
      });
      expect(stored.spec.requester?.subject).toBe('system:serviceaccount:agents:agent');
      now = new Date(now.getTime() + 61_000);
      const second = await sweeper.sweepNow();
      expect(second).toEqual({ expire: [], delete: [{ namespace: 'agents', name: 'due' }] });
      expect(fake.object('agentwarden.io/v1alpha1', 'ApprovalRequest', 'agents', 'due')).toBeUndefined();
      expect(fake.object('agentwarden.io/v1alpha1', 'ApprovalRequest', 'agents', 'kept')).toBeDefined();
    } finally {
      sweeper.stop();
    }
  });

  test('a decision that lands between list and expire wins (the expiry carries a resourceVersion precondition)', async () => {
    const sidecar = proxy.kubeConfig('system:serviceaccount:agents:agent', [], 'agents').makeApiClient(CustomObjectsApi);
    const body = obj('race', { expiresAt: new Date(now.getTime() + 1000).toISOString() });
    delete body.spec.requester;
    delete (body.metadata as Record<string, unknown>).resourceVersion;
    await sidecar.createNamespacedCustomObject({
      group: 'agentwarden.io',
      version: 'v1alpha1',
      namespace: 'agents',
      plural: 'approvalrequests',
      body,
    });
    const stale = fake.object('agentwarden.io/v1alpha1', 'ApprovalRequest', 'agents', 'race') as unknown as ApprovalRequestObject;
    // alice approves in time
    const alice = proxy.kubeConfig('alice', ['sre']).makeApiClient(CustomObjectsApi);
    await alice.patchNamespacedCustomObjectStatus(
      {
        group: 'agentwarden.io',
        version: 'v1alpha1',
        namespace: 'agents',
        plural: 'approvalrequests',
        name: 'race',
        body: { status: { decisions: [{ verdict: 'approve' }] } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    // the sweeper acts on a list taken before the approval (a one-call seam stands in for the
    // race): its resourceVersion precondition fails with 409 and the approval stands
    now = new Date(now.getTime() + 2000);
    const client = proxy.kubeConfig(DEFAULT_OPERATOR_USERNAME).makeApiClient(CustomObjectsApi);
    const list = jest.spyOn(client, 'listClusterCustomObject').mockResolvedValueOnce({ items: [stale] });
    const sweeper = startApprovalSweeper({ client, log: silentLogger, ttlMs: 60_000, intervalMs: 3_600_000, now: () => now });
    try {
      expect(await sweeper.sweepNow()).toEqual({ expire: [], delete: [] });
      expect(list).toHaveBeenCalled();
      expect(
        (fake.object('agentwarden.io/v1alpha1', 'ApprovalRequest', 'agents', 'race') as unknown as ApprovalRequestObject).status?.state,
      ).toBe('approved');
    } finally {
      sweeper.stop();
    }
  });
});
