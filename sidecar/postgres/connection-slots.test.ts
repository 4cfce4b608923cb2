// The slot bookkeeping alone (the end-to-end behaviour is in max-connections.test.ts).
import { ConnectionSlots, MAX_WAITING } from './connection-slots';

test('waiters are served in order as slots free; a release is counted once', async () => {
  const slots = new ConnectionSlots(() => 3, 1000); // 2 agent slots
  const a = await slots.acquire();
  const b = await slots.acquire();
  if ('refused' in a || 'refused' in b) throw new Error('expected slots');
  const order: string[] = [];
  const c = slots.acquire().then((r) => (order.push('c'), r));
  const d = slots.acquire().then((r) => (order.push('d'), r));
  a.release();
  a.release();
  expect('release' in (await c)).toBe(true);
  expect(slots.inUse).toBe(2);
  b.release();
  expect('release' in (await d)).toBe(true);
  expect(order).toEqual(['c', 'd']);
});

test('an agent that leaves while waiting gives its place up at once', async () => {
  const slots = new ConnectionSlots(() => 2, 60_000);
  const held = await slots.acquire();
  const abort = new AbortController();
  const waiting = slots.acquire(abort.signal);
  abort.abort();
  expect(await waiting).toEqual({ refused: expect.stringContaining('closed while waiting') });
  if ('release' in held) held.release();
  expect(slots.inUse).toBe(0);
});

test('a lower limit from a reloaded policy applies to the next acquire; the queue bound holds', async () => {
  let max = 5;
  const slots = new ConnectionSlots(() => max, 50);
  const granted = await Promise.all([slots.acquire(), slots.acquire()]);
  expect(granted.every((g) => 'release' in g)).toBe(true);
  max = 2;
  expect(await slots.acquire()).toEqual({ refused: expect.stringContaining('waited 0.05s') });
  const waiters = Array.from({ length: MAX_WAITING }, () => slots.acquire());
  expect(await slots.acquire()).toEqual({ refused: expect.stringContaining(`${MAX_WAITING} more connections are already waiting`) });
  await Promise.all(waiters);
});
