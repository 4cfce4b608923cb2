// The explicit forward proxy for agent egress that no named route covers (HTTP_PROXY/HTTPS_PROXY
// point at 127.0.0.1:15001). Two entry points plug into the shared node:http Server of the HTTP
// egress port: `handleConnect` for its 'connect' event (CONNECT host:port tunnels, i.e. HTTPS) and
// `handleAbsoluteForm` for requests whose target is `http://host/...`.
//
// Every request is decided by the policy engine as an HttpOperation with target '' (no route)
// BEFORE anything reaches the host: a denied CONNECT never opens a TCP connection, a denied
// absolute-form request is never sent. Names that resolve to an address an address rule (IP or
// CIDR) denies or holds are refused after resolution and before connecting (address-guard.ts).
//
// This file is the composition: the request is checked and its operation built here, then a
// ForwardExchange (exchange.ts) goes through the stages shared with the named routes — the body
// read to be judged (../stages/read-body.ts), decide and hold (../stages/decide.ts, hold.ts) —
// and, allowed, on to the tunnel (tunnel.ts) or the upstream request (absolute-upstream.ts).
// Synchronous unless the caller's token is verified, the body is read, or the request is held.
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { normalizeHost, type CompiledPolicy } from '../../../common/policy/compile';
import { UNPARSEABLE_BODY, type HttpOperationWithPort } from '../../../common/policy/engine';
import type { Identity } from '../../../common/policy/types';
import type { ForwardAuditEvent } from '../../audit/events';
import { errorBody, HttpError, httpErrorBody, policyDeniedBody, sendJsonError, writeRawError } from '../errors';
import {
  AmbiguousRequestError,
  methodsToJudge,
  normalizeRequestPath,
  parseJsonBody,
  rulesReadBody,
  type NormalizedPath,
} from '../request-view';
import { decideStage } from '../stages/decide';
import { mcpOriginStage } from './mcp-origin';
import { holdStage } from '../stages/hold';
import { tokenRefused } from '../stages/identify';
import { readRequestBody } from '../stages/read-body';
import { runStages, type Stage } from '../stages/stage';
import { forwardAbsolute } from './absolute-upstream';
import { ForwardExchange, startAudit, type ForwardProxyContext } from './exchange';

export type { ForwardProxyContext } from './exchange';
import { openTunnel } from './tunnel';

/** Whether a request on the egress port is a forward-proxy request (absolute-form target). */
export function isAbsoluteForm(req: http.IncomingMessage): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(req.url ?? '');
}

/** Largest request body the forward proxy reads to judge JSON body rules (413 above). */
export const MAX_FORWARD_BODY_BYTES = 10 * 1024 * 1024;

const PROXY_CHALLENGE = { 'proxy-authenticate': 'Bearer' };

/** What the agent is answered when the request is not let through: status, JSON body, the reason for the record. */
type Refuse = (status: number, body: string, reason: string) => void;

// ---------------------------------------------------------------------------------- deciding

function identityOf(ctx: ForwardProxyContext, req: http.IncomingMessage): Identity | Promise<Identity> {
  return typeof ctx.identity === 'function' ? ctx.identity(req) : ctx.identity;
}

/**
 * The current policy and the caller's identity, then go(); or refuse: no usable policy denies (fail
 * closed), a refused caller token is a 407. Synchronous unless the identity has to be verified.
 */
function withPolicyAndIdentity(
  ctx: ForwardProxyContext,
  req: http.IncomingMessage,
  deny: (failure: string) => void,
  unauthenticated: (message: string) => void,
  go: (policy: CompiledPolicy, identity: Identity) => void,
): void {
  let policy: CompiledPolicy;
  let identity: Identity | Promise<Identity>;
  try {
    policy = ctx.policy();
    identity = identityOf(ctx, req);
  } catch (e) {
    deny(`no usable policy (${(e as Error).message}); denied`);
    return;
  }
  if (!(identity instanceof Promise)) {
    go(policy, identity);
    return;
  }
  identity.then(
    (who) => go(policy, who),
    (err: unknown) => unauthenticated(tokenRefused(err)),
  );
}

/** Deciding and holding, as on the named routes; an MCP server's origin only through its route. */
const JUDGE: readonly Stage<ForwardExchange>[] = [mcpOriginStage, decideStage, holdStage];

/**
 * Runs the stages over ex, records the decision on ev, then proceed(); or refuse(). A stage's
 * HttpError is answered as it says; any other failure (the decision itself failed, or sending
 * on did) denies, saying so (fail closed).
 */
function judgeThen(
  ex: ForwardExchange,
  stages: readonly Stage<ForwardExchange>[],
  ev: ForwardAuditEvent,
  refuse: Refuse,
  proceed: () => void,
): void {
  const settle = (err: unknown): void => {
    if (ex.decision) ex.record(ev);
    if (err === undefined) {
      try {
        proceed();
      } catch (e) {
        failed(e as Error);
      }
      return;
    }
    if (err instanceof HttpError) refuse(err.status, httpErrorBody(err), err.message);
    else failed(err as Error);
  };
  const failed = (e: Error): void => {
    ev.outcome = 'error';
    ev.error = e.message;
    refuse(403, policyDeniedBody({ rule: undefined }, `decision failed: ${e.message}`), e.message);
  };
  let pending: void | Promise<void>;
  try {
    pending = runStages(stages, ex);
  } catch (err) {
    settle(err);
    return;
  }
  if (pending === undefined) settle(undefined);
  else pending.then(() => settle(undefined), settle);
}

/** Reads the body to judge JSON body rules (bounded, 413 above), as the routes do; refuses what upstreams may read otherwise. */
function judgedBodyStage(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  expectContinue: boolean,
  read: { body?: Buffer },
): Stage<ForwardExchange> {
  return {
    name: 'read-body',
    async run(ex) {
      if (expectContinue) res.writeContinue();
      let raw: Buffer;
      try {
        raw = await readRequestBody(req, MAX_FORWARD_BODY_BYTES, `request body exceeds the limit of ${MAX_FORWARD_BODY_BYTES} bytes`);
      } catch (err) {
        if (err instanceof HttpError) throw err;
        throw new HttpError(400, 'bad_request', (err as Error).message);
      }
      const parsed = parseJsonBody(raw, req.headers['content-type']);
      if (parsed.kind === 'refused') throw new HttpError(400, parsed.type, parsed.message);
      // Not JSON, or nested too deep to check: restrictive rules on body fields match (fail closed).
      ex.op!.json = parsed.kind === 'json' ? parsed.doc : parsed.kind === 'empty' ? undefined : UNPARSEABLE_BODY;
      read.body = raw;
    },
  };
}

// ----------------------------------------------------------------------------------- CONNECT

/** `host:port` or `[v6]:port`; the port is required. */
export function parseConnectAuthority(authority: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]/@?#\\%]+):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  const host = normalizeHost(m[1]);
  return host === undefined ? undefined : { host, port };
}

/** For the egress server's 'connect' event: `CONNECT host:port HTTP/1.1`. */
export function handleConnect(req: http.IncomingMessage, clientSocket: Duplex, head: Buffer, ctx: ForwardProxyContext): void {
  const started = performance.now();
  const authority = req.url ?? '';
  const target = parseConnectAuthority(authority);
  const { ev, emit } = startAudit(ctx, started, {
    kind: 'connect',
    method: 'CONNECT',
    host: target?.host ?? authority,
    port: target?.port ?? 0,
  });
  clientSocket.on('error', (e) => {
    ev.error ??= `client: ${e.message}`;
  });

  if (!target) {
    ev.reason = `invalid CONNECT target "${authority}" (expected host:port)`;
    ev.status = 400;
    writeRawError(clientSocket, 400, errorBody('bad_request', ev.reason));
    emit();
    return;
  }
  const refuse: Refuse = (status, body) => {
    ev.status = status;
    writeRawError(clientSocket, status, body);
    emit();
  };
  const unauthenticated = (message: string): void => {
    ev.status = 407;
    ev.reason = message;
    writeRawError(clientSocket, 407, errorBody('unauthenticated', message), PROXY_CHALLENGE);
    emit();
  };
  const failed = (failure: string): void => {
    ev.reason = failure;
    refuse(403, policyDeniedBody({ rule: undefined }, failure), failure);
  };
  withPolicyAndIdentity(ctx, req, failed, unauthenticated, (policy, identity) => {
    if (clientSocket.destroyed) {
      ev.outcome = 'error';
      ev.error ??= 'client closed before the tunnel was authorized';
      emit();
      return;
    }
    const op: HttpOperationWithPort = {
      type: 'http',
      target: '',
      method: 'CONNECT',
      path: '',
      host: target.host,
      port: target.port,
      headers: req.headers,
    };
    const ex = new ForwardExchange(ctx.approvals, policy, identity, op, [op.method]);
    const onEarlyClose = (): void => ex.abort.abort();
    clientSocket.once('close', onEarlyClose);

    judgeThen(ex, JUDGE, ev, refuse, () => {
      if (clientSocket.destroyed) {
        ev.outcome = 'error';
        ev.error ??= 'client closed before the tunnel was opened';
        emit();
        return;
      }
      openTunnel(ctx, { policy, op, identity, target, client: clientSocket, head, ev, emit, onEarlyClose });
    });
  });
}

// ------------------------------------------------------------------------------ absolute-form

function smugglingProblem(req: http.IncomingMessage): string | undefined {
  let cl = 0;
  let te = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i].toLowerCase();
    const value = req.rawHeaders[i + 1];
    if (/[\r\n]/.test(value)) return 'header value contains a line break';
    if (name === 'content-length') cl++;
    else if (name === 'transfer-encoding') te++;
  }
  if (cl > 1) return 'more than one Content-Length header';
  if (te > 1) return 'more than one Transfer-Encoding header';
  if (cl > 0 && te > 0) return 'both Content-Length and Transfer-Encoding';
  const teValue = req.headers['transfer-encoding'];
  if (teValue !== undefined && teValue.trim().toLowerCase() !== 'chunked')
    return `unsupported Transfer-Encoding "${teValue}" (only chunked)`;
  return undefined;
}

function hasBody(req: http.IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && Number(cl) > 0);
}

/** For requests on the egress port whose target is absolute-form (`GET http://host/path`). */
export function handleAbsoluteForm(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  ctx: ForwardProxyContext,
  opts: { expectContinue?: boolean } = {},
): void {
  const started = performance.now();
  const { ev, emit } = startAudit(ctx, started, { kind: 'http', method: req.method ?? 'GET', host: '', port: 0 });
  const reject: Refuse = (status, body, reason) => {
    ev.status = status;
    ev.reason ||= reason;
    sendJsonError(res, status, body, { closeConnection: true });
    // The body (if any) is not read: close instead of keeping a half-read connection alive.
    req.socket.once('finish', () => req.socket.destroy());
    emit();
  };

  let url: URL;
  try {
    url = new URL(req.url ?? '');
  } catch {
    reject(400, errorBody('bad_request', `invalid request target "${req.url}"`), 'invalid request target');
    return;
  }
  if (url.protocol !== 'http:') {
    const msg = url.protocol === 'https:' ? 'https:// targets must use CONNECT (HTTPS_PROXY)' : `unsupported scheme ${url.protocol}`;
    reject(400, errorBody('bad_request', msg), msg);
    return;
  }
  const host = normalizeHost(url.hostname);
  const port = url.port === '' ? 80 : Number(url.port);
  ev.host = host ?? url.hostname;
  ev.port = port;
  ev.path = url.pathname;
  // Judged and forwarded from the path as sent (the URL parser would already have resolved
  // `..` and kept `%2F`, `;params` and encodings the rules would not see through).
  let reqPath: NormalizedPath;
  let methods: string[];
  try {
    reqPath = normalizeRequestPath(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(req.url ?? '')?.[1] ?? '/');
    methods = methodsToJudge(ev.method, req.headers);
  } catch (err) {
    if (!(err instanceof AmbiguousRequestError)) throw err;
    reject(400, errorBody('bad_request', err.message), err.message);
    return;
  }
  ev.path = reqPath.judged;
  if (host === undefined) {
    reject(400, errorBody('bad_request', `invalid host "${url.hostname}"`), 'invalid host');
    return;
  }
  if (url.username !== '' || url.password !== '') {
    reject(400, errorBody('bad_request', 'credentials in the request URL are not forwarded'), 'credentials in URL');
    return;
  }
  const smuggling = smugglingProblem(req);
  if (smuggling) {
    reject(400, errorBody('bad_request', `ambiguous request framing: ${smuggling}`), smuggling);
    return;
  }

  const unauthenticated = (message: string): void => {
    ev.status = 407;
    ev.reason = message;
    sendJsonError(res, 407, errorBody('unauthenticated', message), { headers: PROXY_CHALLENGE, closeConnection: true });
    req.socket.once('finish', () => req.socket.destroy());
    emit();
  };
  const failed = (failure: string): void => reject(403, policyDeniedBody({ rule: undefined }, failure), failure);
  withPolicyAndIdentity(ctx, req, failed, unauthenticated, (policy, identity) => {
    const headersForMatch = { ...req.headers };
    delete headersForMatch['proxy-authorization'];
    const op: HttpOperationWithPort = {
      type: 'http',
      target: '',
      method: methods[0],
      path: reqPath.judged,
      host,
      port,
      headers: headersForMatch,
    };
    const ex = new ForwardExchange(ctx.approvals, policy, identity, op, methods);
    res.once('close', () => ex.abort.abort());
    const read: { body?: Buffer } = {};
    // A rule matches on JSON body fields: read the body (bounded) and judge it, as the routes do.
    const stages =
      hasBody(req) && rulesReadBody(policy, '') ? [judgedBodyStage(req, res, opts.expectContinue === true, read), ...JUDGE] : JUDGE;
    judgeThen(ex, stages, ev, reject, () => {
      if (res.destroyed || req.socket.destroyed) {
        ev.outcome = 'error';
        ev.error = 'client closed before the request was forwarded';
        emit();
        return;
      }
      // `Expect: 100-continue`: the agent sends its body only once the request is allowed.
      if (opts.expectContinue && read.body === undefined) res.writeContinue();
      forwardAbsolute(
        ctx,
        { policy, op, identity, url, path: reqPath.forwarded + url.search, host, port, body: read.body, ev, emit },
        req,
        res,
      );
    });
  });
}

// ---------------------------------------------------------------------------------- standalone

/** A server that is only the forward proxy (tests). Origin-form requests (named routes) answer 404 here. */
export function createForwardProxyServer(ctx: ForwardProxyContext): http.Server {
  const server = http.createServer((req, res) => {
    if (isAbsoluteForm(req)) handleAbsoluteForm(req, res, ctx);
    else sendJsonError(res, 404, errorBody('not_found', 'not a proxy request and no route matches'), { closeConnection: true });
  });
  server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => handleConnect(req, socket, head, ctx));
  return server;
}
