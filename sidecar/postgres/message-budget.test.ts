// One budget for the large client messages every connection together may make the sidecar buffer
// (a Bind with a big parameter, a CopyData chunk): a connection that stalls halfway through a huge
// message cannot make the others' large messages pile up in memory; they are refused unread with
// 53200, the connections stay usable, and the budget comes back when the stalled one leaves.
import { Client } from 'pg';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { errorCodes, fe, field, firstColumn, WireClient } from '../../test/support/wire-client';
import { cstr, int16, int32, msg } from '../../test/support/sidecar/pg-bytes';
import { LARGE_MESSAGE_BYTES } from './message-budget';

const BUDGET = 4 * LARGE_MESSAGE_BYTES;
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    setupSql: 'DROP TABLE IF EXISTS blobs; CREATE TABLE blobs (id int, data text);',
    policy: (pg) => crmPolicy(pg, ''),
    sidecar: { largeMessageBudgetBytes: BUDGET },
  });
});

afterAll(async () => {
  await stack?.stop();
});

/** A Bind of the unnamed statement with one text parameter of `size` bytes. */
const bindOf = (size: number): Buffer => msg('B', cstr(''), cstr(''), int16(0), int16(1), int32(size), Buffer.alloc(size, 0x61), int16(0));

async function count(): Promise<number> {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    return (await c.query('SELECT count(*)::int AS n FROM blobs')).rows[0].n;
  } finally {
    await c.end();
  }
}

/** A connection that sends the first bytes of a Bind declaring `size` bytes and then stalls. */
async function stallInBind(size: number): Promise<WireClient> {
  const w = await WireClient.connect(stack.agentUrl());
  w.send(fe.parse('', 'INSERT INTO blobs VALUES (1, $1)'), bindOf(size).subarray(0, 64));
  return w;
}

const budgetInUse = (): number => stack.sidecar.messageBudget!.inUse;

async function until(pred: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(pred()).toBe(true);
}

test('large Binds within the budget run', async () => {
  const before = await count();
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    await c.query('INSERT INTO blobs VALUES (1, $1)', ['x'.repeat(BUDGET - 1024)]);
  } finally {
    await c.end();
  }
  expect(await count()).toBe(before + 1);
  expect(budgetInUse()).toBe(0);
});

test('a stalled connection holding the budget: another large Bind is refused with 53200, nothing runs, the connection stays usable', async () => {
  const before = await count();
  const staller = await stallInBind(BUDGET - 1024);
  await until(() => budgetInUse() > 0);
  const w = await WireClient.connect(stack.agentUrl());
  try {
    const out = await w.run(1, fe.parse('', 'INSERT INTO blobs VALUES (2, $1)'), bindOf(2 * LARGE_MESSAGE_BYTES), fe.execute(), fe.sync());
    expect(errorCodes(out)).toEqual(['53200']);
    const e = out.find((m) => m.code === 'E')!;
    expect(field(e, 'M')).toContain('refused unread');
    expect(firstColumn(await w.run(1, fe.query('SELECT 42')))).toEqual(['42']);
    // Small messages never wait for the budget.
    expect(firstColumn(await w.run(1, fe.parse('', 'SELECT $1::text'), fe.bind('', '', ['small']), fe.execute(), fe.sync()))).toEqual([
      'small',
    ]);
  } finally {
    w.close();
  }
  expect(await count()).toBe(before);
  // The stalled connection leaves: its reservation comes back and a large Bind runs again.
  staller.close();
  await until(() => budgetInUse() === 0);
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    await c.query('INSERT INTO blobs VALUES (3, $1)', ['y'.repeat(2 * LARGE_MESSAGE_BYTES)]);
  } finally {
    await c.end();
  }
  expect(await count()).toBe(before + 1);
});

test('a CopyData chunk past the budget fails the COPY upstream: nothing is copied and the connection stays usable', async () => {
  const before = await count();
  const staller = await stallInBind(BUDGET - 1024);
  await until(() => budgetInUse() > 0);
  const w = await WireClient.connect(stack.agentUrl());
  try {
    w.send(fe.query('COPY blobs FROM STDIN'));
    const row = Buffer.concat([Buffer.from('5\t'), Buffer.alloc(2 * LARGE_MESSAGE_BYTES, 0x62), Buffer.from('\n')]);
    w.send(msg('d', row), msg('d', Buffer.from('6\tsmall\n')), msg('c'));
    const out = await w.untilReady(1);
    expect(errorCodes(out)).toEqual(['57014']);
    expect(
      field(
        out.find((m) => m.code === 'E')!,
        'M',
      ),
    ).toContain('agent-warden');
    expect(firstColumn(await w.run(1, fe.query('SELECT 7')))).toEqual(['7']);
  } finally {
    w.close();
    staller.close();
  }
  expect(await count()).toBe(before);
});
