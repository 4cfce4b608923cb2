// The cluster-keys document: what the operator renders from kube-apiserver's discovery document and
// JWK Set, and what a sidecar accepts. Public signature keys only, bounded, canonical.
import { generateKeyPairSync } from 'node:crypto';
import { KubeIssuer } from '../../test/support/identity/kube-issuer';
import { ClusterKeysError, MAX_CLUSTER_KEYS, MAX_CLUSTER_KEYS_BYTES, parseClusterKeys, renderClusterKeys } from './cluster-keys';

let issuer: KubeIssuer;
beforeAll(async () => {
  issuer = await KubeIssuer.create();
});

test('renders issuer and keys only, canonically, and parses back', async () => {
  const text = renderClusterKeys(issuer.discovery(), issuer.jwks());
  const doc = JSON.parse(text);
  expect(Object.keys(doc)).toEqual(['issuer', 'jwks']);
  expect(doc.issuer).toBe('https://kubernetes.default.svc.cluster.local');
  expect(doc.jwks.keys).toHaveLength(1);
  expect(Object.keys(doc.jwks.keys[0]).sort()).toEqual(['alg', 'e', 'kid', 'kty', 'n', 'use']);
  expect(parseClusterKeys(text)).toEqual(doc);
  // jwks_uri is not taken: it may name an address nobody should fetch
  expect(text).not.toContain('jwks_uri');
  // keys sorted by kid, so the same set in another order renders the same bytes
  await issuer.rotate('ES256');
  const a = renderClusterKeys(issuer.discovery(), issuer.jwks());
  const b = renderClusterKeys(issuer.discovery(), { keys: [...issuer.jwks().keys].reverse() });
  expect(a).toBe(b);
  issuer.retire(issuer.signing.kid);
});

const rsa = (): Record<string, unknown> => ({ ...issuer.jwks().keys[0] });
const withKeys = (...keys: unknown[]): string => JSON.stringify({ issuer: 'https://kubernetes.default.svc.cluster.local', jwks: { keys } });

test.each<[string, () => string, RegExp]>([
  ['a private RSA key', () => withKeys({ ...rsa(), d: 'AQAB', p: 'AQAB' }), /private member "d"/],
  [
    'a symmetric oct key (HS256 forgery with a shared secret)',
    () => withKeys({ kty: 'oct', k: 'c2VjcmV0', kid: 'x', alg: 'HS256' }),
    /key type "oct"/,
  ],
  ['an oct key dressed as RSA', () => withKeys({ ...rsa(), k: 'c2VjcmV0' }), /private member "k"/],
  ['a key without kid', () => withKeys({ ...rsa(), kid: undefined }), /no usable key id/],
  ['two keys with one kid', () => withKeys(rsa(), rsa()), /two keys have the key id/],
  ['alg none', () => withKeys({ ...rsa(), alg: 'none' }), /algorithm "none"/],
  ['alg HS256 on an RSA key', () => withKeys({ ...rsa(), alg: 'HS256' }), /algorithm "HS256"/],
  ['alg ES256 on an RSA key', () => withKeys({ ...rsa(), alg: 'ES256' }), /does not fit key type RSA/],
  ['an encryption key', () => withKeys({ ...rsa(), use: 'enc' }), /not a signature key/],
  ['key_ops without verify', () => withKeys({ ...rsa(), key_ops: ['encrypt'] }), /not for verifying/],
  ['a modulus that is not base64url', () => withKeys({ ...rsa(), n: 'a+b/c=' }), /"n"/],
  ['no keys', () => withKeys(), /no keys/],
  [
    'too many keys',
    () => withKeys(...Array.from({ length: MAX_CLUSTER_KEYS + 1 }, (_, i) => ({ ...rsa(), kid: `k${i}` }))),
    /more than 64/,
  ],
  ['an http issuer', () => JSON.stringify({ issuer: 'http://kubernetes.default.svc', jwks: { keys: [rsa()] } }), /https/],
  ['an issuer with a query', () => JSON.stringify({ issuer: 'https://k.example/?a=b', jwks: { keys: [rsa()] } }), /query or fragment/],
  ['no issuer', () => JSON.stringify({ jwks: { keys: [rsa()] } }), /no issuer/],
  ['an unexpected member', () => JSON.stringify({ issuer: 'https://k.example', jwks: { keys: [rsa()] }, extra: 1 }), /unexpected member/],
  ['not JSON', () => '{"issuer":', /not JSON/],
  ['an array', () => '[]', /not a JSON object/],
  ['an oversized file', () => ' '.repeat(MAX_CLUSTER_KEYS_BYTES + 1), /larger than/],
])('refuses %s', (_name, text, message) => {
  expect(() => parseClusterKeys(text())).toThrow(ClusterKeysError);
  expect(() => parseClusterKeys(text())).toThrow(message);
});

test('the operator refuses the same things when rendering', () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  expect(() => renderClusterKeys(issuer.discovery(), { keys: [{ ...jwk, kid: 'a', alg: 'RS256' }] })).toThrow(/private member "d"/);
  expect(() => renderClusterKeys({ ...issuer.discovery(), issuer: 'http://x' }, issuer.jwks())).toThrow(/https/);
  expect(() => renderClusterKeys([], issuer.jwks())).toThrow(/not a JSON object/);
  expect(() => renderClusterKeys(issuer.discovery(), {})).toThrow(/no "keys" array/);
});
