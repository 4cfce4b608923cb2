// Held batches: a held simple Query, or an extended-protocol batch buffered from its held Parse
// (or Bind) up to its Sync, waits for the approver while only this client's reading is paused. An
// approved batch is replayed exactly as received; a denied one is answered as a real error would be.
import type { Decision, SqlOperation } from '../../../common/policy/types';
import type { AuditApproval } from '../../../common/audit/record';
import { approvalRecord } from '../../audit/records';
import { FE } from '../protocol/codes';
import { decodeBind, decodeBindHead, decodeClose, decodeParse } from '../protocol/frontend';
import type { Frame } from '../protocol/frame-reader';
import { Expect } from '../response-queue';
import { noApproverReason, type HoldOutcome, type HoldRequest } from '../../approvals/hold';
import type { PgSession } from '../session';

/**
 * What one held extended-protocol batch may buffer while it waits for its Sync and the approver
 * (at least a statement of the target's maxStatementBytes and its Binds fit): a connection may not
 * make the sidecar hold hundreds of MiB.
 */
export const MAX_HELD_BATCH_BYTES = 16 * 1024 * 1024;

export function noApprovalReason(d: Decision): string {
  return noApproverReason(d.reason);
}

/** An extended-protocol batch held from its held Parse (or Bind) up to Sync/Flush, none of it forwarded yet. */
interface HeldBatch {
  decision: Decision;
  op: SqlOperation;
  text: string;
  /** The held statement's name: the Binds that reference it carry the parameters shown to the approver. */
  statement: string;
  now: number;
  /** Copies of the client frames, the held Parse/Bind first. */
  frames: Frame[];
  bytes: number;
  /** Binds of the held statement, in order (copies, among `frames`). */
  binds: Frame[];
  /** The parameters of each of `binds`, as shown to the approver: one approval request per bind. */
  params: Array<Array<string | null>>;
  /** False once the statement name is re-parsed or closed inside the batch: later Binds are not ours. */
  bindsOpen: boolean;
}

/** What an approver approved, attached to the held Parse/Bind frames it covers. */
interface PreApproved {
  op: SqlOperation;
  text: string;
  decision: Decision;
  held: Decision;
  approval?: AuditApproval;
}

/** A frame that outlives the chunk it arrived in. */
export function copyFrame(f: Frame): Frame {
  const buf = Buffer.from(f.buf.subarray(f.start, f.end));
  return { ...f, buf, start: 0, body: f.body - f.start, end: f.end - f.start };
}

/** Bound parameters as an approver reads them: text as is, binary as `\x` hex. */
function renderParams(f: Frame): Array<string | null> {
  const b = decodeBind(f);
  return b.params.map((v, i) => {
    if (v === null) return null;
    const fmt = b.paramFormats.length === 0 ? 0 : b.paramFormats.length === 1 ? b.paramFormats[0] : b.paramFormats[i];
    return fmt === 1 ? `\\x${v.toString('hex')}` : v.toString('utf8');
  });
}

export class HeldBatches {
  /** The extended-protocol batch being held, if any. */
  held?: HeldBatch;
  /** The held Parse/Bind frames an approver approved: they pass without another decision. */
  readonly preApproved = new WeakMap<Frame, PreApproved>();
  private holdAbort?: AbortController;
  /** The last approver's answer, attached to the audit record of the statement it let through or denied. */
  private lastApproval?: AuditApproval;

  constructor(private readonly s: PgSession) {}

  /** At close: a wait for the approver ends (the agent left). */
  abort(reason: string): void {
    this.holdAbort?.abort(new Error(reason));
  }

  private takeApproval(): AuditApproval | undefined {
    const a = this.lastApproval;
    this.lastApproval = undefined;
    return a;
  }

  /** A held simple Query: nothing more from the agent is read until the approver decides. */
  hold(f: Frame, decision: Decision, op: SqlOperation, text: string, now: number): void {
    if (!this.s.rt.approvals) {
      this.s.clientFrames.deny({ ...decision, action: 'deny', reason: noApprovalReason(decision) }, Expect.Query, now, text, op);
      return;
    }
    this.askApprover(decision, { sql: text }, (outcome) => {
      if (this.s.clientFrames.discarding) {
        // An error earlier in the batch came in while the approver decided: the server skips this
        // Query, so nothing may be sent for it (the server would not answer).
        const d: Decision = { ...decision, action: outcome.approved ? decision.action : 'deny', reason: outcome.reason };
        return this.s.audit.skipped(
          { expect: Expect.Query, op, text, decision: d, startedAt: now, approval: this.takeApproval(), masked: 0, rows: 0 },
          !outcome.approved,
        );
      }
      if (outcome.approved) {
        const approved: Decision = { ...decision, reason: outcome.reason };
        this.s.forward(f);
        const change = this.s.clientFrames.sqlChange(op, text, false);
        this.s.queue.push({
          expect: Expect.Query,
          op,
          decision: approved,
          text,
          change,
          startedAt: now,
          sentAt: performance.now(),
          approval: this.takeApproval(),
          masked: 0,
          rows: 0,
        });
      } else {
        this.s.clientFrames.deny({ ...decision, action: 'deny', reason: outcome.reason }, Expect.Query, now, text, op).approval =
          this.takeApproval();
      }
    });
  }

  /**
   * Asks the approval service, reading nothing more from the agent meanwhile. `decided` runs once the
   * approver answers (it may ask again); then the agent's messages flow again.
   */
  private askApprover(decision: Decision, operation: HoldRequest['operation'], decided: (outcome: HoldOutcome) => void): void {
    const gate = this.s.rt.approvals!;
    this.s.blockClient();
    this.s.flushUpstream();
    const abort = new AbortController();
    this.holdAbort = abort;
    const waitStart = performance.now();
    gate
      .hold({
        target: this.s.rt.target,
        policy: this.s.rt.policy().name,
        rule: decision.rule ?? '',
        decision,
        identity: this.s.identity,
        operation,
        signal: abort.signal,
      })
      .then(
        (outcome) => {
          if (this.s.phase !== 'ready') return;
          this.lastApproval = approvalRecord(outcome, waitStart);
          decided(outcome);
          if (this.holdAbort !== abort) return; // `decided` asked again
          this.holdAbort = undefined;
          this.s.unblockClient();
        },
        (err: Error) => {
          // The agent left while waiting (the wait was aborted): nothing to report to anyone.
          if (this.s.phase !== 'ready') return;
          this.s.fatal('57014', `approval wait failed: ${err.message}`);
        },
      )
      .catch((err) => {
        if (this.s.phase === 'ready') this.s.onProtocolError(err);
      });
  }

  /**
   * Starts holding an extended-protocol batch at a held Parse (or a Bind of a held statement):
   * nothing of it is forwarded until the approver has seen the statement with its parameters.
   */
  startHeld(f: Frame, h: Pick<HeldBatch, 'decision' | 'op' | 'text' | 'statement' | 'now'>): void {
    this.held = { ...h, frames: [], bytes: 0, binds: [], params: [], bindsOpen: true };
    this.bufferHeld(f);
  }

  /** What one held batch may buffer: MAX_HELD_BATCH_BYTES, or more when the target allows larger statements. */
  heldLimit(): number {
    return Math.max(MAX_HELD_BATCH_BYTES, this.s.rt.maxStatementBytes() + (1 << 20));
  }

  bufferHeld(f: Frame): void {
    const h = this.held!;
    if (f.code === FE.Terminate) {
      // The agent left before the batch was sent: none of it runs.
      this.held = undefined;
      this.s.clientFrames.onFrame(f);
      return;
    }
    const limit = this.heldLimit();
    const size = f.skipped !== undefined ? 1 + f.skipped : f.end - f.start;
    if (h.bytes + size > limit) {
      // Refused before the frame is copied: the batch never holds more than the limit.
      this.resolveHeld(false, `${h.decision.reason}; the held batch grew past ${limit} bytes before its Sync, so it is denied`);
      // Processed after the batch's other frames (which the denial discards up to the Sync).
      this.s.replay.splice(h.frames.length - 1, 0, f);
      return;
    }
    const copy = copyFrame(f);
    const first = h.frames.length === 0;
    h.frames.push(copy);
    h.bytes += copy.buf.length;
    if (f.code === FE.Bind) {
      const b = decodeBindHead(copy);
      if (h.bindsOpen && b.statement === h.statement) {
        h.binds.push(copy);
        h.params.push(renderParams(copy));
      }
    } else if (!first && f.code === FE.Parse && decodeParse(copy).statement === h.statement) {
      h.bindsOpen = false;
    } else if (f.code === FE.Close) {
      const c = decodeClose(copy);
      if (c.kind === 'S' && c.target === h.statement) h.bindsOpen = false;
    }
    if (f.code === FE.Sync || f.code === FE.Flush) this.askHeld(0);
  }

  /**
   * At the batch's Sync (or Flush): one approval request per Bind of the held statement, each with
   * its own parameters, one after the other. The batch runs only if every one is approved.
   */
  private askHeld(i: number): void {
    const h = this.held!;
    if (h.binds.length === 0) {
      // Parsed (and described) only: it reaches the server only once approved, and each later Bind
      // of it is held again with its own parameters.
      this.askApprover(h.decision, { sql: h.text }, (outcome) => this.resolveHeld(outcome.approved, outcome.reason));
      return;
    }
    this.askApprover(h.decision, { sql: h.text, params: h.params[i] }, (outcome) => {
      if (outcome.approved && i + 1 < h.params.length) this.askHeld(i + 1);
      else this.resolveHeld(outcome.approved, outcome.reason);
    });
  }

  /** Approved: the buffered frames go out exactly as received. Denied: a failing Parse stands in for the batch's rest. */
  private resolveHeld(approved: boolean, reason: string): void {
    const h = this.held!;
    this.held = undefined;
    const [trigger, ...rest] = h.frames;
    if (approved) {
      const pre: PreApproved = {
        op: h.op,
        text: h.text,
        decision: { ...h.decision, reason },
        held: h.decision,
        approval: this.takeApproval(),
      };
      if (trigger.code === FE.Parse) this.preApproved.set(trigger, pre);
      for (const b of h.binds) this.preApproved.set(b, pre);
      this.s.replay.unshift(...h.frames);
    } else if (this.s.clientFrames.discarding) {
      // An error earlier in the batch came in meanwhile: the server skips up to Sync, so do we.
      const denial: Decision = { ...h.decision, action: 'deny', reason };
      this.s.audit.skipped(
        {
          expect: Expect.Parse,
          op: h.op,
          text: h.text,
          decision: denial,
          startedAt: h.now,
          approval: this.takeApproval(),
          masked: 0,
          rows: 0,
        },
        true,
      );
      this.s.replay.unshift(...rest);
    } else {
      this.s.clientFrames.deny({ ...h.decision, action: 'deny', reason }, Expect.Parse, h.now, h.text, h.op).approval = this.takeApproval();
      this.s.clientFrames.discarding = true;
      this.s.replay.unshift(...rest);
    }
  }
}
