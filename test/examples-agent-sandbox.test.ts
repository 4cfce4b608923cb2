// examples/agent-sandbox and docs/agent-sandbox.md without a cluster: every object passes its schema
// (agent-sandbox's own CRDs, vendored in test/support/agent-sandbox/crds; the Kubernetes schemas;
// the AccessPolicy CRD through `warden validate`'s own code), the pieces name each other (policy
// selects the template's pods, Secret, ServiceAccount and RBAC for holds, pool and claim), the
// NetworkPolicy lets the sidecar reach every target, DNS and the API server, and the docs' YAML and
// Event text are what the example and the operator really hold and say.
import fs from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import * as core from 'kubernetes-models/v1';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import * as rbac from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import YAML from 'yaml';
import { runValidate } from '../cli/validate';
import { INJECTION_ENABLED, INJECTION_LABEL } from '../common/k8s/names';
import { selectorMatches } from '../common/k8s/selector';
import { parsePolicyYaml } from '../common/policy/load';
import { findRepoRoot, toAjvSchema } from '../common/policy/schema';
import type { AccessPolicy, LabelSelector } from '../common/policy/types';
import { reconcilePolicy } from '../operator/controller/reconcile';
import type { PodObject, PolicyObject } from '../operator/controller/types';
import { SANDBOX_LABELS } from '../operator/inject/agent-sandbox';
import { resolveInjectorConfig } from '../operator/inject/config';
import { injectionConfigHash } from '../operator/inject/hash';
import type { Pod } from '../operator/inject/k8s-types';
import { injectPod } from '../operator/inject/mutate';
import { podTemplateOf } from '../operator/inject/workloads';
import { fixture, IMAGE, OPTED_IN } from './support/operator/inject-fixtures';

type Obj = Record<string, any>;
const ROOT = findRepoRoot();
const EXAMPLE = path.join(ROOT, 'examples', 'agent-sandbox');
const DOC = path.join(ROOT, 'docs', 'agent-sandbox.md');
const CRDS = path.join(ROOT, 'test', 'support', 'agent-sandbox', 'crds');

const readYaml = (file: string): Obj[] =>
  YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Obj)
    .filter((d) => d !== null);

const kustomization = readYaml(path.join(EXAMPLE, 'kustomization.yaml'))[0];
const resources: string[] = kustomization.resources;
const objects: Obj[] = resources.flatMap((r) => readYaml(path.join(EXAMPLE, r)));
const claim = readYaml(path.join(EXAMPLE, 'claim.yaml'))[0];
const one = (kind: string): Obj => {
  const found = objects.filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0];
};

function examplePolicy(): AccessPolicy {
  const [doc] = parsePolicyYaml(YAML.stringify(one('AccessPolicy')), 'policy.yaml');
  if (doc?.status !== 'valid') throw new Error(`examples/agent-sandbox/policy.yaml: ${JSON.stringify(doc)}`);
  return doc.policy;
}
const policy = examplePolicy();
const template = one('SandboxTemplate');
const podLabels = (): Record<string, string> => podTemplateOf(template)!.metadata!.labels!;

/** ajv for one vendored agent-sandbox CRD's v1beta1 schema, unknown fields refused (as toAjvSchema does for ours). */
function crdValidator(kind: string): (doc: unknown) => string[] {
  const file = fs.readdirSync(CRDS).find((f) => readYaml(path.join(CRDS, f))[0].spec.names.kind === kind)!;
  const crd = readYaml(path.join(CRDS, file))[0];
  const version = crd.spec.versions.find((v: Obj) => v.name === 'v1beta1');
  const ajv = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true, validateFormats: false });
  const validate = ajv.compile(toAjvSchema(version.schema.openAPIV3Schema) as Obj);
  return (doc) => {
    const errors = validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
    if ((doc as Obj).apiVersion !== `${crd.spec.group}/v1beta1`) errors.push(`apiVersion is not ${crd.spec.group}/v1beta1`);
    return errors;
  };
}

/** agent-sandbox's NameHash: FNV-1a 32-bit, 8 hex digits (controllers/sandbox_controller.go). */
function nameHash(name: string): string {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(name)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** The NetworkPolicy agent-sandbox makes from the template's rules (extensions/controllers/sandboxtemplate_controller.go). */
function templateNetworkPolicy(): Obj {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: `${template.metadata.name}-network-policy`, namespace: template.metadata.namespace },
    spec: {
      podSelector: { matchLabels: { [SANDBOX_LABELS.templateRefHash]: nameHash(template.metadata.name) } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: template.spec.networkPolicy.ingress,
      egress: template.spec.networkPolicy.egress,
    },
  };
}

interface Destination {
  namespace?: string;
  podLabels?: Record<string, string>;
  ip?: string;
  port: number;
  protocol: 'TCP' | 'UDP';
}

/** Whether an egress rule list lets the pod reach a destination (NetworkPolicy semantics, IPv4 /32 and /n blocks). */
function egressAllows(rules: Obj[], to: Destination): boolean {
  return rules.some((rule) => {
    const portOk =
      rule.ports === undefined ||
      rule.ports.some((p: Obj) => (p.protocol ?? 'TCP') === to.protocol && (p.port === undefined || p.port === to.port));
    const peerOk =
      rule.to === undefined ||
      rule.to.some((peer: Obj) => {
        if (peer.ipBlock)
          return (
            to.ip !== undefined && inCidr(to.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((c: string) => inCidr(to.ip!, c))
          );
        if (to.namespace === undefined) return false;
        const nsOk =
          peer.namespaceSelector === undefined
            ? to.namespace === template.metadata.namespace
            : selects(peer.namespaceSelector, { 'kubernetes.io/metadata.name': to.namespace });
        const podOk = peer.podSelector === undefined || selects(peer.podSelector, to.podLabels ?? {});
        return nsOk && podOk;
      });
    return portOk && peerOk;
  });
}
const selects = (s: LabelSelector, labels: Record<string, string>): boolean => selectorMatches(s, labels);
function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  if (base.includes(':') || ip.includes(':')) return false;
  const n = (a: string): number => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const mask = Number(bits) === 0 ? 0 : 2 ** 32 - 2 ** (32 - Number(bits));
  return (n(ip) & mask) >>> 0 === (n(base) & mask) >>> 0;
}

describe('examples/agent-sandbox: schemas', () => {
  it('the kustomization lists files that exist, in an order where the policy comes before the pods', () => {
    expect(kustomization.sortOptions).toEqual({ order: 'fifo' });
    for (const r of resources) expect(fs.existsSync(path.join(EXAMPLE, r))).toBe(true);
    expect(resources.indexOf('policy.yaml')).toBeLessThan(resources.indexOf('warm-pool.yaml'));
    expect(objects.map((o) => o.kind).sort()).toEqual(
      ['AccessPolicy', 'Namespace', 'RoleBinding', 'RoleBinding', 'Secret', 'SandboxTemplate', 'SandboxWarmPool', 'ServiceAccount'].sort(),
    );
    for (const o of [...objects, claim].filter((x) => x.kind !== 'Namespace')) expect(o.metadata.namespace).toBe('sandboxes');
  });

  it.each(['SandboxTemplate', 'SandboxWarmPool'])("%s passes agent-sandbox's own CRD schema", (kind) => {
    expect(crdValidator(kind)(one(kind))).toEqual([]);
  });

  it('the SandboxClaim passes its CRD schema', () => {
    expect(crdValidator('SandboxClaim')(claim)).toEqual([]);
  });

  it('the CRD validators do refuse what agent-sandbox would refuse', () => {
    const pool = structuredClone(one('SandboxWarmPool'));
    pool.spec.updateStrategy.type = 'Rolling';
    pool.spec.replicas = 'two';
    expect(crdValidator('SandboxWarmPool')(pool)).toEqual(
      expect.arrayContaining([expect.stringContaining('/spec/replicas'), expect.stringContaining('/spec/updateStrategy/type')]),
    );
    const t = structuredClone(template);
    t.spec.networkPolicy.podSelector = {}; // agent-sandbox owns the selector: not a field of the template
    t.spec.podTemplate.spec.containers[0].ports = [{ containerPort: 'http' }];
    expect(crdValidator('SandboxTemplate')(t)).toEqual(
      expect.arrayContaining([expect.stringContaining('/spec/networkPolicy'), expect.stringContaining('/containerPort must be integer')]),
    );
    expect(crdValidator('SandboxClaim')({ ...claim, spec: {} })).toEqual([expect.stringContaining('warmPoolRef')]);
  });

  it('the core objects, and the NetworkPolicy agent-sandbox makes from the template, pass the Kubernetes schemas', () => {
    const models: Record<string, new (d: any) => { validate(): void }> = {
      Namespace: core.Namespace,
      Secret: core.Secret,
      ServiceAccount: core.ServiceAccount,
      RoleBinding: rbac.RoleBinding,
    };
    for (const o of objects.filter((x) => models[x.kind])) new models[o.kind](o).validate();
    new networking.NetworkPolicy(templateNetworkPolicy() as never).validate();
    // the pod agent-sandbox creates from the template, injected, is a valid Pod too (operator/inject/agent-sandbox.test.ts has the rest)
    expect(() =>
      new networking.NetworkPolicy({
        ...templateNetworkPolicy(),
        spec: { podSelector: {}, egress: [{ ports: [{ port: 53, protocol: 7 }] }] },
      } as never).validate(),
    ).toThrow();
  });

  it('`warden validate` accepts the AccessPolicy', async () => {
    const out: string[] = [];
    const code = await runValidate(
      [path.join(EXAMPLE, 'policy.yaml')],
      { output: 'table' },
      { stdout: (s) => out.push(s), stderr: (s) => out.push(s) },
    );
    expect({ code, out: out.join('') }).toEqual({ code: 0, out: expect.stringContaining('AccessPolicy code-agent is valid') });
  });
});

describe('examples/agent-sandbox: the pieces fit', () => {
  it('the namespace is opted in, and the policy selects the pods agent-sandbox makes from the template', () => {
    expect(one('Namespace').metadata.labels[INJECTION_LABEL]).toBe(INJECTION_ENABLED);
    expect(selectorMatches(policy.spec.podSelector, podLabels())).toBe(true);
    // with the labels agent-sandbox adds (warm pool, then claimed) it still selects them
    for (const file of ['sandbox-warm-pod.yaml', 'sandbox-claim-pod.yaml']) {
      expect(selectorMatches(policy.spec.podSelector, fixture<Pod>(file).metadata!.labels!)).toBe(true);
    }
  });

  it('the Secret the target names exists with the keys the sidecar reads; the pool names the template, the claim the pool', () => {
    const secret = one('Secret');
    expect(policy.spec.targets.map((t) => t.postgres?.credentialsSecret)).toEqual([secret.metadata.name]);
    expect(Object.keys(secret.stringData).sort()).toEqual(['password', 'username']);
    expect(one('SandboxWarmPool').spec.sandboxTemplateRef.name).toBe(template.metadata.name);
    expect(claim.spec.warmPoolRef.name).toBe(one('SandboxWarmPool').metadata.name);
  });

  it('it uses the database of examples/kubernetes: the same Service, database, TLS setting and login', () => {
    const k8s = path.join(ROOT, 'examples', 'kubernetes');
    const theirs = readYaml(path.join(k8s, 'policy.yaml')).find((o) => o.kind === 'AccessPolicy')!;
    const pick = (t: Obj): Obj => ({ host: t.postgres.host, port: t.postgres.port, database: t.postgres.database, tls: t.postgres.tls });
    expect(pick(policy.spec.targets[0])).toEqual(pick(theirs.spec.targets.find((t: Obj) => t.postgres)));
    const agentSecret = readYaml(path.join(k8s, 'secrets.yaml')).find((o) => o.metadata.namespace === theirs.metadata.namespace)!;
    expect(one('Secret').stringData).toEqual(agentSecret.stringData);
  });

  it("the policy holds, so the template's ServiceAccount is bound to agent-warden-sidecar", () => {
    expect(policy.spec.rules?.some((r) => r.action === 'hold')).toBe(true);
    const sa = podTemplateOf(template)!.spec!.serviceAccountName;
    expect(one('ServiceAccount').metadata.name).toBe(sa);
    const binding = objects.find((o) => o.kind === 'RoleBinding' && o.roleRef.name === 'agent-warden-sidecar')!;
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa, namespace: 'sandboxes' }]);
  });

  it("lockdown is on, and the template keeps the pod's DNS (no dnsPolicy of its own, explicit rules)", () => {
    expect(policy.spec.lockdown).toBe(true);
    expect(podTemplateOf(template)!.spec!.dnsPolicy).toBeUndefined();
    expect(template.spec.networkPolicy).toBeDefined();
    expect(template.spec.networkPolicyManagement ?? 'Managed').toBe('Managed');
  });
});

describe('examples/agent-sandbox: the NetworkPolicy lets the sidecar do its work', () => {
  const egress = (): Obj[] => template.spec.networkPolicy.egress;
  const dns = { namespace: 'kube-system', podLabels: { 'k8s-app': 'kube-dns' }, port: 53 };

  it('DNS to the cluster DNS pods, on UDP and TCP, since the targets are host names', () => {
    expect(egressAllows(egress(), { ...dns, protocol: 'UDP' })).toBe(true);
    expect(egressAllows(egress(), { ...dns, protocol: 'TCP' })).toBe(true);
    // and not to any other DNS server (a tunnel)
    expect(egressAllows(egress(), { ip: '8.8.8.8', port: 53, protocol: 'UDP' })).toBe(false);
  });

  it('every postgres target: the pods behind its Service, on its port', () => {
    // The database of examples/kubernetes, which the policy's host names (crm-db.crm.svc).
    const dbLabels = { app: 'crm-db' };
    for (const t of policy.spec.targets.filter((x) => x.postgres)) {
      const [, namespace] = t.postgres!.host.split('.');
      expect(egressAllows(egress(), { namespace, podLabels: dbLabels, port: t.postgres!.port ?? 5432, protocol: 'TCP' })).toBe(true);
      expect(egressAllows(egress(), { namespace, podLabels: dbLabels, port: 5433, protocol: 'TCP' })).toBe(false);
      expect(egressAllows(egress(), { namespace: 'other', podLabels: dbLabels, port: 5432, protocol: 'TCP' })).toBe(false);
    }
    const k8sDb = path.join(ROOT, 'examples', 'kubernetes', 'database.yaml');
    if (fs.existsSync(k8sDb)) {
      const service = readYaml(k8sDb).find((o) => o.kind === 'Service');
      expect(service?.spec.selector).toEqual(dbLabels);
    }
  });

  it('the API server endpoint on 6443, for holds; the collector on OTLP/HTTP; nothing private beyond', () => {
    expect(egressAllows(egress(), { ip: '172.18.0.2', port: 6443, protocol: 'TCP' })).toBe(true);
    expect(
      egressAllows(egress(), {
        namespace: 'observability',
        podLabels: { 'app.kubernetes.io/name': 'opentelemetry-collector' },
        port: 4318,
        protocol: 'TCP',
      }),
    ).toBe(true);
    expect(egressAllows(egress(), { ip: '10.96.0.1', port: 443, protocol: 'TCP' })).toBe(false);
    expect(egressAllows(egress(), { namespace: 'crm', podLabels: { app: 'other' }, port: 5432, protocol: 'TCP' })).toBe(false);
  });
});

describe('docs/agent-sandbox.md says what the example and the operator really hold', () => {
  const doc = fs.readFileSync(DOC, 'utf8');
  const blocks = (lang: string): string[] => [...doc.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]);

  it("its networkPolicy snippet is the template's, its AccessPolicy and NetworkPolicy pass their schemas", () => {
    const yamls = blocks('yaml').map((b) => YAML.parse(b) as Obj);
    expect(yamls.find((y) => 'networkPolicy' in y)!.networkPolicy).toEqual(template.spec.networkPolicy);
    const ap = yamls.find((y) => y.kind === 'AccessPolicy')!;
    const [parsed] = parsePolicyYaml(YAML.stringify(ap), 'doc');
    expect(parsed.status).toBe('valid');
    expect(ap.spec.podSelector).toEqual(policy.spec.podSelector);
    const np = yamls.find((y) => y.kind === 'NetworkPolicy')!;
    new networking.NetworkPolicy(np as never).validate();
    expect(selectorMatches(np.spec.podSelector, podLabels())).toBe(true);
    expect(np.spec.egress).toEqual(template.spec.networkPolicy.egress.slice(0, 2));
  });

  it('its SidecarOutdated Event is the one the operator writes for the two example pods', () => {
    const old = resolveInjectorConfig({ image: 'ghcr.io/agent-warden/agent-warden:0.0.9', operatorNamespace: 'agent-warden' });
    const now = resolveInjectorConfig({ image: IMAGE, operatorNamespace: 'agent-warden' });
    const pods = ['sandbox-claim-pod.yaml', 'sandbox-warm-pod.yaml'].map((f) => {
      const r = injectPod(fixture<Pod>(f), { namespace: 'sandboxes', namespaceLabels: OPTED_IN, policies: [policy], config: old });
      if (r.outcome !== 'injected') throw new Error(JSON.stringify(r));
      return { ...(r.pod as unknown as PodObject), status: { phase: 'Running' } };
    });
    const policyObject = one('AccessPolicy') as PolicyObject;
    const r = reconcilePolicy({
      policy: policyObject,
      pods,
      secrets: ['crm-db'],
      otherPolicies: [],
      expectedHash: (p) => injectionConfigHash(now, p),
      now: new Date('2026-12-07T16:00:00Z'),
    });
    const message = r.events.find((e) => e.reason === 'SidecarOutdated')!.message;
    expect(blocks('text').map((b) => b.trim().replace(/\n/g, ' '))).toContain(message.replace(/\n/g, ' '));
    // and the recycle command it gives is the one the doc shows
    expect(doc).toContain(`kubectl -n sandboxes delete sandbox -l agents.x-k8s.io/warm-pool-sandbox=${nameHash('code-agent')}`);
  });
});
