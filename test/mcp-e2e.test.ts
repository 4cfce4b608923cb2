// MCP end to end through a running sidecar (issue 13, decisions 7, 9 and 10): the official SDK
// client on the sidecar's egress port, the official SDK server behind it, the standalone approval
// store decided with `warden approvals list` / `warden approve` / `warden deny` (the CLI against
// the admin port, as a local approver), and a real OTLP/HTTP receiver decoding what the sidecar's
// exporters send. A masked search, a held call approved (it runs once) and one denied with its
// reason, and the spans with the MCP and GenAI attributes; the session id, the target's token and
// the masked values never reach the collector.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ATTR, SPAN } from '../common/audit/names';
import { runApprovalsCli } from '../cli/run';
import type { ApprovalRequest } from '../sidecar/approvals/types';
import { sessionDigest } from '../sidecar/mcp/audit-facts';
import { pendingApproval } from './support/approvals';
import { connectSdkClient } from './support/mcp/mcp-proxy';
import { CUSTOMER_CARD, CUSTOMER_EMAIL, startMcpFixture, type McpFixture } from './support/mcp/mcp-server';
import { startOtlpReceiver, type FlatSpan, type OtlpReceiver } from './support/otlp-receiver';
import { startSidecarFromFiles, type SidecarFromFiles } from './support/sidecar/sidecar-fixture';

const TOKEN = 'mcp-target-token-9c1e5b2d4f60aa';
const AGENT_MAIL = 'bob.jones@example.org';

let fixture: McpFixture;
let receiver: OtlpReceiver;
let sc: SidecarFromFiles;
let client: Client;
let session: string;

const policy = (url: string): string => `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: mcp-e2e, namespace: agents}
spec:
  defaultAction: allow
  targets:
    - name: crm-tools
      mcp: {url: "${url}", credentialsSecret: crm-tools, timeout: 10s}
  rules:
    - name: no-deletes
      action: deny
      match: {target: crm-tools, mcp: {tools: ["delete_*"]}}
    - name: prod-needs-approval
      action: hold
      approval: {approvers: {groups: [local-approvers]}, timeout: 1m}
      match: {target: crm-tools, mcp: {tools: [run_query], arguments: [{path: $.database, values: [prod]}]}}
  masking:
    - name: pii
      detectors: [email, credit-card, us-ssn]
      strategy: redact
      direction: both
  audit:
    payloads: true
`;

type ToolResult = { content: Array<{ type: string; text?: string }>; isError?: boolean };
const textOf = (r: unknown): string => (r as ToolResult).content.map((c) => c.text ?? '').join('');

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runApprovalsCli([...argv, '--admin-addr', `127.0.0.1:${sc.sidecar.adminPort}`], {
    stdout: (s) => void out.push(s),
    stderr: (s) => void err.push(s),
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function spanWhere(pred: (s: FlatSpan) => boolean, what: string): Promise<FlatSpan> {
  await receiver
    .waitFor((r) => r.spans().some(pred), 10_000)
    .catch(() => {
      throw new Error(
        `no span ${what}; got: ${receiver
          .spans()
          .map((s) => `${s.name} ${String(s.attributes[ATTR.mcpMethod])}`)
          .join(' | ')}`,
      );
    });
  return receiver.spans().find(pred)!;
}

const runs = (): number => fixture.methods().filter((m) => m === 'tools/call:run_query').length;

beforeAll(async () => {
  fixture = await startMcpFixture();
  receiver = await startOtlpReceiver();
  sc = await startSidecarFromFiles({
    policy: policy(fixture.url),
    secrets: { 'crm-tools': { token: TOKEN } },
    sidecar: {
      audit: undefined,
      localApprovals: true,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
      auditTiming: { lingerMs: 10, metricsIntervalMs: 300, maxBackoffMs: 300 },
    },
  });
  client = await connectSdkClient(`${sc.egress}/crm-tools`);
  session = (client.transport as unknown as { sessionId: string }).sessionId;
}, 60_000);

afterAll(async () => {
  await client?.close();
  await sc?.close();
  await receiver?.close();
  await fixture?.close();
});

test('tools/list hides the destructive tool; a search comes back masked, as a span with the MCP attributes', async () => {
  const { tools } = await client.listTools();
  expect(tools.map((t) => t.name)).not.toContain('delete_customer');
  const r = await client.callTool({ name: 'search_customers', arguments: { query: `Alice ${AGENT_MAIL}` } });
  expect(textOf(r)).toMatch(/^Found Alice \[REDACTED\]: email \[REDACTED\], card \[REDACTED\]/);
  const span = await spanWhere((s) => s.name === SPAN.mcp && s.attributes[ATTR.genAiToolName] === 'search_customers', 'for the search');
  expect(span.attributes).toMatchObject({
    [ATTR.mcpMethod]: 'tools/call',
    [ATTR.genAiOperation]: 'execute_tool',
    [ATTR.jsonrpcRequestId]: expect.any(String),
    [ATTR.mcpSession]: sessionDigest(session),
    [ATTR.mcpProtocolVersion]: '2025-11-25',
    [ATTR.decision]: 'mask',
    [ATTR.target]: 'crm-tools',
    [ATTR.policy]: 'mcp-e2e',
    [ATTR.httpRoute]: 'crm-tools',
  });
  expect(Number(span.attributes[ATTR.maskedCount])).toBeGreaterThanOrEqual(4);
  // the payload recording holds the masked request and answer
  await receiver.waitFor((r) => r.logs().some((l) => l.spanId === span.spanId), 10_000);
  const body = receiver.logs().find((l) => l.spanId === span.spanId)!.body as Record<string, string>;
  expect(body.mcp).toBe('tools/call search_customers');
  expect(body.requestBody).toContain('Alice [REDACTED]');
  expect(body.responseBody).toContain('email [REDACTED]');
});

test('a held call is listed with its tool and arguments; `warden approve` releases it, and it runs once', async () => {
  const before = runs();
  const call = client.callTool({
    name: 'run_query',
    arguments: { database: 'prod', sql: `DELETE FROM customers WHERE email = '${AGENT_MAIL}'` },
  });
  const req: ApprovalRequest = await pendingApproval(sc.sidecar);
  const list = await cli(['approvals', 'list', '-o', 'json']);
  expect(list.code).toBe(0);
  const [shown] = JSON.parse(list.out) as ApprovalRequest[];
  expect(shown.id).toBe(req.id);
  expect(shown.target).toBe('crm-tools');
  expect(shown.operation.kind).toBe('mcp');
  expect(shown.operation.display).toContain('tools/call run_query on MCP server "crm-tools"');
  expect(shown.operation.display).toContain('"database": "prod"');
  expect(shown.operation.display).toContain("email = '[REDACTED]'");
  const table = await cli(['approvals', 'list']);
  expect(table.out).toContain('tools/call run_query');
  expect(runs()).toBe(before);
  const approved = await cli(['approve', req.id, '--reason', 'ticket OPS-7']);
  expect(approved.code).toBe(0);
  const r = await call;
  expect(r.isError).toBeFalsy();
  expect(textOf(r)).toBe("ran DELETE FROM customers WHERE email = '[REDACTED]' on prod");
  expect(runs()).toBe(before + 1);
  // deciding again changes nothing: the approval released that one call
  expect((await cli(['approve', req.id])).code).not.toBe(0);
  expect(runs()).toBe(before + 1);
  const span = await spanWhere(
    (s) => s.name === SPAN.mcp && s.attributes[ATTR.genAiToolName] === 'run_query' && s.attributes[ATTR.approvalId] === req.id,
    'for the approved call',
  );
  expect(span.attributes).toMatchObject({
    [ATTR.decision]: 'hold',
    [ATTR.rule]: 'prod-needs-approval',
    [ATTR.approvalOutcome]: 'approved',
  });
  const wait = await spanWhere((s) => s.name === SPAN.approvalWait && s.parentSpanId === span.spanId, 'for the approval wait');
  expect(wait.attributes[ATTR.approvalOutcome]).toBe('approved');
});

test('`warden deny` answers the held call as a tool error with the reason; the server never sees it', async () => {
  const before = runs();
  const call = client.callTool({ name: 'run_query', arguments: { database: 'prod', sql: 'DROP TABLE customers' } });
  const req = await pendingApproval(sc.sidecar);
  expect((await cli(['deny', req.id, '--reason', 'not during the freeze'])).code).toBe(0);
  const r = await call;
  expect(r.isError).toBe(true);
  expect(textOf(r)).toContain('rule "prod-needs-approval"');
  expect(textOf(r)).toContain('not during the freeze');
  expect(runs()).toBe(before);
  const span = await spanWhere((s) => s.name === SPAN.mcp && s.attributes[ATTR.approvalId] === req.id, 'for the denied call');
  expect(span.attributes).toMatchObject({ [ATTR.approvalOutcome]: 'denied', [ATTR.errorType]: 'tool_error' });
  expect(span.status.code).toBe(2);
});

test('a denied call is a span with the rule; nothing secret reached the collector', async () => {
  const r = await client.callTool({ name: 'delete_customer', arguments: { id: '7' } });
  expect(r.isError).toBe(true);
  const span = await spanWhere((s) => s.name === SPAN.mcp && s.attributes[ATTR.genAiToolName] === 'delete_customer', 'for the denied call');
  expect(span.attributes).toMatchObject({ [ATTR.decision]: 'deny', [ATTR.rule]: 'no-deletes', [ATTR.errorType]: 'tool_error' });
  const exported = receiver
    .raw()
    .map((q) => q.body.toString('latin1'))
    .join('\n');
  for (const secret of [session, TOKEN, CUSTOMER_EMAIL, CUSTOMER_CARD, AGENT_MAIL]) expect(exported).not.toContain(secret);
});
