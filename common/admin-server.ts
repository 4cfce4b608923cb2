// Admin endpoints on loopback: health, readiness, Prometheus metrics. The approvals API mounts
// here too (separate module) — remember the agent shares this loopback, so nothing here may
// reveal credentials or accept decisions without the approver's proof.
import * as http from 'node:http';
import type { Metrics } from './metrics';

export interface AdminRoutes {
  ready(): { ok: boolean; reason?: string };
  metrics: Metrics;
  /** Extra handlers (approvals API); return false when the request is not theirs. */
  extra?: AdminHandler[];
  /** Serve only /healthz and /readyz (the probe port, reachable from the node: nothing else there). */
  healthOnly?: boolean;
}

/** Handles a request on the admin port; `url` is already parsed. Returns false when it is not its route. */
export type AdminHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => boolean;

/**
 * The request target as a URL, or undefined when it is not one. Node's parser accepts targets such
 * as `//[` that `new URL` rejects, and the agent can reach this port: a throw here must not crash us.
 */
function requestUrl(req: http.IncomingMessage): URL | undefined {
  try {
    return new URL(req.url ?? '/', 'http://admin');
  } catch {
    return undefined;
  }
}

export function createAdminServer(routes: AdminRoutes): http.Server {
  return http.createServer((req, res) => {
    const url = requestUrl(req);
    if (!url) return send(res, 400, 'bad request target\n');
    if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, 'ok\n');
    if (req.method === 'GET' && url.pathname === '/readyz') {
      const r = routes.ready();
      return send(res, r.ok ? 200 : 503, r.ok ? 'ready\n' : `not ready: ${r.reason ?? 'starting'}\n`);
    }
    if (routes.healthOnly) return send(res, 404, 'not found\n');
    if (req.method === 'GET' && url.pathname === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      return res.end(routes.metrics.render());
    }
    for (const h of routes.extra ?? []) if (h(req, res, url)) return;
    send(res, 404, 'not found\n');
  });
}

function send(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(body);
}

export function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = i > 0 ? addr.slice(0, i).replace(/^\[|\]$/g, '') : '127.0.0.1';
  const port = Number(i >= 0 ? addr.slice(i + 1) : addr);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid address "${addr}": expected HOST:PORT`);
  return { host, port };
}
