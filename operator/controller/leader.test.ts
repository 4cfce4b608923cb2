// Two electors against one fake API server: exactly one leads; a graceful stop hands over at once,
// a crashed leader only after its Lease expired.
import { silentLogger } from '../../common/log';
import { FakeApiServer } from '../../test/support/operator/fake-apiserver';
import { createKubeRest } from './kube-rest';
import { LeaderElector } from './leader';

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Lease {
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; leaseTransitions?: number; acquireTime?: string; renewTime?: string };
}

describe('LeaderElector', () => {
  let fake: FakeApiServer;
  const electors: LeaderElector[] = [];
  const log: string[] = [];

  function elector(identity: string, leaseDurationSeconds = 1): LeaderElector {
    const e = new LeaderElector({
      rest: createKubeRest(fake.kubeConfig()),
      namespace: 'agent-warden',
      name: 'agent-warden-operator',
      identity,
      log: silentLogger,
      leaseDurationSeconds,
      renewIntervalMs: 50,
      renewDeadlineMs: 600,
      onStartedLeading: () => log.push(`${identity} leads`),
      onStoppedLeading: () => log.push(`${identity} stopped`),
    });
    electors.push(e);
    return e;
  }

  const lease = (): Lease => fake.object('coordination.k8s.io/v1', 'Lease', 'agent-warden', 'agent-warden-operator') as unknown as Lease;

  beforeEach(async () => {
    fake = await FakeApiServer.start();
    log.length = 0;
  });

  afterEach(async () => {
    await Promise.all(electors.splice(0).map((e) => e.stop()));
    await fake.close();
  });

  it('lets exactly one of two replicas lead, and hands over at once on a graceful stop', async () => {
    const a = elector('pod-a');
    const b = elector('pod-b');
    a.start();
    b.start();
    await until(() => a.isLeader() || b.isLeader());
    // several renew rounds: never two leaders
    for (let i = 0; i < 20; i++) {
      expect(Number(a.isLeader()) + Number(b.isLeader())).toBe(1);
      await new Promise((r) => setTimeout(r, 15));
    }
    const [leader, follower] = a.isLeader() ? [a, b] : [b, a];
    const first = lease();
    expect(first.spec).toMatchObject({ holderIdentity: leader === a ? 'pod-a' : 'pod-b', leaseDurationSeconds: 1, leaseTransitions: 0 });
    expect(first.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

    const stoppedAt = Date.now();
    await leader.stop();
    expect(leader.isLeader()).toBe(false);
    await until(() => follower.isLeader());
    expect(Date.now() - stoppedAt).toBeLessThan(900); // released: no wait for the 1 s lease
    expect(lease().spec).toMatchObject({ holderIdentity: follower === a ? 'pod-a' : 'pod-b', leaseTransitions: 1 });
    expect(log.filter((l) => l.endsWith('leads'))).toHaveLength(2);
  });

  it('takes over from a crashed leader only after the lease duration', async () => {
    // a leader that vanished without releasing: its record stays, renewTime stops moving
    fake.put({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'agent-warden-operator', namespace: 'agent-warden' },
      spec: { holderIdentity: 'crashed', leaseDurationSeconds: 1, renewTime: new Date().toISOString(), leaseTransitions: 4 },
    });
    const b = elector('pod-b');
    const started = Date.now();
    b.start();
    await new Promise((r) => setTimeout(r, 500));
    expect(b.isLeader()).toBe(false);
    await until(() => b.isLeader());
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(lease().spec).toMatchObject({ holderIdentity: 'pod-b', leaseTransitions: 5 });
  });

  it('steps down when it cannot renew (API server down) and leads again once it is back', async () => {
    const a = elector('pod-a');
    a.start();
    await until(() => a.isLeader());
    await fake.restart({ downMs: 1000 }); // longer than the 600 ms renew deadline
    expect(log).toEqual(['pod-a leads', 'pod-a stopped']);
    await until(() => a.isLeader());
    expect(log).toEqual(['pod-a leads', 'pod-a stopped', 'pod-a leads']);
  });
});
