// A stand-in for kube-apiserver's service-account token issuer, for the spec.identity.kubernetes
// tests. It serves the two documents exactly as kube-apiserver does (pkg/routes/openidmetadata.go,
// pkg/serviceaccount/openidmetadata.go):
//   GET /.well-known/openid-configuration  application/json, Cache-Control: public, max-age=3600,
//     {"issuer", "jwks_uri", "response_types_supported":["id_token"],
//      "subject_types_supported":["public"], "id_token_signing_alg_values_supported":[sorted algs]}
//   GET /openid/v1/jwks  application/jwk-set+json, same Cache-Control,
//     {"keys":[{"use":"sig","kty":"RSA","kid":..,"alg":"RS256","n":..,"e":"AQAB"}]}
// and mints tokens as TokenRequest does (pkg/serviceaccount/claims.go, jwt.go): header
// {"alg":"RS256","kid":..} (no typ), claims aud, exp, iat, iss, jti, nbf, sub and kubernetes.io
// {namespace, node, pod, serviceaccount, warnafter}. The key id is what kube-apiserver computes:
// base64url(sha256(DER of the public key)).
import { createHash, randomUUID, type KeyObject } from 'node:crypto';
import type * as http from 'node:http';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { JWK, JWTPayload } from 'jose';
import type { FakeApiServer } from '../operator/fake-apiserver';

export const DEFAULT_CLUSTER_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: KeyObject;
  publicJwk: JWK;
}

export async function makeClusterKey(alg: 'RS256' | 'ES256' = 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const der = (publicKey as unknown as KeyObject).export({ type: 'spki', format: 'der' });
  const kid = createHash('sha256').update(der).digest('base64url');
  const jwk = await exportJWK(publicKey);
  return { kid, alg, privateKey: privateKey as unknown as KeyObject, publicJwk: { use: 'sig', ...jwk, kid, alg } };
}

export interface TokenRequest {
  namespace: string;
  serviceAccount: string;
  audiences: string[];
  /** Default 600 (what the injector asks for). */
  expirationSeconds?: number;
  /** Seconds since the epoch; default now. */
  issuedAt?: number;
  pod?: string;
  /** Sign with this key instead of the current signing key. */
  key?: SigningKey;
  /** Replace or add claims (tests of malformed tokens). */
  claims?: JWTPayload;
}

export class KubeIssuer {
  /** Published keys; the last is the one that signs. */
  published: SigningKey[];
  readonly counts = { discovery: 0, jwks: 0 };

  private constructor(
    readonly issuer: string,
    keys: SigningKey[],
    /** Where discovery says the JWKS is (kube-apiserver: --service-account-jwks-uri, or its external address). */
    readonly jwksUri: string,
  ) {
    this.published = keys;
  }

  static async create(opts: { issuer?: string; jwksUri?: string; alg?: 'RS256' | 'ES256' } = {}): Promise<KubeIssuer> {
    const issuer = opts.issuer ?? DEFAULT_CLUSTER_ISSUER;
    return new KubeIssuer(issuer, [await makeClusterKey(opts.alg)], opts.jwksUri ?? 'https://172.18.0.2:6443/openid/v1/jwks');
  }

  get signing(): SigningKey {
    return this.published[this.published.length - 1];
  }

  discovery(): Record<string, unknown> {
    return {
      issuer: this.issuer,
      jwks_uri: this.jwksUri,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [...new Set(this.published.map((k) => k.alg))].sort(),
    };
  }

  jwks(): { keys: JWK[] } {
    return { keys: this.published.map((k) => k.publicJwk) };
  }

  /** A new signing key, published beside the old ones (the rotation procedure kube documents). */
  async rotate(alg: 'RS256' | 'ES256' = 'RS256'): Promise<SigningKey> {
    const key = await makeClusterKey(alg);
    this.published = [...this.published, key];
    return key;
  }

  /** Stop publishing a key. */
  retire(kid: string): void {
    this.published = this.published.filter((k) => k.kid !== kid);
  }

  /** Serve the two documents from a FakeApiServer, at the paths kube-apiserver uses. */
  serveOn(api: FakeApiServer): void {
    const send = (res: http.ServerResponse, type: string, body: unknown): void => {
      res.writeHead(200, { 'content-type': type, 'cache-control': 'public, max-age=3600' }).end(JSON.stringify(body));
    };
    api.nonResource.set('/.well-known/openid-configuration', (res) => {
      this.counts.discovery++;
      send(res, 'application/json', this.discovery());
    });
    api.nonResource.set('/openid/v1/jwks', (res) => {
      this.counts.jwks++;
      send(res, 'application/jwk-set+json', this.jwks());
    });
  }

  /** A projected service-account token, as the kubelet gets it from TokenRequest. */
  async token(req: TokenRequest): Promise<string> {
    const key = req.key ?? this.signing;
    const iat = req.issuedAt ?? Math.floor(Date.now() / 1000);
    const exp = iat + (req.expirationSeconds ?? 600);
    const pod = req.pod ?? `${req.serviceAccount}-7d4b9c-x2x4z`;
    const claims: JWTPayload = {
      aud: req.audiences,
      exp,
      iat,
      iss: this.issuer,
      jti: randomUUID(),
      'kubernetes.io': {
        namespace: req.namespace,
        node: { name: 'kind-worker', uid: randomUUID() },
        pod: { name: pod, uid: randomUUID() },
        serviceaccount: { name: req.serviceAccount, uid: randomUUID() },
      },
      nbf: iat,
      sub: `system:serviceaccount:${req.namespace}:${req.serviceAccount}`,
      ...req.claims,
    };
    return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey);
  }
}
