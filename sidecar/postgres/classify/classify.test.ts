import fc from 'fast-check';
import type { SqlStatementInfo } from '../../../common/policy/types';
import { classifyDetailed, classifySql, initClassifier } from './classify';

beforeAll(async () => {
  await initClassifier();
});

function all(text: string): SqlStatementInfo[] {
  const r = classifySql(text);
  if ('parseError' in r) throw new Error(`unexpected parse error: ${r.parseError}`);
  return r.statements;
}

function one(text: string): SqlStatementInfo {
  const s = all(text);
  expect(s).toHaveLength(1);
  return s[0];
}

describe('top-level kind', () => {
  test.each([
    ['SELECT 1', 'SELECT'],
    ['VALUES (1)', 'SELECT'],
    ['TABLE t', 'SELECT'],
    ['SELECT 1 UNION SELECT 2', 'SELECT'],
    ['INSERT INTO t VALUES (1)', 'INSERT'],
    ['UPDATE t SET a = 1', 'UPDATE'],
    ['DELETE FROM t', 'DELETE'],
    ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DO NOTHING', 'MERGE'],
    ['COPY t FROM STDIN', 'COPY'],
    ['DROP TABLE t', 'DROP'],
    ['DROP ROLE r', 'DROP'],
    ['DROP DATABASE d', 'DROP'],
    ['DROP OWNED BY r', 'DROP'],
    ['TRUNCATE t', 'TRUNCATE'],
    ['ALTER TABLE t ADD COLUMN a int', 'ALTER'],
    ['ALTER TABLE t RENAME TO u', 'ALTER'],
    ['ALTER SYSTEM SET work_mem = 1', 'ALTER'],
    ['ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r', 'ALTER'],
    ['CREATE TABLE t (a int)', 'CREATE'],
    ['CREATE TABLE t AS SELECT 1', 'CREATE'],
    ['CREATE MATERIALIZED VIEW m AS SELECT 1', 'CREATE'],
    ['SELECT 1 INTO t', 'CREATE'],
    ['CREATE VIEW v AS SELECT 1', 'CREATE'],
    ['CREATE INDEX i ON t (a)', 'CREATE'],
    ['CREATE DATABASE d', 'CREATE'],
    ['CREATE AGGREGATE a (int) (sfunc = int4pl, stype = int)', 'CREATE'],
    ['CREATE TYPE ty AS (a int)', 'CREATE'],
    ['CREATE RULE r AS ON INSERT TO t DO NOTHING', 'CREATE'],
    ['GRANT SELECT ON t TO r', 'GRANT'],
    ['REVOKE SELECT ON t FROM r', 'REVOKE'],
    ['GRANT admin TO r', 'GRANT'],
    ['REVOKE admin FROM r', 'REVOKE'],
    ['DO $$BEGIN NULL; END$$', 'DO'],
    ['CALL p()', 'CALL'],
    ['PREPARE p AS SELECT 1', 'PREPARE'],
    ['EXECUTE p', 'EXECUTE'],
    ['DEALLOCATE p', 'DEALLOCATE'],
    ['SET work_mem = 1', 'SET'],
    ['SET ROLE r', 'SET'],
    ['SET CONSTRAINTS ALL DEFERRED', 'SET'],
    ['RESET work_mem', 'RESET'],
    ['RESET ALL', 'RESET'],
    ['SHOW work_mem', 'SHOW'],
    ['BEGIN', 'BEGIN'],
    ['START TRANSACTION', 'BEGIN'],
    ['COMMIT', 'COMMIT'],
    ['END', 'COMMIT'],
    ["PREPARE TRANSACTION 'x'", 'COMMIT'],
    ["COMMIT PREPARED 'x'", 'COMMIT'],
    ['ROLLBACK', 'ROLLBACK'],
    ['ROLLBACK TO SAVEPOINT s', 'ROLLBACK'],
    ["ROLLBACK PREPARED 'x'", 'ROLLBACK'],
    ['SAVEPOINT s', 'SAVEPOINT'],
    ['RELEASE SAVEPOINT s', 'RELEASE'],
    ['LOCK t', 'LOCK'],
    ['VACUUM t', 'VACUUM'],
    ['VACUUM ANALYZE t', 'VACUUM'],
    ['ANALYZE t', 'ANALYZE'],
    ['CLUSTER t USING i', 'CLUSTER'],
    ['REINDEX TABLE t', 'REINDEX'],
    ['REFRESH MATERIALIZED VIEW m', 'REFRESH'],
    ["COMMENT ON TABLE t IS 'x'", 'COMMENT'],
    ["SECURITY LABEL ON TABLE t IS 'x'", 'SECURITY_LABEL'],
    ['LISTEN c', 'LISTEN'],
    ["NOTIFY c, 'x'", 'NOTIFY'],
    ['UNLISTEN *', 'UNLISTEN'],
    ['DISCARD ALL', 'DISCARD'],
    ['EXPLAIN SELECT 1', 'EXPLAIN'],
    ['DECLARE c CURSOR FOR SELECT 1', 'DECLARE'],
    ['FETCH 10 FROM c', 'FETCH'],
    ['MOVE 10 IN c', 'MOVE'],
    ['CLOSE c', 'CLOSE'],
    ['CHECKPOINT', 'CHECKPOINT'],
    ["LOAD 'x'", 'LOAD'],
    ['IMPORT FOREIGN SCHEMA r FROM SERVER s INTO public', 'IMPORT'],
    ['REASSIGN OWNED BY a TO b', 'REASSIGN'],
  ])('%s -> %s', (text, kind) => {
    expect(one(text).kind).toBe(kind);
    expect(one(text).kinds[0]).toBe(kind);
  });
});

describe('nested kinds', () => {
  test.each([
    ['WITH d AS (DELETE FROM a RETURNING *) SELECT * FROM d', ['SELECT', 'DELETE']],
    ['WITH u AS (UPDATE a SET x = 1 RETURNING *) INSERT INTO b SELECT * FROM u', ['INSERT', 'SELECT', 'UPDATE']],
    ['EXPLAIN DELETE FROM a', ['EXPLAIN', 'DELETE']],
    ['EXPLAIN ANALYZE UPDATE a SET x = 1', ['EXPLAIN', 'UPDATE']],
    ['COPY (DELETE FROM a RETURNING *) TO STDOUT', ['COPY', 'DELETE']],
    ['COPY (SELECT 1) TO STDOUT', ['COPY', 'SELECT']],
    ['COPY a FROM STDIN', ['COPY', 'INSERT']],
    ['COPY a TO STDOUT', ['COPY', 'SELECT']],
    ['CREATE TABLE a AS SELECT 1', ['CREATE', 'SELECT']],
    ['SELECT * INTO a FROM b', ['CREATE', 'SELECT']],
    ['CREATE TABLE a AS EXECUTE p', ['CREATE', 'EXECUTE']],
    ['PREPARE p AS DELETE FROM a', ['PREPARE', 'DELETE']],
    ['MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN DELETE', ['MERGE', 'DELETE']],
    [
      'MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN UPDATE SET x = 1 WHEN NOT MATCHED THEN INSERT VALUES (1)',
      ['MERGE', 'INSERT', 'UPDATE'],
    ],
    ['INSERT INTO a VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 1', ['INSERT', 'SELECT', 'UPDATE']],
    ['INSERT INTO a VALUES (1) ON CONFLICT DO NOTHING', ['INSERT', 'SELECT']],
    ['CREATE RULE r AS ON INSERT TO a DO ALSO DELETE FROM b', ['CREATE', 'DELETE']],
    ['DECLARE c CURSOR FOR SELECT 1', ['DECLARE', 'SELECT']],
    ['ALTER DEFAULT PRIVILEGES REVOKE ALL ON TABLES FROM r', ['ALTER', 'REVOKE']],
    ['IMPORT FOREIGN SCHEMA r FROM SERVER s INTO public', ['IMPORT', 'CREATE']],
    ["CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DELETE FROM a'", ['CREATE', 'DELETE']],
    ['CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC UPDATE a SET x = 1; SELECT 1; END', ['CREATE', 'SELECT', 'UPDATE']],
    ['CREATE PROCEDURE p() LANGUAGE plpgsql AS $$BEGIN TRUNCATE a; END$$', ['CREATE', 'TRUNCATE']],
  ])('%s', (text, kinds) => {
    const s = one(text);
    expect(s.kind).toBe(kinds[0]);
    expect(s.kinds[0]).toBe(kinds[0]);
    expect([...s.kinds].sort()).toEqual([...kinds].sort());
  });
});

describe('DO blocks', () => {
  test('SQL statements inside a plpgsql body are classified', () => {
    const s = one(`DO $$
      DECLARE n int; r record;
      BEGIN
        DELETE FROM orders WHERE id = 1;
        n := (SELECT count(*) FROM secrets);
        PERFORM lo_import('/etc/passwd');
        FOR r IN SELECT * FROM customers LOOP UPDATE notes SET seen = true WHERE id = r.id; END LOOP;
        IF pg_read_file('x') IS NOT NULL THEN RAISE NOTICE 'x'; END IF;
      END $$`);
    expect(s.kind).toBe('DO');
    expect(s.kinds).toEqual(expect.arrayContaining(['DO', 'DELETE', 'SELECT', 'UPDATE']));
    expect(s.kinds).not.toContain('DYNAMIC');
    expect(s.tables).toEqual(expect.arrayContaining(['orders', 'secrets', 'customers', 'notes']));
    expect(s.functions).toEqual(expect.arrayContaining(['count', 'lo_import', 'pg_read_file']));
  });

  test('EXECUTE is DYNAMIC, and a literal EXECUTE string is classified', () => {
    const s = one("DO $$BEGIN EXECUTE 'DROP TABLE customers'; END$$");
    expect(s.kinds).toEqual(expect.arrayContaining(['DO', 'DYNAMIC', 'DROP']));
    expect(s.tables).toContain('customers');
  });

  test('a computed EXECUTE string is DYNAMIC', () => {
    const s = one("DO $$BEGIN EXECUTE format('DROP TABLE %I', 'x'); END$$");
    expect(s.kinds).toEqual(expect.arrayContaining(['DO', 'DYNAMIC']));
    expect(s.functions).toContain('format');
  });

  test('OPEN ... FOR EXECUTE and FOR ... IN EXECUTE are DYNAMIC', () => {
    expect(one("DO $$DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE 'SELECT 1'; END$$").kinds).toContain('DYNAMIC');
    expect(one("DO $$DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT 1' LOOP END LOOP; END$$").kinds).toContain('DYNAMIC');
    expect(one('DO $$BEGIN RETURN; END$$').kinds).not.toContain('DYNAMIC');
  });

  test('nested DO inside EXECUTE inside DO', () => {
    const s = one("DO $$BEGIN EXECUTE 'DO $x$BEGIN TRUNCATE t; END$x$'; END$$");
    expect(s.kinds).toEqual(expect.arrayContaining(['DO', 'DYNAMIC', 'TRUNCATE']));
  });

  test('a body in another language, or one the parser rejects, is DYNAMIC', () => {
    expect(one("DO LANGUAGE plpython3u 'import os'").kinds).toEqual(['DO', 'DYNAMIC']);
    expect(one('DO $$BEGIN undeclared := 1; END$$').kinds).toEqual(['DO', 'DYNAMIC']);
  });

  test('assignment targets and values are both read', () => {
    const s = one("DO $$DECLARE a int[]; BEGIN a[(SELECT count(*) FROM pg_shadow)] := length(pg_read_file('x')); END$$");
    expect(s.tables).toContain('pg_shadow');
    expect(s.functions).toEqual(expect.arrayContaining(['count', 'length', 'pg_read_file']));
  });

  test('cursor declarations and non-ASCII text', () => {
    const s = one("DO $$DECLARE c CURSOR FOR SELECT * FROM secrets; v text := 'é€'; BEGIN v := 'ü' || pg_ls_dir('.'); END$$");
    expect(s.tables).toContain('secrets');
    expect(s.functions).toContain('pg_ls_dir');
  });

  test('DO is constant-sensitive', () => {
    expect(classifyDetailed('DO $$BEGIN NULL; END$$').constSensitive).toBe(true);
  });
});

describe('CREATE FUNCTION bodies', () => {
  test('plpgsql body with parameters, sliced from a multi-statement string with non-ASCII text', () => {
    const s = all(`SELECT 'ünïcødé'; CREATE FUNCTION f(a int) RETURNS int LANGUAGE plpgsql AS $$
      BEGIN a := a + 1; DELETE FROM orders WHERE id = a; RETURN a; END $$; SELECT 2`);
    expect(s).toHaveLength(3);
    expect(s[1].kinds).toEqual(expect.arrayContaining(['CREATE', 'DELETE']));
    expect(s[1].tables).toContain('orders');
  });

  test('trigger function with NEW', () => {
    const s = one(`CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN NEW.body := pg_read_file('x'); RETURN NEW; END $$`);
    expect(s.functions).toContain('pg_read_file');
  });

  test('LANGUAGE internal wraps a built-in under a new name', () => {
    expect(one("CREATE FUNCTION r(text) RETURNS text LANGUAGE internal AS 'pg_read_file_off_len'").functions).toContain(
      'pg_read_file_off_len',
    );
  });

  test('a body in C or another language the sidecar cannot read is opaque DYNAMIC (it can wrap any library function)', () => {
    for (const text of [
      "CREATE FUNCTION dx(text, text) RETURNS text LANGUAGE c AS '$libdir/dblink', 'dblink_exec'",
      "CREATE FUNCTION p() RETURNS int LANGUAGE plpython3u AS 'return 1'",
    ]) {
      expect(one(text)).toMatchObject({ kinds: expect.arrayContaining(['DYNAMIC']), opaque: true });
    }
  });

  test('an unparseable SQL body is DYNAMIC', () => {
    expect(one("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'not sql at all'").kinds).toContain('DYNAMIC');
  });
});

describe('DYNAMIC functions', () => {
  test.each([
    ["SELECT query_to_xml('DELETE FROM orders', true, false, '')", ['DELETE'], ['orders']],
    ["SELECT query_to_xmlschema('SELECT * FROM secrets', true, false, '')", [], ['secrets']],
    [
      "SELECT query_to_xml_and_xmlschema(query => 'SELECT * FROM secrets', nulls => true, tableforest => false, targetns => '')",
      [],
      ['secrets'],
    ],
    ["SELECT table_to_xml('public.secrets', true, false, '')", [], ['secrets', 'public.secrets']],
    ["SELECT table_to_xml('\"Secrets\"'::regclass, true, false, '')", [], ['secrets']],
    ["SELECT * FROM ts_stat('SELECT body FROM notes')", [], ['notes']],
    ["SELECT * FROM dblink('dbname=x', 'TRUNCATE t') AS r(a text)", ['TRUNCATE'], ['t']],
    ["SELECT dblink_exec('DELETE FROM a')", ['DELETE'], ['a']],
    ["SELECT dblink_open('c', 'SELECT * FROM secrets')", [], ['secrets']],
    ["SELECT dblink_send_query('conn', 'UPDATE a SET x = 1')", ['UPDATE'], ['a']],
    ["SELECT cron.schedule('0 * * * *', 'VACUUM a')", ['VACUUM'], ['a']],
    ["SELECT query_to_xml('SELECT query_to_xml(''DELETE FROM deep'', true, false, '''')', true, false, '')", ['DELETE'], ['deep']],
  ])('%s', (text, kinds, tables) => {
    const s = one(text);
    expect(s.kind).toBe('SELECT');
    expect(s.kinds).toEqual(expect.arrayContaining(['SELECT', 'DYNAMIC', ...kinds]));
    expect(s.tables).toEqual(expect.arrayContaining(tables));
  });

  test('a query given as a parameter is DYNAMIC and constant-sensitive', () => {
    const d = classifyDetailed("SELECT query_to_xml($1, true, false, '')");
    expect('statements' in d.result && d.result.statements[0].kinds).toEqual(['SELECT', 'DYNAMIC']);
    expect(d.constSensitive).toBe(true);
  });

  test('schedule() without the cron schema is an ordinary function', () => {
    expect(one("SELECT schedule('x')").kinds).toEqual(['SELECT']);
  });
});

describe('tables', () => {
  test.each([
    ['SELECT * FROM a', ['a']],
    ['SELECT * FROM s.a', ['a', 's.a']],
    ['SELECT * FROM db.s.a', ['a', 's.a', 'db.s.a']],
    ['SELECT * FROM "MixedCase"', ['mixedcase']],
    ['SELECT * FROM ONLY a', ['a']],
    ['SELECT * FROM a*', ['a']],
    ['TABLE a', ['a']],
    ['SELECT * FROM a JOIN b USING (id) NATURAL JOIN c', ['a', 'b', 'c']],
    ['SELECT (SELECT 1 FROM a) FROM b WHERE EXISTS (SELECT 1 FROM c)', ['a', 'b', 'c']],
    ['INSERT INTO a SELECT * FROM b', ['a', 'b']],
    ['INSERT INTO a (x) VALUES ((SELECT max(x) FROM b)) RETURNING (SELECT 1 FROM c)', ['a', 'b', 'c']],
    ['UPDATE a SET x = b.x FROM b', ['a', 'b']],
    ['DELETE FROM a USING b', ['a', 'b']],
    ['MERGE INTO a USING b ON true WHEN MATCHED THEN DO NOTHING', ['a', 'b']],
    ['COPY a TO STDOUT', ['a']],
    ['LOCK a, s.b', ['a', 'b', 's.b']],
    ['TRUNCATE a, b', ['a', 'b']],
    ['DROP TABLE a, s.b', ['a', 'b', 's.b']],
    ['DROP VIEW v', ['v']],
    ['DROP TRIGGER trg ON a', ['a']],
    ['DROP POLICY p ON a', ['a']],
    ['ALTER TABLE a ADD COLUMN x int REFERENCES b', ['a', 'b']],
    ['ALTER TABLE a RENAME TO c', ['a']],
    ['ALTER TABLE a SET SCHEMA s', ['a']],
    ["COMMENT ON COLUMN s.a.x IS 'c'", ['a', 's.a']],
    ['GRANT SELECT ON a, b TO r', ['a', 'b']],
    ['VACUUM a, b', ['a', 'b']],
    ['CREATE TABLE a (LIKE b)', ['a', 'b']],
    ['CREATE INDEX i ON a (x)', ['a']],
    ['CREATE TRIGGER t AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f()', ['a']],
    ['CREATE VIEW v AS SELECT * FROM a', ['v', 'a']],
    ['WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT 1 FROM a) SELECT * FROM r', ['a', 'r']],
    ["SELECT 'a'::regclass, 's.\"B\"'::regclass, 'c'::text::regclass", ['a', 'b', 's.b', 'c']],
    ["SELECT * FROM XMLTABLE('/r' PASSING (SELECT x FROM a) COLUMNS c text)", ['a']],
    ["SELECT * FROM JSON_TABLE((SELECT j FROM a), '$[*]' COLUMNS (c text PATH '$.c'))", ['a']],
  ])('%s', (text, tables) => {
    expect(one(text).tables).toEqual(expect.arrayContaining(tables));
  });

  test('identifiers that look like commands are names', () => {
    const s = one('SELECT "delete", "DROP" FROM "DELETE"');
    expect(s.kinds).toEqual(['SELECT']);
    expect(s.tables).toEqual(['delete']);
    expect(s.columns).toEqual(expect.arrayContaining(['delete', 'drop']));
  });
});

describe('functions', () => {
  test.each([
    ['SELECT pg_catalog."pg_read_file"(\'x\')', ['pg_read_file', 'pg_catalog.pg_read_file']],
    ['SELECT U&"pg\\005fread\\005ffile"(\'x\')', ['pg_read_file']],
    ["SELECT * FROM pg_ls_dir('.')", ['pg_ls_dir']],
    ['SELECT * FROM a, LATERAL pg_ls_dir(a.d)', ['pg_ls_dir']],
    ['CALL s.proc(1)', ['proc', 's.proc']],
    ["CREATE TABLE t (a text DEFAULT pg_read_file('x') CHECK (length(a) > lo_import('y')))", ['pg_read_file', 'length', 'lo_import']],
    ['CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW EXECUTE FUNCTION s.trig()', ['trig', 's.trig']],
    ['CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION evt()', ['evt']],
    ['DROP FUNCTION pg_read_file(text)', ['pg_read_file']],
    ['GRANT EXECUTE ON FUNCTION pg_read_file(text) TO r', ['pg_read_file']],
    ['SELECT x FROM a ORDER BY f1(x) LIMIT f2()', ['f1', 'f2']],
    ['SELECT count(*) FILTER (WHERE f1(x)) OVER (PARTITION BY f2(y)) FROM a', ['count', 'f1', 'f2']],
    ['SELECT f1(VARIADIC ARRAY[f2()])', ['f1', 'f2']],
    ["SELECT f(name => 'x')", ['f']],
    ['SELECT x FROM a GROUP BY GROUPING SETS ((f1(x)), (f2(x))) HAVING f3() > 0', ['f1', 'f2', 'f3']],
    ['SELECT * FROM a TABLESAMPLE SYSTEM (f())', ['f']],
    ['SELECT ARRAY[f1()], ROW(f2()), COALESCE(f3(), f4())', ['f1', 'f2', 'f3', 'f4']],
    ["SELECT JSON_OBJECT('k': f())", ['f']],
  ])('%s', (text, functions) => {
    expect(one(text).functions).toEqual(expect.arrayContaining(functions));
  });

  test('COPY to and from programs and server files', () => {
    expect(one("COPY a TO PROGRAM 'gzip > /tmp/x'").functions).toEqual(['copy_program']);
    expect(one("COPY a FROM PROGRAM 'id'").functions).toEqual(['copy_program']);
    expect(one("COPY a FROM '/etc/passwd'").functions).toEqual(['copy_file']);
    expect(one("COPY (SELECT 1) TO '/tmp/x'").functions).toEqual(['copy_file']);
    expect(one('COPY a FROM STDIN').functions).toEqual([]);
    expect(one('COPY a TO STDOUT').functions).toEqual([]);
  });

  test('a column named like a function is not a call', () => {
    expect(one('SELECT pg_read_file FROM a').functions).toEqual([]);
  });
});

describe('columns', () => {
  test('column references anywhere, plain and qualified', () => {
    const s = one('SELECT c.card_number, email FROM customers c WHERE lower(name) = $1 ORDER BY created');
    expect(s.columns).toEqual(expect.arrayContaining(['card_number', 'c.card_number', 'email', 'name', 'created']));
  });

  test('whole-row, star and composite field selection', () => {
    const s = one('SELECT c, c.*, (c).ssn, row_to_json(c) FROM customers c');
    expect(s.columns).toEqual(expect.arrayContaining(['c', 'c.*', '*', 'ssn']));
  });
});

describe('lexical edge cases', () => {
  test('strings, comments and dollar quotes hide nothing and invent nothing', () => {
    const s = one(
      "SELECT 'DROP TABLE a', $$DELETE FROM b$$, E'\\'; DROP TABLE c; --', $t$ $$ $t$ /* DROP /* nested */ TABLE d */ -- DROP TABLE e\n FROM f",
    );
    expect(s.kinds).toEqual(['SELECT']);
    expect(s.tables).toEqual(['f']);
  });

  test('multi-statement strings and empty statements', () => {
    expect(all('SELECT 1;;; ;SELECT 2;').map((s) => s.kind)).toEqual(['SELECT', 'SELECT']);
    expect(all('SELECT 1; DROP TABLE x').map((s) => s.kind)).toEqual(['SELECT', 'DROP']);
    expect(all('')).toEqual([]);
    expect(all(' ; -- nothing')).toEqual([]);
  });

  test('parse errors are reported, never half-classified', () => {
    for (const text of ['DR/**/OP TABLE x', "SELECT 'open", 'SELECT 1; SELEC 2', 'SELECT "a']) {
      const r = classifySql(text);
      expect('parseError' in r && r.parseError.length > 0).toBe(true);
    }
  });
});

describe('what the server does that the tree does not spell out (verified against PostgreSQL 18)', () => {
  test('field selection is a function call: (x).f is f(x)', () => {
    expect(one("SELECT ('/etc/passwd').pg_read_file").functions).toContain('pg_read_file');
    expect(one("SELECT (ARRAY['/etc/passwd'])[1].pg_read_file").functions).toContain('pg_read_file');
    expect(one('SELECT (x).pg_read_file.length FROM t').functions).toEqual(expect.arrayContaining(['pg_read_file', 'length']));
    expect(one('SELECT t.row_to_json FROM t').functions).toContain('row_to_json');
  });

  test('field selection of a DYNAMIC function is DYNAMIC, its literal classified', () => {
    const s = one("SELECT ('DELETE FROM orders').dblink_exec");
    expect(s.kinds).toEqual(expect.arrayContaining(['DYNAMIC', 'DELETE']));
    expect(s.tables).toContain('orders');
  });

  test('SELECT INTO on the first branch of a UNION creates a table', () => {
    for (const text of ['SELECT 1 INTO t UNION SELECT 2 UNION SELECT 3', '(SELECT 1 INTO t) UNION SELECT 2']) {
      const s = one(text);
      expect(s.kind).toBe('CREATE');
      expect(s.kinds).toEqual(['CREATE', 'SELECT']);
    }
  });

  test('text after a NUL is not part of the query', () => {
    expect(all('SELECT 1\u0000; DROP TABLE x').map((s) => s.kind)).toEqual(['SELECT']);
    expect(all('DROP TABLE x\u0000; SELECT 1').map((s) => s.kind)).toEqual(['DROP']);
  });

  test('pageinspect reads a relation named by text', () => {
    expect(one("SELECT * FROM heap_page_items(get_raw_page('secrets', 0))").tables).toContain('secrets');
  });

  test('tablefunc and xml2 run SQL from text', () => {
    expect(one("SELECT * FROM crosstab('SELECT * FROM secrets') AS t(a text)").kinds).toContain('DYNAMIC');
    expect(one("SELECT * FROM connectby('secrets', 'id', 'parent', '1', 0) AS t(a int)").tables).toContain('secrets');
  });
});

describe('fields the session uses for prepared statements and COPY', () => {
  test('PREPARE names the statement and classifies its body alone', () => {
    const s = one('PREPARE Q1 (int) AS WITH d AS (DELETE FROM orders WHERE id = $1 RETURNING id) SELECT * FROM d');
    expect(s.prepares).toBe('q1');
    expect(s.kinds).toEqual(['PREPARE', 'DELETE', 'SELECT']);
    expect(s.preparedBody).toMatchObject({ kind: 'SELECT', kinds: ['SELECT', 'DELETE'], tables: ['d', 'orders'] });
    expect(s.preparedBody?.prepares).toBeUndefined();
  });

  test('EXECUTE is found wherever it runs a prepared statement', () => {
    expect(one('EXECUTE q1(5)').executes).toBe('q1');
    expect(one('EXECUTE "Q1"').executes).toBe('Q1');
    expect(one('EXPLAIN ANALYZE EXECUTE q1').executes).toBe('q1');
    expect(one('CREATE TABLE t AS EXECUTE q1').executes).toBe('q1');
    expect(one('SELECT 1').executes).toBeUndefined();
  });

  test('several EXECUTEs in one statement give a name no statement has', () => {
    const s = one("DO $$BEGIN EXECUTE 'EXECUTE a'; EXECUTE 'EXECUTE b'; END$$");
    expect(s.executes).toBe('a\u0000b');
  });

  test('DEALLOCATE and DISCARD ALL', () => {
    expect(one('DEALLOCATE q1').deallocates).toBe('q1');
    expect(one('DEALLOCATE PREPARE ALL').deallocates).toBe('*');
    expect(one('DISCARD ALL').deallocates).toBe('*');
    expect(one('DISCARD PLANS').deallocates).toBeUndefined();
  });

  test('COPY direction', () => {
    expect(one('COPY t FROM STDIN').copy).toBe('from');
    expect(one('COPY t TO STDOUT').copy).toBe('to');
    expect(one('COPY (SELECT 1) TO STDOUT').copy).toBe('to');
    expect(one('SELECT 1').copy).toBeUndefined();
  });
});

describe('robustness', () => {
  const TOKENS = [
    'SELECT',
    'DELETE',
    'FROM',
    'secrets',
    'DO',
    '$$',
    "'",
    '"',
    ';',
    '(',
    ')',
    '::regclass',
    'query_to_xml',
    "E'\\'",
    '/*',
    '*/',
    '--',
    '\n',
    'BEGIN',
    'END',
    'EXECUTE',
    ',',
    '1',
    'U&"a"',
    '.',
    '*',
  ];

  test('arbitrary input yields statements or a parse error, never an exception', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.array(fc.constantFrom(...TOKENS)).map((t) => t.join(' ')),
        ),
        (text) => {
          const r = classifySql(text);
          expect('statements' in r || typeof r.parseError === 'string').toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('deep nesting is a parse error or a result, not a crash', () => {
    const deep = `SELECT ${'('.repeat(5000)}1${')'.repeat(5000)}`;
    const r = classifySql(deep);
    expect('statements' in r || typeof r.parseError === 'string').toBe(true);
    const nested = `SELECT ${'(SELECT '.repeat(200)}pg_read_file('x')${')'.repeat(200)}`;
    const n = classifySql(nested);
    if ('statements' in n) expect(n.statements[0].functions).toContain('pg_read_file');
  });

  test('SQL nested in strings stops at a fixed depth, as DYNAMIC', () => {
    let sql = 'DELETE FROM deep';
    for (let i = 0; i < 12; i++) sql = `SELECT query_to_xml('${sql.replace(/'/g, "''")}', true, false, '')`;
    const s = one(sql);
    expect(s.kinds).toContain('DYNAMIC');
    expect(s.kinds).not.toContain('DELETE');
  });
});

test('classifying before initClassifier is a clear error', () => {
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fresh = require('./classify') as typeof import('./classify');
    expect(() => fresh.classifySql('SELECT 1')).toThrow(/initClassifier/);
  });
});
