// Hostile SQL and protocol sequences for the differential fuzzer, as fast-check arbitraries (so
// failures shrink to a minimal sequence), plus the fixed world they run against. Every generated
// statement that could change a protected table is one the policy denies or holds: the oracle can
// then say "the database changed, so the sidecar let through something the policy stopped".
// Generated text never contains the secret (the agent does not know it), so any of its forms in
// what comes back is a leak.
import fc from 'fast-check';
import type { Msg } from './wire';

/** The masked value: random-looking, no hex-only window, in no detector's shape. */
export const SECRET = 'Zq7Xk9Jv3Wm2Pn8Ht4';

export const CANARY_ROWS = 20;
export const LEDGER_ROWS = 40;

/** Rebuilds the world from scratch (run as the superuser, straight to PostgreSQL). */
export const SETUP_SQL = `
DROP SCHEMA IF EXISTS public CASCADE;
CREATE SCHEMA public;
CREATE TABLE canary (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO canary SELECT g, 'row-' || g FROM generate_series(1, ${CANARY_ROWS}) g;
CREATE TABLE vault (id int PRIMARY KEY, secret text, note text);
INSERT INTO vault VALUES (1, '${SECRET}', 'first'), (2, '${SECRET}', 'second'), (3, 'not-the-secret', 'third');
CREATE TABLE ledger (id int PRIMARY KEY);
INSERT INTO ledger SELECT generate_series(1, ${LEDGER_ROWS});
CREATE TABLE ledger_log (id int);
CREATE FUNCTION ledger_logged() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO ledger_log VALUES (OLD.id); RETURN OLD; END$$;
CREATE TRIGGER ledger_logged AFTER DELETE ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_logged();
CREATE TABLE fz_t (id int, v text);
CREATE TABLE fz_u (v text UNIQUE);
`;

/**
 * The policy under test (rules block for crmPolicy): DDL that could remove the protected tables
 * is denied everywhere; writes to canary and vault are denied (DELETE, UPDATE, MERGE) or held and
 * then denied by the fuzzer's approver (INSERT, COPY); deletes from ledger are held and approved,
 * one row per approval; vault.secret is masked by column (no detector would find it).
 */
export const POLICY_RULES = `  rules:
    - name: no-ddl
      action: deny
      match: {target: crm, sql: {statements: [DROP, TRUNCATE, ALTER]}}
    - name: canary-writes
      action: deny
      match: {target: crm, sql: {statements: [DELETE, UPDATE, MERGE], tables: [canary, vault]}}
    - name: canary-inserts-held
      action: hold
      approval: {approvers: {groups: [local-approvers]}, timeout: 30s}
      match: {target: crm, sql: {statements: [INSERT, COPY], tables: [canary, vault]}}
    - name: ledger-deletes-held
      action: hold
      approval: {approvers: {groups: [local-approvers]}, timeout: 30s}
      match: {target: crm, sql: {statements: [DELETE], tables: [ledger]}}
  masking:
    - name: vault-secret
      columns: [vault.secret]
      strategy: redact
`;

/** The rule whose holds the fuzzer's approver approves; every other hold it denies. */
export const APPROVED_RULE = 'ledger-deletes-held';

/** A statement and the family it belongs to (failures name the families of the minimal sequence). */
export interface Tagged {
  tag: string;
  sql: string;
}

const t =
  (tag: string) =>
  (sql: string): Tagged => ({ tag, sql });

// ---- statement families -------------------------------------------------------------------------

const CANARY_REFS = ['canary', 'public.canary', '"canary"', 'public."canary"', 'ONLY canary', 'canary AS c', 'canary c', 'CANARY'];
const WHERES = ['', ' WHERE id > 0', ' WHERE id = 3', ' WHERE true', ' WHERE id IN (SELECT id FROM canary)'];

const canaryWrite: fc.Arbitrary<Tagged> = fc
  .oneof(
    fc.tuple(fc.constantFrom(...CANARY_REFS), fc.constantFrom(...WHERES)).map(([r, w]) => `DELETE FROM ${r}${w}`),
    fc.tuple(fc.constantFrom(...CANARY_REFS), fc.constantFrom(...WHERES)).map(([r, w]) => `UPDATE ${r} SET v = 'changed'${w}`),
    fc.constantFrom(...CANARY_REFS.filter((r) => !r.includes(' '))).map((r) => `INSERT INTO ${r} VALUES (1000, 'added')`),
    fc.constantFrom(
      "INSERT INTO canary SELECT 1000 + g, 'x' FROM generate_series(1, 3) g",
      "INSERT INTO canary VALUES (5, 'dup') ON CONFLICT (id) DO UPDATE SET v = 'changed'",
      'MERGE INTO canary c USING (SELECT 3 AS id) s ON c.id = s.id WHEN MATCHED THEN DELETE',
      "MERGE INTO canary c USING (SELECT 3 AS id) s ON c.id = s.id WHEN MATCHED THEN UPDATE SET v = 'changed'",
      'TRUNCATE canary',
      'TRUNCATE TABLE ONLY public.canary RESTART IDENTITY',
      'DROP TABLE canary',
      'DROP TABLE IF EXISTS fz_t, canary CASCADE',
      'ALTER TABLE canary RENAME TO canary_old',
      'ALTER TABLE canary DROP COLUMN v',
      'WITH d AS (DELETE FROM canary RETURNING *) SELECT count(*) FROM d',
      "WITH u AS (UPDATE canary SET v = 'changed' RETURNING 1) SELECT count(*) FROM u",
      'WITH x AS (SELECT 1) DELETE FROM canary WHERE id = 3',
      'EXPLAIN ANALYZE DELETE FROM canary',
      "EXPLAIN (ANALYZE, FORMAT JSON) UPDATE canary SET v = 'changed'",
      'DO $$BEGIN DELETE FROM canary; END$$',
      'DO $fz$BEGIN DELETE FROM canary WHERE id = 3; END$fz$',
      "DO $$BEGIN EXECUTE 'DELETE FROM ' || 'canary'; END$$",
      "DO $$BEGIN EXECUTE format('TRUNCATE %I', 'canary'); END$$",
      "DO $$DECLARE q text := 'DELETE FROM canary'; BEGIN EXECUTE q; END$$",
      'PREPARE fzc AS DELETE FROM canary',
      'EXECUTE fzc',
      'SELECT 1; DELETE FROM canary; SELECT 2',
      "SELECT 'a;'; DELETE FROM canary",
      'SELECT $x$;$x$; DELETE FROM canary',
      'CREATE TABLE fz_ctas AS SELECT * FROM canary; DELETE FROM canary',
      'COPY canary FROM STDIN',
      "COPY canary FROM PROGRAM 'true'",
      'DECLARE fzcur CURSOR WITH HOLD FOR SELECT * FROM canary FOR UPDATE',
    ),
  )
  .map(t('canary-write'));

/** Reads of the masked column by every channel the issue lists, and then some. */
const secretRead: fc.Arbitrary<Tagged> = fc
  .constantFrom(
    'SELECT secret FROM vault',
    'SELECT id, secret, note FROM vault ORDER BY id',
    'SELECT * FROM vault',
    'SELECT v.secret AS s FROM vault v',
    'SELECT v FROM vault v',
    'SELECT v.* FROM vault v',
    'SELECT to_jsonb(v) FROM vault v',
    'SELECT row_to_json(v)::text FROM vault v',
    'SELECT row(v.*) FROM vault v',
    'SELECT (v).secret FROM vault v',
    'SELECT array_agg(secret) FROM vault',
    "SELECT string_agg(secret, ',') FROM vault",
    'SELECT secret::int FROM vault',
    'SELECT secret::bytea FROM vault',
    "SELECT encode(secret::bytea, 'base64') FROM vault",
    "SELECT encode(convert_to(secret, 'UTF8'), 'hex') FROM vault",
    "SELECT translate(secret, 'abc', 'bcd') FROM vault",
    'SELECT reverse(secret) FROM vault',
    'SELECT upper(secret), lower(secret) FROM vault',
    'SELECT substr(secret, 2, 12) FROM vault',
    "SELECT secret || '' FROM vault",
    "SELECT format('%s', secret) FROM vault",
    "SELECT jsonb_build_object('k', secret) FROM vault",
    'SELECT (SELECT secret FROM vault WHERE id = 1)',
    'SELECT * FROM (SELECT secret AS x FROM vault) s',
    'WITH s AS (SELECT secret FROM vault) SELECT * FROM s',
    'SELECT secret FROM vault UNION ALL SELECT v FROM canary',
    "SELECT pg_notify('fz', secret) FROM vault WHERE id = 1",
    'LISTEN fz',
    "SELECT set_config('application_name', secret, false) FROM vault WHERE id = 1",
    "SELECT set_config('fz.x', secret, false) FROM vault WHERE id = 1",
    "SELECT current_setting('fz.x', true)",
    'INSERT INTO fz_u SELECT secret FROM vault',
    "DO $$DECLARE s text; BEGIN SELECT secret INTO s FROM vault WHERE id = 1; RAISE NOTICE '%', s; END$$",
    "DO $$DECLARE s text; BEGIN SELECT secret INTO s FROM vault WHERE id = 1; RAISE EXCEPTION 'x %', s; END$$",
    'COPY vault TO STDOUT',
    'COPY (SELECT secret FROM vault) TO STDOUT',
    'COPY (SELECT note, secret FROM vault) TO STDOUT WITH (FORMAT csv)',
    'COPY vault TO STDOUT WITH (FORMAT binary)',
    'ANALYZE vault',
    "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'vault'",
    'DECLARE fzv CURSOR WITH HOLD FOR SELECT secret FROM vault',
    'FETCH ALL FROM fzv',
    'PREPARE fzs AS SELECT secret FROM vault',
    'EXECUTE fzs',
  )
  .map(t('secret-read'));

const LEDGER_IDS = fc.integer({ min: 1, max: LEDGER_ROWS });

/** Held, approved one execution at a time: approvals must not stretch to other executions. */
const ledger: fc.Arbitrary<Tagged> = fc
  .oneof(
    LEDGER_IDS.map((n) => `DELETE FROM ledger WHERE id = ${n}`),
    fc.constantFrom('PREPARE lp(int) AS DELETE FROM ledger WHERE id = $1', 'DEALLOCATE lp', 'DEALLOCATE ALL', 'DISCARD ALL'),
    LEDGER_IDS.map((n) => `EXECUTE lp(${n})`),
  )
  .map(t('approval'));

const session: fc.Arbitrary<Tagged> = fc
  .constantFrom(
    'BEGIN',
    'COMMIT',
    'ROLLBACK',
    'SAVEPOINT s1',
    'ROLLBACK TO SAVEPOINT s1',
    'SET search_path = pg_catalog, public',
    'RESET ALL',
    "SET application_name = 'fz'",
    'UNLISTEN *',
    'SELECT 1',
    'SELECT count(*) FROM canary',
    'SELECT id FROM fz_t',
    "INSERT INTO fz_t VALUES (1, 'x')",
    'CLOSE ALL',
  )
  .map(t('session'));

const failing: fc.Arbitrary<Tagged> = fc
  .constantFrom(
    'SELECT 1/0',
    'SELECT * FROM no_such_table',
    'SELEC 1',
    "SELECT '",
    '/* unterminated',
    'SELECT $$',
    'DELETE FROM',
    ';',
    '',
    ' ',
    'SELECT 1; SELEC 2; DELETE FROM canary',
  )
  .map(t('failing'));

/** Parser stress; the big sizes are rare (the poisoning seed repeats them on purpose). */
const parser: fc.Arbitrary<Tagged> = fc
  .tuple(
    fc.constantFrom('not', 'parens', 'subselect', 'array', 'collate', 'literal', 'many', 'case'),
    fc.oneof({ arbitrary: fc.integer({ min: 1, max: 300 }), weight: 8 }, { arbitrary: fc.constantFrom(3000, 9000, 20000), weight: 1 }),
    fc.constantFrom('', 'DROP TABLE canary; ', 'DELETE FROM canary; '),
    fc.constantFrom('', '; DELETE FROM canary', '; DROP TABLE canary'),
  )
  .map(([shape, n, head, tail]) => {
    const body: Record<string, () => string> = {
      not: () => `SELECT ${'NOT '.repeat(n)}true`,
      parens: () => `SELECT ${'('.repeat(n)}1${')'.repeat(n)}`,
      subselect: () => `SELECT ${'(SELECT '.repeat(n)}1${')'.repeat(n)}`,
      array: () => `SELECT ${'ARRAY['.repeat(n)}1${']'.repeat(n)}`,
      collate: () => `SELECT 'a' ${'COLLATE "C" '.repeat(n)}`,
      literal: () => `SELECT '${'x'.repeat(n * 100)}'`,
      many: () => 'SELECT 1;'.repeat(n),
      case: () => `SELECT ${'CASE WHEN true THEN '.repeat(n)}1${' END'.repeat(n)}`,
    };
    return { tag: 'parser', sql: `${head}${body[shape]()}${tail}` };
  });

/** Comments, case and whitespace tricks around any statement. */
function disguised(a: fc.Arbitrary<Tagged>): fc.Arbitrary<Tagged> {
  return fc
    .tuple(
      a,
      fc.constantFrom('', '/* x */ ', '-- c\n', '/* /* nested */ */ ', '\t\n ', '/*;*/'),
      fc.constantFrom('', ';', ' -- tail', '/**/;', ';;'),
      fc.boolean(),
    )
    .map(([s, pre, post, mixCase]) => ({ tag: s.tag, sql: `${pre}${mixCase ? mixKeywordCase(s.sql) : s.sql}${post}` }));
}

function mixKeywordCase(sql: string): string {
  return sql.replace(/\b(DELETE|UPDATE|SELECT|FROM|INSERT|INTO|TRUNCATE|DROP|TABLE|WHERE)\b/g, (w) =>
    w
      .split('')
      .map((c, i) => (i % 2 ? c.toLowerCase() : c))
      .join(''),
  );
}

/**
 * FUZZ_AVOID: `|`-separated texts; statements containing one are not generated. For exploring
 * past classes already known (e.g. `DO $$|row_to_json`), never for the suite's own runs.
 */
const AVOID = (process.env.FUZZ_AVOID ?? '').split('|').filter((a) => a !== '');

export const anySql: fc.Arbitrary<Tagged> = fc
  .oneof(
    { arbitrary: disguised(canaryWrite), weight: 4 },
    { arbitrary: disguised(secretRead), weight: 4 },
    { arbitrary: ledger, weight: 3 },
    { arbitrary: session, weight: 2 },
    { arbitrary: failing, weight: 1 },
    { arbitrary: parser, weight: 1 },
  )
  .filter((s) => !AVOID.some((a) => s.sql.toLowerCase().includes(a.toLowerCase())));

// ---- protocol -----------------------------------------------------------------------------------

export interface Step {
  /** Which of the program's two agent connections sends it. */
  conn: 0 | 1;
  msgs: Msg[];
  /** The family of each message's statement ('' for messages without one), parallel to msgs. */
  families: string[];
}

const NAMES = ['', 'p', 'q', 'lp', 'fzs'];
const PORTALS = ['', 'c1'];
const PARAM = fc.oneof(LEDGER_IDS.map(String), fc.constantFrom('0', 'x', null, '1; DELETE FROM canary'));

/** The parameterised statements Bind works on. */
const paramSql: fc.Arbitrary<Tagged> = fc
  .constantFrom(
    'DELETE FROM ledger WHERE id = $1',
    'DELETE FROM canary WHERE id = $1',
    'SELECT secret FROM vault WHERE id = $1::int',
    'SELECT $1::text',
  )
  .map(t('protocol'));

const protoMsg: fc.Arbitrary<{ tag?: string; msg: Msg }> = fc.oneof(
  {
    arbitrary: fc
      .tuple(fc.constantFrom(...NAMES), fc.oneof({ arbitrary: anySql, weight: 3 }, { arbitrary: paramSql, weight: 2 }))
      .map(([name, s]) => ({ tag: s.tag, msg: { k: 'Parse', name, sql: s.sql } as Msg })),
    weight: 4,
  },
  {
    arbitrary: fc
      .tuple(fc.constantFrom(...PORTALS), fc.constantFrom(...NAMES), fc.array(PARAM, { maxLength: 2 }), fc.boolean())
      .map(([portal, stmt, params, binary]) => ({ msg: { k: 'Bind', portal, stmt, params, binary } as Msg })),
    weight: 3,
  },
  {
    arbitrary: fc
      .tuple(fc.constantFrom(...PORTALS), fc.constantFrom(0, 0, 1))
      .map(([portal, maxRows]) => ({ msg: { k: 'Execute', portal, maxRows } as Msg })),
    weight: 3,
  },
  {
    arbitrary: fc
      .tuple(fc.constantFrom<'S' | 'P'>('S', 'P'), fc.constantFrom(...NAMES, ...PORTALS))
      .map(([what, name]) => ({ msg: { k: 'Describe', what, name } as Msg })),
    weight: 1,
  },
  {
    arbitrary: fc
      .tuple(fc.constantFrom<'S' | 'P'>('S', 'P'), fc.constantFrom(...NAMES, ...PORTALS))
      .map(([what, name]) => ({ msg: { k: 'Close', what, name } as Msg })),
    weight: 1,
  },
  { arbitrary: fc.constant({ msg: { k: 'Sync' } as Msg }), weight: 2 },
  { arbitrary: fc.constant({ msg: { k: 'Flush' } as Msg }), weight: 1 },
  { arbitrary: anySql.map((s) => ({ tag: s.tag, msg: { k: 'Query', sql: s.sql } as Msg })), weight: 1 },
);

const queryStep: fc.Arbitrary<Step> = fc
  .tuple(fc.constantFrom<0 | 1>(0, 1), anySql)
  .map(([conn, s]) => ({ conn, msgs: [{ k: 'Query', sql: s.sql }], families: [s.tag] }));

const protocolStep: fc.Arbitrary<Step> = fc
  .tuple(fc.constantFrom<0 | 1>(0, 1), fc.array(protoMsg, { minLength: 1, maxLength: 7 }))
  .map(([conn, ms]) => ({
    conn,
    msgs: ms.map((m) => m.msg),
    families: ms.map((m) => m.tag ?? ''),
  }));

const copyStep: fc.Arbitrary<Step> = fc
  .tuple(
    fc.constantFrom<0 | 1>(0, 1),
    fc.constantFrom('COPY canary FROM STDIN', 'COPY fz_t FROM STDIN', 'COPY canary (id, v) FROM STDIN WITH (FORMAT csv)'),
    fc.constantFrom<'done' | 'fail' | 'none'>('done', 'fail', 'none'),
  )
  .map(([conn, sql, end]) => ({
    conn,
    families: ['copy', 'copy', 'copy'].slice(0, end === 'none' ? 2 : 3),
    msgs: [
      { k: 'Query', sql } as Msg,
      { k: 'CopyData', data: sql.includes('csv') ? '1001,copied\n' : '1001\tcopied\n' } as Msg,
      ...(end === 'done' ? [{ k: 'CopyDone' } as Msg] : end === 'fail' ? [{ k: 'CopyFail', reason: 'fz' } as Msg] : []),
    ],
  }));

export const arbProgram: fc.Arbitrary<Step[]> = fc.array(
  fc.oneof({ arbitrary: queryStep, weight: 4 }, { arbitrary: protocolStep, weight: 4 }, { arbitrary: copyStep, weight: 1 }),
  { minLength: 1, maxLength: 6 },
);
