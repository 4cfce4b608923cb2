// Differential fuzzing of the statement/portal model against the real server: random pipelined
// sequences of Parse, Bind, Describe, Execute, Close, Sync, Flush and SQL (PREPARE, DEALLOCATE,
// DISCARD ALL, EXECUTE, transactions, failing statements) with clashing names go through the real
// sidecar in one write each. DELETEs are held; the approver lets statements be prepared but denies
// every execution; a masked column must never come back in clear (a statement or portal mistaken
// for another would be masked by the wrong row description). Whatever the sequence, the rows stay,
// the secret stays masked, and the connection stays in step.
// FOLLOW_FUZZ_RUNS sets the number of sequences (default 40; e.g. FOLLOW_FUZZ_RUNS=2000 for a long run).
import fc from 'fast-check';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { holdDeletesRule } from '../../test/support/approvals';
import { AutoApprover } from '../../test/support/auto-approver';
import { fe, field, firstColumn, WireClient } from '../../test/support/wire-client';

const RUNS = Number(process.env.FOLLOW_FUZZ_RUNS ?? 40);
const TABLE = 'fuzz_rows';
const ROWS = 5;
const SECRET = 'card-4111-secret';
const MASKING = `  masking:
    - name: cards
      columns: [fuzz_cards.card]
      strategy: redact
`;

let stack: Stack;
let approver: AutoApprover;

beforeAll(async () => {
  stack = await startStack({
    setupSql: `CREATE TABLE ${TABLE} (id int); INSERT INTO ${TABLE} SELECT generate_series(1, ${ROWS});
      CREATE TABLE fuzz_cards (id int, card text); INSERT INTO fuzz_cards VALUES (1, '${SECRET}');`,
    policy: (pg) => crmPolicy(pg, holdDeletesRule('5s') + MASKING),
    sidecar: { localApprovals: true },
  });
  approver = new AutoApprover(stack.sidecar);
  // Preparing is approved (nothing runs); any execution (bound parameters, EXECUTE) is denied.
  approver.verdict = (d) => (d.includes('-- bound parameters') || /\bEXECUTE\b/i.test(d) ? 'deny' : 'approve');
});

afterAll(async () => {
  await approver?.stop();
  await stack?.stop();
});

const NAMES = ['', 'a', 'b'];
const TEXTS = [
  `DELETE FROM ${TABLE} WHERE id > $1`,
  'SELECT $1::int',
  'SELECT 1 / $1::int',
  `DELETE FROM ${TABLE} WHERE id = $1 RETURNING id`,
  'SELECT $1::int FROM nonexistent',
  `PREPARE b(int) AS DELETE FROM ${TABLE} WHERE id > $1`,
  'DEALLOCATE a',
  'SELECT card, $1::int FROM fuzz_cards',
  'SELECT $1::text AS card',
];
const QUERIES = [
  `PREPARE a(int) AS DELETE FROM ${TABLE} WHERE id > $1`,
  'PREPARE b(int) AS SELECT $1',
  'DEALLOCATE a',
  'DEALLOCATE b',
  'DEALLOCATE ALL',
  'DISCARD ALL',
  'EXECUTE a(0)',
  'EXECUTE b(0)',
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  'SELECT 1/0',
  'CLOSE ALL',
  'DECLARE c CURSOR WITH HOLD FOR SELECT 1',
  'DECLARE c CURSOR WITH HOLD FOR SELECT card FROM fuzz_cards',
  'FETCH ALL FROM c',
  'PREPARE b(int) AS SELECT card FROM fuzz_cards WHERE id = $1',
];

const frame: fc.Arbitrary<Buffer> = fc.oneof(
  fc.record({ n: fc.constantFrom(...NAMES), t: fc.constantFrom(...TEXTS) }).map(({ n, t }) => fe.parse(n, t)),
  fc
    .record({ p: fc.constantFrom('', 'c'), n: fc.constantFrom(...NAMES), v: fc.constantFrom('0', '1', 'x') })
    .map(({ p, n, v }) => fe.bind(p, n, [v])),
  fc.constantFrom('', 'c').map((p) => fe.execute(p)),
  fc.record({ k: fc.constantFrom<'S' | 'P'>('S', 'P'), n: fc.constantFrom(...NAMES, 'c') }).map(({ k, n }) => fe.close(k, n)),
  fc.record({ k: fc.constantFrom<'S' | 'P'>('S', 'P'), n: fc.constantFrom(...NAMES, 'c') }).map(({ k, n }) => fe.describe(k, n)),
  fc.constant(fe.sync()),
  fc.constant(fe.flush()),
  fc.constantFrom(...QUERIES).map((q) => fe.query(q)),
);

async function rowCount(): Promise<number> {
  return (await stack.admin(`SELECT count(*)::int AS n FROM ${TABLE}`))[0].n as number;
}

test(`${RUNS} random pipelined sequences: no held DELETE runs unapproved, no masked value leaks, the connection stays in step`, async () => {
  const c = await WireClient.connect(stack.agentUrl());
  let marker = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 14 }), async (frames) => {
        const done = `done-${++marker}`;
        // A Sync ends whatever batch is open; ROLLBACK ends any transaction; the marker shows everything before it was answered.
        c.send(...frames, fe.sync(), fe.query('ROLLBACK'), fe.query(`SELECT '${done}'`));
        const deadline = Date.now() + 10_000;
        let seen: string[] = [];
        while (!seen.includes(done)) {
          if (Date.now() > deadline) throw new Error('the sequence was never answered to the end');
          const ms = c.take();
          const fatal = ms.find((m) => m.code === 'E' && field(m, 'S') === 'FATAL');
          if (fatal) throw new Error(`the session ended: ${field(fatal, 'M')}`);
          const leak = ms.find((m) => m.code === 'D' && m.body.includes(SECRET));
          if (leak) throw new Error('a masked value came back in clear');
          seen = seen.concat(firstColumn(ms).filter((v): v is string => v !== null));
          await new Promise((r) => setTimeout(r, 5));
        }
        await c.untilReady(0);
        expect(await rowCount()).toBe(ROWS);
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
  } finally {
    c.close();
  }
}, 600_000);
