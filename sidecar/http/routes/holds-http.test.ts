// A held HTTP request through a running sidecar with the standalone approval store: the agent's
// request stays open until an approver decides through the admin API.
import { decideOverApi, pendingApproval } from '../../../test/support/approvals';
import { startSidecarFixture, type SidecarFixture } from '../../../test/support/sidecar/sidecar-fixture';

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

test('approved: the held request is forwarded and its answer returns; denied: 403 with the reason', async () => {
  const url = `http://127.0.0.1:${fx.sidecar.egressPort}/openai/v1/embeddings`;
  const send = (): Promise<Response> =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'e', input: 'hello' }) });
  const before = fx.upstream.requests.length;
  const first = send();
  const req = await pendingApproval(fx.sidecar);
  expect(req.operation.display).toContain('POST');
  expect(req.operation.display).toContain('/v1/embeddings');
  expect(fx.upstream.requests.length).toBe(before); // still held
  await decideOverApi(fx.sidecar, req.id, 'approve');
  expect((await first).status).toBe(200);
  expect(fx.upstream.requests.length).toBe(before + 1);
  const second = send();
  await decideOverApi(fx.sidecar, (await pendingApproval(fx.sidecar)).id, 'deny');
  const denied = await second;
  expect(denied.status).toBe(403);
  expect(await denied.json()).toMatchObject({
    error: { type: 'policy_denied', rule: 'batches-need-approval', message: expect.stringContaining('deny in test') },
  });
  expect(fx.upstream.requests.length).toBe(before + 1);
});
