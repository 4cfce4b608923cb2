// Held statements against a scripted approval gate: one request per Bind of the held statement, a
// clean end when the agent leaves mid-wait, and durations measured from the held message.
import * as net from 'node:net';
import { Client } from 'pg';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { holdDeletesRule } from '../../test/support/approvals';
import { cstr, int16, int32, msg } from '../../test/support/sidecar/pg-bytes';
import type { ApprovalGate, HoldOutcome, HoldRequest } from '../approvals/hold';

let stack: Stack;
const requests: HoldRequest[] = [];
let answer: (req: HoldRequest) => Promise<HoldOutcome> = async () => ({ approved: true, reason: 'ok' });
const gate: ApprovalGate = {
  hold: (req) => {
    requests.push(req);
    return answer(req);
  },
};

beforeAll(async () => {
  stack = await startStack({
    setupSql: 'DROP TABLE IF EXISTS items; CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 10);',
    policy: (pg) => crmPolicy(pg, holdDeletesRule('5s')),
    sidecar: { approvals: gate },
  });
});

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => {
  requests.length = 0;
});

async function has(id: number): Promise<boolean> {
  return (await stack.admin(`SELECT count(*)::int AS n FROM items WHERE id = ${id}`))[0].n === 1;
}

const waitUntil = async (pred: () => boolean): Promise<void> => {
  for (let i = 0; i < 300 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(pred()).toBe(true);
};

function bind(value: string): Buffer {
  return msg('B', cstr(''), cstr(''), int16(0), int16(1), int32(Buffer.byteLength(value)), Buffer.from(value), int16(0));
}

async function rawSession(): Promise<{ sock: net.Socket; received: () => string; reset: () => void }> {
  const url = new URL(stack.agentUrl());
  const sock = net.connect(Number(url.port), url.hostname);
  let received = Buffer.alloc(0);
  sock.on('data', (d) => (received = Buffer.concat([received, d])));
  sock.on('error', () => undefined);
  await new Promise((r) => sock.once('connect', r));
  const params = Buffer.concat([cstr('user'), cstr('agent'), cstr('database'), cstr(url.pathname.slice(1)), cstr('')]);
  sock.write(Buffer.concat([int32(8 + params.length), int32(196608), params]));
  await waitUntil(() => received.includes(Buffer.from('Z\0\0\0\x05I', 'latin1')));
  received = Buffer.alloc(0);
  return { sock, received: () => received.toString('latin1'), reset: () => (received = Buffer.alloc(0)) };
}

test('a batch binding the held statement twice asks once per bind, each with its own parameters', async () => {
  const s = await rawSession();
  const batch = Buffer.concat([
    msg('P', cstr(''), cstr('DELETE FROM items WHERE id = $1'), int16(0)),
    bind('1'),
    msg('E', cstr(''), int32(0)),
    bind('2'),
    msg('E', cstr(''), int32(0)),
    msg('S'),
  ]);
  try {
    answer = async (req) =>
      req.operation.params?.[0] === '1' ? { approved: true, reason: 'one is fine' } : { approved: false, reason: 'not two' };
    s.sock.write(batch);
    await waitUntil(() => s.received().includes('Z\0\0\0\x05I'));
    expect(requests.map((r) => r.operation)).toEqual([
      { sql: 'DELETE FROM items WHERE id = $1', params: ['1'] },
      { sql: 'DELETE FROM items WHERE id = $1', params: ['2'] },
    ]);
    expect(s.received()).toContain('42501');
    expect(s.received()).toContain('not two');
    expect(await has(1)).toBe(true); // nothing of a batch with a denied bind runs
    expect(await has(2)).toBe(true);
    requests.length = 0;
    s.reset();
    answer = async () => ({ approved: true, reason: 'ok' });
    s.sock.write(batch);
    await waitUntil(() => s.received().includes('Z\0\0\0\x05I'));
    expect(requests.map((r) => r.operation.params)).toEqual([['1'], ['2']]);
    expect(s.received()).toContain('DELETE 1\0');
    expect(await has(1)).toBe(false);
    expect(await has(2)).toBe(false);
  } finally {
    s.sock.destroy();
  }
});

test('an agent leaving during the wait ends the session quietly, without a protocol-error event', async () => {
  answer = (req) =>
    new Promise((_resolve, reject) => req.signal.addEventListener('abort', () => reject(new Error('aborted by the session'))));
  const before = stack.sessions.length;
  const s = await rawSession();
  s.sock.write(msg('Q', cstr('DELETE FROM items WHERE id = 5')));
  await waitUntil(() => requests.length === 1);
  s.sock.destroy();
  await waitUntil(() => stack.sessions.slice(before).some((e) => e.event === 'disconnect'));
  await new Promise((r) => setTimeout(r, 50));
  expect(stack.sessions.slice(before).filter((e) => e.event === 'protocol-error')).toEqual([]);
  expect(await has(5)).toBe(true);
});

test('a held Bind of an approved statement is audited with its own duration', async () => {
  answer = async () => ({ approved: true, reason: 'ok' });
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    await c.query({ name: 'del', text: 'DELETE FROM items WHERE id = $1', values: [6] });
    answer = async () => {
      await new Promise((r) => setTimeout(r, 30));
      return { approved: false, reason: 'keep seven' };
    };
    const before = stack.events.length;
    const started = performance.now();
    await expect(c.query({ name: 'del', text: 'DELETE FROM items WHERE id = $1', values: [7] })).rejects.toMatchObject({ code: '42501' });
    const elapsed = performance.now() - started;
    const e = stack.events.slice(before).find((x) => x.decision === 'deny');
    expect(e).toBeDefined();
    expect(e!.durationMs).toBeGreaterThanOrEqual(25);
    expect(e!.durationMs).toBeLessThanOrEqual(elapsed + 1);
  } finally {
    await c.end();
  }
});
