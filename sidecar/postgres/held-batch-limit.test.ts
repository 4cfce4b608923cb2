// What a held extended-protocol batch may buffer while it waits for its Sync and the approver:
// MAX_HELD_BATCH_BYTES. A batch just under it is held for approval; one past it is denied at once,
// without being buffered further, and the connection stays usable.
import { Client } from 'pg';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { decideOverApi, holdDeletesRule, pendingApproval } from '../../test/support/approvals';
import { MAX_HELD_BATCH_BYTES } from './session';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    setupSql: 'DROP TABLE IF EXISTS items; CREATE TABLE items (id int, note text); INSERT INTO items SELECT generate_series(1, 10);',
    policy: (pg) => crmPolicy(pg, holdDeletesRule('10s')),
    sidecar: { localApprovals: true },
  });
});

afterAll(async () => {
  await stack?.stop();
});

/** A held DELETE whose one parameter is `size` bytes: the batch (Parse, Bind, Describe, Execute, Sync) is a little larger. */
const heldDelete = (c: Client, size: number): Promise<unknown> => c.query('DELETE FROM items WHERE id = 1 AND note IS DISTINCT FROM $1', ['x'.repeat(size)]);

test('a batch just under the limit is held for the approver', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    const running = heldDelete(c, MAX_HELD_BATCH_BYTES - 4096);
    const req = await pendingApproval(stack.sidecar);
    expect(await decideOverApi(stack.sidecar, req.id, 'deny', 'not now')).toBe(200);
    await expect(running).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('not now') });
    expect((await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(10);
  } finally {
    await c.end();
  }
});

test('a batch past the limit is denied at once; the connection stays usable', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    const requests = (await stack.sidecar.approvals!.list()).length;
    await expect(heldDelete(c, MAX_HELD_BATCH_BYTES + 1)).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining(`the held batch grew past ${MAX_HELD_BATCH_BYTES} bytes`),
    });
    expect((await stack.sidecar.approvals!.list()).length).toBe(requests); // no approver was asked
    expect((await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(10);
  } finally {
    await c.end();
  }
});
