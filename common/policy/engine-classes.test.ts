// Rules naming statement classes, SQL the classifier cannot see (opaque DYNAMIC), and server-file
// rules catching COPY to/from a file or program: the engine alone, with hand-built statements.
import { compilePolicy } from './compile';
import { decide } from './engine';
import { validateAccessPolicy } from './schema';
import type { AccessPolicy, Identity, RuleSpec, SqlOperation, SqlStatementInfo } from './types';

const who: Identity = { subject: 'agent', groups: [], source: 'pod' };

function policy(rules: RuleSpec[], defaultAction: 'allow' | 'deny' = 'allow'): ReturnType<typeof compilePolicy> {
  const doc: AccessPolicy = {
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: {
      defaultAction,
      targets: [{ name: 'crm', postgres: { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 15432 } }],
      rules,
    },
  };
  return compilePolicy(doc);
}

function stmt(kinds: string[], extra: Partial<SqlStatementInfo> = {}): SqlOperation {
  return { type: 'sql', target: 'crm', statements: [{ kind: kinds[0], kinds, tables: [], functions: [], columns: [], ...extra }] };
}

test('a class matches by any kind the statement runs', () => {
  const p = policy([{ name: 'no-ddl', action: 'deny', match: { sql: { statements: ['DDL'] } } }]);
  for (const k of ['CREATE', 'ALTER', 'DROP', 'COMMENT', 'SECURITY_LABEL', 'IMPORT']) {
    expect(decide(p, stmt([k]), who)).toMatchObject({ action: 'deny', rule: 'no-ddl' });
  }
  expect(decide(p, stmt(['SELECT', 'CREATE']), who)).toMatchObject({ action: 'deny', rule: 'no-ddl' });
  expect(decide(p, stmt(['SELECT']), who).action).toBe('allow');
});

test('a class matches by a side-effect function, qualified or not', () => {
  const p = policy([
    { name: 'hold-writes', action: 'hold', match: { sql: { statements: ['WRITE'] } } },
    { name: 'no-admin', action: 'deny', match: { sql: { statements: ['ADMIN'] } } },
    { name: 'no-files', action: 'deny', match: { sql: { statements: ['FILE'] } } },
  ]);
  expect(decide(p, stmt(['SELECT'], { functions: ['nextval'] }), who)).toMatchObject({ action: 'hold', rule: 'hold-writes' });
  expect(decide(p, stmt(['SELECT'], { functions: ['pg_catalog.pg_terminate_backend', 'pg_terminate_backend'] }), who)).toMatchObject({
    rule: 'no-admin',
  });
  expect(decide(p, stmt(['SELECT'], { functions: ['set_config'] }), who)).toMatchObject({ rule: 'no-admin' });
  expect(decide(p, stmt(['SELECT'], { functions: ['lo_export'] }), who)).toMatchObject({ rule: 'no-files' });
  expect(decide(p, stmt(['COPY', 'SELECT'], { functions: ['copy_program'] }), who)).toMatchObject({ rule: 'no-files' });
  expect(decide(p, stmt(['SELECT'], { functions: ['lower'] }), who).action).toBe('allow');
});

test('kinds and classes mix in one list; class names are case-insensitive like kinds', () => {
  const p = policy([{ name: 'r', action: 'deny', match: { sql: { statements: ['dcl', 'DELETE'] } } }]);
  expect(decide(p, stmt(['REVOKE']), who)).toMatchObject({ rule: 'r' });
  expect(decide(p, stmt(['DELETE']), who)).toMatchObject({ rule: 'r' });
  expect(decide(p, stmt(['UPDATE']), who).action).toBe('allow');
});

test('rules on server-file functions also catch COPY to/from a file or PROGRAM', () => {
  for (const functions of [['pg_read_file'], ['pg_catalog.lo_import'], ['pg_ls_*']]) {
    const p = policy([{ name: 'files', action: 'deny', match: { sql: { functions } } }]);
    expect(decide(p, stmt(['COPY', 'INSERT'], { functions: ['copy_file'] }), who)).toMatchObject({ action: 'deny', rule: 'files' });
    expect(decide(p, stmt(['COPY', 'SELECT'], { functions: ['copy_program'] }), who)).toMatchObject({ action: 'deny', rule: 'files' });
    expect(decide(p, stmt(['COPY', 'SELECT']), who).action).toBe('allow');
  }
  // An allow rule on pg_read_file does not start allowing COPY ... PROGRAM.
  const allowRead = policy([{ name: 'read-files', action: 'allow', match: { sql: { functions: ['pg_read_file'] } } }], 'deny');
  expect(decide(allowRead, stmt(['COPY', 'SELECT'], { functions: ['copy_program'] }), who).action).toBe('deny');
  // A rule on other functions does not.
  const other = policy([{ name: 'seq', action: 'deny', match: { sql: { functions: ['nextval'] } } }]);
  expect(decide(other, stmt(['COPY', 'INSERT'], { functions: ['copy_file'] }), who).action).toBe('allow');
});

test('opaque DYNAMIC matches every deny and hold rule that names statements, classes, tables or functions', () => {
  const opaque = stmt(['SELECT', 'DYNAMIC'], { functions: ['query_to_xml'], opaque: true });
  for (const sql of [{ statements: ['DROP'] }, { statements: ['FILE'] }, { functions: ['pg_read_file'] }, { tables: ['secrets'] }]) {
    expect(decide(policy([{ name: 'r', action: 'deny', match: { sql } }]), opaque, who)).toMatchObject({ action: 'deny', rule: 'r' });
    expect(decide(policy([{ name: 'r', action: 'hold', match: { sql } }]), opaque, who)).toMatchObject({ action: 'hold', rule: 'r' });
  }
  // The same statement with its text seen matches none of them.
  const seen = stmt(['SELECT', 'DYNAMIC'], { functions: ['query_to_xml'] });
  expect(decide(policy([{ name: 'r', action: 'deny', match: { sql: { statements: ['DROP'] } } }]), seen, who).action).toBe('allow');
});

test('for opaque DYNAMIC an earlier allow rule does not hide a later deny or hold', () => {
  const opaque = stmt(['SELECT', 'DYNAMIC'], { functions: ['query_to_xml'], opaque: true });
  const p = policy(
    [
      { name: 'reads', action: 'allow', match: { sql: { statements: ['SELECT'] } } },
      { name: 'hold-deletes', action: 'hold', match: { sql: { statements: ['DELETE'] } } },
      { name: 'no-drop', action: 'deny', match: { sql: { statements: ['DROP'] } } },
    ],
    'deny',
  );
  expect(decide(p, opaque, who)).toMatchObject({ action: 'deny', rule: 'no-drop' });
  const holdOnly = policy([
    { name: 'reads', action: 'allow', match: { sql: { statements: ['READ'] } } },
    { name: 'hold-deletes', action: 'hold', match: { sql: { statements: ['DELETE'] } } },
  ]);
  expect(decide(holdOnly, opaque, who)).toMatchObject({ action: 'hold', rule: 'hold-deletes' });
});

test('an allow rule with SQL criteria vouches for opaque DYNAMIC only when it names DYNAMIC', () => {
  const opaque = stmt(['SELECT', 'DYNAMIC'], { functions: ['query_to_xml'], opaque: true });
  const reads = policy([{ name: 'reads', action: 'allow', match: { sql: { statements: ['SELECT', 'READ'] } } }], 'deny');
  const d = decide(reads, opaque, who);
  expect(d.action).toBe('deny');
  expect(d.rule).toBeUndefined();
  const dyn = policy([{ name: 'dyn', action: 'allow', match: { sql: { statements: ['DYNAMIC'] } } }], 'deny');
  expect(decide(dyn, opaque, who)).toMatchObject({ action: 'allow', rule: 'dyn' });
  // Naming DYNAMIC does not void the rule's other criteria: tables, other kinds, side-effect functions.
  const onReports = policy([{ name: 'dr', action: 'allow', match: { sql: { statements: ['DYNAMIC'], tables: ['reports'] } } }], 'deny');
  expect(decide(onReports, stmt(['SELECT', 'DYNAMIC'], { tables: ['reports'], opaque: true }), who)).toMatchObject({
    action: 'allow',
    rule: 'dr',
  });
  expect(decide(onReports, stmt(['SELECT', 'DYNAMIC'], { tables: ['secrets'], opaque: true }), who).action).toBe('deny');
  expect(decide(dyn, stmt(['DELETE', 'DYNAMIC'], { opaque: true }), who).action).toBe('deny');
  expect(decide(dyn, stmt(['SELECT', 'DYNAMIC'], { functions: ['query_to_xml', 'nextval'], opaque: true }), who).action).toBe('deny');
  // An allow rule with no SQL criteria (identity or target only) allows everything, opaque included.
  const everyone = policy([{ name: 'all', action: 'allow', match: { target: 'crm' } }], 'deny');
  expect(decide(everyone, opaque, who)).toMatchObject({ action: 'allow', rule: 'all' });
});

test('the schema (warden validate) accepts class names and still names the field of an unknown one', () => {
  const doc = (statements: string[]): unknown => ({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: {
      targets: [{ name: 'crm', postgres: { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 15432 } }],
      rules: [{ name: 'r', action: 'deny', match: { sql: { statements } } }],
    },
  });
  expect(validateAccessPolicy(doc(['READ', 'WRITE', 'DDL', 'DCL', 'ADMIN', 'FILE', 'DROP']))).toMatchObject({ ok: true });
  const bad = validateAccessPolicy(doc(['DDL', 'WRITES']));
  if (bad.ok) throw new Error('expected the document to be invalid');
  const [e] = bad.errors;
  expect(e.path).toBe('spec.rules[0].match.sql.statements[1]');
  expect(e.message).toMatch(/^must be one of: .*READ, WRITE, DDL, DCL, ADMIN, FILE \(got "WRITES"; did you mean "WRITE"\?\)$/);
});

test('an allow rule vouches for the whole statement: every non-read kind named, and with classes every side-effect function', () => {
  const reads = policy([{ name: 'reads', action: 'allow', match: { sql: { statements: ['READ'] } } }], 'deny');
  expect(decide(reads, stmt(['SELECT']), who)).toMatchObject({ action: 'allow', rule: 'reads' });
  expect(decide(reads, stmt(['EXPLAIN', 'SELECT']), who)).toMatchObject({ action: 'allow', rule: 'reads' });
  // A writable CTE, a nextval call, a COPY to a server file: not reads, so the allow does not apply.
  expect(decide(reads, stmt(['SELECT', 'DELETE']), who).action).toBe('deny');
  expect(decide(reads, stmt(['SELECT'], { functions: ['nextval'] }), who).action).toBe('deny');
  expect(decide(reads, stmt(['COPY', 'SELECT'], { functions: ['copy_file'] }), who).action).toBe('deny');
  // Reads inside an allowed write are fine: a subquery in a DELETE.
  const deletes = policy([{ name: 'deletes', action: 'allow', match: { sql: { statements: ['DELETE'] } } }], 'deny');
  expect(decide(deletes, stmt(['DELETE', 'SELECT']), who)).toMatchObject({ action: 'allow', rule: 'deletes' });
  expect(decide(deletes, stmt(['DELETE', 'DROP']), who).action).toBe('deny');
  // Deny rules still match on any kind.
  const noDelete = policy([{ name: 'no-delete', action: 'deny', match: { sql: { statements: ['DELETE'] } } }]);
  expect(decide(noDelete, stmt(['SELECT', 'DELETE']), who)).toMatchObject({ action: 'deny', rule: 'no-delete' });
  // Classes and kinds together.
  const rw = policy([{ name: 'rw', action: 'allow', match: { sql: { statements: ['READ', 'WRITE'] } } }], 'deny');
  expect(decide(rw, stmt(['SELECT', 'DELETE'], { functions: ['nextval'] }), who)).toMatchObject({ action: 'allow', rule: 'rw' });
  expect(decide(rw, stmt(['SELECT'], { functions: ['pg_read_file'] }), who).action).toBe('deny');
});

test('an allow rule naming only kinds does not vouch for side-effect functions either', () => {
  const selects = policy([{ name: 'selects', action: 'allow', match: { sql: { statements: ['SELECT'] } } }], 'deny');
  expect(decide(selects, stmt(['SELECT'], { functions: ['lower'] }), who)).toMatchObject({ action: 'allow', rule: 'selects' });
  expect(decide(selects, stmt(['SELECT'], { functions: ['lo_get'] }), who)).toMatchObject({ action: 'allow', rule: 'selects' });
  for (const f of ['nextval', 'pg_catalog.pg_read_file', 'pg_terminate_backend']) {
    expect(decide(selects, stmt(['SELECT'], { functions: [f] }), who).action).toBe('deny');
  }
  // Naming the class, or allowing the function itself, lets it through.
  const withWrite = policy([{ name: 'sw', action: 'allow', match: { sql: { statements: ['SELECT', 'WRITE'] } } }], 'deny');
  expect(decide(withWrite, stmt(['SELECT'], { functions: ['nextval'] }), who)).toMatchObject({ action: 'allow', rule: 'sw' });
  const seq = policy([{ name: 'seq', action: 'allow', match: { sql: { functions: ['nextval'] } } }], 'deny');
  expect(decide(seq, stmt(['SELECT'], { functions: ['nextval'] }), who)).toMatchObject({ action: 'allow', rule: 'seq' });
});
