// `spec.identity` checked beyond what the CRD schema can say (https, duration bounds, one of issuer
// or kubernetes), and resolved to the verifier's settings. Pure, so `warden validate` runs exactly
// what the sidecar runs.
import { parseDuration } from '../policy/syntax';
import type { IdentitySpec } from '../policy/types';

export const DEFAULT_CLOCK_SKEW_MS = 30_000;
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;
/**
 * With `kubernetes`, tokens issued longer ago than this are refused unless maxTokenAge says
 * otherwise: the kubelet renews a projected token at 80% of its lifetime (48 minutes for the usual
 * hour), so only a token kept past its renewal (copied out of a pod, or the pod deleted) gets older.
 */
export const KUBERNETES_DEFAULT_MAX_TOKEN_AGE_MS = 60 * 60_000;
/**
 * Audiences that belong to the API server itself: a token for one of them also works against the
 * API server (so a sidecar or its logs holding it could act as the pod there), and every pod's
 * automounted token carries one. The CRD refuses the same list; the cluster's own issuer URL (its
 * default API audience) is refused once the sidecar knows it.
 */
export const KUBERNETES_API_AUDIENCES: readonly string[] = [
  'api',
  'kubernetes',
  'kubernetes.default.svc',
  'https://kubernetes.default.svc',
  'https://kubernetes.default.svc.cluster.local',
];

/** Audiences other relying parties accept from Kubernetes tokens (cloud workload identity, Vault). */
const SHARED_AUDIENCES: ReadonlyArray<RegExp> = [
  /^sts\.amazonaws\.com$/i,
  /^api:\/\/AzureADTokenExchange$/i,
  /^(https:)?\/\/iam\.googleapis\.com\//i,
  /^(https:\/\/)?sts\.googleapis\.com/i,
  /^(https?:\/\/)?vault(\b|$)/i,
];

/**
 * Valid but risky: with spec.identity.kubernetes, the first audience is projected into every app
 * container; if another relying party also accepts it, the agent's token works there too.
 */
export function identityWarnings(spec: IdentitySpec | undefined): string[] {
  const audiences = spec?.kubernetes?.audiences ?? [];
  return audiences
    .map((a, i) => ({ a, i }))
    .filter(({ a }) => SHARED_AUDIENCES.some((re) => re.test(a)))
    .map(
      ({ a, i }) =>
        `spec.identity.kubernetes.audiences[${i}]: ${JSON.stringify(a)} is an audience other services accept (cloud workload identity, Vault): a token for it works there too; use one that only Agent Warden accepts, such as agent-warden`,
    );
}

interface CommonResolved {
  audiences: string[];
  subjectClaim: string;
  groupsClaim: string;
  clockSkewMs: number;
  maxTokenAgeMs?: number;
}
/** An external OIDC issuer: keys by discovery. */
export interface ResolvedOidcSpec extends CommonResolved {
  mode: 'oidc';
  issuer: string;
  jwksUri?: string;
}
/** This cluster's service-account tokens: the issuer and keys come with the keys file. */
export interface ResolvedKubernetesSpec extends CommonResolved {
  mode: 'kubernetes';
  maxTokenAgeMs: number;
}
export type ResolvedSpec = ResolvedOidcSpec | ResolvedKubernetesSpec;

/** Checks spec.identity beyond what the CRD schema can; throws Error naming the field on a bad spec. */
export function resolveIdentitySpec(spec: IdentitySpec, allowInsecureLoopback = false): ResolvedSpec {
  if (!spec || typeof spec !== 'object') throw new Error('spec.identity must be an object');
  const hasIssuer = spec.issuer !== undefined;
  const hasKubernetes = spec.kubernetes !== undefined;
  if (hasIssuer === hasKubernetes) {
    throw new Error(
      'spec.identity: set exactly one of issuer (an external OIDC issuer) or kubernetes (this cluster’s service-account tokens)',
    );
  }
  const clockSkewMs = spec.clockSkew === undefined ? DEFAULT_CLOCK_SKEW_MS : parseDuration(spec.clockSkew);
  if (clockSkewMs > MAX_CLOCK_SKEW_MS) throw new Error(`spec.identity.clockSkew: ${spec.clockSkew} is more than the allowed 5m`);
  let maxTokenAgeMs: number | undefined;
  if (spec.maxTokenAge !== undefined) {
    maxTokenAgeMs = parseDuration(spec.maxTokenAge);
    if (maxTokenAgeMs <= 0) throw new Error('spec.identity.maxTokenAge: must be longer than zero');
  }
  if (hasKubernetes) return resolveKubernetes(spec, clockSkewMs, maxTokenAgeMs);

  if (typeof spec.issuer !== 'string') throw new Error('spec.identity.issuer: must be a string');
  checkUrl(spec.issuer, 'spec.identity.issuer', allowInsecureLoopback);
  checkAudiences(spec.audiences, 'spec.identity.audiences');
  if (spec.jwksUri !== undefined) checkUrl(spec.jwksUri, 'spec.identity.jwksUri', allowInsecureLoopback);
  return {
    mode: 'oidc',
    issuer: spec.issuer,
    audiences: [...spec.audiences],
    jwksUri: spec.jwksUri,
    subjectClaim: spec.subjectClaim || 'sub',
    groupsClaim: spec.groupsClaim || 'groups',
    clockSkewMs,
    maxTokenAgeMs,
  };
}

function resolveKubernetes(spec: IdentitySpec, clockSkewMs: number, maxTokenAgeMs: number | undefined): ResolvedKubernetesSpec {
  const k = spec.kubernetes;
  if (!k || typeof k !== 'object' || Array.isArray(k)) throw new Error('spec.identity.kubernetes: must be an object');
  if (spec.audiences !== undefined)
    throw new Error('spec.identity.audiences: with kubernetes, list the audiences under spec.identity.kubernetes.audiences');
  if (spec.jwksUri !== undefined)
    throw new Error('spec.identity.jwksUri: does not apply with kubernetes (the operator fetches the cluster’s keys)');
  if ((spec.subjectClaim ?? 'sub') !== 'sub')
    throw new Error('spec.identity.subjectClaim: with kubernetes, the subject is always sub (system:serviceaccount:NAMESPACE:NAME)');
  if ((spec.groupsClaim ?? 'groups') !== 'groups')
    throw new Error('spec.identity.groupsClaim: with kubernetes, the groups are those the API server gives a service account');
  checkAudiences(k.audiences, 'spec.identity.kubernetes.audiences');
  const reserved = k.audiences.find((a) => KUBERNETES_API_AUDIENCES.includes(a));
  if (reserved !== undefined) {
    throw new Error(
      `spec.identity.kubernetes.audiences: ${JSON.stringify(reserved)} is the API server's own audience; use one of your own, such as agent-warden`,
    );
  }
  return {
    mode: 'kubernetes',
    audiences: [...k.audiences],
    subjectClaim: 'sub',
    groupsClaim: 'groups',
    clockSkewMs,
    maxTokenAgeMs: maxTokenAgeMs ?? KUBERNETES_DEFAULT_MAX_TOKEN_AGE_MS,
  };
}

function checkAudiences(audiences: unknown, what: string): asserts audiences is string[] {
  if (!Array.isArray(audiences) || audiences.length === 0 || audiences.some((a) => typeof a !== 'string' || a === '')) {
    throw new Error(`${what}: must list at least one audience`);
  }
}

export function checkUrl(value: string, what: string, allowInsecureLoopback: boolean): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`${what}: ${JSON.stringify(value)} is not a URL`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && allowInsecureLoopback && isLoopback(url.hostname)) return url;
  throw new Error(`${what}: ${value} must be an https:// URL`);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
