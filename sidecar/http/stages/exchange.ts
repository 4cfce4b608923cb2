// The per-request context of a named route, carried through the stages (stage.ts): what the
// agent sent, what each stage decided or prepared, the upstream's answer, and what the audit
// record needs. One object per request, every field initialised here (one shape), so stages take
// one argument instead of six to eight.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { AuditApproval, AuditGenAi, AuditTrace } from '../../../common/audit/record';
import { tallyMasked } from '../../../common/masking/tally';
import type { CompiledPolicy, CompiledRule } from '../../../common/policy/compile';
import type { HttpOperationWithPort } from '../../../common/policy/engine';
import type { Decision, HttpOperation, Identity } from '../../../common/policy/types';
import type { PayloadCapture } from '../../audit/capture';
import { newSpanId } from '../../audit/ids';
import { parseTraceparent, startTrace } from '../../audit/trace-context';
import type { SecretStore } from '../../secrets';
import type { HttpApprovalGate, McpApprovalGate } from '../../approvals/hold';
import type { GenAiResponseTap } from '../genai';
import type { ParsedJsonBody } from '../request-view';
import type { HttpAuditEvent } from '../../audit/events';
import type { CredentialScrubber } from '../routes/credential-scrub';
import type { Judgement } from './decide';
import type { TargetPlan, TargetPlans } from './target-plan';
import type { McpExchange } from './mcp-state';
import type { ToolPins } from '../../mcp/pins';
import type { UpstreamClients } from './forward-upstream';

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
  /** The approval machinery for held MCP tool calls (the same gate); without it such a hold is a denial. */
  mcpApprovals?: McpApprovalGate;
  /** Interval of the heartbeat a held MCP call sends on its event stream; default 10 s (tests: shorter). */
  mcpHeartbeatMs?: number;
  limits?: RouteProxyLimits;
  /** HMAC key for the `hash` masking strategy; a random per-process key by default. */
  hashKey?: Buffer;
  /** Overrides the pooled undici Agents (tests); per-request header/body timeouts still apply. */
  dispatcher?: Dispatcher;
}

/** What the stages reach beyond the request: the handler's options and its per-handler state. */
export interface RouteServices {
  readonly options: RouteHandlerContext;
  readonly plans: TargetPlans;
  readonly clients: UpstreamClients;
  /** MCP tool definitions seen per target (pinning), for the life of the process. */
  readonly mcpPins: ToolPins;
}

export interface ParsedRoute {
  target: string;
  /** Path after the route name, normalised, always starting with `/`. */
  path: string;
  /** The same path as sent upstream (percent-encoding kept), without the leading `/`. */
  rest: string;
  search: string;
}

/** A request body read for rules or masking. */
export type ParsedBody = Exclude<ParsedJsonBody, { kind: 'refused' }>;

const NO_RULES: readonly CompiledRule[] = [];

export class RouteExchange implements Judgement {
  /** performance.now() when the request arrived. */
  readonly start = performance.now();
  readonly method: string;
  /** Route name; '' until the path is parsed. */
  target = '';
  /** The path as decided, without the query string. */
  path = '';
  route: ParsedRoute | undefined = undefined;
  /** The current policy, read once when the request arrives. */
  policy: CompiledPolicy | undefined = undefined;
  plan: TargetPlan | undefined = undefined;
  /** Who is asking: the pod's identity, or the verified token's subject. */
  identity: Identity;
  /** `Expect: 100-continue` not answered yet. */
  expectContinue: boolean;

  // --- request
  /** The request has a body (declared length > 0, or chunked). */
  hasBody = false;
  /** Payloads are recorded (`audit.payloads`, with audit records kept). */
  recordPayloads = false;
  /** An LLM call whose model and usage the audit record reads. */
  llm = false;
  body: ParsedBody | undefined = undefined;
  /** Every method the upstream may act on (request line and override headers). */
  methods: string[] = [];
  op: HttpOperation | undefined = undefined;
  decision: Decision | undefined = undefined;
  approval: AuditApproval | undefined = undefined;
  approvalAnswer: { approved: boolean; reason: string } | undefined = undefined;
  genAi: AuditGenAi | undefined = undefined;
  tap: GenAiResponseTap | undefined = undefined;
  /** Response rules that apply to this request (`match.http.response`). */
  responseRules: readonly CompiledRule[] = NO_RULES;
  /** An MCP route's messages, their verdicts and answer (stages/mcp-*.ts); undefined on HTTP routes. */
  mcp: McpExchange | undefined = undefined;

  // --- upstream request
  upstreamHeaders: Record<string, string | string[]> = {};
  upstreamUrl: URL | undefined = undefined;
  /** The body as sent, when it was read (masked or not). */
  bufferedBody: Buffer | undefined = undefined;
  /** Set when a credential was injected: it is scrubbed from everything the upstream answers. */
  scrub: CredentialScrubber | undefined = undefined;
  upstream: Dispatcher.ResponseData | undefined = undefined;
  /** How long the upstream body may stay silent, ms (0: no limit); the target's timeout when unset. */
  upstreamIdle: number | undefined = undefined;
  /** Aborts the upstream request when the agent goes away; removed once the answer is sent. */
  onAgentClose: (() => void) | undefined = undefined;

  // --- response
  /** Values masked before the response arrived (request body). */
  maskedInRequest = 0;
  responseHeaders: Record<string, string | string[]> = {};

  // --- audit
  upstreamStart: number | undefined = undefined;
  upstreamMs: number | undefined = undefined;
  url: string | undefined = undefined;
  serverAddress: string | undefined = undefined;
  serverPort: number | undefined = undefined;
  requestCapture: PayloadCapture | undefined = undefined;
  responseCapture: PayloadCapture | undefined = undefined;
  maskedBy: Record<string, number> | undefined = undefined;
  masked = 0;
  error: string | undefined = undefined;
  audited = false;

  /** The agent's connection (the record's "session"), and the request's order on it. */
  readonly session: string;
  readonly seq: number;
  /** This request's span, a child of the agent's `traceparent` when it sent one. */
  readonly trace: AuditTrace;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly services: RouteServices,
    expectContinue: boolean,
  ) {
    const conn = connectionOf(req.socket);
    this.session = conn.id;
    this.seq = ++conn.seq;
    const tp = req.headers['traceparent'];
    const ts = req.headers['tracestate'];
    this.trace = startTrace(tp === undefined ? undefined : parseTraceparent(String(tp), ts === undefined ? undefined : String(ts)));
    this.method = (req.method ?? 'GET').toUpperCase();
    this.identity = services.options.identity;
    this.expectContinue = expectContinue;
  }

  get approvals(): HttpApprovalGate | undefined {
    return this.services.options.approvals;
  }

  /** The operation as held: with the port of the route's base URL. */
  heldOperation(): HttpOperationWithPort {
    const base = this.plan!.base;
    return { ...this.op!, port: Number(base.port) || (base.protocol === 'https:' ? 443 : 80) };
  }

  /** Aborts a hold when the agent goes away before its answer was sent. */
  watchAgent(): { signal: AbortSignal; done(): void } {
    const res = this.res;
    const abort = new AbortController();
    const onClose = (): void => {
      if (!res.writableFinished) abort.abort();
    };
    res.once('close', onClose);
    return { signal: abort.signal, done: () => res.off('close', onClose) };
  }

  /** Sends `100 Continue` if the agent is waiting for it (once the request may go on). */
  continueBody(): void {
    if (!this.expectContinue) return;
    this.res.writeContinue();
    this.expectContinue = false;
  }

  /** Scrubbed credentials count as masked values, tallied as `credential` (warden_masked_values_total). */
  countScrubbed(n: number): void {
    if (n === 0) return;
    this.masked += n;
    tallyMasked((this.maskedBy ??= {}), ['credential'], n);
  }

  /** The credential scrubbed from a buffered body (counted as masked). */
  scrubBytes(buf: Buffer): Buffer {
    if (!this.scrub) return buf;
    const r = this.scrub.bytes(buf);
    this.countScrubbed(r.count);
    return r.buf;
  }

  /** Values masked, tallied by what found them. */
  countMasked(by: readonly string[], n: number): void {
    if (n > 0) tallyMasked((this.maskedBy ??= {}), by, n);
  }

  /** Stops watching the agent's connection and releases an upstream body not read to its end. */
  releaseUpstream(): void {
    if (this.onAgentClose) {
      this.res.off('close', this.onAgentClose);
      this.onAgentClose = undefined;
    }
    const body = this.upstream?.body;
    // A body not read to its end (refused as too large or unmaskable, a denial, an error, the
    // agent gone) would hold the upstream connection until bodyTimeout: release it now.
    if (body && !body.readableEnded) release(body);
  }
}

/** Per agent connection: an id for the audit records (their "session") and the requests' order on it. */
const connections = new WeakMap<Socket, { id: string; seq: number }>();
function connectionOf(socket: Socket): { id: string; seq: number } {
  let c = connections.get(socket);
  if (!c) connections.set(socket, (c = { id: `http-${newSpanId()}`, seq: 0 }));
  return c;
}

/** Destroys an upstream body not read to its end (its connection is released); its abort error is expected. */
function release(body: Readable): void {
  if (body.destroyed) return;
  body.on('error', () => undefined);
  body.destroy();
}
