// Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection:
// - the holder renews renewTime every renewIntervalMs; a replica takes the Lease over only once it
//   has seen the same record unchanged for leaseDurationSeconds on its own clock (no clock-skew
//   trust in renewTime);
// - every write carries the resourceVersion it read, so two candidates cannot both win (409);
// - a leader that cannot renew within renewDeadlineMs steps down before its Lease can expire
//   elsewhere; stop() releases the Lease (holder cleared) so a successor need not wait.
import type { Logger } from '../../common/log';
import { isConflict, isNotFound, type KubeRest } from './kube-rest';
import { microTime } from './apply';

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

export interface LeaderElectorOptions {
  rest: KubeRest;
  namespace: string;
  name: string;
  identity: string;
  log: Logger;
  leaseDurationSeconds?: number;
  renewIntervalMs?: number;
  /** Step down when renewal has failed for this long; below the lease duration. */
  renewDeadlineMs?: number;
  onStartedLeading(): void;
  onStoppedLeading(): void;
  now?: () => number;
}

export class LeaderElector {
  private leader = false;
  private stopped = true;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private observed?: { record: string; at: number };
  private lastRenew = 0;
  private readonly duration: number;
  private readonly interval: number;
  private readonly deadline: number;
  private readonly now: () => number;

  constructor(private readonly opts: LeaderElectorOptions) {
    this.duration = opts.leaseDurationSeconds ?? 15;
    this.interval = opts.renewIntervalMs ?? 2000;
    this.deadline = opts.renewDeadlineMs ?? Math.min(10_000, this.duration * 1000 * (2 / 3));
    this.now = opts.now ?? Date.now;
  }

  isLeader(): boolean {
    return this.leader;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.tick();
  }

  /** Stops campaigning; a leader releases the Lease and calls onStoppedLeading. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    if (!this.leader) return;
    try {
      await this.release();
    } catch (e) {
      this.opts.log.warn('could not release the leader Lease; the next leader waits for it to expire', {
        lease: this.leaseName(),
        error: (e as Error).message,
      });
    }
    this.setLeader(false);
  }

  private tick(): void {
    this.running = this.attempt().finally(() => {
      if (!this.stopped) this.timer = setTimeout(() => this.tick(), this.interval);
    });
  }

  private async attempt(): Promise<void> {
    try {
      const won = await this.tryAcquireOrRenew();
      if (won) {
        this.lastRenew = this.now();
        this.setLeader(true);
      } else if (this.leader) this.setLeader(false); // someone else holds it now
    } catch (e) {
      this.opts.log.warn('leader election: Lease request failed', { lease: this.leaseName(), error: (e as Error).message });
      if (this.leader && this.now() - this.lastRenew > this.deadline) {
        this.opts.log.error('leader election: could not renew the Lease in time; stepping down', { lease: this.leaseName() });
        this.setLeader(false);
      }
    }
  }

  private setLeader(v: boolean): void {
    if (v === this.leader) return;
    this.leader = v;
    this.opts.log.info(v ? 'became leader' : 'stopped leading', { lease: this.leaseName(), identity: this.opts.identity });
    if (v) this.opts.onStartedLeading();
    else this.opts.onStoppedLeading();
  }

  private path(name?: string): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.opts.namespace)}/leases${name ? `/${encodeURIComponent(name)}` : ''}`;
  }

  private leaseName(): string {
    return `${this.opts.namespace}/${this.opts.name}`;
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const t = this.now();
    const stamp = microTime(new Date(t));
    let current: Lease;
    try {
      current = await this.opts.rest.request<Lease>({ method: 'GET', path: this.path(this.opts.name) });
    } catch (e) {
      if (!isNotFound(e)) throw e;
      const lease: Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.opts.name, namespace: this.opts.namespace },
        spec: {
          holderIdentity: this.opts.identity,
          leaseDurationSeconds: this.duration,
          acquireTime: stamp,
          renewTime: stamp,
          leaseTransitions: 0,
        },
      };
      try {
        await this.opts.rest.request({ method: 'POST', path: this.path(), body: lease, contentType: 'application/json' });
        return true;
      } catch (err) {
        if (isConflict(err)) return false; // another replica created it first
        throw err;
      }
    }
    const spec = current.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseDurationSeconds, spec.leaseTransitions]);
    if (this.observed?.record !== record) this.observed = { record, at: t };
    const mine = spec.holderIdentity === this.opts.identity;
    const held = !!spec.holderIdentity && !mine;
    const expiresAt = this.observed.at + (spec.leaseDurationSeconds ?? this.duration) * 1000;
    if (held && t < expiresAt) return false;

    const next: Lease = {
      ...current,
      spec: {
        holderIdentity: this.opts.identity,
        leaseDurationSeconds: this.duration,
        renewTime: stamp,
        acquireTime: mine ? (spec.acquireTime ?? stamp) : stamp,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    try {
      // resourceVersion from the read: a concurrent writer makes this a 409, not a split brain
      await this.opts.rest.request({ method: 'PUT', path: this.path(this.opts.name), body: next, contentType: 'application/json' });
      return true;
    } catch (e) {
      if (isConflict(e)) return false;
      throw e;
    }
  }

  private async release(): Promise<void> {
    const current = await this.opts.rest.request<Lease>({ method: 'GET', path: this.path(this.opts.name) });
    if (current.spec?.holderIdentity !== this.opts.identity) return;
    const next: Lease = {
      ...current,
      spec: { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date(this.now())) },
    };
    await this.opts.rest.request({ method: 'PUT', path: this.path(this.opts.name), body: next, contentType: 'application/json' });
  }
}
