import { createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import { createTokenVerifier, IdentityError, resolveIdentitySpec } from '.';
import type { IdentityErrorCode, TokenVerifierOptions } from '.';
import type { IdentitySpec } from '../policy/types';
import { makeKey, TestIssuer } from '../../test/support/common/oidc-issuer';
import type { IssuerKey } from '../../test/support/common/oidc-issuer';

const AUD = 'agent-warden';
let issuer: TestIssuer;
let key1: IssuerKey;
let clockMs: number;
const nowS = () => Math.floor(clockMs / 1000);

beforeAll(async () => {
  key1 = await makeKey('key-1');
  issuer = await TestIssuer.start([key1]);
});
afterAll(() => issuer.stop());
beforeEach(() => {
  clockMs = Date.UTC(2026, 0, 1, 12, 0, 0);
  issuer.published = [key1];
  issuer.failWith = undefined;
  issuer.discoveryIssuer = undefined;
  issuer.counts.discovery = 0;
  issuer.counts.jwks = 0;
});

function verifier(spec: Partial<IdentitySpec> = {}, opts: TokenVerifierOptions = {}) {
  return createTokenVerifier(
    { issuer: issuer.url, audiences: [AUD], ...spec },
    { allowInsecureLoopback: true, now: () => clockMs, ...opts },
  );
}

function claims(extra: Record<string, unknown> = {}) {
  return { sub: 'worker-agent', aud: AUD, iat: nowS(), exp: nowS() + 300, ...extra };
}

async function rejection(p: Promise<unknown>, code: IdentityErrorCode, token?: string): Promise<IdentityError> {
  const e = await p.then(
    () => {
      throw new Error(`expected ${code}, but the token was accepted`);
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(IdentityError);
  expect({ code: (e as IdentityError).code, message: (e as IdentityError).message }).toEqual({ code, message: expect.any(String) });
  if (token) {
    // the message never carries the token, nor any of its parts
    for (const part of token.split('.').filter((p) => p.length > 8)) expect((e as Error).message).not.toContain(part);
  }
  return e as IdentityError;
}

describe('valid tokens', () => {
  test('become an identity with subject and groups; discovery and keys are fetched once and cached', async () => {
    const v = verifier();
    const token = await issuer.sign(claims({ groups: ['supervisors', 'agents'] }));
    await expect(v.verify(token)).resolves.toEqual({ subject: 'worker-agent', groups: ['supervisors', 'agents'], source: 'token' });
    await expect(v.verify(await issuer.sign(claims({ sub: 'other' })))).resolves.toEqual({ subject: 'other', groups: [], source: 'token' });
    expect(issuer.counts).toEqual({ discovery: 1, jwks: 1 });
  });

  test('groups may be a space-separated string; subject and groups claims are configurable', async () => {
    const v = verifier({ subjectClaim: 'email', groupsClaim: 'roles' });
    const token = await issuer.sign(claims({ email: 'sup@example.com', roles: ' sre  approvers ', groups: ['ignored'] }));
    await expect(v.verify(token)).resolves.toEqual({ subject: 'sup@example.com', groups: ['sre', 'approvers'], source: 'token' });
  });

  test('the token may list several audiences; any configured one is enough', async () => {
    const v = verifier({ audiences: ['other', AUD] });
    await expect(v.verify(await issuer.sign(claims({ aud: ['unrelated', AUD] })))).resolves.toMatchObject({ subject: 'worker-agent' });
  });

  test('RS256 and EdDSA keys work alongside ES256', async () => {
    const rsa = await makeKey('rsa-1', 'RS256');
    const ed = await makeKey('ed-1', 'EdDSA');
    issuer.published = [key1, rsa, ed];
    const v = verifier();
    await expect(v.verify(await issuer.sign(claims(), rsa))).resolves.toMatchObject({ subject: 'worker-agent' });
    await expect(v.verify(await issuer.sign(claims(), ed))).resolves.toMatchObject({ subject: 'worker-agent' });
  });

  test('a key published without kid is found by algorithm', async () => {
    const { kid: _kid, ...noKid } = key1.publicJwk;
    issuer.published = [{ ...key1, publicJwk: noKid }];
    const token = await new SignJWT(claims({ iss: issuer.url })).setProtectedHeader({ alg: 'ES256' }).sign(key1.privateKey);
    await expect(verifier().verify(token)).resolves.toMatchObject({ subject: 'worker-agent' });
  });

  test('Kubernetes projected service-account tokens: sub names the account, groups are the ones the API server gives', async () => {
    const rsa = await makeKey('k8s-signing-key', 'RS256');
    issuer.published = [rsa];
    const k8sIssuer = 'https://kubernetes.default.svc.cluster.local';
    // in a cluster the keys come from discovery; here jwksUri points at the stand-in's key set
    const v = verifier({ issuer: k8sIssuer, jwksUri: `${issuer.url}/keys`, audiences: ['agent-warden'] });
    const token = await issuer.sign(
      {
        iss: k8sIssuer,
        aud: ['agent-warden'],
        sub: 'system:serviceaccount:agents:support-agent',
        iat: nowS(),
        nbf: nowS(),
        exp: nowS() + 3600,
        'kubernetes.io': {
          namespace: 'agents',
          pod: { name: 'support-agent-7d9f', uid: '0b9a' },
          serviceaccount: { name: 'support-agent', uid: '5c1e' },
        },
      },
      rsa,
    );
    await expect(v.verify(token)).resolves.toEqual({
      subject: 'system:serviceaccount:agents:support-agent',
      groups: ['system:serviceaccounts', 'system:serviceaccounts:agents'],
      source: 'token',
    });
    expect(issuer.counts).toEqual({ discovery: 0, jwks: 1 });
    // RT14-13: a subject shaped like a service account, without kubernetes.io claims that agree, gets
    // no service-account groups (an IdP whose users shape their subject must not hand them out)
    for (const claims of [{}, { 'kubernetes.io': { namespace: 'other', serviceaccount: { name: 'support-agent' } } }]) {
      const shaped = await issuer.sign(
        {
          iss: k8sIssuer,
          aud: ['agent-warden'],
          sub: 'system:serviceaccount:agents:support-agent',
          iat: nowS(),
          exp: nowS() + 60,
          ...claims,
        },
        rsa,
      );
      await expect(v.verify(shaped)).resolves.toMatchObject({ groups: [] });
    }
    // the same token aimed at another audience (the API server's default) is refused
    const forApiServer = await issuer.sign(
      {
        iss: k8sIssuer,
        aud: ['https://kubernetes.default.svc.cluster.local'],
        sub: 'system:serviceaccount:agents:support-agent',
        iat: nowS(),
        exp: nowS() + 3600,
      },
      rsa,
    );
    await rejection(v.verify(forApiServer), 'wrong_audience', forApiServer);
  });
});

describe('lifetime and clock skew', () => {
  test('expired beyond the skew is refused; within the default 30s skew it passes', async () => {
    const v = verifier();
    const stale = await issuer.sign(claims({ iat: nowS() - 600, exp: nowS() - 31 }));
    const e = await rejection(v.verify(stale), 'expired', stale);
    expect(e.message).toMatch(/expired \(exp 2026-01-01T11:59:29\.000Z/);
    await expect(v.verify(await issuer.sign(claims({ iat: nowS() - 600, exp: nowS() - 20 })))).resolves.toMatchObject({
      subject: 'worker-agent',
    });
  });

  test('not valid before (nbf) beyond the skew is refused; within it passes', async () => {
    const v = verifier({ clockSkew: '10s' });
    const early = await issuer.sign(claims({ nbf: nowS() + 11 }));
    await rejection(v.verify(early), 'not_yet_valid', early);
    await expect(v.verify(await issuer.sign(claims({ nbf: nowS() + 9 })))).resolves.toMatchObject({ subject: 'worker-agent' });
  });

  test('a token issued in the future is not valid yet', async () => {
    const v = verifier({ clockSkew: '0s' });
    const future = await issuer.sign(claims({ iat: nowS() + 60, exp: nowS() + 600 }));
    expect((await rejection(v.verify(future), 'not_yet_valid', future)).message).toContain('iat');
  });

  test('the verifier clock moving past exp turns a good token into an expired one', async () => {
    const v = verifier({ clockSkew: '5s' });
    const token = await issuer.sign(claims({ exp: nowS() + 60 }));
    await expect(v.verify(token)).resolves.toBeDefined();
    clockMs += 66_000;
    await rejection(v.verify(token), 'expired', token);
  });

  test('maxTokenAge refuses old tokens by iat, and then needs iat', async () => {
    const v = verifier({ maxTokenAge: '10m', clockSkew: '0s' });
    const old = await issuer.sign(claims({ iat: nowS() - 601, exp: nowS() + 3600 }));
    await rejection(v.verify(old), 'too_old', old);
    await expect(v.verify(await issuer.sign(claims({ iat: nowS() - 599 })))).resolves.toBeDefined();
    const { iat: _iat, ...noIat } = claims();
    expect((await rejection(v.verify(await issuer.sign(noIat)), 'malformed_token')).message).toContain('"iat"');
  });

  test('a token without exp is refused: tokens must be short-lived', async () => {
    const { exp: _exp, ...noExp } = claims();
    expect((await rejection(verifier().verify(await issuer.sign(noExp)), 'malformed_token')).message).toBe('token has no "exp" claim');
  });
});

describe('who issued it, and for whom', () => {
  test('wrong audience', async () => {
    const t = await issuer.sign(claims({ aud: 'someone-else' }));
    expect((await rejection(verifier().verify(t), 'wrong_audience', t)).message).toContain('agent-warden');
  });

  test('wrong issuer, even when signed by a published key', async () => {
    const t = await issuer.sign(claims({ iss: 'https://evil.example.com' }));
    expect((await rejection(verifier().verify(t), 'wrong_issuer', t)).message).toContain(issuer.url);
  });

  test('a discovery document naming another issuer is not trusted', async () => {
    issuer.discoveryIssuer = 'https://elsewhere.example.com';
    const t = await issuer.sign(claims());
    expect((await rejection(verifier().verify(t), 'jwks_unavailable', t)).message).toContain('names issuer');
  });

  test('subject missing, or groups of the wrong type, are malformed', async () => {
    const { sub: _sub, ...noSub } = claims();
    await rejection(verifier().verify(await issuer.sign(noSub)), 'malformed_token');
    await rejection(verifier().verify(await issuer.sign(claims({ groups: [1, 2] }))), 'malformed_token');
  });
});

describe('signatures', () => {
  test('a forged token (another key, same kid) is refused', async () => {
    const forger = await makeKey('key-1');
    const forged = await issuer.sign(claims({ sub: 'supervisor' }), forger);
    await rejection(verifier().verify(forged), 'bad_signature', forged);
  });

  test('a payload swapped under a valid signature is refused', async () => {
    const [h, , s] = (await issuer.sign(claims())).split('.');
    const p = Buffer.from(JSON.stringify(claims({ iss: issuer.url, sub: 'supervisor' }))).toString('base64url');
    await rejection(verifier().verify(`${h}.${p}.${s}`), 'bad_signature');
  });

  test('alg none is refused before any key is fetched', async () => {
    const h = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    const p = Buffer.from(JSON.stringify(claims({ iss: issuer.url }))).toString('base64url');
    const e = await rejection(verifier().verify(`${h}.${p}.`), 'bad_signature');
    expect(e.message).toContain('"none" is not accepted');
    expect(issuer.counts).toEqual({ discovery: 0, jwks: 0 });
  });

  test('HS256, even keyed with the published public key (key confusion), is refused', async () => {
    const secret = Buffer.from(JSON.stringify(key1.publicJwk));
    const hs = await new SignJWT(claims({ iss: issuer.url })).setProtectedHeader({ alg: 'HS256', kid: 'key-1' }).sign(secret);
    await rejection(verifier().verify(hs), 'bad_signature', hs);
    // hand-rolled too, so no library default decides it
    const h = Buffer.from(JSON.stringify({ alg: 'HS512', kid: 'key-1' })).toString('base64url');
    const p = Buffer.from(JSON.stringify(claims({ iss: issuer.url }))).toString('base64url');
    const sig = createHmac('sha512', 'x').update(`${h}.${p}`).digest('base64url');
    await rejection(verifier().verify(`${h}.${p}.${sig}`), 'bad_signature');
  });

  test('missing and malformed tokens', async () => {
    const v = verifier();
    await rejection(v.verify(''), 'missing_token');
    await rejection(v.verify('   '), 'missing_token');
    await rejection(v.verify(undefined as unknown as string), 'missing_token');
    await rejection(v.verify('not-a-jwt'), 'malformed_token');
    await rejection(v.verify('a.b.c'), 'malformed_token');
    await rejection(v.verify('x'.repeat(20_000)), 'malformed_token');
    expect(issuer.counts).toEqual({ discovery: 0, jwks: 0 });
  });
});

describe('key rotation', () => {
  test('an unknown kid triggers one refetch (throttled); retired keys then fail with unknown_key', async () => {
    const v = verifier({}, { refetchCooldownMs: 10_000 });
    const oldToken = await issuer.sign(claims({ exp: nowS() + 3600 }), key1);
    await expect(v.verify(oldToken)).resolves.toBeDefined();
    expect(issuer.counts.jwks).toBe(1);

    // the issuer rotates: publishes key-2 next to key-1 and signs with key-2
    const key2 = await makeKey('key-2');
    issuer.published = [key1, key2];
    const newToken = await issuer.sign(claims({ exp: nowS() + 3600 }), key2);

    // within the cooldown after the last fetch, an unknown kid does not reach the issuer
    await rejection(v.verify(newToken), 'unknown_key', newToken);
    expect(issuer.counts.jwks).toBe(1);

    // after it, 20 concurrent requests with the new kid cause exactly one refetch, and all pass
    clockMs += 11_000;
    const results = await Promise.all(Array.from({ length: 20 }, () => v.verify(newToken)));
    expect(results.every((r) => r.subject === 'worker-agent')).toBe(true);
    expect(issuer.counts.jwks).toBe(2);
    await expect(v.verify(oldToken)).resolves.toBeDefined(); // both keys cached
    expect(issuer.counts.jwks).toBe(2);

    // key-1 retired; once the cache expires, old tokens fail and new ones still pass
    issuer.published = [key2];
    clockMs += 10 * 60_000;
    const e = await rejection(v.verify(oldToken), 'unknown_key', oldToken);
    expect(e.message).toContain('"key-1"');
    expect(issuer.counts.jwks).toBe(3);
    await expect(v.verify(newToken)).resolves.toBeDefined();
    expect(issuer.counts.jwks).toBe(3);
  });

  test('a kid that is never published: one refetch, then unknown_key', async () => {
    const v = verifier({}, { refetchCooldownMs: 0 });
    await expect(v.verify(await issuer.sign(claims()))).resolves.toBeDefined();
    const stranger = await makeKey('never-published');
    const t = await issuer.sign(claims(), stranger);
    await rejection(v.verify(t), 'unknown_key', t);
    expect(issuer.counts.jwks).toBe(2);
  });
});

describe('fail closed when keys are unavailable', () => {
  test('JWKS endpoint answering 503: jwks_unavailable, and recovery once it is back', async () => {
    const v = verifier({}, { failureBackoffMs: 1000 });
    const token = await issuer.sign(claims());
    issuer.failWith = 503;
    const e = await rejection(v.verify(token), 'jwks_unavailable', token);
    expect(e.message).toContain('HTTP 503');
    // within the failure backoff, no further fetch is attempted
    await rejection(v.verify(token), 'jwks_unavailable', token);
    expect(issuer.counts.discovery).toBe(1);
    issuer.failWith = undefined;
    clockMs += 1500;
    await expect(v.verify(token)).resolves.toBeDefined();
  });

  test('JWKS endpoint down (connection refused), and expired cache with the issuer gone', async () => {
    const dead = await TestIssuer.start([key1]);
    const token = await dead.sign(claims());
    const v = createTokenVerifier(
      { issuer: dead.url, audiences: [AUD] },
      { allowInsecureLoopback: true, now: () => clockMs, failureBackoffMs: 0 },
    );
    await expect(v.verify(token)).resolves.toBeDefined();
    await dead.stop();
    await expect(v.verify(token)).resolves.toBeDefined(); // fresh cache keeps working
    clockMs += 11 * 60_000;
    const fresh = await dead.sign(claims());
    const e = await rejection(v.verify(fresh), 'jwks_unavailable', fresh);
    expect(e.message).toMatch(/could not be fetched \(ECONNREFUSED\)/);
  });

  test('a JWKS that is not JSON, or has no keys, is unavailable', async () => {
    const bad = createTokenVerifier(
      { issuer: issuer.url, audiences: [AUD], jwksUri: `${issuer.url}/nope` },
      { allowInsecureLoopback: true, now: () => clockMs },
    );
    await rejection(bad.verify(await issuer.sign(claims())), 'jwks_unavailable');
    const fakeFetch = (async () => new Response('{"keys": 5}', { status: 200 })) as typeof fetch;
    const v2 = createTokenVerifier(
      { issuer: issuer.url, audiences: [AUD], jwksUri: `${issuer.url}/keys` },
      { allowInsecureLoopback: true, now: () => clockMs, fetch: fakeFetch },
    );
    expect((await rejection(v2.verify(await issuer.sign(claims())), 'jwks_unavailable')).message).toContain('no "keys" array');
  });
});

describe('spec checks', () => {
  test('issuer and jwksUri must be https (http only on loopback with allowInsecureLoopback)', () => {
    expect(() => createTokenVerifier({ issuer: 'http://idp.example.com', audiences: [AUD] })).toThrow('must be an https:// URL');
    expect(() => createTokenVerifier({ issuer: 'http://127.0.0.1:1', audiences: [AUD] })).toThrow('must be an https:// URL');
    expect(() =>
      createTokenVerifier(
        { issuer: 'https://idp.example.com', audiences: [AUD], jwksUri: 'http://idp.example.com/keys' },
        { allowInsecureLoopback: true },
      ),
    ).toThrow('jwksUri');
    expect(() => createTokenVerifier({ issuer: 'https://idp.example.com', audiences: [] })).toThrow('audiences');
  });

  test('clockSkew defaults to 30s and is at most 5m; maxTokenAge must be positive', () => {
    expect(resolveIdentitySpec({ issuer: 'https://idp.example.com', audiences: [AUD] })).toMatchObject({
      clockSkewMs: 30_000,
      subjectClaim: 'sub',
      groupsClaim: 'groups',
    });
    expect(resolveIdentitySpec({ issuer: 'https://idp.example.com', audiences: [AUD], clockSkew: '5m' }).clockSkewMs).toBe(300_000);
    expect(() => resolveIdentitySpec({ issuer: 'https://idp.example.com', audiences: [AUD], clockSkew: '5m1s' })).toThrow(
      'more than the allowed 5m',
    );
    expect(() => resolveIdentitySpec({ issuer: 'https://idp.example.com', audiences: [AUD], maxTokenAge: '0s' })).toThrow(
      'longer than zero',
    );
  });
});
