import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { createClassifier } from './cache';
import { initClassifier } from './classify';
import { BoundedCache, ENTRY_BYTES, stringBytes } from '../bounded-cache';
import { resultBytes } from './front-cache';
import { createParserWorker, type AsyncClassifier } from './parser-worker';

// A client that never repeats a statement shape: new identifiers each time, long texts.
const hostile = (i: number): string =>
  `SELECT ${Array.from({ length: 40 }, (_, k) => `col_${i}_${k}_${'x'.repeat(30)}`).join(', ')} FROM t_${i} WHERE a = ${i}`;
// What the agents next to it run: a few statements, over and over, with new literals.
const normal = (i: number): string =>
  [
    `SELECT abalance FROM pgbench_accounts WHERE aid = ${i}`,
    `UPDATE pgbench_accounts SET abalance = abalance + ${i} WHERE aid = ${i % 97}`,
    `SELECT id, name, email FROM customers WHERE id = ${i}`,
    'BEGIN',
    'COMMIT',
  ][i % 5];

function collectGarbage(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

describe('BoundedCache', () => {
  test('holds no more than its byte budget, whatever the key sizes', () => {
    const c = new BoundedCache<string>(1_000_000, 64 * 1024);
    for (let i = 0; i < 5000; i++) {
      const key = `k${i}`.padEnd(1 + (i % 3000), 'q');
      c.set(key, 'v', 8);
      expect(c.bytes).toBeLessThanOrEqual(64 * 1024);
    }
    // The accounting matches what is held.
    expect(c.bytes).toBeGreaterThan(32 * 1024);
    // An entry larger than the whole budget is not stored (it would only flush the rest).
    const before = c.size;
    c.set('huge'.repeat(20_000), 'v', 8);
    expect(c.get('huge'.repeat(20_000))).toBeUndefined();
    expect(c.size).toBe(before);
  });

  test('two-byte keys are charged twice', () => {
    expect(stringBytes('é'.repeat(100))).toBe(stringBytes('e'.repeat(100)));
    expect(stringBytes('€'.repeat(100)) - stringBytes('e'.repeat(100))).toBe(100);
  });

  test('entries read since they were inserted survive a stream of one-off keys (second chance)', () => {
    const c = new BoundedCache<number>(100, 1_000_000);
    for (let i = 0; i < 10; i++) c.set(`hot${i}`, i, 8);
    let hotMisses = 0;
    for (let i = 0; i < 10_000; i++) {
      c.set(`cold${i}`, i, 8);
      if (i % 20 !== 0) continue;
      for (let h = 0; h < 10; h++) {
        if (c.get(`hot${h}`) !== undefined) continue;
        hotMisses++;
        c.set(`hot${h}`, h, 8);
      }
    }
    expect(c.size).toBe(100);
    expect(hotMisses).toBe(0);
  });

  test('set of an existing key replaces it and its size', () => {
    const c = new BoundedCache<string>(10, 10_000);
    c.set('a', 'x', 100);
    c.set('a', 'y', 200);
    expect(c.size).toBe(1);
    expect(c.bytes).toBe(ENTRY_BYTES + stringBytes('a') + 200);
    expect(c.get('a')).toBe('y');
    c.clear();
    expect(c.bytes).toBe(0);
  });
});

describe('classification caches under a hostile stream of new statement shapes', () => {
  beforeAll(async () => {
    await initClassifier();
  });

  test('estimates are not below what a result really holds', () => {
    const c = createClassifier();
    const r = c.classify(hostile(1));
    // 40 column names of ~40 characters each are in the result.
    expect(resultBytes(r)).toBeGreaterThan(40 * 40);
  });

  test('memory stays within the byte budgets while normal traffic keeps hitting', () => {
    const gc = collectGarbage();
    const MAX = 512 * 1024;
    const c = createClassifier({ maxBytes: MAX });
    for (let i = 0; i < 50; i++) c.classify(normal(i)); // warm
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const before = c.stats();
    let normalRuns = 0;
    for (let i = 0; i < 4000; i++) {
      c.classify(hostile(i)); // ~2 KB of new text each: 8 MB in all, ~24 MB if three caches kept it
      if (i % 4 === 0) {
        c.classify(normal(i));
        normalRuns++;
      }
      expect(c.stats().frontBytes).toBeLessThanOrEqual(2 * MAX);
    }
    const after = c.stats();
    gc();
    const grown = process.memoryUsage().heapUsed - heapBefore;
    // Three caches of MAX each, plus slack for the estimate and the heap's own noise.
    expect(grown).toBeLessThan(3 * MAX + 3 * 1024 * 1024);
    // Every hostile statement missed; the normal ones hit (exact or by shape) nearly always.
    const hits = after.exactHits + after.normalizedHits - before.exactHits - before.normalizedHits;
    expect(after.misses - before.misses).toBeGreaterThanOrEqual(4000);
    expect(hits).toBeGreaterThanOrEqual(normalRuns - 5);
  });
});

describe('the parser worker (what the sidecar runs) under the same stream', () => {
  let c: AsyncClassifier;
  afterEach(async () => {
    await c.close();
  });

  test('its main-thread caches stay within budget and normal traffic keeps hitting', async () => {
    const MAX = 256 * 1024;
    c = createParserWorker({ maxBytes: MAX });
    await c.start();
    for (let i = 0; i < 50; i++) await c.classify(normal(i));
    let normalHits = 0;
    let normalRuns = 0;
    for (let i = 0; i < 1500; i++) {
      await c.classify(hostile(i));
      if (i % 3 === 0) {
        normalRuns++;
        // A hit answers synchronously, without the worker.
        if (!(c.classify(normal(i)) instanceof Promise)) normalHits++;
      }
      expect(c.stats().frontBytes).toBeLessThanOrEqual(2 * MAX);
    }
    expect(normalHits).toBeGreaterThanOrEqual(normalRuns - 5);
  });
});
