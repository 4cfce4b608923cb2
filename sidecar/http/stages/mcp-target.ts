// The MCP route's target: `http://127.0.0.1:<egress>/<target>` is the server's one endpoint (any
// other path is 404), its plan, and the audit gate (a full audit trail refuses new requests).
import { HttpError } from '../errors';
import type { RouteExchange } from './exchange';
import { McpExchange } from './mcp-state';
import type { Stage } from './stage';

export const mcpTargetStage: Stage<RouteExchange> = {
  name: 'mcp-target',
  run(ex) {
    const policy = ex.policy!;
    const plan = ex.services.plans.getMcp(policy, ex.target);
    if (!plan) throw new HttpError(404, 'unknown_route', `no MCP route named "${ex.target}"`);
    ex.mcp = new McpExchange();
    if (ex.route!.rest !== '') {
      throw new HttpError(404, 'unknown_route', `MCP route "${ex.target}" has one endpoint: /${encodeURIComponent(ex.target)}`);
    }
    ex.plan = plan;
    const options = ex.services.options;
    const blocked = options.auditBlocked?.();
    if (blocked) throw new HttpError(503, 'audit_unavailable', blocked);
    ex.recordPayloads = options.auditRecords === true && policy.auditPayloads;
  },
};
