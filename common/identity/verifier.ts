// Verifies a caller's short-lived JWT against `spec.identity` and turns it into an Identity.
//
// - Keys: the issuer's JWK Set, from spec.jwksUri or from `jwks_uri` in the issuer's OIDC discovery
//   document (issuer + /.well-known/openid-configuration, whose own `issuer` must match). Both are
//   cached for cacheTtlMs. A token whose key id is not in the cached set makes the verifier fetch
//   the set once more (key rotation), at most once per refetchCooldownMs, so garbage key ids cannot
//   make it hammer the issuer. Concurrent fetches are coalesced into one.
// - Fail closed: when the keys cannot be fetched (endpoint down, bad JSON, timeout) and no fresh
//   cached set has the token's key, the token is refused with `jwks_unavailable`.
// - Only asymmetric signature algorithms are accepted: never `none`, never HS* (a shared secret
//   would let anyone holding the public JWKS forge tokens in a confused-key attack).
// - Checked: signature, iss, aud (any of spec.audiences), exp (required), nbf, iat (not in the
//   future; not older than maxTokenAge when set), all with spec.clockSkew tolerance.
//
// Kubernetes projected service-account tokens through `issuer`: issuer is the cluster's
// --service-account-issuer, sub is system:serviceaccount:NS:NAME, and they carry no groups claim;
// the verifier then gives them the groups the API server would (system:serviceaccounts,
// system:serviceaccounts:NS).
//
// `spec.identity.kubernetes` instead: no fetching at all. The issuer and keys come from the file
// the operator writes next to the policy (cluster-keys.ts; read by cluster-keys-file.ts, at most
// once a second, never cached past a failed read: a missing or corrupt file refuses every token).
// Tokens must also carry a key id and the kubernetes.io claims that agree with sub, and are refused
// past maxTokenAge (default 1h). The groups are the API server's, system:authenticated included.

import type * as Jose from 'jose';
import type { JSONWebKeySet, JWTPayload, JWTVerifyGetKey, JWTVerifyOptions, KeyLike } from 'jose';
import type { Identity, IdentitySpec } from '../policy/types';
import { ACCEPTED_ALGORITHMS } from './cluster-keys';
import { ClusterKeysFile } from './cluster-keys-file';
import { IdentityError } from './errors';
import { checkUrl, resolveIdentitySpec, type ResolvedKubernetesSpec, type ResolvedOidcSpec, type ResolvedSpec } from './spec';

export { DEFAULT_CLOCK_SKEW_MS, MAX_CLOCK_SKEW_MS, resolveIdentitySpec } from './spec';

export { ACCEPTED_ALGORITHMS } from './cluster-keys';

const MAX_TOKEN_CHARS = 16 * 1024;
const MAX_DOCUMENT_CHARS = 1024 * 1024;

export interface TokenVerifierOptions {
  /** HTTP client for discovery and JWKS (inject the cluster CA / a bearer token here). */
  fetch?: typeof fetch;
  /** Clock, ms since the epoch. */
  now?: () => number;
  /** How long discovery and the JWK Set are trusted before they are fetched again. Default 10 min. */
  cacheTtlMs?: number;
  /** Least time between two fetches caused by unknown key ids. Default 10 s. */
  refetchCooldownMs?: number;
  /** After a failed fetch, answer jwks_unavailable without retrying for this long. Default 1 s. */
  failureBackoffMs?: number;
  /** Per-request timeout for discovery and JWKS fetches. Default 5 s. */
  fetchTimeoutMs?: number;
  /** Allow http:// issuer and JWKS URLs on loopback hosts. Tests and local development only. */
  allowInsecureLoopback?: boolean;
  /** With spec.identity.kubernetes: the file holding the cluster's issuer and keys (cluster-keys.ts). */
  clusterKeysFile?: string;
  /**
   * With spec.identity.kubernetes: accept only tokens of this subject (system:serviceaccount:NS:NAME).
   * The sidecar sets it to its own pod's service account when it knows it (injected pods), so a
   * token borrowed from another workload cannot make the agent act as that workload.
   */
  kubernetesSubject?: string;
}

export interface TokenVerifier {
  /** Resolves to the caller's identity, or rejects with an IdentityError naming the failed check. */
  verify(token: string): Promise<Identity>;
}

// jose (~25 ms of a start and ~1 MB) is loaded by the first verifier, so a sidecar whose policy
// has no spec.identity never loads it. Everything below that uses these runs after that.
let createLocalJWKSet: typeof Jose.createLocalJWKSet;
let decodeProtectedHeader: typeof Jose.decodeProtectedHeader;
let jwtVerify: typeof Jose.jwtVerify;
let joseErrors: typeof Jose.errors;
function loadJose(): void {
  if (joseErrors) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand, synchronously
  ({ createLocalJWKSet, decodeProtectedHeader, jwtVerify, errors: joseErrors } = require('jose') as typeof Jose);
}

export function createTokenVerifier(spec: IdentitySpec, opts: TokenVerifierOptions = {}): TokenVerifier {
  loadJose();
  const allowInsecure = opts.allowInsecureLoopback === true;
  const cfg = resolveIdentitySpec(spec, allowInsecure);
  const now = opts.now ?? Date.now;
  return cfg.mode === 'kubernetes' ? kubernetesVerifier(cfg, opts, now) : oidcVerifier(cfg, opts, now);
}

function oidcVerifier(cfg: ResolvedOidcSpec, opts: TokenVerifierOptions, now: () => number): TokenVerifier {
  const keys = new KeyCache(cfg, {
    fetch: opts.fetch ?? globalThis.fetch,
    now,
    ttlMs: opts.cacheTtlMs ?? 10 * 60_000,
    cooldownMs: opts.refetchCooldownMs ?? 10_000,
    failureBackoffMs: opts.failureBackoffMs ?? 1_000,
    timeoutMs: opts.fetchTimeoutMs ?? 5_000,
    allowInsecure: opts.allowInsecureLoopback === true,
  });

  const getKey: JWTVerifyGetKey = async (header, token) => {
    const set = await keys.current();
    try {
      return await set(header, token);
    } catch (e) {
      if (!(e instanceof joseErrors.JWKSNoMatchingKey)) throw e;
    }
    const refreshed = await keys.refetchForUnknownKey(describeKid(header.kid));
    try {
      return await refreshed(header, token);
    } catch (e) {
      if (e instanceof joseErrors.JWKSNoMatchingKey) throw unknownKey(header.kid);
      throw e;
    }
  };

  async function verify(raw: string): Promise<Identity> {
    const token = precheck(raw).token;
    const options = verifyOptions(cfg, cfg.issuer, now);
    let payload: JWTPayload;
    try {
      payload = (await jwtVerify(token, getKey, options)).payload;
    } catch (e) {
      if (!(e instanceof joseErrors.JWKSMultipleMatchingKeys)) throw toIdentityError(e, cfg, cfg.issuer);
      payload = await verifyWithCandidates(token, e, options);
    }
    checkIssuedAt(payload, cfg, now);
    return identityFrom(payload, cfg);
  }

  async function verifyWithCandidates(
    token: string,
    multi: Jose.errors.JWKSMultipleMatchingKeys,
    options: JWTVerifyOptions,
  ): Promise<JWTPayload> {
    // Several keys fit the header (no kid, same kty): try each; a signature mismatch moves on.
    for await (const key of multi as unknown as AsyncIterable<KeyLike>) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (e) {
        if (!(e instanceof joseErrors.JWSSignatureVerificationFailed)) throw toIdentityError(e, cfg, cfg.issuer);
      }
    }
    throw new IdentityError('bad_signature', "token signature does not verify with any of the issuer's keys");
  }

  return { verify };
}

function kubernetesVerifier(cfg: ResolvedKubernetesSpec, opts: TokenVerifierOptions, now: () => number): TokenVerifier {
  if (!opts.clusterKeysFile) throw new Error('spec.identity.kubernetes: no file holding the cluster’s keys was given');
  const source = new ClusterKeysFile(opts.clusterKeysFile, createLocalJWKSet, { now, allowInsecureLoopback: opts.allowInsecureLoopback });

  async function verify(raw: string): Promise<Identity> {
    const { token, kid } = precheck(raw);
    // Kubernetes signs every token with a key id: one without cannot be matched to a key unambiguously.
    if (kid === undefined) throw new IdentityError('malformed_token', 'token has no key id (kid); service-account tokens always carry one');
    // Issuer and keys from one read of one file: never one cluster's keys with another's issuer.
    const snapshot = source.snapshot();
    if (cfg.audiences.includes(snapshot.issuer)) {
      throw new IdentityError(
        'wrong_audience',
        `spec.identity.kubernetes.audiences includes the cluster's issuer ${snapshot.issuer}, the API server's own audience: no token is accepted until it names an audience of your own`,
      );
    }
    const options = verifyOptions(cfg, snapshot.issuer, now);
    let payload: JWTPayload;
    try {
      payload = (await jwtVerify(token, snapshot.keys, options)).payload;
    } catch (e) {
      if (e instanceof joseErrors.JWKSNoMatchingKey) throw unknownKey(kid, 'the cluster');
      throw toIdentityError(e, cfg, snapshot.issuer);
    }
    checkIssuedAt(payload, cfg, now);
    const identity = serviceAccountIdentity(payload);
    if (opts.kubernetesSubject !== undefined && identity.subject !== opts.kubernetesSubject) {
      throw new IdentityError(
        'foreign_token',
        `token belongs to ${identity.subject}, not to this pod's service account (${opts.kubernetesSubject}); a pod may present only its own token`,
      );
    }
    return identity;
  }

  return { verify };
}

/** Shape checks before any cryptography: size, three parts, an accepted asymmetric algorithm. */
function precheck(raw: string): { token: string; kid?: string } {
  if (typeof raw !== 'string' || raw.trim() === '') throw new IdentityError('missing_token', 'no token was presented');
  const token = raw.trim();
  if (token.length > MAX_TOKEN_CHARS) throw new IdentityError('malformed_token', `token is longer than ${MAX_TOKEN_CHARS} characters`);
  if (token.split('.').length !== 3)
    throw new IdentityError('malformed_token', 'token is not a signed JWT (expected three dot-separated parts)');
  let header: Jose.ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new IdentityError('malformed_token', 'token header is not base64url-encoded JSON');
  }
  const alg: unknown = header.alg;
  if (typeof alg !== 'string' || !ACCEPTED_ALGORITHMS.includes(alg)) {
    throw new IdentityError(
      'bad_signature',
      `token algorithm ${JSON.stringify(String(alg).slice(0, 32))} is not accepted; only asymmetric signatures are (${ACCEPTED_ALGORITHMS.join(', ')})`,
    );
  }
  if (header.crit !== undefined)
    throw new IdentityError('malformed_token', 'token header has critical extensions (crit), which are not supported');
  const kid: unknown = header.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid === ''))
    throw new IdentityError('malformed_token', 'token key id (kid) is not a string');
  return { token, kid: kid };
}

function verifyOptions(cfg: ResolvedSpec, issuer: string, now: () => number): JWTVerifyOptions {
  return {
    issuer,
    audience: cfg.audiences,
    algorithms: [...ACCEPTED_ALGORITHMS],
    clockTolerance: cfg.clockSkewMs / 1000,
    currentDate: new Date(now()),
    requiredClaims: cfg.mode === 'kubernetes' ? ['exp', 'iat'] : ['exp'],
    ...(cfg.maxTokenAgeMs !== undefined ? { maxTokenAge: cfg.maxTokenAgeMs / 1000 } : {}),
  };
}

/** jose checks iat only under maxTokenAge; a token from the future is refused in any case. */
function checkIssuedAt(payload: JWTPayload, cfg: ResolvedSpec, now: () => number): void {
  if (typeof payload.iat === 'number' && payload.iat * 1000 > now() + cfg.clockSkewMs) {
    throw new IdentityError(
      'not_yet_valid',
      `token was issued in the future (iat ${timeOf(payload.iat)}, clock skew allowed ${cfg.clockSkewMs / 1000}s)`,
    );
  }
}

/**
 * A service-account token's caller, as the API server would authenticate it: sub must agree with
 * the kubernetes.io claims (namespace and service account name), and the groups are the API
 * server's for a service account (a groups claim in the token is never read).
 */
function serviceAccountIdentity(payload: JWTPayload): Identity {
  const k8s = payload['kubernetes.io'] as { namespace?: unknown; serviceaccount?: { name?: unknown; uid?: unknown } } | undefined;
  const ns = k8s?.namespace;
  const sa = k8s?.serviceaccount;
  if (typeof ns !== 'string' || ns === '' || typeof sa?.name !== 'string' || sa.name === '' || typeof sa.uid !== 'string') {
    throw new IdentityError(
      'malformed_token',
      'token has no kubernetes.io claims naming its namespace and service account: not a projected service-account token',
    );
  }
  const subject = `system:serviceaccount:${ns}:${sa.name}`;
  if (payload.sub !== subject) throw new IdentityError('malformed_token', "token's sub does not agree with its kubernetes.io claims");
  return { subject, groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'], source: 'token' };
}

function identityFrom(payload: JWTPayload, cfg: ResolvedOidcSpec): Identity {
  const subject = payload[cfg.subjectClaim];
  if (typeof subject !== 'string' || subject === '') {
    throw new IdentityError('malformed_token', `token has no "${cfg.subjectClaim}" claim naming the caller (a non-empty string)`);
  }
  const raw = payload[cfg.groupsClaim];
  let groups: string[];
  if (raw === undefined || raw === null) {
    groups = cfg.subjectClaim === 'sub' ? serviceAccountGroups(subject, payload) : [];
  } else if (typeof raw === 'string') {
    groups = raw.split(/\s+/).filter((g) => g !== '');
  } else if (Array.isArray(raw) && raw.every((g) => typeof g === 'string')) {
    groups = raw.filter((g) => g !== '');
  } else {
    throw new IdentityError(
      'malformed_token',
      `token's "${cfg.groupsClaim}" claim is neither an array of strings nor a space-separated string`,
    );
  }
  return { subject, groups: [...new Set(groups)], source: 'token' };
}

/**
 * The groups the Kubernetes API server gives a service account; the token itself lists none. Only
 * for a token that is one: its kubernetes.io claims must name the same namespace and service account
 * as sub (an IdP whose users can shape their subject must not hand out service-account groups).
 */
function serviceAccountGroups(subject: string, payload: JWTPayload): string[] {
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(subject);
  if (!m) return [];
  const k8s = payload['kubernetes.io'] as { namespace?: unknown; serviceaccount?: { name?: unknown } } | undefined;
  if (k8s?.namespace !== m[1] || k8s?.serviceaccount?.name !== m[2]) return [];
  return ['system:serviceaccounts', `system:serviceaccounts:${m[1]}`];
}

function toIdentityError(e: unknown, cfg: ResolvedSpec, issuer: string): IdentityError {
  if (e instanceof IdentityError) return e;
  if (e instanceof joseErrors.JWTExpired) {
    if (e.claim === 'iat')
      return new IdentityError('too_old', `token was issued (iat) longer ago than maxTokenAge allows (${cfg.maxTokenAgeMs! / 1000}s)`);
    return new IdentityError('expired', `token expired (exp ${timeOf(e.payload.exp)}, clock skew allowed ${cfg.clockSkewMs / 1000}s)`);
  }
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.reason === 'missing') return new IdentityError('malformed_token', `token has no "${e.claim}" claim`);
    if (e.reason === 'invalid') return new IdentityError('malformed_token', `token's "${e.claim}" claim is not a number`);
    switch (e.claim) {
      case 'nbf':
        return new IdentityError(
          'not_yet_valid',
          `token is not valid yet (nbf ${timeOf(e.payload.nbf)}, clock skew allowed ${cfg.clockSkewMs / 1000}s)`,
        );
      case 'iat':
        return new IdentityError(
          'not_yet_valid',
          `token was issued in the future (iat ${timeOf(e.payload.iat)}, clock skew allowed ${cfg.clockSkewMs / 1000}s)`,
        );
      case 'iss':
        return new IdentityError('wrong_issuer', `token issuer (iss) is not ${issuer}`);
      case 'aud':
        return new IdentityError('wrong_audience', `token audience (aud) includes none of ${cfg.audiences.join(', ')}`);
      default:
        return new IdentityError('malformed_token', `token's "${e.claim}" claim failed its check`);
    }
  }
  if (e instanceof joseErrors.JWSSignatureVerificationFailed)
    return new IdentityError('bad_signature', "token signature does not verify with the issuer's key");
  if (e instanceof joseErrors.JOSEAlgNotAllowed)
    return new IdentityError('bad_signature', 'token algorithm is not accepted; only asymmetric signatures are');
  if (e instanceof joseErrors.JWKSNoMatchingKey) return unknownKey(undefined);
  if (e instanceof joseErrors.JWKSInvalid) return new IdentityError('jwks_unavailable', `the issuer's JWK Set is unusable: ${e.message}`);
  if (e instanceof joseErrors.JOSEError) return new IdentityError('malformed_token', `token is malformed (${e.code})`);
  return new IdentityError('malformed_token', `token could not be verified (${e instanceof Error ? e.name : typeof e})`);
}

function timeOf(seconds: unknown): string {
  return typeof seconds === 'number' && Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : String(seconds);
}

function describeKid(kid: unknown): string {
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a token header's kid of any shape is named as it came
  return kid === undefined ? 'without a key id' : `with key id ${JSON.stringify(String(kid).slice(0, 64))}`;
}

function unknownKey(kid: unknown, who = 'the issuer'): IdentityError {
  return new IdentityError('unknown_key', `token is signed ${describeKid(kid)}, which ${who} does not publish`);
}

type KeySet = ReturnType<typeof createLocalJWKSet>;

interface KeyCacheOptions {
  fetch: typeof fetch;
  now: () => number;
  ttlMs: number;
  cooldownMs: number;
  failureBackoffMs: number;
  timeoutMs: number;
  allowInsecure: boolean;
}

/** Discovery document and JWK Set, cached, refreshed on expiry or (throttled) on an unknown key. */
class KeyCache {
  private set?: { keys: KeySet; fetchedAt: number };
  private jwksUri?: { uri: string; fetchedAt: number };
  private inflight?: Promise<KeySet>;
  private lastAttemptAt = -Infinity;
  private lastFailure?: { at: number; error: IdentityError };

  constructor(
    private readonly cfg: ResolvedOidcSpec,
    private readonly o: KeyCacheOptions,
  ) {}

  /** The cached set while fresh; otherwise a fetched one. */
  async current(): Promise<KeySet> {
    if (this.set && this.o.now() - this.set.fetchedAt < this.o.ttlMs) return this.set.keys;
    return this.refresh();
  }

  /** A token named a key the cached set lacks: fetch again unless that happened too recently. */
  async refetchForUnknownKey(kid: string): Promise<KeySet> {
    if (this.inflight) return this.inflight;
    if (this.o.now() - this.lastAttemptAt < this.o.cooldownMs) {
      throw new IdentityError('unknown_key', `token is signed ${kid}, which the issuer does not publish (keys were fetched moments ago)`);
    }
    return this.refresh();
  }

  private refresh(): Promise<KeySet> {
    if (this.inflight) return this.inflight;
    const failure = this.lastFailure;
    if (failure && this.o.now() - failure.at < this.o.failureBackoffMs) return Promise.reject(failure.error);
    this.lastAttemptAt = this.o.now();
    this.inflight = this.fetchKeys()
      .then((keys) => {
        this.set = { keys, fetchedAt: this.o.now() };
        this.lastFailure = undefined;
        return keys;
      })
      .catch((e: unknown) => {
        const error =
          e instanceof IdentityError
            ? e
            : new IdentityError('jwks_unavailable', `the issuer's keys could not be fetched (${(e as Error)?.message ?? e})`);
        this.lastFailure = { at: this.o.now(), error };
        throw error;
      })
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }

  private async fetchKeys(): Promise<KeySet> {
    const uri = await this.resolveJwksUri();
    const doc = await this.fetchJson(uri, 'JWK Set');
    const keys = (doc as { keys?: unknown }).keys;
    if (!Array.isArray(keys)) throw new IdentityError('jwks_unavailable', `JWK Set at ${uri} has no "keys" array`);
    try {
      return createLocalJWKSet(doc as JSONWebKeySet);
    } catch (e) {
      throw new IdentityError('jwks_unavailable', `JWK Set at ${uri} is invalid: ${(e as Error).message}`);
    }
  }

  private async resolveJwksUri(): Promise<string> {
    if (this.cfg.jwksUri) return this.cfg.jwksUri;
    if (this.jwksUri && this.o.now() - this.jwksUri.fetchedAt < this.o.ttlMs) return this.jwksUri.uri;
    const url = `${this.cfg.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const doc = (await this.fetchJson(url, 'OIDC discovery document')) as { issuer?: unknown; jwks_uri?: unknown };
    if (doc.issuer !== this.cfg.issuer) {
      throw new IdentityError(
        'jwks_unavailable',
        `OIDC discovery document at ${url} names issuer ${JSON.stringify(doc.issuer)}, not ${this.cfg.issuer}`,
      );
    }
    if (typeof doc.jwks_uri !== 'string') throw new IdentityError('jwks_unavailable', `OIDC discovery document at ${url} has no jwks_uri`);
    try {
      checkUrl(doc.jwks_uri, 'jwks_uri', this.o.allowInsecure);
    } catch (e) {
      throw new IdentityError('jwks_unavailable', `OIDC discovery document at ${url}: ${(e as Error).message}`);
    }
    this.jwksUri = { uri: doc.jwks_uri, fetchedAt: this.o.now() };
    return doc.jwks_uri;
  }

  private async fetchJson(url: string, what: string): Promise<object> {
    let res: Response;
    try {
      res = await this.o.fetch(url, {
        headers: { accept: 'application/json' },
        redirect: 'error',
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } })?.cause?.code ?? (e as Error)?.name ?? 'error';
      throw new IdentityError('jwks_unavailable', `${what} at ${url} could not be fetched (${cause})`);
    }
    if (!res.ok) throw new IdentityError('jwks_unavailable', `${what} at ${url} answered HTTP ${res.status}`);
    let text: string;
    try {
      text = await res.text();
    } catch {
      throw new IdentityError('jwks_unavailable', `${what} at ${url} could not be read`);
    }
    if (text.length > MAX_DOCUMENT_CHARS) throw new IdentityError('jwks_unavailable', `${what} at ${url} is larger than 1 MiB`);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new IdentityError('jwks_unavailable', `${what} at ${url} is not JSON`);
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
      throw new IdentityError('jwks_unavailable', `${what} at ${url} is not a JSON object`);
    return doc;
  }
}
