// The class table is complete and unambiguous: every statement kind the classifier emits and
// every side-effecting built-in function belongs to exactly one class, and the policy reference
// shows exactly this table. Regenerate the docs table with UPDATE_DOCS=1 after editing the classes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SQL_KINDS } from '../../sidecar/postgres/classify/kinds';
import {
  COPY_FILE_FUNCTION,
  COPY_PROGRAM_FUNCTION,
  inStatementClass,
  STATEMENT_CLASS_NAMES,
  STATEMENT_CLASSES,
  statementClassesMarkdown,
  type StatementClass,
} from './statement-classes';

/** Side-effecting functions the issue names; each must have exactly one class. */
const SIDE_EFFECT_FUNCTIONS = [
  'nextval',
  'setval',
  'lo_create',
  'lo_creat',
  'lo_open',
  'lo_unlink',
  'lo_put',
  'lo_from_bytea',
  'lowrite',
  'lo_truncate',
  'lo_truncate64',
  'lo_import',
  'lo_export',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'set_config',
  'dblink_exec',
  'pg_read_file',
  'pg_read_binary_file',
  'pg_ls_dir',
  'pg_stat_file',
  'pg_advisory_lock',
  'pg_advisory_xact_lock',
  'pg_try_advisory_lock',
  'pg_advisory_unlock_all',
  'pg_notify',
  COPY_FILE_FUNCTION,
  COPY_PROGRAM_FUNCTION,
];

function classesOfKind(kind: string): StatementClass[] {
  return STATEMENT_CLASS_NAMES.filter((c) => STATEMENT_CLASSES[c].kinds.includes(kind));
}

function classesOfFunction(name: string): StatementClass[] {
  return STATEMENT_CLASS_NAMES.filter((c) => STATEMENT_CLASSES[c].functions.includes(name));
}

test('every statement kind the classifier emits belongs to exactly one class', () => {
  const wrong = SQL_KINDS.map((k) => [k, classesOfKind(k)] as const).filter(([, cs]) => cs.length !== 1);
  expect(wrong).toEqual([]);
});

test('the classes list only kinds the classifier emits', () => {
  const known = new Set<string>(SQL_KINDS);
  const listed = STATEMENT_CLASS_NAMES.flatMap((c) => STATEMENT_CLASSES[c].kinds);
  expect(listed.filter((k) => !known.has(k))).toEqual([]);
});

test('every side-effect function the issue names belongs to exactly one class', () => {
  const wrong = SIDE_EFFECT_FUNCTIONS.map((f) => [f, classesOfFunction(f)] as const).filter(([, cs]) => cs.length !== 1);
  expect(wrong).toEqual([]);
});

test('no function is listed twice, and names are unqualified lower case', () => {
  const all = STATEMENT_CLASS_NAMES.flatMap((c) => STATEMENT_CLASSES[c].functions);
  expect(all.filter((f, i) => all.indexOf(f) !== i)).toEqual([]);
  expect(all.filter((f) => f !== f.toLowerCase() || f.includes('.'))).toEqual([]);
});

test('a statement is in a class by any of its kinds or by a side-effect function (qualified or not)', () => {
  expect(inStatementClass('WRITE', ['SELECT'], ['nextval'])).toBe(true);
  expect(inStatementClass('WRITE', ['SELECT'], ['pg_catalog.nextval'])).toBe(true);
  expect(inStatementClass('READ', ['SELECT'], ['nextval'])).toBe(true);
  expect(inStatementClass('DDL', ['SELECT'], ['nextval'])).toBe(false);
  expect(inStatementClass('DDL', ['SELECT', 'CREATE'], [])).toBe(true);
  expect(inStatementClass('FILE', ['COPY', 'SELECT'], [COPY_PROGRAM_FUNCTION])).toBe(true);
  expect(inStatementClass('ADMIN', ['SELECT'], ['set_config'])).toBe(true);
});

test('docs/policy-reference.md shows exactly the class table in the code', () => {
  const file = path.join(__dirname, '../../docs/policy-reference.md');
  const doc = fs.readFileSync(file, 'utf8');
  const re = /(<!-- statement-classes:begin[^\n]*-->\n)([\s\S]*?)(\n<!-- statement-classes:end -->)/;
  const m = re.exec(doc);
  expect(m).not.toBeNull();
  const table = statementClassesMarkdown();
  if (process.env.UPDATE_DOCS === '1' && m![2] !== table) {
    fs.writeFileSync(
      file,
      doc.replace(re, (_all, begin: string, _old: string, end: string) => `${begin}${table}${end}`),
    );
    return;
  }
  expect(m![2]).toBe(table);
});
