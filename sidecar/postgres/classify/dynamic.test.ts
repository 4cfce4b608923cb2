// DYNAMIC calls whose SQL text we cannot see are marked opaque (the engine then assumes the
// worst); literal text is classified and is not opaque. COPY to/from a file or PROGRAM is recorded
// as the pseudo-functions the FILE class and server-file rules catch.
import type { SqlStatementInfo } from '../../../common/policy/types';
import { classifySql, initClassifier } from './classify';

beforeAll(() => initClassifier());

function one(text: string): SqlStatementInfo {
  const r = classifySql(text);
  if ('parseError' in r) throw new Error(r.parseError);
  expect(r.statements).toHaveLength(1);
  return r.statements[0];
}

test.each([
  "SELECT query_to_xml($1, true, false, '')",
  "SELECT query_to_xml(q, true, false, '') FROM queries",
  "SELECT query_to_xml('SELECT 1' || '', true, false, '')",
  "SELECT dblink('dbname=crm', format('DELETE FROM %I', 'orders'))",
  "SELECT dblink_exec('dbname=crm', $1)",
  'SELECT q.query_to_xml FROM queries q',
  "DO $$ DECLARE t text := 'orders'; BEGIN EXECUTE format('DELETE FROM %I', t); END $$",
  "DO $$ DECLARE s text := 'DELETE FROM orders'; BEGIN EXECUTE s; END $$",
  "DO $$ BEGIN RETURN QUERY EXECUTE 'SEL' || 'ECT 1'; END $$",
  "DO LANGUAGE plpython3u $$ plpy.execute('DELETE FROM orders') $$",
  "SELECT query_to_xml('SELECT (((((((' , true, false, '')",
])('opaque: %s', (text) => {
  const s = one(text);
  expect(s.kinds).toContain('DYNAMIC');
  expect(s.opaque).toBe(true);
});

test.each([
  ["SELECT query_to_xml('DELETE FROM orders', true, false, '')", 'DELETE'],
  ["SELECT dblink_exec('dbname=crm', 'DROP TABLE orders')", 'DROP'],
  ["SELECT table_to_xml('public.secrets', true, false, '')", 'DYNAMIC'],
  ["DO $$ BEGIN EXECUTE 'TRUNCATE orders'; END $$", 'TRUNCATE'],
  ["DO $$ DECLARE r record; BEGIN EXECUTE 'DELETE FROM orders WHERE id = $1' USING r.id; END $$", 'DELETE'],
])('seen, not opaque: %s', (text, kind) => {
  const s = one(text);
  expect(s.kinds).toContain(kind);
  expect(s.opaque).toBeUndefined();
});

test('COPY to or from a server file or PROGRAM is recorded as copy_file / copy_program', () => {
  expect(one("COPY orders TO '/tmp/x.csv'").functions).toContain('copy_file');
  expect(one("COPY orders FROM '/etc/passwd'").functions).toContain('copy_file');
  expect(one("COPY (SELECT 1) TO PROGRAM 'id'").functions).toContain('copy_program');
  expect(one("COPY orders FROM PROGRAM 'cat /etc/passwd'").functions).toContain('copy_program');
  expect(one('COPY orders TO STDOUT').functions).toEqual([]);
});
