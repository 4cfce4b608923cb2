// The agent gets our own BackendKeyData, never the real backend's: a CancelRequest reaches the
// sidecar, which finds the session by its key and cancels the real backend on the agent's behalf.
import { randomBytes, timingSafeEqual } from 'node:crypto';

export interface Cancellable {
  cancel(): Promise<void>;
}

export class CancelRegistry {
  private readonly byPid = new Map<number, { key: Buffer; session: Cancellable }>();

  register(session: Cancellable): { processId: number; secretKey: Buffer } {
    let processId: number;
    do processId = randomBytes(4).readInt32BE(0) & 0x7fffffff;
    while (processId === 0 || this.byPid.has(processId));
    const secretKey = randomBytes(4);
    this.byPid.set(processId, { key: secretKey, session });
    return { processId, secretKey };
  }

  unregister(processId: number): void {
    this.byPid.delete(processId);
  }

  find(processId: number, secretKey: Buffer): Cancellable | undefined {
    const e = this.byPid.get(processId);
    if (!e || e.key.length !== secretKey.length || !timingSafeEqual(e.key, secretKey)) return undefined;
    return e.session;
  }
}
