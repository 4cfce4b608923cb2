// `spec.identity` checked beyond what the CRD schema can say (https, duration bounds), and resolved
// to the verifier's settings. Pure, so `warden validate` runs exactly what the sidecar runs.
import { parseDuration } from '../policy/syntax';
import type { IdentitySpec } from '../policy/types';

export const DEFAULT_CLOCK_SKEW_MS = 30_000;
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;
export interface ResolvedSpec {
  issuer: string;
  audiences: string[];
  jwksUri?: string;
  subjectClaim: string;
  groupsClaim: string;
  clockSkewMs: number;
  maxTokenAgeMs?: number;
}

/** Checks spec.identity beyond what the CRD schema can (https, duration bounds); throws Error on a bad spec. */
export function resolveIdentitySpec(spec: IdentitySpec, allowInsecureLoopback = false): ResolvedSpec {
  if (!spec || typeof spec.issuer !== 'string') throw new Error('spec.identity.issuer is required');
  checkUrl(spec.issuer, 'spec.identity.issuer', allowInsecureLoopback);
  if (!Array.isArray(spec.audiences) || spec.audiences.length === 0 || spec.audiences.some((a) => typeof a !== 'string' || a === '')) {
    throw new Error('spec.identity.audiences must list at least one audience');
  }
  if (spec.jwksUri !== undefined) checkUrl(spec.jwksUri, 'spec.identity.jwksUri', allowInsecureLoopback);
  const clockSkewMs = spec.clockSkew === undefined ? DEFAULT_CLOCK_SKEW_MS : parseDuration(spec.clockSkew);
  if (clockSkewMs > MAX_CLOCK_SKEW_MS) throw new Error(`spec.identity.clockSkew: ${spec.clockSkew} is more than the allowed 5m`);
  let maxTokenAgeMs: number | undefined;
  if (spec.maxTokenAge !== undefined) {
    maxTokenAgeMs = parseDuration(spec.maxTokenAge);
    if (maxTokenAgeMs <= 0) throw new Error('spec.identity.maxTokenAge: must be longer than zero');
  }
  return {
    issuer: spec.issuer,
    audiences: [...spec.audiences],
    jwksUri: spec.jwksUri,
    subjectClaim: spec.subjectClaim || 'sub',
    groupsClaim: spec.groupsClaim || 'groups',
    clockSkewMs,
    maxTokenAgeMs,
  };
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
