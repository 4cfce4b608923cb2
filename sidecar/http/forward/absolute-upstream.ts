// An allowed absolute-form request (`GET http://host/path`) sent on: node:http with the guarded
// DNS lookup (address rules checked on every resolved address before connecting), the agent's
// end-to-end headers as it sent them (case and repeats kept, raw), the body as judged when it was
// read, else streamed. The upstream's status line and raw headers go back as they came. A connect
// timeout and an idle response timeout answer 504; an unreachable host 502; a denied address 403.
//
// Why node:http here and not the routes' undici stack: the address check must run inside the
// connection's own DNS lookup, per request and against the policy and identity that judged it;
// undici takes its lookup per Agent, not per request. And the forward proxy relays raw header
// names and the status text, which undici's request API does not expose.
import * as dns from 'node:dns';
import * as http from 'node:http';
import type * as net from 'node:net';
import type { CompiledPolicy } from '../../../common/policy/compile';
import type { HttpOperationWithPort } from '../../../common/policy/engine';
import type { Identity } from '../../../common/policy/types';
import { sendJsonError } from '../errors';
import { endToEndRawHeaders } from '../headers';
import { guardedLookup, type AddressDeniedError } from './address-guard';
import type { ForwardProxyContext } from './exchange';
import type { ForwardAuditEvent } from '../../audit/events';
import { ConnectTimeoutError, ResponseTimeoutError, upstreamFailure } from './upstream-failure';

const defaultAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });

export interface AbsoluteRequest {
  policy: CompiledPolicy;
  op: HttpOperationWithPort;
  identity: Identity;
  url: URL;
  /** Path and query as judged (request-view.ts normalizeRequestPath). */
  path: string;
  host: string;
  port: number;
  /** The body, when it was read to be judged: sent as read. */
  body?: Buffer;
  ev: ForwardAuditEvent;
  emit: () => void;
}

export function forwardAbsolute(ctx: ForwardProxyContext, a: AbsoluteRequest, req: http.IncomingMessage, res: http.ServerResponse): void {
  const { url, host, port, body, ev, emit } = a;
  const headers = endToEndRawHeaders(req.rawHeaders);
  headers.host = url.host;
  if (body !== undefined) {
    delete headers['transfer-encoding'];
    headers['content-length'] = String(body.length);
  }
  const upReq = http.request({
    host,
    port,
    method: req.method,
    path: a.path,
    headers,
    agent: ctx.agent ?? defaultAgent,
    lookup: guardedLookup(ctx.lookup ?? dns.lookup, a.policy, a.op, a.identity),
  });
  let timer: NodeJS.Timeout | undefined;
  upReq.on('socket', (s: net.Socket) => {
    if (!s.connecting) return;
    timer = setTimeout(() => upReq.destroy(new ConnectTimeoutError('connect timeout')), ctx.connectTimeoutMs);
    s.once('connect', () => clearTimeout(timer));
    s.once('close', () => clearTimeout(timer));
  });
  // Idle timeout while waiting for the response and while it streams (reset by every byte).
  upReq.setTimeout(ctx.responseTimeoutMs ?? 60_000, () => upReq.destroy(new ResponseTimeoutError('upstream response timeout')));
  upReq.on('error', (err: Error & { code?: string }) => {
    clearTimeout(timer);
    if (res.headersSent) {
      ev.error ??= `upstream: ${err.message}`;
      res.destroy();
      return;
    }
    const f = upstreamFailure(err, host, port);
    if (f.status === 403) {
      ev.decision = 'deny';
      ev.rule = (err as AddressDeniedError).decision.rule;
      ev.reason = f.message;
      ev.outcome = 'denied';
    } else {
      ev.outcome = 'error';
      ev.error = f.message;
    }
    ev.status = f.status;
    sendJsonError(res, f.status, f.body, { closeConnection: true });
    req.socket.once('finish', () => req.socket.destroy());
  });
  upReq.on('response', (up) => {
    ev.outcome = 'forwarded';
    ev.status = up.statusCode ?? 0;
    ev.remoteAddress = up.socket.remoteAddress;
    res.writeHead(up.statusCode ?? 502, up.statusMessage, endToEndRawHeaders(up.rawHeaders));
    up.on('data', (c: Buffer) => (ev.bytesDown += c.length));
    up.on('error', (e) => {
      ev.error ??= `upstream: ${e.message}`;
      res.destroy();
    });

    up.pipe(res);
  });
  if (body !== undefined) {
    ev.bytesUp += body.length;
    upReq.end(body);
  } else {
    req.on('data', (c: Buffer) => (ev.bytesUp += c.length));
    req.on('error', (e) => {
      // e.g. an invalid chunk size: the upstream request is aborted, never completed.
      ev.error ??= `client: ${e.message}`;
      upReq.destroy(e);
    });
    req.pipe(upReq);
  }
  res.once('close', () => {
    if (!res.writableFinished) upReq.destroy();
    emit();
  });
}
