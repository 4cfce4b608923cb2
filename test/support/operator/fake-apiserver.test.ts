// The fake API server, driven by the real @kubernetes/client-node clients and by raw HTTP for the
// watch wire format, so other suites can trust what it says.
import * as http from 'node:http';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { FakeApiServer } from './fake-apiserver';

const AP = { group: 'agentwarden.io', version: 'v1alpha1', plural: 'accesspolicies' };

function policy(name: string, spec: Record<string, unknown> = { targets: [] }): Record<string, unknown> {
  return { apiVersion: 'agentwarden.io/v1alpha1', kind: 'AccessPolicy', metadata: { name, namespace: 'agents' }, spec };
}

interface WatchLine {
  type: string;
  object: { kind?: string; code?: number; reason?: string; metadata: { name?: string; resourceVersion: string } };
}

/** Opens a raw watch and collects its newline-delimited JSON events. */
function rawWatch(fake: FakeApiServer, path: string): { events: WatchLine[]; ended: Promise<void>; close(): void } {
  const events: WatchLine[] = [];
  let req!: http.ClientRequest;
  const ended = new Promise<void>((resolve) => {
    req = http.get(fake.url + path, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buf.slice(0, i)) as WatchLine);
          buf = buf.slice(i + 1);
        }
      });
      res.on('end', () => resolve());
      res.on('error', () => resolve());
      res.on('close', () => resolve());
    });
    req.on('error', () => resolve());
  });
  return { events, ended, close: () => req.destroy() };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (e) {
    if (e instanceof ApiException) return e.code;
    throw e;
  }
}

describe('FakeApiServer', () => {
  let fake: FakeApiServer;
  beforeEach(async () => {
    fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
  });
  afterEach(async () => {
    await fake.close();
  });

  it('serves core objects to CoreV1Api: create with generateName, list by label, get 404', async () => {
    const core = fake.kubeConfig().makeApiClient(CoreV1Api);
    const pod = await core.createNamespacedPod({
      namespace: 'agents',
      body: { metadata: { generateName: 'agent-', labels: { app: 'a' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } },
    });
    expect(pod.metadata?.name).toMatch(/^agent-[a-z0-9]{5}$/);
    expect(pod.metadata?.uid).toBeTruthy();
    expect(pod.metadata?.resourceVersion).toBeTruthy();
    await core.createNamespacedPod({
      namespace: 'agents',
      body: { metadata: { name: 'other', labels: { app: 'b' } }, spec: { containers: [] } },
    });
    const list = await core.listNamespacedPod({ namespace: 'agents', labelSelector: 'app in (a)' });
    expect(list.items.map((p) => p.metadata?.name)).toEqual([pod.metadata?.name]);
    expect(list.metadata?.resourceVersion).toBe(fake.resourceVersion);
    const byField = await core.listPodForAllNamespaces({ fieldSelector: 'metadata.name=other' });
    expect(byField.items).toHaveLength(1);
    expect(await status(core.readNamespacedConfigMap({ name: 'nope', namespace: 'agents' }))).toBe(404);
    expect(
      await status(core.createNamespacedPod({ namespace: 'agents', body: { metadata: { name: 'other' }, spec: { containers: [] } } })),
    ).toBe(409);
  });

  it('keeps status and spec apart on a custom resource with a /status subresource', async () => {
    const co = fake.kubeConfig().makeApiClient(CustomObjectsApi);
    const created = (await co.createNamespacedCustomObject({
      ...AP,
      namespace: 'agents',
      body: { ...policy('p'), status: { governedPods: 9 } },
    })) as KubernetesObject & { status?: unknown };
    expect(created.metadata?.generation).toBe(1);
    expect(created.status).toBeUndefined(); // status is ignored on create

    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    const withStatus = (await co.patchNamespacedCustomObjectStatus(
      { ...AP, namespace: 'agents', name: 'p', body: { status: { governedPods: 2 } } },
      merge,
    )) as { metadata: { generation: number }; status: unknown };
    expect(withStatus.status).toEqual({ governedPods: 2 });
    expect(withStatus.metadata.generation).toBe(1);

    const specChanged = (await co.patchNamespacedCustomObject({
      ...AP,
      namespace: 'agents',
      name: 'p',
      body: [{ op: 'add', path: '/spec/defaultAction', value: 'deny' }],
    })) as {
      metadata: { generation: number; resourceVersion: string };
      status: unknown;
    };
    expect(specChanged.metadata.generation).toBe(2);
    expect(specChanged.status).toEqual({ governedPods: 2 });

    // replace with a stale resourceVersion → 409; without one (custom resource) → 422
    const stale = { ...policy('p'), metadata: { name: 'p', namespace: 'agents', resourceVersion: created.metadata?.resourceVersion } };
    expect(await status(co.replaceNamespacedCustomObject({ ...AP, namespace: 'agents', name: 'p', body: stale }))).toBe(409);
    expect(await status(co.replaceNamespacedCustomObject({ ...AP, namespace: 'agents', name: 'p', body: policy('p') }))).toBe(422);
    const fresh = {
      ...policy('p', { targets: [], defaultAction: 'allow' }),
      metadata: { name: 'p', namespace: 'agents', resourceVersion: specChanged.metadata.resourceVersion },
      status: { governedPods: 100 },
    };
    const replaced = (await co.replaceNamespacedCustomObject({ ...AP, namespace: 'agents', name: 'p', body: fresh })) as {
      metadata: { generation: number };
      status: unknown;
    };
    expect(replaced.metadata.generation).toBe(3);
    expect(replaced.status).toEqual({ governedPods: 2 }); // the main resource ignores status
  });

  it('does server-side apply with managedFields, no-op re-apply, removal of dropped fields and conflicts', async () => {
    const objs = fake.kubeConfig().makeApiClient(KubernetesObjectApi);
    const cm: KubernetesObject & { data: Record<string, string> } = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cm', namespace: 'agents' },
      data: { a: '1', b: '2' },
    };
    const first = await objs.patch(cm, undefined, undefined, 'mgr-a', true, PatchStrategy.ServerSideApply);
    expect(first.metadata?.managedFields?.[0]).toMatchObject({
      manager: 'mgr-a',
      operation: 'Apply',
      fieldsV1: { 'f:data': { 'f:a': {}, 'f:b': {} } },
    });
    const again = await objs.patch(cm, undefined, undefined, 'mgr-a', true, PatchStrategy.ServerSideApply);
    expect(again.metadata?.resourceVersion).toBe(first.metadata?.resourceVersion);

    const dropB = { ...cm, data: { a: '1' } };
    const third = await objs.patch(dropB, undefined, undefined, 'mgr-a', true, PatchStrategy.ServerSideApply);
    expect(third.data).toEqual({ a: '1' });

    const other = { ...cm, data: { a: 'other' } };
    expect(await status(objs.patch(other, undefined, undefined, 'mgr-b', false, PatchStrategy.ServerSideApply))).toBe(409);
    const forced = await objs.patch(other, undefined, undefined, 'mgr-b', true, PatchStrategy.ServerSideApply);
    expect(forced.data).toEqual({ a: 'other' });
    expect(forced.metadata?.managedFields?.map((m) => m.manager)).toEqual(['mgr-b']);
  });

  it('streams watch events from a resourceVersion, bookmarks, selector transitions and 410 Expired', async () => {
    const core = fake.kubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({ namespace: 'agents', body: { metadata: { name: 'x', labels: { keep: 'yes' } } } });
    const rv = fake.resourceVersion;
    await core.createNamespacedConfigMap({ namespace: 'agents', body: { metadata: { name: 'y', labels: { keep: 'yes' } } } });
    const w = rawWatch(
      fake,
      `/api/v1/namespaces/agents/configmaps?watch=1&resourceVersion=${rv}&allowWatchBookmarks=true&labelSelector=keep%3Dyes`,
    );
    await until(() => w.events.some((e) => e.type === 'ADDED'));
    expect(w.events[0]).toMatchObject({ type: 'ADDED', object: { metadata: { name: 'y' } } });

    await core.patchNamespacedConfigMap(
      { name: 'x', namespace: 'agents', body: { metadata: { labels: { keep: 'no' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await until(() => w.events.some((e) => e.type === 'DELETED'));
    expect(w.events.find((e) => e.type === 'DELETED')?.object.metadata.name).toBe('x');
    await until(() => w.events.some((e) => e.type === 'BOOKMARK'));
    expect(w.events.find((e) => e.type === 'BOOKMARK')?.object.metadata.resourceVersion).toBe(fake.resourceVersion);
    w.close();

    fake.compactHistory();
    const old = rawWatch(fake, `/api/v1/namespaces/agents/configmaps?watch=1&resourceVersion=${rv}`);
    await old.ended;
    expect(old.events).toEqual([{ type: 'ERROR', object: expect.objectContaining({ kind: 'Status', code: 410, reason: 'Expired' }) }]);
  });

  it('stalls open watches, and restarts on the same port keeping objects', async () => {
    const core = fake.kubeConfig().makeApiClient(CoreV1Api);
    const w = rawWatch(fake, '/api/v1/namespaces/agents/configmaps?watch=1');
    await until(() => fake.watchCount('configmaps') === 1);
    fake.stallWatches();
    await core.createNamespacedConfigMap({ namespace: 'agents', body: { metadata: { name: 'during-stall' } } });
    await new Promise((r) => setTimeout(r, 100));
    expect(w.events).toEqual([]);
    const url = fake.url;
    await fake.restart({ downMs: 20 });
    await w.ended; // the connection was dropped
    expect(fake.url).toBe(url);
    const got = await core.readNamespacedConfigMap({ name: 'during-stall', namespace: 'agents' });
    expect(got.metadata?.name).toBe('during-stall');
    expect(fake.requests.some((r) => r.watch && r.path === '/api/v1/namespaces/agents/configmaps')).toBe(true);
  });

  it('answers discovery for KubernetesObjectApi and deletes with a DELETED event', async () => {
    const objs = fake.kubeConfig().makeApiClient(KubernetesObjectApi);
    await objs.create({ ...policy('gone') } as KubernetesObject);
    const rv = fake.resourceVersion;
    const w = rawWatch(fake, `/apis/agentwarden.io/v1alpha1/accesspolicies?watch=1&resourceVersion=${rv}`);
    await until(() => fake.watchCount('accesspolicies') === 1);
    await objs.delete({ apiVersion: 'agentwarden.io/v1alpha1', kind: 'AccessPolicy', metadata: { name: 'gone', namespace: 'agents' } });
    await until(() => w.events.length > 0);
    expect(w.events[0]).toMatchObject({ type: 'DELETED', object: { metadata: { name: 'gone' } } });
    expect(Number(w.events[0].object.metadata.resourceVersion)).toBeGreaterThan(Number(rv));
    w.close();
  });
});
