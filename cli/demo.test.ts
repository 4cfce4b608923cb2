// `warden demo` end to end: real PostgreSQL, the sidecar with examples/policy.yaml, the sample LLM API.
import { runDemo } from './demo';

test('the demo shows masking, denials and holds decided with warden approve|deny, and exits 0', async () => {
  let out = '';
  const io = { stdout: (s: string) => void (out += s + '\n'), stderr: (s: string) => void (out += s + '\n') };
  const code = await runDemo([], io);
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
  // The approved DELETE removed the one order under 20; nothing else changed.
  expect(out).toMatch(/database afterwards: 2 tables, 3 orders/);
});
