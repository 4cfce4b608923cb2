// A held HTTP request through a running sidecar with the standalone approval store: the agent's
// request stays open until an approver decides through the admin API.
import { startSidecarFixture, type SidecarFixture } from './sidecar-fixture';

let fx: SidecarFixture;

beforeAll(async () => {
  fx = await startSidecarFixture({
    secrets: { openai: { token: 'sk-upstream-key' } },
    sidecar: { localApprovals: true },
    policy: (port) => `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: http-holds}
spec:
  defaultAction: allow
  targets:
    - name: openai
      http: {baseUrl: "http://127.0.0.1:${port}", credentialsSecret: openai}
  rules:
    - name: batches-need-approval
      action: hold
      approval: {approvers: {groups: [local-approvers]}, timeout: 30s}
      match: {target: openai, http: {methods: [POST], paths: ["/v1/embeddings"]}}
`,
  });
});

afterAll(async () => {
  await fx?.close();
});

async function pending(): Promise<{ id: string; operation: { display: string } }> {
  for (let i = 0; i < 200; i++) {
    const [p] = (await fx.sidecar.approvals!.list({ state: 'pending' })) ?? [];
    if (p) return p;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no pending approval');
}

async function decide(id: string, verdict: 'approve' | 'deny'): Promise<void> {
  await fetch(`http://127.0.0.1:${fx.sidecar.adminPort}/approvals/${id}/${verdict}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ reason: `${verdict} in test` }),
  });
}

test('approved: the held request is forwarded and its answer returns; denied: 403 with the reason', async () => {
  const url = `http://127.0.0.1:${fx.sidecar.egressPort}/openai/v1/embeddings`;
  const send = (): Promise<Response> => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'e', input: 'hello' }) });
  const before = fx.upstream.requests.length;
  const first = send();
  const req = await pending();
  expect(req.operation.display).toContain('POST');
  expect(req.operation.display).toContain('/v1/embeddings');
  expect(fx.upstream.requests.length).toBe(before); // still held
  await decide(req.id, 'approve');
  expect((await first).status).toBe(200);
  expect(fx.upstream.requests.length).toBe(before + 1);
  const second = send();
  await decide((await pending()).id, 'deny');
  const denied = await second;
  expect(denied.status).toBe(403);
  expect(await denied.json()).toMatchObject({ error: { type: 'policy_denied', rule: 'batches-need-approval', message: expect.stringContaining('deny in test') } });
  expect(fx.upstream.requests.length).toBe(before + 1);
});
