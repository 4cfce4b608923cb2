// The sidecar's wiring of spec.identity.kubernetes: the cluster-keys file is found next to the
// policy file (where the ConfigMap mount puts it) unless WARDEN_KUBERNETES_KEYS says otherwise, and
// in a pod whose service account the sidecar knows, only that service account's tokens are accepted.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { renderClusterKeys } from '../../common/identity/cluster-keys';
import { KubeIssuer } from '../../test/support/identity/kube-issuer';
import { startSidecarFixture, type SidecarFixture } from '../../test/support/sidecar/sidecar-fixture';
import { clusterKeysPath } from './identity';

test('the keys file: WARDEN_KUBERNETES_KEYS, else kubernetes-keys.json beside the policy', () => {
  expect(clusterKeysPath('/etc/warden/policy/policy.yaml', {})).toBe('/etc/warden/policy/kubernetes-keys.json');
  expect(clusterKeysPath('/etc/warden/policy/policy.yaml', { WARDEN_KUBERNETES_KEYS: '/tmp/k.json' })).toBe('/tmp/k.json');
  expect(clusterKeysPath('policy.yaml', { WARDEN_KUBERNETES_KEYS: '' })).toBe('kubernetes-keys.json');
});

describe('a sidecar in a pod of service account agents/support', () => {
  let issuer: KubeIssuer;
  let fx: SidecarFixture;
  let keysFile: string;

  beforeAll(async () => {
    issuer = await KubeIssuer.create();
    keysFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warden-keys-')), 'kubernetes-keys.json');
    fs.writeFileSync(keysFile, renderClusterKeys(issuer.discovery(), issuer.jwks()));
    fx = await startSidecarFixture({
      secrets: { api: { token: 'sk-upstream' } },
      sidecar: {
        identity: { subject: 'system:serviceaccount:agents:support', groups: [], source: 'pod' },
        env: { WARDEN_KUBERNETES_KEYS: keysFile },
      },
      policy: (port) => `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: bound}
spec:
  defaultAction: allow
  identity: {kubernetes: {audiences: [agent-warden]}}
  targets:
    - name: api
      http: {baseUrl: "http://127.0.0.1:${port}", credentialsSecret: api, auth: {header: Authorization, valuePrefix: "Bearer "}}
`,
    });
  });
  afterAll(async () => {
    await fx?.close();
    fs.rmSync(path.dirname(keysFile), { recursive: true, force: true });
  });

  const call = async (t: string): Promise<{ status: number; body: string }> => {
    const res = await fetch(`${fx.egress}/api/echo/items/1`, { headers: { authorization: `Bearer ${t}` } });
    return { status: res.status, body: await res.text() };
  };

  test('its own token passes; a token of another service account (borrowed from another workload) gets 401', async () => {
    const own = await issuer.token({ namespace: 'agents', serviceAccount: 'support', audiences: ['agent-warden'] });
    expect((await call(own)).status).toBe(200);
    const other = await issuer.token({ namespace: 'agents', serviceAccount: 'admin', audiences: ['agent-warden'] });
    const r = await call(other);
    expect(r.status).toBe(401);
    expect(r.body).toMatch(/not to this pod's service account/);
  });
});
