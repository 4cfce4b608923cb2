// Turns a hold from either data path into an approval request, waits for the outcome and answers
// the data path. One object implements both ApprovalGate (PostgreSQL) and HttpApprovalGate (HTTP).
import { parseDuration } from '../../common/policy/syntax';
import type { ApprovalGate, HoldOutcome, HoldRequest } from '../postgres/runtime';
import type { HeldHttpRequest, HttpApprovalGate } from '../http/forward/approval';
import { httpOperation, sqlOperation } from './operation';
import type { ApprovalBackend, ApprovalOperation, ApprovalRequest } from './types';

export const DEFAULT_APPROVAL_TIMEOUT_MS = 10 * 60_000;

export interface ApprovalGateOptions {
  /** When the rule has no approval.timeout. Default 10 minutes. */
  defaultTimeoutMs?: number;
  /** Called when a request is opened (log line, notifications) — must not throw or block. */
  onCreated?(req: ApprovalRequest): void;
}

export type CombinedApprovalGate = ApprovalGate &
  HttpApprovalGate & {
    hold(req: HoldRequest | HeldHttpRequest): Promise<HoldOutcome>;
  };

function isHttp(req: HoldRequest | HeldHttpRequest): req is HeldHttpRequest {
  return (req.operation as { type?: string }).type === 'http';
}

export function createApprovalGate(backend: ApprovalBackend, opts: ApprovalGateOptions = {}): CombinedApprovalGate {
  const defaultTimeout = opts.defaultTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS;

  async function hold(req: HoldRequest | HeldHttpRequest): Promise<HoldOutcome> {
    const { decision, identity, signal } = req;
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
      operation = httpOperation(req.operation);
      policy = req.policy.namespace ? `${req.policy.namespace}/${req.policy.name}` : req.policy.name;
      target = req.operation.target;
    } else {
      operation = sqlOperation(req.operation.sql, req.operation.params);
      policy = req.policy;
      target = req.target;
    }
    if (signal.aborted) return { approved: false, reason: 'cancelled: the agent disconnected before a decision' };
    const rec = await backend.create({
      policy,
      rule: decision.rule ?? '',
      target,
      requester: { subject: identity.subject, groups: [...identity.groups] },
      operation,
      approvers: spec.approvers,
      required: spec.count ?? 1,
      timeoutMs,
    });
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
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    const approvedBy = final.decisions.filter((d) => d.verdict === 'approve').map((d) => d.by);
    const deniedBy = final.decisions.filter((d) => d.verdict === 'deny').map((d) => d.by);
    const decidedBy = final.state === 'approved' ? approvedBy.join(',') : final.state === 'denied' ? deniedBy.join(',') : undefined;
    return {
      approved: final.state === 'approved' && final.operation.digest === operation.digest,
      reason: final.finalReason ?? final.state,
      approvalId: final.id,
      ...(decidedBy ? { decidedBy } : {}),
    };
  }

  return { hold };
}
