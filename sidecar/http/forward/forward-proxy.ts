// The explicit forward proxy for agent egress that no named route covers (HTTP_PROXY/HTTPS_PROXY
// point at 127.0.0.1:15001). Two entry points plug into the shared node:http Server of the HTTP
// egress port: `handleConnect` for its 'connect' event (CONNECT host:port tunnels, i.e. HTTPS) and
// `handleAbsoluteForm` for requests whose target is `http://host/...`.
//
// Every request is decided by the policy engine as an HttpOperation with target '' (no route)
// BEFORE anything reaches the host: a denied CONNECT never opens a TCP connection, a denied
// absolute-form request is never sent. Names that resolve to an address an address rule (IP or
// CIDR) denies or holds are refused after resolution and before connecting.
import * as dns from 'node:dns';
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { normalizeHost, unspecifiedAliases, type CompiledPolicy, type HostMatcher } from '../../../common/policy/compile';
import { decide, type HttpOperationWithPort } from '../../../common/policy/engine';
import { IdentityError } from '../../../common/identity/errors';
import type { Decision, Identity } from '../../../common/policy/types';
import { noApproverReason, type HttpApprovalGate } from '../../approvals/hold';
import { errorBody, policyDeniedBody, sendJsonError } from '../errors';
import { endToEndRawHeaders } from '../headers';
import type { AuditApproval } from '../../../common/audit/record';
import type { ForwardAuditEvent } from '../../audit/events';
import { approvalRecord } from '../../audit/records';
import { UNPARSEABLE_BODY } from '../../../common/policy/engine';
import { readLimited } from '../read-limited';
import { AmbiguousRequestError, methodsToJudge, normalizeRequestPath, parseJsonBody, rulesReadBody, strictest, type NormalizedPath } from '../request-view';

export interface ForwardProxyContext {
  /** The current compiled policy (hot-reloaded); throwing denies (fail closed). */
  policy(): CompiledPolicy;
  /**
   * The caller: a fixed identity (the pod's), or one computed per request. A function may return a
   * promise (verifying the caller's Proxy-Authorization token); a rejection is answered with 407
   * Proxy Authentication Required, its IdentityError message saying which check failed.
   */
  identity: Identity | ((req: http.IncomingMessage) => Identity | Promise<Identity>);
  /** TCP connect timeout (DNS included), answered with 504. */
  connectTimeoutMs: number;
  /**
   * Absolute-form requests: longest the upstream may stay silent (no response headers yet, or no
   * bytes of the response body) before the request is abandoned; 504 when nothing was sent yet.
   * Default 60 s.
   */
  responseTimeoutMs?: number;
  audit(event: ForwardAuditEvent): void;
  /** Without a gate, a held request is denied saying that no approval service is configured. */
  approvals?: HttpApprovalGate;
  /** DNS lookup (default dns.lookup); resolved addresses are checked against address rules. */
  lookup?: net.LookupFunction;
  /** Agent for absolute-form upstream requests (default: a shared keep-alive agent). */
  agent?: http.Agent;
}

const defaultAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** Whether a request on the egress port is a forward-proxy request (absolute-form target). */
export function isAbsoluteForm(req: http.IncomingMessage): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(req.url ?? '');
}

// ------------------------------------------------------------------------------------ errors

const deniedBody = policyDeniedBody;

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 407: 'Proxy Authentication Required', 502: 'Bad Gateway', 504: 'Gateway Timeout' };

function writeRaw(socket: Duplex, status: number, body: string, headers: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const b = Buffer.from(body);
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${b.length}\r\n${extra}connection: close\r\n\r\n${body}`,
  );
}

function sendJson(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  sendJsonError(res, status, body, { headers, closeConnection: true });
}

class ConnectTimeoutError extends Error {
  code = 'ETIMEDOUT_CONNECT';
}

class ResponseTimeoutError extends Error {
  code = 'ETIMEDOUT_RESPONSE';
}

class AddressDeniedError extends Error {
  code = 'EWARDEN_ADDRESS_DENIED';
  constructor(readonly decision: Decision, readonly address: string) {
    super(decision.reason);
  }
}

/** Maps a connection failure to the agent's answer. */
function upstreamFailure(err: Error & { code?: string }, host: string, port: number): { status: number; body: string; message: string } {
  if (err instanceof AddressDeniedError) {
    const message = `${host} resolves to ${err.address}: ${err.decision.reason}`;
    return { status: 403, body: deniedBody(err.decision, message), message };
  }
  if (err instanceof ResponseTimeoutError) {
    const message = `${host}:${port} did not answer in time`;
    return { status: 504, body: errorBody('upstream_timeout', message, { host, port }), message };
  }
  if (err instanceof ConnectTimeoutError || err.code === 'ETIMEDOUT') {
    const message = `connecting to ${host}:${port} timed out`;
    return { status: 504, body: errorBody('upstream_timeout', message, { host, port }), message };
  }
  const message = `cannot reach ${host}:${port} (${err.code ?? err.message})`;
  return { status: 502, body: errorBody('upstream_unreachable', message, { host, port }), message };
}

// ---------------------------------------------------------------------------------- deciding

export type Authorized =
  | { ok: true; decision: Decision; approval?: { approved: boolean; reason: string }; record?: AuditApproval }
  | { ok: false; decision: Decision; approval?: { approved: boolean; reason: string }; record?: AuditApproval; message: string };

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
    (err: unknown) =>
      // The verifier's message names the failed check and never contains the token.
      // Anything else is an internal failure whose message is not the agent's business.
      unauthenticated(err instanceof IdentityError ? `token refused: ${err.message} (${err.code})` : 'token refused: the token could not be verified'),
  );
}

const PROXY_CHALLENGE = { 'proxy-authenticate': 'Bearer' };

/**
 * Decides op (holding it for approval when the rule says so) and records the decision on ev; then
 * either proceed() or deny(decision, message, reason). A failed decision is an error and denies.
 */
function authorizeThen(
  ctx: ForwardProxyContext,
  policy: CompiledPolicy,
  op: HttpOperationWithPort,
  identity: Identity,
  signal: AbortSignal,
  ev: ForwardAuditEvent,
  deny: (decision: Decision, message: string, reason: string) => void,
  proceed: () => void,
  methods: readonly string[] = [op.method],
): void {
  authorize(ctx, policy, op, identity, signal, methods)
    .then((auth) => {
      ev.decision = auth.decision.action;
      ev.rule = auth.decision.rule;
      ev.reason = auth.ok ? auth.decision.reason : auth.message;
      ev.approval = auth.approval;
      ev.approvalRecord = auth.record;
      ev.identity = identity;
      ev.policy = policy.namespace ? `${policy.namespace}/${policy.name}` : policy.name;
      if (!auth.ok) {
        deny(auth.decision, auth.message, auth.message);
        return;
      }
      proceed();
    })
    .catch((e: Error) => {
      ev.outcome = 'error';
      ev.error = e.message;
      deny({ action: 'deny', reason: e.message }, `decision failed: ${e.message}`, e.message);
    });
}

/**
 * Decides op and, for a hold, waits on the approval gate (holdForApproval). Never rejects because
 * of the gate. Shared with the named routes (route-proxy.ts), so both say the same thing.
 */
export async function authorize(
  ctx: Pick<ForwardProxyContext, 'approvals'>,
  policy: CompiledPolicy,
  op: HttpOperationWithPort,
  identity: Identity,
  signal: AbortSignal,
  /** Every method the upstream may act on (request-view.ts methodsToJudge); default op.method. */
  methods: readonly string[] = [op.method],
): Promise<Authorized> {
  const decision = strictest(methods.map((method) => decide(policy, { ...op, method }, identity)));
  if (decision.action === 'allow') return { ok: true, decision };
  if (decision.action === 'deny') return { ok: false, decision, message: decision.reason };
  return holdForApproval(ctx, policy, op, decision, identity, signal);
}

/**
 * A held decision: waits on the approval gate. No gate, or a gate that fails (rejects, or answers
 * nothing usable), is a denial (fail closed) whose message says so; never rejects.
 */
export async function holdForApproval(
  ctx: Pick<ForwardProxyContext, 'approvals'>,
  policy: CompiledPolicy,
  op: HttpOperationWithPort,
  decision: Decision,
  identity: Identity,
  signal: AbortSignal,
): Promise<Authorized> {
  if (!ctx.approvals) {
    return { ok: false, decision, message: noApproverReason(decision.reason) };
  }
  let approval: { approved: boolean; reason: string; approvalId?: string; decidedBy?: string };
  const waitStart = performance.now();
  try {
    approval = await ctx.approvals.hold({ operation: op, decision, identity, policy: { name: policy.name, namespace: policy.namespace }, signal });
    if (typeof approval?.approved !== 'boolean') throw new Error('the approval service gave no answer');
  } catch (e) {
    approval = { approved: false, reason: `approval failed: ${(e as Error)?.message ?? String(e)}` };
  }
  const record = approvalRecord(approval, waitStart);
  if (approval.approved) return { ok: true, decision, approval, record };
  return { ok: false, decision, approval, record, message: `${decision.reason}; approval denied: ${approval.reason}` };
}

function addressMatched(hosts: HostMatcher, ip: string, port: number): boolean {
  const check = (a: string): boolean => {
    const type = net.isIP(a) === 6 ? 'ipv6' : 'ipv4';
    if (hosts.addresses.check(a, type)) return true;
    const byPort = hosts.addressesByPort.get(port);
    return byPort !== undefined && byPort.check(a, type);
  };
  if (check(ip)) return true;
  // A name resolving to 0.0.0.0 or :: reaches this host: loopback address rules cover it.
  const n = normalizeHost(ip);
  return n !== undefined && unspecifiedAliases(n).some((a) => net.isIP(a) !== 0 && check(a));
}

/**
 * The decision for a resolved address, when an address rule (IP/CIDR entry in `hosts`) denies or
 * holds it; undefined otherwise. This is what stops `*.example.com` (allowed) from reaching
 * 10.0.0.5 when `10.0.0.0/8` is denied. Holds are treated as denials here (no approval mid-dial).
 */
function addressDenial(policy: CompiledPolicy, op: HttpOperationWithPort, identity: Identity, ip: string): Decision | undefined {
  const d = decide(policy, { ...op, host: ip }, identity);
  if (d.action === 'allow' || d.rule === undefined) return undefined;
  const rule = policy.rules.find((r) => r.name === d.rule);
  const hosts = rule?.http?.hosts;
  if (!hosts || !addressMatched(hosts, ip, op.port ?? 0)) return undefined;
  return d;
}

function guardedLookup(
  base: net.LookupFunction,
  policy: CompiledPolicy,
  op: HttpOperationWithPort,
  identity: Identity,
): net.LookupFunction {
  return ((hostname: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
    (base as unknown as (h: string, o: dns.LookupOptions, cb: (...args: unknown[]) => void) => void)(hostname, options, (err, address, family) => {
      if (err) return callback(err);
      const list = Array.isArray(address) ? (address as dns.LookupAddress[]).map((a) => a.address) : [address as string];
      for (const ip of list) {
        const d = addressDenial(policy, op, identity, ip);
        if (d) return callback(new AddressDeniedError(d, ip));
      }
      callback(null, address, family);
    });
  }) as net.LookupFunction;
}

// ------------------------------------------------------------------------------------- audit

/** A new (denied until said otherwise) audit record, and emit(), which sends it once, timed from started. */
function startAudit(
  ctx: ForwardProxyContext,
  started: number,
  fields: Pick<ForwardAuditEvent, 'kind' | 'method' | 'host' | 'port'>,
): { ev: ForwardAuditEvent; emit: () => void } {
  const ev: ForwardAuditEvent = {
    ...fields,
    startedAt: performance.timeOrigin + started,
    path: '',
    decision: 'deny',
    reason: '',
    outcome: 'denied',
    status: 0,
    bytesUp: 0,
    bytesDown: 0,
    durationMs: 0,
  };
  let audited = false;
  const emit = (): void => {
    if (audited) return;
    audited = true;
    ev.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    try {
      ctx.audit(ev);
    } catch {
      /* auditing must not break the data path */
    }
  };
  return { ev, emit };
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
  const { ev, emit } = startAudit(ctx, started, { kind: 'connect', method: 'CONNECT', host: target?.host ?? authority, port: target?.port ?? 0 });
  clientSocket.on('error', (e) => {
    ev.error ??= `client: ${e.message}`;
  });

  if (!target) {
    ev.reason = `invalid CONNECT target "${authority}" (expected host:port)`;
    ev.status = 400;
    writeRaw(clientSocket, 400, errorBody('bad_request', ev.reason));
    emit();
    return;
  }
  const deny = (decision: Decision, message: string): void => {
    ev.status = 403;
    writeRaw(clientSocket, 403, deniedBody(decision, message));
    emit();
  };
  const unauthenticated = (message: string): void => {
    ev.status = 407;
    ev.reason = message;
    writeRaw(clientSocket, 407, errorBody('unauthenticated', message), PROXY_CHALLENGE);
    emit();
  };
  const failed = (failure: string): void => {
    ev.reason = failure;
    deny({ action: 'deny', reason: failure }, failure);
  };
  withPolicyAndIdentity(ctx, req, failed, unauthenticated, (policy, identity) => {
    if (clientSocket.destroyed) {
      ev.outcome = 'error';
      ev.error ??= 'client closed before the tunnel was authorized';
      emit();
      return;
    }
    const op: HttpOperationWithPort = { type: 'http', target: '', method: 'CONNECT', path: '', host: target.host, port: target.port, headers: req.headers };
    const abort = new AbortController();
    const onEarlyClose = (): void => abort.abort();
    clientSocket.once('close', onEarlyClose);

    authorizeThen(ctx, policy, op, identity, abort.signal, ev, deny, () => {
      if (clientSocket.destroyed) {
        ev.outcome = 'error';
        ev.error ??= 'client closed before the tunnel was opened';
        emit();
        return;
      }
      openTunnel(ctx, policy, op, identity, target, clientSocket, head, ev, emit, onEarlyClose);
    });
  });
}

function openTunnel(
  ctx: ForwardProxyContext,
  policy: CompiledPolicy,
  op: HttpOperationWithPort,
  identity: Identity,
  target: { host: string; port: number },
  client: Duplex,
  head: Buffer,
  ev: ForwardAuditEvent,
  emit: () => void,
  onEarlyClose: () => void,
): void {
  const upstream = net.connect({
    host: target.host,
    port: target.port,
    lookup: guardedLookup(ctx.lookup ?? (dns.lookup as net.LookupFunction), policy, op, identity),
  });
  let established = false;
  const timer = setTimeout(() => upstream.destroy(new ConnectTimeoutError('connect timeout')), ctx.connectTimeoutMs);
  const abandon = (): void => {
    if (!established) upstream.destroy();
  };
  client.once('close', abandon);

  upstream.once('error', (err: Error & { code?: string }) => {
    clearTimeout(timer);
    if (established) {
      ev.error ??= `upstream: ${err.message}`;
      client.destroy();
      return;
    }
    const f = upstreamFailure(err, target.host, target.port);
    ev.outcome = f.status === 403 ? 'denied' : 'error';
    if (f.status === 403) {
      ev.decision = 'deny';
      ev.rule = (err as AddressDeniedError).decision.rule;
      ev.reason = f.message;
    } else ev.error = f.message;
    ev.status = client.destroyed ? 0 : f.status;
    writeRaw(client, f.status, f.body);
    emit();
  });

  upstream.once('connect', () => {
    clearTimeout(timer);
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    established = true;
    client.removeListener('close', onEarlyClose);
    ev.outcome = 'forwarded';
    ev.status = 200;
    ev.remoteAddress = upstream.remoteAddress;
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) {
      ev.bytesUp += head.length;
      upstream.write(head);
    }
    client.on('data', (c: Buffer) => (ev.bytesUp += c.length));
    upstream.on('data', (c: Buffer) => (ev.bytesDown += c.length));
    // pipe() gives backpressure both ways and forwards half-closes (FIN) as end().
    client.pipe(upstream);
    upstream.pipe(client);
    let open = 2;
    const closed = (): void => {
      if (--open === 0) emit();
    };
    client.once('close', () => {
      upstream.destroy();
      closed();
    });
    upstream.once('close', () => {
      // Let what is buffered for the agent drain, then make sure the socket goes away. unpipe()
      // paused the client side: resume it (discarding) so the agent's FIN is read and it closes.
      if (!client.destroyed) {
        client.end();
        client.resume();
        setTimeout(() => client.destroy(), 5000).unref();
      }
      closed();
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
  if (teValue !== undefined && teValue.trim().toLowerCase() !== 'chunked') return `unsupported Transfer-Encoding "${teValue}" (only chunked)`;
  return undefined;
}

const forwardHeaders = (raw: string[]): Record<string, string | string[]> => endToEndRawHeaders(raw);

/** For requests on the egress port whose target is absolute-form (`GET http://host/path`). */
export function handleAbsoluteForm(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  ctx: ForwardProxyContext,
  opts: { expectContinue?: boolean } = {},
): void {
  const started = performance.now();
  const { ev, emit } = startAudit(ctx, started, { kind: 'http', method: req.method ?? 'GET', host: '', port: 0 });
  const reject = (status: number, body: string, reason: string): void => {
    ev.status = status;
    ev.reason ||= reason;
    sendJson(res, status, body);
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

  const deny = (decision: Decision, message: string, reason: string): void => reject(403, deniedBody(decision, message), reason);
  const unauthenticated = (message: string): void => {
    ev.status = 407;
    ev.reason = message;
    sendJson(res, 407, errorBody('unauthenticated', message), PROXY_CHALLENGE);
    req.socket.once('finish', () => req.socket.destroy());
    emit();
  };
  const failed = (failure: string): void => deny({ action: 'deny', reason: failure }, failure, failure);
  withPolicyAndIdentity(ctx, req, failed, unauthenticated, (policy, identity) => {
    const headersForMatch = { ...req.headers };
    delete headersForMatch['proxy-authorization'];
    const op: HttpOperationWithPort = { type: 'http', target: '', method: methods[0], path: reqPath.judged, host, port, headers: headersForMatch };
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    const upstreamPath = reqPath.forwarded + url.search;

    const decideAndForward = (body: Buffer | undefined): void =>
      authorizeThen(
        ctx,
        policy,
        op,
        identity,
        abort.signal,
        ev,
        deny,
        () => {
          if (res.destroyed || req.socket.destroyed) {
            ev.outcome = 'error';
            ev.error = 'client closed before the request was forwarded';
            emit();
            return;
          }
          // `Expect: 100-continue`: the agent sends its body only once the request is allowed.
          if (opts.expectContinue && body === undefined) res.writeContinue();
          forward(ctx, policy, op, identity, { url, path: upstreamPath, host, port, body }, req, res, ev, emit);
        },
        methods,
      );

    if (!hasBody(req) || !rulesReadBody(policy, '')) {
      decideAndForward(undefined);
      return;
    }
    // A rule matches on JSON body fields: read the body (bounded) and judge it, as the routes do.
    if (opts.expectContinue) res.writeContinue();
    readLimited(req, MAX_FORWARD_BODY_BYTES, () => new BodyTooLargeError(`request body exceeds the limit of ${MAX_FORWARD_BODY_BYTES} bytes`), 'pause').then(
      (raw) => {
        const parsed = parseJsonBody(raw, req.headers['content-type']);
        if (parsed.kind === 'refused') {
          reject(400, errorBody(parsed.type, parsed.message), parsed.message);
          return;
        }
        // Not JSON, or nested too deep to check: restrictive rules on body fields match (fail closed).
        op.json = parsed.kind === 'json' ? parsed.doc : parsed.kind === 'empty' ? undefined : UNPARSEABLE_BODY;
        decideAndForward(raw);
      },
      (err: Error) => {
        const tooLarge = err instanceof BodyTooLargeError;
        reject(tooLarge ? 413 : 400, errorBody(tooLarge ? 'request_too_large' : 'bad_request', err.message), err.message);
      },
    );
  });
}

/** Largest request body the forward proxy reads to judge JSON body rules (413 above). */
export const MAX_FORWARD_BODY_BYTES = 10 * 1024 * 1024;

class BodyTooLargeError extends Error {}

function hasBody(req: http.IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && Number(cl) > 0);
}

interface UpstreamTarget {
  url: URL;
  /** Path and query as judged (request-view.ts normalizeRequestPath). */
  path: string;
  host: string;
  port: number;
  /** The body, when it was read to be judged: sent as read. */
  body?: Buffer;
}

function forward(
  ctx: ForwardProxyContext,
  policy: CompiledPolicy,
  op: HttpOperationWithPort,
  identity: Identity,
  target: UpstreamTarget,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  ev: ForwardAuditEvent,
  emit: () => void,
): void {
  const { url, host, port, body } = target;
  const headers = forwardHeaders(req.rawHeaders);
  headers.host = url.host;
  if (body !== undefined) {
    delete headers['transfer-encoding'];
    headers['content-length'] = String(body.length);
  }
  const upReq = http.request({
    host,
    port,
    method: req.method,
    path: target.path,
    headers,
    agent: ctx.agent ?? defaultAgent,
    lookup: guardedLookup(ctx.lookup ?? (dns.lookup as net.LookupFunction), policy, op, identity),
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
    sendJson(res, f.status, f.body);
    req.socket.once('finish', () => req.socket.destroy());
  });
  upReq.on('response', (up) => {
    ev.outcome = 'forwarded';
    ev.status = up.statusCode ?? 0;
    ev.remoteAddress = up.socket.remoteAddress;
    res.writeHead(up.statusCode ?? 502, up.statusMessage, forwardHeaders(up.rawHeaders));
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

// ---------------------------------------------------------------------------------- standalone

/** A server that is only the forward proxy (tests). Origin-form requests (named routes) answer 404 here. */
export function createForwardProxyServer(ctx: ForwardProxyContext): http.Server {
  const server = http.createServer((req, res) => {
    if (isAbsoluteForm(req)) handleAbsoluteForm(req, res, ctx);
    else sendJson(res, 404, errorBody('not_found', 'not a proxy request and no route matches'));
  });
  server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => handleConnect(req, socket, head, ctx));
  return server;
}
