// The Helm chart, rendered by the real helm binary and checked as Kubernetes objects: what the
// operator is told (its config), least-privilege RBAC, fail-closed webhooks that spare the
// operator's own namespace, both certificate modes, the optional parts, and the values schema.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import * as admission from 'kubernetes-models/admissionregistration.k8s.io/v1';
import * as apiext from 'kubernetes-models/apiextensions.k8s.io/v1';
import * as apps from 'kubernetes-models/apps/v1';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as rbac from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as core from 'kubernetes-models/v1';
import { APPROVER_CLUSTER_ROLE_NAME, APPROVER_RULES, OPERATOR_APPROVALS_RULES, SIDECAR_APPROVALS_RULES } from '../operator/approvals/rbac';
import { CHART, HELM, helm, k8sTools, NS, one, operatorConfig, RELEASE, render, ROOT, setArgs, type K8sObject } from './support/chart/helm';
import { startLookupApiServer, type ApiResource } from './support/lookup-apiserver';

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

// The CRDs sit in the crds subchart's crds/ directory (crds.install switches the subchart).
const CHART_CRDS = path.join(CHART, 'charts', 'crds', 'crds');

describe('chart CRDs', () => {
  test('are byte-identical copies of crds/ (run `make chart-crds` after editing a CRD)', () => {
    const source = fs
      .readdirSync(path.join(ROOT, 'crds'))
      .filter((f) => f.endsWith('.yaml'))
      .sort();
    const copies = fs
      .readdirSync(CHART_CRDS)
      .filter((f) => f.endsWith('.yaml'))
      .sort();
    expect(copies).toEqual(source);
    expect(source).toEqual(expect.arrayContaining(['accesspolicy.yaml', 'approvalrequest.yaml']));
    for (const file of source) {
      const a = fs.readFileSync(path.join(ROOT, 'crds', file));
      const b = fs.readFileSync(path.join(CHART_CRDS, file));
      if (!a.equals(b)) throw new Error(`${path.relative(ROOT, CHART_CRDS)}/${file} differs from crds/${file}: run \`make chart-crds\``);
    }
  });
});

if (!k8sTools.ok) console.warn(`skipping the helm chart tests: ${k8sTools.reason}`);
const describeHelm = k8sTools.ok ? describe : describe.skip;

function webhooks(objects: K8sObject[]): Array<Record<string, any>> {
  return objects
    .filter((o) => o.kind === 'MutatingWebhookConfiguration' || o.kind === 'ValidatingWebhookConfiguration')
    .flatMap((o) => o.webhooks as Array<Record<string, any>>);
}

const SECRET_WRITES = ['create', 'update', 'patch', 'delete', 'deletecollection'];

function rulesOf(objects: K8sObject[], kind: 'ClusterRole' | 'Role'): Array<{ owner: K8sObject; rule: PolicyRule }> {
  return objects.filter((o) => o.kind === kind).flatMap((owner) => (owner.rules as PolicyRule[]).map((rule) => ({ owner, rule })));
}

// kubectl's client-side dry run still asks an API server for its resource list, and none runs
// here, so the rendered objects are checked against the Kubernetes OpenAPI schemas instead.
type Model = new (data: any) => { validate(): void };
const MODELS: Record<string, Model> = {
  'apps/v1/Deployment': apps.Deployment,
  'v1/Service': core.Service,
  'v1/ServiceAccount': core.ServiceAccount,
  'v1/ConfigMap': core.ConfigMap,
  'policy/v1/PodDisruptionBudget': policyV1.PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/ClusterRole': rbac.ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': rbac.ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': rbac.Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': rbac.RoleBinding,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': admission.MutatingWebhookConfiguration,
  'admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration': admission.ValidatingWebhookConfiguration,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': apiext.CustomResourceDefinition,
};

describeHelm('helm chart', () => {
  const defaults = k8sTools.ok ? render() : [];
  const webhookName = `${RELEASE}-webhook`;

  test('helm lint --strict passes in both certificate modes', () => {
    for (const mode of ['self', 'cert-manager']) {
      const r = helm(['lint', '--strict', CHART, '--namespace', NS, ...setArgs({ 'webhook.certMode': mode })]);
      expect({ mode, code: r.code, out: r.stdout + r.stderr }).toEqual({
        mode,
        code: 0,
        out: expect.stringContaining('0 chart(s) failed'),
      });
    }
  });

  test('every rendered object (CRDs included) is valid against the Kubernetes schemas', () => {
    const objects = [
      ...render({ 'sidecarRoleBindings[0].namespace': 'agents', 'sidecarRoleBindings[0].serviceAccount': 'support-agent' }, [
        '--include-crds',
      ]),
    ];
    const kinds = new Set<string>();
    for (const obj of objects) {
      const key = `${obj.apiVersion}/${obj.kind}`;
      const Model = MODELS[key];
      if (!Model) throw new Error(`no schema check for ${key} ${obj.metadata.name}: add it to MODELS`);
      try {
        new Model(obj).validate();
      } catch (err) {
        throw new Error(`${key} ${obj.metadata.name}: ${(err as Error).message}`);
      }
      kinds.add(obj.kind);
    }
    expect([...kinds].sort()).toEqual(
      expect.arrayContaining(['CustomResourceDefinition', 'Deployment', 'PodDisruptionBudget', 'RoleBinding', 'Service']),
    );
    expect(
      objects
        .filter((o) => o.kind === 'CustomResourceDefinition')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['accesspolicies.agentwarden.io', 'approvalrequests.agentwarden.io']);
  });

  test('the operator Deployment: 2 replicas, non-root, read-only, probes, downward API, spread', () => {
    const deploy = one(defaults, 'Deployment');
    expect(deploy.metadata.namespace).toBe(NS);
    expect(deploy.spec.replicas).toBe(2);
    const pod = deploy.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1337 });
    const [c] = pod.containers;
    expect(pod.containers).toHaveLength(1);
    expect(c.image).toBe('ghcr.io/agent-warden/agent-warden:0.1.0');
    expect(c.args.slice(0, 3)).toEqual(['operator', '--config', '/etc/warden-operator/config.yaml']);
    expect(c.securityContext).toEqual({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http-metrics' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http-metrics' });
    expect(c.ports).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'http-metrics', containerPort: 8080 }),
        expect.objectContaining({ name: 'https-webhook', containerPort: 9443 }),
      ]),
    );
    const env = Object.fromEntries(
      (c.env as Array<{ name: string; valueFrom?: any }>).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
    );
    expect(env).toMatchObject({ POD_NAMESPACE: 'metadata.namespace', POD_NAME: 'metadata.name' });
    expect(c.volumeMounts).toEqual(expect.arrayContaining([expect.objectContaining({ mountPath: '/etc/warden-operator' })]));
    expect(pod.volumes.find((v: any) => v.name === 'config').configMap.name).toBe(`${RELEASE}-config`);
    expect(
      pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.labelSelector.matchLabels,
    ).toEqual(deploy.spec.selector.matchLabels);
    expect(pod.topologySpreadConstraints[0].labelSelector.matchLabels).toEqual(deploy.spec.selector.matchLabels);
    expect(deploy.spec.template.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
  });

  test('the PodDisruptionBudget keeps one replica, and is left out with a single replica', () => {
    const pdb = one(defaults, 'PodDisruptionBudget');
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual(one(defaults, 'Deployment').spec.selector.matchLabels);
    expect(render({ replicas: '1' }).filter((o) => o.kind === 'PodDisruptionBudget')).toEqual([]);
  });

  test('the Service exposes the webhook on 443 and metrics on 8080, on ports the pod names', () => {
    const svc = one(defaults, 'Service');
    expect(svc.metadata.name).toBe(webhookName);
    expect(svc.spec.selector).toEqual(one(defaults, 'Deployment').spec.selector.matchLabels);
    expect(svc.spec.ports).toEqual([
      { name: 'https-webhook', port: 443, targetPort: 'https-webhook', protocol: 'TCP' },
      { name: 'http-metrics', port: 8080, targetPort: 'http-metrics', protocol: 'TCP' },
    ]);
  });

  test('the operator config names the Service, Secret and image the chart renders', () => {
    const config = operatorConfig(defaults);
    expect(Object.keys(config).sort()).toEqual(['approvals', 'lockdown', 'sidecar', 'webhook']);
    expect(config.sidecar).toEqual({
      image: one(defaults, 'Deployment').spec.template.spec.containers[0].image,
      imagePullPolicy: 'IfNotPresent',
      resources: { requests: { cpu: '50m', memory: '160Mi' }, limits: { memory: '384Mi' } },
      ports: { admin: 15000, egress: 15001, health: 15021 },
      runAsUser: 1337,
      runAsGroup: 1338,
    });
    expect(config.lockdown).toBe(false);
    expect(config.webhook).toEqual({ port: 9443, serviceName: webhookName, secretName: `${RELEASE}-webhook-tls`, certMode: 'self' });
    expect(config.approvals).toEqual({ ttl: '24h' });
    // The operator patches caBundle into the webhook configurations named like its Service.
    expect(one(defaults, 'MutatingWebhookConfiguration').metadata.name).toBe(config.webhook.serviceName);
    expect(one(defaults, 'ValidatingWebhookConfiguration').metadata.name).toBe(config.webhook.serviceName);
  });

  test('otlp settings reach the operator config (for the sidecars), not the operator, which exports nothing over OTLP', () => {
    const objects = render({
      'otlp.endpoint': 'http://otel-collector.observability:4318',
      'otlp.protocol': 'http/protobuf',
      lockdown: 'true',
      'image.tag': 'dev',
    });
    const config = operatorConfig(objects);
    expect(config.otlp).toEqual({ endpoint: 'http://otel-collector.observability:4318', protocol: 'http/protobuf' });
    expect(config.lockdown).toBe(true);
    expect(config.sidecar.image).toBe('ghcr.io/agent-warden/agent-warden:dev');
    const env = one(objects, 'Deployment').spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>;
    expect(env.filter((e) => e.name.startsWith('OTEL_'))).toEqual([]);
    expect(one(objects, 'Deployment').spec.template.metadata.annotations['checksum/config']).not.toBe(
      one(defaults, 'Deployment').spec.template.metadata.annotations['checksum/config'],
    );
  });

  test('RBAC: no wildcards, Secrets written only in the release namespace, webhook configs by name', () => {
    const all = [...rulesOf(defaults, 'ClusterRole'), ...rulesOf(defaults, 'Role')];
    for (const { owner, rule } of all) {
      for (const field of [rule.apiGroups ?? [], rule.resources ?? [], rule.verbs]) {
        expect({ role: owner.metadata.name, wildcard: field.includes('*') }).toEqual({ role: owner.metadata.name, wildcard: false });
      }
    }
    for (const { owner, rule } of rulesOf(defaults, 'ClusterRole')) {
      if (rule.resources?.includes('secrets'))
        expect({ role: owner.metadata.name, verbs: rule.verbs }).toEqual({ role: owner.metadata.name, verbs: ['get', 'list', 'watch'] });
      if (rule.resources?.some((r) => r.endsWith('webhookconfigurations'))) expect(rule.resourceNames).toEqual([webhookName]);
    }
    const secretWrites = all.filter(({ rule }) => rule.resources?.includes('secrets') && rule.verbs.some((v) => SECRET_WRITES.includes(v)));
    expect(secretWrites.length).toBeGreaterThan(0);
    for (const { owner, rule } of secretWrites) {
      expect(owner.kind).toBe('Role');
      expect(owner.metadata.namespace).toBe(NS);
      if (rule.verbs.some((v) => v !== 'create')) expect(rule.resourceNames).toEqual([`${RELEASE}-webhook-tls`]);
    }
    const leaseRule = rulesOf(defaults, 'Role').find(({ rule }) => rule.resources?.includes('leases'));
    expect(leaseRule?.owner.metadata.namespace).toBe(NS);
    // The operator's bindings name its own ServiceAccount.
    const sa = one(defaults, 'ServiceAccount');
    for (const binding of defaults.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')) {
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: NS }]);
    }
    expect(one(defaults, 'Deployment').spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
  });

  test('the sidecar and approver ClusterRoles match operator/approvals/rbac.ts; sidecar RoleBindings from values', () => {
    expect(one(defaults, 'ClusterRole', 'agent-warden-sidecar').rules).toEqual(SIDECAR_APPROVALS_RULES);
    expect(one(defaults, 'ClusterRole', APPROVER_CLUSTER_ROLE_NAME).rules).toEqual(APPROVER_RULES);
    // The operator's role grants at least what its approvals sweeper needs.
    const operatorRules = one(defaults, 'ClusterRole', `${RELEASE}-operator`).rules as PolicyRule[];
    for (const needed of OPERATOR_APPROVALS_RULES) {
      for (const verb of needed.verbs) {
        const granted = operatorRules.some(
          (r) => r.apiGroups?.includes(needed.apiGroups[0]) && r.resources?.includes(needed.resources[0]) && r.verbs.includes(verb),
        );
        expect({ resource: needed.resources[0], verb, granted }).toEqual({ resource: needed.resources[0], verb, granted: true });
      }
    }
    const objects = render({
      'sidecarRoleBindings[0].namespace': 'agents',
      'sidecarRoleBindings[0].serviceAccount': 'support-agent',
      'sidecarRoleBindings[1].namespace': 'research',
      'sidecarRoleBindings[1].serviceAccount': 'default',
    });
    const bindings = objects.filter((o) => o.kind === 'RoleBinding' && o.roleRef.name === 'agent-warden-sidecar');
    expect(bindings.map((b) => [b.metadata.namespace, b.roleRef.kind, b.subjects])).toEqual([
      ['agents', 'ClusterRole', [{ kind: 'ServiceAccount', name: 'support-agent', namespace: 'agents' }]],
      ['research', 'ClusterRole', [{ kind: 'ServiceAccount', name: 'default', namespace: 'research' }]],
    ]);
  });

  test('webhooks fail closed, time out, skip the operator namespace, and serve the four paths', () => {
    const hooks = webhooks(render({ 'webhook.timeoutSeconds': '7' }));
    expect(hooks.map((h) => h.clientConfig.service.path).sort()).toEqual([
      '/mutate-approvalrequests',
      '/mutate-pods',
      '/validate-accesspolicies',
      '/validate-approvalrequests',
    ]);
    for (const h of hooks) {
      expect(h).toMatchObject({ failurePolicy: 'Fail', sideEffects: 'None', timeoutSeconds: 7, admissionReviewVersions: ['v1'] });
      expect(h.clientConfig.service).toMatchObject({ name: webhookName, namespace: NS, port: 443 });
      expect(h.clientConfig.caBundle).toBeUndefined(); // self mode: the operator patches it in
      expect(h.namespaceSelector.matchExpressions).toContainEqual({ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [NS] });
    }
    const pods = hooks.find((h) => h.clientConfig.service.path === '/mutate-pods')!;
    expect(pods.rules).toEqual([
      { apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], operations: ['CREATE'], scope: 'Namespaced' },
    ]);
    expect(pods.namespaceSelector.matchExpressions).toContainEqual({
      key: 'agentwarden.io/injection',
      operator: 'In',
      values: ['enabled'],
    });
    expect(pods.objectSelector.matchExpressions).toEqual([{ key: 'agentwarden.io/inject', operator: 'NotIn', values: ['false'] }]);
    expect(pods.reinvocationPolicy).toBe('IfNeeded');
    for (const h of hooks.filter((x) => /approvalrequests$/.test(x.clientConfig.service.path))) {
      expect(h.rules[0].resources).toEqual(['approvalrequests', 'approvalrequests/status']);
      expect(h.rules[0].operations).toEqual(['CREATE', 'UPDATE']);
    }
  });

  test('helm upgrade keeps the caBundle the operator patched in (lookup of the live webhook configurations)', async () => {
    // helm template --dry-run=server runs the chart's `lookup` calls against an API server; the
    // stand-in serves discovery for the chart's kinds and the two live webhook configurations.
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
    ];
    const resources: ApiResource[] = kinds.map(([groupVersion, kind, plural, namespaced]) => ({ groupVersion, kind, plural, namespaced }));
    const caFor = (kind: string): string =>
      Buffer.from(`-----BEGIN CERTIFICATE-----\n${kind} CA\n-----END CERTIFICATE-----\n`).toString('base64');
    const live = (kind: string): unknown => ({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind,
      // As a previous `helm install` left them: owned by this release.
      metadata: {
        name: webhookName,
        labels: { 'app.kubernetes.io/managed-by': 'Helm' },
        annotations: { 'meta.helm.sh/release-name': RELEASE, 'meta.helm.sh/release-namespace': NS },
      },
      webhooks: [
        { name: 'first.agentwarden.io', clientConfig: { caBundle: caFor(kind) } },
        { name: 'second.agentwarden.io', clientConfig: {} },
      ],
    });
    const server = await startLookupApiServer(resources, {
      [`/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${webhookName}`]: live('MutatingWebhookConfiguration'),
      [`/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${webhookName}`]: live('ValidatingWebhookConfiguration'),
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-lookup-'));
    try {
      fs.writeFileSync(path.join(dir, 'kubeconfig'), server.kubeconfig);
      const args = [
        'template',
        RELEASE,
        CHART,
        '--namespace',
        NS,
        ...setArgs({ 'dashboards.enabled': 'false' }),
        '--dry-run=server',
        '--disable-openapi-validation',
      ];
      // Async: the stand-in answers from this process's event loop.
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(
          HELM,
          args,
          { env: { ...process.env, KUBECONFIG: path.join(dir, 'kubeconfig') }, maxBuffer: 16 << 20 },
          (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)),
        );
      });
      const objects = YAML.parseAllDocuments(stdout)
        .map((d) => d.toJS() as K8sObject)
        .filter(Boolean);
      for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
        const cfg = one(objects, kind);
        expect({ kind, bundles: cfg.webhooks.map((w: any) => w.clientConfig.caBundle) }).toEqual({
          kind,
          bundles: cfg.webhooks.map(() => caFor(kind)),
        });
      }
      expect(server.requests).toContain(`GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${webhookName}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await server.close();
    }
  });

  test('cert-manager mode: a Certificate for the Service, CA injection, no Secret writes or caBundle patching', () => {
    const objects = render({ 'webhook.certMode': 'cert-manager' });
    const cert = one(objects, 'Certificate');
    expect(cert.spec.secretName).toBe(operatorConfig(objects).webhook.secretName);
    expect(cert.spec.dnsNames).toEqual(expect.arrayContaining([`${webhookName}.${NS}.svc`, `${webhookName}.${NS}.svc.cluster.local`]));
    expect(cert.spec.issuerRef).toEqual({ name: one(objects, 'Issuer').metadata.name, kind: 'Issuer', group: 'cert-manager.io' });
    expect(one(objects, 'Issuer').spec).toEqual({ selfSigned: {} });
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      expect(one(objects, kind).metadata.annotations).toEqual({ 'cert-manager.io/inject-ca-from': `${NS}/${cert.metadata.name}` });
    }
    expect(operatorConfig(objects).webhook.certMode).toBe('cert-manager');
    const rules = [...rulesOf(objects, 'ClusterRole'), ...rulesOf(objects, 'Role')].map((r) => r.rule);
    expect(rules.filter((r) => r.resources?.includes('secrets') && r.verbs.some((v) => SECRET_WRITES.includes(v)))).toEqual([]);
    expect(rules.filter((r) => r.resources?.some((x) => x.endsWith('webhookconfigurations')))).toEqual([]);
    // Self mode has neither Certificate nor annotation.
    expect(defaults.filter((o) => o.kind === 'Certificate' || o.kind === 'Issuer')).toEqual([]);
    expect(one(defaults, 'MutatingWebhookConfiguration').metadata.annotations).toBeUndefined();

    const own = render({
      'webhook.certMode': 'cert-manager',
      'webhook.certManager.issuerRef.kind': 'ClusterIssuer',
      'webhook.certManager.issuerRef.name': 'corp-ca',
    });
    expect(own.filter((o) => o.kind === 'Issuer')).toEqual([]);
    expect(one(own, 'Certificate').spec.issuerRef).toEqual({ name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
  });

  test('ServiceMonitor only when enabled, scraping the operator metrics port', () => {
    expect(defaults.filter((o) => o.kind === 'ServiceMonitor')).toEqual([]);
    const objects = render({ 'serviceMonitor.enabled': 'true', 'serviceMonitor.labels.release': 'kube-prometheus-stack' });
    const sm = one(objects, 'ServiceMonitor');
    expect(sm.metadata.labels?.release).toBe('kube-prometheus-stack');
    expect(sm.spec.endpoints).toEqual([{ port: 'http-metrics', path: '/metrics', interval: '30s' }]);
    expect(sm.spec.selector.matchLabels).toEqual(one(objects, 'Service').spec.selector);
  });

  test('dashboard ConfigMap: labelled for the Grafana sidecar when enabled, absent when disabled', () => {
    expect(render({ 'dashboards.enabled': 'false' }).filter((o) => o.metadata.name.endsWith('-dashboard'))).toEqual([]);
    const cm = one(defaults, 'ConfigMap', `${RELEASE}-dashboard`);
    expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(cm.data['agent-warden.json'])).toEqual(
      JSON.parse(fs.readFileSync(path.join(CHART, 'dashboards', 'warden.json'), 'utf8')),
    );
  });

  test('the values schema rejects bad values, naming every field at once', () => {
    // helm reports every schema violation in one run, so one render checks them all.
    const bad: Array<[string, string]> = [
      ['webhook.certMode=vault', "'/webhook/certMode'"],
      ['webhook.timeoutSeconds=31', "'/webhook/timeoutSeconds'"],
      ['replicas=0', "'/replicas'"],
      ['webhok.port=9443', "'webhok'"], // helm names every unknown top-level key in one message
      ['image.pullPolicy=Sometimes', "'/image/pullPolicy'"],
      ['approvals.ttl=a day', "'/approvals/ttl'"],
      ['otlp.protocol=thrift', "'/otlp/protocol'"],
      ['image.digest=sha256:abc', "'/image/digest'"],
      ['image.tag=0.1.0@sha256:abc', "'/image/tag'"], // pin with image.digest instead
      ['nameOverride=Warden', "'/nameOverride'"],
      ['fullnameOverride=x_y', "'/fullnameOverride'"],
      ['operator.priorityClassName=high', "'operator'"], // moved to the top level
      ['extraEnv[0].value=x', "'/extraEnv/0'"],
      ['extraVolumeMounts[0].name=x', "'/extraVolumeMounts/0'"],
      ['crds.install=yes', "'/crds/install'"],
      ['sidecarRoleBindings[0].namespace=Agents', "'/sidecarRoleBindings/0'"],
    ];
    const r = helm(['template', RELEASE, CHART, ...bad.flatMap(([set]) => ['--set', set])]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("values don't meet the specifications of the schema");
    for (const [set, message] of bad) expect({ set, named: r.stderr.includes(message) }).toEqual({ set, named: true });
  });
});
