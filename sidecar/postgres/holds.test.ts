// Held statements with the standalone approval back end (--local-approvals): the agent's real
// client waits, an approver decides through the admin API, exactly the held statement runs.
import { Client } from 'pg';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { decideOverApi, holdDeletesRule, pendingApproval } from '../../test/support/approvals';

const RULES = holdDeletesRule('2s');

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    setupSql: 'DROP TABLE IF EXISTS items; CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 10);',
    policy: (pg) => crmPolicy(pg, RULES),
    sidecar: { localApprovals: true },
  });
});

afterAll(async () => {
  await stack?.stop();
});

async function count(): Promise<number> {
  return Number((await stack.admin('SELECT count(*)::int AS n FROM items'))[0].n);
}

test('an approved DELETE waits for the decision, then exactly it runs and its result returns', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    const running = c.query('DELETE FROM items WHERE id = 1');
    const req = await pendingApproval(stack.sidecar);
    expect(req.operation.display).toContain('DELETE FROM items WHERE id = 1');
    expect(req.rule).toBe('deletes-need-approval');
    expect(await count()).toBe(10); // still waiting
    expect(await decideOverApi(stack.sidecar, req.id, 'approve', 'ok')).toBe(200);
    expect((await running).rowCount).toBe(1);
    expect(await count()).toBe(9);
    // single use: the approval does not cover the next, different statement
    const next = c.query('DELETE FROM items WHERE id = 2');
    const req2 = await pendingApproval(stack.sidecar);
    expect(req2.id).not.toBe(req.id);
    expect(await decideOverApi(stack.sidecar, req.id, 'approve', 'again')).toBe(409);
    expect(await decideOverApi(stack.sidecar, req2.id, 'deny', 'not this one')).toBe(200);
    await expect(next).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('not this one') });
    expect(await count()).toBe(9);
  } finally {
    await c.end();
  }
});

test('an expired hold is denied, saying it expired; other connections keep working meanwhile', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  const other = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  await other.connect();
  try {
    const running = c.query('DELETE FROM items');
    await pendingApproval(stack.sidecar);
    expect((await other.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(9);
    await expect(running).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/expired/) });
    expect(await count()).toBe(9);
  } finally {
    await c.end();
    await other.end();
  }
});

test('an agent that disconnects while held cancels its approval request', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  c.on('error', () => undefined);
  c.query('DELETE FROM items').catch(() => undefined);
  const req = await pendingApproval(stack.sidecar);
  await c.end().catch(() => undefined);
  let state = 'pending';
  for (let i = 0; i < 100 && state === 'pending'; i++) {
    await new Promise((r) => setTimeout(r, 20));
    state = (await stack.sidecar.approvals!.get(req.id))?.state ?? 'gone';
  }
  expect(state).toBe('cancelled');
  expect(await count()).toBe(9);
});
