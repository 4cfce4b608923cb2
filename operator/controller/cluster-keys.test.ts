// The operator's side of spec.identity.kubernetes: fetching the cluster's issuer and keys from the
// API server (a FakeApiServer serving them as kube-apiserver does), rendering them into the
// policy ConfigMap, the Ready condition when they cannot be read, and the chart's RBAC for it.
import { silentLogger } from '../../common/log';
import { CLUSTER_KEYS_FILE, parseClusterKeys } from '../../common/identity/cluster-keys';
import { POLICY_CONFIGMAP_KEY } from '../../common/k8s/names';
import { expectedHashFor, policyObject } from '../../test/support/operator/controller-fixtures';
import { FakeApiServer } from '../../test/support/operator/fake-apiserver';
import { KubeIssuer } from '../../test/support/identity/kube-issuer';
import { k8sTools, one, render, RELEASE } from '../../test/support/chart/helm';
import { ClusterKeysSource, DISCOVERY_PATH, JWKS_PATH } from './cluster-keys';
import { createKubeRest } from './kube-rest';
import { reconcilePolicy, REASONS, type ReconcileInput } from './reconcile';

let api: FakeApiServer;
let issuer: KubeIssuer;
beforeAll(async () => {
  api = await FakeApiServer.start();
});
afterAll(async () => {
  await api.close();
});
beforeEach(async () => {
  issuer = await KubeIssuer.create();
  issuer.serveOn(api);
});

function source(over: Partial<ConstructorParameters<typeof ClusterKeysSource>[0]> = {}): ClusterKeysSource {
  return new ClusterKeysSource({ rest: createKubeRest(api.kubeConfig()), log: silentLogger, ...over });
}

describe('ClusterKeysSource', () => {
  test('reads the issuer from discovery and the keys from /openid/v1/jwks, never following jwks_uri', async () => {
    const s = source();
    expect(s.wanted).toBe(false);
    const state = await s.get();
    expect(state.error).toBeUndefined();
    const doc = parseClusterKeys(state.document!);
    expect(doc.issuer).toBe(issuer.issuer);
    expect(doc.jwks.keys.map((k) => k.kid)).toEqual([issuer.signing.kid]);
    const paths = api.requests.filter((r) => r.path === DISCOVERY_PATH || r.path === JWKS_PATH).map((r) => r.path);
    expect(paths).toEqual([DISCOVERY_PATH, JWKS_PATH]);
    expect(api.requests.some((r) => r.path.includes('172.18.0.2'))).toBe(false);
    expect(s.wanted).toBe(true);
  });

  test('cached for refreshMs; one fetch for concurrent callers; rotation shows after the refresh', async () => {
    let now = 0;
    const s = source({ now: () => now, refreshMs: 60_000 });
    const [a, b] = await Promise.all([s.get(), s.get()]);
    expect(a).toBe(b);
    expect(issuer.counts.jwks).toBe(1);
    await issuer.rotate();
    now = 59_000;
    expect((await s.get()).document).toBe(a.document);
    now = 60_000;
    const after = parseClusterKeys((await s.get()).document!);
    expect(after.jwks.keys).toHaveLength(2);
    expect(issuer.counts.jwks).toBe(2);
  });

  test('a failure keeps the last good keys, says why, and retries after retryMs', async () => {
    let now = 0;
    const s = source({ now: () => now, refreshMs: 60_000, retryMs: 5_000 });
    const good = await s.get();
    api.nonResource.set(JWKS_PATH, (res) =>
      res
        .writeHead(403, { 'content-type': 'application/json' })
        .end(
          '{"kind":"Status","message":"forbidden: User \\"system:serviceaccount:warden-system:agent-warden\\" cannot get path \\"/openid/v1/jwks\\"","reason":"Forbidden"}',
        ),
    );
    now = 60_000;
    const failed = await s.get();
    expect(failed.document).toBe(good.document);
    expect(failed.error).toMatch(/cannot get path/);
    now = 61_000;
    expect(await s.get()).toBe(failed); // no retry before retryMs
    issuer.serveOn(api);
    now = 65_000;
    expect((await s.get()).error).toBeUndefined();
  });

  test('a discovery document or key set that is not acceptable is an error, not keys', async () => {
    api.nonResource.set(JWKS_PATH, (res) =>
      res
        .writeHead(200, { 'content-type': 'application/jwk-set+json' })
        .end(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'a', alg: 'HS256' }] })),
    );
    const state = await source().get();
    expect(state.document).toBeUndefined();
    expect(state.error).toMatch(/key type "oct"/);
  });
});

describe('reconcile with spec.identity.kubernetes', () => {
  const spec = (audiences = ['agent-warden']): unknown => ({ ...(policyObject().spec as object), identity: { kubernetes: { audiences } } });
  const input = (over: Partial<ReconcileInput>): ReconcileInput => ({
    policy: policyObject({ spec: spec() }),
    pods: [],
    secrets: ['crm-db', 'openai'],
    otherPolicies: [],
    expectedHash: expectedHashFor(),
    now: new Date('2026-12-07T16:00:00Z'),
    ...over,
  });
  const ready = (r: ReturnType<typeof reconcilePolicy>): unknown => r.status.conditions?.find((c) => c.type === 'Ready');

  test('the ConfigMap carries the keys next to policy.yaml; Ready', async () => {
    const document = (await source().get()).document!;
    const r = reconcilePolicy(input({ clusterKeys: { document } }));
    expect(Object.keys(r.configMap!.data).sort()).toEqual([CLUSTER_KEYS_FILE, POLICY_CONFIGMAP_KEY]);
    expect(r.configMap!.data[CLUSTER_KEYS_FILE]).toBe(document);
    expect(ready(r)).toMatchObject({ status: 'True' });
    // a policy without it gets no keys
    const plain = reconcilePolicy(input({ policy: policyObject(), clusterKeys: { document } }));
    expect(Object.keys(plain.configMap!.data)).toEqual([POLICY_CONFIGMAP_KEY]);
  });

  test('keys unavailable: Ready False naming why; the ConfigMap keeps the keys it had, or has none', () => {
    const r = reconcilePolicy(input({ clusterKeys: { error: 'GET /openid/v1/jwks: forbidden' }, currentClusterKeys: '{"kept":1}' }));
    expect(r.configMap!.data[CLUSTER_KEYS_FILE]).toBe('{"kept":1}');
    expect(ready(r)).toMatchObject({
      status: 'False',
      reason: REASONS.clusterKeysUnavailable,
      message: expect.stringContaining('keep the keys fetched earlier'),
    });
    expect(r.events.map((e) => e.reason)).toContain(REASONS.clusterKeysUnavailable);
    const none = reconcilePolicy(input({ clusterKeys: { error: 'down' } }));
    expect(none.configMap!.data[CLUSTER_KEYS_FILE]).toBeUndefined();
    expect(ready(none)).toMatchObject({ status: 'False', message: expect.stringContaining('refuse every token') });
    const never = reconcilePolicy(input({}));
    expect(ready(never)).toMatchObject({ status: 'False', reason: REASONS.clusterKeysUnavailable });
  });

  test("an audience equal to the cluster's issuer: Ready False (sidecars refuse every token)", async () => {
    const custom = await KubeIssuer.create({ issuer: 'https://oidc.cluster.example/abc' });
    custom.serveOn(api);
    const document = (await source().get()).document!;
    const r = reconcilePolicy(
      input({ policy: policyObject({ spec: spec(['https://oidc.cluster.example/abc']) }), clusterKeys: { document } }),
    );
    expect(ready(r)).toMatchObject({ status: 'False', reason: REASONS.audienceIsIssuer });
  });
});

(k8sTools.ok ? test : test.skip)('the chart lets the operator GET exactly the two documents, read-only', () => {
  const role = one(render(), 'ClusterRole', `${RELEASE}-operator`);
  const rules = (role.rules as Array<{ nonResourceURLs?: string[]; verbs: string[] }>).filter((r) => r.nonResourceURLs);
  expect(rules).toEqual([{ nonResourceURLs: [DISCOVERY_PATH, JWKS_PATH], verbs: ['get'] }]);
});
