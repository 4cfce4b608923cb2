// The forward proxy is no way around an MCP route: a request (or CONNECT tunnel) to the origin of
// an `mcp` target's URL would reach the MCP server judged as plain HTTP egress, past every MCP
// rule, list filter and pin. It is denied, naming the route to use instead.
import type { CompiledPolicy } from '../../../common/policy/compile';
import { normalizeHost } from '../../../common/policy/compile';
import { denial } from '../errors';
import type { Stage } from '../stages/stage';
import type { ForwardExchange } from './exchange';

/** host:port of each MCP target's URL → the target's name, per policy. */
const origins = new WeakMap<CompiledPolicy, Map<string, string>>();

function mcpOrigins(policy: CompiledPolicy): Map<string, string> {
  let m = origins.get(policy);
  if (m) return m;
  m = new Map();
  for (const [name, t] of policy.targets) {
    if (!t.mcp) continue;
    const u = new URL(t.mcp.url);
    const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
    m.set(`${normalizeHost(u.hostname) ?? u.hostname.toLowerCase()}:${port}`, name);
  }
  origins.set(policy, m);
  return m;
}

export const mcpOriginStage: Stage<ForwardExchange> = {
  name: 'mcp-origin',
  run(ex) {
    const m = mcpOrigins(ex.policy!);
    if (m.size === 0) return;
    const op = ex.op!;
    const host = op.host === undefined ? undefined : (normalizeHost(op.host) ?? op.host.toLowerCase());
    const route = host === undefined ? undefined : m.get(`${host}:${op.port}`);
    if (route === undefined) return;
    ex.decision = {
      action: 'deny',
      reason: `${op.host}:${op.port} is the MCP server of target "${route}"; use its route http://127.0.0.1:15001/${route}`,
    };
    throw denial(ex.decision);
  },
};
