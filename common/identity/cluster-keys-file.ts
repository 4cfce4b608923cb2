// The sidecar's copy of the cluster's issuer and keys (`spec.identity.kubernetes`): the file the
// operator writes into the policy ConfigMap (cluster-keys.ts says what it holds). The kubelet
// replaces a mounted ConfigMap's files by swapping a symlink, so the file is read again at most
// once a second (on a verification; no timer) and used as a whole: issuer and keys of one read.
// Fail closed: a missing, unreadable, oversized or invalid file refuses every token, and nothing
// from an earlier read is kept past a failed one.
import * as fs from 'node:fs';
import type * as Jose from 'jose';
import { MAX_CLUSTER_KEYS_BYTES, parseClusterKeys } from './cluster-keys';
import { IdentityError } from './errors';

type KeySet = ReturnType<typeof Jose.createLocalJWKSet>;

export interface ClusterKeysSnapshot {
  issuer: string;
  keys: KeySet;
}

export interface ClusterKeysFileOptions {
  now?: () => number;
  /** Least time between two reads of the file. Default 1 s. */
  rereadMs?: number;
  allowInsecureLoopback?: boolean;
}

export class ClusterKeysFile {
  private last?: { at: number; text?: string; result: ClusterKeysSnapshot | IdentityError };
  private readonly now: () => number;
  private readonly rereadMs: number;

  constructor(
    readonly path: string,
    private readonly createLocalJWKSet: typeof Jose.createLocalJWKSet,
    private readonly opts: ClusterKeysFileOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.rereadMs = opts.rereadMs ?? 1000;
  }

  /** Issuer and keys from the latest read; throws IdentityError (jwks_unavailable) when there are none. */
  snapshot(): ClusterKeysSnapshot {
    const t = this.now();
    if (!this.last || t - this.last.at >= this.rereadMs) this.last = this.read(t);
    if (this.last.result instanceof IdentityError) throw this.last.result;
    return this.last.result;
  }

  private read(at: number): { at: number; text?: string; result: ClusterKeysSnapshot | IdentityError } {
    let text: string;
    try {
      const fd = fs.openSync(this.path, 'r');
      try {
        // One byte past the limit tells an oversized file from one exactly at it, without reading it all.
        const buf = Buffer.alloc(MAX_CLUSTER_KEYS_BYTES + 1);
        const n = fs.readSync(fd, buf, 0, buf.length, 0);
        if (n > MAX_CLUSTER_KEYS_BYTES) return { at, result: this.unavailable(`is larger than ${MAX_CLUSTER_KEYS_BYTES} bytes`) };
        text = buf.subarray(0, n).toString('utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return { at, result: this.unavailable(code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? 'error'})`) };
    }
    // Unchanged content: keep the parsed keys (and jose's imported-key cache with them).
    if (this.last?.text === text && !(this.last.result instanceof IdentityError)) return { at, text, result: this.last.result };
    try {
      const doc = parseClusterKeys(text, this.opts.allowInsecureLoopback === true);
      return { at, text, result: { issuer: doc.issuer, keys: this.createLocalJWKSet(doc.jwks as unknown as Jose.JSONWebKeySet) } };
    } catch (e) {
      return { at, result: this.unavailable(`is invalid: ${(e as Error).message}`) };
    }
  }

  private unavailable(why: string): IdentityError {
    return new IdentityError(
      'jwks_unavailable',
      `the cluster's service-account keys are not available: ${this.path} ${why} (the operator writes it into the policy's ConfigMap; see its Ready condition)`,
    );
  }
}
