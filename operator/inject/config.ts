// What the operator's chart values decide about every injected sidecar. The webhook reads it once
// per request (config()), `warden inject` builds it from flags; both go through resolveInjectorConfig.
import { PORTS, SIDECAR_UID } from '../../common/k8s/names';

export interface ResourceValues {
  cpu?: string;
  memory?: string;
}

export interface SidecarResources {
  requests: ResourceValues;
  limits: ResourceValues;
}

export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';

/** One key of a Secret or ConfigMap that must exist in every agent namespace. */
export interface KeyRef {
  name: string;
  key: string;
}

/**
 * The sidecar's own ports in the pod's network namespace: admin (loopback: approvals API, metrics),
 * egress (loopback: HTTP routes and forward proxy) and health (all interfaces: kubelet probes).
 * The contract's defaults collide with Istio's proxy (15000, 15001, 15021): move them to run both.
 */
export interface SidecarPorts {
  admin: number;
  egress: number;
  health: number;
}

export interface InjectorConfig {
  /** The sidecar image (the `warden` binary), e.g. ghcr.io/agent-warden/agent-warden:0.1.0. */
  image: string;
  imagePullPolicy: PullPolicy;
  /** Defaults for the sidecar; pods override them with the ANNOTATIONS.cpuRequest... annotations. */
  resources: SidecarResources;
  /** Where the sidecar listens; the app env points at the egress port. */
  ports: SidecarPorts;
  /**
   * The sidecar's user and group. Egress lockdown lets through exactly this UID and GID together;
   * Istio leaves traffic of UID or GID 1337 uncaptured, so beside Istio neither may be 1337.
   */
  runAsUser: number;
  runAsGroup: number;
  /** Image of the iptables init container; the sidecar image unless set. */
  lockdownImage: string;
  /** Lock down every injected pod's egress, not only those that ask for it with the annotation. */
  lockdownByDefault: boolean;
  /** The operator's own namespace: never injected (the webhook must not depend on itself). */
  operatorNamespace: string;
  /** Audience of the sidecar's projected token; '' means the API server's own audience (it creates ApprovalRequests with it). */
  tokenAudience: string;
  tokenExpirationSeconds: number;
  /** OTLP exporter settings handed to the sidecar; unset means the sidecar's defaults. */
  otlpEndpoint?: string;
  otlpProtocol?: string;
  /**
   * A Secret key holding OTEL_EXPORTER_OTLP_HEADERS (`api-key=…,x-team=…`), e.g. a hosted
   * collector's API key: handed to the sidecar as a secretKeyRef, so it never sits in a pod spec.
   */
  otlpHeadersSecret?: KeyRef;
  /** A ConfigMap key holding the collector's CA certificate (PEM): mounted, and named by OTEL_EXPORTER_OTLP_CERTIFICATE. */
  otlpCaConfigMap?: KeyRef;
  /** A kubernetes.io/tls Secret (tls.crt, tls.key): the sidecar's client certificate for collectors that want mTLS. */
  otlpClientCertSecret?: string;
}

/** The chart's defaults (charts/agent-warden/values.yaml, sidecar.resources). */
export const DEFAULT_RESOURCES: SidecarResources = {
  requests: { cpu: '50m', memory: '160Mi' },
  limits: { memory: '384Mi' },
};

/** The chart's image (one image for operator and sidecar); the tag is the release version. */
export const DEFAULT_IMAGE_REPOSITORY = 'ghcr.io/agent-warden/agent-warden';

/** The contract's ports (ARCHITECTURE.md, "Sidecar ports"). */
export const DEFAULT_PORTS: Readonly<SidecarPorts> = { ...PORTS };
/**
 * The sidecar's default group: not 1337, Istio's (and ztunnel's) proxy group, so a proxy running as
 * 1337:1337 in a locked-down pod never matches the fence's exemption (UID and GID together), even
 * where Istio went unnoticed: its relaying of the app's connections then fails instead of escaping.
 */
export const DEFAULT_SIDECAR_GID = 1338;
/** The sidecar runs without capabilities, so it cannot bind a privileged port. */
export const MIN_SIDECAR_PORT = 1024;

/** Kubernetes accepts projected token lifetimes from 10 minutes up. */
export const MIN_TOKEN_EXPIRATION_SECONDS = 600;

/** A Kubernetes resource quantity (`100m`, `1.5`, `64Mi`, `1e3`). */
export const QUANTITY = /^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$/;

const PULL_POLICIES: readonly PullPolicy[] = ['Always', 'IfNotPresent', 'Never'];
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** What Kubernetes admits as a Secret or ConfigMap data key. */
const CONFIG_KEY = /^[-._a-zA-Z0-9]{1,253}$/;

export class InjectorConfigError extends Error {
  readonly code = 'INJECTOR_CONFIG_INVALID';
}

/** Fills in defaults and checks every field; throws InjectorConfigError naming the bad field. */
export type InjectorConfigInput = Partial<Omit<InjectorConfig, 'ports'>> & { image: string; ports?: Partial<SidecarPorts> };

export function resolveInjectorConfig(input: InjectorConfigInput): InjectorConfig {
  const config: InjectorConfig = {
    image: input.image,
    imagePullPolicy: input.imagePullPolicy ?? 'IfNotPresent',
    resources: {
      requests: { ...DEFAULT_RESOURCES.requests, ...input.resources?.requests },
      limits: { ...DEFAULT_RESOURCES.limits, ...input.resources?.limits },
    },
    ports: { ...DEFAULT_PORTS, ...input.ports },
    runAsUser: input.runAsUser ?? SIDECAR_UID,
    runAsGroup: input.runAsGroup ?? DEFAULT_SIDECAR_GID,
    lockdownImage: input.lockdownImage || input.image,
    lockdownByDefault: input.lockdownByDefault ?? false,
    operatorNamespace: input.operatorNamespace ?? 'agent-warden',
    tokenAudience: input.tokenAudience ?? '',
    tokenExpirationSeconds: input.tokenExpirationSeconds ?? 3600,
    otlpEndpoint: input.otlpEndpoint || undefined,
    otlpProtocol: input.otlpProtocol || undefined,
    otlpHeadersSecret: input.otlpHeadersSecret,
    otlpCaConfigMap: input.otlpCaConfigMap,
    otlpClientCertSecret: input.otlpClientCertSecret || undefined,
  };
  const problems = configProblems(config);
  if (problems.length > 0) throw new InjectorConfigError(`invalid injector configuration: ${problems.join('; ')}`);
  return config;
}

function configProblems(c: InjectorConfig): string[] {
  const out: string[] = [];
  if (!c.image || /\s/.test(c.image)) out.push(`image: must be a container image reference (got ${JSON.stringify(c.image)})`);
  if (/\s/.test(c.lockdownImage)) out.push(`lockdownImage: must be a container image reference (got ${JSON.stringify(c.lockdownImage)})`);
  if (!PULL_POLICIES.includes(c.imagePullPolicy))
    out.push(`imagePullPolicy: must be one of ${PULL_POLICIES.join(', ')} (got ${JSON.stringify(c.imagePullPolicy)})`);
  for (const kind of ['requests', 'limits'] as const) {
    for (const res of ['cpu', 'memory'] as const) {
      const v = c.resources[kind][res];
      if (v !== undefined && !QUANTITY.test(v)) out.push(`resources.${kind}.${res}: not a Kubernetes quantity (got ${JSON.stringify(v)})`);
    }
  }
  out.push(...portProblems(c.ports));
  for (const field of ['runAsUser', 'runAsGroup'] as const) {
    // 0 would be root, and the fence would then exempt root in every app container.
    const id = c[field];
    if (!Number.isInteger(id) || id < 1 || id > 2147483647)
      out.push(`${field}: must be a non-zero user/group ID (got ${JSON.stringify(id)})`);
  }
  if (!c.operatorNamespace) out.push('operatorNamespace: must be set');
  if (!Number.isInteger(c.tokenExpirationSeconds) || c.tokenExpirationSeconds < MIN_TOKEN_EXPIRATION_SECONDS) {
    out.push(`tokenExpirationSeconds: must be an integer of at least ${MIN_TOKEN_EXPIRATION_SECONDS} (got ${c.tokenExpirationSeconds})`);
  }
  out.push(...otlpProblems(c));
  return out;
}

function portProblems(ports: SidecarPorts): string[] {
  const out: string[] = [];
  const seen = new Map<number, string>();
  for (const name of ['admin', 'egress', 'health'] as const) {
    const port = ports[name];
    if (!Number.isInteger(port) || port < MIN_SIDECAR_PORT || port > 65535) {
      out.push(`ports.${name}: must be a port number ${MIN_SIDECAR_PORT}-65535 (got ${JSON.stringify(port)})`);
      continue;
    }
    const other = seen.get(port);
    if (other !== undefined) out.push(`ports.${name}: ${port} is already ports.${other} (each sidecar port must differ)`);
    seen.set(port, name);
  }
  return out;
}

/** The OTLP settings handed to the sidecar: what its exporters accept, and TLS wherever credentials go. */
function otlpProblems(c: InjectorConfig): string[] {
  const out: string[] = [];
  // What the sidecar's exporters speak (sidecar/audit/otlp-settings.ts): it has no OTLP/gRPC exporter
  // and would refuse to start, so a grpc setting is refused here, once, instead of in every pod.
  if (c.otlpProtocol !== undefined && !['http/protobuf', 'http/json'].includes(c.otlpProtocol)) {
    out.push(
      `otlpProtocol: must be http/protobuf or http/json; the sidecar has no OTLP/gRPC exporter (got ${JSON.stringify(c.otlpProtocol)})`,
    );
  }
  // Headers carry credentials, and a CA or client certificate only means something over TLS: plain
  // http would send the key in the clear (and ignore the rest).
  for (const [field, ref] of [
    ['otlpHeadersSecret', c.otlpHeadersSecret],
    ['otlpCaConfigMap', c.otlpCaConfigMap],
  ] as const) {
    if (ref === undefined) continue;
    if (typeof ref.name !== 'string' || !DNS_SUBDOMAIN.test(ref.name))
      out.push(`${field}.name: must be a DNS subdomain name (got ${JSON.stringify(ref.name)})`);
    if (typeof ref.key !== 'string' || !CONFIG_KEY.test(ref.key))
      out.push(`${field}.key: must be a Secret/ConfigMap key (got ${JSON.stringify(ref.key)})`);
    if (!c.otlpEndpoint?.startsWith('https://'))
      out.push(`${field}: needs an https:// otlpEndpoint (got ${JSON.stringify(c.otlpEndpoint ?? '')})`);
  }
  if (c.otlpClientCertSecret !== undefined) {
    if (!DNS_SUBDOMAIN.test(c.otlpClientCertSecret))
      out.push(`otlpClientCertSecret: must be a DNS subdomain name (got ${JSON.stringify(c.otlpClientCertSecret)})`);
    if (!c.otlpEndpoint?.startsWith('https://'))
      out.push(`otlpClientCertSecret: needs an https:// otlpEndpoint (got ${JSON.stringify(c.otlpEndpoint ?? '')})`);
  }
  return out;
}
