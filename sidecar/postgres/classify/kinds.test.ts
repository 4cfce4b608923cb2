import { readFileSync } from 'node:fs';
import { SQL_KINDS, isStatementType, stmtKind } from './kinds';

// Every statement type in the @pgsql/types Node union must map to a real kind: OTHER would let a
// statement slip past rules written against kinds.
function nodeUnionStatementTypes(): string[] {
  const dts = readFileSync(require.resolve('@pgsql/types/types.d.ts'), 'utf8');
  const start = dts.indexOf('export type Node =');
  const union = dts.slice(start, dts.indexOf('\n};', start));
  return [...union.matchAll(/^\s+(\w+Stmt): \w+;$/gm)].map((m) => m[1]).filter(isStatementType);
}

test('the Node union has the statement types we expect', () => {
  const types = nodeUnionStatementTypes();
  expect(types.length).toBeGreaterThan(100);
  expect(types).toEqual(expect.arrayContaining(['SelectStmt', 'DoStmt', 'MergeStmt', 'AlterSystemStmt']));
});

test.each(nodeUnionStatementTypes().map((t) => [t]))('%s has a kind', (type) => {
  // Enum fields are always present in libpg-query's JSON; the other fields may be omitted.
  const kind = stmtKind(type, type === 'TransactionStmt' ? { kind: 'TRANS_STMT_BEGIN' } : {});
  expect(SQL_KINDS).toContain(kind);
  expect(kind).not.toBe('OTHER');
});

test('unknown statement types fall back by prefix, then OTHER', () => {
  expect(stmtKind('CreateFutureThingStmt', {})).toBe('CREATE');
  expect(stmtKind('AlterFutureThingStmt', {})).toBe('ALTER');
  expect(stmtKind('DropFutureThingStmt', {})).toBe('DROP');
  expect(stmtKind('FutureStmt', {})).toBe('OTHER');
});

test('field-dependent kinds', () => {
  expect(stmtKind('GrantStmt', { is_grant: true })).toBe('GRANT');
  expect(stmtKind('GrantStmt', {})).toBe('REVOKE');
  expect(stmtKind('SelectStmt', { intoClause: {} })).toBe('CREATE');
  expect(stmtKind('TransactionStmt', { kind: 'TRANS_STMT_PREPARE' })).toBe('COMMIT');
  expect(stmtKind('VacuumStmt', { is_vacuumcmd: true })).toBe('VACUUM');
  expect(stmtKind('FetchStmt', { ismove: true })).toBe('MOVE');
});
