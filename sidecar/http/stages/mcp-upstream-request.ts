// The upstream request of an MCP route: the target's URL as configured (the agent's path and
// query are not forwarded), the agent's end-to-end headers — Mcp-Session-Id,
// MCP-Protocol-Version, Last-Event-ID, Accept pass as sent — minus every credential it sent (the
// target's own is injected by inject-credential.ts), and our traceparent. Responses are asked for
// uncompressed (they are parsed and masked message by message anyway).
import { formatTraceparent } from '../../audit/trace-context';
import { endToEndHeaders } from '../headers';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const mcpUpstreamRequestStage: Stage<RouteExchange> = {
  name: 'mcp-upstream-request',
  run(ex) {
    const plan = ex.plan!;
    const headers = endToEndHeaders(ex.req.headers, plan.credentialHeaders);
    delete headers['content-length']; // forward-upstream.ts sets it for the body as sent
    delete headers['transfer-encoding'];
    delete headers['range'];
    delete headers['if-range'];
    headers['accept-encoding'] = 'identity';
    headers['traceparent'] = formatTraceparent(ex.trace);
    // The server's GET stream is silent until it has something to say: no idle limit (the agent
    // going away still ends it). Other answers fall silent no longer than the target's timeout.
    if (ex.method === 'GET') ex.upstreamIdle = 0;
    const url = new URL(plan.base.href);
    ex.upstreamHeaders = headers;
    ex.upstreamUrl = url;
    ex.url = url.origin + url.pathname;
    ex.serverAddress = url.hostname;
    ex.serverPort = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  },
};
