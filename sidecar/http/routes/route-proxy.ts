// Named-route reverse proxy: `http://127.0.0.1:15001/<target>/<rest>` → `<baseUrl>/<rest>` for
// every `http` target of the policy.
//
//   const handler = createRouteHandler({ policy: () => store.current, secrets, identity, audit });
//   server.on('request', handler); server.on('checkContinue', handler.checkContinue);
//
// Per request: resolve the target (404 unknown_route), read the body when the target needs it
// (a rule matches on body fields, or request bodies are masked: whatever the Content-Type says,
// the body is parsed as JSON, and one that is not JSON, or is sent as a form, counts as
// unparseable, so restrictive body rules match; other targets stream the body untouched), decide with the engine (403 policy_denied; a hold
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
//
// Masked responses by type: JSON, event streams and NDJSON (streamed line by line) are parsed
// (jsonPaths and detectors, object keys included; streamed text held back across events and
// lines), text/* is masked as text (HTML and XML also with character references decoded,
// html-entities.ts), buffered whole within the masked-response limit; bodies are
// decoded in the charset they declare (charset.ts) and sent as UTF-8; response headers that can
// carry data are masked too (header-masking.ts); any other type (octet-stream, multipart,
// images) cannot be masked and is refused with 502 unmaskable_response unless the target says
// `unparseable: allow`. A JSON response with a repeated key is re-serialised from the parse that
// was checked and masked.
//
// Whatever the policy masks: a route that injects a credential scrubs it from every response
// (credential-scrub.ts), headers and bodies, streamed or not. Request paths, method overrides
// and JSON bodies are read by request-view.ts, shared with the forward proxy.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { PassThrough, pipeline as pipelineCb, Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { Agent, type Dispatcher } from 'undici';
import { createTextMasker, type TextMasker } from '../../../common/masking/masker';
import { maskJsonDocument } from '../../../common/masking/stream/json';
import { createSseEventMasker, createSsePipeline, NOT_JSON, serializeItem, sseItem, type SseItem } from '../../../common/masking/stream/sse';
import { createSseParser } from '../../../common/masking/stream/sse-parser';
import { createNdjsonReader, NdjsonLineTooLongError, serializeNdjsonItem } from '../../../common/masking/stream/ndjson';
import type { CompiledPolicy, CompiledRule } from '../../../common/policy/compile';
import { decide, decideResponseWith, responseRulesFor, UNPARSEABLE_BODY } from '../../../common/policy/engine';
import { jsonTooDeep, JsonTooDeepError } from '../../../common/policy/jsonpath';
import { parseDuration, parseJsonPath, type JsonPathSegment } from '../../../common/policy/syntax';
import type { Decision, HttpOperation, HttpTargetSpec, Identity } from '../../../common/policy/types';
import type { HttpApprovalGate } from '../../approvals/hold';
import { holdForApproval } from '../forward/forward-proxy';
import { deniedRule, errorBody, policyDeniedBody, sendJsonError } from '../errors';
import { endToEndHeaders } from '../headers';
import type { AuditApproval, AuditGenAi, AuditPayload, AuditTrace } from '../../../common/audit/record';
import { PayloadCapture } from '../../audit/capture';
import type { HttpAuditEvent } from '../../audit/events';
import { tallyMasked } from '../../../common/masking/tally';
import { newSpanId } from '../../audit/ids';
import { formatTraceparent, parseTraceparent, startTrace } from '../../audit/trace-context';
import { createGenAiResponseTap, genAiFromRequest } from '../genai';
import type { Socket } from 'node:net';
import { IdentityError } from '../../../common/identity/errors';
import { bearerFromHeaders } from '../../../common/identity/extract';
import { SecretError, type SecretStore } from '../../secrets';
import { createScrubberSlot, type CredentialScrubber } from './credential-scrub';
import { maskResponseHeaders } from './header-masking';
import { maskEntityRuns, readsCharacterReferences } from './html-entities';
import { bomCharset, declaredCharset, decoderFor, isUtf8, transcodeToUtf8, withUtf8Charset } from './charset';
import { findDuplicateKey } from '../../../common/masking/stream/json-duplicates';
import { readLimited } from '../read-limited';
import { AmbiguousRequestError, methodsToJudge, normalizeRequestPath, parseJsonBody, rulesReadBody, strictest, type ParsedJsonBody } from '../request-view';

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
  /** Set while the audit trail cannot take more records: new requests are refused with this reason (fail closed). */
  auditBlocked?(): string | undefined;
  /**
   * Audit records are kept (a spool is open): read what only they use — LLM model and token usage
   * (which means reading LLM request bodies) and the payload recordings. Off, none of that is done.
   */
  auditRecords?: boolean;
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

/** What one target of one compiled policy needs per request, computed once per policy load. */
interface TargetPlan {
  spec: HttpTargetSpec;
  base: URL;
  timeoutMs: number;
  maxBody: number;
  maxMasked: number;
  allowUnparseable: boolean;
  /** Request headers never forwarded: the agent's credentials (the target's own is injected). */
  credentialHeaders: ReadonlySet<string>;
  requestPlan: MaskPlan | null;
  responsePlan: MaskPlan | null;
  /** A rule on this target matches on request body fields, or request bodies are masked: read and parse the body. */
  needsBody: boolean;
  /** The scrubber for the credential values injected, rebuilt only when they change. */
  scrubberFor: (values: readonly string[]) => CredentialScrubber | undefined;
}

type GenAiTap = ReturnType<typeof createGenAiResponseTap>;

interface RequestState {
  target: string;
  method: string;
  path: string;
  /** performance.now() when the request arrived. */
  start: number;
  session: string;
  seq: number;
  trace: AuditTrace;
  upstreamStart?: number;
  upstreamMs?: number;
  url?: string;
  serverAddress?: string;
  serverPort?: number;
  approval?: AuditApproval;
  genAi?: AuditGenAi;
  tap?: GenAiTap;
  /** Set when the policy records payloads (`audit.payloads`). */
  requestCapture?: PayloadCapture;
  responseCapture?: PayloadCapture;
  maskedBy?: Record<string, number>;
  decision?: Decision;
  masked: number;
  error?: string;
  audited: boolean;
  expectContinue: boolean;
  /** Who is asking: the pod's identity, or the verified token's subject. */
  identity: Identity;
  /** Set when a credential was injected: it is scrubbed from everything the upstream answers. */
  scrub?: CredentialScrubber;
}

export function createRouteHandler(ctx: RouteHandlerContext): RouteHandler {
  const defaultMaxBody = ctx.limits?.maxRequestBodyBytes ?? 10 * MiB;
  const defaultMaxMasked = ctx.limits?.maxMaskedResponseBytes ?? 10 * MiB;
  const hashKey = ctx.hashKey ?? randomBytes(32);
  const agents = new Map<number, Agent>();
  const targetPlans = new WeakMap<CompiledPolicy, Map<string, TargetPlan>>();

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
    const maskers: MaskPlan['maskers'] = [];
    for (const s of policy.masking) {
      if (s.targets && !s.targets.includes(target)) continue;
      const dir = s.direction ?? 'response';
      if (dir !== direction && dir !== 'both') continue;
      const jsonPaths = (s.jsonPaths ?? []).map(parseJsonPath);
      if ((s.detectors ?? []).length === 0 && jsonPaths.length === 0) continue; // column-only rules are for SQL
      maskers.push({ rule: s.name, masker: createTextMasker({ detectors: s.detectors ?? [], strategy: s.strategy ?? 'redact', hashKey }), jsonPaths });
    }
    return maskers.length > 0 ? { maskers } : null;
  };

  /** The target's plan, or undefined when the policy has no HTTP route of that name. */
  const targetPlanFor = (policy: CompiledPolicy, name: string): TargetPlan | undefined => {
    let perPolicy = targetPlans.get(policy);
    if (!perPolicy) targetPlans.set(policy, (perPolicy = new Map()));
    let tp = perPolicy.get(name);
    if (tp) return tp;
    const spec = policy.targets.get(name)?.http;
    if (!spec) return undefined;
    const requestPlan = maskPlanFor(policy, name, 'request');
    const credentialHeaders = new Set(AGENT_CREDENTIALS);
    if (spec.auth?.header) credentialHeaders.add(spec.auth.header.toLowerCase());
    tp = {
      spec,
      base: new URL(spec.baseUrl),
      timeoutMs: spec.timeout ? parseDuration(spec.timeout) : DEFAULT_TIMEOUT_MS,
      maxBody: spec.maxBodyBytes ?? defaultMaxBody,
      maxMasked: spec.maxBodyBytes ?? defaultMaxMasked,
      allowUnparseable: spec.unparseable === 'allow',
      credentialHeaders,
      requestPlan,
      responsePlan: maskPlanFor(policy, name, 'response'),
      needsBody: rulesReadBody(policy, name) || requestPlan !== null,
      scrubberFor: createScrubberSlot(),
    };
    perPolicy.set(name, tp);
    return tp;
  };

  const finishAudit = (st: RequestState, status: number, policy: CompiledPolicy | undefined): void => {
    if (st.audited) return;
    st.audited = true;
    const d = st.decision;
    let genAi = st.genAi;
    if (genAi && st.tap) genAi = { ...genAi, ...st.tap.result() };
    let payload: AuditPayload | undefined;
    if (st.requestCapture || st.responseCapture) {
      payload = {};
      if (st.requestCapture) payload.request = st.requestCapture.text();
      if (st.responseCapture) payload.response = st.responseCapture.text();
      if (st.requestCapture?.truncated || st.responseCapture?.truncated) payload.truncated = true;
    }
    try {
      ctx.audit({
        session: st.session,
        seq: st.seq,
        startedAt: performance.timeOrigin + st.start,
        trace: st.trace,
        url: st.url,
        serverAddress: st.serverAddress,
        serverPort: st.serverPort,
        upstreamMs: st.upstreamMs,
        approval: st.approval,
        genAi,
        payload,
        maskedBy: st.maskedBy,
        target: st.target,
        policy: policy?.name ?? '',
        method: st.method,
        path: st.path,
        status,
        decision: d && d.action === 'allow' && st.masked > 0 ? 'mask' : (d?.action ?? 'deny'),
        rule: d?.rule,
        reason: d?.reason ?? st.error ?? 'refused before a decision',
        durationMs: performance.now() - st.start,
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
    const tp = targetPlanFor(policy, parsed.target);
    if (!tp) {
      throw new HttpError(404, 'unknown_route', `no HTTP route named "${parsed.target}"; routes: ${[...policy.targets].filter(([, t]) => t.http).map(([n]) => n).join(', ') || '(none)'}`);
    }
    const { spec: target, base, timeoutMs, maxBody, requestPlan } = tp;
    const blocked = ctx.auditBlocked?.();
    if (blocked) throw new HttpError(503, 'audit_unavailable', blocked);
    const recordPayloads = ctx.auditRecords === true && policy.auditPayloads;
    const llm = ctx.auditRecords === true && st.method === 'POST' && looksLikeGenAi(parsed.path);

    // --- request body: a declared length over the limit is refused before reading anything
    const declared = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
    const chunked = req.headers['transfer-encoding'] !== undefined;
    const hasBody = chunked || (declared !== undefined && declared > 0);
    if (declared !== undefined && declared > maxBody) {
      throw new HttpError(413, 'request_too_large', `request body of ${declared} bytes exceeds the limit of ${maxBody} bytes`);
    }
    let body: ParsedBody | undefined;
    if (hasBody && (tp.needsBody || llm || recordPayloads)) {
      // Body rules or request masking: read it (ask for it first if the agent is waiting) and
      // parse it as JSON whatever its Content-Type says (a missing or wrong type must not let a
      // body past a rule). Targets that need neither stream the body untouched (the hot path).
      if (st.expectContinue) {
        res.writeContinue();
        st.expectContinue = false;
      }
      body = parseBody(await readBounded(req, maxBody, 413), req.headers['content-type']);
    }

    // --- decide
    let methods: string[];
    try {
      methods = methodsToJudge(req.method ?? 'GET', req.headers);
    } catch (err) {
      if (err instanceof AmbiguousRequestError) throw new HttpError(400, 'bad_request', err.message);
      throw err;
    }
    const op: HttpOperation = {
      type: 'http',
      target: parsed.target,
      // A method override is what the upstream acts on: judged as that, and as the request line's.
      method: methods[0],
      path: parsed.path,
      host: base.hostname,
      headers: req.headers,
      // Not JSON, or nested too deep to check: restrictive rules on body fields match (fail closed).
      json: body === undefined || body.kind === 'empty' ? undefined : body.kind === 'json' ? body.doc : UNPARSEABLE_BODY,
    };
    let decision = strictest(methods.map((method) => decide(policy, { ...op, method }, st.identity)));
    st.decision = decision;
    if (llm || (ctx.auditRecords && body?.kind === 'json')) {
      st.genAi = genAiFromRequest(parsed.path, body?.kind === 'json' ? body.doc : undefined, target.baseUrl);
      if (st.genAi) st.tap = createGenAiResponseTap();
    }
    if (decision.action === 'hold') {
      const abort = new AbortController();
      const onClose = (): void => {
        if (!res.writableFinished) abort.abort();
      };
      res.once('close', onClose);
      try {
        // Same gate handling (and wording) as the forward proxy: no gate, or a failing one, denies.
        const port = Number(base.port) || (base.protocol === 'https:' ? 443 : 80);
        const auth = await holdForApproval({ approvals: ctx.approvals }, policy, { ...op, port }, decision, st.identity, abort.signal);
        st.approval = auth.record;
        if (!auth.ok) {
          decision = { ...decision, reason: auth.message };
          st.decision = decision;
          throw denial(decision);
        }
      } finally {
        res.off('close', onClose);
      }
    }
    else if (decision.action === 'deny') throw denial(decision);

    // --- upstream request: headers, credential, URL
    const headers = endToEndHeaders(req.headers, tp.credentialHeaders);
    const responseRules = responseRulesFor(policy, op, st.identity);
    if (tp.responsePlan || responseRules.length > 0) {
      // Each range would be masked (or checked) alone: a value cut at a range boundary would come
      // back whole once the agent joins the parts. The whole document is asked for, and inspected.
      delete headers['range'];
      delete headers['if-range'];
    }
    const url = upstreamUrl(base, parsed.rest, parsed.search);
    // Our span parents the upstream's: the agent's trace shows the sidecar, then the API.
    headers['traceparent'] = formatTraceparent(st.trace);
    st.url = url.origin + url.pathname;
    st.serverAddress = url.hostname;
    st.serverPort = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    st.scrub = tp.scrubberFor(injectCredential(ctx.secrets, target, headers, url));

    let buffered = body?.raw;
    if (body && requestPlan) {
      // Prompts and tool results leaving for the API: PII the agent read must not leave the cluster.
      const masked = maskRequestBody(body, String(req.headers['content-type'] ?? ''), String(req.headers['content-encoding'] ?? 'identity'), requestPlan, tp.allowUnparseable);
      if (masked.error) st.error = masked.error;
      buffered = masked.body;
      st.masked += masked.count;
      if (masked.count > 0) delete headers['content-md5'];
    }

    if (recordPayloads) {
      st.requestCapture = new PayloadCapture();
      st.responseCapture = new PayloadCapture();
      if (buffered) st.requestCapture.add(buffered);
    }
    let upBody: Readable | Buffer | undefined;
    if (buffered) {
      upBody = buffered;
      headers['content-length'] = String(buffered.length);
    } else if (hasBody) {
      if (st.expectContinue) {
        res.writeContinue();
        st.expectContinue = false;
      }
      const limited = limitBytes(maxBody);
      upBody = req.pipe(limited);
      req.on('error', (e) => limited.destroy(e));
    }

    const abort = new AbortController();
    const onClose = (): void => {
      if (!res.writableFinished) abort.abort();
    };
    res.once('close', onClose);
    let upstream: Dispatcher.ResponseData;
    st.upstreamStart = performance.now();
    try {
      upstream = await dispatcherFor(timeoutMs).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: st.method as Dispatcher.HttpMethod,
        headers,
        body: upBody,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: abort.signal,
      });
    } catch (err) {
      res.off('close', onClose);
      if (upBody && typeof (upBody as Readable).destroy === 'function') (upBody as Readable).destroy();
      throw err;
    }

    const upstreamStart = st.upstreamStart;
    const upstreamDone = (): void => {
      st.upstreamMs ??= performance.now() - upstreamStart;
    };
    upstream.body.once('end', upstreamDone);
    upstream.body.once('close', upstreamDone);
    try {
      await respond(res, st, upstream, tp, st.method, responseRules);
    } finally {
      res.off('close', onClose);
      // A body not read to its end (refused as too large or unmaskable, a denial, an error, the
      // agent gone) would hold the upstream connection until bodyTimeout: release it now.
      if (!upstream.body.readableEnded) release(upstream.body);
    }
  };

  const respond = async (
    res: ServerResponse,
    st: RequestState,
    up: Dispatcher.ResponseData,
    tp: TargetPlan,
    method: string,
    responseRules: readonly CompiledRule[],
  ): Promise<void> => {
    const { maxMasked, allowUnparseable, responsePlan: plan } = tp;
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
    const scrub = st.scrub;
    if (scrub) countScrubbed(st, scrub.headers(headers));
    if (plan) {
      const n = maskResponseHeaders(headers, plan.maskers);
      if (n > 0) {
        st.masked += n;
        tallyMasked((st.maskedBy ??= {}), ['headers'], n);
      }
    }
    /** A body the injected credential cannot be scrubbed from is never passed on, whatever `unparseable` says. */
    const unscrubbable = (encoding: string): HttpError =>
      new HttpError(502, 'unmaskable_response', `response from route "${st.target}" has content-encoding "${encoding}", so the injected credential cannot be scrubbed from it`);
    const noBody = method === 'HEAD' || up.statusCode === 204 || up.statusCode === 304 || up.statusCode < 200 || up.headers['content-length'] === '0';
    const type = String(up.headers['content-type'] ?? '').toLowerCase();
    let kind = noBody ? 'pass' : type.startsWith('text/event-stream') ? 'sse' : isNdjson(type) ? 'ndjson' : isJson(type) ? 'json' : type.startsWith('text/') ? 'text' : 'opaque';
    if (kind === 'opaque') {
      if (plan) {
        // octet-stream, multipart, images, no Content-Type: nothing the maskers can read.
        const e = unmaskable(`response from route "${st.target}" has content-type "${type || '(none)'}", which cannot be masked`);
        if (e) throw e;
      }
      kind = 'pass';
    }
    // Without masking, only what response rules can read (JSON, event streams) is inspected; event
    // streams of a route with a credential are read too, to scrub it across events.
    const streamed = kind === 'sse' || kind === 'ndjson';
    if (!plan && (!inspect || kind === 'text') && !(scrub && streamed)) kind = 'pass';

    const encoding = String(up.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
    if (kind === 'pass' && scrub && !noBody) {
      // Whatever the type: an echo of the request headers can be anywhere in it.
      const decoded = decodeStream(up.body, encoding);
      if (!decoded) throw unscrubbable(encoding);
      for (const h of ['content-length', 'content-encoding', 'content-md5', 'etag']) delete headers[h];
      const scrubbed = decoded.pipe(scrubTransform(scrub, st));
      decoded.once('error', (e) => scrubbed.destroy(e));
      observePassThrough(st, scrubbed, type, 'identity');
      res.writeHead(up.statusCode, headers);
      await pipeToClient(scrubbed, res);
      return;
    }
    if (kind === 'pass') {
      observePassThrough(st, up.body, type, encoding);
      res.writeHead(up.statusCode, headers);
      await pipeToClient(up.body, res);
      return;
    }

    if (kind === 'sse' || kind === 'ndjson') {
      const decoded = decodeStream(up.body, encoding);
      if (!decoded) {
        if (scrub) throw unscrubbable(encoding);
        const e = unmaskable(`upstream of route "${st.target}" sent an event stream with content-encoding "${encoding}", which cannot be inspected`);
        if (e) throw e;
        observePassThrough(st, up.body, type, encoding);
        res.writeHead(up.statusCode, headers);
        await pipeToClient(up.body, res);
        return;
      }
      delete headers['content-length'];
      delete headers['content-encoding'];
      headers['cache-control'] = headers['cache-control'] ?? 'no-cache';
      headers['x-accel-buffering'] = 'no';
      // Read in the charset it declares (clients may honour it), sent as UTF-8.
      const charset = declaredCharset(String(up.headers['content-type'] ?? ''));
      let events: Readable = decoded;
      if (!isUtf8(charset)) {
        const decoder = decoderFor(charset!);
        if (!decoder) throw new HttpError(502, 'unmaskable_response', `event stream of route "${st.target}" declares charset "${charset}", which cannot be decoded, so it cannot be masked`);
        events = decoded.pipe(transcodeToUtf8(decoder));
        decoded.once('error', (e) => events.destroy(e));
        headers['content-type'] = withUtf8Charset(String(up.headers['content-type']));
      }
      await streamEvents(res, st, events, up.statusCode, headers, plan, inspect ? responseRules : undefined, st.masked, kind === 'ndjson' ? NDJSON_FRAMING : SSE_FRAMING);
      return;
    }

    // JSON and text: buffer (bounded), decode, mask, send with a fresh length.
    const raw = await readBounded(up.body, maxMasked, 502, `response from route "${st.target}" exceeds the ${maxMasked}-byte limit for masked responses`);
    let plain: Buffer | undefined;
    try {
      plain = decodeBuffer(raw, encoding, maxMasked);
    } catch {
      // Over the limit once decompressed (a decompression bomb): refused like an over-size body,
      // whatever `unparseable` says: it is not unparseable, it is too large.
      throw new HttpError(502, 'unmaskable_response', `response from route "${st.target}" exceeds the ${maxMasked}-byte limit for masked responses once decompressed`);
    }
    if (!plain) {
      if (scrub) throw unscrubbable(encoding);
      const e = unmaskable(`response from route "${st.target}" has content-encoding "${encoding}", which cannot be inspected`);
      if (e) throw e;
      st.responseCapture?.add(`(${raw.length} bytes, content-encoding ${encoding})`);
      res.writeHead(up.statusCode, headers);
      await new Promise<void>((resolve) => res.end(raw, () => resolve()));
      return;
    }
    let masked = 0;
    let rewritten = false;
    // Decoded as declared (a byte-order mark wins), sent as UTF-8.
    const charset = bomCharset(plain) ?? declaredCharset(String(up.headers['content-type'] ?? ''));
    let text: string;
    if (isUtf8(charset)) {
      text = plain.toString('utf8');
    } else {
      const decoder = decoderFor(charset!);
      let decodedText: string | undefined;
      try {
        decodedText = decoder?.decode(plain);
      } catch {
        /* bytes invalid in that charset */
      }
      if (decodedText === undefined) {
        const e = unmaskable(`response from route "${st.target}" declares charset "${charset}" but cannot be decoded in it, so it cannot be masked`);
        if (e) throw e;
        const sent = scrubBytes(plain, st);
        delete headers['content-encoding'];
        headers['content-length'] = String(sent.length);
        res.writeHead(up.statusCode, headers);
        await new Promise<void>((resolve) => res.end(sent, () => resolve()));
        return;
      }
      text = decodedText;
      rewritten = true;
      headers['content-type'] = withUtf8Charset(String(up.headers['content-type'] ?? 'text/plain'));
    }
    if (kind === 'json' && text.trim() !== '') {
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch {
        const e = unmaskable(`response from route "${st.target}" says it is JSON but does not parse, so it cannot be ${plan ? 'masked' : 'checked against response rules'}`);
        if (e) throw e;
        delete headers['content-encoding'];
        const sent = scrubBytes(plain, st);
        headers['content-length'] = String(sent.length);
        st.responseCapture?.add(sent);
        res.writeHead(up.statusCode, headers);
        await new Promise<void>((resolve) => res.end(sent, () => resolve()));
        return;
      }
      st.tap?.json(doc);
      const tooDeep = jsonTooDeep(doc);
      if (inspect) {
        // Decided on what the upstream said, before masking and before any byte is sent: a
        // denial discards the upstream's answer and the agent gets the 403 instead. Too deep to
        // check counts as unparseable: the deny rules match (fail closed).
        const denied = decideResponseWith(responseRules, tooDeep ? UNPARSEABLE_BODY : doc);
        if (denied) {
          st.decision = denied;
          throw denial(denied);
        }
      }
      if (plan && tooDeep) {
        const e = unmaskable(`response from route "${st.target}" is ${new JsonTooDeepError().message}, so it cannot be masked`);
        if (e) throw e;
      }
      let changed = false;
      for (const m of tooDeep ? [] : (plan?.maskers ?? [])) {
        const r = maskJsonDocument(doc, { masker: m.masker, jsonPaths: m.jsonPaths });
        if (r.doc !== doc) changed = true;
        doc = r.doc;
        masked += r.count;
        if (r.count > 0) tallyMasked((st.maskedBy ??= {}), ['json'], r.count);
      }
      // A repeated key: what was checked and masked is the parse (last value wins), so that is what
      // is sent. Looked for only when the parse is not being sent anyway (a second pass over the text).
      if (!changed && findDuplicateKey(text) !== undefined) {
        if (tooDeep) {
          throw new HttpError(502, 'unmaskable_response', `response from route "${st.target}" repeats a JSON key and is ${new JsonTooDeepError().message}, so it cannot be re-serialised`);
        }
        changed = true;
      }
      if (changed) {
        text = JSON.stringify(doc);
        rewritten = true;
      }
    } else {
      const references = readsCharacterReferences(type);
      for (const m of plan?.maskers ?? []) {
        const r = m.masker.mask(text);
        text = r.text;
        masked += r.count;
        if (r.count > 0) tallyMasked((st.maskedBy ??= {}), r.detectors, r.count);
        if (!references) continue;
        // `&#97;lice&#64;x.io` is an address to whoever reads the HTML.
        const e = maskEntityRuns(text, m.masker);
        text = e.text;
        masked += e.count;
        if (e.count > 0) tallyMasked((st.maskedBy ??= {}), e.detectors, e.count);
      }
    }
    st.masked += masked;
    const out = scrubBytes(masked > 0 || rewritten ? Buffer.from(text, 'utf8') : plain, st);
    delete headers['content-encoding'];
    delete headers['content-md5'];
    if (st.masked > maskedInRequest) delete headers['etag'];
    headers['content-length'] = String(out.length);
    st.responseCapture?.add(out);
    res.writeHead(up.statusCode, headers);
    await new Promise<void>((resolve) => res.end(out, () => resolve()));
  };

  const start = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void => {
    const conn = connectionOf(req.socket);
    const tp = req.headers['traceparent'];
    const ts = req.headers['tracestate'];
    const st: RequestState = {
      target: '',
      method: (req.method ?? 'GET').toUpperCase(),
      path: '',
      start: performance.now(),
      session: conn.id,
      seq: ++conn.seq,
      trace: startTrace(tp === undefined ? undefined : parseTraceparent(String(tp), ts === undefined ? undefined : String(ts))),
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
 * `/openai/v1/chat?x=1` → target `openai`, path `/v1/chat`. The path rules see is read the way
 * upstreams read it (request-view.ts normalizeRequestPath: decoded, `;params` dropped, `//`
 * collapsed); what could mean two things (dot segments, encoded slashes, double encoding) is
 * refused, so `/v1/chat/../files` or `/v1/%2566iles` cannot slip past a rule on `/v1/files/**`.
 */
export function parseRoute(url: string): ParsedRoute {
  if (!url.startsWith('/')) throw new HttpError(400, 'bad_request', 'expected a route path like /<route>/<path>');
  const q = url.indexOf('?');
  const rawPath = q >= 0 ? url.slice(0, q) : url;
  const search = q >= 0 ? url.slice(q) : '';
  const first = /^\/*([^/]+)/.exec(rawPath);
  if (!first) throw new HttpError(404, 'unknown_route', 'no route named in the path; use /<route>/<path>');
  let target: string;
  try {
    target = decodeURIComponent(first[1]);
  } catch {
    throw new HttpError(400, 'bad_request', 'malformed percent-encoding in the path');
  }
  let p;
  try {
    p = normalizeRequestPath(rawPath.slice(first[0].length));
  } catch (err) {
    if (err instanceof AmbiguousRequestError) throw new HttpError(400, 'bad_request', err.message.replace(/in paths$/, 'in route paths'));
    throw err;
  }
  return { target, path: p.judged, rest: p.forwarded.slice(1), search };
}

function upstreamUrl(base: URL, rest: string, search: string): URL {
  const basePath = base.pathname.replace(/\/+$/, '');
  const url = new URL(base.origin);
  url.pathname = `${basePath}/${rest}`;
  url.search = search;
  return url;
}

/** Newline-delimited JSON (Ollama, JSON Lines): streamed line by line. */
function isNdjson(type: string): boolean {
  const t = type.split(';')[0].trim();
  return t.includes('ndjson') || t === 'application/jsonl' || t === 'application/x-jsonlines' || t === 'application/json-lines';
}

function isJson(contentType: string | string[] | undefined): boolean {
  const t = String(contentType ?? '').toLowerCase().split(';')[0].trim();
  return t === 'application/json' || t.endsWith('+json');
}

/**
 * Injects the target's credential into headers or the URL; throws 503 naming the secret when it is
 * missing. Returns the secret values it sent (what the response is scrubbed of).
 */
function injectCredential(secrets: SecretStore, target: HttpTargetSpec, headers: Record<string, string | string[]>, url: URL): string[] {
  const secret = target.credentialsSecret;
  if (!secret) return [];
  const auth = target.auth ?? {};
  try {
    if (auth.basic) {
      const user = secrets.read(secret, 'username');
      const pass = secrets.read(secret, 'password');
      const value = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
      headers[(auth.header ?? 'authorization').toLowerCase()] = value;
      return [pass, `${user}:${pass}`, value];
    }
    const token = secrets.read(secret, 'token');
    if (/[\r\n\0]/.test(token)) throw new SecretError(`credential "token" of secret "${secret}" contains a line break`);
    if (auth.queryParam) {
      url.searchParams.delete(auth.queryParam);
      url.searchParams.append(auth.queryParam, token);
      return [token];
    }
    const header = (auth.header ?? 'Authorization').toLowerCase();
    const prefix = auth.valuePrefix ?? (header === 'authorization' ? 'Bearer ' : '');
    headers[header] = prefix + token;
    return prefix === '' ? [token] : [token, prefix + token];
  } catch (err) {
    if (err instanceof SecretError) {
      throw new HttpError(503, 'credential_unavailable', `the credential for this route (secret "${secret}") is unavailable: ${err.message}`, { secret });
    }
    throw err;
  }
}

/** The parsed JSON of an event, for response rules: an event without data, or whose data is not JSON (`[DONE]`), matches nothing; one nested too deep is unparseable (deny rules match). */
function checkItem(item: SseItem, rules: readonly CompiledRule[]): Decision | undefined {
  const doc = item.doc;
  if (doc === NOT_JSON || doc === null || typeof doc !== 'object') return undefined;
  return decideResponseWith(rules, jsonTooDeep(doc) ? UNPARSEABLE_BODY : doc);
}

/** How a stream is cut into events and written back: SSE events, or NDJSON lines. */
interface StreamFraming {
  name: string;
  /** Events as they complete, each parsed only when called (after a denial, later ones never are). */
  reader(): { push(chunk: Buffer): Array<() => SseItem>; end(): Array<() => SseItem> };
  serialize(item: SseItem): string;
  /** What the stream ends with when a response rule denies an event. */
  denial(d: Decision): string;
  /** What the stream ends with when it cannot be masked (an error body). */
  error(body: string): string;
}

/**
 * Most bytes an event stream may send without completing an event. A stream that is not SSE
 * (one long line, no blank lines) would otherwise be buffered without end; past this it is
 * refused (the stream ends with an `event: error`).
 */
export const MAX_SSE_EVENT_BYTES = 10 * 1024 * 1024;

class StreamEventTooLargeError extends Error {}

const SSE_FRAMING: StreamFraming = {
  name: 'event stream',
  reader() {
    const p = createSseParser();
    let pending = 0;
    return {
      push(c) {
        const blocks = p.push(c);
        pending = blocks.length > 0 ? 0 : pending + c.length;
        if (pending > MAX_SSE_EVENT_BYTES) throw new StreamEventTooLargeError(`an event longer than ${MAX_SSE_EVENT_BYTES} bytes`);
        return blocks.map((b) => () => sseItem(b));
      },
      end: () => p.end().map((b) => () => sseItem(b)),
    };
  },
  serialize: serializeItem,
  denial: (d) => sseDenial(d),
  error: (body) => `event: error\ndata: ${body}\n\n`,
};

/** NDJSON lines, each at most MAX_NDJSON_LINE_CHARS long (a longer one ends the stream with an error line). */
export const MAX_NDJSON_LINE_CHARS = 1024 * 1024;

const NDJSON_FRAMING: StreamFraming = {
  name: 'NDJSON stream',
  reader() {
    const r = createNdjsonReader(MAX_NDJSON_LINE_CHARS);
    return { push: (c) => r.push(c).map((it) => () => it), end: () => r.end().map((it) => () => it) };
  },
  serialize: serializeNdjsonItem,
  denial: (d) => policyDeniedBody(d, d.reason) + '\n',
  error: (body) => body + '\n',
};

/** The SSE form of the 403 body: what a streamed response ends with when a response rule denies it. */
function sseDenial(d: Decision): string {
  return `event: error\ndata: ${policyDeniedBody(d, d.reason)}\n\n`;
}

function denial(d: Decision): HttpError {
  return new HttpError(403, 'policy_denied', d.reason, { rule: deniedRule(d) });
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
  const body = e.type === 'policy_denied' ? policyDeniedBody({ rule: e.extra.rule as string | undefined }, e.message) : errorBody(e.type, e.message, e.extra);
  // A body we did not read would have to be drained before the next request; close instead.
  sendJsonError(res, e.status, body, { headers: e.headers, closeConnection: !req.complete });
  if (!req.complete) req.resume();
}

/**
 * A stream read into memory; an HttpError once it exceeds `limit`: 413 for the agent's request
 * (left paused, so the error can still be answered on its connection), 502 unmaskable_response
 * for an upstream body (destroyed, releasing its connection).
 */
function readBounded(stream: Readable, limit: number, status: 413 | 502, message = `body exceeds the limit of ${limit} bytes`): Promise<Buffer> {
  return status === 413
    ? readLimited(stream, limit, () => new HttpError(413, 'request_too_large', message), 'pause')
    : readLimited(stream, limit, () => new HttpError(502, 'unmaskable_response', message), 'destroy');
}

/** A request body read for rules or masking. */
type ParsedBody = Exclude<ParsedJsonBody, { kind: 'refused' }>;

/**
 * A body JSON.parse accepts but that upstreams may read otherwise (a key repeated in one object,
 * a `__proto__` key) is refused (400): the upstream would act on values nobody judged.
 */
function parseBody(raw: Buffer, contentType: string | undefined): ParsedBody {
  const b = parseJsonBody(raw, contentType);
  if (b.kind !== 'refused') return b;
  throw new HttpError(400, b.type, b.message);
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

/**
 * The decoded body; undefined for an encoding we cannot decode. stream.pipeline: an upstream
 * that dies mid-stream errors the decoder (and a decoder failure destroys the upstream body), so
 * a compressed stream always settles.
 */
function decodeStream(body: Readable, encoding: string): Readable | undefined {
  let decoder: Transform;
  switch (encoding) {
    case '':
    case 'identity':
      return body;
    case 'gzip':
    case 'x-gzip':
      decoder = zlib.createGunzip();
      break;
    case 'deflate':
      return inflateEither(body);
    case 'br':
      decoder = zlib.createBrotliDecompress();
      break;
    default:
      return undefined;
  }
  return pipelineCb(body, decoder, () => {
    /* errors reach the reader through the destroyed decoder */
  });
}

/**
 * `deflate` as servers send it: zlib-wrapped (RFC 9110), or raw (some servers), told apart by the
 * zlib header (CM 8, check bits a multiple of 31) of the first bytes, as decodeBuffer does by
 * trying both. The decoder chosen, the body goes through it in a pipeline (backpressure kept).
 */
function inflateEither(body: Readable): Readable {
  const out = new PassThrough();
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    if (head.length < 2) return;
    body.off('data', onData);
    body.off('end', onEnd);
    body.pause();
    body.unshift(head);
    const wrapped = (head[0] & 0x0f) === 8 && ((head[0] << 8) | head[1]) % 31 === 0;
    pipelineCb(body, wrapped ? zlib.createInflate() : zlib.createInflateRaw(), out, () => {
      /* errors reach the reader through the destroyed output */
    });
  };
  const onEnd = (): void => {
    if (head.length > 0) out.destroy(new Error('truncated deflate stream'));
    else out.end();
  };
  body.on('data', onData);
  body.once('end', onEnd);
  body.once('error', (e) => out.destroy(e));
  return out;
}

/** Decoded bytes; undefined for an unknown encoding or corrupt data. Throws when the output would exceed limit. */
function decodeBuffer(buf: Buffer, encoding: string, limit: number): Buffer | undefined {
  const opts = { maxOutputLength: limit };
  const tooLarge = (e: unknown): boolean => e instanceof RangeError || (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
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
        } catch (e) {
          if (tooLarge(e)) throw e;
          return zlib.inflateRawSync(buf, opts); // some servers send raw deflate
        }
      case 'br':
        return zlib.brotliDecompressSync(buf, opts);
      default:
        return undefined;
    }
  } catch (e) {
    if (tooLarge(e)) throw e;
    return undefined;
  }
}

/** The credential scrubbed from a buffered body (counted as masked). */
function scrubBytes(buf: Buffer, st: RequestState): Buffer {
  if (!st.scrub) return buf;
  const r = st.scrub.bytes(buf);
  countScrubbed(st, r.count);
  return r.buf;
}

/** Scrubbed credentials count as masked values, tallied as `credential` (warden_masked_values_total). */
function countScrubbed(st: RequestState, n: number): void {
  if (n === 0) return;
  st.masked += n;
  tallyMasked((st.maskedBy ??= {}), ['credential'], n);
}

/** Scrubs the credential from a byte stream, holding back only what could still become one. */
function scrubTransform(scrubber: CredentialScrubber, st: RequestState): Transform {
  const scrub = scrubber.byteStream();
  let counted = 0;
  const count = (): void => {
    countScrubbed(st, scrub.count - counted);
    counted = scrub.count;
  };
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      const out = scrub.push(chunk.toString('latin1'));
      count();
      cb(null, out === '' ? undefined : Buffer.from(out, 'latin1'));
    },
    flush(cb: TransformCallback) {
      const out = scrub.end();
      count();
      cb(null, out === '' ? undefined : Buffer.from(out, 'latin1'));
    },
  });
}

/** Streams body to the agent; resolves when sent, or when the agent went away (body destroyed). */
async function pipeToClient(body: Readable, res: ServerResponse): Promise<void> {
  try {
    await pipeline(body, res);
  } catch (err) {
    if (res.destroyed && !res.writableFinished && !body.errored) return; // the agent closed
    throw err;
  }
}

/** Destroys an upstream body not read to its end (its connection is released); its abort error is expected. */
function release(body: Readable): void {
  if (body.destroyed) return;
  body.on('error', () => undefined);
  body.destroy();
}

/** Resolves once res can take more, or is gone. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/**
 * An event stream to the agent. Each event is parsed once (sseItem): response rules (when given)
 * check it against the upstream's unmasked JSON, then every masking rule's masker runs over the
 * same parse (createSsePipeline). Only whole events that passed go on, so half of an event is
 * never forwarded before it could be checked. On a denial the events before it are still sent
 * (the maskers release what they held, masked), then `event: error` + the policy_denied body;
 * nothing from the denied event on is. An event nested too deep to mask ends the stream with an
 * `event: error` (unmaskable_response): fail closed.
 */
async function streamEvents(
  res: ServerResponse,
  st: RequestState,
  decoded: Readable,
  status: number,
  headers: Record<string, string | string[]>,
  plan: MaskPlan | null,
  rules: readonly CompiledRule[] | undefined,
  maskedInRequest: number,
  framing: StreamFraming = SSE_FRAMING,
): Promise<void> {
  const parser = framing.reader();
  const maskers = (plan?.maskers ?? []).map((m) => createSseEventMasker({ masker: m.masker, jsonPaths: m.jsonPaths }));
  // The injected credential, last: held back across events like a detector match.
  if (st.scrub) maskers.push(st.scrub.eventMasker());
  const pipe = createSsePipeline(maskers, framing.serialize);
  /** The events before the first denied one, and the denial (later ones are not even checked). */
  const check = (items: ReadonlyArray<() => SseItem>): { passed: SseItem[]; denied?: Decision } => {
    const passed: SseItem[] = [];
    for (const read of items) {
      const item = read();
      const denied = rules ? checkItem(item, rules) : undefined;
      if (denied) return { passed, denied };
      passed.push(item);
    }
    return { passed };
  };
  // The injected credential is scrubbed from the text as it goes out, across writes.
  const scrub = st.scrub?.textStream();
  const finish = (text: string): Promise<void> => {
    const last = scrub ? scrub.push(text) + scrub.end() : text;
    return new Promise((resolve) => res.end(last, () => resolve()));
  };
  let agentGone = false;
  const onClose = (): void => {
    if (res.writableFinished) return;
    agentGone = true;
    decoded.destroy();
  };
  res.writeHead(status, headers);
  res.flushHeaders();
  res.once('close', onClose);
  try {
    for await (const chunk of decoded) {
      const { passed, denied } = check(parser.push(chunk as Buffer));
      if (st.tap) for (const it of passed) if (it.data !== null) st.tap.sseEvent(it.event ?? undefined, it.data);
      const out = pipe.push(passed);
      if (out !== '') st.responseCapture?.add(out);
      if (denied) {
        st.decision = denied;
        return await finish(out + pipe.end() + framing.denial(denied));
      }
      const sent = scrub ? scrub.push(out) : out;
      if (sent !== '' && !res.write(sent)) await drained(res);
      if (agentGone) return;
    }
    if (agentGone) return;
    const { passed, denied } = check(parser.end());
    const out = pipe.push(passed.filter((b) => b.block?.complete));
    if (denied) {
      st.decision = denied;
      return await finish(out + pipe.end() + framing.denial(denied));
    }
    await finish(out + pipe.end(passed.filter((b) => !b.block?.complete)));
  } catch (err) {
    if (agentGone) return;
    if (err instanceof JsonTooDeepError || err instanceof NdjsonLineTooLongError || err instanceof StreamEventTooLargeError) {
      st.error = `${framing.name} refused: ${err.message}`;
      return await finish(framing.error(errorBody('unmaskable_response', `an event of route "${st.target}" is ${err.message}, so it cannot be masked`)));
    }
    throw err;
  } finally {
    res.off('close', onClose);
    st.masked = maskedInRequest + pipe.masked();
    if (scrub) countScrubbed(st, scrub.count);
  }
}

/** Per agent connection: an id for the audit records (their "session") and the requests' order on it. */
const connections = new WeakMap<Socket, { id: string; seq: number }>();
function connectionOf(socket: Socket): { id: string; seq: number } {
  let c = connections.get(socket);
  if (!c) connections.set(socket, (c = { id: `http-${newSpanId()}`, seq: 0 }));
  return c;
}

/** LLM API calls, by path: their request body is read for the model name (gen_ai.request.model). */
const GENAI_PATH = /(\/(chat\/completions|completions|embeddings|responses|messages)|:(generateContent|streamGenerateContent))$/;
function looksLikeGenAi(path: string): boolean {
  return GENAI_PATH.test(path);
}

/**
 * A response passed through untouched (no masking, no response rules) is still read for the
 * recording and for LLM usage (token counts): a copy of each chunk, never delaying the stream.
 */
function observePassThrough(st: RequestState, body: Readable, type: string, encoding: string): void {
  const capture = st.responseCapture;
  const tap = encoding === 'identity' ? st.tap : undefined;
  if (!capture && !tap) return;
  const sse = type.startsWith('text/event-stream');
  const json = !sse && isJson(type);
  const parser = tap && sse ? createSseParser() : undefined;
  const jsonCopy = tap && json ? new PayloadCapture(4 * 1024 * 1024) : undefined;
  body.on('data', (chunk: Buffer) => {
    capture?.add(chunk);
    if (parser) for (const b of parser.push(chunk)) if (b.data !== null) tap!.sseEvent(b.event ?? undefined, b.data);
    jsonCopy?.add(chunk);
  });
  body.once('end', () => {
    if (!jsonCopy || jsonCopy.truncated) return;
    try {
      tap!.json(JSON.parse(jsonCopy.text()));
    } catch {
      /* not JSON after all: no usage to read */
    }
  });
}

/**
 * Masks a request body read for masking: JSON (whatever the Content-Type says) through the
 * document masker, text/* through the detectors; anything else (form, multipart, octet-stream,
 * JSON nested too deep, declared JSON that does not parse) cannot be masked and is refused with
 * 422, unless the target allows passing it unmasked.
 */
function maskRequestBody(
  parsed: ParsedBody,
  contentType: string,
  encoding: string,
  plan: MaskPlan,
  allowUnparseable: boolean,
): { body: Buffer; count: number; error?: string } {
  const body = parsed.raw;
  const refuse = (why: string): { body: Buffer; count: number; error?: string } => {
    if (allowUnparseable) return { body, count: 0, error: `request passed unmasked (unparseable: allow): ${why}` };
    throw new HttpError(422, 'unmaskable_request', `${why}; the policy masks request bodies, so it is not sent`);
  };
  if (encoding.toLowerCase().trim() !== 'identity') return refuse(`request body has content-encoding "${encoding}"`);
  if (parsed.kind === 'empty') return { body, count: 0 };
  let count = 0;
  if (parsed.kind === 'json') {
    let doc: unknown = parsed.doc;
    for (const m of plan.maskers) {
      const r = maskJsonDocument(doc, { masker: m.masker, jsonPaths: m.jsonPaths });
      doc = r.doc;
      count += r.count;
    }
    return count > 0 ? { body: Buffer.from(JSON.stringify(doc), 'utf8'), count } : { body, count };
  }
  const type = contentType.toLowerCase().split(';')[0].trim();
  if (parsed.tooDeep) return refuse(`request body is ${new JsonTooDeepError().message}`);
  if (isJson(type)) return refuse('request body says it is JSON but does not parse');
  if (!type.startsWith('text/')) return refuse(`request body of content-type "${type || '(none)'}" is not JSON or text, so it cannot be masked`);
  let text = body.toString('utf8');
  for (const m of plan.maskers) {
    const r = m.masker.mask(text);
    text = r.text;
    count += r.count;
  }
  return count > 0 ? { body: Buffer.from(text, 'utf8'), count } : { body, count };
}
