// spec.identity.kubernetes at injection: every app container gets the pod's projected token for the
// policy's first audience (and nothing else), the sidecar gets none, and a policy without it
// changes nothing.
import { applyPatch, deepClone } from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { ANNOTATIONS, LOCKDOWN_CONTAINER, SIDECAR_CONTAINER } from '../../common/k8s/names';
import { OPTED_IN, testConfig } from '../../test/support/operator/inject-fixtures';
import { plainPod, policyObject, validated } from '../../test/support/operator/controller-fixtures';
import { IDENTITY_TOKEN_DIR, IDENTITY_TOKEN_ENV, IDENTITY_TOKEN_PATH } from './identity-token';
import type { Container, Pod } from './k8s-types';
import { injectPod, type InjectedRecord } from './mutate';

const withIdentity = (identity: unknown): ReturnType<typeof validated> =>
  validated(policyObject({ spec: { ...(policyObject().spec as object), ...(identity === null ? {} : { identity }) } }));

function inject(pod: Pod, identity: unknown = KUBE) {
  const result = injectPod(pod, {
    namespace: 'agents',
    namespaceLabels: OPTED_IN,
    policies: [withIdentity(identity)],
    config: testConfig(),
  });
  if (result.outcome !== 'injected') throw new Error(`${result.outcome}: ${result.reason}`);
  const out = applyPatch(deepClone(pod), deepClone(result.patch), true, false).newDocument as Pod;
  expect(out).toEqual(result.pod);
  new PodModel(out as never).validate();
  return result;
}

const KUBE = { kubernetes: { audiences: ['agent-warden', 'second'] } };

function podWithInit(): Pod {
  const pod = plainPod('agent-0');
  pod.spec!.initContainers = [{ name: 'migrate', image: 'busybox' }];
  pod.spec!.containers.push({ name: 'tools', image: 'busybox', env: [{ name: IDENTITY_TOKEN_ENV, value: '/somewhere/else' }] });
  return pod;
}

test('every app container gets the token file for the first audience; the sidecar gets none', () => {
  const r = inject(podWithInit());
  const spec = r.pod.spec!;
  // (the sidecar's own warden-token, for its API calls, is another volume, mounted into the sidecar only)
  const vols = (spec.volumes ?? []).filter((v) => JSON.stringify(v).includes('agent-warden'));
  expect(vols).toEqual([
    {
      name: 'warden-identity-token',
      projected: { sources: [{ serviceAccountToken: { audience: 'agent-warden', expirationSeconds: 600, path: 'token' } }] },
    },
  ]);
  const all: Container[] = [...(spec.initContainers ?? []), ...spec.containers];
  const apps = all.filter((c) => c.name !== SIDECAR_CONTAINER && c.name !== LOCKDOWN_CONTAINER);
  expect(apps.map((c) => c.name).sort()).toEqual(['agent', 'migrate', 'tools']);
  for (const c of apps) {
    expect(c.volumeMounts).toContainEqual({ name: 'warden-identity-token', mountPath: IDENTITY_TOKEN_DIR, readOnly: true });
    // the injected path wins over the manifest's own, once
    expect((c.env ?? []).filter((e) => e.name === IDENTITY_TOKEN_ENV)).toEqual([{ name: IDENTITY_TOKEN_ENV, value: IDENTITY_TOKEN_PATH }]);
  }
  const sidecar = all.find((c) => c.name === SIDECAR_CONTAINER)!;
  expect(JSON.stringify(sidecar)).not.toContain('warden-identity-token');
  const record = JSON.parse(r.pod.metadata!.annotations![ANNOTATIONS.injected]) as InjectedRecord;
  expect(record.env).toContain(IDENTITY_TOKEN_ENV);
  // the token volume holds the token only: no Secret, ConfigMap or downward-API source rides along
  expect(Object.keys((vols[0].projected as { sources: object[] }).sources[0])).toEqual(['serviceAccountToken']);
});

test('a container under agentwarden.io/exclude-containers keeps its env and mounts as written: no token there', () => {
  const pod = podWithInit();
  pod.metadata!.annotations = { ...(pod.metadata!.annotations ?? {}), [ANNOTATIONS.excludeContainers]: 'tools' };
  const spec = inject(pod).pod.spec!;
  const tools = spec.containers.find((c) => c.name === 'tools')!;
  expect(tools.volumeMounts ?? []).toEqual([]);
  expect(tools.env).toEqual([{ name: IDENTITY_TOKEN_ENV, value: '/somewhere/else' }]);
  const agent = spec.containers.find((c) => c.name === 'agent')!;
  expect(agent.volumeMounts).toContainEqual({ name: 'warden-identity-token', mountPath: IDENTITY_TOKEN_DIR, readOnly: true });
});

test('idempotent in effect: a pod with a user volume of the same name keeps it, and ours gets another', () => {
  const pod = plainPod('agent-1');
  pod.spec!.volumes = [{ name: 'warden-identity-token', emptyDir: {} }];
  const r = inject(pod);
  const names = r.pod.spec!.volumes!.map((v) => v.name);
  expect(names).toContain('warden-identity-token');
  expect(names).toContain('warden-identity-token-2');
});

test('a container already mounting something at the token directory is refused with a reason', () => {
  const pod = plainPod('agent-2');
  pod.spec!.volumes = [{ name: 'mine', emptyDir: {} }];
  pod.spec!.containers[0].volumeMounts = [{ name: 'mine', mountPath: `${IDENTITY_TOKEN_DIR}/` }];
  const result = injectPod(pod, {
    namespace: 'agents',
    namespaceLabels: OPTED_IN,
    policies: [withIdentity({ kubernetes: { audiences: ['a'] } })],
    config: testConfig(),
  });
  expect(result).toMatchObject({ outcome: 'refused', reason: expect.stringContaining('identity token') });
});

test('no spec.identity.kubernetes, no token: an external issuer or no identity changes nothing here', () => {
  for (const identity of [null, { issuer: 'https://idp.example.com', audiences: ['x'] }]) {
    const r = inject(plainPod('agent-3'), identity);
    expect(JSON.stringify(r.pod)).not.toContain('warden-identity-token');
    expect(JSON.stringify(r.pod)).not.toContain(IDENTITY_TOKEN_ENV);
  }
});
