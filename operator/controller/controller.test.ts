// The controller shell against the fake API server: real informers, queue, server-side apply
// and Events over HTTP; reconcile is the real pure function.
import YAML from 'yaml';
import { POLICY_CONFIGMAP_KEY } from '../../common/k8s/names';
import { createLogger, silentLogger } from '../../common/log';
import { Metrics } from '../../common/metrics';
import { parsePolicyYaml } from '../../common/policy/load';
import { FakeApiServer } from '../../test/support/operator/fake-apiserver';
import { createApplier } from './apply';
import { PolicyController } from './controller';
import { createKubeRest } from './kube-rest';
import { expectedHashFor, injectedPod, injectorConfig, POLICY_YAML } from '../../test/support/operator/controller-fixtures';
import type { PolicyStatus } from './types';

type Obj = Record<string, any>;

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves once the controller sent no write for 300 ms. */
async function settledOn(fake: FakeApiServer): Promise<void> {
  for (;;) {
    const n = fake.requests.filter((r) => r.method !== 'GET').length;
    await new Promise((r) => setTimeout(r, 300));
    if (fake.requests.filter((r) => r.method !== 'GET').length === n) return;
  }
}

/** The fixture policy as a user would kubectl apply it (no uid, generation or resourceVersion). */
function userPolicy(): Obj {
  const p = YAML.parse(POLICY_YAML) as Obj;
  p.metadata = { name: p.metadata.name, namespace: p.metadata.namespace };
  return p;
}

function secret(name: string): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'agents' },
    data: { password: Buffer.from('s3cret').toString('base64') },
  };
}

describe('PolicyController', () => {
  let fake: FakeApiServer;
  let controller: PolicyController;
  let metrics: Metrics;
  let leader: boolean;

  const policy = (): Obj => fake.object('agentwarden.io/v1alpha1', 'AccessPolicy', 'agents', 'support-agent')!;
  const configMap = (): Obj | undefined => fake.object('v1', 'ConfigMap', 'agents', 'warden-policy-support-agent');
  const settled = (): Promise<void> => settledOn(fake);
  const status = (): PolicyStatus => (policy().status ?? {}) as PolicyStatus;
  const events = (reason?: string): Obj[] =>
    fake.objectsOf('events.k8s.io/v1', 'Event', 'agents').filter((e) => !reason || e.reason === reason);

  beforeEach(async () => {
    fake = await FakeApiServer.start({ bookmarkIntervalMs: 100 });
    metrics = new Metrics();
    leader = true;
    const rest = createKubeRest(fake.kubeConfig());
    controller = new PolicyController({
      rest,
      log: process.env.DEBUG_CTRL ? createLogger({}, 'debug') : silentLogger,
      metrics,
      applier: createApplier({ rest, identity: 'test-replica' }),
      expectedHash: expectedHashFor(),
      isLeader: () => leader,
      secretRecheckMs: 100,
      informer: { stallTimeoutMs: 1000, backoffInitialMs: 20 },
      queue: { baseDelayMs: 20, maxDelayMs: 200 },
    });
    fake.put(secret('crm-db'));
    fake.put(secret('openai'));
  });

  afterEach(async () => {
    await controller.stop();
    await fake.close();
  });

  it('renders an applied policy into an owned ConfigMap and writes its status; an edit updates both', async () => {
    controller.start();
    await controller.waitForSync();
    const created = fake.put(userPolicy()) as Obj;
    await until(() => configMap() !== undefined && status().conditions?.find((c) => c.type === 'Ready')?.status === 'True');

    const cm = configMap()!;
    expect(cm.metadata.ownerReferences).toEqual([
      {
        apiVersion: 'agentwarden.io/v1alpha1',
        kind: 'AccessPolicy',
        name: 'support-agent',
        uid: created.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    expect(cm.metadata.managedFields[0]).toMatchObject({ manager: 'agent-warden-operator', operation: 'Apply' });
    const docs = parsePolicyYaml(cm.data[POLICY_CONFIGMAP_KEY], 'cm');
    expect(docs[0].status).toBe('valid');
    expect(status()).toMatchObject({ observedGeneration: 1, targetCount: 2, governedPods: 0, outdatedPodCount: 0 });
    expect(policy().metadata.managedFields.find((m: Obj) => m.subresource === 'status')).toMatchObject({
      manager: 'agent-warden-operator',
    });

    // the user edits the spec: generation 2 → new ConfigMap content and observedGeneration
    const edited = policy();
    edited.spec.rules.push({ name: 'no-alter', action: 'deny', match: { target: 'crm', sql: { statements: ['ALTER'] } } });
    fake.put(edited);
    await until(() => status().observedGeneration === 2);
    expect(configMap()!.data[POLICY_CONFIGMAP_KEY]).toContain('no-alter');
    expect(YAML.parse(configMap()!.data[POLICY_CONFIGMAP_KEY]).metadata.generation).toBe(2);
    await until(() => metrics.counter('warden_operator_reconciles_total', '').get({ result: 'success' }) >= 2);

    // once settled, a resync writes nothing: no-op reconciles do not bump resourceVersions
    await settled();
    const rv = fake.resourceVersion;
    controller.enqueueAll();
    await settled();
    expect(fake.resourceVersion).toBe(rv);
  });

  it('keeps the last good ConfigMap when the policy turns invalid, and says why in the status', async () => {
    controller.start();
    fake.put(userPolicy());
    await until(() => configMap() !== undefined && status().observedGeneration === 1);
    const good = configMap()!.data[POLICY_CONFIGMAP_KEY];
    const broken = policy();
    broken.spec.defaultAction = 'block';
    fake.put(broken);
    await until(() => status().observedGeneration === 2);
    const accepted = status().conditions!.find((c) => c.type === 'Accepted')!;
    expect(accepted).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(accepted.message).toContain('spec.defaultAction');
    expect(configMap()!.data[POLICY_CONFIGMAP_KEY]).toBe(good);
    await until(() => events('InvalidSpec').length === 1);
  });

  it('reports a missing Secret with one Event (not one per resync) and recovers once it exists', async () => {
    fake.remove('v1', 'Secret', 'agents', 'openai');
    controller.start();
    fake.put(userPolicy());
    await until(() => status().conditions?.find((c) => c.type === 'Ready')?.reason === 'SecretMissing');
    await until(() => events('SecretMissing').length === 1);
    const ev = events('SecretMissing')[0];
    expect(ev).toMatchObject({
      type: 'Warning',
      reportingController: 'agentwarden.io/operator',
      regarding: { kind: 'AccessPolicy', name: 'support-agent' },
    });
    expect(ev.note).toContain('Secret "openai"');
    controller.enqueueAll();
    await new Promise((r) => setTimeout(r, 300)); // several re-checks happen (secretRecheckMs 100)
    expect(events('SecretMissing')).toHaveLength(1);
    fake.put(secret('openai'));
    await until(() => status().conditions?.find((c) => c.type === 'Ready')?.status === 'True');
  });

  it('counts governed pods and reports outdated sidecars when pods come and go', async () => {
    controller.start();
    const created = fake.put(userPolicy()) as Obj;
    await until(() => status().observedGeneration === 1);
    const asSeen = { ...YAML.parse(POLICY_YAML), metadata: { ...created.metadata } };
    const fresh = injectedPod('agent-fresh', asSeen) as unknown as Obj;
    const old = injectedPod('agent-old', asSeen, injectorConfig('ghcr.io/agent-warden/agent-warden:0.0.9')) as unknown as Obj;
    // An unclaimed agent-sandbox warm-pool pod: the Event says to recycle the pool, not to roll out.
    old.metadata.labels['agents.x-k8s.io/warm-pool-sandbox'] = '2fd415a8';
    old.metadata.ownerReferences = [
      { apiVersion: 'agents.x-k8s.io/v1beta1', kind: 'Sandbox', name: 'agent-old', uid: 'u-1', controller: true },
      { apiVersion: 'v1', kind: 'ConfigMap', name: 'not-the-controller', uid: 'u-2' },
    ];
    fake.put(fresh);
    fake.put(old);
    await until(() => status().governedPods === 2);
    expect(status()).toMatchObject({ outdatedPods: ['agent-old'], outdatedPodCount: 1 });
    await until(() => events('SidecarOutdated').length === 1);
    expect(events('SidecarOutdated')[0].note).toContain(
      'To replace them: kubectl delete sandbox -n agents -l agents.x-k8s.io/warm-pool-sandbox=2fd415a8',
    );
    fake.remove('v1', 'Pod', 'agents', 'agent-old');
    await until(() => status().governedPods === 1 && status().outdatedPodCount === 0);
  });

  it('writes nothing while not the leader, and catches up when it becomes leader', async () => {
    leader = false;
    controller.start();
    fake.put(userPolicy());
    await controller.waitForSync();
    await new Promise((r) => setTimeout(r, 200));
    expect(configMap()).toBeUndefined();
    leader = true;
    controller.enqueueAll();
    await until(() => configMap() !== undefined);
  });
});
