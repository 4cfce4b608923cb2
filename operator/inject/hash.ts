// The configuration hash written on every injected pod (ANNOTATIONS.configHash). The controller
// recomputes it for the current policy and settings; a pod whose hash differs runs a stale sidecar
// and needs a restart (a rollout) to pick up the change.
import { createHash } from 'node:crypto';
import type { AccessPolicy } from '../../common/policy/types';
import { DEFAULT_PORTS, type InjectorConfig, type SidecarPorts } from './config';
import { appEnv } from './app-env';
import { canonicalJson } from '../../common/k8s/canonical-json';
import { referencedSecrets } from '../../common/k8s/referenced-secrets';

/**
 * Covers what ends up in the pod spec and cannot change under a running pod: the images, pull
 * policy, resources, token settings, OTLP settings, and the policy's identity (namespace, name,
 * uid) plus the parts of its spec that shape the pod (env vars set, Secrets mounted, listen ports,
 * the hash-key mount, lockdown). Rules and masking are left out on purpose: the sidecar hot-reloads
 * them from the ConfigMap, and marking every pod stale on each rule edit would force needless
 * restarts.
 */
export function injectionConfigHash(config: InjectorConfig, policy: AccessPolicy): string {
  const shape = {
    v: 1,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    resources: config.resources,
    lockdownImage: config.lockdownImage,
    lockdownByDefault: config.lockdownByDefault,
    tokenAudience: config.tokenAudience,
    tokenExpirationSeconds: config.tokenExpirationSeconds,
    otlpEndpoint: config.otlpEndpoint ?? null,
    otlpProtocol: config.otlpProtocol ?? null,
    // Only when set, so that pods injected before these settings existed keep their hash.
    ...(config.otlpHeadersSecret ? { otlpHeadersSecret: config.otlpHeadersSecret } : {}),
    ...(config.otlpCaConfigMap ? { otlpCaConfigMap: config.otlpCaConfigMap } : {}),
    ...(config.otlpClientCertSecret ? { otlpClientCertSecret: config.otlpClientCertSecret } : {}),
    ...(isDefaultPorts(config.ports) ? {} : { ports: config.ports }),
    // The lockdown rules name the UID and GID: a pod injected under others is stale.
    runAs: [config.runAsUser, config.runAsGroup],
    policy: {
      namespace: policy.metadata.namespace ?? null,
      name: policy.metadata.name,
      uid: typeof policy.metadata.uid === 'string' ? policy.metadata.uid : null,
      env: appEnv(policy, config.ports.egress),
      secrets: referencedSecrets(policy),
      listenPorts: policy.spec.targets.map((t) => t.postgres?.listenPort ?? null),
      hashKey: (policy.spec.masking ?? []).some((m) => m.strategy === 'hash'),
      lockdown: policy.spec.lockdown === true,
    },
  };
  return createHash('sha256').update(canonicalJson(shape)).digest('hex').slice(0, 16);
}

function isDefaultPorts(p: SidecarPorts): boolean {
  return p.admin === DEFAULT_PORTS.admin && p.egress === DEFAULT_PORTS.egress && p.health === DEFAULT_PORTS.health;
}
