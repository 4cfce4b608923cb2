// Opens an authenticated connection to the real database with the real credentials, with TLS per
// the target's mode. The agent never sees any of this: it receives only the server's parameters.
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { TlsMode } from '../../common/policy/types';
import { authMethodFor, AuthError, type AuthMethod, type Credentials } from './auth';
import { BE } from './protocol/codes';
import { decodeAuthentication, decodeBackendKeyData, decodeNoticeFields, decodeParameterStatus } from './protocol/backend';
import { encodeCancelRequest, encodeSslRequest, encodeStartup } from './protocol/frontend';
import { FrameReader, type Frame } from './protocol/frame-reader';

export interface UpstreamOptions {
  host: string;
  port: number;
  database: string;
  tls: TlsMode;
  credentials: Credentials;
  /** PEM CA bundle for verify-full; the system store when absent. */
  ca?: string;
  params: Record<string, string>;
  timeoutMs: number;
  maxMessageBytes: number;
}

export interface UpstreamConnection {
  socket: net.Socket;
  /** Holds any bytes that arrived after ReadyForQuery. */
  reader: FrameReader;
  parameters: Map<string, string>;
  processId: number;
  secretKey: Buffer;
}

/** The setting a `readOnly: true` target's sessions start with (on), sent as a startup parameter. */
export const READ_ONLY_PARAMETER = 'default_transaction_read_only';

/** An agent's startup parameter that would override read-only mode, as an error; undefined when fine. */
export function readOnlyStartupError(params: Record<string, string>): string | undefined {
  const v = params[READ_ONLY_PARAMETER];
  if (v === undefined || /^\s*(on|true|yes|1)\s*$/i.test(v)) return undefined;
  return `startup parameter ${READ_ONLY_PARAMETER}=${JSON.stringify(v)} is not allowed: this target is read-only`;
}

/** Startup parameters with read-only mode forced on (a startup parameter outranks role and database settings). */
export function withReadOnly(params: Record<string, string>): Record<string, string> {
  return { ...params, [READ_ONLY_PARAMETER]: 'on' };
}

/** A failure to reach or log in to the upstream; `message` is safe to show the agent (no secrets). */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly sqlState: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UpstreamError';
  }
}

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new UpstreamError(`timed out after ${timeoutMs} ms connecting to ${host}:${port}`, '08001'));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      resolve(sock);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new UpstreamError(`cannot connect to ${host}:${port}: ${err.code ?? err.message}`, '08001', { cause: err }));
    });
  });
}

function readOneByte(sock: net.Socket, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new UpstreamError('timed out waiting for the TLS answer', '08001')), timeoutMs);
    const onData = (b: Buffer): void => done(undefined, b);
    const onClose = (): void => done(new UpstreamError('connection closed during TLS negotiation', '08006'));
    const done = (err?: Error, b?: Buffer): void => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.off('error', onClose);
      sock.pause();
      if (err) reject(err);
      else resolve(b!);
    };
    sock.on('data', onData);
    sock.once('close', onClose);
    sock.once('error', onClose);
    sock.resume();
  });
}

async function negotiateTls(sock: net.Socket, opts: UpstreamOptions): Promise<net.Socket> {
  if (opts.tls === 'disable') return sock;
  sock.write(encodeSslRequest());
  const answer = await readOneByte(sock, opts.timeoutMs);
  // Bytes after the one-byte answer would be injected plaintext (CVE-2021-23222 class): refuse.
  if (answer.length !== 1) throw new UpstreamError('server sent unexpected data after the TLS answer', '08P01');
  if (answer[0] === 0x4e /* N */) {
    if (opts.tls === 'prefer') return sock;
    throw new UpstreamError(
      `server at ${opts.host}:${opts.port} does not support TLS, but the target requires it (tls: ${opts.tls})`,
      '08001',
    );
  }
  if (answer[0] !== 0x53 /* S */) throw new UpstreamError('invalid answer to SSLRequest', '08P01');
  const verify = opts.tls === 'verify-full';
  const secure = tls.connect({
    socket: sock,
    servername: net.isIP(opts.host) ? undefined : opts.host,
    rejectUnauthorized: verify,
    ca: verify && opts.ca ? opts.ca : undefined,
    checkServerIdentity: verify ? (host, cert) => tls.checkServerIdentity(opts.host || host, cert) : () => undefined,
  });
  // The TLS socket reports errors of the connection under it; the raw socket's own are ignored.
  sock.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      done();
      secure.destroy();
      reject(new UpstreamError(`timed out after ${opts.timeoutMs} ms in the TLS handshake with ${opts.host}:${opts.port}`, '08001'));
    }, opts.timeoutMs);
    // `on`, not `once`: a second error during the handshake must not go unhandled.
    const onError = (err: Error): void => {
      done();
      reject(new UpstreamError(`TLS handshake with ${opts.host}:${opts.port} failed: ${err.message}`, '08001', { cause: err }));
    };
    const onConnect = (): void => {
      done();
      resolve();
    };
    const done = (): void => {
      clearTimeout(timer);
      secure.off('secureConnect', onConnect);
      secure.off('error', onError);
    };
    secure.on('error', onError);
    secure.once('secureConnect', onConnect);
  }).catch((err) => {
    secure.on('error', () => undefined);
    secure.destroy();
    throw err;
  });
  return secure;
}

/** Async frame source over a socket during the startup exchange. */
function frameStream(sock: net.Socket, reader: FrameReader, timeoutMs: number): { next(): Promise<Frame>; stop(): void } {
  let waiting: { resolve: (f: Frame) => void; reject: (e: Error) => void } | undefined;
  let failure: Error | undefined;
  const timer = setTimeout(() => fail(new UpstreamError(`timed out after ${timeoutMs} ms during login`, '08001')), timeoutMs);
  const fail = (e: Error): void => {
    failure = e;
    if (waiting) waiting.reject(e);
    waiting = undefined;
  };
  const pump = (): void => {
    if (!waiting) return;
    let f: Frame | null;
    try {
      f = reader.next();
    } catch (e) {
      fail(e as Error);
      return;
    }
    if (f) {
      const w = waiting;
      waiting = undefined;
      w.resolve(f);
    }
  };
  const onData = (chunk: Buffer): void => {
    reader.push(chunk);
    pump();
  };
  const onEnd = (): void => fail(new UpstreamError('server closed the connection during login', '08006'));
  sock.on('data', onData);
  sock.on('close', onEnd);
  sock.on('error', onEnd);
  sock.resume();
  return {
    next: () =>
      new Promise<Frame>((resolve, reject) => {
        if (failure) return reject(failure);
        waiting = { resolve, reject };
        pump();
      }),
    stop: () => {
      clearTimeout(timer);
      sock.pause();
      sock.off('data', onData);
      sock.off('close', onEnd);
      sock.off('error', onEnd);
    },
  };
}

export async function connectUpstream(opts: UpstreamOptions): Promise<UpstreamConnection> {
  const raw = await tcpConnect(opts.host, opts.port, opts.timeoutMs);
  let socket: net.Socket = raw;
  try {
    socket = await negotiateTls(raw, opts);
    socket.setNoDelay(true);
    const reader = new FrameReader(opts.maxMessageBytes);
    const frames = frameStream(socket, reader, opts.timeoutMs);
    try {
      socket.write(encodeStartup({ user: opts.credentials.username, database: opts.database, ...opts.params }));
      const parameters = new Map<string, string>();
      let method: AuthMethod | undefined;
      let processId = 0;
      let secretKey: Buffer = Buffer.alloc(0);
      for (;;) {
        const f = await frames.next();
        switch (f.code) {
          case BE.Authentication: {
            const msg = decodeAuthentication(f);
            if (msg.name === 'authOk') {
              // A server (or someone in between) that skips to "OK" before SCRAM proved the server
              // knows the verifier is not the database we meant to reach.
              if (method && !method.complete()) throw new AuthError('server ended authentication before proving its identity');
              break;
            }
            method ??= authMethodFor(msg, opts.credentials);
            const reply = method.respond(msg);
            if (reply) socket.write(reply);
            break;
          }
          case BE.ParameterStatus: {
            const p = decodeParameterStatus(f);
            parameters.set(p.key, p.value);
            break;
          }
          case BE.BackendKeyData: {
            const k = decodeBackendKeyData(f);
            processId = k.processId;
            secretKey = k.secretKey;
            break;
          }
          case BE.ErrorResponse: {
            const e = decodeNoticeFields(f);
            const state = e.C ?? '08006';
            // The server's message names the role but never the password; pass it on with context.
            throw new UpstreamError(
              `upstream refused the login: ${e.M ?? 'unknown error'} (SQLSTATE ${state})`,
              state === '28P01' || state === '28000' ? '08004' : state,
            );
          }
          case BE.NoticeResponse:
          case BE.NegotiateProtocolVersion:
            break;
          case BE.ReadyForQuery:
            frames.stop();
            return { socket, reader, parameters, processId, secretKey };
          default:
            throw new UpstreamError(`unexpected message 0x${f.code.toString(16)} from the server during login`, '08P01');
        }
      }
    } finally {
      frames.stop();
    }
  } catch (err) {
    socket.destroy();
    if (err instanceof UpstreamError) throw err;
    if (err instanceof AuthError)
      throw new UpstreamError(`authentication with the database failed: ${err.message}`, '08004', { cause: err });
    throw new UpstreamError(`login to the database failed: ${(err as Error).message}`, '08006', { cause: err });
  }
}

/**
 * Sends a CancelRequest for the real backend over a fresh connection, as libpq does, and waits for
 * the server to close it (it answers nothing), at most `timeoutMs`. Never leaves a socket without an
 * error listener.
 */
export async function sendCancel(opts: UpstreamOptions, processId: number, secretKey: Buffer): Promise<void> {
  const raw = await tcpConnect(opts.host, opts.port, opts.timeoutMs);
  raw.on('error', () => undefined);
  let socket: net.Socket = raw;
  try {
    socket = await negotiateTls(raw, opts);
    const s = socket;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(done, opts.timeoutMs);
      s.on('error', done);
      s.once('close', done);
      s.end(encodeCancelRequest(processId, secretKey));
    });
  } finally {
    socket.destroy();
    raw.destroy();
  }
}
