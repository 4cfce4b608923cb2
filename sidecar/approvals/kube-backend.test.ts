// The Kubernetes back end against the fake API server, with the real admission handlers run in
// front of it (test/support/operator/admission-proxy.ts) and real client-node clients for the
// sidecar, the approvers and the operator's sweeper.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import * as http from 'node:http';
import { CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { FakeApiServer } from '../../test/support/operator/fake-apiserver';
import { createApprovalRequestAdmission, DEFAULT_OPERATOR_USERNAME, type ApprovalRuleInfo } from '../../operator/approvals/admission';
import { startApprovalSweeper } from '../../operator/approvals/gc';
import type { ApprovalRequestObject } from '../../common/approvals/object';
import { startAdmissionProxy, type AdmissionProxy } from '../../test/support/operator/admission-proxy';
import { silentLogger } from '../../common/log';
import type { Decision, Identity } from '../../common/policy/types';
import { KubeApprovalBackend, kubeApprovalService, objectToRecord, sidecarKubeConfig } from './kube-backend';
import { sqlDigest } from './operation';
import { newApprovalRequest, startTestAdmin } from '../../test/support/sidecar/approvals-admin';
import { startSidecarFixture, type SidecarFixture } from '../../test/support/sidecar/sidecar-fixture';
import type { ApprovalRequest } from './types';

const NS = 'agents';
const SA = `system:serviceaccount:${NS}:support-agent`;
const RULES: Record<string, ApprovalRuleInfo> = {
  'agents/agent-policy/deletes-need-approval': { approvers: { groups: ['sre'] }, required: 1 },
  'agents/agent-policy/two-person': { approvers: { groups: ['sre'] }, required: 2 },
};
const agent: Identity = { subject: 'user@example.com', groups: ['support'], source: 'token' };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

function decision(
  rule = 'deletes-need-approval',
  approval: Decision['approval'] = { approvers: { groups: ['sre'] }, timeout: '10m' },
): Decision {
  return { action: 'hold', rule, reason: `rule "${rule}" holds DELETE`, approval };
}

async function until<T>(fn: () => T | undefined | Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('KubeApprovalBackend', () => {
  let fake: FakeApiServer;
  let proxy: AdmissionProxy;
  let backend: KubeApprovalBackend;
  const stored = (name: string): ApprovalRequestObject | undefined =>
    fake.object('agentwarden.io/v1alpha1', 'ApprovalRequest', NS, name) as unknown as ApprovalRequestObject | undefined;
  const approver = (user: string, groups = ['sre']): CustomObjectsApi => proxy.kubeConfig(user, groups, NS).makeApiClient(CustomObjectsApi);
  const decide = (as: CustomObjectsApi, name: string, decisions: unknown[]): Promise<unknown> =>
    as.patchNamespacedCustomObjectStatus(
      { group: 'agentwarden.io', version: 'v1alpha1', plural: 'approvalrequests', namespace: NS, name, body: { status: { decisions } } },
      mergePatch,
    );

  beforeEach(async () => {
    fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
    proxy = await startAdmissionProxy(fake, createApprovalRequestAdmission({ policyRule: (ns, p, r) => RULES[`${ns}/${p}/${r}`] }));
    backend = new KubeApprovalBackend({
      kubeConfig: proxy.kubeConfig(SA, [`system:serviceaccounts:${NS}`], NS),
      namespace: NS,
      podName: 'support-agent-0',
      rewatchDelayMs: 20,
    });
  });
  afterEach(async () => {
    await proxy.close();
    await fake.close();
  });

  test('create: one object per hold, requester stamped by the webhook, the caller kept as onBehalfOf, marked pending', async () => {
    const rec = await backend.create(
      newApprovalRequest({ policy: 'agent-policy', requester: { subject: agent.subject, groups: agent.groups } }),
    );
    expect(rec.id).toMatch(/^[0-9a-f]{24}$/);
    expect(rec).toMatchObject({
      state: 'pending',
      policy: 'agent-policy',
      rule: 'deletes-need-approval',
      target: 'orders-db',
      requester: { subject: SA },
      approvers: { users: [], groups: ['sre'] },
      required: 1,
    });
    const obj = await until(() => (stored(rec.id)?.status?.state === 'pending' ? stored(rec.id) : undefined));
    expect(obj.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'agent-warden', 'agentwarden.io/pod': 'support-agent-0' });
    expect(obj.spec.requester).toEqual({ subject: SA, groups: [`system:serviceaccounts:${NS}`, 'system:authenticated'] });
    expect(obj.spec.onBehalfOf).toEqual({ subject: agent.subject, groups: agent.groups });
    expect(await backend.get(rec.id)).toMatchObject({ id: rec.id, state: 'pending' });
    expect((await backend.list({ state: 'pending' })).map((r) => r.id)).toEqual([rec.id]);
    expect(await backend.get('000000000000000000000000')).toBeUndefined();
  });

  test('wait resolves approved with the decider from userInfo, not from the body', async () => {
    const rec = await backend.create(newApprovalRequest({ policy: 'agent-policy' }));
    const waiting = backend.wait(rec.id);
    await decide(approver('alice'), rec.id, [{ by: 'mallory', verdict: 'approve', reason: 'ticket OPS-1' }]);
    const final = await waiting;
    expect(final).toMatchObject({ state: 'approved', finalReason: 'approved by alice (alice: ticket OPS-1)' });
    expect(final.decisions).toEqual([
      { by: 'alice', groups: ['sre', 'system:authenticated'], verdict: 'approve', reason: 'ticket OPS-1', at: expect.any(String) },
    ]);
  });

  test('self-approval and non-approvers are refused by the API server; a denial resolves the wait', async () => {
    const rec = await backend.create(newApprovalRequest({ policy: 'agent-policy' }));
    const waiting = backend.wait(rec.id);
    const self = proxy.kubeConfig(SA, ['sre'], NS).makeApiClient(CustomObjectsApi);
    await expect(decide(self, rec.id, [{ verdict: 'approve' }])).rejects.toMatchObject({
      code: 403,
      body: expect.stringContaining(`${SA} made approval request ${rec.id} and cannot decide it`),
    });
    await expect(decide(approver('carol', ['dev']), rec.id, [{ verdict: 'approve' }])).rejects.toMatchObject({
      code: 403,
      body: expect.stringContaining('carol (groups: dev, system:authenticated) is not an approver'),
    });
    await decide(approver('bob'), rec.id, [{ verdict: 'deny', reason: 'use a soft delete' }]);
    await expect(waiting).resolves.toMatchObject({ state: 'denied', finalReason: 'denied by bob: use a soft delete' });
  });

  test('two-person rule: pending after one approval, approved after a second distinct approver', async () => {
    const rec = await backend.create(newApprovalRequest({ policy: 'agent-policy', rule: 'two-person', required: 2 }));
    let done = false;
    const waiting = backend.wait(rec.id).finally(() => (done = true));
    await decide(approver('alice'), rec.id, [{ verdict: 'approve' }]);
    const one = stored(rec.id)!;
    await expect(decide(approver('alice'), rec.id, [...one.status!.decisions!, { verdict: 'approve' }])).rejects.toMatchObject({
      code: 409,
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false);
    await decide(approver('bob'), rec.id, [...one.status!.decisions!, { verdict: 'approve' }]);
    await expect(waiting).resolves.toMatchObject({ state: 'approved', finalReason: 'approved by alice, bob' });
  });

  test("expiry by the operator's sweeper resolves the wait as expired", async () => {
    const rec = await backend.create(newApprovalRequest({ policy: 'agent-policy', timeoutMs: 60_000 }));
    const waiting = backend.wait(rec.id);
    await until(() => (stored(rec.id)?.status?.state === 'pending' ? true : undefined)); // the sidecar's own write settled
    const later = new Date(Date.now() + 61_000);
    // the sweeper's clock and the webhook's clock both run ahead: the request is due
    const proxy2 = await startAdmissionProxy(fake, createApprovalRequestAdmission({ policyRule: () => undefined, now: () => later }));
    try {
      const sweeper = startApprovalSweeper({
        client: proxy2.kubeConfig(DEFAULT_OPERATOR_USERNAME).makeApiClient(CustomObjectsApi),
        log: silentLogger,
        ttlMs: 60_000,
        intervalMs: 3_600_000,
        now: () => later,
      });
      expect((await sweeper.sweepNow()).expire.map((e) => e.name)).toEqual([rec.id]);
      sweeper.stop();
    } finally {
      await proxy2.close();
    }
    await expect(waiting).resolves.toMatchObject({
      state: 'expired',
      finalReason: expect.stringMatching(new RegExp(`^approval request ${rec.id} expired at .* without a decision$`)),
    });
  });

  test('expiry is also enforced locally when nobody expires the object', async () => {
    const rec = await backend.create(newApprovalRequest({ policy: 'agent-policy', timeoutMs: 150 }));
    await expect(backend.wait(rec.id)).resolves.toMatchObject({
      state: 'expired',
      finalReason: `approval request ${rec.id} expired after 150ms without a decision`,
    });
  });

  test('the wait survives a restarted API server and a compacted watch history (re-watch)', async () => {
    const rec = await backend.create(newApprovalRequest({ policy: 'agent-policy' }));
    const waiting = backend.wait(rec.id);
    await until(() => (fake.watchCount('approvalrequests') > 0 ? true : undefined));
    await fake.restart({ downMs: 50, compact: true });
    await until(() => (fake.watchCount('approvalrequests') > 0 ? true : undefined));
    fake.stallWatches(); // the re-established watch goes silent; a later one must still see the decision
    await decide(approver('alice'), rec.id, [{ verdict: 'approve' }]);
    await fake.restart({ downMs: 10 });
    await expect(waiting).resolves.toMatchObject({ state: 'approved' });
  });

  test('cancel marks the object cancelled and ends the wait; a decided request stays decided', async () => {
    const rec = await backend.create(newApprovalRequest({ policy: 'agent-policy' }));
    const waiting = backend.wait(rec.id);
    const cancelled = await backend.cancel(rec.id);
    expect(cancelled).toMatchObject({ state: 'cancelled', finalReason: 'cancelled: the agent disconnected before a decision' });
    await expect(waiting).resolves.toMatchObject({ state: 'cancelled' });
    expect(stored(rec.id)!.status).toMatchObject({ state: 'cancelled', conditions: [{ type: 'Decided', reason: 'Cancelled' }] });

    const other = await backend.create(newApprovalRequest({ policy: 'agent-policy' }));
    await decide(approver('alice'), other.id, [{ verdict: 'approve' }]);
    expect(await backend.cancel(other.id)).toMatchObject({ state: 'approved' });
  });

  test('a deleted request ends the wait as cancelled (fail closed)', async () => {
    const rec = await backend.create(newApprovalRequest({ policy: 'agent-policy' }));
    const waiting = backend.wait(rec.id);
    await until(() => (fake.watchCount('approvalrequests') > 0 ? true : undefined));
    fake.remove('agentwarden.io/v1alpha1', 'ApprovalRequest', NS, rec.id);
    await expect(waiting).resolves.toMatchObject({
      state: 'cancelled',
      finalReason: `approval request ${rec.id} was deleted before a decision`,
    });
  });

  test('decisions are refused here; the admin API lists the objects and points at kubectl warden', async () => {
    const rec = await backend.create(newApprovalRequest({ policy: 'agent-policy' }));
    await expect(backend.decide(rec.id, { subject: 'alice', groups: ['sre'], source: 'token' }, 'approve', '')).rejects.toThrow(
      `kubectl warden approve|deny ${rec.id} -n ${NS}`,
    );
    const svc = kubeApprovalService({ log: silentLogger, env: { POD_NAMESPACE: NS }, kubeConfig: proxy.kubeConfig(SA, [], NS) });
    const admin = await startTestAdmin({ backend: svc.backend!, acceptDecisions: false });
    try {
      const list = (await (await fetch(`http://${admin.addr}/approvals`)).json()) as { items: ApprovalRequest[] };
      expect(list.items.map((i) => i.id)).toEqual([rec.id]);
      const post = await fetch(`http://${admin.addr}/approvals/${rec.id}/approve`, { method: 'POST', body: '{}' });
      expect(post.status).toBe(403);
      expect(await post.text()).toContain('kubectl warden approve|deny');
    } finally {
      await admin.close();
    }
  });
});

describe('the gate over the Kubernetes back end', () => {
  let fake: FakeApiServer;
  let proxy: AdmissionProxy;
  beforeEach(async () => {
    fake = await FakeApiServer.start();
    proxy = await startAdmissionProxy(fake, createApprovalRequestAdmission({ policyRule: (ns, p, r) => RULES[`${ns}/${p}/${r}`] }));
  });
  afterEach(async () => {
    await proxy.close();
    await fake.close();
  });

  test('holds a SQL statement until an approver approves through the API, then releases exactly it', async () => {
    const svc = kubeApprovalService({
      log: silentLogger,
      env: { POD_NAMESPACE: NS },
      kubeConfig: proxy.kubeConfig(SA, [], NS),
      rewatchDelayMs: 20,
    });
    let settled = false;
    const held = svc.gate
      .hold({
        target: 'orders-db',
        policy: 'agent-policy',
        rule: 'deletes-need-approval',
        decision: decision(),
        identity: agent,
        operation: { sql: 'DELETE FROM orders WHERE id = $1', params: ['7'] },
        signal: new AbortController().signal,
      })
      .finally(() => (settled = true));
    const obj = await until(async () => (await listObjects(proxy))[0]);
    expect(obj.spec.operation).toEqual({
      kind: 'sql',
      display: "DELETE FROM orders WHERE id = $1\n-- bound parameters:\n  $1 = '7'",
      digest: sqlDigest('DELETE FROM orders WHERE id = $1', ['7']),
    });
    expect(Date.parse(obj.spec.expiresAt) - Date.now()).toBeGreaterThan(590_000);
    await new Promise((r) => setTimeout(r, 30));
    expect(settled).toBe(false);
    await approverDecides(proxy, obj.metadata.name!, 'alice');
    await expect(held).resolves.toEqual({
      approved: true,
      reason: 'approved by alice',
      approvalId: obj.metadata.name,
      decidedBy: 'alice',
      state: 'approved',
    });
  });

  test('the agent going away cancels the request', async () => {
    const svc = kubeApprovalService({
      log: silentLogger,
      env: { POD_NAMESPACE: NS },
      kubeConfig: proxy.kubeConfig(SA, [], NS),
      rewatchDelayMs: 20,
    });
    const ac = new AbortController();
    const held = svc.gate.hold({
      target: 'orders-db',
      policy: 'agent-policy',
      rule: 'deletes-need-approval',
      decision: decision(),
      identity: agent,
      operation: { sql: 'DELETE FROM orders' },
      signal: ac.signal,
    });
    const name = await until(async () => (await listObjects(proxy))[0]?.metadata.name);
    ac.abort();
    await expect(held).resolves.toMatchObject({ approved: false, reason: 'cancelled: the agent disconnected before a decision' });
    expect(
      objectToRecord(fake.object('agentwarden.io/v1alpha1', 'ApprovalRequest', NS, name) as unknown as ApprovalRequestObject).state,
    ).toBe('cancelled');
  });

  test("an approval request the webhook refuses (approvers not the rule's) is a denial naming why", async () => {
    const svc = kubeApprovalService({ log: silentLogger, env: { POD_NAMESPACE: NS }, kubeConfig: proxy.kubeConfig(SA, [], NS) });
    const out = await svc.gate.hold({
      target: 'orders-db',
      policy: 'agent-policy',
      rule: 'deletes-need-approval',
      decision: decision('deletes-need-approval', { approvers: { users: ['friend'] } }),
      identity: agent,
      operation: { sql: 'DELETE FROM orders' },
      signal: new AbortController().signal,
    });
    expect(out.approved).toBe(false);
    expect(out.reason).toMatch(
      /^rule "deletes-need-approval" holds DELETE, but the approval request could not be created in namespace agents \(admission webhook "validate\.approvalrequests\.agentwarden\.io" denied the request: spec\.approvers \(users \[friend\], groups \[\]\) do not match rule/,
    );
    expect(out.reason).toMatch(/, so it is denied$/);
  });

  test('API server unreachable at create: the hold is denied at once with the reason', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const svc = kubeApprovalService({ log: silentLogger, env: { POD_NAMESPACE: NS }, kubeConfig: kc });
    const out = await svc.gate.hold({
      target: 'orders-db',
      policy: 'agent-policy',
      rule: 'r',
      decision: decision(),
      identity: agent,
      operation: { sql: 'DELETE FROM orders' },
      signal: new AbortController().signal,
    });
    expect(out).toEqual({
      approved: false,
      reason: expect.stringMatching(
        /^rule "deletes-need-approval" holds DELETE, but the approval request could not be created in namespace agents \(.*ECONNREFUSED.*\), so it is denied$/,
      ),
    });
  });

  test('misconfiguration denies every hold with the reason', async () => {
    const noNs = kubeApprovalService({ log: silentLogger, env: {} });
    const out = await noNs.gate.hold({
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
      reason:
        'rule "deletes-need-approval" holds DELETE, but WARDEN_APPROVALS=kubernetes needs POD_NAMESPACE, the namespace to create ApprovalRequests in, so it is denied',
    });
    const noApi = kubeApprovalService({ log: silentLogger, env: { POD_NAMESPACE: NS } });
    const out2 = await noApi.gate.hold({
      target: 't',
      policy: 'p',
      rule: 'r',
      decision: decision(),
      identity: agent,
      operation: { sql: 'DELETE FROM x' },
      signal: new AbortController().signal,
    });
    expect(out2.reason).toContain(
      'the Kubernetes API is not configured (neither KUBECONFIG nor KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT is set',
    );
  });
});

describe('a running sidecar with WARDEN_APPROVALS=kubernetes', () => {
  test('a held HTTP request waits for an ApprovalRequest decision made with kubectl warden, then reaches the upstream', async () => {
    const fake = await FakeApiServer.start();
    const proxy = await startAdmissionProxy(
      fake,
      createApprovalRequestAdmission({
        policyRule: (ns, p, r) =>
          `${ns}/${p}/${r}` === 'agents/kube-holds/embeddings-need-approval' ? { approvers: { groups: ['sre'] }, required: 1 } : undefined,
      }),
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-kube-sidecar-'));
    const saved = { ...process.env };
    const kubeconfig = (user: string, groups: string[]): string => {
      const file = path.join(dir, `${user.replace(/[^a-z]/g, '_')}.json`);
      fs.writeFileSync(file, proxy.kubeConfig(user, groups, NS).exportConfig());
      return file;
    };
    Object.assign(process.env, { WARDEN_APPROVALS: 'kubernetes', POD_NAMESPACE: NS, KUBECONFIG: kubeconfig(SA, []) });
    let fx: SidecarFixture | undefined;
    try {
      fx = await startSidecarFixture({
        secrets: { openai: { token: 'sk-upstream-key' } },
        policy: (port) => `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: kube-holds}
spec:
  defaultAction: allow
  targets:
    - name: openai
      http: {baseUrl: "http://127.0.0.1:${port}", credentialsSecret: openai}
  rules:
    - name: embeddings-need-approval
      action: hold
      approval: {approvers: {groups: [sre]}, timeout: 30s}
      match: {target: openai, http: {methods: [POST], paths: ["/v1/embeddings"]}}
`,
      });
      const before = fx.upstream.requests.length;
      const answer = fetch(`${fx.egress}/openai/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'e', input: 'hello' }),
      });
      const obj = await until(async () => (await listObjects(proxy))[0]);
      expect(obj.spec).toMatchObject({
        policy: 'kube-holds',
        rule: 'embeddings-need-approval',
        target: 'openai',
        requester: { subject: SA },
      });
      expect(obj.spec.operation.display).toMatch(/^POST .*\/v1\/embeddings/);
      expect(fx.upstream.requests.length).toBe(before); // still held
      const c: string[] = [];
      const { runApprovalsCli } = await import('../../cli/run');
      const code = await runApprovalsCli(
        ['approve', obj.metadata.name!, '-n', NS, '--kubeconfig', kubeconfig('alice', ['sre'])],
        { stdout: (t) => void c.push(t), stderr: (t) => void c.push(t) },
        {},
      );
      expect({ code, out: c.join('') }).toEqual({ code: 0, out: `${obj.metadata.name} approved: approved by alice` });
      expect((await answer).status).toBe(200);
      expect(fx.upstream.requests.length).toBe(before + 1);
    } finally {
      for (const k of ['WARDEN_APPROVALS', 'POD_NAMESPACE', 'KUBECONFIG']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
      await fx?.close();
      await proxy.close();
      await fake.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sidecarKubeConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-kc-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('KUBECONFIG wins', () => {
    const file = path.join(dir, 'config');
    fs.writeFileSync(
      file,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://example.test:6443"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
    expect(sidecarKubeConfig({ env: { KUBECONFIG: file } }).getCurrentCluster()?.server).toBe('https://example.test:6443');
  });

  test('in cluster: the projected token (re-read from its file) and the cluster CA, TLS verified', () => {
    fs.writeFileSync(path.join(dir, 'token'), 'projected-token');
    fs.writeFileSync(path.join(dir, 'ca.crt'), '-----BEGIN CERTIFICATE-----\n');
    const kc = sidecarKubeConfig({ env: { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, tokenDir: dir });
    expect(kc.getCurrentCluster()).toMatchObject({
      server: 'https://10.0.0.1:443',
      caFile: path.join(dir, 'ca.crt'),
      skipTLSVerify: false,
    });
    expect(kc.getCurrentUser()?.authProvider).toEqual({ name: 'tokenFile', config: { tokenFile: path.join(dir, 'token') } });
    expect(
      sidecarKubeConfig({ env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, tokenDir: dir }).getCurrentCluster()
        ?.server,
    ).toBe('https://[fd00::1]:443');
  });

  test('what is missing is named', () => {
    const env = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
    expect(() => sidecarKubeConfig({ env, tokenDir: dir })).toThrow(`no service account token at ${path.join(dir, 'token')}`);
    fs.writeFileSync(path.join(dir, 'token'), 't');
    expect(() => sidecarKubeConfig({ env, tokenDir: dir, caFiles: [path.join(dir, 'nope.crt')] })).toThrow(
      `no cluster CA certificate (looked at ${path.join(dir, 'nope.crt')})`,
    );
  });
});

async function listObjects(proxy: AdmissionProxy): Promise<ApprovalRequestObject[]> {
  const api = proxy.kubeConfig('alice', ['sre'], NS).makeApiClient(CustomObjectsApi);
  return (
    (await api.listNamespacedCustomObject({ group: 'agentwarden.io', version: 'v1alpha1', namespace: NS, plural: 'approvalrequests' })) as {
      items: ApprovalRequestObject[];
    }
  ).items;
}

async function approverDecides(proxy: AdmissionProxy, name: string, user: string): Promise<void> {
  await proxy
    .kubeConfig(user, ['sre'], NS)
    .makeApiClient(CustomObjectsApi)
    .patchNamespacedCustomObjectStatus(
      {
        group: 'agentwarden.io',
        version: 'v1alpha1',
        namespace: NS,
        plural: 'approvalrequests',
        name,
        body: { status: { decisions: [{ verdict: 'approve' }] } },
      },
      mergePatch,
    );
}
