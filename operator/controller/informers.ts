// List/watch informers: a local cache of one resource kind kept current from the API server.
//
// Why not client-node's makeInformer/ListWatch: its Watch builds a 30 s AbortSignal timeout and
// then overwrites it, so a watch that goes silent (half-open TCP after a load-balancer or API
// server failover) is never noticed; it never asks for bookmarks, so every reconnect after a
// quiet period risks 410 and a full re-list; and any error other than 410 (connection refused
// while the API server restarts) fires `error` and stops for good, leaving restart and backoff to
// the caller. This loop handles all three:
// - list, then watch from the list's resourceVersion with allowWatchBookmarks;
// - a watch silent for longer than stallTimeoutMs is aborted and resumed from the last
//   resourceVersion (bookmarks keep a healthy watch talking);
// - 410 Gone (ERROR event or HTTP status) → re-list, and the cache is diffed against the new list
//   so changes and deletions missed in between still come out as update/delete events;
// - any other failure → retry with exponential backoff; the cache keeps serving meanwhile.
import type { Logger } from '../../common/log';
import { KubeApiError, type KubeRest, type WatchEvent } from './kube-rest';
import type { KubeObject } from './types';

export type InformerEvent = 'add' | 'update' | 'delete';
export type InformerHandler<T> = (type: InformerEvent, obj: T, old?: T) => void;

export interface InformerOptions<T extends KubeObject> {
  rest: KubeRest;
  /** The collection path: /api/v1/pods, /apis/agentwarden.io/v1alpha1/accesspolicies, ... */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  log: Logger;
  /** Keep only what the controller needs (saves memory on large clusters). */
  transform?: (obj: KubeObject) => T;
  /** A watch silent this long is restarted. Bookmarks arrive about once a minute on a real API server. */
  stallTimeoutMs?: number;
  /** Server-side watch timeout, so connections rotate even when all is well. */
  watchTimeoutSeconds?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

const key = (o: KubeObject): string => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

class GoneError extends Error {}

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: Array<InformerHandler<T>> = [];
  private resourceVersion = '';
  private synced = false;
  private stopped = true;
  private abort?: AbortController;
  private loop?: Promise<void>;
  private syncWaiters: Array<() => void> = [];
  private sleepTimer?: { timer: NodeJS.Timeout; resolve: () => void };
  /** Counters for tests and metrics. */
  readonly stats = { lists: 0, watches: 0, stalls: 0, gone: 0, errors: 0 };

  constructor(private readonly opts: InformerOptions<T>) {}

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    if (this.sleepTimer) {
      clearTimeout(this.sleepTimer.timer);
      this.sleepTimer.resolve();
    }
    await this.loop;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.cache.get(`${namespace ?? ''}/${name}`);
  }

  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  private async run(): Promise<void> {
    let backoff = this.opts.backoffInitialMs ?? 200;
    const max = this.opts.backoffMaxMs ?? 30_000;
    while (!this.stopped) {
      try {
        if (!this.resourceVersion) await this.relist();
        const outcome = await this.watchOnce();
        if (outcome === 'progressed') backoff = this.opts.backoffInitialMs ?? 200;
        else if (outcome === 'empty') {
          // ended at once without a word: do not spin on a server that closes every watch
          await this.sleep(backoff);
          backoff = Math.min(max, backoff * 2);
        }
      } catch (e) {
        if (this.stopped) break;
        if (e instanceof GoneError || (e instanceof KubeApiError && e.status === 410)) {
          this.stats.gone++;
          this.opts.log.info('watch expired (410 Gone): re-listing', { path: this.opts.path });
          this.resourceVersion = '';
          continue;
        }
        this.stats.errors++;
        this.opts.log.warn('list/watch failed: retrying', { path: this.opts.path, error: (e as Error).message, retryInMs: backoff });
        await this.sleep(backoff);
        backoff = Math.min(max, backoff * 2);
      }
    }
  }

  private async relist(): Promise<void> {
    const list = await this.opts.rest.request<{ metadata?: { resourceVersion?: string }; items?: KubeObject[] }>({
      method: 'GET',
      path: this.opts.path,
      query: { labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector },
    });
    this.stats.lists++;
    const fresh = new Map<string, T>();
    for (const raw of list.items ?? []) {
      const obj = this.transform(raw);
      fresh.set(key(obj), obj);
    }
    // Diff against the cache: what changed or vanished while we were not watching still shows.
    for (const [k, old] of [...this.cache]) {
      if (!fresh.has(k)) {
        this.cache.delete(k);
        this.emit('delete', old);
      }
    }
    for (const [k, obj] of fresh) {
      const old = this.cache.get(k);
      this.cache.set(k, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit('update', obj, old);
    }
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  /** One watch connection: whether it delivered anything or stalled. Throws GoneError on 410. */
  private async watchOnce(): Promise<'progressed' | 'stalled' | 'empty'> {
    const abort = new AbortController();
    this.abort = abort;
    const stallMs = this.opts.stallTimeoutMs ?? 90_000;
    let progressed = false;
    let stalled = false;
    let gone = false;
    let failure: Error | undefined;
    let stallTimer: NodeJS.Timeout | undefined;
    const armStall = (): void => {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => {
        this.stats.stalls++;
        stalled = true;
        this.opts.log.warn('watch silent too long: restarting it', { path: this.opts.path, silentMs: stallMs });
        abort.abort();
      }, stallMs);
    };
    armStall();
    this.stats.watches++;
    try {
      await this.opts.rest.watch({
        path: this.opts.path,
        query: {
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: 'true',
          labelSelector: this.opts.labelSelector,
          fieldSelector: this.opts.fieldSelector,
          timeoutSeconds: String(this.opts.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300)),
        },
        signal: abort.signal,
        onEvent: (ev) => {
          if (failure || gone) return;
          armStall();
          progressed = true;
          try {
            if (this.handle(ev) === 'gone') gone = true;
          } catch (e) {
            failure = e as Error;
          }
          if (gone || failure) abort.abort();
        },
      });
    } finally {
      clearTimeout(stallTimer);
    }
    if (gone) throw new GoneError();
    if (failure) throw failure;
    return progressed ? 'progressed' : stalled ? 'stalled' : 'empty';
  }

  private handle(ev: WatchEvent): 'gone' | undefined {
    if (ev.type === 'ERROR') {
      const status = ev.object as { code?: number; message?: string };
      if (status.code === 410) return 'gone';
      throw new KubeApiError(status.code ?? 500, 'WatchError', `watch ${this.opts.path}: ${status.message ?? 'error event'}`);
    }
    const raw = ev.object as KubeObject;
    const rv = raw?.metadata?.resourceVersion;
    if (ev.type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return undefined;
    }
    const obj = this.transform(raw);
    const k = key(obj);
    const old = this.cache.get(k);
    if (ev.type === 'DELETED') {
      this.cache.delete(k);
      this.emit('delete', old ?? obj);
    } else {
      this.cache.set(k, obj);
      this.emit(old ? 'update' : 'add', obj, old);
    }
    if (rv) this.resourceVersion = rv;
    return undefined;
  }

  private transform(raw: KubeObject): T {
    return this.opts.transform ? this.opts.transform(raw) : (raw as T);
  }

  private emit(type: InformerEvent, obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        h(type, obj, old);
      } catch (e) {
        this.opts.log.error('informer handler failed', { path: this.opts.path, error: (e as Error).message });
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleepTimer = undefined;
        resolve();
      }, ms);
      this.sleepTimer = { timer, resolve };
    });
  }
}
