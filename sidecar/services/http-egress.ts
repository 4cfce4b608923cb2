// The HTTP egress port: named routes (credential injected, rules, masking) and the forward proxy.
import type * as http from 'node:http';
import type { Identity } from '../../common/policy/types';
import { createEgressServer } from '../http/egress-server';
import { createRouteHandler } from '../http/routes/route-proxy';
import type { ApprovalGate, HttpApprovalGate, McpApprovalGate } from '../approvals/hold';
import type { AuditSink } from '../audit/events';
import type { PolicyStore } from '../policy-store';
import type { SecretStore } from '../secrets';
import { closeServer } from './close-server';
import { forwardCaller, type CallerTokens } from './identity';

export interface HttpEgressOptions {
  store: PolicyStore;
  secrets: SecretStore;
  identity: Identity;
  callerTokens: CallerTokens;
  hashKey: Buffer;
  approvals: ApprovalGate & HttpApprovalGate & McpApprovalGate;
  audit: AuditSink;
  /** Whether audit records are kept (the route handler then records masked payloads when asked). */
  auditRecords: boolean;
}

export interface HttpEgress {
  server: http.Server;
  /** Stops accepting; open requests get `graceMs` to finish, then the routes' upstream clients close. */
  drain(graceMs: number): Promise<void>;
  /** Closes the routes' upstream connections (after drain). */
  closeRoutes(): Promise<void>;
}

export function createHttpEgress(o: HttpEgressOptions): HttpEgress {
  const { store, callerTokens, audit } = o;
  const routes = createRouteHandler({
    policy: () => store.current,
    secrets: o.secrets,
    identity: o.identity,
    // read per request, so a reload that adds or removes spec.identity applies at once
    get verifyToken() {
      return callerTokens();
    },
    hashKey: o.hashKey,
    approvals: o.approvals,
    mcpApprovals: o.approvals,
    audit: (e) => audit.http?.(e),
    auditBlocked: () => audit.blocked?.(),
    auditRecords: o.auditRecords,
  });
  const server = createEgressServer({
    routes,
    forward: {
      policy: () => store.current,
      identity: forwardCaller(callerTokens, o.identity),
      connectTimeoutMs: 10_000,
      approvals: o.approvals,
      audit: (e) => audit.egress?.(e),
    },
  });
  const drain = async (graceMs: number): Promise<void> => {
    const closed = server.listening ? closeServer(server) : Promise.resolve();
    server.closeIdleConnections();
    const deadline = setTimeout(() => server.closeAllConnections(), graceMs);
    deadline.unref();
    await closed;
    clearTimeout(deadline);
  };
  return { server, drain, closeRoutes: () => routes.close() };
}
