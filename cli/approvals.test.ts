import { formatTable, runApprovalsCli } from './approvals';
import { createApprovalGate } from '../sidecar/approvals/gate';
import { LocalApprovalStore } from '../sidecar/approvals/local-store';
import { sqlOperation } from '../sidecar/approvals/operation';
import { startTestAdmin, newApprovalRequest } from '../sidecar/approvals/test-helpers';
import type { Identity } from '../common/policy/types';
import type { ApprovalRequest, NewApprovalRequest } from '../sidecar/approvals/types';

const agent: Identity = { subject: 'system:serviceaccount:shop:agent', groups: ['agents'], source: 'pod' };
const TOKENS: Record<string, Identity> = {
  'tok-alice': { subject: 'alice', groups: ['sre'], source: 'token' },
  'tok-mallory': { subject: 'mallory', groups: ['dev'], source: 'token' },
};

function newReq(over: Partial<NewApprovalRequest> = {}): NewApprovalRequest {
  return newApprovalRequest({ operation: sqlOperation('DELETE FROM orders\n WHERE id = $1 AND note = $2 AND something_long = true', ['42', null]), timeoutMs: 10 * 60_000, ...over });
}

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (s: string) => void out.push(s), stderr: (s: string) => void err.push(s) }, out, err };
}

describe('warden approvals / approve / deny', () => {
  let store: LocalApprovalStore;
  let admin: Awaited<ReturnType<typeof startTestAdmin>>;
  const run = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const c = capture();
    return runApprovalsCli([...argv, '--admin-addr', admin.addr], c.io, env).then((code) => ({ code, out: c.out.join('\n'), err: c.err.join('\n') }));
  };

  beforeEach(async () => {
    store = new LocalApprovalStore();
    admin = await startTestAdmin({
      backend: store,
      verifyToken: async (t) => {
        const id = TOKENS[t];
        if (!id) throw new Error('token expired');
        return id;
      },
    });
  });
  afterEach(async () => {
    store.close();
    await admin.close();
  });

  test('list: readable table, and JSON with -o json', async () => {
    const a = await store.create(newReq());
    const table = await run(['approvals', 'list']);
    expect(table.code).toBe(0);
    const lines = table.out.split('\n');
    expect(lines[0]).toMatch(/^ID\s+AGE\s+EXPIRES\s+RULE\s+TARGET\s+REQUESTER\s+OPERATION$/);
    expect(lines[1]).toContain(a.id);
    expect(lines[1]).toMatch(/in (10m|9m5\ds)/);
    expect(lines[1]).toContain('deletes-need-approval');
    expect(lines[1]).toContain('orders-db');
    expect(lines[1]).toContain(agent.subject);
    expect(lines[1]).toContain('DELETE FROM orders WHERE id = $1');
    expect(lines[1]).toMatch(/…$/);
    const json = await run(['approvals', 'list', '-o', 'json']);
    expect(json.code).toBe(0);
    const items = JSON.parse(json.out) as ApprovalRequest[];
    expect(items.map((i) => i.id)).toEqual([a.id]);
    expect(items[0].operation.display).toContain("$1 = '42'");
  });

  test('list with nothing pending', async () => {
    const r = await run(['approvals']);
    expect(r).toEqual({ code: 0, out: 'No pending approval requests.', err: '' });
  });

  test('approve with --token releases the held operation (end to end through the gate)', async () => {
    const created: ApprovalRequest[] = [];
    const gate = createApprovalGate(store, { onCreated: (r) => created.push(r) });
    const held = gate.hold({
      target: 'orders-db',
      policy: 'agent-policy',
      rule: 'deletes-need-approval',
      decision: { action: 'hold', rule: 'deletes-need-approval', reason: 'held', approval: { approvers: { groups: ['sre'] } } },
      identity: agent,
      operation: { sql: 'DELETE FROM orders WHERE id = 1' },
      signal: new AbortController().signal,
    });
    while (created.length === 0) await new Promise((r) => setTimeout(r, 1));
    const r = await run(['approve', created[0].id, '--reason', 'ticket OPS-1', '--token', 'tok-alice']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${created[0].id} approved: approved by alice (alice: ticket OPS-1)`);
    await expect(held).resolves.toMatchObject({ approved: true, decidedBy: 'alice', approvalId: created[0].id });
  });

  test('deny takes the token from WARDEN_TOKEN and requires --reason', async () => {
    const a = await store.create(newReq());
    const noReason = await run(['deny', a.id], { WARDEN_TOKEN: 'tok-alice' });
    expect(noReason.code).toBe(2);
    expect(noReason.err).toContain('--reason');
    const r = await run(['deny', a.id, '--reason', 'use a soft delete'], { WARDEN_TOKEN: 'tok-alice' });
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${a.id} denied: denied by alice: use a soft delete`);
    expect((await store.get(a.id))!.state).toBe('denied');
  });

  test('two-person rule: first approval reports how many more are needed', async () => {
    const a = await store.create(newReq({ required: 2 }));
    const r = await run(['approve', a.id, '--token', 'tok-alice']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('1 of 2 approvals; waiting for 1 more');
  });

  test('errors: non-zero exit with the API message and code', async () => {
    const a = await store.create(newReq());
    const noToken = await run(['approve', a.id]);
    expect(noToken.code).toBe(1);
    expect(noToken.err).toContain('approver_identity_required');
    const bad = await run(['approve', a.id, '--token', 'nope']);
    expect(bad.code).toBe(1);
    expect(bad.err).toBe('warden approve: approver token rejected: token expired (invalid_token)');
    const outsider = await run(['approve', a.id, '--token', 'tok-mallory']);
    expect(outsider.code).toBe(1);
    expect(outsider.err).toContain('not an approver');
    expect((await run(['approve', 'missing', '--token', 'tok-alice'])).err).toContain('(not_found)');
    await run(['approve', a.id, '--token', 'tok-alice']);
    const again = await run(['approve', a.id, '--token', 'tok-alice']);
    expect(again.code).toBe(1);
    expect(again.err).toContain('already approved');
  });

  test('usage errors exit 2; unreachable admin API says so', async () => {
    expect((await run(['approve'])).code).toBe(2);
    expect((await run(['approvals', 'list', '-o', 'yaml'])).code).toBe(2);
    expect((await run(['approvals', 'frob'])).code).toBe(2);
    expect((await run(['approve', 'x', '--bogus'])).code).toBe(2);
    const c = capture();
    const code = await runApprovalsCli(['approvals', 'list', '--admin-addr', '127.0.0.1:1'], c.io, {});
    expect(code).toBe(1);
    expect(c.err.join('\n')).toContain('cannot reach the sidecar admin API at 127.0.0.1:1');
  });

  test('formatTable marks two-person progress and final states', () => {
    const now = Date.parse('2026-01-01T00:10:00Z');
    const rec: ApprovalRequest = {
      id: 'abc',
      policy: 'p',
      rule: 'r',
      target: '',
      requester: { subject: 's', groups: [] },
      operation: { kind: 'http', display: 'POST //api/x', digest: 'd' },
      approvers: { users: [], groups: [] },
      required: 2,
      createdAt: '2026-01-01T00:00:00Z',
      expiresAt: '2026-01-01T00:15:00Z',
      state: 'pending',
      decisions: [],
    };
    const line = formatTable([rec], now).split('\n')[1];
    expect(line).toMatch(/^abc\s+10m\s+in 5m\s+r \[0\/2\]\s+-\s+s\s+POST \/\/api\/x$/);
  });
});

test('warden main dispatches approvals/approve/deny', async () => {
  const { main } = await import('./main');
  const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    expect(await main(['approvals', '--help'])).toBe(0);
    expect(await main(['approve', '--help'])).toBe(0);
    expect(await main(['deny', '--help'])).toBe(0);
    expect(String(write.mock.calls[0][0])).toContain('warden approve ID');
  } finally {
    write.mockRestore();
  }
});
