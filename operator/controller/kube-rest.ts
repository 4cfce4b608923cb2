// A minimal Kubernetes REST client over node:http(s), configured by a client-node KubeConfig
// (its TLS material and authenticators, in-cluster token rotation included). The controller needs
// raw control over the watch stream (stall detection, bookmarks, 410 handling) that client-node's
// Watch does not give, and one small client serves list, get, apply and update alike.
import * as http from 'node:http';
import * as https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export class KubeApiError extends Error {
  readonly code = 'KUBE_API_ERROR';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export interface RequestOptions {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  contentType?: string;
  /** Accept header; `application/json` unless set (e.g. for PartialObjectMetadata). */
  accept?: string;
  signal?: AbortSignal;
}

export interface WatchEvent<T = unknown> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export interface WatchOptions {
  path: string;
  query: Record<string, string | undefined>;
  signal: AbortSignal;
  onEvent(ev: WatchEvent): void;
}

export interface KubeRest {
  request<T>(opts: RequestOptions): Promise<T>;
  /** Streams watch events; resolves when the server ends the stream or `signal` aborts it. */
  watch(opts: WatchOptions): Promise<void>;
}

const REQUEST_TIMEOUT_MS = 30_000;

export function createKubeRest(kc: KubeConfig): KubeRest {
  async function open(opts: {
    method: string;
    path: string;
    query?: Record<string, string | undefined>;
    contentType?: string;
    accept?: string;
    signal?: AbortSignal;
  }): Promise<http.ClientRequest> {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const url = new URL(cluster.server.replace(/\/$/, '') + opts.path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const options: https.RequestOptions = { method: opts.method, headers: { accept: opts.accept ?? 'application/json' } };
    await kc.applyToHTTPSOptions(options);
    // client-node builds a fresh agent per call; the default agent pools connections instead.
    delete options.agent;
    if (opts.contentType) (options.headers as Record<string, string>)['content-type'] = opts.contentType;
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, options);
    // Not the `signal` option: its AbortError can surface as an unhandled 'error' once the response
    // has ended; a plain destroy() ends the exchange quietly and the caller knows why.
    const signal = opts.signal;
    if (signal) {
      const onAbort = (): void => void req.destroy();
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    return req;
  }

  return {
    async request<T>(opts: RequestOptions): Promise<T> {
      const req = await open(opts);
      req.setTimeout(REQUEST_TIMEOUT_MS, () =>
        req.destroy(new Error(`${opts.method} ${opts.path}: no answer within ${REQUEST_TIMEOUT_MS} ms`)),
      );
      const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      return new Promise<T>((resolve, reject) => {
        let answered = false;
        let ended = false;
        const cut = (): void => reject(new Error(`${opts.method} ${opts.path}: connection closed before the answer was complete`));
        req.on('error', reject);
        req.on('close', () => answered || cut());
        req.on('response', (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('close', () => ended || cut());
          res.on('end', () => {
            ended = true;
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              try {
                resolve((text ? JSON.parse(text) : {}) as T);
              } catch {
                reject(new KubeApiError(status, 'BadResponse', `${opts.method} ${opts.path}: response is not JSON`));
              }
            } else reject(apiError(status, text, `${opts.method} ${opts.path}`));
          });
        });
        req.end(body);
      });
    },

    async watch(opts: WatchOptions): Promise<void> {
      const req = await open({ method: 'GET', path: opts.path, query: { ...opts.query, watch: 'true' }, signal: opts.signal });
      return new Promise<void>((resolve, reject) => {
        let answered = false;
        req.on('error', (err: Error) => (opts.signal.aborted ? resolve() : reject(err)));
        req.on('close', () => answered || (opts.signal.aborted ? resolve() : reject(new Error(`watch ${opts.path}: connection closed`))));
        req.on('response', (res) => {
          answered = true;
          const status = res.statusCode ?? 0;
          if (status !== 200) {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => reject(apiError(status, Buffer.concat(chunks).toString('utf8'), `watch ${opts.path}`)));
            return;
          }
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buf += chunk;
            let i: number;
            while ((i = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, i).trim();
              buf = buf.slice(i + 1);
              if (line === '') continue;
              let ev: WatchEvent;
              try {
                ev = JSON.parse(line) as WatchEvent;
              } catch {
                req.destroy();
                reject(new Error(`watch ${opts.path}: undecodable event`));
                return;
              }
              opts.onEvent(ev);
            }
          });
          res.on('end', () => resolve());
          res.on('error', (err) => (opts.signal.aborted ? resolve() : reject(err)));
          res.on('close', () => resolve());
        });
        req.end();
      });
    },
  };
}

function apiError(status: number, text: string, what: string): KubeApiError {
  try {
    const s = JSON.parse(text) as { reason?: string; message?: string };
    return new KubeApiError(status, s.reason ?? 'Unknown', `${what}: ${s.message ?? `HTTP ${status}`}`);
  } catch {
    return new KubeApiError(status, 'Unknown', `${what}: HTTP ${status}`);
  }
}

export function isNotFound(e: unknown): boolean {
  return e instanceof KubeApiError && e.status === 404;
}

export function isConflict(e: unknown): boolean {
  return e instanceof KubeApiError && e.status === 409;
}
