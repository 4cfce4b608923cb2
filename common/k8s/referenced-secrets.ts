// The Secrets an AccessPolicy's targets name: the injector mounts them into the sidecar, the
// controller reports the ones missing, and the injection hash covers them.
import type { AccessPolicy } from '../policy/types';

/** Secrets the policy's targets reference, each once, in a stable order. */
export function referencedSecrets(policy: AccessPolicy): string[] {
  const names = new Set<string>();
  for (const t of policy.spec.targets) {
    if (t.postgres?.credentialsSecret) names.add(t.postgres.credentialsSecret);
    if (t.http?.credentialsSecret) names.add(t.http.credentialsSecret);
    if (t.mcp?.credentialsSecret) names.add(t.mcp.credentialsSecret);
  }
  return [...names].sort();
}
