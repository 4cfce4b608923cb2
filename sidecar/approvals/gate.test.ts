import { createApprovalGate } from './gate';
import { LocalApprovalStore } from './local-store';
import { httpDigest, mcpDigest, sqlDigest } from './operation';
import { UNPARSEABLE_BODY } from '../../common/policy/engine';
import type { Decision, Identity } from '../../common/policy/types';
import type { ApprovalGate, HttpApprovalGate, McpApprovalGate } from './hold';
import type { ApprovalBackend, ApprovalRequest } from './types';

const agent: Identity = { subject: 'system:serviceaccount:shop:agent', groups: ['agents'], source: 'pod' };
const alice: Identity = { subject: 'alice', groups: ['sre'], source: 'token' };
const bob: Identity = { subject: 'bob', groups: ['sre'], source: 'token' };

function decision(approval: Decision['approval'] = { approvers: { groups: ['sre'] }, timeout: '10m' }): Decision {
  return { action: 'hold', rule: 'deletes-need-approval', reason: 'rule "deletes-need-approval" holds DELETE', approval };
}

/** A back end that forwards to `store`; tests replace one method with a failing one. */
function delegateTo(store: ApprovalBackend): ApprovalBackend {
  return {
    create: (r) => store.create(r),
    get: (id) => store.get(id),
    list: (f) => store.list(f),
    decide: (...a) => store.decide(...a),
    cancel: (id, reason) => store.cancel(id, reason),
    wait: (id, signal) => store.wait(id, signal),
  };
}

async function nextCreated(created: ApprovalRequest[], n = 1): Promise<ApprovalRequest> {
  while (created.length < n) await new Promise((r) => setTimeout(r, 1));
  return created[n - 1];
}

describe('createApprovalGate', () => {
  let store: LocalApprovalStore;
  let created: ApprovalRequest[];
  let gate: ReturnType<typeof createApprovalGate>;
  beforeEach(() => {
    store = new LocalApprovalStore();
    created = [];
    gate = createApprovalGate(store, { onCreated: (r) => created.push(r) });
  });
  afterEach(() => store.close());

  test('implements both gate interfaces', () => {
    const pg: ApprovalGate = gate;
    const http: HttpApprovalGate = gate;
    const mcp: McpApprovalGate = gate;
    expect(pg.hold).toBe(http.hold);
    expect(mcp.hold).toBe(http.hold);
  });

  test('SQL hold: request carries policy, rule, target, requester, operation, approvers, 10m expiry; approve resolves', async () => {
    const ac = new AbortController();
    const p = gate.hold({
      target: 'orders-db',
      policy: 'agent-policy',
      rule: 'deletes-need-approval',
      decision: decision(),
      identity: agent,
      operation: { sql: 'DELETE FROM orders WHERE id = $1', params: ['7'] },
      signal: ac.signal,
    });
    const rec = await nextCreated(created);
    expect(rec).toMatchObject({
      policy: 'agent-policy',
      rule: 'deletes-need-approval',
      target: 'orders-db',
      requester: { subject: agent.subject, groups: ['agents'] },
      approvers: { users: [], groups: ['sre'] },
      required: 1,
      state: 'pending',
      operation: { kind: 'sql', digest: sqlDigest('DELETE FROM orders WHERE id = $1', ['7']) },
    });
    expect(rec.operation.display).toBe("DELETE FROM orders WHERE id = $1\n-- bound parameters:\n  $1 = '7'");
    expect(Date.parse(rec.expiresAt) - Date.parse(rec.createdAt)).toBe(600_000);
    await store.decide(rec.id, alice, 'approve', 'ok');
    await expect(p).resolves.toEqual({
      approved: true,
      reason: 'approved by alice (alice: ok)',
      approvalId: rec.id,
      decidedBy: 'alice',
      state: 'approved',
    });
  });

  test('default timeout is 10m when the rule has none; count is passed through', async () => {
    const p = gate.hold({
      target: 't',
      policy: 'p',
      rule: 'r',
      decision: decision({ approvers: { groups: ['sre'] }, count: 2 }),
      identity: agent,
      operation: { sql: 'DELETE FROM x' },
      signal: new AbortController().signal,
    });
    const rec = await nextCreated(created);
    expect(Date.parse(rec.expiresAt) - Date.parse(rec.createdAt)).toBe(600_000);
    expect(rec.required).toBe(2);
    await store.decide(rec.id, alice, 'approve', '');
    await store.decide(rec.id, bob, 'approve', '');
    await expect(p).resolves.toMatchObject({ approved: true, decidedBy: 'alice,bob' });
  });

  test('HTTP hold: METHOD URL + body excerpt, digest of what will run, namespaced policy; deny includes the reason', async () => {
    const op = {
      type: 'http' as const,
      target: '',
      method: 'post',
      host: 'api.stripe.com',
      port: 443,
      path: '/v1/refunds',
      headers: { authorization: 'Bearer sk_live_secret' },
      json: { charge: 'ch_1', amount: 5000 },
    };
    const p = gate.hold({
      operation: op,
      decision: decision(),
      identity: agent,
      policy: { name: 'agent-policy', namespace: 'shop' },
      signal: new AbortController().signal,
    });
    const rec = await nextCreated(created);
    expect(rec.policy).toBe('shop/agent-policy');
    expect(rec.operation.kind).toBe('http');
    expect(rec.operation.display).toMatch(/^POST \/\/api\.stripe\.com:443\/v1\/refunds\n\n\{/);
    expect(rec.operation.display).toContain('"amount": 5000');
    expect(rec.operation.display).not.toContain('sk_live_secret');
    expect(rec.operation.digest).toBe(httpDigest(op));
    expect(rec.operation.digest).not.toBe(httpDigest({ ...op, json: { charge: 'ch_1', amount: 5001 } }));
    await store.decide(rec.id, bob, 'deny', 'refunds go through finance');
    await expect(p).resolves.toEqual({
      approved: false,
      reason: 'denied by bob: refunds go through finance',
      approvalId: rec.id,
      decidedBy: 'bob',
      state: 'denied',
    });
  });

  test('MCP hold: target, tool and arguments shown, digest of the call; approve releases it, deny carries the reason', async () => {
    const op = {
      type: 'mcp' as const,
      target: 'crm-tools',
      method: 'tools/call',
      tool: 'run_query',
      arguments: { database: 'prod', sql: 'DELETE FROM customers WHERE id = 7' },
    };
    const p = gate.hold({
      operation: op,
      decision: decision(),
      identity: agent,
      policy: { name: 'p', namespace: 'agents' },
      signal: new AbortController().signal,
    });
    const rec = await nextCreated(created);
    expect(rec.policy).toBe('agents/p');
    expect(rec.target).toBe('crm-tools');
    expect(rec.operation.kind).toBe('mcp');
    expect(rec.operation.display).toMatch(/^tools\/call run_query on MCP server "crm-tools"\narguments:\n\{/);
    expect(rec.operation.display).toContain('"database": "prod"');
    expect(rec.operation.digest).toBe(mcpDigest(op));
    await store.decide(rec.id, alice, 'approve', 'ok');
    await expect(p).resolves.toMatchObject({ approved: true, state: 'approved', approvalId: rec.id, decidedBy: 'alice' });

    const again = gate.hold({
      operation: op,
      decision: decision(),
      identity: agent,
      policy: { name: 'p' },
      signal: new AbortController().signal,
    });
    const rec2 = await nextCreated(created, 2);
    expect(rec2.id).not.toBe(rec.id); // an approval releases one call: the same call again is a new request
    await store.decide(rec2.id, bob, 'deny', 'not on prod');
    await expect(again).resolves.toMatchObject({ approved: false, reason: 'denied by bob: not on prod', state: 'denied' });
  });

  test('an HTTP body that is not valid JSON cannot be shown to an approver: denied without opening a request', async () => {
    const op = { type: 'http' as const, target: 'api', method: 'POST', path: '/x', headers: {}, json: UNPARSEABLE_BODY };
    const out = await gate.hold({
      operation: op,
      decision: decision(),
      identity: agent,
      policy: { name: 'p' },
      signal: new AbortController().signal,
    });
    expect(out).toMatchObject({ approved: false, reason: expect.stringContaining('not valid JSON') });
    expect(await store.list({ state: 'pending' })).toEqual([]);
  });

  test('with nobody able to decide, a hold is denied at once, saying why', async () => {
    const closed = createApprovalGate(new LocalApprovalStore(), { undecidable: () => 'nobody can decide holds here' });
    const out = await closed.hold({
      target: 't',
      policy: 'p',
      rule: 'r',
      decision: decision(),
      identity: agent,
      operation: { sql: 'DELETE FROM x' },
      signal: new AbortController().signal,
    });
    expect(out).toEqual({
      approved: false,
      reason: 'rule "deletes-need-approval" holds DELETE, but nobody can decide holds here, so it is denied',
    });
  });

  test('a large HTTP body is shown as an excerpt', async () => {
    const op = { type: 'http' as const, target: 'api', method: 'PUT', path: '/x', headers: {}, json: { blob: 'a'.repeat(5000) } };
    const p = gate.hold({
      operation: op,
      decision: decision(),
      identity: agent,
      policy: { name: 'p' },
      signal: new AbortController().signal,
    });
    const rec = await nextCreated(created);
    expect(rec.operation.display.length).toBeLessThan(2200);
    expect(rec.operation.display).toContain('more characters)');
    await store.cancel(rec.id);
    await p;
  });

  test('expiry resolves as a denial that says it expired', async () => {
    const p = gate.hold({
      target: 't',
      policy: 'p',
      rule: 'r',
      decision: decision({ approvers: { groups: ['sre'] }, timeout: '50ms' }),
      identity: agent,
      operation: { sql: 'DELETE FROM x' },
      signal: new AbortController().signal,
    });
    const out = await p;
    expect(out.approved).toBe(false);
    expect(out.reason).toMatch(/^approval request \S+ expired after 50ms without a decision$/);
    expect(out.state).toBe('expired');
    expect(out.decidedBy).toBeUndefined();
  });

  test('the agent disconnecting (signal) cancels the request', async () => {
    const ac = new AbortController();
    const p = gate.hold({
      target: 't',
      policy: 'p',
      rule: 'r',
      decision: decision(),
      identity: agent,
      operation: { sql: 'DELETE FROM x' },
      signal: ac.signal,
    });
    const rec = await nextCreated(created);
    ac.abort();
    const out = await p;
    expect(out).toMatchObject({ approved: false, approvalId: rec.id });
    expect(out.reason).toContain('cancelled');
    expect((await store.get(rec.id))!.state).toBe('cancelled');
    await expect(store.decide(rec.id, alice, 'approve', '')).rejects.toMatchObject({ code: 'already_decided' });
  });

  test('an already aborted signal opens no request', async () => {
    const ac = new AbortController();
    ac.abort();
    const out = await gate.hold({
      target: 't',
      policy: 'p',
      rule: 'r',
      decision: decision(),
      identity: agent,
      operation: { sql: 'x' },
      signal: ac.signal,
    });
    expect(out.approved).toBe(false);
    expect(await store.list()).toEqual([]);
  });

  test('an invalid timeout fails closed', async () => {
    const out = await gate.hold({
      target: 't',
      policy: 'p',
      rule: 'r',
      decision: decision({ timeout: 'soon' }),
      identity: agent,
      operation: { sql: 'x' },
      signal: new AbortController().signal,
    });
    expect(out.approved).toBe(false);
    expect(out.reason).toContain('approval timeout is invalid');
  });

  test('a back end that fails is a denial with the reason, never a rejected hold', async () => {
    const failing: ApprovalBackend = { ...delegateTo(store), create: () => Promise.reject(new Error('the API server is away')) };
    const out = await createApprovalGate(failing).hold({
      target: 't',
      policy: 'p',
      rule: 'r',
      decision: decision(),
      identity: agent,
      operation: { sql: 'x' },
      signal: new AbortController().signal,
    });
    expect(out).toEqual({
      approved: false,
      reason: 'rule "deletes-need-approval" holds DELETE, but the API server is away, so it is denied',
    });
    // the store's own refusal of a bad request is a denial too
    const bad = await gate.hold({
      target: 't',
      policy: 'p',
      rule: 'r',
      decision: decision({ approvers: { groups: ['sre'] }, count: 0 }),
      identity: agent,
      operation: { sql: 'x' },
      signal: new AbortController().signal,
    });
    expect(bad).toMatchObject({
      approved: false,
      reason: expect.stringMatching(/^rule "deletes-need-approval" holds DELETE, but .*, so it is denied$/),
    });
  });

  test('a wait that fails is a denial, and the request is cancelled so nobody decides it', async () => {
    const lost: ApprovalBackend = { ...delegateTo(store), wait: () => Promise.reject(new Error('watch lost')) };
    const out = await createApprovalGate(lost, { onCreated: (r) => created.push(r) }).hold({
      target: 't',
      policy: 'p',
      rule: 'r',
      decision: decision(),
      identity: agent,
      operation: { sql: 'x' },
      signal: new AbortController().signal,
    });
    const rec = await nextCreated(created);
    expect(out).toEqual({
      approved: false,
      approvalId: rec.id,
      reason: `rule "deletes-need-approval" holds DELETE, but approval request ${rec.id} could not be followed (watch lost), so it is denied`,
    });
    await new Promise((r) => setImmediate(r));
    expect((await store.get(rec.id))!.state).toBe('cancelled');
  });

  test('a throwing onCreated hook does not block the hold', async () => {
    const g = createApprovalGate(store, {
      onCreated: () => {
        throw new Error('webhook down');
      },
    });
    const p = g.hold({
      target: 't',
      policy: 'p',
      rule: 'r',
      decision: decision({ approvers: { groups: ['sre'] }, timeout: '30ms' }),
      identity: agent,
      operation: { sql: 'x' },
      signal: new AbortController().signal,
    });
    await expect(p).resolves.toMatchObject({ approved: false });
  });

  test('100 concurrent holds are decided independently', async () => {
    const holds = Array.from({ length: 100 }, (_, i) =>
      gate.hold({
        target: 't',
        policy: 'p',
        rule: 'r',
        decision: decision(),
        identity: agent,
        operation: { sql: `DELETE FROM t WHERE id = ${i}` },
        signal: new AbortController().signal,
      }),
    );
    await nextCreated(created, 100);
    const byDisplay = new Map(created.map((r) => [r.operation.display, r.id]));
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => {
        const id = byDisplay.get(`DELETE FROM t WHERE id = ${i}`)!;
        return i % 2 === 0 ? store.decide(id, alice, 'approve', '') : store.decide(id, bob, 'deny', `no ${i}`);
      }),
    );
    const outs = await Promise.all(holds);
    outs.forEach((o, i) => {
      expect(o.approvalId).toBe(byDisplay.get(`DELETE FROM t WHERE id = ${i}`));
      expect(o.approved).toBe(i % 2 === 0);
      if (i % 2 === 1) expect(o.reason).toBe(`denied by bob: no ${i}`);
    });
  });
});
