// Shared by the approvals tests (not shipped behaviour): a real admin server with the approvals
// handler mounted, on 127.0.0.1:0.
import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Metrics } from '../../../common/metrics';
import { createAdminServer } from '../../../common/admin-server';
import { createApprovalsHandler, type ApprovalsApiOptions } from '../../../sidecar/approvals/admin-api';
import { sqlOperation } from '../../../sidecar/approvals/operation';
import type { NewApprovalRequest } from '../../../sidecar/approvals/types';

export async function startTestAdmin(opts: ApprovalsApiOptions): Promise<{ server: http.Server; addr: string; close(): Promise<void> }> {
  const server = createAdminServer({ ready: () => ({ ok: true }), metrics: new Metrics(), extra: [createApprovalsHandler(opts)] });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    addr: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A held DELETE as the gate would open it; tests override what they care about. */
export function newApprovalRequest(over: Partial<NewApprovalRequest> = {}): NewApprovalRequest {
  return {
    policy: 'agent-policy',
    rule: 'deletes-need-approval',
    target: 'orders-db',
    requester: { subject: 'system:serviceaccount:shop:agent', groups: ['agents'] },
    operation: sqlOperation('DELETE FROM orders WHERE id = 1'),
    approvers: { groups: ['sre'] },
    timeoutMs: 60_000,
    ...over,
  };
}
