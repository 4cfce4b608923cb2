import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { formatTable } from './approvals';
import { runApprovalsCli } from './run';
import { FakeApiServer } from '../test/support/operator/fake-apiserver';
import { startAdmissionProxy, type AdmissionProxy } from '../test/support/operator/admission-proxy';
import { createApprovalRequestAdmission } from '../operator/approvals/admission';
import { KubeApprovalBackend } from '../sidecar/approvals/kube-backend';
import { createApprovalGate } from '../sidecar/approvals/gate';
import { LocalApprovalStore } from '../sidecar/approvals/local-store';
import { sqlDigest, sqlOperation } from '../sidecar/approvals/operation';
import type { ApprovalRequestObject } from '../common/approvals/object';
import { startTestAdmin, newApprovalRequest } from '../test/support/sidecar/approvals-admin';
import type { Identity } from '../common/policy/types';
import type { ApprovalBackend, ApprovalRequest, NewApprovalRequest } from '../sidecar/approvals/types';
import type { HoldOutcome } from '../sidecar/approvals/hold';

const agent: Identity = { subject: 'system:serviceaccount:shop:agent', groups: ['agents'], source: 'pod' };
const TOKENS: Record<string, Identity> = {
  'tok-alice': { subject: 'alice', groups: ['sre'], source: 'token' },
  'tok-mallory': { subject: 'mallory', groups: ['dev'], source: 'token' },
};

function newReq(over: Partial<NewApprovalRequest> = {}): NewApprovalRequest {
  return newApprovalRequest({
    operation: sqlOperation('DELETE FROM orders\n WHERE id = $1 AND note = $2 AND something_long = true', ['42', null]),
    timeoutMs: 10 * 60_000,
    ...over,
  });
}

/** Holds a DELETE through the gate, as a sidecar would, and returns once its request is open. */
async function holdDelete(backend: ApprovalBackend): Promise<{ held: Promise<HoldOutcome>; rec: ApprovalRequest }> {
  const created: ApprovalRequest[] = [];
  const held = createApprovalGate(backend, { onCreated: (r) => created.push(r) }).hold({
    target: 'orders-db',
    policy: 'agent-policy',
    rule: 'deletes-need-approval',
    decision: { action: 'hold', rule: 'deletes-need-approval', reason: 'held', approval: { approvers: { groups: ['sre'] } } },
    identity: agent,
    operation: { sql: 'DELETE FROM orders WHERE id = 1' },
    signal: new AbortController().signal,
  });
  let ended = false;
  void held.then(
    () => (ended = true),
    () => (ended = true),
  );
  while (created.length === 0) {
    if (ended) throw new Error(`the hold ended before a request was opened: ${JSON.stringify(await held)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return { held, rec: created[0] };
}

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  // one entry per write, its final line break dropped (what main's io adds when missing)
  const push = (into: string[]) => (s: string) => void into.push(s.replace(/\n$/, ''));
  return { io: { stdout: push(out), stderr: push(err) }, out, err };
}

describe('warden approvals / approve / deny', () => {
  let store: LocalApprovalStore;
  let admin: Awaited<ReturnType<typeof startTestAdmin>>;
  const run = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const c = capture();
    return runApprovalsCli([...argv, '--admin-addr', admin.addr], c.io, env).then((code) => ({
      code,
      out: c.out.join('\n'),
      err: c.err.join('\n'),
    }));
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
    const yaml = await run(['approvals', 'list', '-o', 'yaml']);
    expect(YAML.parse(yaml.out)).toEqual(items);
  });

  test('list with nothing pending', async () => {
    const r = await run(['approvals']);
    expect(r).toEqual({ code: 0, out: 'No pending approval requests.', err: '' });
  });

  test('approve with --token releases the held operation (end to end through the gate)', async () => {
    const { held, rec } = await holdDelete(store);
    const r = await run(['approve', rec.id, '--reason', 'ticket OPS-1', '--token', 'tok-alice']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${rec.id} approved: approved by alice (alice: ticket OPS-1)`);
    await expect(held).resolves.toMatchObject({ approved: true, decidedBy: 'alice', approvalId: rec.id });
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
    const xml = await run(['approvals', 'list', '-o', 'xml']);
    expect(xml.code).toBe(2);
    expect(xml.err).toMatch(
      /^warden approvals list: option '-o, --output <format>' argument 'xml' is invalid\. Allowed choices are table, json, yaml; see 'warden approvals list --help'$/,
    );
    expect((await run(['approvals', 'frob'])).code).toBe(2);
    expect(await run(['approve', 'x', '--bogus'])).toEqual({
      code: 2,
      out: '',
      err: "warden approve: unknown option '--bogus'; see 'warden approve --help'",
    });
    expect((await run(['approve', 'x', '-A'])).code).toBe(2); // -A lists; a decision names its namespace
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
    expect(write.mock.calls.map((c) => String(c[0])).join('')).toContain('warden approve ID');
  } finally {
    write.mockRestore();
  }
});

describe('kubectl warden approvals / approve / deny (Kubernetes ApprovalRequests)', () => {
  // Real client-node against the fake API server, with the real admission handlers in front of it.
  const NS = 'agents';
  const SA = `system:serviceaccount:${NS}:support-agent`;
  const RULES: Record<string, { approvers: { users?: string[]; groups?: string[] }; required: number }> = {
    'agents/agent-policy/deletes-need-approval': { approvers: { groups: ['sre'] }, required: 1 },
    'agents/agent-policy/two-person': { approvers: { groups: ['sre'] }, required: 2 },
  };
  let fake: FakeApiServer;
  let proxy: AdmissionProxy;
  let backend: KubeApprovalBackend;
  let dir: string;

  /** A kubeconfig file that authenticates as `user`. */
  function kubeconfigFor(user: string, groups: string[], namespace = NS): string {
    const file = path.join(dir, `${user.replace(/[^a-z0-9]/gi, '_')}-${Math.random().toString(16).slice(2)}.json`);
    fs.writeFileSync(file, proxy.kubeConfig(user, groups, namespace).exportConfig());
    return file;
  }
  const kubectl = async (argv: string[], user = 'alice', groups = ['sre']): Promise<{ code: number; out: string; err: string }> => {
    const c = capture();
    const code = await runApprovalsCli([...argv, '--kubeconfig', kubeconfigFor(user, groups)], c.io, {});
    return { code, out: c.out.join('\n'), err: c.err.join('\n') };
  };

  beforeEach(async () => {
    fake = await FakeApiServer.start();
    proxy = await startAdmissionProxy(fake, createApprovalRequestAdmission({ policyRule: (ns, p, r) => RULES[`${ns}/${p}/${r}`] }));
    backend = new KubeApprovalBackend({ kubeConfig: proxy.kubeConfig(SA, [], NS), namespace: NS, rewatchDelayMs: 20 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cli-'));
  });
  afterEach(async () => {
    await proxy.close();
    await fake.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('full path: the sidecar holds, an approver approves with the CLI, the webhook records who, the hold is released', async () => {
    const { held, rec } = await holdDelete(backend);
    const name = rec.id;

    const list = await kubectl(['approvals', '-n', NS]);
    expect(list.err).toBe('');
    expect(list.out.split('\n')[0]).toMatch(/^NAME\s+AGE\s+EXPIRES\s+RULE\s+TARGET\s+REQUESTER\s+OPERATION$/);
    expect(list.out.split('\n')[1]).toMatch(
      new RegExp(
        `^${name}\\s+\\d+s\\s+in (10m|9m\\d+s)\\s+deletes-need-approval\\s+orders-db\\s+${SA}\\s+DELETE FROM orders WHERE id = 1$`,
      ),
    );

    const r = await kubectl(['approve', name, '-n', NS, '--reason', 'ticket OPS-1'], 'alice', ['sre']);
    expect(r).toEqual({ code: 0, out: `${name} approved: approved by alice (alice: ticket OPS-1)`, err: '' });
    await expect(held).resolves.toEqual({
      approved: true,
      reason: 'approved by alice (alice: ticket OPS-1)',
      approvalId: name,
      decidedBy: 'alice',
      state: 'approved',
    });
    const stored = fake.object('agentwarden.io/v1alpha1', 'ApprovalRequest', NS, name) as { status: { decisions: Array<{ by: string }> } };
    expect(stored.status.decisions.map((d) => d.by)).toEqual(['alice']);
  });

  test('spoofing (issue 10 §6): the stored object, kubectl warden approvals (table, -o json) and approve show hidden characters escaped', async () => {
    const RAW_HIDDEN = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/;
    const sql = 'DELETE FROM orders WHERE id > 0 /*\u202e 3 = di EREHW \u202c\x1b[2K\r*/';
    // Through the data path's own operation builder, and raw, as a back end given any display would get it.
    const viaGate = await backend.create(newApprovalRequest({ policy: 'agent-policy', operation: sqlOperation(sql) }));
    const raw = await backend.create(
      newApprovalRequest({ policy: 'agent-policy', operation: { kind: 'sql', display: sql, digest: sqlDigest(sql) } }),
    );
    for (const rec of [viaGate, raw]) {
      const obj = fake.object('agentwarden.io/v1alpha1', 'ApprovalRequest', NS, rec.id) as unknown as ApprovalRequestObject;
      expect(obj.spec.operation.display).not.toMatch(RAW_HIDDEN);
      expect(obj.spec.operation.display).toContain('WHERE id > 0 /*\\u202e 3 = di EREHW \\u202c\\x1b[2K\\r\n*/');
      expect(obj.spec.operation.digest).toBe(sqlDigest(sql));
    }
    const table = await kubectl(['approvals', '-n', NS]);
    expect(table.out).not.toMatch(RAW_HIDDEN);
    expect(table.out.split('\n')).toHaveLength(3);
    const json = await kubectl(['approvals', '-n', NS, '-o', 'json']);
    expect(json.out).not.toMatch(RAW_HIDDEN);
    const yaml = await kubectl(['approvals', '-n', NS, '-o', 'yaml']);
    expect(yaml.out).not.toMatch(RAW_HIDDEN);
    expect((YAML.parse(yaml.out) as ApprovalRequest[]).map((i) => i.id).sort()).toEqual(
      (JSON.parse(json.out) as ApprovalRequest[]).map((i) => i.id).sort(),
    );
    const r = await kubectl(['deny', raw.id, '-n', NS, '--reason', 'no\u202e'], 'bob');
    expect(r).toEqual({ code: 0, out: `${raw.id} denied: denied by bob: no\\u202e`, err: '' });
  });

  test('refusals from the API server are printed verbatim: self-approval, non-approver, already decided, unknown name', async () => {
    const a = await backend.create(newApprovalRequest({ policy: 'agent-policy' }));
    const self = await kubectl(['approve', a.id, '-n', NS], SA, ['sre']);
    expect(self.code).toBe(1);
    // the mutating webhook already refuses (it derives the status); the validating one would too
    expect(self.err).toBe(
      `warden approve: admission webhook "mutate.approvalrequests.agentwarden.io" denied the request: ${SA} made approval request ${a.id} and cannot decide it; another approver must`,
    );
    const outsider = await kubectl(['approve', a.id, '-n', NS], 'carol', ['dev']);
    expect(outsider.err).toBe(
      `warden approve: admission webhook "mutate.approvalrequests.agentwarden.io" denied the request: carol (groups: dev, system:authenticated) is not an approver for rule "deletes-need-approval"; approvers are groups sre`,
    );
    const deny = await kubectl(['deny', a.id, '-n', NS, '--reason', 'use a soft delete'], 'bob');
    expect(deny).toEqual({ code: 0, out: `${a.id} denied: denied by bob: use a soft delete`, err: '' });
    const again = await kubectl(['approve', a.id, '-n', NS], 'alice');
    expect(again.err).toContain(`approval request ${a.id} is already denied by bob; approvals are single-use`);
    const missing = await kubectl(['approve', 'ffffffffffffffffffffffff', '-n', NS]);
    expect(missing).toMatchObject({
      code: 1,
      err: 'warden approve: no ApprovalRequest "ffffffffffffffffffffffff" in namespace agents (list them with kubectl warden approvals -n agents)',
    });
    expect((await kubectl(['deny', a.id, '-n', NS])).code).toBe(2);
  });

  test('two-person rule: two approvers deciding at the same moment both land (the loser of the race retries), then it is approved', async () => {
    const a = await backend.create(newApprovalRequest({ policy: 'agent-policy', rule: 'two-person', required: 2 }));
    const [x, y] = await Promise.all([kubectl(['approve', a.id, '-n', NS], 'alice'), kubectl(['approve', a.id, '-n', NS], 'bob')]);
    expect([x.code, y.code]).toEqual([0, 0]);
    const outs = [x.out, y.out].sort((p, q) => Number(p.startsWith('approval recorded')) - Number(q.startsWith('approval recorded')));
    expect(outs[0]).toMatch(/^[0-9a-f]{24} approved: approved by (alice, bob|bob, alice)$/);
    expect(outs[1]).toMatch(/^approval recorded for [0-9a-f]{24} as (alice|bob): 1 of 2 approvals; waiting for 1 more approver\(s\)$/);
    await expect(backend.get(a.id)).resolves.toMatchObject({ state: 'approved' });
  });

  test('-A lists every namespace with a NAMESPACE column; --all includes decided ones; -o json', async () => {
    const a = await backend.create(newApprovalRequest({ policy: 'agent-policy' }));
    const b = await backend.create(newApprovalRequest({ policy: 'agent-policy' }));
    await kubectl(['deny', b.id, '-n', NS, '--reason', 'no'], 'bob');
    const pending = await kubectl(['approvals', 'list', '-A']);
    expect(pending.out.split('\n')[0]).toMatch(/^NAMESPACE\s+NAME\s+AGE/);
    expect(pending.out).toContain(`agents     ${a.id}`);
    expect(pending.out).not.toContain(b.id);
    const all = await kubectl(['approvals', '-n', NS, '--all', '-o', 'json']);
    const items = JSON.parse(all.out) as Array<ApprovalRequest & { namespace: string }>;
    expect(items.map((i) => [i.namespace, i.id, i.state]).sort()).toEqual(
      [
        [NS, a.id, 'pending'],
        [NS, b.id, 'denied'],
      ].sort(),
    );
    const other = await kubectl(['approvals', '-n', 'elsewhere']);
    expect(other.out).toBe('No pending approval requests in namespace elsewhere.');
  });

  test('mode: kubectl-warden means Kubernetes; admin-API flags are refused there; an unreachable API server says so', async () => {
    const c = capture();
    const prev = process.env.KUBECONFIG;
    process.env.KUBECONFIG = kubeconfigFor('alice', ['sre']);
    try {
      expect(await runApprovalsCli(['approvals'], c.io, process.env, { invokedAs: '/usr/local/bin/kubectl-warden' })).toBe(0);
      expect(c.out.join('\n')).toBe('No pending approval requests in namespace agents.');
    } finally {
      if (prev === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = prev;
    }
    expect((await kubectl(['approve', 'x', '-n', NS, '--token', 't'])).err).toContain(
      '--admin-addr and --token are for a standalone sidecar',
    );
    const dead = path.join(dir, 'dead.yaml');
    fs.writeFileSync(
      dead,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "http://127.0.0.1:1", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u, namespace: agents}}]\ncurrent-context: x\n',
    );
    const d = capture();
    expect(await runApprovalsCli(['approvals', '--kubeconfig', dead], d.io, {})).toBe(1);
    expect(d.err.join('\n')).toMatch(
      /^warden approvals: cannot reach the Kubernetes API server at http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/,
    );
    const e = capture();
    expect(await runApprovalsCli(['approvals', '--kubeconfig', dead, '--context', 'nope'], e.io, {})).toBe(1);
    expect(e.err.join('\n')).toBe('warden approvals: cannot load the kubeconfig: context "nope" is not in the kubeconfig');
  });
});
