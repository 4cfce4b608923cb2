// The client-frame dispatcher: every message from the agent is judged before it is forwarded.
// Statements are classified (the parser worker may make the connection wait), guarded and decided;
// a denial is answered by a deliberately failing statement so the server's batch and transaction
// state end exactly as a real error would leave them. Names (prepared statements, portals) are
// resolved only through what the server confirmed.
import { decide } from '../../../common/policy/engine';
import type { Decision, Identity, SqlOperation, SqlStatementInfo } from '../../../common/policy/types';
import type { TargetMasking } from '../row-masking';
import { FE } from '../protocol/codes';
import {
  decodeBindHead,
  decodeClose,
  decodeDescribe,
  decodeExecute,
  decodeParse,
  decodeQuery,
  encodeCopyFail,
  encodeDescribe,
  encodeParse,
  encodeQuery,
} from '../protocol/frontend';
import type { Frame } from '../protocol/frame-reader';
import { ProtocolError } from '../protocol/errors';
import { Expect, type PendingResponse } from '../response-queue';
import { sqlSteps, type Change, type Lookup, type PortalState, type StatementState } from '../session-state';
import type { ClassifiedSql } from '../runtime';
import { guardStatements } from '../guards';
import { copyFrame, noApprovalReason } from './held-batch';
import { NO_FORMATS, NO_SHAPE } from './result-shapes';
import type { PgSession } from '../session';

interface DecisionMemo {
  policy: object;
  masking: TargetMasking | undefined;
  readOnly: boolean;
  serverReadOnly: boolean;
  identity: Identity;
  result: { op: SqlOperation; decision: Decision };
}

/** Whether sqlSteps() makes a step of `s` (PREPARE, DEALLOCATE, DISCARD, DECLARE, CLOSE). */
function changesNames(s: SqlStatementInfo): boolean {
  return (
    (s.prepares !== undefined && s.preparedBody !== undefined) || s.deallocates !== undefined || s.kind === 'DECLARE' || s.kind === 'CLOSE'
  );
}

/** The value of a name the sidecar can vouch for now, else undefined (Describe and Execute then fail closed: no shape, masked whole). */
function known<T>(l: Lookup<T>): T | undefined {
  return l.kind === 'known' ? l.value : undefined;
}

export class ClientDispatch {
  /** True after an error in an extended-protocol batch: the client's frames are dropped up to its Sync, as the server does. */
  discarding = false;
  /** A Bind waiting for the server to answer earlier changes to its statement name (key: the name). */
  private awaiting?: string;
  /** The classification of the frame that waited for the parser worker, picked up when it is processed again. */
  private classified?: { frame: Frame; op: SqlOperation };
  private readonly ops = new WeakMap<ClassifiedSql, SqlOperation>();
  /**
   * The guards' and the policy's answer per operation, valid only for the policy, masking (view
   * list included), identity and read-only state it was made under: a hot reload (a new policy
   * object) applies to the very next statement. Never for EXECUTE, whose meaning is this session's.
   */
  private readonly decided = new WeakMap<SqlOperation, DecisionMemo>();

  constructor(private readonly s: PgSession) {}

  onFrame(f: Frame): void {
    const s = this.s;
    if (s.holds.held) return s.holds.bufferHeld(f);
    if (this.discarding && f.code !== FE.Sync) return;
    if (f.overBudget) return this.refuseOverBudget(f);
    const now = f.code === FE.Query || f.code === FE.Parse || f.code === FE.Execute ? performance.now() : 0;
    switch (f.code) {
      case FE.Query:
        if (f.skipped !== undefined) return this.refuseTooLarge(f.skipped, Expect.Query, now);
        return this.onQuery(f, decodeQuery(f), now);
      case FE.Parse:
        if (f.skipped !== undefined) return this.refuseTooLarge(f.skipped, Expect.Parse, now);
        return this.onParse(f, now);
      case FE.Bind:
        return this.onBind(f);
      case FE.Execute:
        return this.onExecute(f, now);
      case FE.Describe:
        return this.onDescribe(f, now);
      case FE.Close: {
        const c = decodeClose(f);
        const effect =
          c.kind === 'S'
            ? { kind: 'statement' as const, name: c.target, value: undefined }
            : { kind: 'portal' as const, name: c.target, value: undefined };
        s.forward(f);
        s.queue.push({ expect: Expect.Close, change: s.model.request([{ effect }], true), startedAt: now, masked: 0, rows: 0 });
        return;
      }
      case FE.Sync:
        this.discarding = false;
        s.forward(f);
        s.model.sync();
        s.queue.push({ expect: Expect.Sync, startedAt: now, masked: 0, rows: 0 });
        return;
      case FE.Flush:
      case FE.CopyData:
      case FE.CopyDone:
      case FE.CopyFail:
        s.forward(f);
        return;
      case FE.Terminate:
        s.forward(f);
        s.flushUpstream();
        s.close('client terminated');
        return;
      case FE.FunctionCall:
        // Fast-path calls name a function by OID, which no rule can see: refuse them.
        this.deny(
          { action: 'deny', reason: 'fast-path function calls (FunctionCall message) are not allowed through the sidecar' },
          Expect.Query,
          now,
          'function call',
        );
        return;
      default:
        throw new ProtocolError(`unexpected message type "${String.fromCharCode(f.code)}" (0x${f.code.toString(16)}) from the client`);
    }
  }

  private onDescribe(f: Frame, now: number): void {
    const s = this.s;
    const d = decodeDescribe(f);
    s.forward(f);
    if (d.kind === 'S') {
      s.queue.push({ expect: Expect.DescribeStatement, statement: known(s.model.statement(d.target)), startedAt: now, masked: 0, rows: 0 });
      return;
    }
    const portal = known(s.model.portal(d.target));
    // Answered (RowDescription or NoData) before the rows of any later Execute of this portal
    // state; if it fails, the server skips everything up to Sync, that Execute included.
    if (portal) portal.described = true;
    s.queue.push({ expect: Expect.DescribePortal, portal, startedAt: now, masked: 0, rows: 0 });
  }

  /**
   * The classification of the statement in `f`, or undefined while the parser worker is on it. The
   * connection then reads nothing more: `f` goes back to the front of the replay queue and is
   * processed again once the answer is in, so order is kept, while other connections keep flowing.
   */
  private classify(f: Frame, text: string): SqlOperation | undefined {
    const ready = this.classified;
    if (ready?.frame === f) {
      this.classified = undefined;
      return ready.op;
    }
    const c = this.s.rt.classify(text);
    if (!(c instanceof Promise)) return this.toOp(c);
    const answered = c.catch(
      // Fail closed: a classification that did not finish is a parser failure.
      (err: Error): ClassifiedSql => ({ statements: [], parseError: `classification failed: ${err.message}`, parserFailure: true }),
    );
    this.s.retryAfter(f, answered, (r) => (this.classified = { frame: f, op: this.toOp(r) }));
    return undefined;
  }

  /** False while the view list loads: `f` is processed again once it is in (like a classification). */
  private viewsReady(f: Frame): boolean {
    const m = this.s.rt.masking();
    if (!m || m.columnRules.length === 0) return true;
    const list = this.s.rt.catalog.viewList();
    if (!(list instanceof Promise)) return true;
    this.s.retryAfter(f, list);
    return false;
  }

  private toOp(c: ClassifiedSql): SqlOperation {
    // One operation per classification (the classifier hands out its cached, frozen result for a
    // text seen before), so the decision memo below and the per-statements caches hit.
    let op = this.ops.get(c);
    if (!op) {
      op = { type: 'sql', target: this.s.rt.target, statements: c.statements, parseError: c.parseError, parserFailure: c.parserFailure };
      this.ops.set(c, op);
    }
    return op;
  }

  /**
   * A large message the shared budget could not hold, dropped unread (see message-budget.ts): the
   * statement or Bind it belongs to fails as a real error would; a COPY it feeds is failed upstream.
   */
  private refuseOverBudget(f: Frame): void {
    const reason = `the sidecar is already holding its limit of large messages for all connections, so this ${f.skipped! + 1}-byte message was refused unread; retry later or send smaller messages`;
    const now = performance.now();
    switch (f.code) {
      case FE.Query:
        return this.refuseTooLarge(f.skipped!, Expect.Query, now, reason, '53200');
      case FE.CopyData:
        // The server answers CopyFail with an ErrorResponse naming this message, and then drops the
        // rest of the client's copy data itself.
        this.s.upstreamOut.push(encodeCopyFail(`agent-warden: ${reason}`));
        return;
      case FE.Parse:
      case FE.Bind:
      case FE.Describe:
      case FE.Close:
      case FE.Execute:
        return this.refuseTooLarge(f.skipped!, Expect.Parse, now, reason, '53200');
      default:
        return this.s.fatal('53200', reason);
    }
  }

  /** A Query or Parse larger than the target's maxStatementBytes: its body was dropped unread (see FrameReader). */
  private refuseTooLarge(length: number, expect: Expect.Query | Expect.Parse, now: number, why?: string, code = '54000'): void {
    const limit = this.s.rt.maxStatementBytes();
    const reason =
      why ??
      `the statement (a message of ${length + 1} bytes) is larger than the ${limit} bytes the sidecar classifies for target "${this.s.rt.target}" (targets[].postgres.maxStatementBytes)`;
    this.deny({ action: 'deny', reason }, expect, now, `[a message of ${length + 1} bytes, not read]`).denialCode = code;
    // The server skips to Sync after an error; we do the same with what the client sends.
    if (expect === Expect.Parse) this.discarding = true;
  }

  private decideOp(op: SqlOperation, text: string): { op: SqlOperation; decision: Decision } {
    if (this.s.queue.length > 0 && text.includes('\\')) {
      // A statement still in flight could switch standard_conforming_strings or client_encoding
      // (SET, set_config, any function) before the server reads this one, and backslashes are
      // exactly what those settings change. We learn of a switch only at ReadyForQuery, so a text
      // whose meaning depends on it may not be pipelined behind unfinished work.
      return {
        op,
        decision: {
          action: 'deny',
          reason:
            'a statement containing backslashes cannot be pipelined behind unfinished statements (they could change how the server reads backslashes); send it after the previous results arrive',
        },
      };
    }
    const auditBlocked = this.s.rt.audit.blocked?.();
    if (auditBlocked) return { op, decision: { action: 'deny', reason: auditBlocked } };
    const policy = this.s.rt.policy();
    const masking = this.s.masking();
    const readOnly = this.s.rt.spec().readOnly === true;
    const serverReadOnly = this.s.login.serverReadOnly;
    const identity = this.s.identity;
    const memo = this.decided.get(op);
    if (
      memo &&
      memo.policy === policy &&
      memo.masking === masking &&
      memo.readOnly === readOnly &&
      memo.serverReadOnly === serverReadOnly &&
      memo.identity === identity
    ) {
      return memo.result;
    }
    const checked = guardStatements(op, { prepared: (name) => this.s.model.statement(name), masking, readOnly, serverReadOnly });
    const decision = decide(policy, checked.op, identity);
    // Both refuse: the policy's rule is the answer the agent and the audit trail can act on.
    const result =
      checked.denial && decision.action !== 'deny' ? { op: checked.op, decision: checked.denial } : { op: checked.op, decision };
    if (!op.statements.some((st) => st.executes !== undefined))
      this.decided.set(op, { policy, masking, readOnly, serverReadOnly, identity, result });
    return result;
  }

  private onQuery(f: Frame, text: string, now: number): void {
    if (!this.viewsReady(f)) return;
    const classified = this.classify(f, text);
    if (!classified) return;
    const { op, decision } = this.decideOp(classified, text);
    if (decision.action === 'hold') return this.s.holds.hold(f, decision, op, text, now);
    if (decision.action === 'deny') {
      this.deny(decision, Expect.Query, now, text, op);
      return;
    }
    this.s.forward(f);
    this.s.queue.push({
      expect: Expect.Query,
      op,
      decision,
      text,
      change: this.sqlChange(op, text, false),
      startedAt: now,
      sentAt: performance.now(),
      masked: 0,
      rows: 0,
    });
  }

  private onParse(f: Frame, now: number): void {
    const p = decodeParse(f);
    const pre = this.s.holds.preApproved.get(f);
    if (pre) {
      // The held Parse, approved (with the parameters of its Binds in the batch); each later Bind is held again.
      return this.forwardParse(f, p.statement, { op: pre.op, text: pre.text, decision: pre.decision, held: pre.held }, now);
    }
    if (!this.viewsReady(f)) return;
    const classified = this.classify(f, p.text);
    if (!classified) return;
    const decided = this.decideOp(classified, p.text);
    const op = decided.op;
    let decision = decided.decision;
    if (decision.action === 'hold') {
      if (this.s.rt.approvals) return this.s.holds.startHeld(f, { decision, op, text: p.text, statement: p.statement, now });
      decision = { ...decision, action: 'deny', reason: noApprovalReason(decision) };
    }
    if (decision.action === 'deny') {
      this.deny(decision, Expect.Parse, now, p.text, op);
      // The server skips to Sync after an error; we do the same with what the client sends.
      this.discarding = true;
      return;
    }
    this.forwardParse(f, p.statement, { op, text: p.text, decision }, now);
  }

  /** The statement exists once the server's ParseComplete says so. */
  private forwardParse(f: Frame, name: string, st: StatementState, now: number): void {
    this.s.forward(f);
    const change = this.s.model.request([{ effect: { kind: 'statement', name, value: st } }], true);
    this.s.queue.push({ expect: Expect.Parse, change, startedAt: now, masked: 0, rows: 0 });
  }

  /** What SQL PREPARE / DEALLOCATE / DISCARD / DECLARE / CLOSE in `op` change, once their CommandComplete confirms it. */
  sqlChange(op: SqlOperation | undefined, text: string, extended: boolean): Change | undefined {
    // Most statements change no name: no steps to build (this runs for every Query and Execute).
    if (!op?.statements || !op.statements.some(changesNames)) return undefined;
    const steps = sqlSteps(op.statements, (body) => {
      // A prepared statement is judged alone, whatever let the PREPARE through: an approved PREPARE
      // of a held statement does not approve its executions.
      const bodyOp: SqlOperation = { ...op, statements: [body] };
      const decision = decide(this.s.rt.policy(), bodyOp, this.s.identity);
      return { op: bodyOp, text, decision, held: decision.action === 'hold' ? decision : undefined };
    });
    return this.s.model.request(steps, extended);
  }

  private onBind(f: Frame): void {
    const b = decodeBindHead(f);
    const found = this.s.model.statement(b.statement);
    if (found.kind === 'wait') return this.waitForServer(f, b.statement);
    const st = found.kind === 'known' ? found.value : undefined;
    const pre = this.s.holds.preApproved.get(f);
    const now = performance.now();
    if (!st) {
      // The server might hold a statement of that name we never saw confirmed: never bind it blind.
      const why =
        found.kind === 'unsure'
          ? `a statement still unanswered in the same batch changes prepared statement "${b.statement}"; send the Bind after its results arrive`
          : `the sidecar has not seen the server confirm prepared statement "${b.statement}" on this connection`;
      this.deny({ action: 'deny', reason: `Bind refused: ${why}` }, Expect.Parse, now, '');
      this.discarding = true;
      return;
    }
    if (st.decision.action === 'deny') {
      this.deny(st.decision, Expect.Parse, now, st.text, st.op);
      this.discarding = true;
      return;
    }
    // An approval covers the Binds the approver saw, of the statement they saw, and nothing else.
    const approved = pre !== undefined && pre.text === st.text;
    if (st.held && !approved) {
      // Each execution of a held statement is approved on its own, with its own parameters.
      if (this.s.rt.approvals)
        return this.s.holds.startHeld(f, { decision: st.held, op: st.op, text: st.text, statement: b.statement, now });
      this.deny({ ...st.held, action: 'deny', reason: noApprovalReason(st.held) }, Expect.Parse, now, st.text, st.op);
      this.discarding = true;
      return;
    }
    // A fresh state per Bind: answers for an earlier portal of the same name must not land on this one.
    const portal: PortalState = { stmt: st, formats: b.resultFormats, shape: st.shape, approval: approved ? pre.approval : undefined };
    this.s.forward(f);
    const change = this.s.model.request([{ effect: { kind: 'portal', name: b.portal, value: portal } }], true);
    this.s.queue.push({ expect: Expect.Bind, change, startedAt: 0, masked: 0, rows: 0 });
  }

  /**
   * The meaning of a name depends on answers to an earlier Sync group still on their way: read
   * nothing more from the agent until they are in, then judge this frame again. Never a guess.
   */
  private waitForServer(f: Frame, statement: string): void {
    this.awaiting = statement;
    const copy = copyFrame(f);
    const pre = this.s.holds.preApproved.get(f);
    if (pre) this.s.holds.preApproved.set(copy, pre);
    this.s.replay.unshift(copy);
    this.s.blockClient();
  }

  /** After server messages: resumes the agent once the name being waited for is settled. */
  checkAwaiting(): void {
    if (this.awaiting === undefined || this.s.model.statement(this.awaiting).kind === 'wait') return;
    this.awaiting = undefined;
    this.s.unblockClient();
  }

  private onExecute(f: Frame, now: number): void {
    const e = decodeExecute(f);
    let portal = known(this.s.model.portal(e.portal));
    const masking = this.s.masking();
    if (masking && portal?.described !== true && (portal?.shape === undefined || portal.shape === NO_SHAPE)) {
      // Without a row description we cannot tell which columns to mask: ask the server for one. A
      // portal we did not see bound (a SQL cursor) is described at every Execute, never remembered.
      // Not when the client described this portal itself (pgbench, libpq's PQexecPrepared): the
      // server's answer to that Describe lands on the same state before the rows do.
      portal ??= { formats: NO_FORMATS };
      this.s.upstreamOut.push(encodeDescribe('P', e.portal));
      this.s.queue.push({ expect: Expect.DescribePortal, portal, injected: true, startedAt: now, masked: 0, rows: 0 });
    }
    const stmt = portal?.stmt;
    this.s.forward(f);
    const change = this.sqlChange(stmt?.op, stmt?.text ?? '', true);
    this.s.queue.push({
      expect: Expect.Execute,
      portal,
      op: stmt?.op,
      decision: stmt?.decision,
      text: stmt?.text,
      change,
      startedAt: now,
      sentAt: now,
      approval: portal?.approval,
      masked: 0,
      rows: 0,
    });
  }

  /**
   * Sends the server a statement that fails, so transaction and batch state end exactly as a real
   * error would leave them. The caller sets `approval` on the result when an approver denied it.
   */
  deny(decision: Decision, expect: Expect.Query | Expect.Parse, now: number, text: string, op?: SqlOperation): PendingResponse {
    const failing = `/* agent-warden policy denial */ ${this.s.rt.denialMarker}`;
    this.s.upstreamOut.push(expect === Expect.Query ? encodeQuery(failing) : encodeParse('', failing));
    const pending: PendingResponse = { expect, denial: decision, op, text, startedAt: now, approval: undefined, masked: 0, rows: 0 };
    this.s.queue.push(pending);
    return pending;
  }
}
