// The admin port (/healthz, /readyz, /metrics, the approvals API) and the optional probe port
// (/healthz and /readyz only, for the kubelet, which cannot reach loopback).
import type * as http from 'node:http';
import type { Metrics } from '../../common/metrics';
import { createAdminServer, type AdminHandler } from '../../common/admin-server';
import { closeServer } from './close-server';

export interface AdminServers {
  admin: http.Server;
  health?: http.Server;
  /** Cuts open connections and closes both servers. */
  close(): Promise<void>;
}

export interface AdminServersOptions {
  metrics: Metrics;
  ready: () => { ok: boolean; reason?: string };
  api?: AdminHandler;
  /** Also a probe port (/healthz and /readyz only). */
  withHealth: boolean;
}

export function createAdminServers(o: AdminServersOptions): AdminServers {
  const admin = createAdminServer({ metrics: o.metrics, ready: o.ready, extra: o.api ? [o.api] : [] });
  const health = o.withHealth ? createAdminServer({ metrics: o.metrics, ready: o.ready, healthOnly: true }) : undefined;
  const close = async (): Promise<void> => {
    for (const s of [admin, health]) {
      if (!s?.listening) continue;
      s.closeAllConnections();
      await closeServer(s);
    }
  };
  return { admin, health, close };
}
