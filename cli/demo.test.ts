// `warden demo` end to end: real PostgreSQL, the sidecar with examples/policy.yaml (+ the MCP target of
// examples/mcp-policy.yaml), the sample LLM API and the sample MCP server (official SDK).
import { runDemo } from './demo';

test('the demo shows masking, denials and holds decided with warden approve|deny, and exits 0', async () => {
  let out = '';
  const io = { stdout: (s: string) => void (out += s + '\n'), stderr: (s: string) => void (out += s + '\n') };
  const code = await runDemo(io);
  expect(code).toBe(0);
  expect(out).toMatch(/MASKED \s*\(\d+ values\)/);
  expect(out).not.toMatch(/4111 1111 1111 1111|123-45-6789|ada@example\.com/);
  expect(out).toContain('rule "no-ddl"');
  expect(out).toContain('rule "no-file-access"');
  expect(out).toContain('rule "no-server-side-code"');
  expect(out).toContain('rule "writes-need-approval"');
  expect(out).toContain('rule "no-file-uploads"');
  expect(out).toContain("the API received the sidecar's credential (Bearer sk-demo-…, not the placeholder)");
  expect(out).toContain('HELD -> APPROVED, ran');
  expect(out).toContain('HELD -> DENIED  agent-warden: denied by');
  expect(out).toContain('customer is still active');
  // MCP: the destructive tool is hidden, and refused before the server when called anyway.
  expect(out).toContain('the agent sees: search_customers, run_query (delete_customer hidden by rule "no-deletes")');
  expect(out).toMatch(/DENIED {2}tool error: Agent Warden: this call was denied by rule "no-deletes"/);
  expect(out).toContain('the MCP server never received it');
  expect(out).toMatch(/MASKED {3}Ada Lovelace <\[REDACTED\]>/);
  expect(out).toMatch(
    /HELD -> APPROVED, ran {2}ran on prod: DELETE FROM orders WHERE total < 20 \(1 row affected\) \(the server ran it 1 time\)/,
  );
  expect(out).toContain('rule "prod-needs-approval"');
  // The approver saw the held call's target and tool in `warden approvals list`.
  expect(out).toMatch(/prod-needs-approval {2}crm-tools .*tools\/call run_query on MCP server "crm-tools"/);
  expect(out).toContain("the MCP server received the sidecar's credential on every request (Bearer mcp-demo-…, never the placeholder)");
  expect(out).not.toContain('UNEXPECTED');
  // The approved DELETE removed the one order under 20; nothing else changed.
  expect(out).toMatch(/database afterwards: 2 tables, 3 orders/);
});
