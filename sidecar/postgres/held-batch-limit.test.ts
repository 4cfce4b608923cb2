// What a held extended-protocol batch may buffer while it waits for its Sync and the approver:
// MAX_HELD_BATCH_BYTES. A batch just under it is held for approval; one past it is denied at once,
// without being buffered further, and the connection stays usable.
import { Client } from 'pg';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { decideOverApi, holdDeletesRule, pendingApproval } from '../../test/support/approvals';
import { MAX_HELD_BATCH_BYTES } from './session/held-batch';

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
const heldDelete = (c: Client, size: number): Promise<unknown> =>
  c.query('DELETE FROM items WHERE id = 1 AND note IS DISTINCT FROM $1', ['x'.repeat(size)]);

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

test('a 100 MiB Bind in a held batch is refused from its header, not buffered', async () => {
  const net = await import('node:net');
  const url = new URL(stack.agentUrl());
  const sock = net.connect(Number(url.port), url.hostname);
  let received = Buffer.alloc(0);
  sock.on('data', (d) => (received = Buffer.concat([received, d])));
  const rfq = Buffer.from('Z\0\0\0\x05I', 'latin1');
  const waitFor = async (pred: () => boolean): Promise<void> => {
    for (let i = 0; i < 3000 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(pred()).toBe(true);
  };
  const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');
  const msg = (code: string, body: Buffer): Buffer => {
    const head = Buffer.alloc(5);
    head.write(code, 0, 'latin1');
    head.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([head, body]);
  };
  const write = (b: Buffer): Promise<void> => (sock.write(b) ? Promise.resolve() : new Promise((r) => sock.once('drain', r)));
  try {
    await new Promise((r) => sock.once('connect', r));
    const params = Buffer.concat([cstr('user'), cstr('agent'), cstr('database'), cstr(url.pathname.slice(1)), cstr('')]);
    const startup = Buffer.alloc(8);
    startup.writeInt32BE(8 + params.length);
    startup.writeInt32BE(196608, 4);
    await write(Buffer.concat([startup, params]));
    await waitFor(() => received.includes(rfq));
    received = Buffer.alloc(0);
    const value = 100 * 1024 * 1024;
    // Bind: portal '', statement '', 0 format codes, 1 parameter of `value` bytes, 0 result formats.
    const bindHead = Buffer.concat([cstr(''), cstr(''), Buffer.from([0, 0, 0, 1]), Buffer.alloc(4)]);
    bindHead.writeInt32BE(value, bindHead.length - 4);
    const header = Buffer.alloc(5);
    header.write('B', 0, 'latin1');
    header.writeInt32BE(4 + bindHead.length + value + 2, 1);
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      await write(
        Buffer.concat([
          msg('P', Buffer.concat([cstr(''), cstr('DELETE FROM items WHERE note IS DISTINCT FROM $1'), Buffer.from([0, 0])])),
          header,
          bindHead,
        ]),
      );
      const chunk = Buffer.alloc(1024 * 1024, 0x78);
      for (let sent = 0; sent < value; sent += chunk.length) await write(chunk);
      await write(Buffer.concat([Buffer.from([0, 0]), msg('E', Buffer.concat([cstr(''), Buffer.alloc(4)])), msg('S', Buffer.alloc(0))]));
      await waitFor(() => received.includes(rfq));
    } finally {
      clearInterval(sampler);
    }
    const answer = received.toString('latin1');
    expect(answer).toContain('42501');
    expect(answer).toContain(`the held batch grew past ${MAX_HELD_BATCH_BYTES} bytes`);
    expect(peak - before).toBeLessThan(64 * 1024 * 1024);
    expect((await stack.admin('SELECT count(*)::int AS n FROM items'))[0].n).toBe(10);
  } finally {
    sock.destroy();
  }
});
