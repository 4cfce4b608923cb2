// The cluster's service-account issuer and signing keys, as the operator hands them to sidecars
// (`spec.identity.kubernetes`): one JSON file, `{"issuer": ..., "jwks": {"keys": [...]}}`, written
// into the policy's ConfigMap next to policy.yaml. Issuer and keys travel together in one file, so a
// sidecar never checks one cluster's tokens against another's keys or issuer.
//
// The operator builds it from what kube-apiserver serves at /.well-known/openid-configuration
// (only `issuer` is taken: `jwks_uri` may name an address the operator cannot or should not reach)
// and /openid/v1/jwks. Both sides run the same checks: public signature keys only (a JWK with
// private members or a symmetric `oct` key is refused: with a shared secret in the set, anyone
// reading the ConfigMap could forge tokens), an accepted asymmetric `alg` on every key, a key id on
// every key and no two alike, and bounds on sizes and counts. Pure: no I/O, no jose.
import { checkUrl } from './spec';

/** ConfigMap key (and file name next to policy.yaml) of the document. */
export const CLUSTER_KEYS_FILE = 'kubernetes-keys.json';
/** Largest document accepted: kube-apiserver publishes a handful of keys (~500 bytes each). */
export const MAX_CLUSTER_KEYS_BYTES = 256 * 1024;
export const MAX_CLUSTER_KEYS = 64;
const MAX_KID_CHARS = 256;

/** Asymmetric JWS algorithms the verifier accepts; `none` and HS* never are. */
export const ACCEPTED_ALGORITHMS: readonly string[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

/** The public members kept per key type; everything else is dropped. */
const PUBLIC_MEMBERS: Record<string, readonly string[]> = {
  RSA: ['n', 'e'],
  EC: ['crv', 'x', 'y'],
  OKP: ['crv', 'x'],
};
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const ALG_KTY: Record<string, string> = { RS: 'RSA', PS: 'RSA', ES: 'EC', Ed: 'OKP' };

export type PublicJwk = Record<string, string>;
export interface ClusterKeys {
  issuer: string;
  jwks: { keys: PublicJwk[] };
}

export class ClusterKeysError extends Error {
  override readonly name = 'ClusterKeysError';
}

/**
 * The document for the ConfigMap, from the API server's discovery document and JWK Set (parsed
 * JSON). Canonical (keys sorted by kid, members in a fixed order), so unchanged keys render the same
 * bytes and the operator writes nothing. Throws ClusterKeysError saying what is wrong.
 */
export function renderClusterKeys(discovery: unknown, jwks: unknown, allowInsecureLoopback = false): string {
  if (!isObject(discovery)) throw new ClusterKeysError('the discovery document is not a JSON object');
  const text = JSON.stringify(checkKeys({ issuer: discovery.issuer, jwks }, allowInsecureLoopback));
  if (Buffer.byteLength(text) > MAX_CLUSTER_KEYS_BYTES) throw new ClusterKeysError(`larger than ${MAX_CLUSTER_KEYS_BYTES} bytes`);
  return text;
}

/** Parses and checks the document a sidecar reads; throws ClusterKeysError saying what is wrong. */
export function parseClusterKeys(text: string, allowInsecureLoopback = false): ClusterKeys {
  if (Buffer.byteLength(text) > MAX_CLUSTER_KEYS_BYTES) throw new ClusterKeysError(`larger than ${MAX_CLUSTER_KEYS_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new ClusterKeysError('not JSON');
  }
  if (!isObject(doc)) throw new ClusterKeysError('not a JSON object');
  const extra = Object.keys(doc).filter((k) => k !== 'issuer' && k !== 'jwks');
  if (extra.length > 0) throw new ClusterKeysError(`unexpected member ${JSON.stringify(extra[0])}`);
  return checkKeys(doc, allowInsecureLoopback);
}

function checkKeys(doc: Record<string, unknown>, allowInsecureLoopback: boolean): ClusterKeys {
  const issuer = doc.issuer;
  if (typeof issuer !== 'string' || issuer === '') throw new ClusterKeysError('no issuer');
  try {
    const url = checkUrl(issuer, 'issuer', allowInsecureLoopback);
    if (url.search !== '' || url.hash !== '') throw new Error(`issuer: ${issuer} has a query or fragment`);
  } catch (e) {
    throw new ClusterKeysError((e as Error).message);
  }
  const jwks = doc.jwks;
  if (!isObject(jwks) || !Array.isArray(jwks.keys)) throw new ClusterKeysError('the JWK Set has no "keys" array');
  if (jwks.keys.length === 0) throw new ClusterKeysError('the JWK Set has no keys');
  if (jwks.keys.length > MAX_CLUSTER_KEYS) throw new ClusterKeysError(`the JWK Set has more than ${MAX_CLUSTER_KEYS} keys`);
  const keys = jwks.keys.map((k, i) => publicKey(k, i));
  const kids = new Set<string>();
  for (const k of keys) {
    if (kids.has(k.kid)) throw new ClusterKeysError(`two keys have the key id ${JSON.stringify(k.kid)}`);
    kids.add(k.kid);
  }
  keys.sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
  return { issuer, jwks: { keys } };
}

function publicKey(raw: unknown, i: number): PublicJwk {
  const at = `key #${i}`;
  if (!isObject(raw)) throw new ClusterKeysError(`${at} is not an object`);
  const kty = raw.kty;
  if (typeof kty !== 'string' || !(kty in PUBLIC_MEMBERS))
    throw new ClusterKeysError(`${at} has key type ${JSON.stringify(kty)}; only RSA, EC and OKP public keys are accepted`);
  const secret = PRIVATE_MEMBERS.find((m) => m in raw);
  if (secret !== undefined) throw new ClusterKeysError(`${at} carries the private member "${secret}"; only public keys are accepted`);
  const { kid, alg, use } = raw;
  if (typeof kid !== 'string' || kid === '' || kid.length > MAX_KID_CHARS) throw new ClusterKeysError(`${at} has no usable key id (kid)`);
  if (typeof alg !== 'string' || !ACCEPTED_ALGORITHMS.includes(alg))
    throw new ClusterKeysError(`${at} (${kid}) has algorithm ${JSON.stringify(alg)}; one of ${ACCEPTED_ALGORITHMS.join(', ')} is required`);
  if (ALG_KTY[alg.slice(0, 2)] !== kty) throw new ClusterKeysError(`${at} (${kid}): algorithm ${alg} does not fit key type ${kty}`);
  if (use !== undefined && use !== 'sig') throw new ClusterKeysError(`${at} (${kid}) is not a signature key (use ${JSON.stringify(use)})`);
  if (raw.key_ops !== undefined) {
    if (!Array.isArray(raw.key_ops) || !raw.key_ops.includes('verify'))
      throw new ClusterKeysError(`${at} (${kid}) is not for verifying signatures (key_ops)`);
  }
  const out: PublicJwk = { kid, kty, alg, use: 'sig' };
  for (const m of PUBLIC_MEMBERS[kty]) {
    const v = raw[m];
    if (typeof v !== 'string' || v === '' || !/^[A-Za-z0-9_-]+$/.test(v))
      throw new ClusterKeysError(`${at} (${kid}) has no valid "${m}" (base64url)`);
    out[m] = v;
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
