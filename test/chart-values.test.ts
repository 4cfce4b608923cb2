// The knobs every chart has (names, ServiceAccount, CRDs, pod placement and security, extra env and
// volumes, image digests, Chart.yaml metadata), rendered by the real helm binary and checked as
// Kubernetes objects; the operator config the chart renders is read back by the operator's parser.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import * as apps from 'kubernetes-models/apps/v1';
import { parseOperatorConfig } from '../operator/config';
import { NameAllocator } from '../operator/inject/names-alloc';
import { buildSidecar } from '../operator/inject/sidecar';
import { otlpSettingsFromEnv } from '../sidecar/audit/otlp-settings';
import {
  CHART,
  HELM,
  helm,
  k8sTools,
  NS,
  one,
  operatorConfig,
  operatorConfigText,
  parseManifests,
  RELEASE,
  render,
  ROOT,
  setArgs,
  type K8sObject,
} from './support/chart/helm';
import { startLookupApiServer, type ApiResource } from './support/lookup-apiserver';
import { fixturePolicies } from './support/operator/inject-fixtures';

if (!k8sTools.ok) console.warn(`skipping the helm chart value tests: ${k8sTools.reason}`);
const describeHelm = k8sTools.ok ? describe : describe.skip;

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

const podSpec = (objects: K8sObject[]): Record<string, any> => one(objects, 'Deployment').spec.template.spec;
const operatorContainer = (objects: K8sObject[]): Record<string, any> => podSpec(objects).containers[0];
/** Objects the chart names after its release (the fixed, documented ClusterRoles aside). */
const releaseNamed = (objects: K8sObject[]): K8sObject[] =>
  objects.filter((o) => !['agent-warden-sidecar', 'agent-warden-approver'].includes(o.metadata.name) && o.kind !== 'RoleBinding');

function validDeployment(objects: K8sObject[]): void {
  new apps.Deployment(one(objects, 'Deployment') as any).validate();
}

describeHelm('chart values: names', () => {
  test('fullnameOverride names every release object; the operator config, Service, webhooks and bindings agree', () => {
    const objects = render({ fullnameOverride: 'warden' });
    for (const o of releaseNamed(objects))
      expect({ kind: o.kind, name: o.metadata.name }).toEqual({ kind: o.kind, name: expect.stringMatching(/^warden-/) });
    const config = operatorConfig(objects);
    expect(config.webhook).toMatchObject({ serviceName: 'warden-webhook', secretName: 'warden-webhook-tls' });
    expect(one(objects, 'Service').metadata.name).toBe('warden-webhook');
    expect(one(objects, 'MutatingWebhookConfiguration').metadata.name).toBe('warden-webhook');
    expect(one(objects, 'ValidatingWebhookConfiguration').metadata.name).toBe('warden-webhook');
    expect(podSpec(objects).volumes.find((v: any) => v.name === 'config').configMap.name).toBe('warden-config');
    const sa = one(objects, 'ServiceAccount').metadata.name;
    expect(sa).toBe('warden-operator');
    for (const b of objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')) {
      if (b.roleRef.name === 'agent-warden-sidecar') continue;
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: sa, namespace: NS }]);
    }
    // The roles platform teams bind by name keep their names.
    expect(one(objects, 'ClusterRole', 'agent-warden-sidecar')).toBeDefined();
    expect(one(objects, 'ClusterRole', 'agent-warden-approver')).toBeDefined();
  });

  test('nameOverride changes app.kubernetes.io/name and the base name; selectors follow', () => {
    const objects = render({ nameOverride: 'warden' }, [], 'prod');
    const deploy = one(objects, 'Deployment');
    expect(deploy.metadata.name).toBe('prod-warden-operator');
    expect(deploy.metadata.labels?.['app.kubernetes.io/name']).toBe('warden');
    expect(deploy.spec.selector.matchLabels['app.kubernetes.io/name']).toBe('warden');
    expect(one(objects, 'Service').spec.selector).toEqual(deploy.spec.selector.matchLabels);
    // A release already named like the chart is not repeated (agent-warden, not agent-warden-agent-warden).
    expect(one(render(), 'Deployment').metadata.name).toBe(`${RELEASE}-operator`);
    expect(one(render({}, [], 'prod'), 'Deployment').metadata.name).toBe('prod-agent-warden-operator');
  });

  test('the longest names the schema admits still fit Kubernetes limits (63 for labels and Secrets/Services)', () => {
    const objects = render({ fullnameOverride: 'w'.repeat(50) });
    for (const o of objects)
      expect({ kind: o.kind, name: o.metadata.name, fits: o.metadata.name.length <= 63 }).toMatchObject({ fits: true });
    const r = helm(['template', RELEASE, CHART, '--set', `fullnameOverride=${'w'.repeat(51)}`]);
    expect(r.stderr).toContain("'/fullnameOverride'");
  });
});

describeHelm('chart values: ServiceAccount', () => {
  test('create: true with a name and annotations (e.g. a cloud IAM role)', () => {
    const objects = render({
      'serviceAccount.name': 'warden-ops',
      'serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn': 'arn:aws:iam::1:role/w',
    });
    const sa = one(objects, 'ServiceAccount');
    expect(sa.metadata.name).toBe('warden-ops');
    expect(sa.metadata.annotations).toEqual({ 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/w' });
    expect(podSpec(objects).serviceAccountName).toBe('warden-ops');
  });

  test('create: false renders no ServiceAccount, binds the named one, and refuses to guess a name', () => {
    const objects = render({ 'serviceAccount.create': 'false', 'serviceAccount.name': 'platform-warden' });
    expect(objects.filter((o) => o.kind === 'ServiceAccount')).toEqual([]);
    expect(podSpec(objects).serviceAccountName).toBe('platform-warden');
    const bindings = objects.filter(
      (o) => (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') && o.roleRef.name.endsWith('-operator'),
    );
    expect(bindings).toHaveLength(2);
    for (const b of bindings) expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: 'platform-warden', namespace: NS }]);
    // Without a name the operator would run as `default`, with its RBAC bound to nobody.
    const r = helm(['template', RELEASE, CHART, '--set', 'serviceAccount.create=false']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('/serviceAccount');
  });
});

describeHelm('chart values: CRDs', () => {
  const crdNames = (objects: K8sObject[]): string[] =>
    objects
      .filter((o) => o.kind === 'CustomResourceDefinition')
      .map((o) => o.metadata.name)
      .sort();

  test('crds.install=false leaves both CRDs out; by default both are there, and no template renders one', () => {
    expect(crdNames(render({}, ['--include-crds']))).toEqual(['accesspolicies.agentwarden.io', 'approvalrequests.agentwarden.io']);
    expect(crdNames(render({ 'crds.install': 'false' }, ['--include-crds']))).toEqual([]);
    // Only crds/ directories (which --skip-crds skips) hold them, never a template.
    expect(crdNames(render())).toEqual([]);
  });

  test('the packaged chart carries the subchart: `helm show crds` and --include-crds list both', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-package-'));
    try {
      expect(helm(['package', CHART, '-d', dir]).code).toBe(0);
      const [tgz] = fs.readdirSync(dir).map((f) => path.join(dir, f));
      expect(crdNames(parseManifests(helm(['show', 'crds', tgz]).stdout))).toEqual([
        'accesspolicies.agentwarden.io',
        'approvalrequests.agentwarden.io',
      ]);
      const r = helm(['template', RELEASE, tgz, '--namespace', NS, '--include-crds']);
      expect(crdNames(parseManifests(r.stdout))).toEqual(['accesspolicies.agentwarden.io', 'approvalrequests.agentwarden.io']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('helm install creates the CRDs, and neither --skip-crds nor crds.install=false does', async () => {
    // A real `helm install` against the stand-in API server: it answers discovery and 404s every
    // write, so the install fails after its first create, but the requests show what it tried first.
    const kinds: Array<[string, string, string, boolean]> = [
      ['v1', 'ServiceAccount', 'serviceaccounts', true],
      ['v1', 'ConfigMap', 'configmaps', true],
      ['v1', 'Service', 'services', true],
      ['apps/v1', 'Deployment', 'deployments', true],
      ['policy/v1', 'PodDisruptionBudget', 'poddisruptionbudgets', true],
      ['rbac.authorization.k8s.io/v1', 'ClusterRole', 'clusterroles', false],
      ['rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', 'clusterrolebindings', false],
      ['rbac.authorization.k8s.io/v1', 'Role', 'roles', true],
      ['rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings', true],
      ['admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration', 'mutatingwebhookconfigurations', false],
      ['admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', 'validatingwebhookconfigurations', false],
      ['apiextensions.k8s.io/v1', 'CustomResourceDefinition', 'customresourcedefinitions', false],
    ];
    const resources: ApiResource[] = kinds.map(([groupVersion, kind, plural, namespaced]) => ({ groupVersion, kind, plural, namespaced }));
    const server = await startLookupApiServer(resources, {});
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-crds-'));
    /** The writes (Helm 4 creates by server-side apply: PATCH) one `helm install` sent to CRDs. */
    const crdWrites = (args: string[]): Promise<string[]> => {
      const before = server.requests.length;
      return new Promise((resolve) => {
        execFile(
          HELM,
          ['install', RELEASE, CHART, '--namespace', NS, '--set', 'dashboards.enabled=false', '--disable-openapi-validation', ...args],
          { env: { ...process.env, KUBECONFIG: path.join(dir, 'kubeconfig') }, maxBuffer: 16 << 20 },
          () => resolve(server.requests.slice(before).filter((r) => !r.startsWith('GET ') && r.includes('/customresourcedefinitions'))),
        );
      });
    };
    try {
      fs.writeFileSync(path.join(dir, 'kubeconfig'), server.kubeconfig);
      expect(await crdWrites([])).toEqual(['PATCH /apis/apiextensions.k8s.io/v1/customresourcedefinitions/accesspolicies.agentwarden.io']);
      const skipped = server.requests.length;
      expect(await crdWrites(['--skip-crds'])).toEqual([]);
      expect(await crdWrites(['--set', 'crds.install=false'])).toEqual([]);
      // Both went on to write the chart's other objects: they did get past the CRD step.
      expect(server.requests.slice(skipped).filter((r) => r.startsWith('PATCH ') || r.startsWith('POST ')).length).toBeGreaterThanOrEqual(
        2,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await server.close();
    }
  });
});

describeHelm('chart values: the operator pods', () => {
  test('podAnnotations and podLabels reach the pod template, not the selector; the config checksum stays', () => {
    const objects = render({ 'podAnnotations.example\\.com/team': 'platform', 'podLabels.team': 'platform' });
    const deploy = one(objects, 'Deployment');
    expect(deploy.spec.template.metadata.annotations).toEqual({
      'checksum/config': expect.stringMatching(/^[0-9a-f]{64}$/),
      'example.com/team': 'platform',
    });
    expect(deploy.spec.template.metadata.labels.team).toBe('platform');
    expect(deploy.spec.selector.matchLabels.team).toBeUndefined();
    expect(deploy.spec.template.metadata.labels).toMatchObject(deploy.spec.selector.matchLabels);
  });

  test('resources set the operator container, and leave the sidecar defaults in the operator config alone', () => {
    const objects = render({ 'resources.requests.cpu': '200m', 'resources.limits.memory': '1Gi' });
    expect(operatorContainer(objects).resources).toEqual({ requests: { cpu: '200m', memory: '128Mi' }, limits: { memory: '1Gi' } });
    expect(operatorConfig(objects).sidecar.resources).toEqual({ requests: { cpu: '50m', memory: '160Mi' }, limits: { memory: '384Mi' } });
  });

  test('nodeSelector, tolerations, affinity and priorityClassName reach the pod; affinity replaces the default spread', () => {
    const objects = render({
      'nodeSelector.kubernetes\\.io/os': 'linux',
      'tolerations[0].key': 'dedicated',
      'tolerations[0].operator': 'Equal',
      'tolerations[0].value': 'platform',
      'tolerations[0].effect': 'NoSchedule',
      'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key': 'pool',
      'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator': 'In',
      'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values[0]': 'system',
      priorityClassName: 'system-cluster-critical',
    });
    const pod = podSpec(objects);
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(pod.tolerations).toEqual([{ key: 'dedicated', operator: 'Equal', value: 'platform', effect: 'NoSchedule' }]);
    expect(pod.affinity).toEqual({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['system'] }] }],
        },
      },
    });
    expect(pod.priorityClassName).toBe('system-cluster-critical');
    validDeployment(objects);
    const plain = podSpec(render());
    expect(plain.priorityClassName).toBeUndefined();
    expect(plain.nodeSelector).toBeUndefined();
    expect(plain.tolerations).toBeUndefined();
  });

  test('securityContext and podSecurityContext: a key set merges into the hardened defaults', () => {
    const objects = render({
      'securityContext.runAsUser': '2000',
      'podSecurityContext.fsGroup': '3000',
      'podSecurityContext.runAsUser': '2000',
    });
    expect(operatorContainer(objects).securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 2000,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(podSpec(objects).securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 2000,
      runAsGroup: 1337,
      fsGroup: 3000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    validDeployment(objects);
  });

  test('extraEnv, extraVolumes and extraVolumeMounts are added after the chart own ones', () => {
    const objects = render({
      'extraEnv[0].name': 'NODE_EXTRA_CA_CERTS',
      'extraEnv[0].value': '/etc/corp-ca/ca.crt',
      'extraEnv[1].name': 'HTTPS_PROXY',
      'extraEnv[1].valueFrom.secretKeyRef.name': 'egress',
      'extraEnv[1].valueFrom.secretKeyRef.key': 'url',
      'extraVolumes[0].name': 'corp-ca',
      'extraVolumes[0].configMap.name': 'corp-ca',
      'extraVolumeMounts[0].name': 'corp-ca',
      'extraVolumeMounts[0].mountPath': '/etc/corp-ca',
      'extraVolumeMounts[0].readOnly': 'true',
    });
    const c = operatorContainer(objects);
    const env = c.env as Array<{ name: string }>;
    expect(env.map((e) => e.name)).toEqual(['POD_NAMESPACE', 'POD_NAME', 'WARDEN_LOG_LEVEL', 'NODE_EXTRA_CA_CERTS', 'HTTPS_PROXY']);
    expect(env[4]).toEqual({ name: 'HTTPS_PROXY', valueFrom: { secretKeyRef: { name: 'egress', key: 'url' } } });
    expect(podSpec(objects).volumes.map((v: any) => v.name)).toEqual(['config', 'tmp', 'corp-ca']);
    expect(c.volumeMounts.at(-1)).toEqual({ name: 'corp-ca', mountPath: '/etc/corp-ca', readOnly: true });
    validDeployment(objects);
  });
});

describeHelm('chart values: the image', () => {
  test('image.digest pins the operator and every injected sidecar to repository@digest', () => {
    const objects = render({ 'image.digest': DIGEST, 'image.tag': '0.1.0' });
    const pinned = `ghcr.io/agent-warden/agent-warden@${DIGEST}`;
    expect(operatorContainer(objects).image).toBe(pinned);
    expect(operatorConfig(objects).sidecar.image).toBe(pinned);
    // The operator accepts it and injects exactly that reference.
    expect(parseOperatorConfig(operatorConfigText(objects), 'config.yaml', NS).injector.image).toBe(pinned);
    expect(operatorContainer(render({ 'image.tag': '0.2.0' })).image).toBe('ghcr.io/agent-warden/agent-warden:0.2.0');
  });

  test('the operator parses every config the chart renders (defaults, otlp, cert-manager, lockdown)', () => {
    for (const values of [
      {},
      { 'otlp.endpoint': 'https://otlp.example.com', 'otlp.protocol': 'http/json' },
      { 'webhook.certMode': 'cert-manager', lockdown: 'true', 'image.digest': DIGEST },
    ] as Array<Record<string, string>>) {
      const objects = render(values);
      const parsed = parseOperatorConfig(operatorConfigText(objects), 'config.yaml', NS);
      expect(parsed.injector.image).toBe(operatorContainer(objects).image);
    }
  });
});

describeHelm('chart values: what the sidecar would refuse, the schema refuses', () => {
  const schemaAccepts = (key: string, value: string): boolean =>
    helm(['template', RELEASE, CHART, '--set-string', `${key}=${value}`, '--show-only', 'templates/operator-config.yaml']).code === 0;
  const sidecarAccepts = (env: NodeJS.ProcessEnv): boolean => {
    try {
      otlpSettingsFromEnv(env);
      return true;
    } catch {
      return false;
    }
  };

  test('otlp.protocol: grpc (which the sidecar has no exporter for) is refused; both HTTP encodings pass', () => {
    const endpoint = 'http://otel-collector.observability:4318';
    for (const protocol of ['grpc', 'http/protobuf', 'http/json', 'HTTP/JSON', 'thrift']) {
      const sidecar = sidecarAccepts({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: protocol });
      expect({ protocol, schema: schemaAccepts('otlp.protocol', protocol) }).toEqual({ protocol, schema: sidecar });
    }
    expect(sidecarAccepts({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toBe(false);
  });

  test('otlp.endpoint: what the schema admits the sidecar accepts; credentials and queries in the URL are refused', () => {
    const samples: Array<[string, boolean]> = [
      ['http://otel-collector.observability:4318', true],
      ['https://otlp-gateway-prod-eu-west-2.grafana.net/otlp', true],
      ['https://api.honeycomb.io', true],
      ['http://10.0.0.7:4318/', true],
      ['otel-collector:4318', false], // no scheme: the sidecar reads "otel-collector:" as one
      ['grpc://otel-collector:4317', false],
      ['http://otel-collector:99999', false],
      ['http://otel collector:4318', false],
      ['http://', false],
      ['https://user:api-key@otlp.example.com', false], // the sidecar takes it, but it would sit in every pod spec
      ['https://otlp.example.com/?api-key=x', false], // the sidecar would append /v1/traces after the query
    ];
    for (const [endpoint, expected] of samples) {
      const schema = schemaAccepts('otlp.endpoint', endpoint);
      expect({ endpoint, schema }).toEqual({ endpoint, schema: expected });
      if (schema)
        expect({ endpoint, sidecar: sidecarAccepts({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }) }).toEqual({ endpoint, sidecar: true });
    }
  });
});

describeHelm('chart values: OTLP to a hosted collector (headers, private CA)', () => {
  const hosted = {
    'otlp.endpoint': 'https://otlp-gateway-prod-eu-west-2.grafana.net/otlp',
    'otlp.headers.secretName': 'warden-otlp',
    'otlp.tls.caConfigMap': 'corp-ca',
    'otlp.tls.caKey': 'root.pem',
    'otlp.tls.clientCertSecret': 'warden-otlp-client',
  };

  test('the operator injects the headers as a secretKeyRef and mounts the CA, from what the chart renders', () => {
    const objects = render(hosted);
    expect(operatorConfig(objects).otlp).toEqual({
      endpoint: hosted['otlp.endpoint'],
      protocol: 'http/protobuf',
      headersSecret: { name: 'warden-otlp', key: 'headers' },
      caConfigMap: { name: 'corp-ca', key: 'root.pem' },
      clientCertSecret: 'warden-otlp-client',
    });
    const { injector } = parseOperatorConfig(operatorConfigText(objects), 'config.yaml', NS);
    const sidecar = buildSidecar({ policy: fixturePolicies()[0], config: injector, annotations: {}, names: new NameAllocator([]) });
    const env = Object.fromEntries((sidecar.container.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
    expect(env).toMatchObject({
      OTEL_EXPORTER_OTLP_ENDPOINT: hosted['otlp.endpoint'],
      OTEL_EXPORTER_OTLP_HEADERS: { secretKeyRef: { name: 'warden-otlp', key: 'headers' } },
      OTEL_EXPORTER_OTLP_CERTIFICATE: '/etc/warden/otlp-ca/ca.crt',
      OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: '/var/run/warden/otlp-client/tls.crt',
      OTEL_EXPORTER_OTLP_CLIENT_KEY: '/var/run/warden/otlp-client/tls.key',
    });
    expect(sidecar.volumes).toContainEqual({
      name: 'warden-otlp-ca',
      configMap: { name: 'corp-ca', items: [{ key: 'root.pem', path: 'ca.crt' }] },
    });
    // The operator itself gets none of it (it exports nothing over OTLP).
    expect(operatorContainer(objects).env.filter((e: { name: string }) => e.name.startsWith('OTEL_'))).toEqual([]);
    // NOTES (shown by `helm install`) say what must exist in each agent namespace.
    const install = helm(['install', RELEASE, CHART, '--namespace', NS, '--dry-run=client', ...setArgs(hosted)]);
    expect(install.code).toBe(0);
    expect(install.stdout).toContain("kubectl -n agents create secret generic warden-otlp --from-literal=headers='x-api-key=...'");
    expect(install.stdout).toContain('kubectl -n agents create configmap corp-ca --from-file=root.pem=collector-ca.pem');
    expect(install.stdout).toContain('kubectl -n agents create secret tls warden-otlp-client --cert=client.crt --key=client.key');
  });

  test('without the settings the operator config carries neither (and the defaults render as before)', () => {
    const otlp = operatorConfig(render({ 'otlp.endpoint': 'https://otlp.example.com' })).otlp;
    expect(otlp).toEqual({ endpoint: 'https://otlp.example.com', protocol: 'http/protobuf' });
  });

  test('webhook.reinvocationPolicy is not a setting: Never would skip the re-checks after later webhooks', () => {
    const r = helm(['template', RELEASE, CHART, '--set', 'webhook.reinvocationPolicy=Never']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('reinvocationPolicy');
  });

  test('the schema refuses headers or a CA without an https endpoint, and malformed names', () => {
    const refused = (values: Record<string, string>): string => {
      const r = helm(['template', RELEASE, CHART, ...Object.entries(values).flatMap(([k, v]) => ['--set', `${k}=${v}`])]);
      expect(r.code).not.toBe(0);
      return r.stderr;
    };
    expect(refused({ 'otlp.endpoint': 'http://otel-collector.observability:4318', 'otlp.headers.secretName': 'warden-otlp' })).toContain(
      "does not match pattern '^https://'",
    );
    expect(refused({ 'otlp.tls.caConfigMap': 'corp-ca' })).toContain("'/otlp/endpoint'");
    expect(refused({ 'otlp.endpoint': 'http://otel-collector:4318', 'otlp.tls.clientCertSecret': 'c' })).toContain(
      "does not match pattern '^https://'",
    );
    expect(refused({ 'otlp.endpoint': 'https://o.example.com', 'otlp.headers.secretName': 'Warden_OTLP' })).toContain(
      '/otlp/headers/secretName',
    );
    expect(refused({ 'otlp.endpoint': 'https://o.example.com', 'otlp.tls.caConfigMap': 'ca', 'otlp.tls.caKey': 'a b' })).toContain(
      '/otlp/tls/caKey',
    );
  });
});

describeHelm('Chart.yaml', () => {
  const chart = YAML.parse(fs.readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as Record<string, any>;

  test('home, sources, icon and maintainers are set; the icon is a file of this repository', () => {
    expect(chart.home).toBe('https://github.com/agent-warden/agent-warden');
    expect(chart.sources).toContain(chart.home);
    expect(chart.maintainers).toEqual([expect.objectContaining({ name: expect.any(String), url: chart.home })]);
    const prefix = 'https://raw.githubusercontent.com/agent-warden/agent-warden/main/';
    expect(chart.icon).toMatch(new RegExp(`^${prefix.replace(/[.]/g, '\\.')}`));
    expect(fs.existsSync(path.join(ROOT, chart.icon.slice(prefix.length)))).toBe(true);
  });

  test('helm lint --strict reports nothing, not even an INFO, and the crds subchart follows the chart version', () => {
    const r = helm(['lint', '--strict', CHART]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/\[(INFO|WARNING|ERROR)\]/);
    const sub = YAML.parse(fs.readFileSync(path.join(CHART, 'charts', 'crds', 'Chart.yaml'), 'utf8')) as Record<string, any>;
    expect(chart.dependencies).toEqual([{ name: 'crds', version: sub.version, condition: 'crds.install' }]);
    expect({ version: sub.version, appVersion: sub.appVersion }).toEqual({ version: chart.version, appVersion: chart.appVersion });
  });
});
