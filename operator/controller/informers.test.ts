// The list/watch loop against the fake API server's real wire format: resume, 410 Gone, stalls
// and API server restarts, without losing an update.
import { silentLogger } from '../../common/log';
import { FakeApiServer } from '../../test/support/operator/fake-apiserver';
import { Informer, type InformerEvent } from './informers';
import { createKubeRest } from './kube-rest';
import type { KubeObject } from './types';

type CM = KubeObject & { data?: Record<string, string> };

function cm(name: string, v: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: 'agents', labels: { 'app.kubernetes.io/managed-by': 'agent-warden' } },
    data: { v },
  };
}

async function until(cond: () => boolean, ms = 4000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Informer', () => {
  let fake: FakeApiServer;
  let informer: Informer<CM>;
  let events: Array<[InformerEvent, string, string | undefined]>;

  beforeEach(async () => {
    fake = await FakeApiServer.start({ bookmarkIntervalMs: 100 });
    events = [];
    informer = new Informer<CM>({
      rest: createKubeRest(fake.kubeConfig()),
      path: '/api/v1/configmaps',
      labelSelector: 'app.kubernetes.io/managed-by=agent-warden',
      log: silentLogger,
      stallTimeoutMs: 400,
      backoffInitialMs: 20,
      backoffMaxMs: 100,
    });
    informer.on((type, o) => events.push([type, o.metadata.name, o.data?.v]));
  });

  afterEach(async () => {
    await informer.stop();
    await fake.close();
  });

  it('lists, then follows the watch (with bookmarks) from the list resourceVersion', async () => {
    fake.put(cm('a', '1'));
    fake.put({ ...cm('unlabelled', '1'), metadata: { name: 'unlabelled', namespace: 'agents' } });
    informer.start();
    await informer.waitForSync();
    expect(informer.list().map((o) => o.metadata.name)).toEqual(['a']);
    fake.put(cm('a', '2'));
    fake.put(cm('b', '1'));
    await until(() => informer.get('agents', 'b') !== undefined && informer.get('agents', 'a')?.data?.v === '2');
    expect(events).toEqual([
      ['add', 'a', '1'],
      ['update', 'a', '2'],
      ['add', 'b', '1'],
    ]);
    const watch = fake.requests.find((r) => r.watch)!;
    expect(watch.query).toMatchObject({ allowWatchBookmarks: 'true', resourceVersion: expect.any(String) });
    expect(fake.requests.filter((r) => !r.watch && r.method === 'GET')).toHaveLength(1); // one list
  });

  it('re-lists after 410 Gone and reports what changed and vanished in the gap', async () => {
    fake.put(cm('a', '1'));
    fake.put(cm('b', '1'));
    informer.start();
    await informer.waitForSync();
    await until(() => fake.watchCount('configmaps') === 1);
    // While the watch is down, a and b change and the server forgets the history.
    await fake.restart({ downMs: 50 });
    fake.put(cm('a', '2'));
    fake.remove('v1', 'ConfigMap', 'agents', 'b');
    fake.put(cm('c', '1'));
    fake.compactHistory();
    await until(
      () =>
        informer.get('agents', 'a')?.data?.v === '2' &&
        informer.get('agents', 'b') === undefined &&
        informer.get('agents', 'c') !== undefined,
    );
    expect(informer.stats.gone).toBeGreaterThanOrEqual(1);
    expect(informer.stats.lists).toBe(2);
    expect(events.slice(2)).toEqual(
      expect.arrayContaining([
        ['update', 'a', '2'],
        ['delete', 'b', '1'],
        ['add', 'c', '1'],
      ]),
    );
    // and the new watch works
    fake.put(cm('a', '3'));
    await until(() => informer.get('agents', 'a')?.data?.v === '3');
  });

  it('restarts a watch that goes silent, resuming without a re-list', async () => {
    informer.start();
    await informer.waitForSync();
    await until(() => fake.watchCount('configmaps') === 1);
    fake.stallWatches();
    fake.put(cm('during-stall', '1'));
    await until(() => informer.get('agents', 'during-stall') !== undefined);
    expect(informer.stats.stalls).toBeGreaterThanOrEqual(1);
    expect(informer.stats.lists).toBe(1);
  });

  it('recovers from an API server restart (connection refused meanwhile) with backoff', async () => {
    fake.put(cm('a', '1'));
    informer.start();
    await informer.waitForSync();
    await until(() => fake.watchCount('configmaps') === 1);
    await fake.restart({ downMs: 300 });
    fake.put(cm('a', '2'));
    await until(() => informer.get('agents', 'a')?.data?.v === '2');
    expect(informer.stats.errors).toBeGreaterThanOrEqual(1);
    expect(events).toContainEqual(['update', 'a', '2']);
  });
});
