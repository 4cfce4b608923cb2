// Test fixture: the named-route handler (the sidecar's egress port as far as MCP goes) on
// 127.0.0.1:0, serving a policy given as its spec, with secrets in a temporary directory; plus
// the official SDK client connected through it. Collects the audit events.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { compilePolicy, type CompiledPolicy } from '../../../common/policy/compile';
import type { AccessPolicySpec, Identity } from '../../../common/policy/types';
import type { HttpApprovalGate } from '../../../sidecar/approvals/hold';
import type { HttpAuditEvent } from '../../../sidecar/audit/events';
import { createRouteHandler, type RouteHandlerContext } from '../../../sidecar/http/routes/route-proxy';
import { SecretStore } from '../../../sidecar/secrets';

export const AGENT_IDENTITY: Identity = { subject: 'system:serviceaccount:agents:support', groups: [], source: 'pod' };

export interface McpProxy {
  port: number;
  /** `http://127.0.0.1:<port>/<target>` */
  url(target: string): string;
  audits: HttpAuditEvent[];
  /** Replaces the policy (a reload). */
  setPolicy(spec: AccessPolicySpec): void;
  close(): Promise<void>;
}

export function compileSpec(spec: AccessPolicySpec): CompiledPolicy {
  return compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'mcp-test', namespace: 'agents' },
    spec,
  });
}

export async function startMcpProxy(opts: {
  spec: AccessPolicySpec;
  /** secret name → key → value */
  secrets?: Record<string, Record<string, string>>;
  approvals?: HttpApprovalGate;
  identity?: Identity;
  extra?: Partial<RouteHandlerContext>;
}): Promise<McpProxy> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-mcp-'));
  for (const [secret, keys] of Object.entries(opts.secrets ?? {})) {
    fs.mkdirSync(path.join(dir, secret), { recursive: true });
    for (const [k, v] of Object.entries(keys)) fs.writeFileSync(path.join(dir, secret, k), v);
  }
  let policy = compileSpec(opts.spec);
  const audits: HttpAuditEvent[] = [];
  const handler = createRouteHandler({
    policy: () => policy,
    secrets: new SecretStore(dir),
    identity: opts.identity ?? AGENT_IDENTITY,
    audit: (e) => audits.push(e),
    approvals: opts.approvals,
    ...opts.extra,
  });
  const server = http.createServer(handler);
  server.on('checkContinue', handler.checkContinue);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (target) => `http://127.0.0.1:${port}/${target}`,
    audits,
    setPolicy(spec) {
      policy = compileSpec(spec);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await handler.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The official SDK client, connected (initialize + notifications/initialized) to url. */
export async function connectSdkClient(url: string, headers: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: 'warden-test-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return client;
}
