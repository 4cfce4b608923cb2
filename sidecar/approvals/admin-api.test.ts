import * as net from 'node:net';
import * as os from 'node:os';
import { LocalApprovalStore } from './local-store';
import { startTestAdmin, newApprovalRequest } from '../../test/support/sidecar/approvals-admin';
import type { ApprovalsApiOptions } from './admin-api';
import type { Identity } from '../../common/policy/types';
import type { NewApprovalRequest } from './types';

const agent = { subject: 'system:serviceaccount:shop:agent', groups: ['agents'] };
const TOKENS: Record<string, Identity> = {
  'tok-alice': { subject: 'alice', groups: ['sre'], source: 'token' },
  'tok-bob': { subject: 'bob', groups: ['sre'], source: 'token' },
  'tok-mallory': { subject: 'mallory', groups: ['dev'], source: 'token' },
  'tok-agent': { subject: agent.subject, groups: ['sre'], source: 'token' },
};
async function verifyToken(t: string): Promise<Identity> {
  const id = TOKENS[t];
  if (!id) throw new Error('signature verification failed');
  return id;
}

function newReq(over: Partial<NewApprovalRequest> = {}): NewApprovalRequest {
  return newApprovalRequest({ approvers: { groups: ['sre', 'local-approvers'] }, ...over });
}

async function setup(opts: Omit<ApprovalsApiOptions, 'backend'>) {
  const store = new LocalApprovalStore();
  const admin = await startTestAdmin({ backend: store, ...opts });
  const base = `http://${admin.addr}`;
  const req = async (method: string, path: string, body?: unknown, token?: string) => {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: (text.startsWith('{') ? JSON.parse(text) : text) as any };
  };
  return {
    store,
    base,
    req,
    close: async () => {
      store.close();
      await admin.close();
    },
  };
}

describe('approvals admin API', () => {
  let env: Awaited<ReturnType<typeof setup>>;
  afterEach(() => env?.close());

  test('reads: list pending, get one, 404 with a stable code; other admin routes untouched', async () => {
    env = await setup({});
    const a = await env.store.create(newReq());
    const b = await env.store.create(newReq());
    await env.store.cancel(b.id);
    const list = await env.req('GET', '/approvals');
    expect(list.status).toBe(200);
    expect(list.body.items.map((x: { id: string }) => x.id)).toEqual([a.id]);
    const all = await env.req('GET', '/approvals?state=all');
    expect(all.body.items).toHaveLength(2);
    const one = await env.req('GET', `/approvals/${a.id}`);
    expect(one.body).toMatchObject({ id: a.id, state: 'pending', operation: { display: 'DELETE FROM orders WHERE id = 1' } });
    const missing = await env.req('GET', '/approvals/nope');
    expect(missing).toEqual({ status: 404, body: { error: { code: 'not_found', message: expect.stringContaining('nope') } } });
    expect((await env.req('GET', '/approvals?state=bogus')).status).toBe(400);
    expect((await env.req('DELETE', `/approvals/${a.id}`)).status).toBe(405);
    expect((await env.req('GET', '/approvalsx')).status).toBe(404);
    expect(await (await fetch(`${env.base}/healthz`)).text()).toBe('ok\n');
  });

  test('without localApprovals or a verifier, decisions are refused with 403 explaining why', async () => {
    env = await setup({});
    const a = await env.store.create(newReq());
    const r = await env.req('POST', `/approvals/${a.id}/approve`, {});
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('approver_identity_required');
    expect(r.body.error.message).toContain("shares this pod's loopback");
    const withToken = await env.req('POST', `/approvals/${a.id}/approve`, {}, 'tok-alice');
    expect(withToken.status).toBe(403);
    expect(withToken.body.error.message).toContain('cannot verify approver tokens');
    expect((await env.store.get(a.id))!.state).toBe('pending');
  });

  test('localApprovals: a loopback caller decides as the local OS user in group local-approvers', async () => {
    env = await setup({ localApprovals: true, localUser: 'dev-laptop-user' });
    const a = await env.store.create(newReq());
    const r = await env.req('POST', `/approvals/${a.id}/approve`, { reason: 'demo' });
    expect(r.status).toBe(200);
    expect(r.body.state).toBe('approved');
    expect(r.body.decisions[0]).toMatchObject({ by: 'dev-laptop-user', groups: ['local-approvers'], reason: 'demo' });
    const again = await env.req('POST', `/approvals/${a.id}/deny`, { reason: 'changed my mind' });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('already_decided');
  });

  test('localApprovals defaults to os.userInfo().username, and the rule must still list the approver', async () => {
    env = await setup({ localApprovals: true });
    const a = await env.store.create(newReq({ approvers: { groups: ['sre'] } }));
    const r = await env.req('POST', `/approvals/${a.id}/approve`, {});
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('not_an_approver');
    expect(r.body.error.message).toContain(os.userInfo().username);
  });

  test('localApprovals: a local user equal to the requester cannot approve', async () => {
    env = await setup({ localApprovals: true, localUser: agent.subject });
    const a = await env.store.create(newReq());
    const r = await env.req('POST', `/approvals/${a.id}/approve`, {});
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('self_approval');
  });

  test('token mode: verified approver decides; forged token 401; non-approver 403; self-approval 403', async () => {
    env = await setup({ verifyToken });
    const a = await env.store.create(newReq());
    const forged = await env.req('POST', `/approvals/${a.id}/approve`, {}, 'tok-forged');
    expect(forged.status).toBe(401);
    expect(forged.body.error).toEqual({ code: 'invalid_token', message: 'approver token rejected: signature verification failed' });
    const noToken = await env.req('POST', `/approvals/${a.id}/approve`, {});
    expect(noToken.status).toBe(403);
    const outsider = await env.req('POST', `/approvals/${a.id}/approve`, {}, 'tok-mallory');
    expect(outsider.status).toBe(403);
    expect(outsider.body.error.code).toBe('not_an_approver');
    const self = await env.req('POST', `/approvals/${a.id}/approve`, {}, 'tok-agent');
    expect(self.status).toBe(403);
    expect(self.body.error.code).toBe('self_approval');
    expect((await env.store.get(a.id))!.state).toBe('pending');
    const ok = await env.req('POST', `/approvals/${a.id}/deny`, { reason: 'not now' }, 'tok-alice');
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ state: 'denied', finalReason: 'denied by alice: not now' });
  });

  test('token takes precedence over local mode when both are configured', async () => {
    env = await setup({ verifyToken, localApprovals: true, localUser: 'someone' });
    const a = await env.store.create(newReq({ approvers: { users: ['bob'] } }));
    const r = await env.req('POST', `/approvals/${a.id}/approve`, {}, 'tok-bob');
    expect(r.status).toBe(200);
    expect(r.body.decisions[0].by).toBe('bob');
  });

  test('deny needs a reason; bad JSON is a 400; digest binding is a 409', async () => {
    env = await setup({ verifyToken });
    const a = await env.store.create(newReq());
    const r = await env.req('POST', `/approvals/${a.id}/deny`, {}, 'tok-alice');
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('reason_required');
    const bad = await fetch(`${env.base}/approvals/${a.id}/approve`, {
      method: 'POST',
      headers: { authorization: 'Bearer tok-alice' },
      body: '{nope',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.code).toBe('invalid_json');
    const wrong = await env.req('POST', `/approvals/${a.id}/approve`, { digest: 'f'.repeat(64) }, 'tok-alice');
    expect(wrong.status).toBe(409);
    expect(wrong.body.error.code).toBe('digest_mismatch');
    const right = await env.req('POST', `/approvals/${a.id}/approve`, { digest: a.operation.digest }, 'tok-alice');
    expect(right.status).toBe(200);
  });

  test('expired request: 409 expired; unknown id: 404; two-person rule over the API', async () => {
    env = await setup({ verifyToken });
    const e = await env.store.create(newReq({ timeoutMs: 20 }));
    await env.store.wait(e.id);
    const r = await env.req('POST', `/approvals/${e.id}/approve`, {}, 'tok-alice');
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('expired');
    expect((await env.req('POST', '/approvals/unknown/approve', {}, 'tok-alice')).status).toBe(404);
    const two = await env.store.create(newReq({ required: 2 }));
    expect((await env.req('POST', `/approvals/${two.id}/approve`, {}, 'tok-alice')).body.state).toBe('pending');
    expect((await env.req('POST', `/approvals/${two.id}/approve`, {}, 'tok-alice')).body.error.code).toBe('already_voted');
    expect((await env.req('POST', `/approvals/${two.id}/approve`, {}, 'tok-bob')).body.state).toBe('approved');
  });

  test('acceptDecisions: false refuses every decision (Kubernetes mode)', async () => {
    env = await setup({ verifyToken, localApprovals: true, acceptDecisions: false });
    const a = await env.store.create(newReq());
    const r = await env.req('POST', `/approvals/${a.id}/approve`, {}, 'tok-alice');
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('decisions_disabled');
  });
});

test('a request target that is not a URL gets 400 and the admin server keeps serving', async () => {
  const api = await setup({ localApprovals: true });
  try {
    const { hostname, port } = new URL(api.base);
    const raw = await new Promise<string>((resolve) => {
      const sock = net.connect(Number(port), hostname, () => sock.write('GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let out = '';
      sock.on('data', (d: Buffer) => (out += d.toString()));
      sock.on('close', () => resolve(out));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400/);
    expect((await api.req('GET', '/healthz')).status).toBe(200);
    expect((await api.req('GET', '/approvals/%zz')).status).toBe(400);
  } finally {
    await api.close();
  }
});
