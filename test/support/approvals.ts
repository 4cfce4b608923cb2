// Helpers for tests that hold operations with the standalone approval store (--local-approvals)
// and decide them over the admin API, as an approver would.
import type { RunningSidecar } from '../../sidecar/main';
import type { ApprovalRequest } from '../../sidecar/approvals/types';

/** A `rules:` block (for crmPolicy) holding DELETEs for the local approver. */
export function holdDeletesRule(timeout = '1m'): string {
  return `  rules:
    - name: deletes-need-approval
      action: hold
      approval: {approvers: {groups: [local-approvers]}, timeout: ${timeout}}
      match: {target: crm, sql: {statements: [DELETE]}}
`;
}

/** Waits until at least `count` requests are pending and returns them (oldest first). */
export async function pendingApprovals(sidecar: RunningSidecar, count = 1, timeoutMs = 5000): Promise<ApprovalRequest[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pending = (await sidecar.approvals!.list({ state: 'pending' })) ?? [];
    if (pending.length >= count) return pending;
    if (Date.now() > deadline) throw new Error(`expected ${count} pending approval request(s), found ${pending.length}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function pendingApproval(sidecar: RunningSidecar): Promise<ApprovalRequest> {
  return (await pendingApprovals(sidecar))[0];
}

/** POST /approvals/ID/approve|deny on the sidecar's admin port; returns the HTTP status. */
export async function decideOverApi(
  sidecar: RunningSidecar,
  id: string,
  verdict: 'approve' | 'deny',
  reason = `${verdict} in test`,
): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${sidecar.adminPort}/approvals/${id}/${verdict}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ reason }),
  });
  await res.arrayBuffer();
  return res.status;
}
