// The cluster's service-account issuer and keys for spec.identity.kubernetes, fetched from the API
// server the operator already talks to: GET /.well-known/openid-configuration (the issuer) and
// GET /openid/v1/jwks (the keys), both non-resource URLs that the chart's ClusterRole grants (the
// API server's default system:service-account-issuer-discovery binding grants them to every
// service account too). The paths are kube-apiserver's own: the discovery document's jwks_uri is
// never followed (it may name an external address, or anything a compromised document says).
//
// Fetched only once a policy asks (a cluster without spec.identity.kubernetes never sees these
// requests), kept for refreshMs, retried retryMs after a failure, and the last good document is
// kept through failures: a passing API server hiccup never takes the keys away from sidecars.
// Concurrent callers share one fetch.
import { renderClusterKeys } from '../../common/identity/cluster-keys';
import type { Logger } from '../../common/log';
import type { KubeRest } from './kube-rest';

export const DISCOVERY_PATH = '/.well-known/openid-configuration';
export const JWKS_PATH = '/openid/v1/jwks';
export const DEFAULT_KEYS_REFRESH_MS = 5 * 60_000;
export const DEFAULT_KEYS_RETRY_MS = 30_000;

export interface ClusterKeysState {
  /** The cluster-keys document (common/identity/cluster-keys.ts), when one was ever fetched. */
  document?: string;
  /** Why the latest fetch failed; undefined after a success. */
  error?: string;
}

export interface ClusterKeysSourceOptions {
  rest: KubeRest;
  log: Logger;
  now?: () => number;
  refreshMs?: number;
  retryMs?: number;
  /** Tests with an http:// issuer on loopback. */
  allowInsecureLoopback?: boolean;
}

export class ClusterKeysSource {
  private state: ClusterKeysState = {};
  private fetchedAt = -Infinity;
  private inflight?: Promise<ClusterKeysState>;
  private readonly now: () => number;
  readonly refreshMs: number;
  readonly retryMs: number;

  constructor(private readonly opts: ClusterKeysSourceOptions) {
    this.now = opts.now ?? Date.now;
    this.refreshMs = opts.refreshMs ?? DEFAULT_KEYS_REFRESH_MS;
    this.retryMs = opts.retryMs ?? DEFAULT_KEYS_RETRY_MS;
  }

  /** Whether a policy ever asked (the periodic refresh runs only then). */
  get wanted(): boolean {
    return this.fetchedAt !== -Infinity || this.inflight !== undefined;
  }

  /** The keys: fetched when older than refreshMs, or retryMs after a failure. */
  get(): Promise<ClusterKeysState> {
    const age = this.now() - this.fetchedAt;
    if (age < (this.state.error === undefined ? this.refreshMs : this.retryMs)) return Promise.resolve(this.state);
    return this.refresh();
  }

  /** Fetches now (concurrent callers share it); never rejects. */
  refresh(): Promise<ClusterKeysState> {
    this.inflight ??= this.fetch().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async fetch(): Promise<ClusterKeysState> {
    try {
      const discovery = await this.opts.rest.request<unknown>({ method: 'GET', path: DISCOVERY_PATH });
      const jwks = await this.opts.rest.request<unknown>({
        method: 'GET',
        path: JWKS_PATH,
        accept: 'application/jwk-set+json, application/json',
      });
      const document = renderClusterKeys(discovery, jwks, this.opts.allowInsecureLoopback === true);
      if (document !== this.state.document) this.opts.log.info('cluster service-account keys fetched', { keys: keyIds(document) });
      this.state = { document };
    } catch (e) {
      const error = `cannot read the cluster's service-account issuer and keys (GET ${DISCOVERY_PATH}, ${JWKS_PATH}): ${(e as Error).message}`;
      if (error !== this.state.error) this.opts.log.warn('cluster service-account keys unavailable', { error });
      this.state = { document: this.state.document, error };
    }
    this.fetchedAt = this.now();
    return this.state;
  }
}

function keyIds(document: string): string[] {
  return (JSON.parse(document) as { jwks: { keys: Array<{ kid: string }> } }).jwks.keys.map((k) => k.kid);
}
