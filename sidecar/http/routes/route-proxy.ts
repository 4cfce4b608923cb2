// Named-route reverse proxy: `http://127.0.0.1:15001/<target>/<rest>` → `<baseUrl>/<rest>` for
// every `http` target of the policy.
//
//   const handler = createRouteHandler({ policy: () => store.current, secrets, identity, audit });
//   server.on('request', handler); server.on('checkContinue', handler.checkContinue);
//
// Per request: resolve the target (404 unknown_route), read the JSON body when there is one (so
// rules can match on it; other bodies stream), decide with the engine (403 policy_denied; a hold
// waits on the approval gate), drop every credential the agent sent and inject the target's
// (503 credential_unavailable when the secret is missing), forward over a pooled undici Agent, and
// stream the response back, masked when the policy masks this target. Upstream failures answer
// 502/504 naming the target; nothing hangs past the target's timeout. Fails closed throughout.
//
// Response rules (`match.http.response`, deny only): when any applies to the request, a JSON
// response is buffered (same bound as masking), parsed and checked BEFORE anything is sent — a
// match discards it and answers 403 policy_denied; an event stream has each event's JSON data
// checked before the output carrying it is written — a match writes
// `event: error` + the policy_denied body instead and ends the stream.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import { Agent, type Dispatcher } from 'undici';
import { createTextMasker, type TextMasker } from '../../../common/masking/masker';
import { maskJsonDocument } from '../../../common/masking/stream/json';
import { createSseMasker } from '../../../common/masking/stream/sse';
import { createSseParser, type SseBlock } from '../../../common/masking/stream/sse-parser';
import type { CompiledPolicy, CompiledRule } from '../../../common/policy/compile';
import { decide, decideResponseWith, responseRulesFor, UNPARSEABLE_BODY } from '../../../common/policy/engine';
import { parseDuration, parseJsonPath, type JsonPathSegment } from '../../../common/policy/syntax';
import type { Decision, HttpOperation, HttpTargetSpec, Identity } from '../../../common/policy/types';
import type { HttpApprovalGate } from '../forward/approval';
import { IdentityError } from '../../../common/identity/errors';
import { bearerFromHeaders } from '../../../common/identity/extract';
import { SecretError, type SecretStore } from '../../secrets';

/** One proxied (or refused) HTTP request through a named route, for the audit trail. */
export interface HttpAuditEvent {
  target: string;
  policy: string;
  method: string;
  /** The path as decided (`/v1/chat/completions`), without the query string. */
  path: string;
  status: number;
  decision: Decision['action'] | 'mask';
  rule?: string;
  reason: string;
  durationMs: number;
  /** Values masked in the response. */
  masked: number;
  error?: string;
  identity: Identity;
}

export interface RouteProxyLimits {
  /** Largest request body accepted (413 above); default 10 MiB. */
  maxRequestBodyBytes?: number;
  /** Largest non-streamed response buffered for masking (502 unmaskable_response above); default 10 MiB. */
  maxMaskedResponseBytes?: number;
}

export interface RouteHandlerContext {
  policy(): CompiledPolicy;
  secrets: SecretStore;
  /** The pod's own identity, used when the policy has no `spec.identity`. */
  identity: Identity;
  /**
   * Set when the policy has `spec.identity`: every request must carry the caller's JWT
   * (`Proxy-Authorization` or `Authorization: Bearer`); it is verified here and its identity used
   * for decisions and holds. Rejects with an IdentityError naming the failed check. Read per request.
   */
  verifyToken?: (token: string) => Promise<Identity>;
  audit(event: HttpAuditEvent): void;
  /** The approval machinery; without it a hold is answered as a denial. */
  approvals?: HttpApprovalGate;
  limits?: RouteProxyLimits;
  /** HMAC key for the `hash` masking strategy; a random per-process key by default. */
  hashKey?: Buffer;
  /** Overrides the pooled undici Agents (tests); per-request header/body timeouts still apply. */
  dispatcher?: Dispatcher;
}

export type RouteHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  /** For `server.on('checkContinue', ...)`: sends `100 Continue` only once the request is allowed. */
  checkContinue(req: IncomingMessage, res: ServerResponse): void;
  /** Closes the pooled upstream connections. */
  close(): Promise<void>;
};

const MiB = 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 60_000;

// Hop-by-hop (RFC 9110 §7.6.1) plus headers the proxy owns.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
]);
const AGENT_CREDENTIALS = ['authorization', 'x-api-key', 'api-key', 'proxy-authorization'];

class HttpError extends Error {
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

interface MaskPlan {
  maskers: Array<{ rule: string; masker: TextMasker; jsonPaths: JsonPathSegment[][] }>;
}

interface RequestState {
  target: string;
  method: string;
  path: string;
  start: number;
  decision?: Decision;
  masked: number;
  error?: string;
  audited: boolean;
  expectContinue: boolean;
  /** Who is asking: the pod's identity, or the verified token's subject. */
  identity: Identity;
}

export function createRouteHandler(ctx: RouteHandlerContext): RouteHandler {
  const defaultMaxBody = ctx.limits?.maxRequestBodyBytes ?? 10 * MiB;
  const defaultMaxMasked = ctx.limits?.maxMaskedResponseBytes ?? 10 * MiB;
  const hashKey = ctx.hashKey ?? randomBytes(32);
  const agents = new Map<number, Agent>();
  const maskPlans = new WeakMap<CompiledPolicy, Map<string, MaskPlan | null>>();

  const dispatcherFor = (timeoutMs: number): Dispatcher => {
    if (ctx.dispatcher) return ctx.dispatcher;
    let a = agents.get(timeoutMs);
    if (!a) {
      a = new Agent({
        keepAliveTimeout: 30_000,
        allowH2: true, // HTTP/2 upstream where the server offers it over TLS (ALPN); HTTP/1.1 otherwise
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        connect: { timeout: timeoutMs, rejectUnauthorized: true },
      });
      agents.set(timeoutMs, a);
    }
    return a;
  };

  const maskPlanFor = (policy: CompiledPolicy, target: string, direction: 'request' | 'response'): MaskPlan | null => {
    let perPolicy = maskPlans.get(policy);
    if (!perPolicy) maskPlans.set(policy, (perPolicy = new Map()));
    const key = `${direction}\0${target}`;
    let plan = perPolicy.get(key);
    if (plan === undefined) {
      const maskers: MaskPlan['maskers'] = [];
      for (const s of policy.masking) {
        if (s.targets && !s.targets.includes(target)) continue;
        const dir = s.direction ?? 'response';
        if (dir !== direction && dir !== 'both') continue;
        const jsonPaths = (s.jsonPaths ?? []).map(parseJsonPath);
        if ((s.detectors ?? []).length === 0 && jsonPaths.length === 0) continue; // column-only rules are for SQL
        maskers.push({ rule: s.name, masker: createTextMasker({ detectors: s.detectors ?? [], strategy: s.strategy ?? 'redact', hashKey }), jsonPaths });
      }
      plan = maskers.length > 0 ? { maskers } : null;
      perPolicy.set(key, plan);
    }
    return plan;
  };

  const finishAudit = (st: RequestState, status: number, policy: CompiledPolicy | undefined): void => {
    if (st.audited) return;
    st.audited = true;
    const d = st.decision;
    try {
      ctx.audit({
        target: st.target,
        policy: policy?.name ?? '',
        method: st.method,
        path: st.path,
        status,
        decision: d && d.action === 'allow' && st.masked > 0 ? 'mask' : (d?.action ?? 'deny'),
        rule: d?.rule,
        reason: d?.reason ?? st.error ?? 'refused before a decision',
        durationMs: Date.now() - st.start,
        masked: st.masked,
        error: st.error,
        identity: st.identity,
      });
    } catch {
      /* an audit sink failure must not break the data path */
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, st: RequestState): Promise<void> => {
    const policy = ctx.policy();
    try {
      await proxy(req, res, st, policy);
    } catch (err) {
      const e = toHttpError(err, st.target);
      st.error = st.error ?? e.message;
      if (!res.headersSent) {
        sendError(req, res, e);
      } else {
        res.destroy();
      }
    } finally {
      if (res.writableFinished || res.destroyed) finishAudit(st, res.statusCode, policy);
      else res.once('close', () => finishAudit(st, res.statusCode, policy));
    }
  };

  const proxy = async (req: IncomingMessage, res: ServerResponse, st: RequestState, policy: CompiledPolicy): Promise<void> => {
    const parsed = parseRoute(req.url ?? '/');
    st.target = parsed.target;
    st.path = parsed.path;
    // --- caller identity first: an unauthenticated caller learns nothing else (not even the routes)
    const verifyToken = ctx.verifyToken;
    if (verifyToken) st.identity = await authenticate(req, verifyToken);
    const target = policy.targets.get(parsed.target)?.http;
    if (!target) {
      throw new HttpError(404, 'unknown_route', `no HTTP route named "${parsed.target}"; routes: ${[...policy.targets].filter(([, t]) => t.http).map(([n]) => n).join(', ') || '(none)'}`);
    }
    const timeoutMs = target.timeout ? parseDuration(target.timeout) : DEFAULT_TIMEOUT_MS;
    const base = new URL(target.baseUrl);
    const maxBody = target.maxBodyBytes ?? defaultMaxBody;
    const requestPlan = maskPlanFor(policy, parsed.target, 'request');

    // --- request body: a declared length over the limit is refused before reading anything
    const declared = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
    const chunked = req.headers['transfer-encoding'] !== undefined;
    const hasBody = chunked || (declared !== undefined && declared > 0);
    if (declared !== undefined && declared > maxBody) {
      throw new HttpError(413, 'request_too_large', `request body of ${declared} bytes exceeds the limit of ${maxBody} bytes`);
    }
    let json: unknown;
    let buffered: Buffer | undefined;
    const requestType = String(req.headers['content-type'] ?? '').toLowerCase();
    const maskRequest = requestPlan !== null && (isJson(requestType) || requestType.startsWith('text/'));
    if (hasBody && (isJson(req.headers['content-type']) || maskRequest)) {
      // Read it so rules can match on body fields; ask for it first if the agent is waiting.
      if (st.expectContinue) {
        res.writeContinue();
        st.expectContinue = false;
      }
      buffered = await readLimited(req, maxBody);
      try {
        json = buffered.length > 0 && isJson(requestType) ? JSON.parse(buffered.toString('utf8')) : undefined;
      } catch {
        json = UNPARSEABLE_BODY; // rules on body fields cannot be checked: restrictive ones match (fail closed)
      }
    }

    // --- decide
    const op: HttpOperation = {
      type: 'http',
      target: parsed.target,
      method: (req.method ?? 'GET').toUpperCase(),
      path: parsed.path,
      host: base.hostname,
      headers: req.headers,
      json,
    };
    const decision = decide(policy, op, st.identity);
    st.decision = decision;
    if (decision.action === 'deny') throw denial(decision);
    if (decision.action === 'hold') {
      if (!ctx.approvals) {
        throw denial({ ...decision, reason: `${decision.reason}: held for approval, but no approval service is configured` });
      }
      const abort = new AbortController();
      const onClose = (): void => {
        if (!res.writableFinished) abort.abort();
      };
      res.once('close', onClose);
      let outcome: { approved: boolean; reason: string };
      try {
        outcome = await ctx.approvals.hold({
          operation: { ...op, port: Number(base.port) || (base.protocol === 'https:' ? 443 : 80) },
          decision,
          identity: st.identity,
          policy: { name: policy.name, namespace: policy.namespace },
          signal: abort.signal,
        });
      } finally {
        res.off('close', onClose);
      }
      if (!outcome.approved) throw denial({ ...decision, reason: outcome.reason });
    }

    // --- upstream request: headers, credential, URL
    const headers = forwardHeaders(req.headers, target);
    const url = upstreamUrl(base, parsed.rest, parsed.search);
    injectCredential(ctx.secrets, target, headers, url);

    if (buffered && maskRequest) {
      // Prompts and tool results leaving for the API: PII the agent read must not leave the cluster.
      const masked = maskRequestBody(buffered, json, requestType, String(req.headers['content-encoding'] ?? 'identity'), requestPlan!, target.unparseable === 'allow', hashKey);
      if (masked.error) st.error = masked.error;
      buffered = masked.body;
      st.masked += masked.count;
      if (masked.count > 0) delete headers['content-md5'];
    }

    let body: Readable | Buffer | undefined;
    if (buffered) {
      body = buffered;
      headers['content-length'] = String(buffered.length);
    } else if (hasBody) {
      if (st.expectContinue) {
        res.writeContinue();
        st.expectContinue = false;
      }
      body = req.pipe(limitBytes(maxBody));
      req.on('error', (e) => (body as Readable).destroy(e));
    }

    const abort = new AbortController();
    const onClose = (): void => {
      if (!res.writableFinished) abort.abort();
    };
    res.once('close', onClose);
    let upstream: Dispatcher.ResponseData;
    try {
      upstream = await dispatcherFor(timeoutMs).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: op.method as Dispatcher.HttpMethod,
        headers,
        body,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: abort.signal,
      });
    } catch (err) {
      res.off('close', onClose);
      if (body && typeof (body as Readable).destroy === 'function') (body as Readable).destroy();
      throw err;
    }

    try {
      await respond(req, res, st, upstream, maskPlanFor(policy, parsed.target, 'response'), op.method, {
        maxMasked: target.maxBodyBytes ?? defaultMaxMasked,
        allowUnparseable: target.unparseable === 'allow',
        responseRules: responseRulesFor(policy, op, st.identity),
      });
    } finally {
      res.off('close', onClose);
    }
  };

  const respond = async (
    req: IncomingMessage,
    res: ServerResponse,
    st: RequestState,
    up: Dispatcher.ResponseData,
    plan: MaskPlan | null,
    method: string,
    limits: { maxMasked: number; allowUnparseable: boolean; responseRules: readonly CompiledRule[] },
  ): Promise<void> => {
    const { maxMasked, allowUnparseable, responseRules } = limits;
    /** Response rules to check on each parsed document; none means nothing needs inspecting. */
    const inspect = responseRules.length > 0;
    const maskedInRequest = st.masked;
    /** A response we cannot inspect: blocked (fail closed) unless the target allows passing it unmasked. */
    const unmaskable = (message: string): HttpError | undefined => {
      if (!allowUnparseable) return new HttpError(502, 'unmaskable_response', message);
      st.error = `passed unmasked (unparseable: allow): ${message}`;
      return undefined;
    };
    const headers = endToEndHeaders(up.headers);
    const noBody = method === 'HEAD' || up.statusCode === 204 || up.statusCode === 304 || up.statusCode < 200;
    const type = String(up.headers['content-type'] ?? '').toLowerCase();
    let kind = noBody ? 'pass' : type.startsWith('text/event-stream') ? 'sse' : isJson(type) ? 'json' : type.startsWith('text/') || type.includes('ndjson') ? 'text' : 'pass';
    // Without masking, only what response rules can read (JSON, event streams) is inspected.
    if (!plan && (!inspect || kind === 'text')) kind = 'pass';

    if (kind === 'pass') {
      // TODO(masking): bodies that are neither JSON nor text (octet-stream, multipart) pass unmasked.
      res.writeHead(up.statusCode, headers);
      await pipeTo(up.body, res);
      return;
    }

    const encoding = String(up.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
    if (kind === 'sse') {
      const decoded = decodeStream(up.body, encoding);
      if (!decoded) {
        const e = unmaskable(`upstream of route "${st.target}" sent an event stream with content-encoding "${encoding}", which cannot be inspected`);
        if (e) {
          up.body.destroy();
          throw e;
        }
        res.writeHead(up.statusCode, headers);
        await pipeTo(up.body, res);
        return;
      }
      delete headers['content-length'];
      delete headers['content-encoding'];
      headers['cache-control'] = headers['cache-control'] ?? 'no-cache';
      headers['x-accel-buffering'] = 'no';
      const maskers = (plan?.maskers ?? []).map((m) => createSseMasker({ masker: m.masker }));
      // Response rules read the upstream's events (unmasked, so masking cannot hide a tool name)
      // with their own parser. Only events that passed go on — to the maskers, or straight out —
      // and only whole events, so half of an event is never forwarded before it could be checked.
      // On a denial the events before it are still sent (the maskers release what they held,
      // masked); nothing from the denied event on is.
      const parser = inspect ? createSseParser() : undefined;
      const pushAll = (chunk: Buffer | string, end: boolean): string => {
        if (maskers.length === 0) return '';
        let text: string | Buffer = chunk;
        for (const sm of maskers) {
          const out = sm.push(text);
          text = end ? out + sm.end() : out;
        }
        return typeof text === 'string' ? text : text.toString('utf8');
      };
      /** Checks each event's JSON data against the response rules; returns the output to write, and the denial if any. */
      const step = (chunk: Buffer | string, end: boolean): { out: string; denied?: Decision } => {
        if (!parser) return { out: pushAll(chunk, end) };
        const blocks = end ? [...parser.push(chunk), ...parser.end()] : parser.push(chunk);
        let passed = '';
        let denied: Decision | undefined;
        for (const b of blocks) {
          denied = checkEvent(b, responseRules);
          if (denied) break;
          passed += b.raw;
        }
        if (maskers.length === 0) return { out: passed, denied };
        return { out: pushAll(passed, end || denied !== undefined), denied };
      };
      res.writeHead(up.statusCode, headers);
      res.flushHeaders();
      await new Promise<void>((resolve, reject) => {
        let stopped = false;
        const deny = (d: Decision, before: string): void => {
          stopped = true;
          st.decision = d;
          st.masked = maskedInRequest + maskers.reduce((n, m) => n + m.stats().masked, 0);
          decoded.off('data', onData);
          decoded.destroy();
          if (decoded !== up.body) up.body.destroy();
          res.end(before + sseDenial(d), () => resolve());
        };
        const onData = (c: Buffer): void => {
          if (stopped) return;
          const { out, denied } = step(c, false);
          if (denied) return deny(denied, out);
          if (out !== '' && !res.write(out)) {
            decoded.pause();
            res.once('drain', () => decoded.resume());
          }
        };
        decoded.on('data', onData);
        decoded.once('end', () => {
          if (stopped) return;
          const { out, denied } = step('', true);
          if (denied) return deny(denied, out);
          st.masked = maskedInRequest + maskers.reduce((n, m) => n + m.stats().masked, 0);
          res.end(out, () => resolve());
        });
        decoded.once('error', (e) => {
          if (stopped) return;
          st.masked = maskedInRequest + maskers.reduce((n, m) => n + m.stats().masked, 0);
          reject(e);
        });
        res.once('close', () => {
          if (!res.writableFinished) {
            decoded.destroy();
            resolve();
          }
        });
      });
      return;
    }

    // JSON and text: buffer (bounded), decode, mask, send with a fresh length.
    let raw: Buffer;
    try {
      raw = await readLimited(up.body, maxMasked);
    } catch (err) {
      if (err instanceof HttpError && err.status === 413) {
        throw new HttpError(502, 'unmaskable_response', `response from route "${st.target}" exceeds the ${maxMasked}-byte limit for masked responses`);
      }
      throw err;
    }
    const plain = decodeBuffer(raw, encoding, maxMasked);
    if (!plain) {
      const e = unmaskable(`response from route "${st.target}" has content-encoding "${encoding}", which cannot be inspected`);
      if (e) throw e;
      res.writeHead(up.statusCode, headers);
      await new Promise<void>((resolve) => res.end(raw, () => resolve()));
      return;
    }
    let text = plain.toString('utf8');
    let masked = 0;
    if (kind === 'json' && text.trim() !== '') {
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch {
        const e = unmaskable(`response from route "${st.target}" says it is JSON but does not parse, so it cannot be ${plan ? 'masked' : 'checked against response rules'}`);
        if (e) throw e;
        delete headers['content-encoding'];
        headers['content-length'] = String(plain.length);
        res.writeHead(up.statusCode, headers);
        await new Promise<void>((resolve) => res.end(plain, () => resolve()));
        return;
      }
      if (inspect) {
        // Decided on what the upstream said, before masking and before any byte is sent: a
        // denial discards the upstream's answer and the agent gets the 403 instead.
        const denied = decideResponseWith(responseRules, doc);
        if (denied) {
          st.decision = denied;
          throw denial(denied);
        }
      }
      let changed = false;
      for (const m of plan?.maskers ?? []) {
        const r = maskJsonDocument(doc, { masker: m.masker, jsonPaths: m.jsonPaths, hashKey });
        if (r.doc !== doc) changed = true;
        doc = r.doc;
        masked += r.count;
      }
      if (changed) text = JSON.stringify(doc);
    } else {
      for (const m of plan?.maskers ?? []) {
        const r = m.masker.mask(text);
        text = r.text;
        masked += r.count;
      }
    }
    st.masked = maskedInRequest + masked;
    const out = masked > 0 ? Buffer.from(text, 'utf8') : plain;
    delete headers['content-encoding'];
    delete headers['content-md5'];
    if (masked > 0) delete headers['etag'];
    headers['content-length'] = String(out.length);
    res.writeHead(up.statusCode, headers);
    await new Promise<void>((resolve) => res.end(out, () => resolve()));
  };

  const start = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void => {
    const st: RequestState = {
      target: '',
      method: (req.method ?? 'GET').toUpperCase(),
      path: '',
      start: Date.now(),
      masked: 0,
      audited: false,
      expectContinue,
      identity: ctx.identity,
    };
    void handle(req, res, st);
  };

  const handler = ((req: IncomingMessage, res: ServerResponse) => start(req, res, false)) as RouteHandler;
  handler.checkContinue = (req, res) => start(req, res, true);
  handler.close = async () => {
    await Promise.all([...agents.values()].map((a) => a.close()));
    agents.clear();
  };
  return handler;
}

// ---------------------------------------------------------------------------------------------

interface ParsedRoute {
  target: string;
  /** Path after the route name, normalised, always starting with `/`. */
  path: string;
  /** The same path as sent upstream (percent-encoding kept), without the leading `/`. */
  rest: string;
  search: string;
}

/**
 * `/openai/v1/chat?x=1` → target `openai`, path `/v1/chat`. The path rules see is the path the
 * upstream gets: repeated slashes are collapsed, and dot segments or encoded slashes (which an
 * upstream might resolve differently from the rule) are refused, so `/v1/chat/../files` cannot
 * slip past a rule on `/v1/files/**`.
 */
export function parseRoute(url: string): ParsedRoute {
  if (!url.startsWith('/')) throw new HttpError(400, 'bad_request', 'expected a route path like /<route>/<path>');
  const q = url.indexOf('?');
  const rawPath = q >= 0 ? url.slice(0, q) : url;
  const search = q >= 0 ? url.slice(q) : '';
  const segments = rawPath.split('/').filter((s) => s !== '');
  if (segments.length === 0) throw new HttpError(404, 'unknown_route', 'no route named in the path; use /<route>/<path>');
  let target: string;
  try {
    target = decodeURIComponent(segments[0]);
  } catch {
    throw new HttpError(400, 'bad_request', 'malformed percent-encoding in the path');
  }
  const rest = segments.slice(1);
  const decoded: string[] = [];
  for (const s of rest) {
    if (/%2f|%5c/i.test(s) || s.includes('\\')) throw new HttpError(400, 'bad_request', 'encoded slashes are not allowed in route paths');
    let d: string;
    try {
      d = decodeURIComponent(s);
    } catch {
      throw new HttpError(400, 'bad_request', 'malformed percent-encoding in the path');
    }
    if (d === '.' || d === '..') throw new HttpError(400, 'bad_request', 'dot segments are not allowed in route paths');
    decoded.push(d);
  }
  const trailing = rawPath.endsWith('/') && rest.length > 0 ? '/' : '';
  return { target, path: '/' + decoded.join('/') + trailing, rest: rest.join('/') + trailing, search };
}

function upstreamUrl(base: URL, rest: string, search: string): URL {
  const basePath = base.pathname.replace(/\/+$/, '');
  const url = new URL(base.origin);
  url.pathname = `${basePath}/${rest}`;
  url.search = search;
  return url;
}

function isJson(contentType: string | string[] | undefined): boolean {
  const t = String(contentType ?? '').toLowerCase().split(';')[0].trim();
  return t === 'application/json' || t.endsWith('+json');
}

/** h without hop-by-hop headers (the fixed ones, those Connection names, proxy-*) and without alsoDrop. */
function endToEndHeaders(h: Record<string, string | string[] | undefined>, alsoDrop: Iterable<string> = []): Record<string, string | string[]> {
  const drop = new Set(HOP_BY_HOP);
  for (const name of alsoDrop) drop.add(name);
  const conn = h['connection'];
  if (conn) for (const n of String(conn).split(',')) drop.add(n.trim().toLowerCase());
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || drop.has(k) || k.startsWith('proxy-')) continue;
    out[k] = v;
  }
  return out;
}

function forwardHeaders(h: IncomingMessage['headers'], target: HttpTargetSpec): Record<string, string | string[]> {
  const credentials = [...AGENT_CREDENTIALS];
  if (target.auth?.header) credentials.push(target.auth.header.toLowerCase());
  return endToEndHeaders(h, credentials);
}

/** Injects the target's credential into headers or the URL; throws 503 naming the secret when it is missing. */
function injectCredential(secrets: SecretStore, target: HttpTargetSpec, headers: Record<string, string | string[]>, url: URL): void {
  const secret = target.credentialsSecret;
  if (!secret) return;
  const auth = target.auth ?? {};
  try {
    if (auth.basic) {
      const user = secrets.read(secret, 'username');
      const pass = secrets.read(secret, 'password');
      headers[(auth.header ?? 'authorization').toLowerCase()] = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
      return;
    }
    const token = secrets.read(secret, 'token');
    if (/[\r\n\0]/.test(token)) throw new SecretError(`credential "token" of secret "${secret}" contains a line break`);
    if (auth.queryParam) {
      url.searchParams.delete(auth.queryParam);
      url.searchParams.append(auth.queryParam, token);
      return;
    }
    const header = (auth.header ?? 'Authorization').toLowerCase();
    const prefix = auth.valuePrefix ?? (header === 'authorization' ? 'Bearer ' : '');
    headers[header] = prefix + token;
  } catch (err) {
    if (err instanceof SecretError) {
      throw new HttpError(503, 'credential_unavailable', `the credential for this route (secret "${secret}") is unavailable: ${err.message}`, { secret });
    }
    throw err;
  }
}

/** Checks one event's JSON data (an event without data, or whose data is not JSON such as `[DONE]`, matches nothing). */
function checkEvent(b: SseBlock, rules: readonly CompiledRule[]): Decision | undefined {
  if (b.data === null) return undefined;
  const data = b.data.trim();
  if (data === '' || (data[0] !== '{' && data[0] !== '[')) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(data);
  } catch {
    return undefined;
  }
  return decideResponseWith(rules, doc);
}

/** The SSE form of the 403 body: what a streamed response ends with when a response rule denies it. */
function sseDenial(d: Decision): string {
  return `event: error\ndata: ${JSON.stringify({ error: { type: 'policy_denied', rule: d.rule ?? '', message: d.reason } })}\n\n`;
}

function denial(d: Decision): HttpError {
  return new HttpError(403, 'policy_denied', d.reason, { rule: d.rule ?? '' });
}

function toHttpError(err: unknown, target: string): HttpError {
  if (err instanceof HttpError) return err;
  const code = (err as { code?: string }).code ?? '';
  const name = (err as { name?: string }).name ?? '';
  const cause = (err as { cause?: { code?: string } }).cause?.code;
  if (/TIMEOUT/.test(code) || code === 'ETIMEDOUT') {
    return new HttpError(504, 'upstream_timeout', `upstream of route "${target}" did not answer in time (${code})`, { target });
  }
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED') {
    return new HttpError(499, 'client_closed', 'the agent closed the request');
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return new HttpError(400, 'bad_request', 'request body does not match its content-length');
  return new HttpError(502, 'upstream_unavailable', `upstream of route "${target}" is unavailable (${code || cause || name || 'error'})`, { target });
}

/** The verified identity of the token the request carries; a 401 HttpError naming the failed check otherwise. */
async function authenticate(req: IncomingMessage, verifyToken: (token: string) => Promise<Identity>): Promise<Identity> {
  const token = bearerFromHeaders(req.headers);
  const challenge = { 'www-authenticate': 'Bearer' };
  if (token === undefined) {
    throw new HttpError(401, 'unauthenticated', "no token: this policy requires the caller's JWT as Proxy-Authorization or Authorization: Bearer", {}, challenge);
  }
  try {
    return await verifyToken(token);
  } catch (err) {
    // The verifier's message names the failed check and never contains the token.
    const why = err instanceof IdentityError ? `${err.message} (${err.code})` : 'the token could not be verified';
    throw new HttpError(401, 'unauthenticated', `token refused: ${why}`, {}, { 'www-authenticate': 'Bearer error="invalid_token"' });
  }
}

function sendError(req: IncomingMessage, res: ServerResponse, e: HttpError): void {
  const body =
    e.type === 'policy_denied'
      ? JSON.stringify({ error: { type: e.type, rule: e.extra.rule, message: e.message } })
      : JSON.stringify({ error: { type: e.type, message: e.message, ...e.extra } });
  const headers: Record<string, string> = { ...e.headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
  // A body we did not read would have to be drained before the next request; close instead.
  if (!req.complete) headers['connection'] = 'close';
  res.writeHead(e.status, headers);
  res.end(body);
  if (!req.complete) req.resume();
}

/** Reads a stream into memory; a 413 HttpError once it exceeds `limit`. */
function readLimited(stream: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limit) {
        stream.off('data', onData);
        stream.pause();
        reject(new HttpError(413, 'request_too_large', `body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(c);
    };
    stream.on('data', onData);
    stream.once('end', () => resolve(Buffer.concat(chunks, size)));
    stream.once('error', reject);
  });
}

/** Passes bytes through until `limit`, then fails with a 413 HttpError. */
function limitBytes(limit: number): Transform {
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      size += chunk.length;
      if (size > limit) cb(new HttpError(413, 'request_too_large', `request body exceeds the limit of ${limit} bytes`));
      else cb(null, chunk);
    },
  });
}

function decodeStream(body: Readable, encoding: string): Readable | undefined {
  switch (encoding) {
    case '':
    case 'identity':
      return body;
    case 'gzip':
    case 'x-gzip':
      return body.pipe(zlib.createGunzip());
    case 'deflate':
      return body.pipe(zlib.createInflate());
    case 'br':
      return body.pipe(zlib.createBrotliDecompress());
    default:
      return undefined;
  }
}

function decodeBuffer(buf: Buffer, encoding: string, limit: number): Buffer | undefined {
  const opts = { maxOutputLength: limit };
  try {
    switch (encoding) {
      case '':
      case 'identity':
        return buf;
      case 'gzip':
      case 'x-gzip':
        return zlib.gunzipSync(buf, opts);
      case 'deflate':
        try {
          return zlib.inflateSync(buf, opts);
        } catch {
          return zlib.inflateRawSync(buf, opts); // some servers send raw deflate
        }
      case 'br':
        return zlib.brotliDecompressSync(buf, opts);
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

function pipeTo(body: Readable, res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    body.on('data', (c: Buffer) => {
      if (!res.write(c)) {
        body.pause();
        res.once('drain', () => body.resume());
      }
    });
    body.once('end', () => res.end(() => resolve()));
    body.once('error', reject);
    res.once('close', () => {
      if (!res.writableFinished) {
        body.destroy();
        resolve();
      }
    });
  });
}

/** Masks a buffered request body (JSON strings and jsonPaths, or text). */
function maskRequestBody(
  body: Buffer,
  json: unknown,
  contentType: string,
  encoding: string,
  plan: MaskPlan,
  allowUnparseable: boolean,
  hashKey: Buffer,
): { body: Buffer; count: number; error?: string } {
  const refuse = (why: string): { body: Buffer; count: number; error?: string } => {
    if (allowUnparseable) return { body, count: 0, error: `request passed unmasked (unparseable: allow): ${why}` };
    throw new HttpError(422, 'unmaskable_request', `${why}; the policy masks request bodies, so it is not sent`);
  };
  if (encoding.toLowerCase().trim() !== 'identity') return refuse(`request body has content-encoding "${encoding}"`);
  if (body.length === 0) return { body, count: 0 };
  let count = 0;
  if (isJson(contentType)) {
    if (json === UNPARSEABLE_BODY || json === undefined) return refuse('request body says it is JSON but does not parse');
    let doc: unknown = json;
    for (const m of plan.maskers) {
      const r = maskJsonDocument(doc, { masker: m.masker, jsonPaths: m.jsonPaths, hashKey });
      doc = r.doc;
      count += r.count;
    }
    return count > 0 ? { body: Buffer.from(JSON.stringify(doc), 'utf8'), count } : { body, count };
  }
  let text = body.toString('utf8');
  for (const m of plan.maskers) {
    const r = m.masker.mask(text);
    text = r.text;
    count += r.count;
  }
  return count > 0 ? { body: Buffer.from(text, 'utf8'), count } : { body, count };
}
