// One budget, shared by every agent connection of the process, for the large client messages the
// sidecar must hold whole before it forwards them (a Bind with a big bytea, a CopyData chunk).
// Without it, each connection could make the sidecar buffer up to maxMessageBytes (256 MiB) at
// once, so a few hostile connections exhaust the pod's memory for everyone. Small messages do not
// draw from it: one connection assembles one message at a time, so they are bounded per connection.

/** Messages up to this size (length field included) never draw from the shared budget. */
export const LARGE_MESSAGE_BYTES = 1024 * 1024;
/** Bytes of large client messages the whole sidecar may hold at once. */
export const DEFAULT_LARGE_MESSAGE_BUDGET_BYTES = 256 * 1024 * 1024;

export class MessageBudget {
  private used = 0;

  constructor(
    readonly totalBytes: number = DEFAULT_LARGE_MESSAGE_BUDGET_BYTES,
    readonly largeBytes: number = LARGE_MESSAGE_BYTES,
  ) {}

  /** Reserves `bytes` if the budget has room; false means the message must be refused unread. */
  reserve(bytes: number): boolean {
    if (this.used + bytes > this.totalBytes) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  /** Bytes reserved now, for metrics and tests. */
  get inUse(): number {
    return this.used;
  }
}
