// examples/kubernetes without a cluster: the kustomization renders (real `kubectl kustomize` where
// it runs), every object passes the Kubernetes schemas and the AccessPolicy passes the CRD's, the
// pieces name each other correctly (Service DNS name, Secrets, labels, ServiceAccount, RBAC), and
// the operator's own injectPod turns the agent's pod template into one whose DATABASE_URL reaches
// the sidecar while the credentials stay in the sidecar. The policy is run for real in
// examples-k8s-run.test.ts; e2e/examples-k8s.test.ts applies it to a kind cluster.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import * as apps from 'kubernetes-models/apps/v1';
import * as rbac from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as core from 'kubernetes-models/v1';
import { INJECTION_ENABLED, INJECTION_LABEL, LOCKDOWN_CONTAINER, SIDECAR_CONTAINER } from '../common/k8s/names';
import { formatPolicyError } from '../common/policy/errors';
import { parsePolicyYaml } from '../common/policy/load';
import type { AccessPolicy } from '../common/policy/types';
import { resolveInjectorConfig } from '../operator/inject/config';
import type { Container, Pod } from '../operator/inject/k8s-types';
import { injectPod } from '../operator/inject/mutate';
import { podTemplateOf } from '../operator/inject/workloads';
import { CHART, helm, HELM, NS, render } from './support/chart/helm';
import { findK8sTools } from './support/k8s-tools';
import { one, parseManifests, resolveKustomization, secretValues, type K8sObject } from './support/kustomize';

const ROOT = path.resolve(__dirname, '..');
const EXAMPLE = path.join(ROOT, 'examples', 'kubernetes');
const tools = findK8sTools();
const objects = resolveKustomization(EXAMPLE);

function examplePolicy(): AccessPolicy {
  const docs = parsePolicyYaml(YAML.stringify(one(objects, 'AccessPolicy')), 'examples/kubernetes/policy.yaml');
  const errors = docs.flatMap((d) => (d.status === 'invalid' ? d.errors.map(formatPolicyError) : []));
  if (errors.length > 0) throw new Error(`examples/kubernetes/policy.yaml is invalid:\n${errors.join('\n')}`);
  const [doc] = docs;
  if (doc?.status !== 'valid') throw new Error('examples/kubernetes/policy.yaml holds no AccessPolicy');
  return doc.policy;
}

function agentDeployment(): K8sObject {
  return one(objects, 'Deployment', 'support-agent', 'agents');
}

type Model = new (data: any) => { validate(): void };
const MODELS: Record<string, Model> = {
  'v1/Namespace': core.Namespace,
  'v1/Secret': core.Secret,
  'v1/ConfigMap': core.ConfigMap,
  'v1/Service': core.Service,
  'v1/ServiceAccount': core.ServiceAccount,
  'apps/v1/Deployment': apps.Deployment,
  'rbac.authorization.k8s.io/v1/RoleBinding': rbac.RoleBinding,
};

describe('examples/kubernetes renders', () => {
  (tools.ok ? test : test.skip)('`kubectl kustomize` gives exactly the objects the test resolver reads, in apply order', () => {
    if (!tools.ok) return;
    const r = spawnSync(tools.tools.kubectl, ['kustomize', EXAMPLE], { encoding: 'utf8' });
    expect({ code: r.status, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const rendered = parseManifests(r.stdout);
    expect(rendered).toEqual(objects);
  });

  test('apply order: namespaces first, the AccessPolicy before the agent that needs it', () => {
    const order = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    const at = (id: string): number => {
      const i = order.indexOf(id);
      if (i < 0) throw new Error(`${id} is not in the kustomization (${order.join(', ')})`);
      return i;
    };
    expect(order.slice(0, 2).sort()).toEqual(['Namespace/agents', 'Namespace/crm']);
    expect(at('AccessPolicy/support-agent')).toBeLessThan(at('Deployment/support-agent'));
    expect(at('RoleBinding/agent-warden-sidecar-support-agent')).toBeLessThan(at('Deployment/support-agent'));
  });

  test('every object is valid against the Kubernetes schemas; the AccessPolicy against the CRD', () => {
    for (const obj of objects) {
      const key = `${obj.apiVersion}/${obj.kind}`;
      if (key === 'agentwarden.io/v1alpha1/AccessPolicy') continue;
      const Model = MODELS[key];
      if (!Model) throw new Error(`no schema check for ${key} ${obj.metadata.name}: add it to MODELS`);
      try {
        new Model(obj).validate();
      } catch (err) {
        throw new Error(`${key} ${obj.metadata.name}: ${(err as Error).message}`);
      }
      // Namespaced kinds name their namespace: `kubectl apply -k` must not drop them in the current one.
      if (obj.kind !== 'Namespace')
        expect({ obj: `${key}/${obj.metadata.name}`, ns: obj.metadata.namespace }).toEqual({
          obj: `${key}/${obj.metadata.name}`,
          ns: expect.stringMatching(/^(agents|crm)$/),
        });
    }
    expect(examplePolicy().metadata).toMatchObject({ name: 'support-agent', namespace: 'agents' });
  });
});

describe('examples/kubernetes pieces fit together', () => {
  test('the agents namespace is opted in to injection, and the database lives elsewhere', () => {
    expect(one(objects, 'Namespace', 'agents').metadata.labels).toEqual({ [INJECTION_LABEL]: INJECTION_ENABLED });
    expect(one(objects, 'Namespace', 'crm').metadata.labels?.[INJECTION_LABEL]).toBeUndefined();
    expect(one(objects, 'Deployment', 'crm-db').metadata.namespace).toBe('crm');
  });

  test("the policy's target is the database Service's cluster DNS name and port, never loopback", () => {
    const crm = examplePolicy().spec.targets.find((t) => t.name === 'crm')!.postgres!;
    expect(crm.host).not.toMatch(/^(127\.|localhost$|::1$|0\.0\.0\.0$)/);
    const [svcName, svcNamespace, svc, ...rest] = crm.host.split('.');
    expect({ svc, rest }).toEqual({ svc: 'svc', rest: [] });
    const service = one(objects, 'Service', svcName, svcNamespace);
    expect(service.spec.ports.map((p: { port: number }) => p.port)).toContain(crm.port);
    // The Service selects the database pods, on the port the container serves.
    const db = one(objects, 'Deployment', undefined, svcNamespace);
    expect(db.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    const port = service.spec.ports.find((p: { port: number }) => p.port === crm.port);
    expect(db.spec.template.spec.containers[0].ports.map((p: { name: string }) => p.name)).toContain(port.targetPort);
  });

  test('the sidecar Secret logs in as the role and password the database creates for it, to the right database', () => {
    const policy = examplePolicy();
    const crm = policy.spec.targets.find((t) => t.name === 'crm')!.postgres!;
    const sidecarSecret = secretValues(one(objects, 'Secret', crm.credentialsSecret, policy.metadata.namespace));
    const db = one(objects, 'Deployment', 'crm-db', 'crm').spec.template.spec.containers[0];
    const env = Object.fromEntries(db.env.map((e: { name: string; value?: string; valueFrom?: unknown }) => [e.name, e]));
    expect(env.POSTGRES_DB.value).toBe(crm.database);
    const agentRef = env.AGENT_PASSWORD.valueFrom.secretKeyRef;
    expect(secretValues(one(objects, 'Secret', agentRef.name, 'crm'))[agentRef.key]).toBe(sidecarSecret.password);
    const init = one(objects, 'ConfigMap', 'crm-init', 'crm').data as Record<string, string>;
    expect(Object.keys(init).sort()).toEqual(['10-roles.sh', '20-crm.sql']); // the order the image runs them in
    expect(init['10-roles.sh']).toContain(`CREATE ROLE ${sidecarSecret.username} LOGIN PASSWORD :'pw'`);
    expect(init['10-roles.sh']).toContain('--set=pw="$AGENT_PASSWORD"');
    // Least privilege: the sidecar's role is not the owner the image creates.
    expect(sidecarSecret.username).not.toBe(env.POSTGRES_USER.value);
    expect(init['20-crm.sql']).toContain(`TO ${sidecarSecret.username};`);
    // Demo values, and the files say so.
    expect(fs.readFileSync(path.join(EXAMPLE, 'secrets.yaml'), 'utf8')).toMatch(/DEMO CREDENTIALS, NOT SECRET/);
  });

  test("other examples that use this database log in with this example's sidecar credentials", () => {
    const own = secretValues(one(objects, 'Secret', 'crm-db', 'agents'));
    const users: string[] = [];
    for (const dir of fs.readdirSync(path.join(ROOT, 'examples'), { withFileTypes: true })) {
      if (!dir.isDirectory() || dir.name === 'kubernetes') continue;
      const folder = path.join(ROOT, 'examples', dir.name);
      const docs = fs
        .readdirSync(folder, { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.yaml') && !f.endsWith('kustomization.yaml'))
        .flatMap((f) => parseManifests(fs.readFileSync(path.join(folder, f), 'utf8')));
      for (const policy of docs.filter((d) => d.kind === 'AccessPolicy')) {
        for (const t of policy.spec.targets ?? []) {
          if (t.postgres?.host !== 'crm-db.crm.svc') continue;
          const secret = docs.find((d) => d.kind === 'Secret' && d.metadata.name === t.postgres.credentialsSecret);
          // A Secret the folder does not define is this example's own (same namespace: agents).
          if (!secret) {
            expect({ dir: dir.name, namespace: policy.metadata.namespace }).toEqual({ dir: dir.name, namespace: 'agents' });
            users.push(dir.name);
            continue;
          }
          const values = secretValues(secret);
          expect({ dir: dir.name, username: values.username, password: values.password }).toEqual({
            dir: dir.name,
            username: own.username,
            password: own.password,
          });
          users.push(dir.name);
        }
      }
    }
    // The examples that reuse this database today; a new one joins the check by itself.
    expect(users).toEqual(expect.arrayContaining(['agent-sandbox', 'python-langchain']));
  });

  test('the database loads init-roles.sh and init.sql; the agent runs agent.sh (the files the run test uses)', () => {
    const db = one(objects, 'Deployment', 'crm-db', 'crm').spec.template.spec;
    const initVolume = db.volumes.find((v: { name: string }) => v.name === db.containers[0].volumeMounts[0].name);
    expect(db.containers[0].volumeMounts[0].mountPath).toBe('/docker-entrypoint-initdb.d');
    const init = one(objects, 'ConfigMap', initVolume.configMap.name, 'crm').data;
    expect(init['10-roles.sh']).toBe(fs.readFileSync(path.join(EXAMPLE, 'init-roles.sh'), 'utf8'));
    expect(init['20-crm.sql']).toBe(fs.readFileSync(path.join(EXAMPLE, 'init.sql'), 'utf8'));
    const agent = agentDeployment().spec.template.spec;
    const mount = agent.containers[0].volumeMounts.find((m: { mountPath: string }) => m.mountPath === '/opt/agent');
    const scriptVolume = agent.volumes.find((v: { name: string }) => v.name === mount.name);
    expect(agent.containers[0].command).toEqual(['sh', '/opt/agent/agent.sh']);
    expect(one(objects, 'ConfigMap', scriptVolume.configMap.name, 'agents').data['agent.sh']).toBe(
      fs.readFileSync(path.join(EXAMPLE, 'agent.sh'), 'utf8'),
    );
  });

  test("the agent's own manifest holds no database address or credential", () => {
    const text = fs.readFileSync(path.join(EXAMPLE, 'agent.yaml'), 'utf8') + fs.readFileSync(path.join(EXAMPLE, 'agent.sh'), 'utf8');
    expect(text).not.toMatch(/crm-db|\b5432\b|not-a-secret|secretKeyRef|PGPASSWORD/);
    const container = agentDeployment().spec.template.spec.containers[0];
    expect(container.env.map((e: { name: string }) => e.name)).toEqual(['INTERVAL']);
  });

  test("the policy selects the agent's pods, and its ServiceAccount may file ApprovalRequests", () => {
    const policy = examplePolicy();
    const deploy = agentDeployment();
    expect(deploy.metadata.namespace).toBe(policy.metadata.namespace);
    expect(deploy.spec.template.metadata.labels).toMatchObject(policy.spec.podSelector?.matchLabels ?? {});
    const sa = deploy.spec.template.spec.serviceAccountName;
    one(objects, 'ServiceAccount', sa, 'agents');
    const binding = one(objects, 'RoleBinding', 'agent-warden-sidecar-support-agent', 'agents');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'agent-warden-sidecar' });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa, namespace: 'agents' }]);
    expect(one(objects, 'RoleBinding', 'agent-warden-approvers', 'agents').roleRef.name).toBe('agent-warden-approver');
    // The policy has rules of every kind the README walks through.
    expect(new Set(policy.spec.rules?.map((r) => r.action))).toEqual(new Set(['deny', 'hold', 'allow']));
    expect(policy.spec.masking?.length).toBeGreaterThan(0);
  });

  (HELM ? test : test.skip)('the ClusterRoles the RoleBindings name are the ones the chart installs', () => {
    const chartRoles = render()
      .filter((o) => o.kind === 'ClusterRole')
      .map((o) => o.metadata.name);
    for (const b of objects.filter((o) => o.kind === 'RoleBinding')) expect(chartRoles).toContain(b.roleRef.name);
  });
});

describe('the operator injects the example agent', () => {
  const config = resolveInjectorConfig({ image: 'ghcr.io/agent-warden/agent-warden:test' });
  const policy = examplePolicy();

  function injected(): Pod {
    const template = podTemplateOf(agentDeployment());
    if (!template) throw new Error('the agent Deployment has no pod template');
    const result = injectPod(template as Pod, {
      namespace: 'agents',
      namespaceLabels: one(objects, 'Namespace', 'agents').metadata.labels,
      policies: [policy],
      config,
    });
    if (result.outcome !== 'injected') throw new Error(`not injected: ${result.outcome}: ${'reason' in result ? result.reason : ''}`);
    expect(result.warnings).toEqual([]);
    return result.pod;
  }

  test('DATABASE_URL points at the sidecar listener for the crm target, with no password', () => {
    const pod = injected();
    const agent = pod.spec!.containers.find((c) => c.name === 'agent')!;
    const env = Object.fromEntries((agent.env ?? []).map((e) => [e.name, e.value]));
    const crm = policy.spec.targets.find((t) => t.name === 'crm')!.postgres!;
    const url = new URL(env.DATABASE_URL!);
    expect({ host: url.hostname, port: Number(url.port), db: url.pathname, password: url.password }).toEqual({
      host: '127.0.0.1',
      port: crm.listenPort,
      db: `/${crm.database}`,
      password: '',
    });
    expect(env.INTERVAL).toBe('30');
  });

  test('the injected pod is a valid Pod, and the Deployment with it a valid Deployment', () => {
    const pod = injected();
    const asCreated = {
      ...pod,
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { ...pod.metadata, name: 'support-agent-1', namespace: 'agents' },
    };
    new core.Pod(asCreated as never).validate();
    expect(() => new core.Pod({ ...asCreated, spec: { ...asCreated.spec, containers: [{ name: 7 }] } } as never).validate()).toThrow();
    const deploy = structuredClone(agentDeployment());
    deploy.spec.template = pod;
    new apps.Deployment(deploy as never).validate();
  });

  test('the Secret is mounted into the sidecar only, and lockdown fences the agent', () => {
    const pod = injected();
    const spec = pod.spec!;
    const secretVolumes = new Set(
      (spec.volumes ?? []).filter((v) => (v.secret as { secretName?: string } | undefined)?.secretName === 'crm-db').map((v) => v.name),
    );
    expect(secretVolumes.size).toBe(1);
    const all: Container[] = [...(spec.initContainers ?? []), ...spec.containers];
    const mounting = all.filter((c) => (c.volumeMounts ?? []).some((m) => secretVolumes.has(m.name))).map((c) => c.name);
    expect(mounting).toEqual([SIDECAR_CONTAINER]);
    const agent = spec.containers.find((c) => c.name === 'agent')!;
    expect(JSON.stringify(agent)).not.toMatch(/secretKeyRef|crm-db\b/);
    expect((spec.initContainers ?? []).map((c) => c.name)).toEqual(expect.arrayContaining([LOCKDOWN_CONTAINER, SIDECAR_CONTAINER]));
    // The agent's own hardening survives injection.
    expect(agent.securityContext).toMatchObject({ runAsUser: 999, runAsNonRoot: true, allowPrivilegeEscalation: false });
  });

  test('the agent gets no service-account token (it would carry the sidecar RBAC); the sidecar projects its own', () => {
    // Red team RT14-14: with the pod's token the agent could list, forge or cancel ApprovalRequests.
    const spec = injected().spec!;
    expect(spec.automountServiceAccountToken).toBe(false);
    const tokenVolumes = new Set(
      (spec.volumes ?? [])
        .filter((v) =>
          ((v.projected as { sources?: { serviceAccountToken?: unknown }[] } | undefined)?.sources ?? []).some(
            (x) => x.serviceAccountToken,
          ),
        )
        .map((v) => v.name),
    );
    const all: Container[] = [...(spec.initContainers ?? []), ...spec.containers];
    const withToken = all.filter((c) => (c.volumeMounts ?? []).some((m) => tokenVolumes.has(m.name))).map((c) => c.name);
    expect(withToken).toEqual([SIDECAR_CONTAINER]);
  });
});

describe('the commands the README gives, with the built bin/warden', () => {
  const BIN = path.join(ROOT, 'bin', 'warden');

  test('`warden validate examples/kubernetes/policy.yaml` accepts it', () => {
    const r = spawnSync(BIN, ['validate', path.join(EXAMPLE, 'policy.yaml')], { encoding: 'utf8' });
    expect({ code: r.status, out: r.stdout + r.stderr }).toEqual({ code: 0, out: expect.stringContaining('support-agent') });
  });

  (tools.ok ? test : test.skip)('`kubectl kustomize examples/kubernetes | warden validate -` finds the one AccessPolicy valid', () => {
    if (!tools.ok) return;
    const rendered = spawnSync(tools.tools.kubectl, ['kustomize', EXAMPLE], { encoding: 'utf8' });
    const r = spawnSync(BIN, ['validate', '-'], { encoding: 'utf8', input: rendered.stdout });
    expect({ code: r.status, valid: r.stdout.match(/AccessPolicy \S+ is valid/g) }).toEqual({
      code: 0,
      valid: ['AccessPolicy support-agent is valid'],
    });
  });

  test('`warden inject` gives the agent Deployment the sidecar, as the webhook would', () => {
    const r = spawnSync(BIN, ['inject', '-f', path.join(EXAMPLE, 'agent.yaml'), '--policy', path.join(EXAMPLE, 'policy.yaml')], {
      encoding: 'utf8',
    });
    expect({ code: r.status, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const [deploy] = parseManifests(r.stdout);
    const spec = deploy.spec.template.spec;
    expect(spec.initContainers.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining([SIDECAR_CONTAINER, LOCKDOWN_CONTAINER]),
    );
    const agent = spec.containers.find((c: { name: string }) => c.name === 'agent');
    expect(agent.env).toContainEqual({ name: 'DATABASE_URL', value: 'postgresql://agent@127.0.0.1:15432/crm?sslmode=disable' });
  });
});

describe('pointers to the example', () => {
  const appVersion = (YAML.parse(fs.readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as { appVersion: string }).appVersion;

  (HELM ? test : test.skip)("the chart's NOTES give `kubectl apply -k` by URL at the chart's version, and the local path", () => {
    const r = helm(['install', 'agent-warden', CHART, '--namespace', NS, '--dry-run=client']);
    expect(r.code).toBe(0);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    expect(notes).toContain(`kubectl apply -k 'https://github.com/agent-warden/agent-warden//examples/kubernetes?ref=v${appVersion}'`);
    expect(notes).toContain('kubectl apply -k examples/kubernetes');
    expect(notes).not.toContain('examples/policy.yaml');
  });

  test('examples/policy.yaml says it is for a local sidecar and points clusters at examples/kubernetes', () => {
    const text = fs.readFileSync(path.join(ROOT, 'examples', 'policy.yaml'), 'utf8');
    expect(text).toContain('examples/kubernetes');
    expect(text).not.toMatch(/^# .*kubectl apply -f examples\/policy\.yaml/m);
  });

  test('the README in the folder walks through apply, logs, approve and clean up with the names used here', () => {
    const readme = fs.readFileSync(path.join(EXAMPLE, 'README.md'), 'utf8');
    for (const command of [
      'kubectl apply -k examples/kubernetes',
      'kubectl -n agents logs deploy/support-agent -c agent',
      'kubectl warden approvals list -n agents',
      'kubectl warden approve',
      'kubectl delete -k examples/kubernetes',
    ])
      expect(readme).toContain(command);
  });
});
