// 100 held statements on 100 connections at once, each decided independently through the admin
// API: approvals run exactly their own statement, denials run nothing, nobody waits on anybody.
import { Client } from 'pg';
import { decideOverApi, holdDeletesRule, pendingApprovals } from '../../test/support/approvals';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';

const N = 100;
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    setupSql: `DROP TABLE IF EXISTS many; CREATE TABLE many (id int PRIMARY KEY); INSERT INTO many SELECT generate_series(1, ${N});`,
    // N agent connections at once: above the default maxConnections (20).
    policy: (pg) => crmPolicy(pg, holdDeletesRule()).replace('listenPort: 15432', `listenPort: 15432\n        maxConnections: ${N + 1}`),
    sidecar: { localApprovals: true },
  });
});

afterAll(async () => {
  await stack?.stop();
});

test(`${N} concurrent holds on ${N} connections are decided independently`, async () => {
  const clients = await Promise.all(
    Array.from({ length: N }, async () => {
      const c = new Client({ connectionString: stack.agentUrl() });
      await c.connect();
      return c;
    }),
  );
  try {
    const results = clients.map((c, i) =>
      c.query(`DELETE FROM many WHERE id = ${i + 1}`).then(
        (r) => ({ ok: true as const, rows: r.rowCount }),
        (e: { code?: string; message: string }) => ({ ok: false as const, code: e.code, message: e.message }),
      ),
    );
    const pending = await pendingApprovals(stack.sidecar, N, 10_000);
    expect(pending).toHaveLength(N);
    // Decide in reverse order of creation: no statement may depend on another's decision.
    await Promise.all(
      pending.reverse().map(async (req) => {
        const id = Number(/id = (\d+)/.exec(req.operation.display)![1]);
        const verdict = id % 2 === 0 ? 'approve' : 'deny';
        const status = await decideOverApi(stack.sidecar, req.id, verdict, `decision for ${id}`);
        expect(status).toBe(200);
      }),
    );
    const outcomes = await Promise.all(results);
    outcomes.forEach((o, i) => {
      const id = i + 1;
      if (id % 2 === 0) expect(o).toEqual({ ok: true, rows: 1 });
      else expect(o).toMatchObject({ ok: false, code: '42501', message: expect.stringContaining(`decision for ${id}`) });
    });
    const left = (await stack.admin('SELECT array_agg(id ORDER BY id) AS ids FROM many'))[0].ids as number[];
    expect(left).toEqual(Array.from({ length: N / 2 }, (_, k) => 2 * k + 1));
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
});
