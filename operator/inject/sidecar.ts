// The sidecar container and the volumes only it mounts: the policy ConfigMap, each Secret the
// policy's targets name, a projected service-account token, and scratch space. Nothing here is
// mounted into an app container, so the credentials stay out of the agent's reach.
import {
  ANNOTATIONS,
  PATHS,
  POLICY_CONFIGMAP_KEY,
  SIDECAR_CONTAINER,
  SIDECAR_ENV,
  TOKEN_FILE,
  policyConfigMapName,
} from '../../common/k8s/names';
import { referencedSecrets } from '../../common/k8s/referenced-secrets';
import type { AccessPolicy } from '../../common/policy/types';
import { DEFAULT_PORTS, QUANTITY, type InjectorConfig, type ResourceValues, type SidecarPorts, type SidecarResources } from './config';
import type { Container, EnvVar, Volume, VolumeMount } from './k8s-types';
import type { NameAllocator } from './names-alloc';

export const HEALTH_PORT_NAME = 'warden-health';
/** Optional Secrets the sidecar reads when present (sidecar/main.ts): the masking hash key, hold notifications. */
export const MASKING_SECRET = 'warden-masking';
export const NOTIFY_SECRET = 'warden-notify';
/**
 * The sidecar's memory settings, also the image's ENV (Dockerfile) and the README's standalone
 * command: at most 2 glibc malloc arenas, and 1 MB V8 semi-spaces (a small young generation). The
 * third setting, --liftoff-only, V8 refuses in NODE_OPTIONS; `warden sidecar` sets it itself
 * (sidecar/runtime-flags.ts). Set on the container too, so a custom image keeps the budget.
 */
export const SIDECAR_RUNTIME_ENV: Readonly<Record<'MALLOC_ARENA_MAX' | 'NODE_OPTIONS', string>> = {
  MALLOC_ARENA_MAX: '2',
  NODE_OPTIONS: '--max-semi-space-size=1',
};
/** Where the OTLP collector's CA (otlpCaConfigMap) is mounted; OTEL_EXPORTER_OTLP_CERTIFICATE names the file. */
export const OTLP_CA_DIR = '/etc/warden/otlp-ca';
const OTLP_CA_FILE = 'ca.crt';
/** Where the sidecar's OTLP client certificate (otlpClientCertSecret, a kubernetes.io/tls Secret) is mounted. */
export const OTLP_CLIENT_DIR = '/var/run/warden/otlp-client';
const SPOOL_SIZE = '256Mi';
const TMP_SIZE = '64Mi';

export class InjectionError extends Error {
  readonly code = 'INJECTION_REFUSED';
}

export interface SidecarParts {
  container: Container;
  volumes: Volume[];
}

export interface SidecarInput {
  policy: AccessPolicy;
  config: InjectorConfig;
  /** The pod's annotations, for per-pod resource overrides. */
  annotations: Record<string, string>;
  names: NameAllocator;
}

export function sidecarCommand(ports: SidecarPorts = DEFAULT_PORTS): string[] {
  return [
    'warden',
    'sidecar',
    '--policy',
    `${PATHS.policyDir}/${POLICY_CONFIGMAP_KEY}`,
    '--secrets-dir',
    PATHS.secretsDir,
    '--admin-addr',
    `127.0.0.1:${ports.admin}`,
    '--egress-addr',
    `127.0.0.1:${ports.egress}`,
    '--health-addr',
    `0.0.0.0:${ports.health}`,
    '--spool-dir',
    PATHS.spoolDir,
  ];
}

export function buildSidecar(input: SidecarInput): SidecarParts {
  const { policy, config, names } = input;
  const volumes: Volume[] = [];
  const mounts: VolumeMount[] = [];
  const add = (base: string, source: Record<string, unknown>, mountPath: string, readOnly: boolean): void => {
    const name = names.allocate(base);
    volumes.push({ name, ...source });
    mounts.push({ name, mountPath, readOnly });
  };
  add('warden-policy', { configMap: { name: policyConfigMapName(policy.metadata.name) } }, PATHS.policyDir, true);
  for (const secret of referencedSecrets(policy)) {
    add(`warden-secret-${secret}`, { secret: { secretName: secret } }, `${PATHS.secretsDir}/${secret}`, true);
  }
  if ((policy.spec.masking ?? []).some((m) => m.strategy === 'hash')) {
    add('warden-masking', { secret: { secretName: MASKING_SECRET, optional: true } }, `${PATHS.secretsDir}/${MASKING_SECRET}`, true);
  }
  add('warden-notify', { secret: { secretName: NOTIFY_SECRET, optional: true } }, `${PATHS.secretsDir}/${NOTIFY_SECRET}`, true);
  // The cluster CA rides along (kube-root-ca.crt exists in every namespace): the sidecar's API client
  // verifies the API server with it, whether or not the pod automounts its service-account token.
  add(
    'warden-token',
    {
      projected: {
        sources: [
          { serviceAccountToken: tokenProjection(config) },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        ],
      },
    },
    PATHS.tokenDir,
    true,
  );
  if (config.otlpCaConfigMap) {
    // items: a ConfigMap without the key keeps the pod from starting, rather than exporting unverified.
    const { name, key } = config.otlpCaConfigMap;
    add('warden-otlp-ca', { configMap: { name, items: [{ key, path: OTLP_CA_FILE }] } }, OTLP_CA_DIR, true);
  }
  if (config.otlpClientCertSecret) {
    const items = ['tls.crt', 'tls.key'].map((key) => ({ key, path: key }));
    add('warden-otlp-client', { secret: { secretName: config.otlpClientCertSecret, items } }, OTLP_CLIENT_DIR, true);
  }
  add('warden-spool', { emptyDir: { sizeLimit: SPOOL_SIZE } }, PATHS.spoolDir, false);
  add('warden-tmp', { emptyDir: { sizeLimit: TMP_SIZE } }, '/tmp', false);
  return { container: sidecarContainer(config, sidecarResources(config.resources, input.annotations), mounts), volumes };
}

function tokenProjection(config: InjectorConfig): Record<string, unknown> {
  // No audience: the API server's own, which the sidecar needs to create ApprovalRequests.
  const audience = config.tokenAudience ? { audience: config.tokenAudience } : {};
  return { ...audience, expirationSeconds: config.tokenExpirationSeconds, path: TOKEN_FILE };
}

function sidecarContainer(config: InjectorConfig, resources: SidecarResources, volumeMounts: VolumeMount[]): Container {
  const probe = (path: string, extra: Record<string, number>): Record<string, unknown> => ({
    httpGet: { path, port: config.ports.health, scheme: 'HTTP' },
    timeoutSeconds: 1,
    ...extra,
  });
  return {
    name: SIDECAR_CONTAINER,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    // Native sidecar: starts before the app containers, stops after them, and never keeps a Job alive.
    restartPolicy: 'Always',
    command: sidecarCommand(config.ports),
    ports: [{ containerPort: config.ports.health, name: HEALTH_PORT_NAME, protocol: 'TCP' }],
    env: sidecarEnv(config),
    resources: compactResources(resources),
    // The kubelet starts the next container only once this passes: the agent never runs unguarded.
    startupProbe: probe('/readyz', { periodSeconds: 1, failureThreshold: 120 }),
    readinessProbe: probe('/readyz', { periodSeconds: 5, failureThreshold: 3 }),
    livenessProbe: probe('/healthz', { periodSeconds: 10, failureThreshold: 3 }),
    securityContext: {
      runAsNonRoot: true,
      runAsUser: config.runAsUser,
      runAsGroup: config.runAsGroup,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts,
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

function sidecarEnv(config: InjectorConfig): EnvVar[] {
  const field = (name: string, fieldPath: string): EnvVar => ({ name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } });
  const env: EnvVar[] = [
    field(SIDECAR_ENV.podName, 'metadata.name'),
    field(SIDECAR_ENV.podNamespace, 'metadata.namespace'),
    field(SIDECAR_ENV.serviceAccount, 'spec.serviceAccountName'),
    // sidecar/main.ts podIdentity() reads this name today; set both until the two agree.
    field('WARDEN_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    { name: SIDECAR_ENV.approvals, value: 'kubernetes' },
    { name: 'OTEL_SERVICE_NAME', value: SIDECAR_CONTAINER },
    // $(VAR) is expanded by the kubelet from the variables defined above.
    { name: 'OTEL_RESOURCE_ATTRIBUTES', value: `k8s.pod.name=$(${SIDECAR_ENV.podName}),k8s.namespace.name=$(${SIDECAR_ENV.podNamespace})` },
    ...Object.entries(SIDECAR_RUNTIME_ENV).map(([name, value]) => ({ name, value })),
  ];
  if (config.otlpEndpoint) env.push({ name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: config.otlpEndpoint });
  if (config.otlpProtocol) env.push({ name: 'OTEL_EXPORTER_OTLP_PROTOCOL', value: config.otlpProtocol });
  // The OTel exporters the sidecar uses read these standard variables (sidecar/audit/exporters.ts).
  // The headers come from the Secret (not optional: a missing one keeps the pod from starting).
  if (config.otlpHeadersSecret) {
    const { name, key } = config.otlpHeadersSecret;
    env.push({ name: 'OTEL_EXPORTER_OTLP_HEADERS', valueFrom: { secretKeyRef: { name, key } } });
  }
  if (config.otlpCaConfigMap) env.push({ name: 'OTEL_EXPORTER_OTLP_CERTIFICATE', value: `${OTLP_CA_DIR}/${OTLP_CA_FILE}` });
  if (config.otlpClientCertSecret) {
    env.push({ name: 'OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE', value: `${OTLP_CLIENT_DIR}/tls.crt` });
    env.push({ name: 'OTEL_EXPORTER_OTLP_CLIENT_KEY', value: `${OTLP_CLIENT_DIR}/tls.key` });
  }
  return env;
}

const OVERRIDES: ReadonlyArray<{ annotation: string; kind: 'requests' | 'limits'; resource: 'cpu' | 'memory' }> = [
  { annotation: ANNOTATIONS.cpuRequest, kind: 'requests', resource: 'cpu' },
  { annotation: ANNOTATIONS.cpuLimit, kind: 'limits', resource: 'cpu' },
  { annotation: ANNOTATIONS.memoryRequest, kind: 'requests', resource: 'memory' },
  { annotation: ANNOTATIONS.memoryLimit, kind: 'limits', resource: 'memory' },
];

/** Chart defaults with the pod's annotation overrides; a malformed override refuses the pod, naming the annotation. */
export function sidecarResources(defaults: SidecarResources, annotations: Record<string, string>): SidecarResources {
  const out: SidecarResources = { requests: { ...defaults.requests }, limits: { ...defaults.limits } };
  for (const o of OVERRIDES) {
    const v = annotations[o.annotation];
    if (v === undefined) continue;
    if (!QUANTITY.test(v.trim())) {
      throw new InjectionError(`annotation ${o.annotation}: ${JSON.stringify(v)} is not a Kubernetes quantity (like 100m, 0.5 or 128Mi)`);
    }
    out[o.kind][o.resource] = v.trim();
  }
  return out;
}

function compactResources(r: SidecarResources): Record<string, ResourceValues> {
  const out: Record<string, ResourceValues> = {};
  for (const kind of ['requests', 'limits'] as const) {
    const values = Object.fromEntries(Object.entries(r[kind]).filter(([, v]) => v !== undefined && v !== '')) as ResourceValues;
    if (Object.keys(values).length > 0) out[kind] = values;
  }
  return out;
}
