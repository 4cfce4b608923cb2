// The sidecar's record of prepared statements and portals follows what the server confirms, not
// what the client asks: requests the server rejects or skips change nothing, names the sidecar
// cannot vouch for are refused, and every execution of a held statement is approved on its own,
// with its own parameters. Raw wire frames through the real sidecar to a real PostgreSQL; each
// attack checks the database's rows, not only the error.
import { Client } from 'pg';
import postgres from 'postgres';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { holdDeletesRule } from '../../test/support/approvals';
import { AutoApprover, type Verdict } from '../../test/support/auto-approver';
import { errorCodes, fe, field, firstColumn, WireClient } from '../../test/support/wire-client';

let stack: Stack;
let approver: AutoApprover;

beforeAll(async () => {
  stack = await startStack({
    setupSql: 'SELECT 1',
    policy: (pg) => crmPolicy(pg, holdDeletesRule('5s')),
    sidecar: { localApprovals: true },
  });
  approver = new AutoApprover(stack.sidecar);
});

afterAll(async () => {
  await approver?.stop();
  await stack?.stop();
});

/** How the approver answers (set per test), and what it was asked. */
let verdict: Verdict;
let asked: string[];

let client: WireClient | undefined;
beforeEach(() => {
  asked = approver.asked = [];
  verdict = () => 'deny';
  approver.verdict = (d) => verdict(d);
});
afterEach(() => {
  client?.close();
  client = undefined;
});

/** A fresh table with rows 1..5. */
async function table(name: string): Promise<string> {
  await stack.admin(`DROP TABLE IF EXISTS ${name}; CREATE TABLE ${name} (id int); INSERT INTO ${name} SELECT generate_series(1, 5)`);
  return name;
}

async function rows(name: string): Promise<number> {
  return (await stack.admin(`SELECT count(*)::int AS n FROM ${name}`))[0].n as number;
}

async function connect(): Promise<WireClient> {
  client = await WireClient.connect(stack.agentUrl());
  return client;
}

/** The approver lets a statement be prepared (no parameters bound) but denies every execution. */
const prepareOnly = (display: string): 'approve' | 'deny' => (display.includes('-- bound parameters') ? 'deny' : 'approve');

test('42P05: re-parsing an existing name does not replace it; the Bind is still held', async () => {
  const t = await table('dup_name');
  verdict = prepareOnly;
  const c = await connect();
  expect(errorCodes(await c.run(1, fe.parse('p', `DELETE FROM ${t} WHERE id > $1`), fe.sync()))).toEqual([]);
  expect(errorCodes(await c.run(1, fe.parse('p', 'SELECT $1::int'), fe.sync()))).toEqual(['42P05']);
  const out = await c.run(1, fe.bind('', 'p', ['0']), fe.execute(), fe.sync());
  expect(errorCodes(out)).toEqual(['42501']);
  expect(asked.at(-1)).toContain("$1 = '0'");
  expect(await rows(t)).toBe(5);
  // the connection is usable afterwards
  expect(firstColumn(await c.run(1, fe.query('SELECT 42')))).toEqual(['42']);
});

test('pipelined in one write: Parse, Sync, duplicate Parse, Sync, Bind, Execute, Sync: the Bind waits for the answers and is held', async () => {
  const t = await table('dup_pipelined');
  verdict = prepareOnly;
  const c = await connect();
  const out = await c.run(
    3,
    fe.parse('p', `DELETE FROM ${t} WHERE id > $1`),
    fe.sync(),
    fe.parse('p', 'SELECT $1::int'),
    fe.sync(),
    fe.bind('', 'p', ['0']),
    fe.execute(),
    fe.sync(),
  );
  expect(errorCodes(out)).toEqual(['42P05', '42501']);
  expect(await rows(t)).toBe(5);
});

test('pipelined in one write, harmless: a statement parsed in one Sync group is bound in the next', async () => {
  const c = await connect();
  const out = await c.run(
    3,
    fe.parse('q', 'SELECT $1::int + 1'),
    fe.sync(),
    fe.bind('', 'q', ['41']),
    fe.execute(),
    fe.sync(),
    fe.close('S', 'q'),
    fe.sync(),
  );
  expect(errorCodes(out)).toEqual([]);
  expect(firstColumn(out)).toEqual(['42']);
});

test('pipelined Parse, Bind, Execute, Sync of a held statement in one go: one request with the parameters, runs once', async () => {
  const t = await table('pipelined_once');
  verdict = () => 'approve';
  const c = await connect();
  const out = await c.run(1, fe.parse('d', `DELETE FROM ${t} WHERE id = $1`), fe.bind('', 'd', ['2']), fe.execute(), fe.sync());
  expect(errorCodes(out)).toEqual([]);
  expect(asked).toHaveLength(1);
  expect(asked[0]).toContain("$1 = '2'");
  expect(await rows(t)).toBe(4);
  // the next Bind of the same statement is another execution: asked again, denied, nothing deleted
  verdict = () => 'deny';
  expect(errorCodes(await c.run(1, fe.bind('', 'd', ['3']), fe.execute(), fe.sync()))).toEqual(['42501']);
  expect(asked).toHaveLength(2);
  expect(asked[1]).toContain("$1 = '3'");
  expect(await rows(t)).toBe(4);
});

test('a Close the server skips (after an error in its batch) keeps the statement: the Bind is still held', async () => {
  const t = await table('close_skipped');
  verdict = prepareOnly;
  const c = await connect();
  expect(errorCodes(await c.run(1, fe.parse('p', `DELETE FROM ${t} WHERE id > $1`), fe.sync()))).toEqual([]);
  const failed = await c.run(1, fe.parse('', 'SELECT 1/0'), fe.bind('', ''), fe.execute(), fe.close('S', 'p'), fe.sync());
  expect(errorCodes(failed)).toEqual(['22012']);
  expect(errorCodes(await c.run(1, fe.bind('', 'p', ['0']), fe.execute(), fe.sync()))).toEqual(['42501']);
  expect(await rows(t)).toBe(5);
  // A Close the server confirms: the name is gone, and a Bind of it is refused by the sidecar.
  expect(errorCodes(await c.run(1, fe.close('S', 'p'), fe.sync()))).toEqual([]);
  const refused = await c.run(1, fe.bind('', 'p', ['0']), fe.execute(), fe.sync());
  expect(errorCodes(refused)).toEqual(['42501']);
  expect(
    field(
      refused.find((m) => m.code === 'E')!,
      'M',
    ),
  ).toContain('has not seen the server confirm prepared statement "p"');
  expect(await rows(t)).toBe(5);
});

test('DEALLOCATE inside a failed transaction is rejected by the server, so the statement stays held', async () => {
  const t = await table('dealloc_failed');
  verdict = prepareOnly;
  const c = await connect();
  expect(errorCodes(await c.run(1, fe.parse('p', `DELETE FROM ${t} WHERE id > $1`), fe.sync()))).toEqual([]);
  const out = await c.run(4, fe.query('BEGIN'), fe.query('SELECT 1/0'), fe.query('DEALLOCATE p'), fe.query('ROLLBACK'));
  expect(errorCodes(out)).toEqual(['22012', '25P02']);
  expect(errorCodes(await c.run(1, fe.bind('', 'p', ['0']), fe.execute(), fe.sync()))).toEqual(['42501']);
  expect(asked.at(-1)).toContain("$1 = '0'");
  expect(await rows(t)).toBe(5);
  // DEALLOCATE the server confirms: gone.
  expect(errorCodes(await c.run(1, fe.query('DEALLOCATE p')))).toEqual([]);
  expect(errorCodes(await c.run(1, fe.bind('', 'p', ['0']), fe.execute(), fe.sync()))).toEqual(['42501']);
  expect(await rows(t)).toBe(5);
});

test('DISCARD ALL: rejected inside a transaction (statement kept and held); confirmed outside (statement gone, name reusable)', async () => {
  const t = await table('discard_all');
  verdict = prepareOnly;
  const c = await connect();
  expect(errorCodes(await c.run(1, fe.parse('p', `DELETE FROM ${t} WHERE id > $1`), fe.sync()))).toEqual([]);
  const out = await c.run(3, fe.query('BEGIN'), fe.query('DISCARD ALL'), fe.query('ROLLBACK'));
  expect(errorCodes(out)).toEqual(['25001']);
  expect(errorCodes(await c.run(1, fe.bind('', 'p', ['0']), fe.execute(), fe.sync()))).toEqual(['42501']);
  expect(await rows(t)).toBe(5);
  expect(errorCodes(await c.run(1, fe.query('DISCARD ALL')))).toEqual([]);
  expect(errorCodes(await c.run(1, fe.bind('', 'p', ['0']), fe.execute(), fe.sync()))).toEqual(['42501']);
  // the name is free on the server and in the sidecar: a harmless statement takes it and runs
  const reused = await c.run(1, fe.parse('p', 'SELECT $1::int'), fe.bind('', 'p', ['7']), fe.execute(), fe.sync());
  expect(errorCodes(reused)).toEqual([]);
  expect(firstColumn(reused)).toEqual(['7']);
  expect(await rows(t)).toBe(5);
});

test('a held statement only parsed (Parse, Describe, Sync) reaches the server only once approved; denied, it does not exist there', async () => {
  const t = await table('parse_only');
  verdict = () => 'deny';
  const c = await connect();
  const out = await c.run(1, fe.parse('h', `DELETE FROM ${t} WHERE id > $1`), fe.describe('S', 'h'), fe.sync());
  expect(errorCodes(out)).toEqual(['42501']);
  expect(asked).toHaveLength(1);
  expect(asked[0]).toContain(`DELETE FROM ${t}`);
  // the database never saw it: the server has no statement "h" on this connection
  const onServer = await c.run(1, fe.query(`SELECT count(*) FROM pg_prepared_statements WHERE name = 'h'`));
  expect(firstColumn(onServer)).toEqual(['0']);
  // and the sidecar refuses to bind it
  expect(errorCodes(await c.run(1, fe.bind('', 'h', ['0']), fe.execute(), fe.sync()))).toEqual(['42501']);
  expect(await rows(t)).toBe(5);
});

test('SQL PREPARE approved does not approve a protocol Bind of it with other parameters, nor SQL EXECUTE', async () => {
  const t = await table('sql_prepare');
  verdict = (d) => (d.startsWith('PREPARE') && !d.includes('-- bound parameters') ? 'approve' : 'deny');
  const c = await connect();
  expect(errorCodes(await c.run(1, fe.query(`PREPARE d(int) AS DELETE FROM ${t} WHERE id = $1`)))).toEqual([]);
  expect(asked).toHaveLength(1);
  const bound = await c.run(1, fe.bind('', 'd', ['2']), fe.execute(), fe.sync());
  expect(errorCodes(bound)).toEqual(['42501']);
  expect(asked).toHaveLength(2);
  expect(asked[1]).toContain("$1 = '2'");
  expect(await rows(t)).toBe(5);
  expect(errorCodes(await c.run(1, fe.query('EXECUTE d(3)')))).toEqual(['42501']);
  expect(asked).toHaveLength(3);
  expect(asked[2]).toContain('EXECUTE d(3)');
  expect(await rows(t)).toBe(5);
  // approved, the protocol execution runs once with exactly its parameters
  verdict = () => 'approve';
  expect(errorCodes(await c.run(1, fe.bind('', 'd', ['4']), fe.execute(), fe.sync()))).toEqual([]);
  expect(await rows(t)).toBe(4);
  expect((await stack.admin(`SELECT count(*)::int AS n FROM ${t} WHERE id = 4`))[0].n).toBe(0);
});

test('SQL PREPARE sent in the extended protocol: the statement it creates is held at every Bind', async () => {
  const t = await table('ext_prepare');
  verdict = (d) => (d.startsWith('PREPARE') && !d.includes('-- bound parameters') ? 'approve' : 'deny');
  const c = await connect();
  const prepared = await c.run(
    1,
    fe.parse('', `PREPARE e(int) AS DELETE FROM ${t} WHERE id = $1`),
    fe.bind('', ''),
    fe.execute(),
    fe.sync(),
  );
  expect(errorCodes(prepared)).toEqual([]);
  expect(errorCodes(await c.run(1, fe.bind('', 'e', ['1']), fe.execute(), fe.sync()))).toEqual(['42501']);
  expect(asked.at(-1)).toContain("$1 = '1'");
  expect(await rows(t)).toBe(5);
});

test('SQL EXECUTE of a name whose PREPARE is still unanswered in the same write is refused, not guessed', async () => {
  const c = await connect();
  const out = await c.run(2, fe.query('PREPARE s AS SELECT 1'), fe.query('EXECUTE s'));
  // The second Query is judged when it arrives; the PREPARE may or may not have been answered by then.
  const codes = errorCodes(out);
  expect(codes.length === 0 || (codes.length === 1 && codes[0] === '42501')).toBe(true);
  // once answered, it runs
  expect(firstColumn(await c.run(1, fe.query('EXECUTE s')))).toEqual(['1']);
});

test('a held Query approved after an earlier message of its batch failed is skipped, as the server skips it', async () => {
  const t = await table('skip_query');
  const c = await connect();
  // Classified once (denied), so the held Query below is decided from the cache at once instead of
  // waiting for the parser worker, by which time the Describe's error would already skip it.
  expect(errorCodes(await c.run(1, fe.query(`DELETE FROM ${t} WHERE id > 0`)))).toEqual(['42501']);
  asked.length = 0;
  let decide = false;
  verdict = () => (decide ? 'approve' : 'wait');
  // The Describe fails (and is flushed) while the approver is still deciding about the DELETE.
  c.send(fe.describe('S', 'missing'), fe.flush(), fe.query(`DELETE FROM ${t} WHERE id > 0`));
  await new Promise((r) => setTimeout(r, 200));
  decide = true;
  const out = await c.run(1, fe.sync());
  expect(errorCodes(out)).toEqual(['26000']);
  expect(asked).toHaveLength(1);
  expect(firstColumn(await c.run(1, fe.query('SELECT 42')))).toEqual(['42']);
  expect(await rows(t)).toBe(5);
});

test('a held batch denied after an earlier message of its batch failed sends nothing more: the connection stays in step', async () => {
  const t = await table('skip_batch');
  let decide = false;
  verdict = () => (decide ? 'deny' : 'wait');
  const c = await connect();
  c.send(
    fe.describe('S', 'missing'),
    fe.flush(),
    fe.parse('', `DELETE FROM ${t} WHERE id > $1`),
    fe.bind('', '', ['0']),
    fe.execute(),
    fe.sync(),
  );
  await new Promise((r) => setTimeout(r, 200));
  decide = true;
  const out = await c.untilReady(1);
  expect(errorCodes(out)).toEqual(['26000']);
  expect(firstColumn(await c.run(1, fe.query('SELECT 42')))).toEqual(['42']);
  expect(await rows(t)).toBe(5);
});

test('node-postgres: a held named statement runs once per approval; a denial leaves the connection usable', async () => {
  const t = await table('pg_client');
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    verdict = () => 'approve';
    expect((await c.query({ name: 'del', text: `DELETE FROM ${t} WHERE id = $1`, values: [1] })).rowCount).toBe(1);
    expect(asked).toHaveLength(1);
    verdict = () => 'deny';
    await expect(c.query({ name: 'del', text: `DELETE FROM ${t} WHERE id = $1`, values: [2] })).rejects.toMatchObject({ code: '42501' });
    expect(asked).toHaveLength(2);
    expect(asked[1]).toContain("$1 = '2'");
    expect((await c.query('SELECT 1 AS n')).rows[0].n).toBe(1);
    expect(await rows(t)).toBe(4);
  } finally {
    await c.end();
  }
});

test('postgres.js (Parse+Describe first, Bind+Execute later): prepared on approval, each execution asked with its parameters', async () => {
  const t = await table('pgjs_client');
  const sql = postgres(stack.agentUrl(), { max: 1 });
  try {
    verdict = () => 'approve';
    expect((await sql`DELETE FROM ${sql(t)} WHERE id = ${1}`).count).toBe(1);
    // one request to prepare it (nothing runs), one for the execution with its parameter
    expect(asked).toHaveLength(2);
    expect(asked[0]).not.toContain('-- bound parameters');
    expect(asked[1]).toContain("$1 = '1'");
    // the statement is prepared now: the next execution is one Bind, asked with its own parameter
    verdict = () => 'deny';
    await expect(sql`DELETE FROM ${sql(t)} WHERE id = ${2}`).rejects.toMatchObject({ code: '42501' });
    expect(asked).toHaveLength(3);
    expect(asked[2]).toContain("$1 = '2'");
    expect((await sql`SELECT 1 AS n`)[0].n).toBe(1);
    expect(await rows(t)).toBe(4);
  } finally {
    await sql.end();
  }
});

test('postgres.js unprepared (unnamed statement): a denied statement fails with 42501 and nothing runs', async () => {
  const t = await table('pgjs_unsafe');
  const sql = postgres(stack.agentUrl(), { max: 1 });
  try {
    verdict = () => 'deny';
    await expect(sql.unsafe(`DELETE FROM ${t} WHERE id = $1`, [1])).rejects.toMatchObject({ code: '42501' });
    verdict = () => 'approve';
    expect((await sql.unsafe(`DELETE FROM ${t} WHERE id = $1`, [2])).count).toBe(1);
    expect(asked.at(-1)).toContain("$1 = '2'");
    expect(await rows(t)).toBe(4);
    expect((await stack.admin(`SELECT count(*)::int AS n FROM ${t} WHERE id = 1`))[0].n).toBe(1);
  } finally {
    await sql.end();
  }
});
