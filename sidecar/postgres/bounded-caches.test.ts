// The caches a client's traffic fills besides the classification caches (classify/front-cache.test.ts):
// result shapes and catalog entries stay within their byte budgets under ever-new shapes and tables,
// and what normal traffic keeps using stays cached.
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { CatalogCache } from './catalog';
import { ControlConnection } from './control-query';
import type { FieldDescription } from './protocol/backend';
import { ActionKind, type RowPlan } from './row-masking';
import { MAX_PLANS_PER_SHAPE, ShapeCache } from './shape-cache';
import { connectUpstream } from './upstream';

const field = (name: string): FieldDescription => ({ name, tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: -1, typeMod: -1, format: 0 });
const plan = (n: number): RowPlan => ({ actions: Array.from({ length: n }, () => ({ kind: ActionKind.None, skip: 0 })), active: false });

describe('ShapeCache', () => {
  test('ever-new wide shapes stay within the byte budget; a shape in use stays cached', () => {
    const MAX = 1024 * 1024;
    const shapes = new ShapeCache(2048, 60_000, MAX);
    try {
      const hotKey = 'hot-row-description';
      let hot = shapes.add(hotKey, [field('id'), field('name')]);
      let hotMisses = 0;
      // ~45 KB a hostile shape: this budget holds ~20. Used more often than once per turn of the
      // cache (the default budget holds ~90 such shapes), the hot shape gets its second chance.
      for (let i = 0; i < 3000; i++) {
        // 200 columns with new aliases: a new RowDescription every time.
        const fields = Array.from({ length: 200 }, (_, k) => field(`alias_${i}_${k}`));
        const s = shapes.add(`hostile-${i}-`.padEnd(4000, 'x'), fields);
        shapes.storePlan(s, '0:', plan(200));
        expect(shapes.bytes).toBeLessThanOrEqual(MAX);
        if (i % 10 === 0 && shapes.get(hotKey) !== hot) {
          hotMisses++;
          hot = shapes.add(hotKey, [field('id'), field('name')]);
        }
      }
      expect(hotMisses).toBe(0);
      expect(shapes.has(hot)).toBe(true);
    } finally {
      shapes.close();
    }
  });

  test('plans per shape are capped (a client can bind ever-new result formats)', () => {
    const shapes = new ShapeCache();
    try {
      const s = shapes.add('k', [field('a'), field('b')]);
      const before = shapes.bytes;
      for (let i = 0; i < 1000; i++) shapes.storePlan(s, `0:${i},1`, plan(2));
      expect(s.plans.size).toBe(MAX_PLANS_PER_SHAPE);
      expect(shapes.bytes).toBeGreaterThan(before); // kept plans are charged
      // A transient shape keeps none.
      const t = ShapeCache.transient([field('a')]);
      shapes.storePlan(t, '0:', plan(1));
      expect(t.plans.size).toBe(0);
      // Clearing forgets every shape: a kept one is taken back without its plans.
      shapes.clear();
      expect(shapes.has(s)).toBe(false);
      expect(shapes.bytes).toBe(0);
      shapes.adopt(s);
      expect(s.plans.size).toBe(0);
    } finally {
      shapes.close();
    }
  });
});

describe('CatalogCache against PostgreSQL', () => {
  let stack: Stack;
  const TABLES = 120;

  beforeAll(async () => {
    stack = await startStack({
      // Many tables with long column names, as a client creating tables without end would leave.
      setupSql: `DO $$ BEGIN FOR i IN 1..${TABLES} LOOP
          EXECUTE format('DROP TABLE IF EXISTS wide_%s; CREATE TABLE wide_%s (%s)', i, i,
            (SELECT string_agg(format('column_with_a_long_name_%s text', k), ', ') FROM generate_series(1, 20) k));
        END LOOP; END $$;`,
      policy: (pg) => crmPolicy(pg, ''),
    });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  test('entries stay within the byte budget, the newest load always kept', async () => {
    const rows = await stack.admin(`SELECT oid::int8 AS oid FROM pg_class WHERE relname LIKE 'wide\\_%' ORDER BY oid`);
    const oids = rows.map((r) => Number(r.oid));
    expect(oids).toHaveLength(TABLES);
    const MAX = 16 * 1024;
    const catalog = new CatalogCache({
      connect: async () =>
        new ControlConnection(
          await connectUpstream({
            host: '127.0.0.1',
            port: stack.pg.port,
            database: 'crm',
            tls: 'disable',
            credentials: { username: stack.pg.user, password: stack.pg.password },
            params: {},
            timeoutMs: 5000,
            maxMessageBytes: 1 << 20,
          }),
        ),
      ttlMs: 60_000,
      maxBytes: MAX,
    });
    try {
      let largest = 0;
      for (const oid of oids) {
        const before = catalog.bytes;
        await catalog.load([oid]);
        largest = Math.max(largest, catalog.bytes - before);
        expect(catalog.get(oid)?.columns.size).toBe(20);
        expect(catalog.bytes).toBeLessThanOrEqual(MAX);
      }
      // Each entry is ~1 KB: the budget holds a dozen, the oldest went first.
      expect(largest).toBeGreaterThan(20 * 25);
      expect(catalog.get(oids[0])).toBeUndefined();
      expect(catalog.get(oids[oids.length - 1])).toBeDefined();
      // One load larger than the budget is kept whole (its caller is waiting for it), the rest evicted.
      await catalog.load(oids.slice(0, 40));
      for (const oid of oids.slice(0, 40)) expect(catalog.get(oid)).toBeDefined();
      expect(catalog.get(oids[oids.length - 1])).toBeUndefined();
      catalog.invalidate();
      expect(catalog.bytes).toBe(0);
    } finally {
      catalog.close();
    }
  });
});
