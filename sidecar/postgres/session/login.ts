// Login: answers the agent's startup itself (SSL refusal, cancel requests, the startup packet),
// verifies the caller's token when the policy asks for one, takes a connection slot, logs in
// upstream with the real credentials and checks the server's settings before the session is ready.
import { IdentityError } from '../../../common/identity/errors';
import { tokenFromPassword } from '../../../common/identity/extract';
import { FE } from '../protocol/codes';
import {
  encodeAuthenticationCleartext,
  encodeAuthenticationOk,
  encodeBackendKeyData,
  encodeNegotiateProtocolVersion,
  encodeParameterStatus,
  encodeReadyForQuery,
} from '../protocol/backend';
import { decodeStartup, type StartupPacket } from '../protocol/frontend';
import { filterStartupParams, isSafeClientEncoding } from '../startup-params';
import { connectUpstream, READ_ONLY_PARAMETER, readOnlyStartupError, UpstreamError, type UpstreamConnection } from '../upstream';
import type { PgSession } from '../session';

/** How long the agent has to answer the password request (PostgreSQL's authentication_timeout is 1 min). */
const PASSWORD_TIMEOUT_MS = 60_000;

export class Login {
  /** What the server last reported for default_transaction_read_only. */
  serverReadOnly = false;
  private ourKey?: { processId: number; secretKey: Buffer };
  private passwordWaiter?: (password: string | undefined) => void;
  /** Aborts waiting for a connection slot when the agent leaves first. */
  private readonly slotWait = new AbortController();
  /** Gives this session's upstream connection slot back (at close). */
  private releaseSlot?: () => void;

  constructor(private readonly s: PgSession) {}

  /** At close: stops waiting for a slot or a password, gives the slot and the cancel key back. */
  release(): void {
    this.slotWait.abort();
    this.releaseSlot?.();
    this.releaseSlot = undefined;
    this.passwordWaiter?.(undefined);
    if (this.ourKey) this.s.rt.cancels.unregister(this.ourKey.processId);
  }

  readStartup(): void {
    for (
      let f = this.s.clientReader.nextStartup();
      f && this.s.phase === 'startup';
      f = this.s.phase === 'startup' ? this.s.clientReader.nextStartup() : null
    ) {
      const packet = decodeStartup(f);
      this.onStartupPacket(packet);
    }
  }

  private onStartupPacket(packet: StartupPacket): void {
    switch (packet.name) {
      case 'sslRequest':
      case 'gssEncRequest':
        // Honest answer: agent and sidecar share the pod's loopback, there is nothing to encrypt.
        this.s.client.write(Buffer.from('N'));
        return;
      case 'cancelRequest': {
        const target = this.s.rt.cancels.find(packet.processId, packet.secretKey);
        target?.cancel().catch(() => undefined);
        this.s.phase = 'closed';
        this.s.client.end();
        return;
      }
      case 'startup':
        this.s.phase = 'login';
        this.s.client.pause();
        this.login(packet).catch((err) => this.s.onProtocolError(err));
    }
  }

  private async login(packet: Extract<StartupPacket, { name: 'startup' }>): Promise<void> {
    const params = this.startupParams(packet);
    if (!params) return;
    const verifyToken = this.s.rt.verifyToken;
    if (verifyToken) {
      // The caller's token, verified before anything reaches the database.
      const password = await this.askPassword();
      if (this.s.phase !== 'login') return;
      const token = tokenFromPassword(password);
      if (token === undefined) {
        return this.s.fatal(
          '28P01',
          `target "${this.s.rt.target}": no token: this policy requires the caller's JWT as the password`,
          'login-failed',
        );
      }
      try {
        this.s.identity = await verifyToken(token);
      } catch (err) {
        if (this.s.phase !== 'login') return;
        // The verifier's message names the failed check and never contains the token.
        const why = err instanceof IdentityError ? `${err.message} (${err.code})` : 'the token could not be verified';
        return this.s.fatal('28P01', `target "${this.s.rt.target}": token refused: ${why}`, 'login-failed');
      }
      if (this.s.phase !== 'login') return;
    }
    if (this.s.rt.slots) {
      // One upstream connection per session, within the target's maxConnections.
      const slot = await this.s.rt.slots.acquire(this.slotWait.signal);
      if ('refused' in slot) {
        if (this.s.phase === 'closed') return;
        return this.s.fatal('53300', `target "${this.s.rt.target}": ${slot.refused}`, 'login-failed');
      }
      this.releaseSlot = slot.release;
      if (this.s.phase === 'closed') return slot.release();
    }
    let up: UpstreamConnection;
    try {
      up = await connectUpstream(this.s.rt.upstreamOptions(params));
    } catch (err) {
      const e = err instanceof UpstreamError ? err : new UpstreamError((err as Error).message, '08006');
      return this.s.fatal(e.sqlState, `target "${this.s.rt.target}": ${e.message}`, 'login-failed');
    }
    // From here on an upstream socket error must never go unhandled (it would crash the process).
    up.socket.on('error', () => this.s.onUpstreamGone());
    if (this.s.phase === 'closed') {
      up.socket.destroy();
      return;
    }
    this.upstreamUp(up, packet);
  }

  /** The parameters passed upstream, or undefined when the startup packet is refused (the session then ends). */
  private startupParams(packet: Extract<StartupPacket, { name: 'startup' }>): Record<string, string> | undefined {
    const spec = this.s.rt.spec();
    const db = packet.params.database;
    if (db !== undefined && db !== spec.database && db !== packet.params.user) {
      this.s.fatal(
        '3D000',
        `database "${db}" is not served on this port; target "${this.s.rt.target}" serves database "${spec.database}"`,
        'login-failed',
      );
      return undefined;
    }
    const filtered = filterStartupParams(packet.params);
    if (filtered.error) {
      this.s.fatal('42501', filtered.error, 'login-failed');
      return undefined;
    }
    const readOnlyError = spec.readOnly === true ? readOnlyStartupError(filtered.params) : undefined;
    if (readOnlyError) {
      this.s.fatal('42501', readOnlyError, 'login-failed');
      return undefined;
    }
    return filtered.params;
  }

  /** Logged in upstream: checks the server's settings, answers the agent's startup and starts relaying. */
  private upstreamUp(up: UpstreamConnection, packet: Extract<StartupPacket, { name: 'startup' }>): void {
    this.s.upstream = up;
    const unsafe =
      this.checkParameter('client_encoding', up.parameters.get('client_encoding')) ??
      this.checkParameter('standard_conforming_strings', up.parameters.get('standard_conforming_strings')) ??
      // The server must confirm read-only mode (it reports the setting at login since PostgreSQL 14).
      this.checkParameter(READ_ONLY_PARAMETER, up.parameters.get(READ_ONLY_PARAMETER)) ??
      (this.s.rt.spec().readOnly === true && up.parameters.get(READ_ONLY_PARAMETER) !== 'on'
        ? `target "${this.s.rt.target}" is read-only, but the server did not confirm ${READ_ONLY_PARAMETER} = on`
        : undefined);
    if (unsafe) return this.s.fatal('42501', unsafe, 'guard');
    const out: Buffer[] = [];
    const unrecognized = Object.keys(packet.params).filter((k) => k.startsWith('_pq_.'));
    if (packet.minor > 0 || unrecognized.length > 0) out.push(encodeNegotiateProtocolVersion(0, unrecognized));
    out.push(encodeAuthenticationOk());
    for (const [k, v] of up.parameters) out.push(encodeParameterStatus(k, v));
    this.ourKey = this.s.rt.cancels.register(this.s);
    out.push(encodeBackendKeyData(this.ourKey.processId, this.ourKey.secretKey));
    out.push(encodeReadyForQuery('I'));
    this.s.client.write(Buffer.concat(out));
    this.s.phase = 'ready';
    this.s.audit.session('connect');
    up.socket.on('data', (chunk) => this.s.onUpstreamData(chunk));
    up.socket.on('close', () => this.s.onUpstreamGone());
    up.socket.resume();
    this.s.client.resume();
    if (up.reader.pending > 0) this.s.onUpstreamData(Buffer.alloc(0));
    if (this.s.clientReader.pending > 0) this.s.onClientData(Buffer.alloc(0));
  }

  /** Sends AuthenticationCleartextPassword and resolves with the PasswordMessage text (undefined if the agent left). */
  private askPassword(): Promise<string | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.s.phase === 'password')
          this.s.fatal('28P01', `target "${this.s.rt.target}": no password sent within ${PASSWORD_TIMEOUT_MS / 1000}s`, 'login-failed');
      }, PASSWORD_TIMEOUT_MS);
      timer.unref();
      this.passwordWaiter = (password) => {
        clearTimeout(timer);
        this.passwordWaiter = undefined;
        resolve(password);
      };
      this.s.phase = 'password';
      this.s.client.write(encodeAuthenticationCleartext());
      this.s.client.resume();
      if (this.s.clientReader.pending > 0) this.s.onClientData(Buffer.alloc(0));
    });
  }

  /** The one typed frame read before login completes: the agent's PasswordMessage. */
  readPassword(): void {
    const f = this.s.clientReader.next();
    if (!f) return;
    this.s.client.pause();
    this.s.phase = 'login';
    if (f.code !== FE.Password) {
      this.s.fatal('08P01', `expected a password message, got message type 0x${f.code.toString(16)}`, 'login-failed');
      return;
    }
    let end = f.buf.indexOf(0, f.body);
    if (end < 0 || end > f.end) end = f.end;
    this.passwordWaiter?.(f.buf.toString('utf8', f.body, end));
  }

  /** A server-reported parameter that would let the server lex SQL differently from our parser. */
  checkParameter(key: string, value: string | undefined): string | undefined {
    if (value === undefined) return undefined;
    if (key === 'client_encoding' && !isSafeClientEncoding(value)) {
      return `client_encoding changed to "${value}": the sidecar only relays UTF8 sessions, closing the connection`;
    }
    if (key === 'standard_conforming_strings' && value !== 'on') {
      return 'standard_conforming_strings was turned off: backslash escapes would make the server read statements differently from the policy check, closing the connection';
    }
    if (key === READ_ONLY_PARAMETER) this.serverReadOnly = value === 'on';
    if (key === READ_ONLY_PARAMETER && value !== 'on' && this.s.rt.spec().readOnly === true) {
      return `${READ_ONLY_PARAMETER} was turned off on a read-only target, closing the connection`;
    }
    return undefined;
  }
}
