// The upstream request's URL and headers: the route's base URL plus the path and query as sent,
// the agent's end-to-end headers minus every credential it sent (the target's own is injected by
// inject-credential.ts), and our `traceparent` (the agent's trace shows the sidecar, then the API).
import { formatTraceparent } from '../../audit/trace-context';
import { endToEndHeaders } from '../headers';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const upstreamRequestStage: Stage<RouteExchange> = {
  name: 'upstream-request',
  run(ex) {
    const plan = ex.plan!;
    const headers = endToEndHeaders(ex.req.headers, plan.credentialHeaders);
    if (plan.responsePlan || ex.responseRules.length > 0) {
      // Each range would be masked (or checked) alone: a value cut at a range boundary would come
      // back whole once the agent joins the parts. The whole document is asked for, and inspected.
      delete headers['range'];
      delete headers['if-range'];
    }
    const url = upstreamUrl(plan.base, ex.route!.rest, ex.route!.search);
    headers['traceparent'] = formatTraceparent(ex.trace);
    ex.upstreamHeaders = headers;
    ex.upstreamUrl = url;
    ex.url = url.origin + url.pathname;
    ex.serverAddress = url.hostname;
    ex.serverPort = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  },
};

function upstreamUrl(base: URL, rest: string, search: string): URL {
  const basePath = base.pathname.replace(/\/+$/, '');
  const url = new URL(base.origin);
  url.pathname = `${basePath}/${rest}`;
  url.search = search;
  return url;
}
