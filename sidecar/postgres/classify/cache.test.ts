import fc from 'fast-check';
import { runBench } from '../../../bench/classify';
import { createClassifier, normalizedKey } from './cache';
import { classifyDetailed, classifySql, initClassifier, type ClassifyResult } from './classify';

beforeAll(async () => {
  await initClassifier();
});

function kindsOf(r: ClassifyResult): string[][] {
  if ('parseError' in r) throw new Error(r.parseError);
  return r.statements.map((s) => [...s.kinds]);
}

describe('createClassifier', () => {
  test('exact and normalized hits return what a fresh classification would', () => {
    const c = createClassifier({ maxEntries: 100 });
    const q = (n: number): string => `SELECT abalance FROM pgbench_accounts WHERE aid = ${n};`;
    expect(c.classify(q(1))).toEqual(classifySql(q(1)));
    expect(c.classify(q(1))).toEqual(classifySql(q(1)));
    expect(c.classify(q(2))).toEqual(classifySql(q(2)));
    expect(c.stats()).toMatchObject({ misses: 1, exactHits: 1, normalizedHits: 1 });
  });

  test('results whose classification read a constant are not shared by normalized text', () => {
    const c = createClassifier({ maxEntries: 100 });
    expect(kindsOf(c.classify("SELECT query_to_xml('SELECT 1', true, false, '')"))).toEqual([['SELECT', 'DYNAMIC']]);
    expect(kindsOf(c.classify("SELECT query_to_xml('DELETE FROM orders', true, false, '')"))).toEqual([['SELECT', 'DELETE', 'DYNAMIC']]);
    // A parameter and a literal normalize alike; the parameter form must not answer for the literal.
    c.classify("SELECT query_to_xml($1, true, false, '')");
    expect(kindsOf(c.classify("SELECT query_to_xml('DROP TABLE x', true, false, '')"))).toEqual([['SELECT', 'DROP', 'DYNAMIC']]);
    c.classify("SELECT 'orders'::regclass");
    expect(c.classify("SELECT 'secrets'::regclass")).toMatchObject({ statements: [{ tables: ['secrets'] }] });
    c.classify('DO $$BEGIN PERFORM 1; END$$');
    expect(kindsOf(c.classify('DO $$BEGIN DELETE FROM orders; END$$'))).toEqual([['DO', 'DELETE']]);
    expect(c.stats().normalizedHits).toBe(0);
  });

  test('parse errors are reported and never stored under a normalized key', () => {
    const c = createClassifier({ maxEntries: 100 });
    expect(c.classify('DR/**/OP TABLE x')).toHaveProperty('parseError');
    expect(c.classify("SELECT 'unterminated")).toHaveProperty('parseError');
    expect(c.stats().normalizedSize).toBe(0);
    // libpg-query returns this error as if it were normalized text; it must not become a key.
    expect(normalizedKey("SELECT 'unterminated")).toBeUndefined();
    expect(normalizedKey('SELECT 1 /* open')).toBeUndefined();
    expect(normalizedKey('SELECT a FROM t WHERE b = 5')).toBe('SELECT a FROM t WHERE b = $1');
    expect(normalizedKey('SELECT a FROM t')).toBe('SELECT a FROM t');
  });

  test('results are frozen so no caller can poison the cache', () => {
    const c = createClassifier({ maxEntries: 10 });
    const r = c.classify('SELECT 1');
    if (!('statements' in r)) throw new Error('parse');
    expect(() => (r.statements[0].kinds as string[]).push('DROP')).toThrow();
    expect(() => r.statements.pop()).toThrow();
    expect(c.classify('SELECT 1')).toEqual(classifySql('SELECT 1'));
  });

  test('caches are bounded', () => {
    const c = createClassifier({ maxEntries: 3 });
    for (let i = 0; i < 20; i++) c.classify(`SELECT c${i} FROM t WHERE a = ${i}`);
    expect(c.stats().exactSize).toBe(3);
    expect(c.stats().normalizedSize).toBe(3);
    const none = createClassifier({ maxEntries: 0 });
    none.classify('SELECT 1');
    expect(none.stats()).toMatchObject({ exactSize: 0, normalizedSize: 0 });
  });

  test('long texts are classified but not cached', () => {
    const c = createClassifier({ maxEntries: 10, maxTextLength: 20 });
    const long = `SELECT ${'x, '.repeat(20)}y FROM t`;
    c.classify(long);
    c.classify(long);
    expect(c.stats()).toMatchObject({ misses: 2, exactSize: 0 });
  });
});

// Soundness: texts differing only in constants share a normalized key; whenever they do and the
// classification did not read a constant, they must classify identically.
const TEMPLATES = [
  'SELECT abalance FROM pgbench_accounts WHERE aid = ?',
  'SELECT * FROM t WHERE a = ? AND b IN (?, ?) LIMIT ?',
  "SELECT query_to_xml(?, true, false, '')",
  "SELECT table_to_xml(?, true, false, '')",
  'SELECT ?::regclass',
  'SELECT ?::text::regclass, ?',
  'SELECT dblink_exec(?)',
  'SELECT * FROM dblink(?, ?) AS r(a int)',
  'INSERT INTO t VALUES (?, ?) ON CONFLICT DO NOTHING',
  'UPDATE t SET a = ? WHERE id = ?',
  'DO ?',
  'DO LANGUAGE plpgsql ?',
  'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS ?',
  'CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS ?',
  'SET search_path TO ?',
  'COPY t FROM ?',
  'SELECT ?; SELECT ?',
  'NOTIFY c, ?',
  'PREPARE p AS SELECT ?',
];
const PAYLOADS = [
  'SELECT 1',
  'DELETE FROM orders',
  'DROP TABLE x',
  'secrets',
  'public.orders',
  'BEGIN DELETE FROM x; END',
  "BEGIN EXECUTE 'TRUNCATE t'; END",
  'BEGIN RETURN 1; END',
  'garbage ((',
  '',
  "it's",
  'dbname=crm',
];
const constant = fc.oneof(
  fc.integer({ min: -1000, max: 100000 }).map(String),
  fc.constantFrom('1.5', 'true', 'NULL', "B'101'", '$1'),
  fc
    .constantFrom(...PAYLOADS)
    .chain((s) => fc.constantFrom(`'${s.replace(/'/g, "''")}'`, `$q$${s}$q$`, `E'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`)),
);
const fill = (t: string, cs: string[]): string => {
  let i = 0;
  return t.replace(/\?/g, () => cs[i++]);
};
const constants = fc.array(constant, { minLength: 4, maxLength: 4 });
const text = fc.tuple(fc.constantFrom(...TEMPLATES), constants).map(([t, cs]) => fill(t, cs));
/** Two texts from one template: they differ only in constants. */
const sameShape = fc.tuple(fc.constantFrom(...TEMPLATES), constants, constants).map(([t, a, b]) => [fill(t, a), fill(t, b)] as const);

describe('normalized-key soundness (property)', () => {
  test('a shared classifier always answers as a fresh classification would', () => {
    fc.assert(
      fc.property(fc.array(text, { minLength: 1, maxLength: 30 }), (texts) => {
        const c = createClassifier({ maxEntries: 50 });
        for (const t of texts) expect(c.classify(t)).toEqual(classifySql(t));
      }),
      { numRuns: 300 },
    );
  });

  test('equal normalized keys imply equal classification unless constant-sensitive', () => {
    fc.assert(
      fc.property(sameShape, ([a, b]) => {
        const ka = normalizedKey(a);
        if (ka === undefined || ka !== normalizedKey(b)) return;
        const da = classifyDetailed(a);
        const db = classifyDetailed(b);
        if ('parseError' in da.result || 'parseError' in db.result) return;
        // The flag is decided by structure, so both sides of a shared key agree on it.
        expect(da.constSensitive).toBe(db.constSensitive);
        if (!da.constSensitive) expect(da.result).toEqual(db.result);
      }),
      { numRuns: 2000 },
    );
  });
});

test('benchmark (prints µs per classify)', async () => {
  const r = await runBench(5000);
  console.log(
    Object.entries(r)
      .map(([k, v]) => `${k}: ${v.toFixed(2)} µs`)
      .join('\n'),
  );
  expect(r.exactHitUs).toBeLessThan(r.missUs);
  expect(r.normalizedHitUs).toBeLessThan(r.missUs);
});
