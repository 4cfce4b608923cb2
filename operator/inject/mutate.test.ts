import { applyPatch, deepClone } from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { ANNOTATIONS, LOCKDOWN_CONTAINER, PATHS, SIDECAR_CONTAINER } from '../../common/k8s/names';
import type { AccessPolicy } from '../../common/policy/types';
import { API_KEY_PLACEHOLDER } from './app-env';
import { fixture, fixturePolicies, IMAGE, OPTED_IN, podFromWorkload, testConfig } from '../../test/support/operator/inject-fixtures';
import { injectionConfigHash } from './hash';
import type { InjectorConfig } from './config';
import type { Container, Pod } from './k8s-types';
import { injectPod, type InjectContext, type InjectedRecord, type InjectResult } from './mutate';

const policies = fixturePolicies();
const ctx = (over: Partial<InjectContext> = {}): InjectContext => ({
  namespace: 'agents',
  namespaceLabels: OPTED_IN,
  policies,
  config: testConfig(),
  ...over,
});

function injected(result: InjectResult): Extract<InjectResult, { outcome: 'injected' }> {
  if (result.outcome !== 'injected') throw new Error(`expected injection, got ${result.outcome}: ${result.reason}`);
  return result;
}

/** Applies the patch to a fresh copy of the original, as the API server does, and validates the result. */
function patched(original: Pod, result: Extract<InjectResult, { outcome: 'injected' }>): Pod {
  const out = applyPatch(deepClone(original), deepClone(result.patch), true, false).newDocument as Pod;
  expect(out).toEqual(result.pod);
  new PodModel(out as never).validate();
  return out;
}

/** What lockdown needs of an app container: it cannot take on the sidecar's UID/GID or rewrite the rules. */
const HARDENED = { runAsUser: 10001, runAsNonRoot: true, capabilities: { drop: ['ALL'] }, allowPrivilegeEscalation: false };
function hardened(pod: Pod): Pod {
  for (const c of [...(pod.spec!.initContainers ?? []), ...pod.spec!.containers]) c.securityContext = { ...c.securityContext, ...HARDENED };
  return pod;
}

const appContainers = (pod: Pod): Container[] => [
  ...(pod.spec!.initContainers ?? []).filter((c) => c.name !== SIDECAR_CONTAINER && c.name !== LOCKDOWN_CONTAINER),
  ...pod.spec!.containers,
];
const env = (c: Container): Record<string, unknown> => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
const secretVolumes = (pod: Pod): Set<string> =>
  new Set((pod.spec!.volumes ?? []).filter((v) => v.secret !== undefined || v.projected !== undefined).map((v) => v.name));

/** The property the whole design rests on: credentials reach the sidecar only. */
function expectNoCredentialsInApps(pod: Pod): void {
  const secrets = secretVolumes(pod);
  for (const c of appContainers(pod)) {
    for (const m of c.volumeMounts ?? []) expect(secrets.has(m.name)).toBe(false);
    for (const e of c.env ?? []) expect(JSON.stringify(e.valueFrom ?? {})).not.toContain('secretKeyRef');
  }
}

describe('injectPod on real-looking pods', () => {
  const cases: Array<[string, () => Pod, string]> = [
    ['plain agent pod', () => fixture<Pod>('agent-pod.yaml'), 'support-agent'],
    ['pod of a LangChain chart Deployment', () => podFromWorkload(fixture('langchain-deployment.yaml')), 'support-agent'],
    ['pod with init containers', () => fixture<Pod>('pod-with-init.yaml'), 'support-agent'],
    ['pod of a StatefulSet', () => podFromWorkload(fixture('statefulset.yaml')), 'support-agent'],
    ['pod of a Job', () => podFromWorkload(fixture('job.yaml')), 'reports'],
    ['pod of a CronJob', () => podFromWorkload(fixture('cronjob.yaml')), 'reports'],
  ];

  it.each(cases)('%s: patch applies, result is a valid Pod, sidecar first, credentials only in the sidecar', (_name, make, policyName) => {
    const original = make();
    const before = JSON.stringify(original);
    const result = injected(injectPod(original, ctx()));
    expect(JSON.stringify(original)).toBe(before); // the input is never mutated
    expect(result.policy.metadata.name).toBe(policyName);
    const pod = patched(original, result);

    const [sidecar, ...rest] = pod.spec!.initContainers!;
    expect(sidecar.name).toBe(SIDECAR_CONTAINER);
    expect(sidecar.restartPolicy).toBe('Always');
    expect(sidecar.image).toBe(IMAGE);
    expect(rest.map((c) => c.name)).toEqual((original.spec!.initContainers ?? []).map((c) => c.name));
    expect(pod.spec!.containers.map((c) => c.name)).toEqual(original.spec!.containers.map((c) => c.name));
    expect(pod.spec!.containers.some((c) => c.name === SIDECAR_CONTAINER)).toBe(false);
    // the user's volumes are untouched, ours are added with distinct names
    const names = pod.spec!.volumes!.map((v) => v.name);
    expect(new Set(names).size).toBe(names.length);
    expect(pod.spec!.volumes!.slice(0, original.spec!.volumes?.length ?? 0)).toEqual(original.spec!.volumes ?? []);
    expectNoCredentialsInApps(pod);
    for (const c of appContainers(pod)) {
      expect(env(c).HTTPS_PROXY).toBe('http://127.0.0.1:15001');
      expect(env(c).NO_PROXY).toBe('127.0.0.1,localhost,::1');
    }
    const record = JSON.parse(pod.metadata!.annotations![ANNOTATIONS.injected]) as InjectedRecord;
    expect(record.policy).toMatchObject({ namespace: 'agents', name: policyName });
    expect(pod.metadata!.annotations![ANNOTATIONS.configHash]).toBe(injectionConfigHash(testConfig(), result.policy));
  });

  it('support agent: DATABASE_URL, OPENAI_BASE_URL and a placeholder key replace the Secret-fed values', () => {
    const original = podFromWorkload(fixture('langchain-deployment.yaml'));
    const result = injected(injectPod(original, ctx()));
    const pod = patched(original, result);
    const app = env(pod.spec!.containers[0]);
    expect(app.DATABASE_URL).toBe('postgresql://agent@127.0.0.1:15432/crm?sslmode=disable');
    expect(app.OPENAI_BASE_URL).toBe('http://127.0.0.1:15001/openai/v1');
    expect(app.OPENAI_API_KEY).toBe(API_KEY_PLACEHOLDER);
    expect(app.TICKETS_API_URL).toBe('http://127.0.0.1:15001/tickets');
    // $(DATABASE_URL) in a later variable still expands: the kubelet only expands earlier names
    const order = pod.spec!.containers[0].env!.map((e) => e.name);
    expect(order.indexOf('DATABASE_URL')).toBeLessThan(order.indexOf('APP_DB'));
    expect(result.warnings.join('\n')).toMatch(/container langserve: OPENAI_API_KEY, DATABASE_URL replaced/);
    // init containers get the env too (they start after the sidecar)
    expect(env(pod.spec!.initContainers![1]).DATABASE_URL).toBe(app.DATABASE_URL);
    // the user's own warden-tmp volume keeps its name; ours gets another
    expect(pod.spec!.volumes!.filter((v) => v.name === 'warden-tmp')).toEqual([{ name: 'warden-tmp', emptyDir: { medium: 'Memory' } }]);
    expect(pod.spec!.volumes!.some((v) => v.name === 'warden-tmp-2' && v.emptyDir !== undefined)).toBe(true);
  });

  it('the sidecar mounts the policy ConfigMap, each referenced Secret, a projected token and scratch space', () => {
    const original = fixture<Pod>('agent-pod.yaml');
    const pod = patched(original, injected(injectPod(original, ctx())));
    const sidecar = pod.spec!.initContainers![0];
    const volumes = new Map(pod.spec!.volumes!.map((v) => [v.name, v]));
    const mounts = Object.fromEntries(sidecar.volumeMounts!.map((m) => [m.mountPath, volumes.get(m.name)]));
    expect(mounts[PATHS.policyDir]).toMatchObject({ configMap: { name: 'warden-policy-support-agent' } });
    expect(mounts[`${PATHS.secretsDir}/crm-db`]).toMatchObject({ secret: { secretName: 'crm-db' } });
    expect(mounts[`${PATHS.secretsDir}/openai`]).toMatchObject({ secret: { secretName: 'openai' } });
    // masking uses the hash strategy: the optional key Secret
    expect(mounts[`${PATHS.secretsDir}/warden-masking`]).toMatchObject({ secret: { secretName: 'warden-masking', optional: true } });
    expect(mounts[PATHS.tokenDir]).toEqual({
      name: 'warden-token',
      projected: {
        sources: [
          { serviceAccountToken: { expirationSeconds: 3600, path: 'token' } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        ],
      },
    });
    expect(mounts[PATHS.spoolDir]).toMatchObject({ emptyDir: { sizeLimit: '256Mi' } });
    expect(mounts['/tmp']).toMatchObject({ emptyDir: {} });
    expect(sidecar.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 1337,
      runAsGroup: 1338,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(sidecar.startupProbe).toMatchObject({ httpGet: { path: '/readyz', port: 15021 }, periodSeconds: 1, failureThreshold: 120 });
    expect(sidecar.command).toEqual([
      'warden',
      'sidecar',
      '--policy',
      '/etc/warden/policy/policy.yaml',
      '--secrets-dir',
      '/var/run/warden/secrets',
      '--admin-addr',
      '127.0.0.1:15000',
      '--egress-addr',
      '127.0.0.1:15001',
      '--health-addr',
      '0.0.0.0:15021',
      '--spool-dir',
      '/var/run/warden/spool',
    ]);
    expect(env(sidecar)).toMatchObject({
      POD_NAME: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } },
      POD_NAMESPACE: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
      WARDEN_APPROVALS: 'kubernetes',
      OTEL_SERVICE_NAME: 'warden-sidecar',
      OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)',
    });
    expect(env(sidecar).OTEL_EXPORTER_OTLP_ENDPOINT).toBeUndefined();
  });

  it('warns about credentials the manifest still hands the agent directly', () => {
    const original = fixture<Pod>('agent-pod.yaml');
    original.spec!.containers[0].env!.push({ name: 'STRIPE_KEY', valueFrom: { secretKeyRef: { name: 'stripe', key: 'key' } } });
    original.spec!.containers[0].envFrom = [{ secretRef: { name: 'legacy-creds' } }];
    const result = injected(injectPod(original, ctx()));
    expect(result.warnings).toContain(
      'container agent: still gets Secret legacy-creds, stripe in its environment; the agent holds that credential directly',
    );
  });

  it('resources come from the config, with per-pod annotation overrides', () => {
    const original = podFromWorkload(fixture('langchain-deployment.yaml'));
    const config = testConfig({ resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '256Mi' } } });
    const pod = patched(original, injected(injectPod(original, ctx({ config }))));
    expect(pod.spec!.initContainers![0].resources).toEqual({
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { cpu: '1', memory: '512Mi' },
    });
  });

  it('a malformed resource annotation refuses the pod and names the annotation', () => {
    const pod = fixture<Pod>('agent-pod.yaml');
    pod.metadata!.annotations = { [ANNOTATIONS.cpuLimit]: 'two cores' };
    expect(injectPod(pod, ctx())).toEqual({
      outcome: 'refused',
      reason: expect.stringContaining(`annotation ${ANNOTATIONS.cpuLimit}: "two cores" is not a Kubernetes quantity`),
    });
  });

  it('OTLP settings reach the sidecar when configured, and a token audience when set', () => {
    const original = fixture<Pod>('agent-pod.yaml');
    const config = testConfig({
      otlpEndpoint: 'http://otel-collector.observability:4318',
      otlpProtocol: 'http/protobuf',
      tokenAudience: 'agent-warden',
      tokenExpirationSeconds: 1800,
    });
    const pod = patched(original, injected(injectPod(original, ctx({ config }))));
    const sidecar = pod.spec!.initContainers![0];
    expect(env(sidecar)).toMatchObject({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.observability:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    });
    expect(pod.spec!.volumes!.find((v) => v.name === 'warden-token')).toEqual({
      name: 'warden-token',
      projected: {
        sources: [
          { serviceAccountToken: { audience: 'agent-warden', expirationSeconds: 1800, path: 'token' } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        ],
      },
    });
  });

  it('a hosted collector: headers from a Secret (never a literal in the pod spec) and the CA from a ConfigMap, sidecar only', () => {
    const original = fixture<Pod>('agent-pod.yaml');
    const config = testConfig({
      otlpEndpoint: 'https://otlp.example.com',
      otlpHeadersSecret: { name: 'warden-otlp', key: 'headers' },
      otlpCaConfigMap: { name: 'otlp-ca', key: 'ca.crt' },
      otlpClientCertSecret: 'otlp-client',
    });
    const pod = patched(original, injected(injectPod(original, ctx({ config }))));
    const sidecar = pod.spec!.initContainers![0];
    expect(env(sidecar)).toMatchObject({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com',
      OTEL_EXPORTER_OTLP_HEADERS: { secretKeyRef: { name: 'warden-otlp', key: 'headers' } },
      OTEL_EXPORTER_OTLP_CERTIFICATE: '/etc/warden/otlp-ca/ca.crt',
      OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: '/var/run/warden/otlp-client/tls.crt',
      OTEL_EXPORTER_OTLP_CLIENT_KEY: '/var/run/warden/otlp-client/tls.key',
    });
    expect(pod.spec!.volumes!.find((v) => v.name === 'warden-otlp-client')).toEqual({
      name: 'warden-otlp-client',
      secret: {
        secretName: 'otlp-client',
        items: [
          { key: 'tls.crt', path: 'tls.crt' },
          { key: 'tls.key', path: 'tls.key' },
        ],
      },
    });
    expect(pod.spec!.volumes!.find((v) => v.name === 'warden-otlp-ca')).toEqual({
      name: 'warden-otlp-ca',
      configMap: { name: 'otlp-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
    });
    expect(sidecar.volumeMounts).toContainEqual({ name: 'warden-otlp-ca', mountPath: '/etc/warden/otlp-ca', readOnly: true });
    // The app containers get neither the headers nor the CA.
    for (const c of pod.spec!.containers) {
      expect(Object.keys(env(c)).filter((k) => k.startsWith('OTEL_EXPORTER_OTLP'))).toEqual([]);
      expect((c.volumeMounts ?? []).filter((m) => m.name.startsWith('warden-otlp'))).toEqual([]);
    }
    expect(JSON.stringify(pod)).not.toMatch(/api-key/i);
  });

  it('Jobs still complete: the sidecar is a native sidecar (init container, restartPolicy Always), never a regular container', () => {
    for (const file of ['job.yaml', 'cronjob.yaml']) {
      const original = podFromWorkload(fixture(file));
      const pod = patched(original, injected(injectPod(original, ctx())));
      expect(pod.spec!.restartPolicy).toBe(original.spec!.restartPolicy);
      expect(pod.spec!.containers.map((c) => c.name)).toEqual(['report']);
      expect(pod.spec!.initContainers![0]).toMatchObject({ name: SIDECAR_CONTAINER, restartPolicy: 'Always' });
      const app = env(pod.spec!.containers[0]);
      expect(app.ANTHROPIC_BASE_URL).toBe('http://127.0.0.1:15001/anthropic');
      expect(app.ANTHROPIC_API_KEY).toBe(API_KEY_PLACEHOLDER);
      expect(app.WAREHOUSE_DSN).toBe('postgresql://agent@127.0.0.1:15433/analytics?sslmode=disable');
    }
  });

  it('the injected annotation records policy, image, targets and env names, never a value', () => {
    const original = fixture<Pod>('agent-pod.yaml');
    const pod = injected(injectPod(original, ctx())).pod;
    const record = JSON.parse(pod.metadata!.annotations![ANNOTATIONS.injected]) as InjectedRecord;
    expect(record).toEqual({
      version: 1,
      policy: { namespace: 'agents', name: 'support-agent', generation: 3, uid: '6f1c3e0a-2b7d-4c55-9d0e-0a1b2c3d4e5f' },
      image: IMAGE,
      lockdown: false,
      targets: [
        { name: 'crm', kind: 'postgres', env: 'DATABASE_URL' },
        { name: 'openai', kind: 'http', env: 'OPENAI_BASE_URL' },
        { name: 'tickets', kind: 'http', env: 'TICKETS_API_URL' },
      ],
      env: [
        'DATABASE_URL',
        'OPENAI_BASE_URL',
        'TICKETS_API_URL',
        'OPENAI_API_KEY',
        'HTTP_PROXY',
        'HTTPS_PROXY',
        'http_proxy',
        'https_proxy',
        'NO_PROXY',
        'no_proxy',
      ],
      envPrecedence: 'injected',
    });
  });
});

describe('injectPod: idempotence and skips', () => {
  it('injecting an injected pod yields no patch', () => {
    const once = injected(injectPod(fixture<Pod>('pod-with-init.yaml'), ctx())).pod;
    expect(injectPod(once, ctx())).toEqual({ outcome: 'skipped', reason: expect.stringContaining('already carries') });
    // a sidecar container without the annotation (annotation stripped by some tool) also counts
    delete once.metadata!.annotations![ANNOTATIONS.injected];
    expect(injectPod(once, ctx())).toEqual({ outcome: 'skipped', reason: `pod already has a ${SIDECAR_CONTAINER} container` });
  });

  it('the same input always gives the same patch', () => {
    const pod = podFromWorkload(fixture('langchain-deployment.yaml'));
    expect(injected(injectPod(pod, ctx())).patch).toEqual(injected(injectPod(pod, ctx())).patch);
  });

  it.each<[string, Partial<InjectContext>, (p: Pod) => void, RegExp]>([
    ['hostNetwork pod', {}, () => undefined, /hostNetwork/],
    [
      'namespace not opted in',
      { namespaceLabels: { 'kubernetes.io/metadata.name': 'agents' } },
      () => undefined,
      /not labelled agentwarden.io\/injection=enabled/,
    ],
    ['operator namespace', { namespace: 'agent-warden' }, () => undefined, /operator's own namespace/],
    ['kube-system', { namespace: 'kube-system' }, () => undefined, /system namespace/],
    ['pod opted out', {}, (p) => (p.metadata!.labels!['agentwarden.io/inject'] = 'false'), /labelled agentwarden.io\/inject=false/],
    ['no policy selects', {}, (p) => (p.metadata!.labels = { app: 'other' }), /no AccessPolicy in namespace agents selects this pod/],
    ['policy in another namespace', { namespace: 'staging' }, () => undefined, /no AccessPolicy in namespace staging/],
  ])('%s: skipped with a reason', (name, over, edit, reason) => {
    const pod = fixture<Pod>(name === 'hostNetwork pod' ? 'hostnetwork-pod.yaml' : 'agent-pod.yaml');
    edit(pod);
    const result = injectPod(pod, ctx(over));
    expect(result.outcome).toBe('skipped');
    expect(result.outcome === 'skipped' && result.reason).toMatch(reason);
  });
});

describe('injectPod: refusals (fail closed, say what to fix)', () => {
  it('two policies selecting one pod: refused, naming both', () => {
    const extra: AccessPolicy = structuredClone(policies[1]);
    extra.metadata.name = 'catch-all';
    extra.spec.podSelector = {};
    const result = injectPod(fixture<Pod>('agent-pod.yaml'), ctx({ policies: [...policies, extra] }));
    expect(result.outcome).toBe('refused');
    expect(result.outcome === 'refused' && result.reason).toMatch(
      /AccessPolicies "catch-all" and "support-agent" in namespace agents all select this pod; .*narrow their spec.podSelector/,
    );
  });

  it('an Istio-injected pod with the default ports and user: refused, naming the port clash, the user and the fix', () => {
    const result = injectPod(fixture<Pod>('istio-pod.yaml'), ctx());
    expect(result.outcome).toBe('refused');
    const reason = result.outcome === 'refused' ? result.reason : '';
    expect(reason).toMatch(/^pod runs Istio \(it has Istio's istio-init container\)/);
    expect(reason).toMatch(/Istio's proxy listens on 15000, 15001, 15021 .* sidecar.ports/);
    expect(reason).toMatch(/would run as 1337:1338.*sidecar.runAsUser/);
  });

  it('two targets claiming HTTPS_PROXY and https_proxy: refused (the two spellings must agree)', () => {
    const clashing = fixturePolicies().map((p) => {
      if (p.metadata.name !== 'support-agent') return p;
      const targets = [
        ...p.spec.targets,
        { name: 'egress-a', http: { baseUrl: 'https://a.example' }, env: 'HTTPS_PROXY' },
        { name: 'egress-b', http: { baseUrl: 'https://b.example' }, env: 'https_proxy' },
      ];
      return { ...p, spec: { ...p.spec, targets } };
    });
    const result = injectPod(fixture<Pod>('agent-pod.yaml'), ctx({ policies: clashing }));
    expect(result.outcome === 'refused' && result.reason).toMatch(/targets "egress-a" and "egress-b" set env HTTPS_PROXY and https_proxy/);
  });

  it('a container declaring one of the sidecar ports: refused, naming the container and port', () => {
    const pod = fixture<Pod>('agent-pod.yaml');
    pod.spec!.containers[0].ports = [{ containerPort: 15432 }];
    const result = injectPod(pod, ctx());
    expect(result.outcome === 'refused' && result.reason).toBe(
      'container agent declares port 15432, which the Agent Warden sidecar uses for its PostgreSQL listener for target crm; move the container to another port',
    );
  });
});

describe('injectPod: sidecar ports moved in the operator configuration', () => {
  const moved = { admin: 15100, egress: 15101, health: 15121 };

  it('the sidecar listens where the config says; probes, env and proxies follow', () => {
    const original = fixture<Pod>('agent-pod.yaml');
    const result = injected(injectPod(original, ctx({ config: testConfig({ ports: moved }) })));
    const pod = patched(original, result);
    const sidecar = pod.spec!.initContainers![0];
    const arg = (flag: string): string | undefined => sidecar.command![sidecar.command!.indexOf(flag) + 1];
    expect([arg('--admin-addr'), arg('--egress-addr'), arg('--health-addr')]).toEqual([
      '127.0.0.1:15100',
      '127.0.0.1:15101',
      '0.0.0.0:15121',
    ]);
    expect(sidecar.ports).toEqual([{ containerPort: 15121, name: 'warden-health', protocol: 'TCP' }]);
    for (const probe of [sidecar.startupProbe, sidecar.readinessProbe, sidecar.livenessProbe]) {
      expect(probe).toMatchObject({ httpGet: { port: 15121 } });
    }
    for (const c of appContainers(pod)) {
      const e = env(c);
      expect(e.OPENAI_BASE_URL).toBe('http://127.0.0.1:15101/openai/v1');
      for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) expect(e[name]).toBe('http://127.0.0.1:15101');
      // Nothing in the app still points at the default egress port.
      expect(JSON.stringify(c.env)).not.toContain(':15001');
    }
  });

  it('the config hash changes with the ports (pods need a restart to move), and not with the default written out', () => {
    const policy = policies.find((p) => p.metadata.name === 'support-agent')!;
    const base = injectionConfigHash(testConfig(), policy);
    expect(injectionConfigHash(testConfig({ ports: { admin: 15000, egress: 15001, health: 15021 } }), policy)).toBe(base);
    expect(injectionConfigHash(testConfig({ ports: moved }), policy)).not.toBe(base);
    expect(injectionConfigHash(testConfig({ ports: { ...moved, egress: 15001 } }), policy)).not.toBe(base);
  });

  it("a policy listenPort that is now one of the sidecar's ports: refused, naming the target", () => {
    const result = injectPod(fixture<Pod>('agent-pod.yaml'), ctx({ config: testConfig({ ports: { ...moved, admin: 15432 } }) }));
    expect(result.outcome === 'refused' && result.reason).toMatch(
      /^target crm: listenPort 15432 is the sidecar's admin API port in this cluster's operator configuration/,
    );
  });

  it('an app container declaring a moved port: refused; the default ports are then free for it', () => {
    const pod = fixture<Pod>('agent-pod.yaml');
    pod.spec!.containers[0].ports = [{ containerPort: 15101 }];
    const refused = injectPod(pod, ctx({ config: testConfig({ ports: moved }) }));
    expect(refused.outcome === 'refused' && refused.reason).toMatch(/container agent declares port 15101.*HTTP egress/);
    pod.spec!.containers[0].ports = [{ containerPort: 15001 }];
    expect(injectPod(pod, ctx({ config: testConfig({ ports: moved }) })).outcome).toBe('injected');
  });
});

describe('injectPod: containers excluded from the env rewrite (agentwarden.io/exclude-containers)', () => {
  const twoContainers = (annotation: string, extra: Record<string, string> = {}): Pod => {
    const pod = fixture<Pod>('agent-pod.yaml');
    pod.metadata!.annotations = { [ANNOTATIONS.excludeContainers]: annotation, ...extra };
    pod.spec!.containers.push({
      name: 'otel-collector',
      image: 'otel/opentelemetry-collector:0.115.0',
      env: [
        { name: 'HTTPS_PROXY', value: 'http://corp-proxy.internal:3128' },
        { name: 'OTLP_API_KEY', valueFrom: { secretKeyRef: { name: 'otlp', key: 'key' } } },
      ],
    });
    return pod;
  };

  it('the excluded container keeps its env as written; the others are rewritten; both are said and recorded', () => {
    const original = twoContainers(' otel-collector , ');
    const result = injected(injectPod(original, ctx()));
    const pod = patched(original, result);
    const collector = pod.spec!.containers.find((c) => c.name === 'otel-collector')!;
    expect(collector.env).toEqual(original.spec!.containers.find((c) => c.name === 'otel-collector')!.env);
    const agent = pod.spec!.containers.find((c) => c.name === 'agent')!;
    expect(env(agent).HTTPS_PROXY).toBe('http://127.0.0.1:15001');
    expect(result.warnings).toContainEqual(
      expect.stringMatching(/^container otel-collector: excluded by agentwarden.io\/exclude-containers/),
    );
    // Its own Secret reference is still reported: exclusion hides nothing.
    expect(result.warnings).toContainEqual(expect.stringMatching(/^container otel-collector: still gets Secret otlp/));
    const record = JSON.parse(pod.metadata!.annotations![ANNOTATIONS.injected]) as InjectedRecord;
    expect(record.excluded).toEqual(['otel-collector']);
    // The sidecar's Secrets are mounted into no app container, excluded or not.
    const secrets = secretVolumes(pod);
    for (const c of pod.spec!.containers) for (const m of c.volumeMounts ?? []) expect(secrets.has(m.name)).toBe(false);
  });

  it('excluded is not unfenced: with lockdown the iptables init container still covers the whole pod', () => {
    const original = hardened(twoContainers('otel-collector', { [ANNOTATIONS.lockdown]: 'true' }));
    const result = injected(injectPod(original, ctx()));
    expect(result.pod.spec!.initContainers![0].name).toBe(LOCKDOWN_CONTAINER);
    expect(result.warnings).toContainEqual(expect.stringMatching(/otel-collector: excluded .*egress lockdown still fences it/));
  });

  it("an excluded container running as the sidecar's UID under lockdown is refused like any other", () => {
    const pod = twoContainers('otel-collector', { [ANNOTATIONS.lockdown]: 'true' });
    pod.spec!.containers[1].securityContext = { runAsUser: 1337 };
    const result = injectPod(pod, ctx());
    expect(result.outcome === 'refused' && result.reason).toMatch(/container otel-collector runs as UID 1337/);
  });

  it.each([
    ['a typo', 'otel-colector', /names "otel-colector", which is not a container of this pod \(containers: agent, otel-collector\)/],
    ["the sidecar (not the pod author's to exclude)", 'warden-sidecar', /names "warden-sidecar", which is not a container/],
    ['the lockdown container', 'warden-lockdown', /names "warden-lockdown", which is not a container/],
  ])("a name that is not one of the pod's containers (%s) is refused", (_name, annotation, message) => {
    const result = injectPod(twoContainers(annotation), ctx());
    expect(result.outcome === 'refused' && result.reason).toMatch(message);
  });

  // RT14-07: whoever can annotate the pod (a SandboxClaim's author) must not undo the replacement
  // the template relied on: the real credential would reach the excluded container.
  it.each<[string, (c: Container) => void, RegExp]>([
    [
      'a Secret-fed variable injection replaces (DATABASE_URL)',
      (c) => c.env!.push({ name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'crm-db', key: 'url' } } }),
      /would leave container otel-collector its DATABASE_URL from a Secret, which injection replaces/,
    ],
    [
      'a Secret-fed OPENAI_API_KEY (the placeholder it would get)',
      (c) => c.env!.push({ name: 'OPENAI_API_KEY', valueFrom: { secretKeyRef: { name: 'openai', key: 'token' } } }),
      /its OPENAI_API_KEY from a Secret/,
    ],
    [
      'an envFrom Secret (its keys cannot be seen)',
      (c) => (c.envFrom = [{ secretRef: { name: 'crm-db' } }]),
      /the variables of Secret crm-db \(envFrom\)/,
    ],
  ])('excluding a container that holds %s is refused', (_name, edit, message) => {
    const pod = twoContainers('otel-collector');
    edit(pod.spec!.containers[1]);
    const result = injectPod(pod, ctx());
    expect(result.outcome === 'refused' && result.reason).toMatch(message);
  });

  it('an excluded container may keep a literal value of an injected name (its own proxy, say)', () => {
    const pod = twoContainers('otel-collector');
    pod.spec!.containers[1].env!.push({ name: 'DATABASE_URL', value: 'postgresql://collector@metrics-db/otel' });
    expect(injectPod(pod, ctx()).outcome).toBe('injected');
  });

  it('an empty annotation excludes nothing', () => {
    const result = injected(injectPod(twoContainers(' , '), ctx()));
    const collector = result.pod.spec!.containers.find((c) => c.name === 'otel-collector')!;
    expect(env(collector).HTTPS_PROXY).toBe('http://127.0.0.1:15001');
    expect((JSON.parse(result.pod.metadata!.annotations![ANNOTATIONS.injected]) as InjectedRecord).excluded).toBeUndefined();
  });
});

describe('injectPod beside Istio', () => {
  const istioReady = (over: Partial<InjectorConfig> = {}): InjectorConfig =>
    testConfig({ ports: { admin: 15100, egress: 15101, health: 15121 }, runAsUser: 1338, runAsGroup: 1338, ...over });
  const inMesh = (): Pod => {
    const pod = fixture<Pod>('agent-pod.yaml');
    pod.metadata!.labels = { ...pod.metadata!.labels, 'sidecar.istio.io/inject': 'true' };
    return pod;
  };

  it('ports and user moved: injected; the health port is left out of inbound capture, other exclusions kept', () => {
    const original = inMesh();
    original.metadata!.annotations = { 'traffic.sidecar.istio.io/excludeInboundPorts': '9090' };
    const pod = patched(original, injected(injectPod(original, ctx({ config: istioReady() }))));
    expect(pod.metadata!.annotations!['traffic.sidecar.istio.io/excludeInboundPorts']).toBe('9090,15121');
    expect(pod.spec!.initContainers![0].securityContext).toMatchObject({ runAsUser: 1338, runAsGroup: 1338 });
    for (const c of appContainers(pod)) expect(env(c).HTTPS_PROXY).toBe('http://127.0.0.1:15101');
  });

  it("a policy listenPort on one of Istio's ports: refused, naming the target (the pod would crash-loop)", () => {
    const onIstioPort = structuredClone(policies);
    for (const pol of onIstioPort) for (const t of pol.spec.targets) if (t.name === 'crm' && t.postgres) t.postgres.listenPort = 15006;
    const result = injectPod(inMesh(), ctx({ config: istioReady(), policies: onIstioPort }));
    expect(result.outcome === 'refused' && result.reason).toMatch(
      /^target crm: listenPort 15006 is a port Istio's proxy listens on in the pod/,
    );
    // without Istio the same port is fine
    expect(injectPod(fixture<Pod>('agent-pod.yaml'), ctx({ config: istioReady(), policies: onIstioPort })).outcome).toBe('injected');
  });

  it('the namespace label alone (Istio injects after us): lockdown by annotation is refused, not injected open', () => {
    const pod = fixture<Pod>('agent-pod.yaml');
    pod.metadata!.annotations = { [ANNOTATIONS.lockdown]: 'true' };
    const result = injectPod(pod, ctx({ config: istioReady(), namespaceLabels: { ...OPTED_IN, 'istio-injection': 'enabled' } }));
    expect(result.outcome === 'refused' && result.reason).toMatch(
      /^pod runs Istio \(its namespace is labelled istio-injection=enabled\), and egress lockdown cannot be kept tight beside Istio/,
    );
  });

  it('lockdown by default in the operator configuration: refused in an ambient namespace too', () => {
    const result = injectPod(
      fixture<Pod>('agent-pod.yaml'),
      ctx({ config: istioReady({ lockdownByDefault: true }), namespaceLabels: { ...OPTED_IN, 'istio.io/dataplane-mode': 'ambient' } }),
    );
    expect(result.outcome === 'refused' && result.reason).toMatch(
      /ambient.*egress lockdown cannot be kept tight.*istio.io\/dataplane-mode: none/,
    );
  });

  it('opted out of the mesh: lockdown works as without Istio', () => {
    const pod = hardened(fixture<Pod>('agent-pod.yaml'));
    pod.metadata!.labels = { ...pod.metadata!.labels, 'sidecar.istio.io/inject': 'false' };
    pod.metadata!.annotations = { [ANNOTATIONS.lockdown]: 'true' };
    const result = injected(injectPod(pod, ctx({ namespaceLabels: { ...OPTED_IN, 'istio-injection': 'enabled' } })));
    expect(result.pod.spec!.initContainers![0].name).toBe(LOCKDOWN_CONTAINER);
    expect(result.pod.metadata!.annotations!['traffic.sidecar.istio.io/excludeInboundPorts']).toBeUndefined();
  });
});

describe('injectPod: a pod we injected, seen again after later webhooks changed it (reinvocation)', () => {
  const lockedDown = (): Pod => {
    const original = hardened(fixture<Pod>('agent-pod.yaml'));
    original.metadata!.annotations = { [ANNOTATIONS.lockdown]: 'true' };
    return injected(injectPod(original, ctx())).pod;
  };

  it('unchanged: skipped as before', () => {
    expect(injectPod(lockedDown(), ctx())).toMatchObject({ outcome: 'skipped', reason: expect.stringMatching(/already carries/) });
  });

  it("Istio's injector added its proxy (no label announced it): with lockdown the pod is refused, not admitted around the fence", () => {
    const pod = lockedDown();
    pod.spec!.initContainers!.push({ name: 'istio-init', image: 'istio/proxyv2', securityContext: { runAsUser: 0 } });
    pod.spec!.containers.push({ name: 'istio-proxy', image: 'istio/proxyv2', securityContext: { runAsUser: 1337, runAsGroup: 1337 } });
    const result = injectPod(pod, ctx());
    expect(result.outcome === 'refused' && result.reason).toMatch(
      /^pod runs Istio \(it has Istio's istio-init container\), added after Agent Warden's injection, and egress lockdown cannot be kept tight/,
    );
  });

  it('Istio added beside a pod without lockdown, on our default ports and user: refused too', () => {
    const pod = injected(injectPod(fixture<Pod>('agent-pod.yaml'), ctx())).pod;
    pod.spec!.containers.push({ name: 'istio-proxy', image: 'istio/proxyv2' });
    expect(injectPod(pod, ctx())).toMatchObject({ outcome: 'refused', reason: expect.stringMatching(/sidecar.ports.*sidecar.runAsUser/) });
  });

  it('a later webhook added a container lockdown cannot fence (root, default capabilities): refused', () => {
    const pod = lockedDown();
    pod.spec!.containers.push({ name: 'debug-shell', image: 'busybox' });
    expect(injectPod(pod, ctx())).toMatchObject({
      outcome: 'refused',
      reason: expect.stringMatching(/egress lockdown cannot fence container debug-shell: it allows privilege escalation/),
    });
  });

  it("a later webhook added a container running as the sidecar's UID: refused", () => {
    const pod = lockedDown();
    pod.spec!.containers.push({ name: 'relay', image: 'x', securityContext: { ...HARDENED, runAsUser: 1337 } });
    expect(injectPod(pod, ctx())).toMatchObject({ outcome: 'refused', reason: expect.stringMatching(/container relay runs as UID 1337/) });
  });
});

describe('injectPod: lockdown', () => {
  it('the annotation adds the iptables init container before the sidecar', () => {
    const original = hardened(fixture<Pod>('agent-pod.yaml'));
    original.metadata!.annotations = { [ANNOTATIONS.lockdown]: 'true' };
    const result = injected(injectPod(original, ctx()));
    const pod = patched(original, result);
    expect(pod.spec!.initContainers!.map((c) => c.name)).toEqual([LOCKDOWN_CONTAINER, SIDECAR_CONTAINER]);
    const lock = pod.spec!.initContainers![0];
    expect(lock.restartPolicy).toBeUndefined();
    expect(lock.image).toBe(IMAGE);
    expect(lock.securityContext).toMatchObject({ runAsUser: 0, capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] } });
    expect(JSON.parse(pod.metadata!.annotations![ANNOTATIONS.injected]).lockdown).toBe(true);
  });

  it('lockdown by default, with its own image', () => {
    const original = hardened(fixture<Pod>('agent-pod.yaml'));
    const pod = patched(
      original,
      injected(
        injectPod(original, ctx({ config: testConfig({ lockdownByDefault: true, lockdownImage: 'registry.local/warden-iptables:1' }) })),
      ),
    );
    expect(pod.spec!.initContainers![0]).toMatchObject({ name: LOCKDOWN_CONTAINER, image: 'registry.local/warden-iptables:1' });
  });

  // The rules let out one identity; a container that can take it or send below the rules is not
  // fenced at all. A fence it can step through is refused, never injected.
  const sc = (p: Pod, c: Record<string, unknown>): void => {
    p.spec!.containers[0].securityContext = c;
  };
  it.each<[string, (pod: Pod) => void, RegExp]>([
    ['has no securityContext', (p) => delete p.spec!.containers[0].securityContext, /container agent: it allows privilege escalation/],
    ['runs as root explicitly', (p) => sc(p, { ...HARDENED, runAsUser: 0, runAsNonRoot: undefined, capabilities: {} }), /may run as root/],
    ['non-root but may escalate (setuid binaries)', (p) => sc(p, { runAsUser: 10001 }), /allows privilege escalation/],
    ['privileged', (p) => sc(p, { ...HARDENED, privileged: true }), /is privileged/],
    [
      'adds NET_ADMIN back',
      (p) => sc(p, { ...HARDENED, capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] } }),
      /adds the NET_ADMIN capability/,
    ],
    [
      'adds CAP_SETUID and SETGID back',
      (p) => sc(p, { ...HARDENED, capabilities: { drop: ['ALL'], add: ['CAP_SETUID', 'setgid'] } }),
      /adds the SETUID, SETGID capabilities/,
    ],
    // RT14-03: AF_PACKET frames never meet the OUTPUT chain.
    [
      'adds NET_RAW back (ping)',
      (p) => sc(p, { ...HARDENED, capabilities: { drop: ['ALL'], add: ['NET_RAW'] } }),
      /adds the NET_RAW capability/,
    ],
    // RT14-02: root keeps NET_RAW and CHOWN/FOWNER/FSETID (a 6755 copy owned by the sidecar's IDs).
    [
      'is root dropping only SETUID and SETGID',
      (p) => sc(p, { runAsUser: 0, allowPrivilegeEscalation: false, capabilities: { drop: ['SETUID', 'SETGID'] } }),
      /may run as root with the default capabilities/,
    ],
    // RT14-04: a setuid-1337/setgid-1338 file in the image needs no capability to exec.
    ['drops ALL but allows escalation', (p) => sc(p, { ...HARDENED, allowPrivilegeEscalation: undefined }), /allows privilege escalation/],
    // RT14-05: the image's USER could be 1337:1338.
    [
      'names no runAsUser or runAsGroup',
      (p) => sc(p, { ...HARDENED, runAsUser: undefined }),
      /sets no runAsUser or runAsGroup that differs from the sidecar's/,
    ],
    [
      "runs in the sidecar's group with no runAsUser",
      (p) => sc(p, { ...HARDENED, runAsUser: undefined, runAsGroup: 1338 }),
      /sets no runAsUser or runAsGroup that differs/,
    ],
    [
      'a root init container of the pod',
      (p) => p.spec!.initContainers!.push({ name: 'migrate', image: 'migrate:1' }),
      /cannot fence container migrate: it allows privilege escalation/,
    ],
  ])('lockdown refused: an app container that %s', (_name, edit, message) => {
    const pod = hardened(fixture<Pod>('agent-pod.yaml'));
    pod.metadata!.annotations = { [ANNOTATIONS.lockdown]: 'true' };
    pod.spec!.initContainers = [];
    edit(pod);
    const result = injectPod(pod, ctx());
    expect(result.outcome === 'refused' && result.reason).toMatch(message);
    expect(result.outcome === 'refused' && result.reason).toMatch(/egress lockdown cannot fence container/);
  });

  it.each<[string, (pod: Pod) => void]>([
    [
      'is root in a group of its own with every capability dropped',
      (p) => sc(p, { ...HARDENED, runAsUser: undefined, runAsNonRoot: undefined, runAsGroup: 10001 }),
    ],
    ['adds only NET_BIND_SERVICE', (p) => sc(p, { ...HARDENED, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } })],
    [
      'runs as a known non-root user (pod level) without escalation, capabilities as the runtime gives them',
      (p) => {
        p.spec!.securityContext = { runAsUser: 10001 };
        sc(p, { allowPrivilegeEscalation: false });
      },
    ],
  ])('lockdown injected: an app container that %s', (_name, edit) => {
    const pod = fixture<Pod>('agent-pod.yaml');
    pod.metadata!.annotations = { [ANNOTATIONS.lockdown]: 'true' };
    edit(pod);
    expect(injectPod(pod, ctx()).outcome).toBe('injected');
  });

  // RT14-10: the rules open port 53 to the nameservers of /etc/resolv.conf, which dnsConfig fills.
  it.each(['None', 'ClusterFirst'])('dnsPolicy %s with dnsConfig.nameservers of its own: refused', (dnsPolicy) => {
    const pod = hardened(fixture<Pod>('agent-pod.yaml'));
    pod.metadata!.annotations = { [ANNOTATIONS.lockdown]: 'true' };
    Object.assign(pod.spec!, { dnsPolicy, dnsConfig: { nameservers: ['203.0.113.53'] } });
    expect(injectPod(pod, ctx())).toMatchObject({
      outcome: 'refused',
      reason: expect.stringMatching(/dnsConfig.nameservers: 203.0.113.53/),
    });
    Object.assign(pod.spec!, { dnsConfig: { options: [{ name: 'ndots', value: '2' }] } });
    expect(injectPod(pod, ctx()).outcome).toBe('injected');
  });

  it('without lockdown nothing is asked of the app containers', () => {
    expect(injectPod(fixture<Pod>('agent-pod.yaml'), ctx()).outcome).toBe('injected');
  });

  it('refused when an app container runs as the sidecar UID (the rules would let it through)', () => {
    const pod = fixture<Pod>('agent-pod.yaml');
    pod.metadata!.annotations = { [ANNOTATIONS.lockdown]: 'true' };
    pod.spec!.securityContext = { runAsUser: 1337 };
    const result = injectPod(pod, ctx());
    expect(result.outcome === 'refused' && result.reason).toMatch(/container agent runs as UID 1337/);
  });
});

describe('mcp targets', () => {
  it('the agent gets the MCP endpoint in its env; the credential Secret is mounted into the sidecar only', () => {
    const withMcp = fixturePolicies().map((p) => {
      if (p.metadata.name !== 'support-agent') return p;
      const targets = [
        ...p.spec.targets,
        {
          name: 'crm-tools',
          mcp: {
            url: 'https://tools.internal/mcp',
            credentialsSecret: 'crm-tools',
            auth: { header: 'Authorization', valuePrefix: 'Bearer ' },
          },
          env: 'CRM_TOOLS_MCP_URL',
        },
      ];
      return { ...p, spec: { ...p.spec, targets } };
    });
    const original = fixture<Pod>('agent-pod.yaml');
    const result = injected(injectPod(original, ctx({ policies: withMcp })));
    const pod = patched(original, result);
    for (const c of appContainers(pod)) expect(env(c).CRM_TOOLS_MCP_URL).toBe('http://127.0.0.1:15001/crm-tools');
    const sidecar = pod.spec!.initContainers![0];
    const volumes = new Map(pod.spec!.volumes!.map((v) => [v.name, v]));
    const mounts = Object.fromEntries(sidecar.volumeMounts!.map((m) => [m.mountPath, volumes.get(m.name)]));
    expect(mounts[`${PATHS.secretsDir}/crm-tools`]).toMatchObject({ secret: { secretName: 'crm-tools' } });
    expectNoCredentialsInApps(pod);
    const record = JSON.parse(pod.metadata!.annotations![ANNOTATIONS.injected]) as InjectedRecord;
    expect(record.targets).toContainEqual({ name: 'crm-tools', kind: 'mcp', env: 'CRM_TOOLS_MCP_URL' });
    // A changed MCP credential Secret name changes the injection hash (pods get restarted for it).
    const renamed = withMcp.map((p) =>
      p.metadata.name !== 'support-agent'
        ? p
        : {
            ...p,
            spec: { ...p.spec, targets: p.spec.targets.map((t) => (t.mcp ? { ...t, mcp: { ...t.mcp, credentialsSecret: 'other' } } : t)) },
          },
    );
    const before = withMcp.find((p) => p.metadata.name === 'support-agent')!;
    const after = renamed.find((p) => p.metadata.name === 'support-agent')!;
    expect(injectionConfigHash(testConfig(), before)).not.toBe(injectionConfigHash(testConfig(), after));
  });
});
