// Named-route reverse proxy: `http://127.0.0.1:15001/<target>/<rest>` → `<baseUrl>/<rest>` for
// every `http` target of the policy, and `http://127.0.0.1:15001/<target>` → the server's URL for
// every `mcp` target (MCP_STAGES: every JSON-RPC message judged, every server message through the
// per-message hooks; stages/mcp-*.ts, pure pieces in ../../mcp/).
//
//   const handler = createRouteHandler({ policy: () => store.current, secrets, identity, audit });
//   server.on('request', handler); server.on('checkContinue', handler.checkContinue);
//
// This file is the composition: each request becomes a RouteExchange (stages/exchange.ts) that
// goes through ROUTE_STAGES (or MCP_STAGES) in order, each concern one file under ../stages/. A stage refuses by
// throwing an HttpError (../errors.ts), answered here; anything else is mapped by asRouteError
// (upstream failures: 502/504 naming the target). Fails closed throughout: nothing reaches the
// upstream before it was decided, nothing reaches the agent before it was masked and checked.
// Request paths, method overrides and JSON bodies are read by request-view.ts, shared with the
// forward proxy.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { HttpError, httpErrorBody, sendHttpError, sendJsonError } from '../errors';
import { AmbiguousRequestError, normalizeRequestPath } from '../request-view';
import { auditWhenDone, capturePayloadsStage } from '../stages/audit';
import { decideStage } from '../stages/decide';
import { RouteExchange, type ParsedRoute, type RouteHandlerContext, type RouteServices } from '../stages/exchange';
import { asRouteError, forwardUpstreamStage, UpstreamClients } from '../stages/forward-upstream';
import { genAiStage, looksLikeGenAi } from '../stages/genai';
import { holdStage } from '../stages/hold';
import { identifyStage } from '../stages/identify';
import { injectCredentialStage } from '../stages/inject-credential';
import { maskRequestStage } from '../stages/mask-request';
import { maskResponseHeadersStage } from '../stages/mask-response-headers';
import { readBodyStage } from '../stages/read-body';
import { routeOperationStage } from '../stages/route-operation';
import { respondStage } from '../stages/respond';
import { responseRulesStage } from '../stages/response-rules';
import { runStages, type Stage } from '../stages/stage';
import { TargetPlans } from '../stages/target-plan';
import { upstreamRequestStage } from '../stages/upstream-request';
import { mcpAnswerStage } from '../stages/mcp-answer';
import { mcpJudgeStage } from '../stages/mcp-judge';
import { mcpHoldStage } from '../stages/mcp-hold';
import { mcpMaskRequestStage } from '../stages/mcp-mask-request';
import { mcpReadStage } from '../stages/mcp-read';
import { mcpRespondStage } from '../stages/mcp-respond';
import { mcpTargetStage } from '../stages/mcp-target';
import { mcpUpstreamRequestStage } from '../stages/mcp-upstream-request';
import { ToolPins } from '../../mcp/pins';
import { rpcError, MCP_PARSE_ERROR, MCP_SIDECAR_ERROR } from '../../mcp/denials';

export type { RouteHandlerContext, RouteProxyLimits } from '../stages/exchange';
export { MAX_NDJSON_LINE_CHARS, MAX_SSE_EVENT_BYTES } from '../stages/respond-events';

export type RouteHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  /** For `server.on('checkContinue', ...)`: sends `100 Continue` only once the request is allowed. */
  checkContinue(req: IncomingMessage, res: ServerResponse): void;
  /** Closes the pooled upstream connections. */
  close(): Promise<void>;
};

/** Which route, by the first path segment; the path after it as rules see it (parseRoute). */
function selectRoute(ex: RouteExchange): void {
  const route = parseRoute(ex.req.url ?? '/');
  ex.route = route;
  ex.target = route.target;
  ex.path = route.path;
}

/**
 * The route's target plan (404 unknown_route, listing the routes, once the caller is known); a
 * full audit trail refuses new requests (503 audit_unavailable); what the audit record will read.
 */
const targetStage: Stage<RouteExchange> = {
  name: 'target',
  run(ex) {
    const policy = ex.policy!;
    const plan = ex.services.plans.get(policy, ex.target);
    if (!plan) {
      throw new HttpError(
        404,
        'unknown_route',
        `no HTTP route named "${ex.target}"; routes: ${
          [...policy.targets]
            .filter(([, t]) => t.http || t.mcp)
            .map(([n]) => n)
            .join(', ') || '(none)'
        }`,
      );
    }
    ex.plan = plan;
    const options = ex.services.options;
    const blocked = options.auditBlocked?.();
    if (blocked) throw new HttpError(503, 'audit_unavailable', blocked);
    ex.recordPayloads = options.auditRecords === true && policy.auditPayloads;
    ex.llm = options.auditRecords === true && ex.method === 'POST' && looksLikeGenAi(ex.path);
  },
};

/** The named-route pipeline (after selectRoute), in order. A new concern is a new stage file placed here. */
const ROUTE_STAGES: readonly Stage<RouteExchange>[] = [
  identifyStage, // caller identity first: an unauthenticated caller learns nothing else (not even the routes)
  targetStage,
  readBodyStage,
  routeOperationStage,
  decideStage,
  genAiStage,
  holdStage, // deny, or wait for approval
  responseRulesStage,
  upstreamRequestStage,
  injectCredentialStage,
  maskRequestStage,
  capturePayloadsStage,
  forwardUpstreamStage,
  maskResponseHeadersStage,
  respondStage,
];

/**
 * After the messages were judged and every one allowed: the request goes upstream and the answer
 * comes back through the per-message hooks (mcp-answer.ts runs these, or answers itself).
 */
const MCP_FORWARD_STAGES: readonly Stage<RouteExchange>[] = [
  mcpUpstreamRequestStage,
  injectCredentialStage,
  capturePayloadsStage,
  forwardUpstreamStage,
  maskResponseHeadersStage,
  mcpRespondStage,
];

/** The pipeline of a route whose target is an `mcp` target. */
const MCP_STAGES: readonly Stage<RouteExchange>[] = [
  identifyStage, // the caller first, as on HTTP routes
  mcpTargetStage,
  mcpReadStage,
  mcpJudgeStage,
  mcpMaskRequestStage, // arguments masked before a hold shows them and before they are sent
  mcpHoldStage,
  mcpAnswerStage(MCP_FORWARD_STAGES),
];

export function createRouteHandler(ctx: RouteHandlerContext): RouteHandler {
  const services: RouteServices = {
    options: ctx,
    plans: new TargetPlans(ctx.limits, ctx.hashKey ?? randomBytes(32)),
    clients: new UpstreamClients(ctx.dispatcher),
    mcpPins: new ToolPins(),
  };

  const start = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void => {
    void handle(new RouteExchange(req, res, services, expectContinue));
  };

  const handler = ((req: IncomingMessage, res: ServerResponse) => start(req, res, false)) as RouteHandler;
  handler.checkContinue = (req, res) => start(req, res, true);
  handler.close = () => services.clients.close();
  return handler;
}

async function handle(ex: RouteExchange): Promise<void> {
  const { req, res } = ex;
  const policy = (ex.policy = ex.services.options.policy());
  try {
    selectRoute(ex); // which route, then its pipeline: MCP targets have their own
    const pending = runStages(policy.targets.get(ex.target)?.mcp ? MCP_STAGES : ROUTE_STAGES, ex);
    if (pending) await pending;
    ex.releaseUpstream();
  } catch (err) {
    ex.releaseUpstream();
    const e = asRouteError(err, ex.target);
    ex.error = ex.error ?? e.message;
    if (!res.headersSent) {
      if (ex.mcp) sendMcpError(ex, e);
      else sendHttpError(req, res, e);
    } else if (ex.mcp?.stream && !res.writableEnded) {
      await endHeldStream(ex, e);
    } else {
      res.destroy();
    }
  } finally {
    auditWhenDone(ex);
  }
}

/** A refusal after a held call's event stream opened: the call's JSON-RPC error, an `error` event, the end. */
function endHeldStream(ex: RouteExchange, e: HttpError): Promise<void> {
  const { code, ...extra } = e.extra;
  const rpcCode = typeof code === 'number' ? code : MCP_SIDECAR_ERROR;
  const message = rpcError(ex.mcp!.id, rpcCode, e.message, { type: e.type, ...extra });
  return ex.mcp!.stream!.end([message], `event: error\ndata: ${httpErrorBody(e)}\n\n`);
}

/** An MCP route's refusal as JSON-RPC (HTTP status kept; the error's type and fields in error.data). */
function sendMcpError(ex: RouteExchange, e: HttpError): void {
  const { code, ...extra } = e.extra;
  const rpcCode = typeof code === 'number' ? code : e.type === 'parse_error' ? MCP_PARSE_ERROR : MCP_SIDECAR_ERROR;
  const body = JSON.stringify(rpcError(ex.mcp!.id, rpcCode, e.message, { type: e.type, ...extra }));
  sendJsonError(ex.res, e.status, body, { headers: e.headers, closeConnection: !ex.req.complete });
  if (!ex.req.complete) ex.req.resume();
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
