// An approver that answers every pending request of a sidecar by a rule, as a human would over the
// admin API, for as long as a suite runs. Records what it was asked, in order.
import type { RunningSidecar } from '../../sidecar/main';
import { decideOverApi } from './approvals';

/** `wait`: leave the request pending for now (asked again on the next round). */
export type Verdict = (display: string) => 'approve' | 'deny' | 'wait';

export class AutoApprover {
  /** The display text of every request decided, in order. */
  asked: string[] = [];
  verdict: Verdict = () => 'deny';
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly sidecar: RunningSidecar) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const pending = (await this.sidecar.approvals!.list({ state: 'pending' })) ?? [];
      for (const req of pending) {
        const verdict = this.verdict(req.operation.display);
        if (verdict === 'wait') continue;
        this.asked.push(req.operation.display);
        await decideOverApi(this.sidecar, req.id, verdict);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
