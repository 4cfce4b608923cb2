// The server answers client messages strictly in order, so a FIFO of what each forwarded message
// will produce tells us, for every server message, which request it belongs to: which row shape a
// DataRow has, which error is the answer to an injected denial, which responses we must swallow.
import type { Decision, SqlOperation } from '../../common/policy/types';
import type { RowShape } from './shape-cache';
import type { RowPlan } from './row-masking';

export const enum Expect {
  Parse,
  Bind,
  DescribeStatement,
  DescribePortal,
  Execute,
  Close,
  Sync,
  Query,
}

export interface PendingResponse {
  expect: Expect;
  /** Statement or portal name for Describe/Execute. */
  name?: string;
  /** Set when we forwarded a deliberately failing message in place of a denied one. */
  denial?: Decision;
  /** A message the sidecar added on its own (a Describe for masking): its answers are swallowed. */
  injected?: boolean;
  op?: SqlOperation;
  /** The decision that let the operation through (for the audit record). */
  decision?: Decision;
  text?: string;
  shape?: RowShape;
  formats?: number[];
  plan?: RowPlan;
  copyOut?: boolean;
  startedAt: number;
  masked: number;
  rows: number;
  error?: string;
}

export class ResponseQueue {
  private items: PendingResponse[] = [];
  private head = 0;

  push(p: PendingResponse): void {
    this.items.push(p);
  }

  peek(): PendingResponse | undefined {
    return this.items[this.head];
  }

  shift(): PendingResponse | undefined {
    const p = this.items[this.head];
    if (p === undefined) return undefined;
    this.items[this.head++] = undefined as unknown as PendingResponse;
    // Compact occasionally so a long-lived connection does not grow the array forever.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return p;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  /** After an error in the extended protocol the server skips to Sync: drop everything before it. */
  dropUntilSync(): PendingResponse[] {
    const dropped: PendingResponse[] = [];
    for (let p = this.peek(); p && p.expect !== Expect.Sync; p = this.peek()) dropped.push(this.shift()!);
    return dropped;
  }
}
