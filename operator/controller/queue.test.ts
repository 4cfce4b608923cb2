import { WorkQueue } from './queue';

describe('WorkQueue', () => {
  afterEach(() => jest.useRealTimers());

  it('holds a queued key once and hands keys out in order', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    q.add('ns/b');
    q.add('ns/a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('ns/a');
    expect(await q.get()).toBe('ns/b');
    expect(q.len()).toBe(0);
  });

  it('never hands one key to two workers; an add while processing re-queues it after done()', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    const key = await q.get();
    q.add('ns/a'); // changed while a worker has it
    q.add('ns/a');
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await Promise.resolve();
    expect(second).toBeUndefined(); // not handed out concurrently
    q.done(key!);
    await Promise.resolve();
    expect(second).toBe('ns/a'); // exactly once more
    expect(q.len()).toBe(0);
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const q = new WorkQueue();
    const got = q.get();
    q.add('ns/x');
    expect(await got).toBe('ns/x');
  });

  it('backs off per key exponentially up to the cap, and forget() resets', () => {
    jest.useFakeTimers();
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 100 });
    expect([1, 2, 3, 4, 5, 6].map(() => q.addRateLimited('ns/a'))).toEqual([10, 20, 40, 80, 100, 100]);
    expect(q.numRequeues('ns/a')).toBe(6);
    expect(q.addRateLimited('ns/b')).toBe(10); // per key
    q.forget('ns/a');
    expect(q.addRateLimited('ns/a')).toBe(10);
  });

  it('adds a rate-limited key only after its delay', async () => {
    jest.useFakeTimers();
    const q = new WorkQueue({ baseDelayMs: 50 });
    q.addRateLimited('ns/a');
    q.addRateLimited('ns/a'); // the sooner retry (50 ms) wins
    jest.advanceTimersByTime(49);
    expect(q.len()).toBe(0);
    jest.advanceTimersByTime(1);
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe('ns/a');
  });

  it('shuts down: idle workers get undefined, drain() waits for in-flight work', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    const key = await q.get();
    const idle = q.get();
    q.add('ns/b');
    // ns/b went straight to the idle worker
    expect(await idle).toBe('ns/b');
    q.done('ns/b');
    const waiting = q.get();
    let drained = false;
    const d = q.drain().then(() => (drained = true));
    expect(await waiting).toBeUndefined();
    await Promise.resolve();
    expect(drained).toBe(false);
    q.add('ns/c'); // ignored after shutdown
    q.done(key!);
    await d;
    expect(drained).toBe(true);
    expect(q.len()).toBe(0);
    expect(await q.get()).toBeUndefined();
  });
});
