// The parser worker: cache hits answer synchronously, misses in the worker thread; nesting past the
// pre-scan limit and a statement over the time budget are refused as parser failures, and the worker is replaced so later statements are classified again.
import { createParserWorker, type AsyncClassifier } from './parser-worker';
import type { ClassifyResult } from './classify';
import { MAX_NESTING_DEPTH } from './prescan';

const kinds = (r: ClassifyResult): string[] => {
  if ('parseError' in r) throw new Error(r.parseError);
  return r.statements.map((s) => s.kind);
};

describe('parser worker', () => {
  let c: AsyncClassifier;
  afterEach(async () => {
    await c?.close();
  });

  test('a miss goes to the worker, a repeat is answered synchronously', async () => {
    c = createParserWorker({ maxEntries: 100 });
    await c.start();
    const first = c.classify('DROP TABLE orders');
    expect(first).toBeInstanceOf(Promise);
    expect(kinds(await first)).toEqual(['DROP']);
    const again = c.classify('DROP TABLE orders');
    expect(again).not.toBeInstanceOf(Promise);
    expect(kinds(again as ClassifyResult)).toEqual(['DROP']);
    // Same shape, other literal: the main thread's shape cache answers.
    await c.classify('SELECT * FROM t WHERE id = 1');
    expect(c.classify('SELECT * FROM t WHERE id = 2')).not.toBeInstanceOf(Promise);
    expect(c.stats()).toMatchObject({ misses: 2, exactHits: 1, normalizedHits: 1, replaced: 0 });
  });

  test('a syntax error is a parse error, not a parser failure', async () => {
    c = createParserWorker();
    const r = await c.classify('SELEC 1');
    expect(r).toEqual({ parseError: expect.stringContaining('syntax error') });
    expect(c.stats().replaced).toBe(0);
  });

  test('thousands of poisoning statements leave the parser working', async () => {
    c = createParserWorker();
    const chain = 'SELECT 1' + '+1'.repeat(12_000);
    const nots = 'SELECT ' + 'NOT '.repeat(9_000) + 'true';
    for (let i = 0; i < 2_000; i++) {
      const r = await c.classify(`${i % 2 === 0 ? chain : nots} -- ${i}`);
      expect(r).toMatchObject({ parserFailure: true, parseError: expect.stringContaining(`limit ${MAX_NESTING_DEPTH}`) });
    }
    expect(kinds(await c.classify('DROP TABLE t'))).toEqual(['DROP']);
  });

  test('a statement over the time budget is refused and the worker replaced', async () => {
    const reasons: string[] = [];
    c = createParserWorker({ timeBudgetMs: 5, onReplace: (r) => reasons.push(r) });
    await c.start();
    const big = 'SELECT ' + Array.from({ length: 60_000 }, (_, i) => `a${i} + 1`).join(', ');
    expect(await c.classify(big)).toMatchObject({ parserFailure: true, parseError: expect.stringContaining('longer than 5 ms') });
    expect(c.stats().replaced).toBe(1);
    expect(reasons[0]).toContain('longer than 5 ms');
  });

  test('statements nested right up to the pre-scan limit classify in the worker', async () => {
    c = createParserWorker();
    const n = MAX_NESTING_DEPTH - 1;
    for (const text of [
      'SELECT ' + 'f('.repeat(n) + '1' + ')'.repeat(n),
      'SELECT ' + 'NOT '.repeat(n) + 'true',
      'SELECT 1' + '+1'.repeat(n),
      'SELECT ' + '(SELECT '.repeat(n / 3) + '1' + ')'.repeat(n / 3),
      'SELECT ' + 'ARRAY['.repeat(n / 2) + '1' + ']'.repeat(n / 2),
    ]) {
      expect(kinds(await c.classify(text))).toEqual(['SELECT']);
    }
    expect(c.stats().replaced).toBe(0);
  });

  test('a parser failure inside the worker (stack overflow) is refused and the worker replaced', async () => {
    // A smaller stack than the sidecar's makes a statement within the pre-scan limit overflow for real.
    c = createParserWorker({ resourceLimits: { stackSizeMb: 0.5 } });
    const r = await c.classify('SELECT ' + 'f('.repeat(900) + '1' + ')'.repeat(900));
    expect(r).toMatchObject({ parserFailure: true, parseError: expect.stringContaining('Maximum call stack size exceeded') });
    expect(c.stats().replaced).toBe(1);
    expect(kinds(await c.classify('DROP TABLE t'))).toEqual(['DROP']);
  });

  test('a replaced worker starts with an empty normalized cache, and the stats say so', async () => {
    c = createParserWorker({ resourceLimits: { stackSizeMb: 0.5 } });
    await c.classify('SELECT * FROM t WHERE id = 1');
    expect(c.stats().normalizedSize).toBe(1);
    await c.classify('SELECT ' + 'f('.repeat(900) + '1' + ')'.repeat(900));
    expect(c.stats()).toMatchObject({ replaced: 1, normalizedSize: 0 });
  });

  test('after close, misses are refused', async () => {
    c = createParserWorker();
    await c.start();
    await c.close();
    expect(await c.classify('SELECT 1')).toMatchObject({ parserFailure: true });
  });
});
