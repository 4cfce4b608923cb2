// A small in-process Kubernetes API server for tests (there is no real one on these machines).
// It speaks the real REST wire format over HTTP on port 0 so that real client code
// (@kubernetes/client-node, our own list/watch loop) runs unchanged against it:
// - discovery (/api, /api/v1, /apis, /apis/G/V), list (`kind: XList`, metadata.resourceVersion,
//   labelSelector / fieldSelector), get, create (generateName, uid, creationTimestamp,
//   resourceVersion, generation), replace (resourceVersion conflict → 409), delete;
// - patch: application/json-patch+json, merge-patch+json, strategic-merge-patch+json (treated as a
//   merge patch) and apply-patch+yaml (server-side apply, see fake-apply.ts);
// - /status subresources: spec changes bump metadata.generation, status changes do not, and the
//   main resource ignores status writes;
// - watch (`?watch=1&resourceVersion=N&allowWatchBookmarks=true&timeoutSeconds=S`): newline-
//   delimited JSON events ADDED / MODIFIED / DELETED / BOOKMARK, and ERROR with a Status 410
//   "Expired" when N is older than the history it keeps; objects entering or leaving a selector
//   arrive as ADDED / DELETED, as the real watch cache sends them;
// - no-op writes do not bump resourceVersion (controllers rely on that to avoid hot loops).
// Test hooks: compactHistory(), stallWatches(), restart(), requests (a log), put()/object().
// Left out: finalizers and deletionTimestamp, garbage collection of owned objects, namespace
// existence checks, pagination (limit/continue: everything comes in one page), authn/authz.
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { applyPatch, type Operation } from 'fast-json-patch';
import { parse as parseYaml } from 'yaml';
import { KubeConfig } from '@kubernetes/client-node';
import { isObj, serverSideApply, type Obj } from './fake-apply';
import { fieldValue, matchRequirements, parseFieldSelector, parseLabelSelector, type Requirement } from './fake-selectors';

export interface ResourceDef {
  group: string; // '' for the core group
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  /** Has a /status subresource. */
  status?: boolean;
  /** Custom resources require metadata.resourceVersion on PUT; most built-in kinds do not. */
  requireResourceVersionOnUpdate?: boolean;
  /** DELETE answers with the deleted object (pods, custom resources) rather than a Status. */
  returnDeletedObject?: boolean;
}

export const DEFAULT_RESOURCES: ResourceDef[] = [
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, status: true },
  { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true, status: true, returnDeletedObject: true },
  { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
  { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true },
  { group: 'events.k8s.io', version: 'v1', plural: 'events', kind: 'Event', namespaced: true },
  { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true },
  {
    group: 'agentwarden.io',
    version: 'v1alpha1',
    plural: 'accesspolicies',
    kind: 'AccessPolicy',
    namespaced: true,
    status: true,
    requireResourceVersionOnUpdate: true,
    returnDeletedObject: true,
  },
  {
    group: 'agentwarden.io',
    version: 'v1alpha1',
    plural: 'approvalrequests',
    kind: 'ApprovalRequest',
    namespaced: true,
    status: true,
    requireResourceVersionOnUpdate: true,
    returnDeletedObject: true,
  },
];

export interface FakeApiServerOptions {
  resources?: ResourceDef[];
  /** Watch events kept for resuming watches; older resourceVersions get 410 Expired. */
  historyLimit?: number;
  /** How often watches that asked for bookmarks get one. */
  bookmarkIntervalMs?: number;
  host?: string;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  status: number;
  watch: boolean;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEvent {
  rv: number;
  res: ResourceDef;
  type: EventType;
  object: Obj;
  /** The object before a MODIFIED, for selector transitions. */
  previous?: Obj;
}

interface Watcher {
  res: ResourceDef;
  namespace?: string;
  labels: Requirement[];
  fields: Requirement[];
  out: http.ServerResponse;
  stalled: boolean;
  timers: NodeJS.Timeout[];
}

interface Target {
  res: ResourceDef;
  namespace?: string;
  name?: string;
  subresource?: string;
}

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Obj,
  ) {
    super(message);
  }
}

const resKey = (r: ResourceDef): string => `${r.group}/${r.plural}`;
const apiVersionOf = (r: ResourceDef): string => (r.group ? `${r.group}/${r.version}` : r.version);
const objKey = (ns: string | undefined, name: string): string => `${ns ?? ''}/${name}`;
const meta = (o: Obj): Obj => (isObj(o.metadata) ? o.metadata : (o.metadata = {})) as Obj;

function statusBody(code: number, reason: string, message: string, details?: Obj): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

/** Everything but metadata and status: a change here bumps metadata.generation. */
function specPart(o: Obj): string {
  const { metadata: _m, status: _s, ...rest } = o;
  return JSON.stringify(rest);
}

/** Equality that ignores resourceVersion and managedFields timestamps (no-op write detection). */
function sameContent(a: Obj, b: Obj): boolean {
  const norm = (o: Obj): string => {
    const c = structuredClone(o);
    const m = meta(c);
    delete m.resourceVersion;
    if (Array.isArray(m.managedFields)) for (const e of m.managedFields as Obj[]) delete e.time;
    return JSON.stringify(c);
  };
  return norm(a) === norm(b);
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}

export class FakeApiServer {
  readonly requests: RequestLogEntry[] = [];
  /** Non-resource GET paths (e.g. /.well-known/openid-configuration), answered by their handler. */
  readonly nonResource = new Map<string, (res: http.ServerResponse) => void>();
  private readonly resources: ResourceDef[];
  private readonly objects = new Map<string, Map<string, Obj>>();
  private history: HistoryEvent[] = [];
  /** Watches from a resourceVersion below this get 410 Expired. */
  private oldestResumable = 0;
  private rv = 1000;
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private server: http.Server;
  private port = 0;
  private readonly historyLimit: number;
  private readonly bookmarkIntervalMs: number;
  private readonly host: string;

  private constructor(opts: FakeApiServerOptions) {
    this.resources = opts.resources ?? DEFAULT_RESOURCES;
    this.historyLimit = opts.historyLimit ?? 1000;
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 1000;
    this.host = opts.host ?? '127.0.0.1';
    for (const r of this.resources) this.objects.set(resKey(r), new Map());
    this.server = this.createServer();
  }

  static async start(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const fake = new FakeApiServer(opts);
    await fake.listen(0);
    return fake;
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** A client-node KubeConfig pointing at this server (plain HTTP, a dummy bearer token). */
  kubeConfig(namespace = 'default'): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'fake', token: 'fake-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'fake', namespace }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** The current resourceVersion (etcd revision). */
  get resourceVersion(): string {
    return String(this.rv);
  }

  // ---- test hooks ----

  /** Forgets the watch history: any watch from an older resourceVersion now gets 410 Expired. */
  compactHistory(): void {
    this.history = [];
    this.oldestResumable = this.rv;
  }

  /** Keeps every open watch connection open but sends nothing more on it (new watches work). */
  stallWatches(): void {
    for (const w of this.watchers) w.stalled = true;
  }

  /** Drops every connection and listens again on the same port; objects survive (etcd does). */
  async restart(opts: { downMs?: number; compact?: boolean } = {}): Promise<void> {
    await this.shutdown();
    if (opts.compact) this.compactHistory();
    if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
    this.server = this.createServer();
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.shutdown();
  }

  /**
   * Stores an object directly, status included, as if someone had written it (create or update;
   * no admission, no conflict check). On update, uid and creationTimestamp are kept and generation
   * moves as the server moves it. Returns the stored object.
   */
  put(obj: Obj): Obj {
    const res = this.resourceFor(String(obj.apiVersion), String(obj.kind));
    const m = meta(obj);
    const existing = this.objects.get(resKey(res))!.get(objKey(m.namespace as string | undefined, String(m.name)));
    if (!existing) return this.insert(res, structuredClone(obj));
    const next = structuredClone(obj);
    const em = meta(existing);
    // the server owns identity and generation: a spec change bumps it, as on any write
    Object.assign(meta(next), {
      uid: em.uid,
      creationTimestamp: em.creationTimestamp,
      generation: specPart(next) !== specPart(existing) ? Number(em.generation ?? 1) + 1 : em.generation,
    });
    return this.commit(res, existing, next);
  }

  /** The stored object, or undefined. */
  object(apiVersion: string, kind: string, namespace: string | undefined, name: string): Obj | undefined {
    const res = this.resourceFor(apiVersion, kind);
    const o = this.objects.get(resKey(res))!.get(objKey(res.namespaced ? namespace : undefined, name));
    return o ? structuredClone(o) : undefined;
  }

  /** Every stored object of a kind (optionally of one namespace), copies. */
  objectsOf(apiVersion: string, kind: string, namespace?: string): Obj[] {
    const res = this.resourceFor(apiVersion, kind);
    return [...this.store(res).values()]
      .filter((o) => namespace === undefined || meta(o).namespace === namespace)
      .map((o) => structuredClone(o));
  }

  /** Deletes directly (no request), sending the watch event. */
  remove(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean {
    const res = this.resourceFor(apiVersion, kind);
    const store = this.objects.get(resKey(res))!;
    const key = objKey(res.namespaced ? namespace : undefined, name);
    const o = store.get(key);
    if (!o) return false;
    this.deleteStored(res, key, o);
    return true;
  }

  /** Number of open watch connections (optionally for one plural). */
  watchCount(plural?: string): number {
    return [...this.watchers].filter((w) => plural === undefined || w.res.plural === plural).length;
  }

  // ---- HTTP plumbing ----

  private createServer(): http.Server {
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) this.sendError(res, new ApiError(500, 'InternalError', err.message));
        else res.destroy();
      });
    });
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    return server;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, this.host, () => {
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private async shutdown(): Promise<void> {
    for (const w of this.watchers) this.endWatch(w, false);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams.entries());
    const body = await readBody(req);
    const watch = req.method === 'GET' && (query.watch === 'true' || query.watch === '1');
    const entry: RequestLogEntry = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      contentType: req.headers['content-type'],
      status: 200,
      watch,
    };
    this.requests.push(entry);
    res.on('finish', () => (entry.status = res.statusCode));
    try {
      const extra = req.method === 'GET' ? this.nonResource.get(url.pathname) : undefined;
      if (extra) return extra(res);
      const discovery = this.discovery(url.pathname);
      if (discovery) return sendJson(res, 200, discovery);
      const target = this.route(url.pathname);
      if (watch) return this.startWatch(target, query, res);
      const [code, out] = this.dispatch(req.method ?? 'GET', target, query, body, String(req.headers['content-type'] ?? ''));
      sendJson(res, code, out);
    } catch (e) {
      if (e instanceof ApiError) this.sendError(res, e);
      else throw e;
    }
  }

  private sendError(res: http.ServerResponse, e: ApiError): void {
    sendJson(res, e.code, statusBody(e.code, e.reason, e.message, e.details));
  }

  private discovery(path: string): Obj | undefined {
    if (path === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
    if (path === '/apis') {
      const groups = [...new Set(this.resources.filter((r) => r.group).map((r) => `${r.group}/${r.version}`))].map((gv) => {
        const [group, version] = gv.split('/');
        const v = { groupVersion: gv, version };
        return { name: group, versions: [v], preferredVersion: v };
      });
      return { kind: 'APIGroupList', apiVersion: 'v1', groups };
    }
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/?$/.exec(path);
    if (!m) return undefined;
    const group = m[1] ? '' : m[2];
    const version = m[1] ?? m[3];
    const rs = this.resources.filter((r) => r.group === group && r.version === version);
    if (rs.length === 0) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    const verbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
    const resources = rs.flatMap((r) => [
      { name: r.plural, singularName: r.kind.toLowerCase(), namespaced: r.namespaced, kind: r.kind, verbs },
      ...(r.status
        ? [{ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] }]
        : []),
    ]);
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
  }

  private route(path: string): Target {
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/(.+?)\/?$/.exec(path);
    if (!m) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    const group = m[1] ? '' : m[2];
    const version = m[1] ?? m[3];
    const segs = m[4].split('/').map(decodeURIComponent);
    const find = (plural: string, namespaced: boolean): ResourceDef | undefined =>
      this.resources.find((r) => r.group === group && r.version === version && r.plural === plural && r.namespaced === namespaced);
    if (segs[0] === 'namespaces' && segs.length >= 3) {
      const res = find(segs[2], true);
      if (res && segs.length <= 5) return { res, namespace: segs[1], name: segs[3], subresource: segs[4] };
    }
    const res = find(segs[0], false) ?? find(segs[0], true);
    if (!res || segs.length > 3) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    return { res, name: segs[1], subresource: segs[2] };
  }

  private dispatch(method: string, t: Target, query: Record<string, string>, body: string, contentType: string): [number, Obj] {
    if (t.subresource !== undefined && (t.subresource !== 'status' || !t.res.status)) {
      throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${t.res.plural}/${t.subresource})`);
    }
    if (t.name === undefined) {
      if (method === 'GET') return [200, this.list(t, query)];
      if (method === 'POST') return [201, this.create(t, parseJson(body), query)];
      throw new ApiError(405, 'MethodNotAllowed', `${method} is not supported on a collection`);
    }
    switch (method) {
      case 'GET':
        return [200, structuredClone(this.mustGet(t))];
      case 'PUT':
        return [200, this.replace(t, parseJson(body), query)];
      case 'PATCH':
        return this.patch(t, body, contentType.split(';')[0].trim(), query);
      case 'DELETE':
        return [200, this.delete(t)];
      default:
        throw new ApiError(405, 'MethodNotAllowed', `${method} is not supported`);
    }
  }

  // ---- verbs ----

  private store(res: ResourceDef): Map<string, Obj> {
    return this.objects.get(resKey(res))!;
  }

  private mustGet(t: Target): Obj {
    const o = this.store(t.res).get(objKey(t.namespace, t.name!));
    if (!o) throw notFound(t.res, t.name!);
    return o;
  }

  private list(t: Target, query: Record<string, string>): Obj {
    const labels = parseSelector(query.labelSelector, parseLabelSelector);
    const fields = parseSelector(query.fieldSelector, parseFieldSelector);
    const items = [...this.store(t.res).values()]
      .filter((o) => this.matches({ res: t.res, namespace: t.namespace, labels, fields }, o))
      .sort((a, b) =>
        objKey(meta(a).namespace as string, String(meta(a).name)).localeCompare(objKey(meta(b).namespace as string, String(meta(b).name))),
      )
      .map((o) => structuredClone(o));
    return { kind: `${t.res.kind}List`, apiVersion: apiVersionOf(t.res), metadata: { resourceVersion: String(this.rv) }, items };
  }

  private create(t: Target, obj: Obj, query: Record<string, string>): Obj {
    const m = meta(obj);
    this.checkKind(t.res, obj);
    if (t.res.namespaced) {
      if (m.namespace !== undefined && m.namespace !== t.namespace) {
        throw new ApiError(
          400,
          'BadRequest',
          `the namespace of the provided object (${String(m.namespace)}) does not match the namespace sent on the request (${t.namespace})`,
        );
      }
      m.namespace = t.namespace;
    }
    if (!m.name && typeof m.generateName === 'string') m.name = m.generateName + randomSuffix();
    if (!m.name) throw invalid(t.res, '', 'metadata.name: Required value: name or generateName is required');
    if (t.res.status) delete obj.status;
    if (this.store(t.res).has(objKey(t.namespace, String(m.name)))) {
      throw new ApiError(
        409,
        'AlreadyExists',
        `${t.res.plural}${t.res.group ? '.' + t.res.group : ''} "${String(m.name)}" already exists`,
        { name: m.name, group: t.res.group, kind: t.res.plural },
      );
    }
    if (query.dryRun === 'All') return obj;
    return structuredClone(this.insert(t.res, obj));
  }

  private replace(t: Target, obj: Obj, query: Record<string, string>): Obj {
    this.checkKind(t.res, obj);
    const existing = this.mustGet(t);
    const m = meta(obj);
    if (m.name !== t.name)
      throw new ApiError(400, 'BadRequest', `the name of the object (${String(m.name)}) does not match the name on the URL (${t.name})`);
    const rv = m.resourceVersion;
    if ((rv === undefined || rv === '') && t.res.requireResourceVersionOnUpdate) {
      throw invalid(t.res, t.name!, 'metadata.resourceVersion: Invalid value: 0x0: must be specified for an update');
    }
    if (rv !== undefined && rv !== '' && rv !== meta(existing).resourceVersion) throw conflict(t.res, t.name!);
    const next = this.merged(t, existing, obj);
    if (query.dryRun === 'All') return next;
    return structuredClone(this.commit(t.res, existing, next));
  }

  private patch(t: Target, body: string, contentType: string, query: Record<string, string>): [number, Obj] {
    if (contentType === 'application/apply-patch+yaml' || contentType === 'application/apply-patch+json') return this.apply(t, body, query);
    const existing = this.mustGet(t);
    let patched: Obj;
    if (contentType === 'application/json-patch+json') {
      try {
        patched = applyPatch(structuredClone(existing), parseJson(body) as unknown as Operation[], true, false).newDocument as Obj;
      } catch (e) {
        throw new ApiError(
          422,
          'Invalid',
          `the server rejected our request due to an error in our request: ${(e as Error).message.split('\n')[0]}`,
        );
      }
    } else if (contentType === 'application/merge-patch+json' || contentType === 'application/strategic-merge-patch+json') {
      patched = mergePatch(structuredClone(existing), parseJson(body)) as Obj;
    } else {
      throw new ApiError(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`,
      );
    }
    const pm = meta(patched);
    if (pm.name !== t.name || (t.res.namespaced && pm.namespace !== t.namespace))
      throw new ApiError(400, 'BadRequest', 'metadata.name and metadata.namespace cannot be changed by a patch');
    if (pm.resourceVersion !== undefined && pm.resourceVersion !== meta(existing).resourceVersion) throw conflict(t.res, t.name!);
    const next = this.merged(t, existing, patched);
    if (query.dryRun === 'All') return [200, next];
    return [200, structuredClone(this.commit(t.res, existing, next))];
  }

  private apply(t: Target, body: string, query: Record<string, string>): [number, Obj] {
    if (!query.fieldManager)
      throw invalid(t.res, t.name!, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
    let applied: unknown;
    try {
      applied = parseYaml(body);
    } catch (e) {
      throw new ApiError(400, 'BadRequest', `error decoding YAML: ${(e as Error).message.split('\n')[0]}`);
    }
    if (!isObj(applied)) throw new ApiError(400, 'BadRequest', 'apply patch must be an object');
    this.checkKind(t.res, applied, true);
    const am = meta(applied);
    if (am.name !== t.name)
      throw new ApiError(400, 'BadRequest', `the name of the object (${String(am.name)}) does not match the name on the URL (${t.name})`);
    if (t.res.namespaced) {
      if (am.namespace !== undefined && am.namespace !== t.namespace)
        throw new ApiError(400, 'BadRequest', 'the namespace of the object does not match the namespace on the URL');
      am.namespace = t.namespace;
    }
    const existing = this.store(t.res).get(objKey(t.namespace, t.name!));
    if (!existing && t.subresource === 'status') throw notFound(t.res, t.name!);
    if (t.res.status) {
      // Each endpoint owns its part: the main resource ignores status, /status everything else.
      if (t.subresource === 'status') {
        for (const k of Object.keys(applied)) if (!['apiVersion', 'kind', 'metadata', 'status'].includes(k)) delete applied[k];
        applied.metadata = { name: am.name, ...(am.namespace !== undefined ? { namespace: am.namespace } : {}) };
      } else delete applied.status;
    }
    const result = serverSideApply({
      existing,
      applied,
      manager: query.fieldManager,
      force: query.force === 'true',
      subresource: t.subresource,
      now: new Date().toISOString(),
    });
    if (!result.ok) {
      throw new ApiError(
        409,
        'Conflict',
        `Apply failed with ${result.conflicts.length} conflict${result.conflicts.length > 1 ? 's' : ''}: ${result.conflicts.join('; ')}`,
        { name: t.name, group: t.res.group, kind: t.res.plural },
      );
    }
    if (!existing) {
      if (query.dryRun === 'All') return [201, result.object];
      return [201, structuredClone(this.insert(t.res, result.object))];
    }
    const next = this.merged(t, existing, result.object);
    if (query.dryRun === 'All') return [200, next];
    return [200, structuredClone(this.commit(t.res, existing, next))];
  }

  private delete(t: Target): Obj {
    const key = objKey(t.namespace, t.name!);
    const existing = this.mustGet(t);
    const deleted = this.deleteStored(t.res, key, existing);
    if (t.res.returnDeletedObject) return structuredClone(deleted);
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Success',
      details: { name: t.name, group: t.res.group, kind: t.res.plural, uid: meta(existing).uid },
    };
  }

  // ---- storage ----

  /** The next stored form of `existing` after a write of `incoming` to the target endpoint. */
  private merged(t: Target, existing: Obj, incoming: Obj): Obj {
    let next: Obj;
    if (t.subresource === 'status') {
      next = { ...structuredClone(existing), status: structuredClone(incoming.status) };
      if (next.status === undefined) delete next.status;
      // managedFields of an apply to /status are recorded on the object too
      if (Array.isArray(meta(incoming).managedFields)) meta(next).managedFields = structuredClone(meta(incoming).managedFields);
    } else {
      next = structuredClone(incoming);
      if (t.res.status) {
        if (existing.status !== undefined) next.status = structuredClone(existing.status);
        else delete next.status;
      }
    }
    const m = meta(next);
    const em = meta(existing);
    for (const k of ['uid', 'creationTimestamp', 'generation', 'namespace', 'name']) if (em[k] !== undefined) m[k] = em[k];
    m.resourceVersion = em.resourceVersion;
    if (m.managedFields === undefined && em.managedFields !== undefined) m.managedFields = em.managedFields;
    if (specPart(next) !== specPart(existing)) m.generation = Number(em.generation ?? 1) + 1;
    return next;
  }

  private insert(res: ResourceDef, obj: Obj): Obj {
    const m = meta(obj);
    obj.apiVersion = apiVersionOf(res);
    obj.kind = res.kind;
    m.uid = m.uid ?? randomUUID();
    m.creationTimestamp = m.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    m.generation = m.generation ?? 1;
    m.resourceVersion = String(++this.rv);
    if (!res.namespaced) delete m.namespace;
    this.store(res).set(objKey(m.namespace as string | undefined, String(m.name)), obj);
    this.record({ rv: this.rv, res, type: 'ADDED', object: obj });
    return obj;
  }

  private commit(res: ResourceDef, existing: Obj, next: Obj): Obj {
    if (sameContent(existing, next)) return existing; // no-op: no new resourceVersion, no event
    meta(next).resourceVersion = String(++this.rv);
    const m = meta(next);
    this.store(res).set(objKey(m.namespace as string | undefined, String(m.name)), next);
    this.record({ rv: this.rv, res, type: 'MODIFIED', object: next, previous: existing });
    return next;
  }

  private deleteStored(res: ResourceDef, key: string, existing: Obj): Obj {
    this.store(res).delete(key);
    const deleted = structuredClone(existing);
    meta(deleted).resourceVersion = String(++this.rv);
    this.record({ rv: this.rv, res, type: 'DELETED', object: deleted });
    return deleted;
  }

  private record(ev: HistoryEvent): void {
    this.history.push(ev);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.oldestResumable = dropped[dropped.length - 1].rv;
    }
    for (const w of this.watchers) this.deliver(w, ev);
  }

  private checkKind(res: ResourceDef, obj: Obj, required = false): void {
    if ((obj.kind !== undefined || required) && obj.kind !== res.kind) {
      throw new ApiError(
        400,
        'BadRequest',
        `the object's kind "${String(obj.kind)}" does not match the resource ${res.plural} (${res.kind})`,
      );
    }
    if ((obj.apiVersion !== undefined || required) && obj.apiVersion !== apiVersionOf(res)) {
      throw new ApiError(400, 'BadRequest', `the object's apiVersion "${String(obj.apiVersion)}" does not match ${apiVersionOf(res)}`);
    }
  }

  private resourceFor(apiVersion: string, kind: string): ResourceDef {
    const res = this.resources.find((r) => apiVersionOf(r) === apiVersion && r.kind === kind);
    if (!res) throw new Error(`fake API server: no resource ${apiVersion} ${kind}`);
    return res;
  }

  // ---- watch ----

  private matches(w: { res: ResourceDef; namespace?: string; labels: Requirement[]; fields: Requirement[] }, o: Obj): boolean {
    const m = meta(o);
    if (w.namespace !== undefined && m.namespace !== w.namespace) return false;
    const labels = (isObj(m.labels) ? m.labels : {}) as Record<string, string>;
    return matchRequirements(w.labels, (k) => labels[k]) && matchRequirements(w.fields, (k) => fieldValue(o, k));
  }

  private startWatch(t: Target, query: Record<string, string>, res: http.ServerResponse): void {
    if (t.name !== undefined) throw new ApiError(405, 'MethodNotAllowed', 'watch a collection with fieldSelector=metadata.name=NAME');
    const w: Watcher = {
      res: t.res,
      namespace: t.namespace,
      labels: parseSelector(query.labelSelector, parseLabelSelector),
      fields: parseSelector(query.fieldSelector, parseFieldSelector),
      out: res,
      stalled: false,
      timers: [],
    };
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    const from = query.resourceVersion;
    if (from === undefined || from === '' || from === '0') {
      // No resourceVersion: the current state as synthetic ADDED events, then changes.
      for (const o of this.store(t.res).values()) if (this.matches(w, o)) write(res, { type: 'ADDED', object: o });
    } else {
      const n = Number(from);
      if (!Number.isFinite(n) || n < this.oldestResumable) {
        write(res, { type: 'ERROR', object: statusBody(410, 'Expired', `too old resource version: ${from} (${this.oldestResumable})`) });
        res.end();
        return;
      }
      for (const ev of this.history) if (ev.rv > n) this.deliver(w, ev);
    }
    this.watchers.add(w);
    res.on('close', () => this.endWatch(w, false));
    if (query.allowWatchBookmarks === 'true' || query.allowWatchBookmarks === '1') {
      const timer = setInterval(() => {
        if (!w.stalled)
          write(res, {
            type: 'BOOKMARK',
            object: { kind: t.res.kind, apiVersion: apiVersionOf(t.res), metadata: { resourceVersion: String(this.rv) } },
          });
      }, this.bookmarkIntervalMs);
      w.timers.push(timer);
    }
    const timeout = Number(query.timeoutSeconds);
    if (Number.isFinite(timeout) && timeout > 0) w.timers.push(setTimeout(() => this.endWatch(w, true), timeout * 1000));
  }

  private deliver(w: Watcher, ev: HistoryEvent): void {
    if (w.stalled || ev.res !== w.res) return;
    const now = this.matches(w, ev.object);
    const before = ev.type === 'MODIFIED' && ev.previous !== undefined ? this.matches(w, ev.previous) : now;
    let type: EventType | undefined;
    if (ev.type === 'MODIFIED') type = now && before ? 'MODIFIED' : now ? 'ADDED' : before ? 'DELETED' : undefined;
    else type = now ? ev.type : undefined;
    if (type) write(w.out, { type, object: ev.object });
  }

  private endWatch(w: Watcher, graceful: boolean): void {
    if (!this.watchers.delete(w)) return;
    for (const t of w.timers) clearTimeout(t);
    if (graceful) w.out.end();
    else w.out.destroy();
  }
}

function write(res: http.ServerResponse, ev: Obj): void {
  if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify(ev) + '\n');
}

function sendJson(res: http.ServerResponse, code: number, body: Obj): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(body: string): Obj {
  try {
    const v = JSON.parse(body) as unknown;
    if (isObj(v) || Array.isArray(v)) return v as Obj;
  } catch {
    // fall through
  }
  throw new ApiError(400, 'BadRequest', 'the request body is not a JSON object');
}

function parseSelector(s: string | undefined, parse: (s: string) => Requirement[]): Requirement[] {
  if (!s) return [];
  try {
    return parse(s);
  } catch (e) {
    throw new ApiError(400, 'BadRequest', (e as Error).message);
  }
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Obj = isObj(target) ? target : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function notFound(res: ResourceDef, name: string): ApiError {
  const gr = `${res.plural}${res.group ? '.' + res.group : ''}`;
  return new ApiError(404, 'NotFound', `${gr} "${name}" not found`, { name, group: res.group, kind: res.plural });
}

function conflict(res: ResourceDef, name: string): ApiError {
  const gr = `${res.plural}${res.group ? '.' + res.group : ''}`;
  return new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${gr} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, group: res.group, kind: res.plural },
  );
}

function invalid(res: ResourceDef, name: string, message: string): ApiError {
  return new ApiError(422, 'Invalid', `${res.kind} "${name}" is invalid: ${message}`, { name, group: res.group, kind: res.kind });
}
