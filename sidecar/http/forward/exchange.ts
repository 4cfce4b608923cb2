// The forward proxy's options, and its per-request (or per-tunnel) context, carried through the shared
// decide and hold stages (../stages/decide.ts, ../stages/hold.ts), and its audit record.
import type { AuditApproval } from '../../../common/audit/record';
import type { CompiledPolicy } from '../../../common/policy/compile';
import type { HttpOperationWithPort } from '../../../common/policy/engine';
import type { Decision, Identity } from '../../../common/policy/types';
import type { Judgement } from '../stages/decide';
import type { HttpApprovalGate } from '../../approvals/hold';
import type * as http from 'node:http';
import type * as net from 'node:net';
import type { ForwardAuditEvent } from '../../audit/events';

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

const NO_WATCH = (): void => undefined;

export class ForwardExchange implements Judgement {
  policy: CompiledPolicy | undefined = undefined;
  identity: Identity;
  op: HttpOperationWithPort | undefined = undefined;
  decision: Decision | undefined = undefined;
  approval: AuditApproval | undefined = undefined;
  approvalAnswer: { approved: boolean; reason: string } | undefined = undefined;
  /** Aborted when the agent goes away (the proxy wires it to its connection). */
  readonly abort = new AbortController();

  constructor(
    readonly approvals: HttpApprovalGate | undefined,
    policy: CompiledPolicy,
    identity: Identity,
    op: HttpOperationWithPort,
    readonly methods: readonly string[],
  ) {
    this.policy = policy;
    this.identity = identity;
    this.op = op;
  }

  heldOperation(): HttpOperationWithPort {
    return this.op!;
  }

  watchAgent(): { signal: AbortSignal; done(): void } {
    return { signal: this.abort.signal, done: NO_WATCH };
  }

  /** The decision (and the approval of a hold) on the audit record. */
  record(ev: ForwardAuditEvent): void {
    const d = this.decision!;
    const policy = this.policy!;
    ev.decision = d.action;
    ev.rule = d.rule;
    ev.reason = d.reason;
    ev.approval = this.approvalAnswer;
    ev.approvalRecord = this.approval;
    ev.identity = this.identity;
    ev.policy = policy.namespace ? `${policy.namespace}/${policy.name}` : policy.name;
  }
}

/** A new (denied until said otherwise) audit record, and emit(), which sends it once, timed from started. */
export function startAudit(
  ctx: { audit(event: ForwardAuditEvent): void },
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
