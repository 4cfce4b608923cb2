// In-memory approval store for a standalone sidecar (and the demo). Every decision rule lives in
// `decide`, so the admin API, the CLI and tests cannot get around them.
import { randomBytes } from 'node:crypto';
import type { ApprovalState, Verdict } from '../../common/approvals/object';
import type { Identity } from '../../common/policy/types';
import { ApprovalError, type ApprovalBackend, type ApprovalRequest, type ListFilter, type NewApprovalRequest } from './types';
import { formatDuration } from '../../common/policy/syntax';

export interface LocalStoreOptions {
  /** How long a final record stays readable (GET, list) before it is forgotten. Default 15 minutes. */
  retainMs?: number;
  /** Called on every state change (notifications, audit, metrics hook in here later). */
  onChange?(req: ApprovalRequest): void;
}

interface Entry {
  rec: ApprovalRequest;
  expiryTimer?: NodeJS.Timeout;
  waiters: Array<(r: ApprovalRequest) => void>;
}

export function newApprovalId(): string {
  // 96 random bits as 24 lower-case hex characters: URL-safe, a valid Kubernetes name, and never
  // starting with '-' (base64url ids can, and a CLI then reads them as an option).
  return randomBytes(12).toString('hex');
}

function copy(r: ApprovalRequest): ApprovalRequest {
  return structuredClone(r);
}

export class LocalApprovalStore implements ApprovalBackend {
  private readonly entries = new Map<string, Entry>();
  private readonly retainMs: number;

  constructor(private readonly opts: LocalStoreOptions = {}) {
    this.retainMs = opts.retainMs ?? 15 * 60_000;
  }

  async create(req: NewApprovalRequest): Promise<ApprovalRequest> {
    if (!(req.timeoutMs > 0) || !Number.isFinite(req.timeoutMs)) {
      throw new ApprovalError('invalid_request', `approval timeout must be a positive duration, got ${req.timeoutMs}ms`);
    }
    const required = req.required ?? 1;
    if (!Number.isInteger(required) || required < 1) {
      throw new ApprovalError('invalid_request', `approval count must be a positive integer, got ${required}`);
    }
    const now = Date.now();
    let id = newApprovalId();
    while (this.entries.has(id)) id = newApprovalId();
    const rec: ApprovalRequest = {
      id,
      policy: req.policy,
      rule: req.rule,
      target: req.target,
      requester: { subject: req.requester.subject, groups: [...req.requester.groups] },
      operation: { ...req.operation },
      approvers: { users: [...(req.approvers?.users ?? [])], groups: [...(req.approvers?.groups ?? [])] },
      required,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + req.timeoutMs).toISOString(),
      state: 'pending',
      decisions: [],
    };
    const entry: Entry = { rec, waiters: [] };
    entry.expiryTimer = setTimeout(() => this.expire(entry), req.timeoutMs);
    entry.expiryTimer.unref?.();
    this.entries.set(id, entry);
    this.opts.onChange?.(copy(rec));
    return copy(rec);
  }

  async get(id: string): Promise<ApprovalRequest | undefined> {
    const e = this.entries.get(id);
    if (e) this.expireIfDue(e);
    return e ? copy(e.rec) : undefined;
  }

  async list(filter: ListFilter = {}): Promise<ApprovalRequest[]> {
    const out: ApprovalRequest[] = [];
    for (const e of this.entries.values()) {
      this.expireIfDue(e);
      if (filter.state === undefined || e.rec.state === filter.state) out.push(copy(e.rec));
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async decide(id: string, decider: Identity, verdict: Verdict, reason: string, expectedDigest?: string): Promise<ApprovalRequest> {
    const e = this.entries.get(id);
    if (!e) throw new ApprovalError('not_found', `no approval request "${id}" (unknown, or decided long ago and forgotten)`);
    this.expireIfDue(e);
    const r = e.rec;
    if (r.state === 'expired')
      throw new ApprovalError('expired', `approval request ${id} expired at ${r.expiresAt}; it can no longer be decided`);
    if (r.state !== 'pending') {
      const by = r.decisions.length > 0 ? ` by ${[...new Set(r.decisions.map((d) => d.by))].join(', ')}` : '';
      throw new ApprovalError(
        'already_decided',
        `approval request ${id} is already ${r.state}${r.state === 'cancelled' ? '' : by}; approvals are single-use`,
      );
    }
    if (expectedDigest !== undefined && expectedDigest !== r.operation.digest) {
      throw new ApprovalError(
        'digest_mismatch',
        `approval request ${id} is for a different operation (digest ${r.operation.digest}, not ${expectedDigest})`,
      );
    }
    if (decider.subject === r.requester.subject) {
      throw new ApprovalError(
        'self_approval',
        `${decider.subject} made approval request ${id} and cannot decide it; another approver must`,
      );
    }
    const byUser = r.approvers.users.includes(decider.subject);
    const byGroup = decider.groups.some((g) => r.approvers.groups.includes(g));
    if (!byUser && !byGroup) {
      const who = [
        r.approvers.users.length ? `users ${r.approvers.users.join(', ')}` : '',
        r.approvers.groups.length ? `groups ${r.approvers.groups.join(', ')}` : '',
      ].filter(Boolean);
      throw new ApprovalError(
        'not_an_approver',
        who.length === 0
          ? `rule "${r.rule}" lists no approvers, so no one can approve request ${id}`
          : `${decider.subject} (groups: ${decider.groups.join(', ') || 'none'}) is not an approver for rule "${r.rule}"; approvers are ${who.join(' and ')}`,
      );
    }
    if (r.decisions.some((d) => d.by === decider.subject)) {
      throw new ApprovalError(
        'already_voted',
        `${decider.subject} already decided approval request ${id}; it needs ${r.required} distinct approvers`,
      );
    }
    r.decisions.push({ by: decider.subject, groups: [...decider.groups], verdict, reason, at: new Date().toISOString() });
    if (verdict === 'deny') {
      this.finish(e, 'denied', `denied by ${decider.subject}${reason ? `: ${reason}` : ''}`);
    } else {
      const approvers = r.decisions.filter((d) => d.verdict === 'approve');
      if (approvers.length >= r.required) {
        const reasons = approvers.filter((d) => d.reason).map((d) => `${d.by}: ${d.reason}`);
        this.finish(
          e,
          'approved',
          `approved by ${approvers.map((d) => d.by).join(', ')}${reasons.length ? ` (${reasons.join('; ')})` : ''}`,
        );
      } else {
        this.opts.onChange?.(copy(r));
      }
    }
    return copy(r);
  }

  async cancel(id: string, reason = 'the agent disconnected before a decision'): Promise<ApprovalRequest | undefined> {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (e.rec.state === 'pending') this.finish(e, 'cancelled', `cancelled: ${reason}`);
    return copy(e.rec);
  }

  wait(id: string, signal?: AbortSignal): Promise<ApprovalRequest> {
    const e = this.entries.get(id);
    if (!e) return Promise.reject(new ApprovalError('not_found', `no approval request "${id}"`));
    this.expireIfDue(e);
    if (e.rec.state !== 'pending') return Promise.resolve(copy(e.rec));
    return new Promise<ApprovalRequest>((resolve, reject) => {
      const onAbort = (): void => {
        const i = e.waiters.indexOf(done);
        if (i >= 0) e.waiters.splice(i, 1);
        reject(Object.assign(new Error('wait aborted'), { name: 'AbortError' }));
      };
      const done = (r: ApprovalRequest): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(r);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      e.waiters.push(done);
    });
  }

  /** Stops every timer; pending requests are cancelled (sidecar shutdown). */
  close(): void {
    for (const e of this.entries.values()) {
      if (e.rec.state === 'pending') this.finish(e, 'cancelled', 'cancelled: the sidecar is shutting down');
      clearTimeout(e.expiryTimer);
    }
    this.entries.clear();
  }

  /** Number of records held (pending and retained final ones). */
  get size(): number {
    return this.entries.size;
  }

  private expireIfDue(e: Entry): void {
    if (e.rec.state === 'pending' && Date.now() >= Date.parse(e.rec.expiresAt)) this.expire(e);
  }

  private expire(e: Entry): void {
    if (e.rec.state !== 'pending') return;
    const ms = Date.parse(e.rec.expiresAt) - Date.parse(e.rec.createdAt);
    const got = e.rec.decisions.length > 0 ? ` (${e.rec.decisions.length} of ${e.rec.required} approvals)` : '';
    this.finish(e, 'expired', `approval request ${e.rec.id} expired after ${formatDuration(ms)} without a decision${got}`);
  }

  private finish(e: Entry, state: ApprovalState, reason: string): void {
    e.rec.state = state;
    e.rec.finalReason = reason;
    clearTimeout(e.expiryTimer);
    const forget = setTimeout(() => {
      if (this.entries.get(e.rec.id) === e) this.entries.delete(e.rec.id);
    }, this.retainMs);
    forget.unref?.();
    e.expiryTimer = forget;
    const waiters = e.waiters.splice(0);
    for (const w of waiters) w(copy(e.rec));
    this.opts.onChange?.(copy(e.rec));
  }
}
