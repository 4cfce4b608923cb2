// Turns a hold from either data path into an approval request, waits for the outcome and answers
// the data path. One object implements ApprovalGate (PostgreSQL), HttpApprovalGate (HTTP) and
// McpApprovalGate (MCP).
import { parseDuration } from '../../common/policy/syntax';
import { UNPARSEABLE_BODY } from '../../common/policy/engine';
import {
  noApproverReason,
  type ApprovalGate,
  type HeldHttpRequest,
  type HeldMcpRequest,
  type HoldOutcome,
  type HoldRequest,
  type HttpApprovalGate,
  type McpApprovalGate,
} from './hold';
import { httpOperation, mcpOperation, sqlOperation } from './operation';
import type { ApprovalBackend, ApprovalOperation, ApprovalRequest } from './types';

export const DEFAULT_APPROVAL_TIMEOUT_MS = 10 * 60_000;

export interface ApprovalGateOptions {
  /** When the rule has no approval.timeout. Default 10 minutes. */
  defaultTimeoutMs?: number;
  /** Called when a request is opened (log line, notifications) — must not throw or block. */
  onCreated?(req: ApprovalRequest): void;
  /**
   * Why nobody could decide a hold right now (no local approver, no token issuer), or undefined.
   * Checked per hold, so a reload that adds `spec.identity` makes holds decidable at once.
   */
  undecidable?(): string | undefined;
}

type AnyHold = HoldRequest | HeldHttpRequest | HeldMcpRequest;

export type CombinedApprovalGate = ApprovalGate &
  HttpApprovalGate &
  McpApprovalGate & {
    hold(req: AnyHold): Promise<HoldOutcome>;
  };

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function isHttp(req: AnyHold): req is HeldHttpRequest {
  return (req.operation as { type?: string }).type === 'http';
}

function isMcp(req: AnyHold): req is HeldMcpRequest {
  return (req.operation as { type?: string }).type === 'mcp';
}

function policyName(p: { name: string; namespace?: string }): string {
  return p.namespace ? `${p.namespace}/${p.name}` : p.name;
}

export function createApprovalGate(backend: ApprovalBackend, opts: ApprovalGateOptions = {}): CombinedApprovalGate {
  const defaultTimeout = opts.defaultTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS;

  async function hold(req: AnyHold): Promise<HoldOutcome> {
    const { decision, identity, signal } = req;
    const why = opts.undecidable?.();
    if (why !== undefined) return { approved: false, reason: noApproverReason(decision.reason, why) };
    const spec = decision.approval ?? {};
    let timeoutMs = defaultTimeout;
    if (spec.timeout !== undefined) {
      try {
        timeoutMs = parseDuration(spec.timeout);
      } catch (e) {
        return { approved: false, reason: `approval timeout is invalid (${(e as Error).message}); denied` };
      }
    }
    let operation: ApprovalOperation;
    let policy: string;
    let target: string;
    if (isHttp(req)) {
      // An approver must see what they approve; a body we could not parse cannot be shown or bound.
      if (req.operation.json === UNPARSEABLE_BODY) {
        return {
          approved: false,
          reason: `${decision.reason}, but its body is not valid JSON, so it cannot be shown to an approver; denied`,
        };
      }
      operation = httpOperation(req.operation);
      policy = policyName(req.policy);
      target = req.operation.target;
    } else if (isMcp(req)) {
      operation = mcpOperation(req.operation, req.params);
      policy = policyName(req.policy);
      target = req.operation.target;
    } else {
      operation = sqlOperation(req.operation.sql, req.operation.params);
      policy = req.policy;
      target = req.target;
    }
    if (signal.aborted) return { approved: false, reason: 'cancelled: the agent disconnected before a decision', state: 'cancelled' };
    // A back end that fails (bad request, API server away) denies the hold with the reason: a
    // rejected hold is an error the data path would have to interpret (PostgreSQL drops the
    // connection on one), where a denial is an answer the agent can read.
    let rec: ApprovalRequest;
    try {
      rec = await backend.create({
        policy,
        rule: decision.rule ?? '',
        target,
        requester: { subject: identity.subject, groups: [...identity.groups] },
        operation,
        approvers: spec.approvers,
        required: spec.count ?? 1,
        timeoutMs,
      });
    } catch (e) {
      return { approved: false, reason: noApproverReason(decision.reason, errorMessage(e)) };
    }
    try {
      opts.onCreated?.(rec);
    } catch {
      // a failing notifier never blocks the hold
    }
    const onAbort = (): void => void backend.cancel(rec.id).catch(() => undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    let final: ApprovalRequest;
    try {
      final = await backend.wait(rec.id);
    } catch (e) {
      // nobody waits for this request any more: an approver must not decide it
      onAbort();
      return {
        approved: false,
        reason: noApproverReason(decision.reason, `approval request ${rec.id} could not be followed (${errorMessage(e)})`),
        approvalId: rec.id,
      };
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    const approvedBy = final.decisions.filter((d) => d.verdict === 'approve').map((d) => d.by);
    const deniedBy = final.decisions.filter((d) => d.verdict === 'deny').map((d) => d.by);
    const decidedBy = final.state === 'approved' ? approvedBy.join(',') : final.state === 'denied' ? deniedBy.join(',') : undefined;
    const approved = final.state === 'approved' && final.operation.digest === operation.digest;
    return {
      approved,
      reason: final.finalReason ?? final.state,
      state: approved || final.state !== 'approved' ? (final.state as HoldOutcome['state']) : 'denied',
      approvalId: final.id,
      ...(decidedBy ? { decidedBy } : {}),
    };
  }

  return { hold };
}
