// Policy hot reload: each reloaded policy is applied in turn (two overlapping applies could both
// try to bind a port); readiness reports the last failure until an apply succeeds.
import type { CompiledPolicy } from '../../common/policy/compile';
import type { Logger } from '../../common/log';
import type { Metrics } from '../../common/metrics';
import { METRIC } from '../../common/audit/names';
import type { PolicyStore } from '../policy-store';

export class PolicyReloads {
  private readonly reloads: ReturnType<Metrics['counter']>;
  private lastError: string | undefined;
  private applying: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: PolicyStore,
    metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.reloads = metrics.counter(METRIC.policyReloads, 'Policy reload attempts, by result.');
  }

  /** For /readyz: not ready while the last reloaded policy could not be applied. */
  readonly ready = (): { ok: boolean; reason?: string } => (this.lastError ? { ok: false, reason: this.lastError } : { ok: true });

  /** Starts watching the policy file; `apply` runs for each reloaded policy, one at a time. */
  watch(apply: (policy: CompiledPolicy) => Promise<void>, onPolicy: (policy: CompiledPolicy) => void): void {
    this.store.on('reload', (p: CompiledPolicy) => {
      onPolicy(p);
      this.applying = this.applying.then(() =>
        apply(p).then(
          () => {
            this.lastError = undefined;
            this.reloads.inc({ result: 'applied' });
          },
          (err: Error) => {
            this.lastError = err.message;
            this.reloads.inc({ result: 'failed' });
            this.log.error('applying the reloaded policy failed', { error: this.lastError });
          },
        ),
      );
    });
    this.store.on('rejected', () => this.reloads.inc({ result: 'rejected' }));
    this.store.watch();
  }

  /** Stops watching and waits for an apply under way. */
  async stop(): Promise<void> {
    this.store.stop();
    await this.applying;
  }
}
