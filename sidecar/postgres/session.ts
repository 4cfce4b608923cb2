// One agent connection: answers the agent's startup itself, logs in upstream with the real
// credentials, then relays messages both ways, deciding on every statement before it is forwarded
// and masking result rows on their way back.
//
// This file is the coordinator: it owns the two sockets, their frame readers and output batches,
// the queue of requests awaiting the server's answers and the model of the session the server
// confirmed, and the few helpers that pause one direction while something is awaited. Each job is
// a class in session/, holding its own state and called directly on the per-frame paths (no
// events, no per-frame closures): login.ts (startup and login), client-dispatch.ts (agent -> database:
// classify, decide, deny), held-batch.ts (holds and the approver), server-dispatch.ts (database ->
// agent: confirmations and errors), result-shapes.ts (RowDescription shapes and row plans),
// result-masking.ts (rows, COPY, notices) and session-audit.ts (audit records).
import { randomUUID } from 'node:crypto';
import type * as net from 'node:net';
import type { Identity } from '../../common/policy/types';
import { FE } from './protocol/codes';
import { encodeErrorResponse } from './protocol/backend';
import { encodeTerminate } from './protocol/frontend';
import { FrameReader, type Frame } from './protocol/frame-reader';
import { ProtocolError } from './protocol/errors';
import { Expect, ResponseQueue, type PendingResponse } from './response-queue';
import { SessionState } from './session-state';
import { withViews, type TargetMasking } from './row-masking';
import { OutputBatch } from './output-batch';
import type { TargetRuntime } from './runtime';
import { sendCancel, type UpstreamConnection } from './upstream';
import { SessionAudit } from './session/session-audit';
import { Login } from './session/login';
import { ClientDispatch } from './session/client-dispatch';
import { ServerDispatch } from './session/server-dispatch';
import { HeldBatches } from './session/held-batch';
import { ResultShapes } from './session/result-shapes';
import { ResultMasking } from './session/result-masking';

type Phase = 'startup' | 'login' | 'password' | 'ready' | 'closed';

export class PgSession {
  readonly id = randomUUID();
  readonly login: Login;
  readonly clientFrames: ClientDispatch;
  readonly serverFrames: ServerDispatch;
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
  /** Waiting (parser, approver, a name the server has yet to confirm): nothing more is read from the agent. */
  private clientBlocked = false;
  /** Waiting (catalog, a COPY's description): nothing more is read from the server. */
  private upstreamBlocked = false;
  /** The server frame processed again once the wait is over. */
  private pendingUpstreamFrame?: Frame;
  /** Frames of a decided held batch, processed again before anything newer from the client. */
  readonly replay: Frame[] = [];
  readonly clientOut = new OutputBatch();
  readonly upstreamOut = new OutputBatch();
  /** Who is asking: the pod's identity, or the subject of the token verified at login. */
  identity: Identity;
  /** The masking last derived with a loaded view list (see masking()). */
  private lastMasking?: TargetMasking;

  constructor(
    readonly client: net.Socket,
    readonly rt: TargetRuntime,
  ) {
    // Statements larger than the target classifies, and any frame that would take a held batch past
    // its limit, are refused from their header: their bodies are never buffered.
    this.clientReader = new FrameReader(
      rt.maxMessageBytes,
      (code) => {
        const held = this.holds.held ? Math.max(0, this.holds.heldLimit() - this.holds.held.bytes - 5) : undefined;
        const statement = code === FE.Query || code === FE.Parse ? rt.maxStatementBytes() : undefined;
        return held === undefined ? statement : statement === undefined ? held : Math.min(held, statement);
      },
      rt.messageBudget,
    );
    this.identity = rt.identity;
    this.login = new Login(this);
    this.clientFrames = new ClientDispatch(this);
    this.serverFrames = new ServerDispatch(this);
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

  // ---------------------------------------------------------------- socket events

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

  private drainClient(): void {
    while (!this.clientBlocked && this.phase === 'ready') {
      const f = this.replay.shift() ?? this.clientReader.next();
      if (!f) break;
      this.clientFrames.onFrame(f);
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

  private drainUpstream(): void {
    const reader = this.upstream!.reader;
    while (!this.upstreamBlocked && this.phase === 'ready') {
      const f = this.pendingUpstreamFrame ?? reader.next();
      this.pendingUpstreamFrame = undefined;
      if (!f) break;
      this.serverFrames.onFrame(f);
    }
    this.flushClient();
    this.clientFrames.checkAwaiting();
  }

  private flushClient(): void {
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
}
