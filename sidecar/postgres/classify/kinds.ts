// Maps PostgreSQL parse-node types (the keys of the @pgsql/types Node union) to the command kinds
// that AccessPolicy rules name in `match.sql.statements`.
//
// Every *Stmt type of the PostgreSQL 18 grammar is listed explicitly so a reviewer can check the
// mapping; a type we do not know (a newer grammar) still gets a kind from its name prefix
// (Create*/Alter*/Drop*) or OTHER, never nothing.

/** All kinds the classifier emits. Rules may name any of these. */
export const SQL_KINDS = [
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'MERGE',
  'COPY',
  'DROP',
  'TRUNCATE',
  'ALTER',
  'CREATE',
  'GRANT',
  'REVOKE',
  'DO',
  'CALL',
  'PREPARE',
  'EXECUTE',
  'DEALLOCATE',
  'SET',
  'RESET',
  'SHOW',
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  'SAVEPOINT',
  'RELEASE',
  'LOCK',
  'VACUUM',
  'ANALYZE',
  'CLUSTER',
  'REINDEX',
  'REFRESH',
  'COMMENT',
  'SECURITY_LABEL',
  'LISTEN',
  'NOTIFY',
  'UNLISTEN',
  'DISCARD',
  'EXPLAIN',
  'DECLARE',
  'FETCH',
  'MOVE',
  'CLOSE',
  'CHECKPOINT',
  'LOAD',
  'IMPORT',
  'REASSIGN',
  'DYNAMIC',
  'OTHER',
] as const;

export type SqlKind = (typeof SQL_KINDS)[number];

/** Kinds that depend only on the node type. Types needing a field to decide are in `stmtKind`. */
const FIXED: Record<string, SqlKind> = {
  SelectStmt: 'SELECT',
  SetOperationStmt: 'SELECT',
  // RETURN expr / PL/pgSQL assignment: evaluate an expression, i.e. a SELECT.
  ReturnStmt: 'SELECT',
  PLAssignStmt: 'SELECT',
  InsertStmt: 'INSERT',
  UpdateStmt: 'UPDATE',
  DeleteStmt: 'DELETE',
  MergeStmt: 'MERGE',
  CopyStmt: 'COPY',
  TruncateStmt: 'TRUNCATE',
  DoStmt: 'DO',
  CallStmt: 'CALL',
  PrepareStmt: 'PREPARE',
  ExecuteStmt: 'EXECUTE',
  DeallocateStmt: 'DEALLOCATE',
  VariableShowStmt: 'SHOW',
  ConstraintsSetStmt: 'SET',
  LockStmt: 'LOCK',
  ClusterStmt: 'CLUSTER',
  ReindexStmt: 'REINDEX',
  RefreshMatViewStmt: 'REFRESH',
  CommentStmt: 'COMMENT',
  SecLabelStmt: 'SECURITY_LABEL',
  ListenStmt: 'LISTEN',
  NotifyStmt: 'NOTIFY',
  UnlistenStmt: 'UNLISTEN',
  DiscardStmt: 'DISCARD',
  ExplainStmt: 'EXPLAIN',
  DeclareCursorStmt: 'DECLARE',
  ClosePortalStmt: 'CLOSE',
  CheckPointStmt: 'CHECKPOINT',
  LoadStmt: 'LOAD',
  ImportForeignSchemaStmt: 'IMPORT',
  ReassignOwnedStmt: 'REASSIGN',
  // DDL whose type name does not start with Create/Alter/Drop.
  CreatedbStmt: 'CREATE',
  ViewStmt: 'CREATE',
  IndexStmt: 'CREATE',
  RuleStmt: 'CREATE',
  DefineStmt: 'CREATE',
  CompositeTypeStmt: 'CREATE',
  CreateTableAsStmt: 'CREATE',
  RenameStmt: 'ALTER',
  ReplicaIdentityStmt: 'ALTER',
  AlterSystemStmt: 'ALTER',
  AlterDefaultPrivilegesStmt: 'ALTER',
  DropOwnedStmt: 'DROP',
  DropdbStmt: 'DROP',
};

const TRANSACTION: Record<string, SqlKind> = {
  TRANS_STMT_BEGIN: 'BEGIN',
  TRANS_STMT_START: 'BEGIN',
  TRANS_STMT_COMMIT: 'COMMIT',
  TRANS_STMT_ROLLBACK: 'ROLLBACK',
  TRANS_STMT_SAVEPOINT: 'SAVEPOINT',
  TRANS_STMT_RELEASE: 'RELEASE',
  TRANS_STMT_ROLLBACK_TO: 'ROLLBACK',
  // PREPARE TRANSACTION ends the session's transaction and makes its work durable (two-phase
  // commit): it is a COMMIT as far as the session and a policy are concerned, not a PREPARE.
  TRANS_STMT_PREPARE: 'COMMIT',
  TRANS_STMT_COMMIT_PREPARED: 'COMMIT',
  TRANS_STMT_ROLLBACK_PREPARED: 'ROLLBACK',
};

/** True for parse-node type names that are statements (and so carry a kind). */
export function isStatementType(type: string): boolean {
  return type.endsWith('Stmt') && type !== 'RawStmt';
}

/** The kind of one statement node; `body` is the node's fields (protobuf JSON: false/0 omitted). */
export function stmtKind(type: string, body: Record<string, unknown>): SqlKind {
  switch (type) {
    case 'SelectStmt':
      // SELECT ... INTO creates a table, also from the first branch of a UNION.
      return selectInto(body) ? 'CREATE' : 'SELECT';
    case 'GrantStmt':
    case 'GrantRoleStmt':
      return body.is_grant === true ? 'GRANT' : 'REVOKE';
    case 'TransactionStmt':
      return TRANSACTION[String(body.kind)] ?? 'OTHER';
    case 'VariableSetStmt':
      return body.kind === 'VAR_RESET' || body.kind === 'VAR_RESET_ALL' ? 'RESET' : 'SET';
    case 'VacuumStmt':
      return body.is_vacuumcmd === true ? 'VACUUM' : 'ANALYZE';
    case 'FetchStmt':
      return body.ismove === true ? 'MOVE' : 'FETCH';
  }
  const fixed = FIXED[type];
  if (fixed !== undefined) return fixed;
  if (type.startsWith('Create')) return 'CREATE';
  if (type.startsWith('Alter')) return 'ALTER';
  if (type.startsWith('Drop')) return 'DROP';
  return 'OTHER';
}

/**
 * SELECT ... INTO anywhere in a set-operation tree: `SELECT 1 INTO t UNION SELECT 2` keeps the
 * INTO on the (bare, untagged) left branch, and the server creates t.
 */
export function selectInto(body: Record<string, unknown>): boolean {
  const stack: unknown[] = [body];
  while (stack.length > 0) {
    const b = stack.pop() as Record<string, unknown> | null | undefined;
    if (b === null || typeof b !== 'object') continue;
    if (b.intoClause !== undefined) return true;
    stack.push(b.larg, b.rarg);
  }
  return false;
}
