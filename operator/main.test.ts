// `warden operator` end to end against the fake API server: two replicas, admin endpoints, the
// webhook HTTPS server with certificates from the real certificate manager, handover on stop.
import * as https from 'node:https';
import YAML from 'yaml';
import { silentLogger } from '../common/log';
import { parseOperatorConfig } from './config';
import { POLICY_YAML } from '../test/support/operator/controller-fixtures';
import { LEASE_NAME, startOperator, type RunningOperator } from './main';
import { FakeApiServer } from '../test/support/operator/fake-apiserver';

const CONFIG = `
sidecar:
  image: ghcr.io/agent-warden/agent-warden:0.2.0
webhook:
  serviceName: agent-warden-webhook
approvals:
  ttl: 1h
`;

async function until(cond: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

function review(port: number, path: string, body: unknown): Promise<{ status: number; body: Record<string, any> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('startOperator', () => {
  let fake: FakeApiServer;
  const running: RunningOperator[] = [];

  async function replica(identity: string, webhooks = true): Promise<RunningOperator> {
    const config = parseOperatorConfig(CONFIG, 'test', 'agent-warden');
    config.webhook.port = 0;
    const op = await startOperator({
      kubeConfig: fake.kubeConfig(),
      config,
      adminAddr: '127.0.0.1:0',
      webhookHost: '127.0.0.1',
      namespace: 'agent-warden',
      identity,
      webhooks,
      log: silentLogger,
      timings: { leaseDurationSeconds: 2, renewIntervalMs: 100, renewDeadlineMs: 1000, stallTimeoutMs: 5000, backoffInitialMs: 20 },
    });
    running.push(op);
    return op;
  }

  beforeEach(async () => {
    fake = await FakeApiServer.start({ bookmarkIntervalMs: 200 });
    fake.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'agents', labels: { 'agentwarden.io/injection': 'enabled' } } });
    for (const s of ['crm-db', 'openai'])
      fake.put({ apiVersion: 'v1', kind: 'Secret', metadata: { name: s, namespace: 'agents' }, data: {} });
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.stop()));
    await fake.close();
  });

  it('serves admin endpoints and webhooks on every replica, reconciles on the leader only, and hands over on stop', async () => {
    const a = await replica('operator-a');
    await until(() => a.isLeader() && a.ready().ok);
    const b = await replica('operator-b');
    await until(() => b.ready().ok);
    expect(b.isLeader()).toBe(false);

    expect(await get(a.adminPort, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect((await get(b.adminPort, '/readyz')).status).toBe(200);
    expect((await get(a.adminPort, '/metrics')).body).toContain('warden_operator_leader 1');
    expect((await get(b.adminPort, '/metrics')).body).toContain('warden_operator_leader 0');

    // the leader renders a new policy
    const p = YAML.parse(POLICY_YAML);
    fake.put({ ...p, metadata: { name: p.metadata.name, namespace: 'agents' } });
    await until(() => fake.object('v1', 'ConfigMap', 'agents', 'warden-policy-support-agent') !== undefined);
    await until(() => a.controller.policies.list().length === 1 && b.controller.policies.list().length === 1);

    // the follower's webhook answers too (the webhook Secret is shared through the API server)
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'agent', namespace: 'agents', labels: { app: 'support-agent' } },
      spec: { containers: [{ name: 'agent', image: 'x' }] },
    };
    const res = await review(b.webhookPort!, '/mutate-pods', {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: 'u1',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: 'agents',
        operation: 'CREATE',
        userInfo: { username: 'me' },
        object: pod,
      },
    });
    expect(res.status).toBe(200);
    expect(res.body.response).toMatchObject({ uid: 'u1', allowed: true, patchType: 'JSONPatch' });
    expect(fake.objectsOf('v1', 'Secret', 'agent-warden').map((s) => (s.metadata as { name: string }).name)).toEqual([
      'agent-warden-webhook-tls',
    ]);

    // graceful stop: the Lease is released and the other replica takes over at once
    const stoppedAt = Date.now();
    await a.stop();
    await until(() => b.isLeader());
    expect(Date.now() - stoppedAt).toBeLessThan(1500);
    const lease = fake.object('coordination.k8s.io/v1', 'Lease', 'agent-warden', LEASE_NAME) as { spec: { holderIdentity: string } };
    expect(lease.spec.holderIdentity).toBe('operator-b');
    await expect(get(a.adminPort, '/healthz')).rejects.toThrow();

    // and reconciles from now on
    const edited = fake.object('agentwarden.io/v1alpha1', 'AccessPolicy', 'agents', 'support-agent')!;
    (edited.spec as { defaultAction: string }).defaultAction = 'deny';
    fake.put(edited);
    await until(
      () =>
        (fake.object('agentwarden.io/v1alpha1', 'AccessPolicy', 'agents', 'support-agent')!.status as { observedGeneration?: number })
          ?.observedGeneration === 2,
    );
  });

  it('is alive but not ready while the API server is down, and ready once it is back', async () => {
    const back = fake.restart({ downMs: 1000 });
    await new Promise((r) => setTimeout(r, 50));
    const op = await replica('operator-c', false);
    expect(await get(op.adminPort, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect(await get(op.adminPort, '/readyz')).toEqual({ status: 503, body: 'not ready: informers not synced yet\n' });
    await back;
    await until(() => op.ready().ok);
    expect((await get(op.adminPort, '/readyz')).status).toBe(200);
  });
});
