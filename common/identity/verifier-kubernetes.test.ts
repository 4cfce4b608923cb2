// spec.identity.kubernetes: tokens minted as kube-apiserver's TokenRequest mints them, verified
// against the cluster-keys file the operator writes. Every way around it is tried here.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import { KubeIssuer } from '../../test/support/identity/kube-issuer';
import { renderClusterKeys } from './cluster-keys';
import { IdentityError } from './errors';
import { createTokenVerifier, type TokenVerifier } from './verifier';

const AUD = 'agent-warden';
let issuer: KubeIssuer;
let dir: string;
let file: string;
let clock: number;
let verifier: TokenVerifier;

function writeKeys(from: KubeIssuer = issuer): void {
  fs.writeFileSync(file, renderClusterKeys(from.discovery(), from.jwks()));
}
const nowSec = (): number => Math.floor(clock / 1000);
function token(over: Partial<Parameters<KubeIssuer['token']>[0]> = {}, from: KubeIssuer = issuer): Promise<string> {
  return from.token({ namespace: 'agents', serviceAccount: 'support', audiences: [AUD], issuedAt: nowSec(), ...over });
}
async function refusal(t: string | Promise<string>, v: TokenVerifier = verifier): Promise<IdentityError> {
  try {
    await v.verify(await t);
  } catch (e) {
    expect(e).toBeInstanceOf(IdentityError);
    return e as IdentityError;
  }
  throw new Error('the token was accepted');
}
const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');

beforeEach(async () => {
  issuer = await KubeIssuer.create();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-k8s-keys-'));
  file = path.join(dir, 'kubernetes-keys.json');
  clock = Date.now();
  writeKeys();
  verifier = createTokenVerifier({ kubernetes: { audiences: [AUD] } }, { clusterKeysFile: file, now: () => clock });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a projected token names its service account, with the groups the API server gives', async () => {
  await expect(verifier.verify(await token())).resolves.toEqual({
    subject: 'system:serviceaccount:agents:support',
    groups: ['system:serviceaccounts', 'system:serviceaccounts:agents', 'system:authenticated'],
    source: 'token',
  });
  // any of the listed audiences; a groups claim in the token is never read
  const v = createTokenVerifier({ kubernetes: { audiences: ['other', AUD] } }, { clusterKeysFile: file, now: () => clock });
  const id = await v.verify(await token({ claims: { groups: ['system:masters'] } }));
  expect(id.groups).not.toContain('system:masters');
});

test('expired, not yet valid, too old and future tokens are refused', async () => {
  expect((await refusal(token({ issuedAt: nowSec() - 700 }))).code).toBe('expired');
  expect((await refusal(token({ claims: { nbf: nowSec() + 120 } }))).code).toBe('not_yet_valid');
  expect((await refusal(token({ issuedAt: nowSec() + 120 }))).code).toBe('not_yet_valid');
  // valid for 3 hours, but issued 2 hours ago: a kubelet would have renewed it long since
  expect((await refusal(token({ issuedAt: nowSec() - 7200, expirationSeconds: 3 * 3600 }))).code).toBe('too_old');
  const patient = createTokenVerifier({ kubernetes: { audiences: [AUD] }, maxTokenAge: '3h' }, { clusterKeysFile: file, now: () => clock });
  await expect(patient.verify(await token({ issuedAt: nowSec() - 7200, expirationSeconds: 3 * 3600 }))).resolves.toBeDefined();
  expect((await refusal(token({ claims: { exp: undefined } }))).code).toBe('malformed_token');
  expect((await refusal(token({ claims: { iat: undefined } }))).code).toBe('malformed_token');
});

test("a token for another audience (the API server's own, the pod's automounted one) is refused", async () => {
  expect((await refusal(token({ audiences: ['https://kubernetes.default.svc.cluster.local'] }))).code).toBe('wrong_audience');
  expect((await refusal(token({ audiences: ['vault'] }))).code).toBe('wrong_audience');
});

test("another cluster's tokens are refused: other keys, other issuer, and a borrowed key id", async () => {
  const other = await KubeIssuer.create(); // same default issuer URL, its own keys
  expect((await refusal(token({}, other))).code).toBe('unknown_key');
  // signed by the other cluster's key under our key id: the signature does not verify
  const forged = await token({ key: { ...other.signing, kid: issuer.signing.kid } }, other);
  expect((await refusal(forged)).code).toBe('bad_signature');
  // signed with our key, but naming another issuer
  const elsewhere = await KubeIssuer.create({ issuer: 'https://oidc.other-cluster.example' });
  elsewhere.published = issuer.published;
  expect((await refusal(token({}, elsewhere))).code).toBe('wrong_issuer');
});

test('none, HS256 keyed with the public key, and an algorithm the key does not declare are refused', async () => {
  const claims = { iss: issuer.issuer, sub: 'system:serviceaccount:agents:support', aud: [AUD], iat: nowSec(), exp: nowSec() + 600 };
  const none = `${b64({ alg: 'none', kid: issuer.signing.kid })}.${b64(claims)}.`;
  expect((await refusal(none)).code).toBe('bad_signature');
  // the classic confusion: HMAC with the published key material as the secret
  const head = `${b64({ alg: 'HS256', kid: issuer.signing.kid })}.${b64(claims)}`;
  for (const secret of [JSON.stringify(issuer.signing.publicJwk), String(issuer.signing.publicJwk.n)]) {
    const sig = createHmac('sha256', secret).update(head).digest('base64url');
    expect((await refusal(`${head}.${sig}`)).code).toBe('bad_signature');
  }
  // RS256 key used for PS256: jose would verify PSS with an RSA key unless the key's alg pins it
  const ps = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'PS256', kid: issuer.signing.kid }).sign(issuer.signing.privateKey);
  await expect(verifier.verify(ps)).rejects.toBeInstanceOf(IdentityError);
});

test('kubernetes.io claims must be there and agree with sub; a key id is required', async () => {
  expect((await refusal(token({ claims: { 'kubernetes.io': undefined } }))).message).toMatch(/kubernetes\.io claims/);
  expect((await refusal(token({ claims: { sub: 'system:serviceaccount:kube-system:admin' } }))).message).toMatch(/does not agree/);
  expect((await refusal(token({ claims: { 'kubernetes.io': { namespace: 'agents', serviceaccount: { name: 'x' } } } }))).code).toBe(
    'malformed_token',
  );
  const noKid = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'RS256' }).sign(issuer.signing.privateKey);
  expect((await refusal(noKid)).message).toMatch(/no key id/);
});

test('key rotation: a new key works once the file carries it; a retired key stops working', async () => {
  const old = await token();
  const next = await issuer.rotate();
  const fresh = await token();
  expect(issuer.signing).toBe(next);
  expect((await refusal(fresh)).code).toBe('unknown_key');
  writeKeys();
  // the file is read again at most once a second
  expect((await refusal(fresh)).code).toBe('unknown_key');
  clock += 1000;
  await expect(verifier.verify(fresh)).resolves.toMatchObject({ subject: 'system:serviceaccount:agents:support' });
  await expect(verifier.verify(old)).resolves.toBeDefined();
  issuer.retire(issuer.published[0].kid);
  writeKeys();
  clock += 1000;
  expect((await refusal(old)).code).toBe('unknown_key');
  await expect(verifier.verify(fresh)).resolves.toBeDefined();
});

test('fail closed: a missing, corrupt or tampered keys file refuses every token, and recovers when fixed', async () => {
  const t = await token();
  await expect(verifier.verify(t)).resolves.toBeDefined();
  fs.rmSync(file);
  clock += 1000;
  const missing = await refusal(t);
  expect(missing.code).toBe('jwks_unavailable');
  expect(missing.message).toContain('does not exist');
  fs.writeFileSync(file, '{"issuer": "https://kubernetes.default.svc.cluster.local", "jwks": ');
  clock += 1000;
  expect((await refusal(t)).message).toMatch(/is invalid: not JSON/);
  const doc = JSON.parse(renderClusterKeys(issuer.discovery(), issuer.jwks()));
  doc.jwks.keys.push({ kty: 'oct', k: 'c2VjcmV0', kid: 'shared', alg: 'HS256' });
  fs.writeFileSync(file, JSON.stringify(doc));
  clock += 1000;
  expect((await refusal(t)).code).toBe('jwks_unavailable');
  fs.writeFileSync(file, ' '.repeat(300 * 1024));
  clock += 1000;
  expect((await refusal(t)).message).toMatch(/larger than/);
  writeKeys();
  clock += 1000;
  await expect(verifier.verify(t)).resolves.toBeDefined();
  // the token never appears in a refusal
  fs.rmSync(file);
  clock += 1000;
  expect((await refusal(t)).message).not.toContain(t.split('.')[2]);
});

test("audiences that include the cluster's issuer accept no token at all", async () => {
  const custom = await KubeIssuer.create({ issuer: 'https://oidc.cluster.example/abc' });
  writeKeys(custom);
  const v = createTokenVerifier({ kubernetes: { audiences: ['https://oidc.cluster.example/abc'] } }, { clusterKeysFile: file });
  const t = await custom.token({ namespace: 'a', serviceAccount: 'b', audiences: ['https://oidc.cluster.example/abc'] });
  const e = await refusal(t, v);
  expect(e.code).toBe('wrong_audience');
  expect(e.message).toMatch(/API server's own audience/);
});

test('the spec is checked: one of issuer or kubernetes, no API audiences, no claim overrides', async () => {
  expect(() => createTokenVerifier({ kubernetes: { audiences: [AUD] } })).toThrow(/no file/);
  expect(() => createTokenVerifier({ kubernetes: { audiences: ['https://kubernetes.default.svc'] } }, { clusterKeysFile: file })).toThrow(
    /API server's own audience/,
  );
  expect(() => createTokenVerifier({ issuer: 'https://a.example', audiences: ['x'], kubernetes: { audiences: [AUD] } })).toThrow(
    /exactly one/,
  );
  expect(() => createTokenVerifier({ kubernetes: { audiences: [AUD] }, subjectClaim: 'email' }, { clusterKeysFile: file })).toThrow(
    /subjectClaim/,
  );
  expect(() => createTokenVerifier({ kubernetes: { audiences: [AUD] }, audiences: [AUD] }, { clusterKeysFile: file })).toThrow(
    /kubernetes\.audiences/,
  );
  // an ES256 cluster works the same way
  const ec = await KubeIssuer.create({ alg: 'ES256' });
  writeKeys(ec);
  const v = createTokenVerifier({ kubernetes: { audiences: [AUD] } }, { clusterKeysFile: file });
  await expect(v.verify(await ec.token({ namespace: 'n', serviceAccount: 's', audiences: [AUD] }))).resolves.toMatchObject({
    subject: 'system:serviceaccount:n:s',
  });
});

test("bound to one service account (an injected pod's own): another workload's token is refused", async () => {
  const v = createTokenVerifier(
    { kubernetes: { audiences: [AUD] } },
    { clusterKeysFile: file, now: () => clock, kubernetesSubject: 'system:serviceaccount:agents:support' },
  );
  await expect(v.verify(await token())).resolves.toMatchObject({ subject: 'system:serviceaccount:agents:support' });
  const e = await refusal(token({ serviceAccount: 'admin' }), v);
  expect(e.code).toBe('foreign_token');
  expect(e.message).toMatch(/a pod may present only its own token/);
  expect((await refusal(token({ namespace: 'other' }), v)).code).toBe('foreign_token');
});
