// The one error-response module of the HTTP egress port: every error answer (named routes, the
// forward proxy, CONNECT refusals on the raw socket, malformed requests in egress-server.ts) is
// built and written here.
//   {"error":{"type":"...","message":"...", ...extra}}
//   {"error":{"type":"policy_denied","rule":"...","message":"..."}}
//
// Stages refuse a request by throwing an HttpError; the pipeline's composition writes it
// (sendHttpError). Only HttpErrors carry a message meant for the agent; anything else is mapped
// to a fixed wording by the composition (route-proxy.ts asRouteError, forward-proxy.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Decision } from '../../common/policy/types';

/** An answer meant for the agent: status, error type, message (and extra body fields, headers). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function errorBody(type: string, message: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ error: { type, message, ...extra } });
}

/**
 * The 403 body. `rule` is the rule that decided; a denial by the policy's default action (no rule
 * matched) or by a failure (no usable policy) says "defaultAction", on every path, so the field is
 * always a non-empty string.
 */
export function policyDeniedBody(decision: Pick<Decision, 'rule'>, message: string): string {
  return JSON.stringify({ error: { type: 'policy_denied', rule: deniedRule(decision), message } });
}

export function deniedRule(decision: Pick<Decision, 'rule'>): string {
  return decision.rule || 'defaultAction';
}

/** The 403 policy_denied error for a decision (its reason is the message). */
export function denial(d: Decision): HttpError {
  return new HttpError(403, 'policy_denied', d.reason, { rule: deniedRule(d) });
}

/** The JSON body of an HttpError. */
export function httpErrorBody(e: HttpError): string {
  return e.type === 'policy_denied'
    ? policyDeniedBody({ rule: e.extra.rule as string | undefined }, e.message)
    : errorBody(e.type, e.message, e.extra);
}

/**
 * Writes a JSON error answer; a response already under way is destroyed instead (the agent sees
 * a cut connection rather than a corrupt body). closeConnection: the request body was not read,
 * so the connection cannot be reused.
 */
export function sendJsonError(
  res: ServerResponse,
  status: number,
  body: string,
  opts: { headers?: Record<string, string>; closeConnection?: boolean } = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = {
    ...opts.headers,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
  };
  if (opts.closeConnection) headers['connection'] = 'close';
  res.writeHead(status, headers);
  res.end(body);
}

/** Answers req with e. A body we did not read would have to be drained before the next request: close instead. */
export function sendHttpError(req: IncomingMessage, res: ServerResponse, e: HttpError): void {
  sendJsonError(res, e.status, httpErrorBody(e), { headers: e.headers, closeConnection: !req.complete });
  if (!req.complete) req.resume();
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  407: 'Proxy Authentication Required',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  504: 'Gateway Timeout',
};

/**
 * A JSON error answer written straight to a socket that has no ServerResponse (a refused CONNECT
 * tunnel, a request node's parser rejected), then the socket is closed.
 */
export function writeRawError(socket: Duplex, status: number, body: string, headers: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const b = Buffer.from(body);
  let extra = '';
  for (const k in headers) extra += `${k}: ${headers[k]}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${b.length}\r\n${extra}connection: close\r\n\r\n${body}`,
  );
}
