import type { AuditApproval } from '../../common/audit/record';
// The server answers client messages strictly in order, so a FIFO of what each forwarded message
// will produce tells us, for every server message, which request it belongs to: which row shape a
// DataRow has, which error is the answer to an injected denial, which responses we must swallow.
import type { Decision, SqlOperation } from '../../common/policy/types';
import type { RowShape } from './shape-cache';
import type { RowPlan } from './row-masking';
import type { Change, PortalState, StatementState } from './session-state';

export type { PortalState, StatementState } from './session-state';
import type { CopyPlan } from './copy-masking';

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
  /**
   * Describe(P) and Execute: the portal as it was when the message was sent. Answers are matched to
   * this object, never looked up by name, since pipelined batches reuse names (the unnamed portal).
   */
  portal?: PortalState;
  /** Describe(S): the statement as it was when the message was sent. */
  statement?: StatementState;
  /** What the message changes in the session model once the server confirms it. */
  change?: Change;
  /** Set when we forwarded a deliberately failing message in place of a denied one. */
  denial?: Decision;
  /** The SQLSTATE the agent gets for that denial; 42501 unless set (54000: statement too large). */
  denialCode?: string;
  /** A message the sidecar added on its own (a Describe for masking): its answers are swallowed. */
  injected?: boolean;
  op?: SqlOperation;
  /** The decision that let the operation through (for the audit record). */
  decision?: Decision;
  text?: string;
  /** Query: the shape of the current result. */
  shape?: RowShape;
  plan?: RowPlan;
  copyOut?: boolean;
  /** COPY TO STDOUT in text/CSV whose columns are masked: the running COPY's plan. */
  copyPlan?: CopyPlan;
  /** COPY TO STDOUT results started so far (a Query may run several). */
  copies?: number;
  startedAt: number;
  /** The approver's answer that let this statement through, or denied it. */
  approval?: AuditApproval;
  /** When the statement went to the server (performance.now()): upstream time is measured from here. */
  sentAt?: number;
  masked: number;
  /** Masked values by detector (`column` for column rules); allocated on the first masked value. */
  maskedBy?: Record<string, number>;
  rows: number;
  error?: string;
}

export class ResponseQueue {
  private items: PendingResponse[] = [];
  private head = 0;

  /** `removed` sees every request as it leaves the queue, answered or skipped after an error. */
  constructor(private readonly removed?: (p: PendingResponse) => void) {}

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
    this.removed?.(p);
    // Empty again (every transaction's end): start over instead of growing and copying the array.
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
      return p;
    }
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

  /**
   * After an error in the extended protocol the server skips to Sync: drop everything before it.
   * False when no Sync is queued: the server also skips what the client has not sent yet.
   */
  dropUntilSync(): boolean {
    for (let p = this.peek(); p; p = this.peek()) {
      if (p.expect === Expect.Sync) return true;
      this.shift();
    }
    return false;
  }
}
