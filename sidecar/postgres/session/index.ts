// One agent connection: answers the agent's startup itself, logs in upstream with the real
// credentials, then relays messages both ways, deciding on every statement before it is forwarded
// and masking result rows on their way back.
import { randomUUID } from 'node:crypto';
import type * as net from 'node:net';
import { decide } from '../../../common/policy/engine';
import type { Decision, Identity, SqlOperation } from '../../../common/policy/types';
import { BE, FE } from '../protocol/codes';
import {
  decodeCommandComplete,
  decodeNoticeFields,
  decodeReadyForQuery,
  encodeErrorResponse,
  type ErrorFields,
} from '../protocol/backend';
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
  encodeTerminate,
} from '../protocol/frontend';
import { FrameReader, type Frame } from '../protocol/frame-reader';
import { ProtocolError } from '../protocol/errors';
import { Expect, ResponseQueue, type PendingResponse } from '../response-queue';
import { SessionState, sqlSteps, type Change, type Lookup, type PortalState, type StatementState } from '../session-state';
import { withViews, type TargetMasking } from '../row-masking';
import { maskNoticeMessage } from '../notice-masking';
import { OutputBatch } from '../output-batch';
import type { ClassifiedSql, TargetRuntime } from '../runtime';
import { guardStatements } from '../guards';
import { sendCancel, type UpstreamConnection } from '../upstream';
import type { AuditApproval } from '../../../common/audit/record';
import { SessionAudit, tally } from './session-audit';
import { Login } from './login';
import { copyFrame, HeldBatches, noApprovalReason } from './held-batch';
import { NO_FORMATS, NO_SHAPE, ResultShapes } from './result-shapes';
import { ResultMasking } from './result-masking';

type Phase = 'startup' | 'login' | 'password' | 'ready' | 'closed';

const DDL = /^(CREATE|ALTER|DROP|TRUNCATE|COMMENT|GRANT|REVOKE)\b/;

/** The value of a name the sidecar can vouch for now, else undefined (Describe and Execute then fail closed: no shape, masked whole). */
function known<T>(l: Lookup<T>): T | undefined {
  return l.kind === 'known' ? l.value : undefined;
}

export class PgSession {
  readonly id = randomUUID();
  readonly login: Login;
  readonly holds: HeldBatches;
  readonly shapes: ResultShapes;
  readonly masker: ResultMasking;
  readonly audit: SessionAudit;
  phase: Phase = 'startup';
  readonly clientReader: FrameReader;
  upstream?: UpstreamConnection;
  /** Prepared statements and portals as the server confirmed them. */
  readonly model = new SessionState();
  readonly queue = new ResponseQueue((p) => this.model.settle(p.change));
  /** A Bind waiting for the server to answer earlier changes to its statement name (key: the name). */
  awaiting?: string;
  discarding = false;
  clientBlocked = false;
  upstreamBlocked = false;
  pendingUpstreamFrame?: Frame;
  /** Frames of a decided held batch, processed again before anything newer from the client. */
  readonly replay: Frame[] = [];
  readonly clientOut = new OutputBatch();
  readonly upstreamOut = new OutputBatch();
  /** Who is asking: the pod's identity, or the subject of the token verified at login. */
  identity: Identity;
  /** The classification of the frame that waited for the parser worker, picked up when it is processed again. */
  classified?: { frame: Frame; op: SqlOperation };
  /** The masking last derived with a loaded view list (see masking()). */
  lastMasking?: TargetMasking;

  constructor(
    readonly client: net.Socket,
    readonly rt: TargetRuntime,
  ) {
    // Statements larger than the target classifies, and any frame that would take a held batch past
    // its limit, are refused from their header: their bodies are never buffered.
    this.clientReader = new FrameReader(rt.maxMessageBytes, (code) => {
      const held = this.holds.held ? Math.max(0, this.holds.heldLimit() - this.holds.held.bytes - 5) : undefined;
      const statement = code === FE.Query || code === FE.Parse ? rt.maxStatementBytes() : undefined;
      return held === undefined ? statement : statement === undefined ? held : Math.min(held, statement);
    }, rt.messageBudget);
    this.identity = rt.identity;
    this.login = new Login(this);
    this.holds = new HeldBatches(this);
    this.shapes = new ResultShapes(this);
    this.masker = new ResultMasking(this);
    this.audit = new SessionAudit(this);
    client.setNoDelay(true);
    client.on('data', (chunk) => this.onClientData(chunk));
    client.on('error', () => this.close('client socket error'));
    client.on('close', () => this.close('client disconnected', true));
  }

  // ---------------------------------------------------------------- lifecycle

  /** `cancelRunning`: the agent left, so a query still running upstream is cancelled rather than left to finish. */
  close(reason: string, cancelRunning = false): void {
    if (this.phase === 'closed') return;
    const wasReady = this.phase === 'ready';
    this.phase = 'closed';
    this.clientReader.dispose();
    this.holds.abort(reason);
    this.login.release();
    const up = this.upstream;
    if (up) {
      // A query still running upstream keeps going after the agent left unless we cancel it.
      if (cancelRunning && this.queue.length > 0) this.cancel().catch(() => undefined);
      if (!up.socket.destroyed) up.socket.end(encodeTerminate());
      setTimeout(() => up.socket.destroy(), 1000).unref();
    }
    if (!this.client.destroyed) this.client.end();
    if (wasReady) this.audit.session('disconnect', reason);
  }

  fatal(code: string, message: string, event: 'protocol-error' | 'login-failed' | 'guard' = 'protocol-error'): void {
    this.audit.session(event, message);
    if (!this.client.destroyed) {
      // What was already relayed goes out first, then the reason the session ends.
      const error = encodeErrorResponse({ severity: 'FATAL', code, message: `agent-warden: ${message}` });
      const pending = this.clientOut.take();
      this.client.write(pending ? Buffer.concat([pending, error]) : error);
    }
    this.close(message);
  }

  async cancel(): Promise<void> {
    const up = this.upstream;
    if (!up) return;
    await sendCancel(this.rt.upstreamOptions({}), up.processId, up.secretKey);
  }

  // ---------------------------------------------------------------- startup

  onClientData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    try {
      this.clientReader.push(chunk);
      // Waiting (parser, approver): what is in flight is kept, nothing more is read (a drain event may have resumed us).
      if (this.clientBlocked) this.client.pause();
      if (this.phase === 'startup') this.login.readStartup();
      else if (this.phase === 'password') this.login.readPassword();
      else if (this.phase === 'ready') this.drainClient();
    } catch (err) {
      this.onProtocolError(err);
    }
  }

  onProtocolError(err: unknown): void {
    if (err instanceof ProtocolError) {
      this.fatal(err.code === 'message_too_large' ? '54000' : '08P01', err.message);
    } else {
      this.fatal('XX000', `internal error in the sidecar: ${(err as Error).message}`);
    }
  }

  onUpstreamGone(): void {
    if (this.phase !== 'ready') return;
    this.fatal('08006', `lost the connection to the database of target "${this.rt.target}"`);
  }

  // ---------------------------------------------------------------- agent -> database

  drainClient(): void {
    while (!this.clientBlocked && this.phase === 'ready') {
      const f = this.replay.shift() ?? this.clientReader.next();
      if (!f) break;
      this.onClientFrame(f);
    }
    this.flushUpstream();
  }

  forward(f: Frame): void {
    this.upstreamOut.view(f.buf, f.start, f.end);
  }

  flushUpstream(): void {
    const up = this.upstream;
    if (!up) return;
    const data = this.upstreamOut.take();
    if (data && !up.socket.write(data)) {
      this.client.pause();
      up.socket.once('drain', () => this.client.resume());
    }
  }

  onClientFrame(f: Frame): void {
    if (this.holds.held) return this.holds.bufferHeld(f);
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
      case FE.Describe: {
        const d = decodeDescribe(f);
        this.forward(f);
        if (d.kind === 'S') this.queue.push({ expect: Expect.DescribeStatement, statement: known(this.model.statement(d.target)), startedAt: now, masked: 0, rows: 0 });
        else this.queue.push({ expect: Expect.DescribePortal, portal: known(this.model.portal(d.target)), startedAt: now, masked: 0, rows: 0 });
        return;
      }
      case FE.Close: {
        const c = decodeClose(f);
        const effect = c.kind === 'S' ? { kind: 'statement' as const, name: c.target, value: undefined } : { kind: 'portal' as const, name: c.target, value: undefined };
        this.forward(f);
        this.queue.push({ expect: Expect.Close, change: this.model.request([{ effect }], true), startedAt: now, masked: 0, rows: 0 });
        return;
      }
      case FE.Sync:
        this.discarding = false;
        this.forward(f);
        this.model.sync();
        this.queue.push({ expect: Expect.Sync, startedAt: now, masked: 0, rows: 0 });
        return;
      case FE.Flush:
      case FE.CopyData:
      case FE.CopyDone:
      case FE.CopyFail:
        this.forward(f);
        return;
      case FE.Terminate:
        this.forward(f);
        this.flushUpstream();
        this.close('client terminated');
        return;
      case FE.FunctionCall:
        // Fast-path calls name a function by OID, which no rule can see: refuse them.
        this.deny({ action: 'deny', reason: 'fast-path function calls (FunctionCall message) are not allowed through the sidecar' }, Expect.Query, now, 'function call');
        return;
      default:
        throw new ProtocolError(`unexpected message type "${String.fromCharCode(f.code)}" (0x${f.code.toString(16)}) from the client`);
    }
  }

  /**
   * The classification of the statement in `f`, or undefined while the parser worker is on it. The
   * connection then reads nothing more: `f` goes back to the front of the replay queue and is
   * processed again once the answer is in, so order is kept, while other connections keep flowing.
   */
  classify(f: Frame, text: string): SqlOperation | undefined {
    const ready = this.classified;
    if (ready?.frame === f) {
      this.classified = undefined;
      return ready.op;
    }
    const c = this.rt.classify(text);
    if (!(c instanceof Promise)) return this.toOp(c);
    const answered = c.catch(
      // Fail closed: a classification that did not finish is a parser failure.
      (err: Error): ClassifiedSql => ({ statements: [], parseError: `classification failed: ${err.message}`, parserFailure: true }),
    );
    this.retryAfter(f, answered, (r) => (this.classified = { frame: f, op: this.toOp(r) }));
    return undefined;
  }

  /**
   * Reads nothing more from the agent until `settled` resolves; then `f` is processed again, ahead of
   * anything newer, so order is kept while other connections keep flowing.
   */
  retryAfter<T>(f: Frame, settled: Promise<T>, onValue?: (value: T) => void): void {
    this.blockClient();
    this.replay.unshift(f);
    this.flushUpstream();
    settled
      .then((v) => {
        if (this.phase !== 'ready') return;
        onValue?.(v);
        this.unblockClient();
      })
      .catch((err) => {
        if (this.phase === 'ready') this.onProtocolError(err);
      });
  }

  blockClient(): void {
    this.clientBlocked = true;
    this.client.pause();
  }

  unblockClient(): void {
    this.clientBlocked = false;
    this.client.resume();
    this.drainClient();
  }

  /**
   * The target's masking with the database's views over masked columns (naming one counts as naming
   * the column). While the list reloads after DDL the last one is used; before any is known, every
   * relation counts (fail closed). Statements wait for a fresh list before they are judged (viewsReady).
   */
  // Per-row paths (DataRow, CopyData, audit text) take rt.masking(): the view list matters only to
  // judging a statement and planning its result, and reading it there would reload it from a row.
  masking(): TargetMasking | undefined {
    const m = this.rt.masking();
    if (!m || m.columnRules.length === 0) return m;
    const list = this.rt.catalog.viewList();
    if (!(list instanceof Promise)) return (this.lastMasking = withViews(m, list));
    // The last list, as long as it was derived from the same policy's masking.
    const last = this.lastMasking;
    return last !== undefined && last.columnRules === m.columnRules ? last : withViews(m, 'unavailable');
  }

  /** False while the view list loads: `f` is processed again once it is in (like a classification). */
  viewsReady(f: Frame): boolean {
    const m = this.rt.masking();
    if (!m || m.columnRules.length === 0) return true;
    const list = this.rt.catalog.viewList();
    if (!(list instanceof Promise)) return true;
    this.retryAfter(f, list);
    return false;
  }

  toOp(c: ClassifiedSql): SqlOperation {
    return { type: 'sql', target: this.rt.target, statements: c.statements, parseError: c.parseError, parserFailure: c.parserFailure };
  }

  /**
   * A large message the shared budget could not hold, dropped unread (see message-budget.ts): the
   * statement or Bind it belongs to fails as a real error would; a COPY it feeds is failed upstream.
   */
  refuseOverBudget(f: Frame): void {
    const reason = `the sidecar is already holding its limit of large messages for all connections, so this ${f.skipped! + 1}-byte message was refused unread; retry later or send smaller messages`;
    const now = performance.now();
    switch (f.code) {
      case FE.Query:
        return this.refuseTooLarge(f.skipped!, Expect.Query, now, reason, '53200');
      case FE.CopyData:
        // The server answers CopyFail with an ErrorResponse naming this message, and then drops the
        // rest of the client's copy data itself.
        this.upstreamOut.push(encodeCopyFail(`agent-warden: ${reason}`));
        return;
      case FE.Parse:
      case FE.Bind:
      case FE.Describe:
      case FE.Close:
      case FE.Execute:
        return this.refuseTooLarge(f.skipped!, Expect.Parse, now, reason, '53200');
      default:
        return this.fatal('53200', reason);
    }
  }

  /** A Query or Parse larger than the target's maxStatementBytes: its body was dropped unread (see FrameReader). */
  refuseTooLarge(length: number, expect: Expect.Query | Expect.Parse, now: number, why?: string, code = '54000'): void {
    const limit = this.rt.maxStatementBytes();
    const reason = why ?? `the statement (a message of ${length + 1} bytes) is larger than the ${limit} bytes the sidecar classifies for target "${this.rt.target}" (targets[].postgres.maxStatementBytes)`;
    this.deny({ action: 'deny', reason }, expect, now, `[a message of ${length + 1} bytes, not read]`).denialCode = code;
    // The server skips to Sync after an error; we do the same with what the client sends.
    if (expect === Expect.Parse) this.discarding = true;
  }

  decideOp(op: SqlOperation, text: string): { op: SqlOperation; decision: Decision } {
    if (this.queue.length > 0 && text.includes('\\')) {
      // A statement still in flight could switch standard_conforming_strings or client_encoding
      // (SET, set_config, any function) before the server reads this one, and backslashes are
      // exactly what those settings change. We learn of a switch only at ReadyForQuery, so a text
      // whose meaning depends on it may not be pipelined behind unfinished work.
      return {
        op,
        decision: {
          action: 'deny',
          reason: 'a statement containing backslashes cannot be pipelined behind unfinished statements (they could change how the server reads backslashes); send it after the previous results arrive',
        },
      };
    }
    const auditBlocked = this.rt.audit.blocked?.();
    if (auditBlocked) return { op, decision: { action: 'deny', reason: auditBlocked } };
    const checked = guardStatements(op, {
      prepared: (name) => this.model.statement(name),
      masking: this.masking(),
      readOnly: this.rt.spec().readOnly === true,
      serverReadOnly: this.login.serverReadOnly,
    });
    const decision = decide(this.rt.policy(), checked.op, this.identity);
    // Both refuse: the policy's rule is the answer the agent and the audit trail can act on.
    if (checked.denial && decision.action !== 'deny') return { op: checked.op, decision: checked.denial };
    return { op: checked.op, decision };
  }

  onQuery(f: Frame, text: string, now: number): void {
    if (!this.viewsReady(f)) return;
    const classified = this.classify(f, text);
    if (!classified) return;
    const { op, decision } = this.decideOp(classified, text);
    if (decision.action === 'hold') return this.holds.hold(f, decision, op, text, now);
    if (decision.action === 'deny') {
      this.deny(decision, Expect.Query, now, text, op);
      return;
    }
    this.forward(f);
    this.queue.push({ expect: Expect.Query, op, decision, text, change: this.sqlChange(op, text, false), startedAt: now, sentAt: performance.now(), masked: 0, rows: 0 });
  }

  onParse(f: Frame, now: number): void {
    const p = decodeParse(f);
    const pre = this.holds.preApproved.get(f);
    if (pre) {
      // The held Parse, approved (with the parameters of its Binds in the batch); each later Bind is held again.
      return this.forwardParse(f, p.statement, { op: pre.op, text: pre.text, decision: pre.decision, held: pre.held }, now);
    }
    if (!this.viewsReady(f)) return;
    const classified = this.classify(f, p.text);
    if (!classified) return;
    let { op, decision } = this.decideOp(classified, p.text);
    if (decision.action === 'hold') {
      if (this.rt.approvals) return this.holds.startHeld(f, { decision, op, text: p.text, statement: p.statement, now });
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
  forwardParse(f: Frame, name: string, st: StatementState, now: number): void {
    this.forward(f);
    const change = this.model.request([{ effect: { kind: 'statement', name, value: st } }], true);
    this.queue.push({ expect: Expect.Parse, change, startedAt: now, masked: 0, rows: 0 });
  }

  /** What SQL PREPARE / DEALLOCATE / DISCARD / DECLARE / CLOSE in `op` change, once their CommandComplete confirms it. */
  sqlChange(op: SqlOperation | undefined, text: string, extended: boolean): Change | undefined {
    if (!op?.statements) return undefined;
    const steps = sqlSteps(op.statements, (body) => {
      // A prepared statement is judged alone, whatever let the PREPARE through: an approved PREPARE
      // of a held statement does not approve its executions.
      const bodyOp: SqlOperation = { ...op, statements: [body] };
      const decision = decide(this.rt.policy(), bodyOp, this.identity);
      return { op: bodyOp, text, decision, held: decision.action === 'hold' ? decision : undefined };
    });
    return this.model.request(steps, extended);
  }

  onBind(f: Frame): void {
    const b = decodeBindHead(f);
    const found = this.model.statement(b.statement);
    if (found.kind === 'wait') return this.waitForServer(f, b.statement);
    const st = found.kind === 'known' ? found.value : undefined;
    const pre = this.holds.preApproved.get(f);
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
      if (this.rt.approvals) return this.holds.startHeld(f, { decision: st.held, op: st.op, text: st.text, statement: b.statement, now });
      this.deny({ ...st.held, action: 'deny', reason: noApprovalReason(st.held) }, Expect.Parse, now, st.text, st.op);
      this.discarding = true;
      return;
    }
    // A fresh state per Bind: answers for an earlier portal of the same name must not land on this one.
    const portal: PortalState = { stmt: st, formats: b.resultFormats, shape: st.shape, approval: approved ? pre.approval : undefined };
    this.forward(f);
    const change = this.model.request([{ effect: { kind: 'portal', name: b.portal, value: portal } }], true);
    this.queue.push({ expect: Expect.Bind, change, startedAt: 0, masked: 0, rows: 0 });
  }

  /**
   * The meaning of a name depends on answers to an earlier Sync group still on their way: read
   * nothing more from the agent until they are in, then judge this frame again. Never a guess.
   */
  waitForServer(f: Frame, statement: string): void {
    this.awaiting = statement;
    const copy = copyFrame(f);
    const pre = this.holds.preApproved.get(f);
    if (pre) this.holds.preApproved.set(copy, pre);
    this.replay.unshift(copy);
    this.blockClient();
  }

  /** After server messages: resumes the agent once the name being waited for is settled. */
  checkAwaiting(): void {
    if (this.awaiting === undefined || this.model.statement(this.awaiting).kind === 'wait') return;
    this.awaiting = undefined;
    this.unblockClient();
  }

  onExecute(f: Frame, now: number): void {
    const e = decodeExecute(f);
    let portal = known(this.model.portal(e.portal));
    const masking = this.masking();
    if (masking && (portal?.shape === undefined || portal.shape === NO_SHAPE)) {
      // Without a row description we cannot tell which columns to mask: ask the server for one. A
      // portal we did not see bound (a SQL cursor) is described at every Execute, never remembered.
      portal ??= { formats: NO_FORMATS };
      this.upstreamOut.push(encodeDescribe('P', e.portal));
      this.queue.push({ expect: Expect.DescribePortal, portal, injected: true, startedAt: now, masked: 0, rows: 0 });
    }
    const stmt = portal?.stmt;
    this.forward(f);
    const change = this.sqlChange(stmt?.op, stmt?.text ?? '', true);
    this.queue.push({ expect: Expect.Execute, portal, op: stmt?.op, decision: stmt?.decision, text: stmt?.text, change, startedAt: now, sentAt: now, approval: portal?.approval, masked: 0, rows: 0 });
  }

  /** Sends the server a statement that fails, so transaction and batch state end exactly as a real error would leave them. */
  deny(decision: Decision, expect: Expect.Query | Expect.Parse, now: number, text: string, op?: SqlOperation, approval?: AuditApproval): PendingResponse {
    const failing = `/* agent-warden policy denial */ ${this.rt.denialMarker}`;
    this.upstreamOut.push(expect === Expect.Query ? encodeQuery(failing) : encodeParse('', failing));
    const pending: PendingResponse = { expect, denial: decision, op, text, startedAt: now, approval, masked: 0, rows: 0 };
    this.queue.push(pending);
    return pending;
  }

  // ---------------------------------------------------------------- database -> agent

  onUpstreamData(chunk: Buffer): void {
    if (this.phase !== 'ready') return;
    try {
      if (chunk.length > 0) this.upstream!.reader.push(chunk);
      this.drainUpstream();
    } catch (err) {
      this.onProtocolError(err);
    }
  }

  drainUpstream(): void {
    const reader = this.upstream!.reader;
    while (!this.upstreamBlocked && this.phase === 'ready') {
      const f = this.pendingUpstreamFrame ?? reader.next();
      this.pendingUpstreamFrame = undefined;
      if (!f) break;
      this.onServerFrame(f);
    }
    this.flushClient();
    this.checkAwaiting();
  }

  flushClient(): void {
    if (this.client.destroyed) return;
    const data = this.clientOut.take();
    if (data && !this.client.write(data)) {
      this.upstream!.socket.pause();
      this.client.once('drain', () => this.upstream?.socket.resume());
    }
  }

  pass(f: Frame): void {
    this.clientOut.view(f.buf, f.start, f.end);
  }

  /** The pending request a server message answers; `a`..`c` are the kinds that may produce it. */
  expectHead(a: Expect, b: Expect = a, c: Expect = b): PendingResponse {
    const head = this.queue.peek();
    if (!head || (head.expect !== a && head.expect !== b && head.expect !== c)) {
      throw new ProtocolError(`the server sent an unexpected message: the sidecar lost track of the protocol state`);
    }
    return head;
  }

  onServerFrame(f: Frame): void {
    switch (f.code) {
      case BE.DataRow:
        return this.masker.onDataRow(f);
      case BE.ParseComplete:
        this.model.confirm(this.expectHead(Expect.Parse).change);
        this.queue.shift();
        return this.pass(f);
      case BE.BindComplete:
        this.model.confirm(this.expectHead(Expect.Bind).change);
        this.queue.shift();
        return this.pass(f);
      case BE.CloseComplete:
        this.model.confirm(this.expectHead(Expect.Close).change);
        this.queue.shift();
        return this.pass(f);
      case BE.ParameterDescription: {
        const head = this.expectHead(Expect.DescribeStatement);
        if (!head.injected) this.pass(f);
        return;
      }
      case BE.RowDescription:
        return this.shapes.onRowDescription(f);
      case BE.NoData: {
        const head = this.expectHead(Expect.DescribeStatement, Expect.DescribePortal);
        this.queue.shift();
        if (!head.injected) this.pass(f);
        return;
      }
      case BE.CommandComplete:
        return this.onCommandComplete(f);
      case BE.EmptyQueryResponse: {
        const head = this.expectHead(Expect.Execute, Expect.Query);
        if (head.expect === Expect.Execute) this.audit.finish(this.queue.shift()!);
        return this.pass(f);
      }
      case BE.PortalSuspended:
        this.audit.finish(this.expectHead(Expect.Execute));
        this.queue.shift();
        return this.pass(f);
      case BE.ErrorResponse:
        return this.onError(f);
      case BE.ReadyForQuery: {
        this.expectHead(Expect.Sync, Expect.Query);
        this.queue.shift();
        // Portals end with the transaction (WITH HOLD cursors are described again when executed).
        if (decodeReadyForQuery(f) === 'I') this.model.transactionEnd();
        return this.pass(f);
      }
      case BE.CopyOutResponse:
        return this.masker.onCopyOut(f);
      case BE.CopyData:
        return this.masker.onCopyData(f);
      case BE.ParameterStatus:
        return this.masker.onParameterStatus(f);
      case BE.NoticeResponse:
        return this.masker.onNotice(f);
      case BE.NotificationResponse:
        return this.masker.onNotification(f);
      default:
        return this.pass(f);
    }
  }

  /**
   * Reads nothing more from the server until `settled` (which handles its own failures) is done;
   * then `f` is processed again, ahead of anything newer.
   */
  retryServerFrameAfter(f: Frame, settled: Promise<void>): void {
    this.upstreamBlocked = true;
    this.pendingUpstreamFrame = f;
    this.upstream!.socket.pause();
    this.flushClient();
    settled.then(
      () => {
        this.upstreamBlocked = false;
        if (this.phase !== 'ready') return;
        this.upstream!.socket.resume();
        try {
          this.drainUpstream();
        } catch (err) {
          this.onProtocolError(err);
        }
      },
      // Unexpected (the callers handle their own failures): end the session rather than stall it.
      (err: unknown) => {
        if (this.phase === 'ready') this.onProtocolError(err);
      },
    );
  }

  onCommandComplete(f: Frame): void {
    const head = this.expectHead(Expect.Execute, Expect.Query);
    const tag = decodeCommandComplete(f);
    if (DDL.test(tag)) this.rt.catalog.invalidate();
    this.model.confirmTag(head.change, tag);
    if (head.expect === Expect.Execute) {
      this.audit.finish(this.queue.shift()!);
    } else {
      this.audit.finish(head);
      head.shape = undefined;
      head.plan = undefined;
      head.copyOut = false;
      head.copyPlan = undefined;
      head.rows = 0;
      head.masked = 0;
      head.startedAt = performance.now();
    }
    this.pass(f);
  }

  onError(f: Frame): void {
    const head = this.queue.peek();
    if (head?.denial) {
      // The answer to our deliberately failing statement: tell the agent why instead.
      this.clientOut.push(encodeErrorResponse(this.denialFields(head.denial, head.denialCode)));
      this.audit.finish(head, head.denial);
    } else {
      const masking = this.masking();
      const masked = masking ? maskNoticeMessage(f.code, f.buf, f.body, f.end, masking, this.masker.strictErrorsFor(head, masking), head?.text) : { count: 0 };
      if (head) {
        // The audit record keeps the message as the agent sees it.
        head.error = (masked.frame ? decodeNoticeFields({ ...f, buf: masked.frame, start: 0, body: 5, end: masked.frame.length }) : decodeNoticeFields(f)).M ?? 'error';
        if (masked.count > 0) {
          head.masked += masked.count;
          tally(head, masked.by);
        }
        if (head.op) this.audit.finish(head);
      }
      if (masked.frame) this.clientOut.push(masked.frame);
      else this.pass(f);
    }
    if (head && head.expect !== Expect.Query) {
      // The server now skips everything up to the client's next Sync. When that Sync is not here
      // yet, neither are the messages it skips: we drop them as they come, to keep the queue in step.
      if (!this.queue.dropUntilSync()) this.discarding = true;
    } else if (head) {
      head.denial = undefined;
    }
  }

  denialFields(d: Decision, code = '42501'): ErrorFields {
    const policy = this.rt.policy().name;
    return {
      severity: 'ERROR',
      code,
      message: `agent-warden: ${d.reason}`,
      detail: `policy "${policy}", ${d.rule ? `rule "${d.rule}"` : 'default action'}, target "${this.rt.target}"`,
      hint: d.rule ? 'This statement is blocked by an AccessPolicy; ask your platform team if you need it.' : undefined,
    };
  }
}
