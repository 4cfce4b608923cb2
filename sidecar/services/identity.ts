// Who calls: the pod's own identity, and, with `spec.identity` in the running policy, the verifier
// of callers' tokens (PostgreSQL password, HTTP bearer, forward-proxy Proxy-Authorization).
import type * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLUSTER_KEYS_FILE } from '../../common/identity/cluster-keys';
import type { Identity } from '../../common/policy/types';
import { IdentityError } from '../../common/identity/errors';
import { bearerFromHeaders } from '../../common/identity/extract';
import { createTokenVerifier, type TokenVerifier, type TokenVerifierOptions } from '../../common/identity/verifier';
import type { PolicyStore } from '../policy-store';

/** The verifier of callers' tokens under the running policy; undefined without spec.identity. */
export type CallerTokens = () => ((token: string) => Promise<Identity>) | undefined;

/** The pod's own identity, from the downward-API env the operator injects. */
export function podIdentity(): Identity {
  const sa = process.env.POD_SERVICE_ACCOUNT ?? process.env.WARDEN_SERVICE_ACCOUNT;
  const ns = process.env.WARDEN_POD_NAMESPACE ?? process.env.POD_NAMESPACE;
  if (sa && ns)
    return {
      subject: `system:serviceaccount:${ns}:${sa}`,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`],
      source: 'pod',
    };
  return { subject: `local:${os.userInfo().username}`, groups: [], source: 'local' };
}

/** Environment variable naming the cluster-keys file (spec.identity.kubernetes) outside a pod. */
export const CLUSTER_KEYS_ENV = 'WARDEN_KUBERNETES_KEYS';

/**
 * Where spec.identity.kubernetes finds the cluster's issuer and keys: WARDEN_KUBERNETES_KEYS, else
 * kubernetes-keys.json next to the policy file, which is where the operator's ConfigMap puts it.
 */
export function clusterKeysPath(policyFile: string, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[CLUSTER_KEYS_ENV];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : path.join(path.dirname(policyFile), CLUSTER_KEYS_FILE);
}

/**
 * With `spec.identity` in the running policy, callers must present a token: this gives the function
 * that verifies one (undefined without spec.identity, when the pod's own identity is used). The
 * verifier, with its JWKS cache, is rebuilt only when a reload changes the identity block.
 */
export function callerTokenVerifier(store: PolicyStore, opts: TokenVerifierOptions | undefined): CallerTokens {
  let key: string | undefined;
  let verifier: TokenVerifier | undefined;
  return () => {
    const spec = store.current.source.spec.identity;
    if (!spec) return undefined;
    const k = JSON.stringify(spec);
    if (k !== key || !verifier) {
      verifier = createTokenVerifier(spec, opts);
      key = k;
    }
    const v = verifier;
    return (token) => v.verify(token);
  };
}

/**
 * The forward proxy's caller: with spec.identity, the token in Proxy-Authorization (Bearer, or Basic
 * with the token as the password), never Authorization, which belongs to the destination.
 */
export function forwardCaller(callerTokens: CallerTokens, pod: Identity): (req: http.IncomingMessage) => Identity | Promise<Identity> {
  return (req) => {
    const verify = callerTokens();
    if (!verify) return pod;
    const token = bearerFromHeaders({ 'proxy-authorization': req.headers['proxy-authorization'] });
    if (token === undefined) {
      return Promise.reject(
        new IdentityError(
          'missing_token',
          "no token: this policy requires the caller's JWT as Proxy-Authorization (Bearer, or Basic with the token as the password)",
        ),
      );
    }
    return verify(token);
  };
}
