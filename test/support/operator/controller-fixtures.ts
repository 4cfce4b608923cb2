// Real-looking objects for the controller's tests: an AccessPolicy as the API server returns it,
// and pods injected by the real injector (operator/inject), so annotations and hashes are genuine.
import YAML from 'yaml';
import { INJECTION_ENABLED, INJECTION_LABEL } from '../../../common/k8s/names';
import { validateAccessPolicy } from '../../../common/policy/schema';
import type { AccessPolicy } from '../../../common/policy/types';
import { resolveInjectorConfig, type InjectorConfig } from '../../../operator/inject/config';
import { injectionConfigHash } from '../../../operator/inject/hash';
import type { Pod } from '../../../operator/inject/k8s-types';
import { injectPod } from '../../../operator/inject/mutate';
import type { PodObject, PolicyObject } from '../../../operator/controller/types';

export const POLICY_YAML = `
apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata:
  name: support-agent
  namespace: agents
  uid: 6f1c3e0a-2b7d-4c55-9d0e-0a1b2c3d4e5f
  generation: 3
  resourceVersion: "4711"
  creationTimestamp: "2025-01-01T00:00:00Z"
spec:
  podSelector:
    matchLabels:
      app: support-agent
  defaultAction: allow
  targets:
    - name: crm
      postgres:
        host: crm-db.data.svc.cluster.local
        database: crm
        tls: require
        credentialsSecret: crm-db
        listenPort: 15432
      env: DATABASE_URL
    - name: openai
      http:
        baseUrl: https://api.openai.com
        credentialsSecret: openai
        auth: {header: Authorization, valuePrefix: "Bearer "}
      env: OPENAI_BASE_URL
  rules:
    - name: no-ddl
      action: deny
      match: {target: crm, sql: {statements: [DROP, TRUNCATE]}}
`;

export function policyObject(overrides: { name?: string; uid?: string; spec?: unknown; generation?: number } = {}): PolicyObject {
  const p = YAML.parse(POLICY_YAML) as PolicyObject;
  if (overrides.name) p.metadata.name = overrides.name;
  if (overrides.uid) p.metadata.uid = overrides.uid;
  if (overrides.generation !== undefined) p.metadata.generation = overrides.generation;
  if (overrides.spec !== undefined) p.spec = overrides.spec;
  return p;
}

export function validated(p: PolicyObject): AccessPolicy {
  const r = validateAccessPolicy({ apiVersion: p.apiVersion, kind: p.kind, metadata: p.metadata, spec: p.spec });
  if (!r.ok) throw new Error(`fixture policy invalid: ${JSON.stringify(r.errors)}`);
  return r.policy;
}

export function injectorConfig(image = 'ghcr.io/agent-warden/agent-warden:0.2.0'): InjectorConfig {
  return resolveInjectorConfig({ image, operatorNamespace: 'agent-warden' });
}

export const OPTED_IN = { [INJECTION_LABEL]: INJECTION_ENABLED };

export function plainPod(name: string, labels: Record<string, string> = { app: 'support-agent' }): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'agents', labels },
    spec: { containers: [{ name: 'agent', image: 'ghcr.io/example/support-agent:1.4.2' }] },
  } as Pod;
}

/** A pod as the webhook injected it for `policy` with `config` (phase Running). */
export function injectedPod(name: string, policy: PolicyObject, config: InjectorConfig = injectorConfig()): PodObject {
  const result = injectPod(plainPod(name), { namespace: 'agents', namespaceLabels: OPTED_IN, policies: [validated(policy)], config });
  if (result.outcome !== 'injected') throw new Error(`fixture pod not injected: ${JSON.stringify(result)}`);
  return { ...(result.pod as unknown as PodObject), status: { phase: 'Running' } };
}

export function expectedHashFor(config: InjectorConfig = injectorConfig()): (p: AccessPolicy) => string {
  return (p) => injectionConfigHash(config, p);
}
