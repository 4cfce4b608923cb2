// One agent connection: answers the agent's startup itself, logs in upstream with the real
// credentials, then relays messages both ways, deciding on every statement before it is forwarded
// and masking result rows on their way back.
import { randomUUID } from 'node:crypto';
import type * as net from 'node:net';
import { decide } from '../../common/policy/engine';
import { IdentityError } from '../../common/identity/errors';
import { tokenFromPassword } from '../../common/identity/extract';
import type { Decision, Identity, SqlOperation, SqlStatementInfo } from '../../common/policy/types';
import { BE, FE } from './protocol/codes';
import {
  decodeCommandComplete,
  decodeCopyResponse,
  decodeNoticeFields,
  decodeParameterStatus,
  decodeReadyForQuery,
  decodeRowDescription,
  encodeAuthenticationCleartext,
  encodeAuthenticationOk,
  encodeBackendKeyData,
  encodeCopyData,
  encodeErrorResponse,
  encodeNegotiateProtocolVersion,
  encodeParameterStatus,
  encodeReadyForQuery,
  type ErrorFields,
} from './protocol/backend';
import {
  decodeBind,
  decodeBindHead,
  decodeClose,
  decodeDescribe,
  decodeExecute,
  decodeParse,
  decodeQuery,
  decodeStartup,
  encodeCopyFail,
  encodeDescribe,
  encodeParse,
  encodeQuery,
  encodeTerminate,
  type StartupPacket,
} from './protocol/frontend';
import { FrameReader, type Frame } from './protocol/frame-reader';
import { ProtocolError } from './protocol/errors';
import { Expect, ResponseQueue, type PendingResponse } from './response-queue';
import { SessionState, sqlSteps, type Change, type Lookup, type PortalState, type StatementState } from './session-state';
import { ActionKind, withViews, detectAll, ignoringSchemas, maskDataRow, missingTables, NO_MASKING, planRow, readsProtectedColumn, touchesMaskedColumns, type RowPlan, type TargetMasking } from './row-masking';
import { copyPlan, maskCopyRow, type CopyPlan } from './copy-masking';
import { maskNoticeMessage, maskNotification, maskParameterValue } from './notice-masking';
import { ShapeCache, type RowShape } from './shape-cache';
import { OutputBatch } from './output-batch';
import type { ClassifiedSql, TargetRuntime } from './runtime';
import { noApproverReason, type HoldOutcome, type HoldRequest } from '../approvals/hold';
import { filterStartupParams, isSafeClientEncoding } from './startup-params';
import { guardStatements } from './guards';
import { connectUpstream, READ_ONLY_PARAMETER, readOnlyStartupError, sendCancel, UpstreamError, type UpstreamConnection } from './upstream';
import type { AuditApproval } from '../../common/audit/record';
import { approvalRecord } from '../audit/records';

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

interface PreApproved {
  op: SqlOperation;
  text: string;
  decision: Decision;
  held: Decision;
  approval?: AuditApproval;
}

/** A frame that outlives the chunk it arrived in. */
function copyFrame(f: Frame): Frame {
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

type Phase = 'startup' | 'login' | 'password' | 'ready' | 'closed';

/** How long the agent has to answer the password request (PostgreSQL's authentication_timeout is 1 min). */
const PASSWORD_TIMEOUT_MS = 60_000;

/**
 * What one held extended-protocol batch may buffer while it waits for its Sync and the approver
 * (at least a statement of the target's maxStatementBytes and its Binds fit): a connection may not
 * make the sidecar hold hundreds of MiB.
 */
export const MAX_HELD_BATCH_BYTES = 16 * 1024 * 1024;

const DDL = /^(CREATE|ALTER|DROP|TRUNCATE|COMMENT|GRANT|REVOKE)\b/;
const protectedCache = new WeakMap<readonly SqlStatementInfo[], { masking: TargetMasking; value: boolean }>();
const kindsCache = new WeakMap<readonly SqlStatementInfo[], string[]>();

function kindsOf(op: SqlOperation): string[] {
  let k = kindsCache.get(op.statements);
  if (!k) {
    k = op.statements.map((s) => s.kind);
    kindsCache.set(op.statements, k);
  }
  return k;
}

/** Stand-in shape when no masking applies: nothing to decode or plan. */
const NO_SHAPE: RowShape = ShapeCache.transient([]);
/** The plan of rows whose shape is unknown (never expected): built per result from the first row, masking everything. */
const UNKNOWN_SHAPE: RowPlan = { actions: [], active: true };
const NO_FORMATS: number[] = [];

function noApprovalReason(d: Decision): string {
  return noApproverReason(d.reason);
}

/** The value of a name the sidecar can vouch for now, else undefined (Describe and Execute then fail closed: no shape, masked whole). */
function known<T>(l: Lookup<T>): T | undefined {
  return l.kind === 'known' ? l.value : undefined;
}

export class PgSession {
  readonly id = randomUUID();
  private phase: Phase = 'startup';
  private readonly clientReader: FrameReader;
  private upstream?: UpstreamConnection;
  /** Prepared statements and portals as the server confirmed them. */
  private readonly model = new SessionState();
  private readonly queue = new ResponseQueue((p) => this.model.settle(p.change));
  /** A Bind waiting for the server to answer earlier changes to its statement name (key: the name). */
  private awaiting?: string;
  private discarding = false;
  private clientBlocked = false;
  private upstreamBlocked = false;
  private pendingUpstreamFrame?: Frame;
  private ourKey?: { processId: number; secretKey: Buffer };
  private holdAbort?: AbortController;
  /** Operations finished on this session, for the audit records' order. */
  private seq = 0;
  /** The last approver's answer, attached to the audit record of the statement it let through or denied. */
  private lastApproval?: AuditApproval;
  /** The extended-protocol batch being held, if any. */
  private held?: HeldBatch;
  /** Frames of a decided held batch, processed again before anything newer from the client. */
  private readonly replay: Frame[] = [];
  /** The held Parse/Bind frames an approver approved: they pass without another decision. */
  private readonly preApproved = new WeakMap<Frame, PreApproved>();
  private readonly clientOut = new OutputBatch();
  private readonly upstreamOut = new OutputBatch();
  /** The last RowDescription seen and its shape: sessions mostly repeat one query. */
  private lastShapeBytes?: Buffer;
  private lastShape?: RowShape;
  /** A CopyOutResponse whose COPY has been described: processed again with this plan. */
  private copyReady?: { frame: Frame; plan: CopyPlan };
  /** A RowDescription whose catalog lookup failed: it gets a one-off shape that masks the unknown tables' columns. */
  private catalogFailed?: Frame;
  /** Who is asking: the pod's identity, or the subject of the token verified at login. */
  private identity: Identity;
  private passwordWaiter?: (password: string | undefined) => void;
  /** Aborts waiting for a connection slot when the agent leaves first. */
  private readonly slotWait = new AbortController();
  /** What the server last reported for default_transaction_read_only. */
  private serverReadOnly = false;
  /** Gives this session's upstream connection slot back (at close). */
  private releaseSlot?: () => void;
  /** The classification of the frame that waited for the parser worker, picked up when it is processed again. */
  private classified?: { frame: Frame; op: SqlOperation };
  /** The masking last derived with a loaded view list (see masking()). */
  private lastMasking?: TargetMasking;

  constructor(
    private readonly client: net.Socket,
    private readonly rt: TargetRuntime,
  ) {
    // Statements larger than the target classifies, and any frame that would take a held batch past
    // its limit, are refused from their header: their bodies are never buffered.
    this.clientReader = new FrameReader(rt.maxMessageBytes, (code) => {
      const held = this.held ? Math.max(0, this.heldLimit() - this.held.bytes - 5) : undefined;
      const statement = code === FE.Query || code === FE.Parse ? rt.maxStatementBytes() : undefined;
      return held === undefined ? statement : statement === undefined ? held : Math.min(held, statement);
    }, rt.messageBudget);
    this.identity = rt.identity;
    client.setNoDelay(true);
    client.on('data', (chunk) => this.onClientData(chunk));
    client.on('error', () => this.close('client socket error'));
    client.on('close', () => this.close('client disconnected', true));
  }

  // ---------------------------------------------------------------- lifecycle

  /** `cancelRunning`: the agent left, so a query still running upstream is cancelled rather than left to finish. */
  private close(reason: string, cancelRunning = false): void {
    if (this.phase === 'closed') return;
    const wasReady = this.phase === 'ready';
    this.phase = 'closed';
    this.clientReader.dispose();
    this.holdAbort?.abort(new Error(reason));
    this.slotWait.abort();
    this.releaseSlot?.();
    this.releaseSlot = undefined;
    this.passwordWaiter?.(undefined);
    if (this.ourKey) this.rt.cancels.unregister(this.ourKey.processId);
    const up = this.upstream;
    if (up) {
      // A query still running upstream keeps going after the agent left unless we cancel it.
      if (cancelRunning && this.queue.length > 0) this.cancel().catch(() => undefined);
      if (!up.socket.destroyed) up.socket.end(encodeTerminate());
      setTimeout(() => up.socket.destroy(), 1000).unref();
    }
    if (!this.client.destroyed) this.client.end();
    if (wasReady) this.rt.audit.session({ sessionId: this.id, target: this.rt.target, event: 'disconnect', message: reason });
  }

  private fatal(code: string, message: string, event: 'protocol-error' | 'login-failed' | 'guard' = 'protocol-error'): void {
    this.rt.audit.session({ sessionId: this.id, target: this.rt.target, event, message });
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

  private onClientData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    try {
      this.clientReader.push(chunk);
      // Waiting (parser, approver): what is in flight is kept, nothing more is read (a drain event may have resumed us).
      if (this.clientBlocked) this.client.pause();
      if (this.phase === 'startup') this.readStartup();
      else if (this.phase === 'password') this.readPassword();
      else if (this.phase === 'ready') this.drainClient();
    } catch (err) {
      this.onProtocolError(err);
    }
  }

  private onProtocolError(err: unknown): void {
    if (err instanceof ProtocolError) {
      this.fatal(err.code === 'message_too_large' ? '54000' : '08P01', err.message);
    } else {
      this.fatal('XX000', `internal error in the sidecar: ${(err as Error).message}`);
    }
  }

  private readStartup(): void {
    for (let f = this.clientReader.nextStartup(); f && this.phase === 'startup'; f = this.phase === 'startup' ? this.clientReader.nextStartup() : null) {
      const packet = decodeStartup(f);
      this.onStartupPacket(packet);
    }
  }

  private onStartupPacket(packet: StartupPacket): void {
    switch (packet.name) {
      case 'sslRequest':
      case 'gssEncRequest':
        // Honest answer: agent and sidecar share the pod's loopback, there is nothing to encrypt.
        this.client.write(Buffer.from('N'));
        return;
      case 'cancelRequest': {
        const target = this.rt.cancels.find(packet.processId, packet.secretKey);
        target?.cancel().catch(() => undefined);
        this.phase = 'closed';
        this.client.end();
        return;
      }
      case 'startup':
        this.phase = 'login';
        this.client.pause();
        this.login(packet).catch((err) => this.onProtocolError(err));
    }
  }

  private async login(packet: Extract<StartupPacket, { name: 'startup' }>): Promise<void> {
    const spec = this.rt.spec();
    const db = packet.params.database;
    if (db !== undefined && db !== spec.database && db !== packet.params.user) {
      return this.fatal('3D000', `database "${db}" is not served on this port; target "${this.rt.target}" serves database "${spec.database}"`, 'login-failed');
    }
    const filtered = filterStartupParams(packet.params);
    if (filtered.error) return this.fatal('42501', filtered.error, 'login-failed');
    const readOnlyError = spec.readOnly === true ? readOnlyStartupError(filtered.params) : undefined;
    if (readOnlyError) return this.fatal('42501', readOnlyError, 'login-failed');
    const verifyToken = this.rt.verifyToken;
    if (verifyToken) {
      // The caller's token, verified before anything reaches the database.
      const password = await this.askPassword();
      if (this.phase !== 'login') return;
      const token = tokenFromPassword(password);
      if (token === undefined) {
        return this.fatal('28P01', `target "${this.rt.target}": no token: this policy requires the caller's JWT as the password`, 'login-failed');
      }
      try {
        this.identity = await verifyToken(token);
      } catch (err) {
        if (this.phase !== 'login') return;
        // The verifier's message names the failed check and never contains the token.
        const why = err instanceof IdentityError ? `${err.message} (${err.code})` : 'the token could not be verified';
        return this.fatal('28P01', `target "${this.rt.target}": token refused: ${why}`, 'login-failed');
      }
      if (this.phase !== 'login') return;
    }
    if (this.rt.slots) {
      // One upstream connection per session, within the target's maxConnections.
      const slot = await this.rt.slots.acquire(this.slotWait.signal);
      if ('refused' in slot) {
        if (this.phase === 'closed') return;
        return this.fatal('53300', `target "${this.rt.target}": ${slot.refused}`, 'login-failed');
      }
      this.releaseSlot = slot.release;
      if (this.phase === 'closed') return slot.release();
    }
    let up: UpstreamConnection;
    try {
      up = await connectUpstream(this.rt.upstreamOptions(filtered.params));
    } catch (err) {
      const e = err instanceof UpstreamError ? err : new UpstreamError((err as Error).message, '08006');
      return this.fatal(e.sqlState, `target "${this.rt.target}": ${e.message}`, 'login-failed');
    }
    // From here on an upstream socket error must never go unhandled (it would crash the process).
    up.socket.on('error', () => this.onUpstreamGone());
    if (this.phase === 'closed') {
      up.socket.destroy();
      return;
    }
    this.upstream = up;
    const unsafe =
      this.checkParameter('client_encoding', up.parameters.get('client_encoding')) ??
      this.checkParameter('standard_conforming_strings', up.parameters.get('standard_conforming_strings')) ??
      // The server must confirm read-only mode (it reports the setting at login since PostgreSQL 14).
      this.checkParameter(READ_ONLY_PARAMETER, up.parameters.get(READ_ONLY_PARAMETER)) ??
      (this.rt.spec().readOnly === true && up.parameters.get(READ_ONLY_PARAMETER) !== 'on'
        ? `target "${this.rt.target}" is read-only, but the server did not confirm ${READ_ONLY_PARAMETER} = on`
        : undefined);
    if (unsafe) return this.fatal('42501', unsafe, 'guard');
    const out: Buffer[] = [];
    const unrecognized = Object.keys(packet.params).filter((k) => k.startsWith('_pq_.'));
    if (packet.minor > 0 || unrecognized.length > 0) out.push(encodeNegotiateProtocolVersion(0, unrecognized));
    out.push(encodeAuthenticationOk());
    for (const [k, v] of up.parameters) out.push(encodeParameterStatus(k, v));
    this.ourKey = this.rt.cancels.register(this);
    out.push(encodeBackendKeyData(this.ourKey.processId, this.ourKey.secretKey));
    out.push(encodeReadyForQuery('I'));
    this.client.write(Buffer.concat(out));
    this.phase = 'ready';
    this.rt.audit.session({ sessionId: this.id, target: this.rt.target, event: 'connect' });
    up.socket.on('data', (chunk) => this.onUpstreamData(chunk));
    up.socket.on('close', () => this.onUpstreamGone());
    up.socket.resume();
    this.client.resume();
    if (up.reader.pending > 0) this.onUpstreamData(Buffer.alloc(0));
    if (this.clientReader.pending > 0) this.onClientData(Buffer.alloc(0));
  }

  /** Sends AuthenticationCleartextPassword and resolves with the PasswordMessage text (undefined if the agent left). */
  private askPassword(): Promise<string | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.phase === 'password') this.fatal('28P01', `target "${this.rt.target}": no password sent within ${PASSWORD_TIMEOUT_MS / 1000}s`, 'login-failed');
      }, PASSWORD_TIMEOUT_MS);
      timer.unref();
      this.passwordWaiter = (password) => {
        clearTimeout(timer);
        this.passwordWaiter = undefined;
        resolve(password);
      };
      this.phase = 'password';
      this.client.write(encodeAuthenticationCleartext());
      this.client.resume();
      if (this.clientReader.pending > 0) this.onClientData(Buffer.alloc(0));
    });
  }

  /** The one typed frame read before login completes: the agent's PasswordMessage. */
  private readPassword(): void {
    const f = this.clientReader.next();
    if (!f) return;
    this.client.pause();
    this.phase = 'login';
    if (f.code !== FE.Password) {
      this.fatal('08P01', `expected a password message, got message type 0x${f.code.toString(16)}`, 'login-failed');
      return;
    }
    let end = f.buf.indexOf(0, f.body);
    if (end < 0 || end > f.end) end = f.end;
    this.passwordWaiter?.(f.buf.toString('utf8', f.body, end));
  }

  private onUpstreamGone(): void {
    if (this.phase !== 'ready') return;
    this.fatal('08006', `lost the connection to the database of target "${this.rt.target}"`);
  }

  /** A server-reported parameter that would let the server lex SQL differently from our parser. */
  private checkParameter(key: string, value: string | undefined): string | undefined {
    if (value === undefined) return undefined;
    if (key === 'client_encoding' && !isSafeClientEncoding(value)) {
      return `client_encoding changed to "${value}": the sidecar only relays UTF8 sessions, closing the connection`;
    }
    if (key === 'standard_conforming_strings' && value !== 'on') {
      return 'standard_conforming_strings was turned off: backslash escapes would make the server read statements differently from the policy check, closing the connection';
    }
    if (key === READ_ONLY_PARAMETER) this.serverReadOnly = value === 'on';
    if (key === READ_ONLY_PARAMETER && value !== 'on' && this.rt.spec().readOnly === true) {
      return `${READ_ONLY_PARAMETER} was turned off on a read-only target, closing the connection`;
    }
    return undefined;
  }

  // ---------------------------------------------------------------- agent -> database

  private drainClient(): void {
    while (!this.clientBlocked && this.phase === 'ready') {
      const f = this.replay.shift() ?? this.clientReader.next();
      if (!f) break;
      this.onClientFrame(f);
    }
    this.flushUpstream();
  }

  private forward(f: Frame): void {
    this.upstreamOut.view(f.buf, f.start, f.end);
  }

  private flushUpstream(): void {
    const up = this.upstream;
    if (!up) return;
    const data = this.upstreamOut.take();
    if (data && !up.socket.write(data)) {
      this.client.pause();
      up.socket.once('drain', () => this.client.resume());
    }
  }

  private onClientFrame(f: Frame): void {
    if (this.held) return this.bufferHeld(f);
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
  private classify(f: Frame, text: string): SqlOperation | undefined {
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
  private retryAfter<T>(f: Frame, settled: Promise<T>, onValue?: (value: T) => void): void {
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

  private blockClient(): void {
    this.clientBlocked = true;
    this.client.pause();
  }

  private unblockClient(): void {
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
  private masking(): TargetMasking | undefined {
    const m = this.rt.masking();
    if (!m || m.columnRules.length === 0) return m;
    const list = this.rt.catalog.viewList();
    if (!(list instanceof Promise)) return (this.lastMasking = withViews(m, list));
    // The last list, as long as it was derived from the same policy's masking.
    const last = this.lastMasking;
    return last !== undefined && last.columnRules === m.columnRules ? last : withViews(m, 'unavailable');
  }

  /** False while the view list loads: `f` is processed again once it is in (like a classification). */
  private viewsReady(f: Frame): boolean {
    const m = this.rt.masking();
    if (!m || m.columnRules.length === 0) return true;
    const list = this.rt.catalog.viewList();
    if (!(list instanceof Promise)) return true;
    this.retryAfter(f, list);
    return false;
  }

  private toOp(c: ClassifiedSql): SqlOperation {
    return { type: 'sql', target: this.rt.target, statements: c.statements, parseError: c.parseError, parserFailure: c.parserFailure };
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
  private refuseTooLarge(length: number, expect: Expect.Query | Expect.Parse, now: number, why?: string, code = '54000'): void {
    const limit = this.rt.maxStatementBytes();
    const reason = why ?? `the statement (a message of ${length + 1} bytes) is larger than the ${limit} bytes the sidecar classifies for target "${this.rt.target}" (targets[].postgres.maxStatementBytes)`;
    this.deny({ action: 'deny', reason }, expect, now, `[a message of ${length + 1} bytes, not read]`).denialCode = code;
    // The server skips to Sync after an error; we do the same with what the client sends.
    if (expect === Expect.Parse) this.discarding = true;
  }

  private decideOp(op: SqlOperation, text: string): { op: SqlOperation; decision: Decision } {
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
      serverReadOnly: this.serverReadOnly,
    });
    const decision = decide(this.rt.policy(), checked.op, this.identity);
    // Both refuse: the policy's rule is the answer the agent and the audit trail can act on.
    if (checked.denial && decision.action !== 'deny') return { op: checked.op, decision: checked.denial };
    return { op: checked.op, decision };
  }

  private onQuery(f: Frame, text: string, now: number): void {
    if (!this.viewsReady(f)) return;
    const classified = this.classify(f, text);
    if (!classified) return;
    const { op, decision } = this.decideOp(classified, text);
    if (decision.action === 'hold') return this.hold(f, decision, op, text, now);
    if (decision.action === 'deny') {
      this.deny(decision, Expect.Query, now, text, op);
      return;
    }
    this.forward(f);
    this.queue.push({ expect: Expect.Query, op, decision, text, change: this.sqlChange(op, text, false), startedAt: now, sentAt: performance.now(), masked: 0, rows: 0 });
  }

  private onParse(f: Frame, now: number): void {
    const p = decodeParse(f);
    const pre = this.preApproved.get(f);
    if (pre) {
      // The held Parse, approved (with the parameters of its Binds in the batch); each later Bind is held again.
      return this.forwardParse(f, p.statement, { op: pre.op, text: pre.text, decision: pre.decision, held: pre.held }, now);
    }
    if (!this.viewsReady(f)) return;
    const classified = this.classify(f, p.text);
    if (!classified) return;
    let { op, decision } = this.decideOp(classified, p.text);
    if (decision.action === 'hold') {
      if (this.rt.approvals) return this.startHeld(f, { decision, op, text: p.text, statement: p.statement, now });
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
    this.forward(f);
    const change = this.model.request([{ effect: { kind: 'statement', name, value: st } }], true);
    this.queue.push({ expect: Expect.Parse, change, startedAt: now, masked: 0, rows: 0 });
  }

  /** What SQL PREPARE / DEALLOCATE / DISCARD / DECLARE / CLOSE in `op` change, once their CommandComplete confirms it. */
  private sqlChange(op: SqlOperation | undefined, text: string, extended: boolean): Change | undefined {
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

  private onBind(f: Frame): void {
    const b = decodeBindHead(f);
    const found = this.model.statement(b.statement);
    if (found.kind === 'wait') return this.waitForServer(f, b.statement);
    const st = found.kind === 'known' ? found.value : undefined;
    const pre = this.preApproved.get(f);
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
      if (this.rt.approvals) return this.startHeld(f, { decision: st.held, op: st.op, text: st.text, statement: b.statement, now });
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
  private waitForServer(f: Frame, statement: string): void {
    this.awaiting = statement;
    const copy = copyFrame(f);
    const pre = this.preApproved.get(f);
    if (pre) this.preApproved.set(copy, pre);
    this.replay.unshift(copy);
    this.blockClient();
  }

  /** After server messages: resumes the agent once the name being waited for is settled. */
  private checkAwaiting(): void {
    if (this.awaiting === undefined || this.model.statement(this.awaiting).kind === 'wait') return;
    this.awaiting = undefined;
    this.unblockClient();
  }

  private onExecute(f: Frame, now: number): void {
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
  private deny(decision: Decision, expect: Expect.Query | Expect.Parse, now: number, text: string, op?: SqlOperation, approval?: AuditApproval): PendingResponse {
    const failing = `/* agent-warden policy denial */ ${this.rt.denialMarker}`;
    this.upstreamOut.push(expect === Expect.Query ? encodeQuery(failing) : encodeParse('', failing));
    const pending: PendingResponse = { expect, denial: decision, op, text, startedAt: now, approval, masked: 0, rows: 0 };
    this.queue.push(pending);
    return pending;
  }

  private takeApproval(): AuditApproval | undefined {
    const a = this.lastApproval;
    this.lastApproval = undefined;
    return a;
  }

  /** A held simple Query: nothing more from the agent is read until the approver decides. */
  private hold(f: Frame, decision: Decision, op: SqlOperation, text: string, now: number): void {
    if (!this.rt.approvals) {
      this.deny({ ...decision, action: 'deny', reason: noApprovalReason(decision) }, Expect.Query, now, text, op);
      return;
    }
    this.askApprover(decision, { sql: text }, (outcome) => {
      if (this.discarding) {
        // An error earlier in the batch came in while the approver decided: the server skips this
        // Query, so nothing may be sent for it (the server would not answer).
        const d: Decision = { ...decision, action: outcome.approved ? decision.action : 'deny', reason: outcome.reason };
        return this.skipped({ expect: Expect.Query, op, text, decision: d, startedAt: now, approval: this.takeApproval(), masked: 0, rows: 0 }, !outcome.approved);
      }
      if (outcome.approved) {
        const approved: Decision = { ...decision, reason: outcome.reason };
        this.forward(f);
        const change = this.sqlChange(op, text, false);
        this.queue.push({ expect: Expect.Query, op, decision: approved, text, change, startedAt: now, sentAt: performance.now(), approval: this.takeApproval(), masked: 0, rows: 0 });
      } else {
        this.deny({ ...decision, action: 'deny', reason: outcome.reason }, Expect.Query, now, text, op, this.takeApproval());
      }
    });
  }

  /**
   * Asks the approval service, reading nothing more from the agent meanwhile. `decided` runs once the
   * approver answers (it may ask again); then the agent's messages flow again.
   */
  private askApprover(decision: Decision, operation: HoldRequest['operation'], decided: (outcome: HoldOutcome) => void): void {
    const gate = this.rt.approvals!;
    this.blockClient();
    this.flushUpstream();
    const abort = new AbortController();
    this.holdAbort = abort;
    const waitStart = performance.now();
    gate
      .hold({
        target: this.rt.target,
        policy: this.rt.policy().name,
        rule: decision.rule ?? '',
        decision,
        identity: this.identity,
        operation,
        signal: abort.signal,
      })
      .then(
        (outcome) => {
          if (this.phase !== 'ready') return;
          this.lastApproval = approvalRecord(outcome, waitStart);
          decided(outcome);
          if (this.holdAbort !== abort) return; // `decided` asked again
          this.holdAbort = undefined;
          this.unblockClient();
        },
        (err: Error) => {
          // The agent left while waiting (the wait was aborted): nothing to report to anyone.
          if (this.phase !== 'ready') return;
          this.fatal('57014', `approval wait failed: ${err.message}`);
        },
      )
      .catch((err) => {
        if (this.phase === 'ready') this.onProtocolError(err);
      });
  }

  /**
   * Starts holding an extended-protocol batch at a held Parse (or a Bind of a held statement):
   * nothing of it is forwarded until the approver has seen the statement with its parameters.
   */
  private startHeld(f: Frame, h: Pick<HeldBatch, 'decision' | 'op' | 'text' | 'statement' | 'now'>): void {
    this.held = { ...h, frames: [], bytes: 0, binds: [], params: [], bindsOpen: true };
    this.bufferHeld(f);
  }

  /** What one held batch may buffer: MAX_HELD_BATCH_BYTES, or more when the target allows larger statements. */
  private heldLimit(): number {
    return Math.max(MAX_HELD_BATCH_BYTES, this.rt.maxStatementBytes() + (1 << 20));
  }

  private bufferHeld(f: Frame): void {
    const h = this.held!;
    if (f.code === FE.Terminate) {
      // The agent left before the batch was sent: none of it runs.
      this.held = undefined;
      this.onClientFrame(f);
      return;
    }
    const limit = this.heldLimit();
    const size = f.skipped !== undefined ? 1 + f.skipped : f.end - f.start;
    if (h.bytes + size > limit) {
      // Refused before the frame is copied: the batch never holds more than the limit.
      this.resolveHeld(false, `${h.decision.reason}; the held batch grew past ${limit} bytes before its Sync, so it is denied`);
      // Processed after the batch's other frames (which the denial discards up to the Sync).
      this.replay.splice(h.frames.length - 1, 0, f);
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
      const pre: PreApproved = { op: h.op, text: h.text, decision: { ...h.decision, reason }, held: h.decision, approval: this.takeApproval() };
      if (trigger.code === FE.Parse) this.preApproved.set(trigger, pre);
      for (const b of h.binds) this.preApproved.set(b, pre);
      this.replay.unshift(...h.frames);
    } else if (this.discarding) {
      // An error earlier in the batch came in meanwhile: the server skips up to Sync, so do we.
      const denial: Decision = { ...h.decision, action: 'deny', reason };
      this.skipped({ expect: Expect.Parse, op: h.op, text: h.text, decision: denial, startedAt: h.now, approval: this.takeApproval(), masked: 0, rows: 0 }, true);
      this.replay.unshift(...rest);
    } else {
      this.deny({ ...h.decision, action: 'deny', reason }, Expect.Parse, h.now, h.text, h.op, this.takeApproval());
      this.discarding = true;
      this.replay.unshift(...rest);
    }
  }

  /** Audits a statement the server skips (an earlier error in its batch), which is never sent. */
  private skipped(p: PendingResponse, denied: boolean): void {
    p.error = 'skipped: an earlier statement of the batch failed';
    this.finish(p, denied ? p.decision : undefined);
  }

  // ---------------------------------------------------------------- database -> agent

  private onUpstreamData(chunk: Buffer): void {
    if (this.phase !== 'ready') return;
    try {
      if (chunk.length > 0) this.upstream!.reader.push(chunk);
      this.drainUpstream();
    } catch (err) {
      this.onProtocolError(err);
    }
  }

  private drainUpstream(): void {
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

  private flushClient(): void {
    if (this.client.destroyed) return;
    const data = this.clientOut.take();
    if (data && !this.client.write(data)) {
      this.upstream!.socket.pause();
      this.client.once('drain', () => this.upstream?.socket.resume());
    }
  }

  private pass(f: Frame): void {
    this.clientOut.view(f.buf, f.start, f.end);
  }

  /** The pending request a server message answers; `a`..`c` are the kinds that may produce it. */
  private expectHead(a: Expect, b: Expect = a, c: Expect = b): PendingResponse {
    const head = this.queue.peek();
    if (!head || (head.expect !== a && head.expect !== b && head.expect !== c)) {
      throw new ProtocolError(`the server sent an unexpected message: the sidecar lost track of the protocol state`);
    }
    return head;
  }

  private onServerFrame(f: Frame): void {
    switch (f.code) {
      case BE.DataRow:
        return this.onDataRow(f);
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
        return this.onRowDescription(f);
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
        if (head.expect === Expect.Execute) this.finish(this.queue.shift()!);
        return this.pass(f);
      }
      case BE.PortalSuspended:
        this.finish(this.expectHead(Expect.Execute));
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
        return this.onCopyOut(f);
      case BE.CopyData:
        return this.onCopyData(f);
      case BE.ParameterStatus:
        return this.onParameterStatus(f);
      case BE.NoticeResponse:
        return this.onNotice(f);
      case BE.NotificationResponse:
        return this.onNotification(f);
      default:
        return this.pass(f);
    }
  }

  private onRowDescription(f: Frame): void {
    const head = this.expectHead(Expect.Query, Expect.DescribeStatement, Expect.DescribePortal);
    const shape = this.shapeOf(f);
    if (!shape) return; // waiting for the catalog; this frame is processed again afterwards
    if (head.expect === Expect.Query) {
      head.shape = shape;
      head.plan = undefined;
      return this.pass(f);
    }
    this.queue.shift();
    // Written into the state captured when the Describe was sent, never looked up by name now.
    if (head.expect === Expect.DescribeStatement) {
      if (head.statement) head.statement.shape = shape;
    } else if (head.portal) {
      head.portal.shape = shape;
      head.portal.formats = NO_FORMATS; // a portal's description already carries the bound formats
    }
    if (!head.injected) this.pass(f);
  }

  /** The decoded shape of a RowDescription, from the cache when this exact description was seen before. */
  private shapeOf(f: Frame): RowShape | undefined {
    const masking = this.rt.masking();
    if (!masking) return NO_SHAPE;
    const bytes = f.buf.subarray(f.body, f.end);
    if (this.lastShape && this.lastShapeBytes!.equals(bytes) && this.rt.shapes.has(this.lastShape)) return this.lastShape;
    const key = bytes.toString('latin1');
    const cached = this.rt.shapes.get(key);
    if (cached) return this.remember(bytes, cached);
    const fields = decodeRowDescription(f);
    const missing = missingTables(fields, masking, this.rt.catalog);
    if (missing.length > 0) {
      if (this.catalogFailed === f || this.rt.catalog.unavailable) {
        // The catalog cannot name these tables now: a one-off shape, neither cached nor remembered,
        // whose plan masks every column of the unknown tables (planRow fails closed on them).
        this.catalogFailed = undefined;
        return ShapeCache.transient(fields);
      }
      this.waitForCatalog(f, missing);
      return undefined;
    }
    return this.remember(bytes, this.rt.shapes.add(key, fields));
  }

  private remember(bytes: Buffer, shape: RowShape): RowShape {
    // A copy: the frame's buffer is the chunk it arrived in, which we must not keep alive.
    this.lastShapeBytes = Buffer.from(bytes);
    this.lastShape = shape;
    return shape;
  }

  /** Pauses the server stream until the catalog names the tables this result comes from. */
  private waitForCatalog(f: Frame, oids: number[]): void {
    const failed = (err: Error): void => {
      if (this.phase === 'ready') {
        const message = `catalog lookup for tables ${oids.join(', ')} failed (${err.message}): their columns are masked whole until it succeeds`;
        this.rt.audit.session({ sessionId: this.id, target: this.rt.target, event: 'catalog-error', message });
      }
      // Processed once more, without waiting again (the catalog backs off after a failure).
      this.catalogFailed = f;
    };
    this.retryServerFrameAfter(f, this.rt.catalog.load(oids).then(() => undefined, failed));
  }

  /**
   * Reads nothing more from the server until `settled` (which handles its own failures) is done;
   * then `f` is processed again, ahead of anything newer.
   */
  private retryServerFrameAfter(f: Frame, settled: Promise<void>): void {
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

  /** Cached per classification: the same statement runs over and over on one connection. */
  private readsProtected(masking: TargetMasking, op: SqlOperation): boolean {
    let byMasking = protectedCache.get(op.statements);
    if (!byMasking || byMasking.masking !== masking) {
      // FETCH reads a cursor declared earlier, whose query we do not have here: its computed columns are masked.
      const value = readsProtectedColumn(masking, op.statements) || (masking.columnRules.length > 0 && op.statements.some((s) => s.kind === 'FETCH'));
      byMasking = { masking, value };
      protectedCache.set(op.statements, byMasking);
    }
    return byMasking.value;
  }

  private planFor(head: PendingResponse): RowPlan {
    const masking = this.masking();
    if (!masking) return (head.plan = NO_MASKING);
    let shape = head.shape;
    let formats: number[] | undefined;
    if (head.expect === Expect.Execute) {
      shape = head.portal?.shape;
      formats = head.portal?.formats;
    }
    if (!shape || shape === NO_SHAPE) return (head.plan = UNKNOWN_SHAPE);
    // An Execute of a portal we did not see bound (a SQL cursor) may compute from protected columns.
    const readsProtected = head.op ? this.readsProtected(masking, head.op) : masking.columnRules.length > 0;
    const variant = formats && formats.length > 0 ? `${readsProtected ? 1 : 0}:${formats.join(',')}` : readsProtected ? '1:' : '0:';
    // A shape the cache dropped since (masking or catalog changed) is taken back with its plans cleared.
    if (!shape.transient && !this.rt.shapes.has(shape)) this.rt.shapes.adopt(shape);
    let plan = shape.plans.get(variant);
    if (!plan) {
      plan = planRow({ fields: shape.fields, formats, readsProtected }, masking, this.rt.catalog);
      if (!shape.transient) shape.plans.set(variant, plan);
    }
    return (head.plan = plan);
  }

  private onDataRow(f: Frame): void {
    const head = this.expectHead(Expect.Execute, Expect.Query);
    head.rows++;
    let plan = head.plan ?? this.planFor(head);
    if (!plan.active) return this.pass(f);
    const masking = this.rt.masking();
    if (!masking) return this.pass(f);
    if (plan === UNKNOWN_SHAPE) plan = head.plan = this.unknownShapePlan(f, masking);
    const r = maskDataRow(f, plan, masking);
    head.masked += r.count;
    if (r.count > 0) tally(head, r.by);
    if (r.frame) this.clientOut.push(r.frame);
    else this.pass(f);
  }

  /**
   * Rows whose description we never saw (fail closed): with column rules every value is replaced by
   * NULL, the one value valid for any type; with detectors only, every value is scanned.
   */
  private unknownShapePlan(f: Frame, masking: TargetMasking): RowPlan {
    if (f.end - f.body < 2) throw new ProtocolError('DataRow is too short');
    const n = f.buf.readInt16BE(f.body);
    const action =
      masking.columnRules.length > 0 ? { kind: ActionKind.Whole, strategy: 'redact' as const, nullify: true, skip: 0 } : { kind: ActionKind.Detect, skip: 0 };
    return { active: true, actions: Array.from({ length: n }, () => action) };
  }

  private onCopyOut(f: Frame): void {
    const head = this.expectHead(Expect.Execute, Expect.Query);
    const masking = this.masking();
    const response = decodeCopyResponse(f);
    if (!masking) {
      head.copyOut = true;
      return this.pass(f);
    }
    const columns = masking.columnRules.length > 0;
    let plan: CopyPlan | undefined;
    if (columns) {
      // Described whatever the statement names: a view (or a view over a view) carries masked columns
      // under its own name, and only the described columns tell.
      const ready = this.copyReady;
      if (ready?.frame !== f) return this.describeCopy(f, head, response.columnFormats.length, masking);
      this.copyReady = undefined;
      plan = ready.plan;
    }
    if (response.format === 1 && (plan?.plan.active === true || masking.detectors.length > 0)) {
      // The guard refuses a binary COPY that names masked columns before it runs; this is the backstop.
      // The COPY is already running, and anything but ending the session would leave agent and server out of step.
      return this.fatal('42501', 'COPY ... TO in binary format cannot be masked by the sidecar; use text or CSV format, or SELECT', 'guard');
    }
    if (plan?.plan.active === true) head.copyPlan = plan;
    if (columns) head.copies = (head.copies ?? 0) + 1;
    head.copyOut = true;
    this.pass(f);
  }

  /** The COPY TO statement of `head` that this CopyOutResponse starts (a Query may run several). */
  private copyStatement(head: PendingResponse): SqlStatementInfo | undefined {
    const copies = head.op?.statements.filter((s) => s.kind === 'COPY' && s.copyOut !== undefined) ?? [];
    return copies[head.copies ?? 0];
  }

  /**
   * Pauses the server stream while the COPY's query is described on the control connection, then
   * processes the CopyOutResponse again with a plan. When the columns cannot be learnt, every one is
   * replaced by the NULL marker (fail closed).
   */
  private describeCopy(f: Frame, head: PendingResponse, width: number, masking: TargetMasking): void {
    const stmt = this.copyStatement(head);
    const info = stmt?.copyOut ?? { select: '', format: 'text' as const };
    const readsProtected = head.op ? this.readsProtected(masking, head.op) : true;
    const plan = async (): Promise<RowPlan> => {
      if (!stmt) throw new Error('the COPY statement was not classified');
      let fields = await this.rt.catalog.describe(info.select);
      if (fields.length !== width && info.wholeTable && fields.length > 0 && fields[0].tableOid !== 0) {
        const generated = await this.rt.catalog.generatedColumns(fields[0].tableOid);
        fields = fields.filter((x) => !generated.has(x.columnAttr));
      }
      if (fields.length !== width) throw new Error(`the COPY writes ${width} columns, its query describes ${fields.length}`);
      const missing = missingTables(fields, masking, this.rt.catalog);
      if (missing.length > 0) await this.rt.catalog.load(missing);
      return planRow({ fields, formats: [0], readsProtected }, ignoringSchemas(masking), this.rt.catalog);
    };
    const nullAll = (err: Error): RowPlan => {
      if (this.phase === 'ready') {
        // The server's message may quote the agent's own constants: the detectors run over it as over statement text.
        const message = this.maskText(`describing a COPY's columns failed (${err.message}): every column it writes is replaced by NULL`);
        this.rt.audit.session({ sessionId: this.id, target: this.rt.target, event: 'catalog-error', message });
      }
      const all = { kind: ActionKind.Whole, strategy: 'redact' as const, nullify: true, skip: 0 };
      return { active: true, actions: Array.from({ length: width }, () => all) };
    };
    const planned = plan()
      .catch(nullAll)
      .then((rowPlan) => {
        this.copyReady = { frame: f, plan: copyPlan(info, rowPlan) };
      });
    this.retryServerFrameAfter(f, planned);
  }

  private onCopyData(f: Frame): void {
    const head = this.queue.peek();
    const masking = this.rt.masking();
    if (!head?.copyOut || !masking || (masking.detectors.length === 0 && !head.copyPlan)) return this.pass(f);
    let data = f.buf.subarray(f.body, f.end);
    let count = 0;
    const by: Record<string, number> = {};
    if (head.copyPlan) {
      const r = maskCopyRow(data, head.copyPlan, masking);
      if (r) {
        data = r.data;
        count += r.count;
        by.column = r.count;
      }
    }
    const d = masking.detectors.length > 0 ? detectAll(data, masking, by) : undefined;
    if (d) {
      data = d.buf;
      count += d.count;
    }
    if (count === 0) return this.pass(f);
    head.masked += count;
    tally(head, by);
    this.clientOut.push(encodeCopyData(data));
  }

  /** Whether the statement a server message belongs to reads a protected column: its values are redacted whole. */
  private strictFor(head: PendingResponse | undefined, masking: TargetMasking): boolean {
    return head?.op !== undefined && this.readsProtected(masking, head.op);
  }

  /**
   * Errors and notices are redacted also when the statement only names a table with masked columns:
   * the server quotes rows it rejects (`Failing row contains (...)`, `Key (...)=(...) is duplicated`)
   * whatever columns the statement names.
   */
  private strictErrorsFor(head: PendingResponse | undefined, masking: TargetMasking): boolean {
    if (head?.op === undefined) return false;
    return this.readsProtected(masking, head.op) || head.op.statements.some((s) => touchesMaskedColumns(masking, s));
  }

  private onParameterStatus(f: Frame): void {
    const p = decodeParameterStatus(f);
    const unsafe = this.checkParameter(p.key, p.value);
    if (unsafe) return this.fatal('42501', unsafe, 'guard');
    const masking = this.masking();
    if (!masking) return this.pass(f);
    const head = this.queue.peek();
    const r = maskParameterValue(p.value, masking, this.strictFor(head, masking));
    this.pushMasked(f, head, { ...r, frame: r.count > 0 ? encodeParameterStatus(p.key, r.value) : undefined });
  }

  private onNotice(f: Frame): void {
    const masking = this.masking();
    if (!masking) return this.pass(f);
    const head = this.queue.peek();
    this.pushMasked(f, head, maskNoticeMessage(f.code, f.buf, f.body, f.end, masking, this.strictErrorsFor(head, masking), head?.text));
  }

  private onNotification(f: Frame): void {
    const masking = this.masking();
    if (!masking) return this.pass(f);
    const head = this.queue.peek();
    this.pushMasked(f, head, maskNotification(f.buf, f.body, f.end, masking, this.strictFor(head, masking)));
  }

  private pushMasked(f: Frame, head: PendingResponse | undefined, r: { frame?: Buffer; count: number; by?: Record<string, number> }): void {
    if (!r.frame) return this.pass(f);
    if (head) {
      head.masked += r.count;
      tally(head, r.by);
    }
    this.clientOut.push(r.frame);
  }

  private onCommandComplete(f: Frame): void {
    const head = this.expectHead(Expect.Execute, Expect.Query);
    const tag = decodeCommandComplete(f);
    if (DDL.test(tag)) this.rt.catalog.invalidate();
    this.model.confirmTag(head.change, tag);
    if (head.expect === Expect.Execute) {
      this.finish(this.queue.shift()!);
    } else {
      this.finish(head);
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

  private onError(f: Frame): void {
    const head = this.queue.peek();
    if (head?.denial) {
      // The answer to our deliberately failing statement: tell the agent why instead.
      this.clientOut.push(encodeErrorResponse(this.denialFields(head.denial, head.denialCode)));
      this.finish(head, head.denial);
    } else {
      const masking = this.masking();
      const masked = masking ? maskNoticeMessage(f.code, f.buf, f.body, f.end, masking, this.strictErrorsFor(head, masking), head?.text) : { count: 0 };
      if (head) {
        // The audit record keeps the message as the agent sees it.
        head.error = (masked.frame ? decodeNoticeFields({ ...f, buf: masked.frame, start: 0, body: 5, end: masked.frame.length }) : decodeNoticeFields(f)).M ?? 'error';
        if (masked.count > 0) {
          head.masked += masked.count;
          tally(head, masked.by);
        }
        if (head.op) this.finish(head);
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

  private denialFields(d: Decision, code = '42501'): ErrorFields {
    const policy = this.rt.policy().name;
    return {
      severity: 'ERROR',
      code,
      message: `agent-warden: ${d.reason}`,
      detail: `policy "${policy}", ${d.rule ? `rule "${d.rule}"` : 'default action'}, target "${this.rt.target}"`,
      hint: d.rule ? 'This statement is blocked by an AccessPolicy; ask your platform team if you need it.' : undefined,
    };
  }

  private finish(p: PendingResponse, denial?: Decision): void {
    if (!p.op && !denial) return;
    const policy = this.rt.policy();
    const d = denial ?? p.decision;
    const end = performance.now();
    this.rt.audit.statement({
      sessionId: this.id,
      seq: ++this.seq,
      startedAt: performance.timeOrigin + p.startedAt,
      target: this.rt.target,
      policy: policy.name,
      database: this.rt.spec().database,
      text: p.text ?? '',
      maskText: this.maskText,
      decision: denial ? 'deny' : p.masked > 0 ? 'mask' : (d?.action ?? 'allow'),
      rule: d?.rule,
      reason: d?.reason ?? '',
      kinds: p.op ? kindsOf(p.op) : [],
      durationMs: end - p.startedAt,
      upstreamMs: denial || p.sentAt === undefined ? undefined : end - p.sentAt,
      approval: p.approval,
      masked: p.masked,
      maskedBy: p.maskedBy,
      rows: p.rows,
      error: p.error,
      identity: this.identity,
      protocol: p.expect === Expect.Query ? 'simple' : 'extended',
    });
  }

  /** Values the policy's detectors find (a card number in a WHERE clause) never reach the audit trail. */
  private readonly maskText = (text: string): string => {
    const masking = this.rt.masking();
    if (!masking || masking.detectors.length === 0 || text === '') return text;
    let out = text;
    for (const d of masking.detectors) out = d.masker.mask(out).text;
    return out;
  };
}

function tally(p: PendingResponse, by: Record<string, number> | undefined): void {
  if (!by) return;
  const t = (p.maskedBy ??= {});
  for (const k in by) t[k] = (t[k] ?? 0) + by[k];
}
