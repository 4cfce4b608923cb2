// spec.identity.kubernetes: the app containers get a projected service-account token for the
// policy's first audience, so the agent can present its pod's identity to the sidecar (as the
// PostgreSQL password, or an HTTP bearer token) with nothing to configure but reading a file.
// The kubelet requests it from the API server (TokenRequest, bound to this pod), renews it at 80%
// of its lifetime, and it stops verifying when the pod is deleted only at exp: hence the short
// lifetime. The token is for Agent Warden's audience only, so the API server refuses it: it grants
// the agent nothing it did not have (the pod's automounted token, if any, is untouched).
// The sidecar needs no token and gets none.
import type { AccessPolicy } from '../../common/policy/types';
import { applyEnv } from './app-env';
import type { PodSpec, Volume } from './k8s-types';
import type { NameAllocator } from './names-alloc';
import { InjectionError } from './sidecar';

/** Env var naming the token file in every app container. */
export const IDENTITY_TOKEN_ENV = 'WARDEN_IDENTITY_TOKEN_FILE';
export const IDENTITY_TOKEN_DIR = '/var/run/secrets/agentwarden.io/identity';
export const IDENTITY_TOKEN_PATH = `${IDENTITY_TOKEN_DIR}/token`;
/** Ten minutes (the API server's minimum); the kubelet renews it after eight. */
export const IDENTITY_TOKEN_EXPIRATION_SECONDS = 600;

/**
 * Adds the projected token volume and mounts it (read-only) with WARDEN_IDENTITY_TOKEN_FILE into
 * every container of `spec` but the excluded ones (call it before the sidecar is added). Returns the env names it set;
 * none when the policy does not use spec.identity.kubernetes.
 */
export function applyIdentityToken(
  spec: PodSpec,
  policy: AccessPolicy,
  names: NameAllocator,
  excluded: ReadonlySet<string> = new Set(),
): string[] {
  const audience = policy.spec.identity?.kubernetes?.audiences[0];
  if (audience === undefined) return [];
  // Containers under agentwarden.io/exclude-containers keep their environment and mounts as written.
  const containers = [...(spec.initContainers ?? []), ...spec.containers].filter((c) => !excluded.has(c.name));
  for (const c of containers) {
    // Two mounts at one path: the API server refuses the pod; say why here instead.
    const clash = (c.volumeMounts ?? []).find((m) => m.mountPath.replace(/\/+$/, '') === IDENTITY_TOKEN_DIR);
    if (clash) {
      throw new InjectionError(
        `container ${c.name} mounts volume ${clash.name} at ${clash.mountPath}, where Agent Warden puts the pod's identity token (spec.identity.kubernetes); mount it elsewhere`,
      );
    }
  }
  const volume: Volume = {
    name: names.allocate('warden-identity-token'),
    projected: {
      sources: [{ serviceAccountToken: { audience, expirationSeconds: IDENTITY_TOKEN_EXPIRATION_SECONDS, path: 'token' } }],
    },
  };
  for (const c of containers) {
    c.volumeMounts = [...(c.volumeMounts ?? []), { name: volume.name, mountPath: IDENTITY_TOKEN_DIR, readOnly: true }];
    applyEnv(c, [{ name: IDENTITY_TOKEN_ENV, value: IDENTITY_TOKEN_PATH }]);
  }
  spec.volumes = [...(spec.volumes ?? []), volume];
  return [IDENTITY_TOKEN_ENV];
}
