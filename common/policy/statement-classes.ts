// Statement classes: what rules may name in `match.sql.statements` beside single kinds, so a
// policy says "no DDL" once instead of enumerating DROP, ALTER, COMMENT, ... and missing one.
//
// Every statement kind the classifier emits and every built-in function with a side effect
// belongs to exactly one class (statement-classes.test.ts fails otherwise, and checks that
// docs/policy-reference.md shows this table). A statement is in a class when any of its kinds
// (nested ones included) or any function it calls is listed under that class.
//
// The engine lives in common/ and must not import the sidecar's classifier, so the kinds are
// spelled out here; the test compares them with the classifier's SQL_KINDS.

export const STATEMENT_CLASS_NAMES = ['READ', 'WRITE', 'DDL', 'DCL', 'ADMIN', 'FILE'] as const;
export type StatementClass = (typeof STATEMENT_CLASS_NAMES)[number];

export interface StatementClassEntry {
  /** One line for the policy reference. */
  description: string;
  kinds: readonly string[];
  /** Unqualified, lower-case names of built-in functions with a side effect. */
  functions: readonly string[];
}

/** Pseudo-functions the classifier records for `COPY ... FROM/TO 'file'` and `COPY ... PROGRAM`. */
export const COPY_FILE_FUNCTION = 'copy_file';
export const COPY_PROGRAM_FUNCTION = 'copy_program';

export const STATEMENT_CLASSES: Readonly<Record<StatementClass, StatementClassEntry>> = {
  READ: {
    description:
      "Reads data or changes only this session's own state: queries, transactions, cursors, prepared statements, " +
      "LISTEN, RESET/DISCARD (back to the session's start values), large-object reads. DYNAMIC is here because literal SQL text is " +
      'classified by what it contains, and non-literal text matches every restrictive rule anyway.',
    kinds: [
      'SELECT',
      'SHOW',
      'EXPLAIN',
      'COPY',
      'BEGIN',
      'COMMIT',
      'ROLLBACK',
      'SAVEPOINT',
      'RELEASE',
      'PREPARE',
      'EXECUTE',
      'DEALLOCATE',
      'DECLARE',
      'FETCH',
      'MOVE',
      'CLOSE',
      'LISTEN',
      'UNLISTEN',
      'RESET',
      'DISCARD',
      'DYNAMIC',
    ],
    // Large-object reads: listed so every lo_* function has a class.
    functions: ['lo_get', 'loread', 'lo_lseek', 'lo_lseek64', 'lo_tell', 'lo_tell64', 'lo_close'],
  },
  WRITE: {
    description:
      'Changes data or state other sessions see: DML, TRUNCATE, REFRESH, CALL and DO (code run to act), ' +
      'locks (LOCK TABLE, and SELECT ... FOR UPDATE/SHARE, which counts as LOCK), notifications, sequences, large-object writes, dblink_exec.',
    kinds: ['INSERT', 'UPDATE', 'DELETE', 'MERGE', 'TRUNCATE', 'REFRESH', 'CALL', 'DO', 'LOCK', 'NOTIFY'],
    functions: [
      // Sequences.
      'nextval',
      'setval',
      // Large objects (lo_import/lo_export touch server files: FILE).
      'lo_create',
      'lo_creat',
      'lo_open',
      'lo_unlink',
      'lo_put',
      'lo_from_bytea',
      'lowrite',
      'lo_truncate',
      'lo_truncate64',
      // Notifications and logical decoding messages.
      'pg_notify',
      'pg_logical_emit_message',
      // Advisory locks: they block other sessions, like LOCK.
      'pg_advisory_lock',
      'pg_advisory_lock_shared',
      'pg_advisory_xact_lock',
      'pg_advisory_xact_lock_shared',
      'pg_try_advisory_lock',
      'pg_try_advisory_lock_shared',
      'pg_try_advisory_xact_lock',
      'pg_try_advisory_xact_lock_shared',
      'pg_advisory_unlock',
      'pg_advisory_unlock_shared',
      'pg_advisory_unlock_all',
      // Runs a command on another connection.
      'dblink_exec',
    ],
  },
  DDL: {
    description: 'Creates, changes or drops schema objects, or their comments and labels.',
    kinds: ['CREATE', 'ALTER', 'DROP', 'COMMENT', 'SECURITY_LABEL', 'IMPORT'],
    functions: [],
  },
  DCL: {
    description: 'Privileges and ownership: GRANT, REVOKE (also DROP OWNED, ALTER DEFAULT PRIVILEGES), REASSIGN OWNED.',
    kinds: ['GRANT', 'REVOKE', 'REASSIGN'],
    functions: [],
  },
  ADMIN: {
    description:
      'Operates the server or changes settings: SET and set_config, maintenance (VACUUM, ANALYZE, CLUSTER, REINDEX, ' +
      'CHECKPOINT), LOAD, other backends, configuration, WAL and replication control, and OTHER (commands without a kind).',
    kinds: ['SET', 'VACUUM', 'ANALYZE', 'CLUSTER', 'REINDEX', 'CHECKPOINT', 'LOAD', 'OTHER'],
    functions: [
      'set_config',
      'pg_terminate_backend',
      'pg_cancel_backend',
      'pg_reload_conf',
      'pg_rotate_logfile',
      'pg_log_backend_memory_contexts',
      'pg_promote',
      'pg_switch_wal',
      'pg_create_restore_point',
      'pg_backup_start',
      'pg_backup_stop',
      'pg_wal_replay_pause',
      'pg_wal_replay_resume',
      'pg_create_physical_replication_slot',
      'pg_create_logical_replication_slot',
      'pg_drop_replication_slot',
      'pg_copy_physical_replication_slot',
      'pg_copy_logical_replication_slot',
      'pg_replication_slot_advance',
      'pg_sync_replication_slots',
      'pg_logical_slot_get_changes',
      'pg_logical_slot_get_binary_changes',
      'pg_logical_slot_peek_changes',
      'pg_logical_slot_peek_binary_changes',
      'pg_log_standby_snapshot',
      'pg_replication_origin_create',
      'pg_replication_origin_drop',
      'pg_replication_origin_advance',
      'pg_replication_origin_session_setup',
      'pg_replication_origin_session_reset',
      'pg_replication_origin_xact_setup',
      'pg_replication_origin_xact_reset',
      'pg_stat_reset',
      'pg_stat_reset_shared',
      'pg_stat_reset_single_table_counters',
      'pg_stat_reset_single_function_counters',
      'pg_stat_reset_slru',
      'pg_stat_reset_replication_slot',
      'pg_stat_reset_subscription_stats',
      'pg_stat_reset_backend_stats',
      'pg_import_system_collations',
      // Index maintenance (like VACUUM): they write index pages.
      'brin_summarize_new_values',
      'brin_summarize_range',
      'brin_desummarize_range',
      'gin_clean_pending_list',
    ],
  },
  FILE: {
    description:
      'Reads or writes files on the database server, or runs a program there: the server-file functions, ' +
      'lo_import/lo_export, and COPY to or from a file or PROGRAM.',
    kinds: [],
    functions: [
      'pg_read_file',
      'pg_read_binary_file',
      'pg_stat_file',
      'pg_ls_dir',
      // Internal names of the same functions (reachable through CREATE FUNCTION ... LANGUAGE internal).
      'pg_read_file_off_len',
      'pg_read_file_all',
      'pg_read_binary_file_off_len',
      'pg_read_binary_file_all',
      'pg_stat_file_1arg',
      'pg_ls_dir_1arg',
      'pg_ls_logdir',
      'pg_ls_waldir',
      'pg_ls_tmpdir',
      'pg_ls_archive_statusdir',
      'pg_ls_logicalsnapdir',
      'pg_ls_logicalmapdir',
      'pg_ls_replslotdir',
      'pg_ls_summariesdir',
      'lo_import',
      'lo_export',
      // adminpack.
      'pg_file_write',
      'pg_file_rename',
      'pg_file_unlink',
      'pg_file_sync',
      'pg_logdir_ls',
      COPY_FILE_FUNCTION,
      COPY_PROGRAM_FUNCTION,
    ],
  },
};

const CLASS_SET: ReadonlySet<string> = new Set(STATEMENT_CLASS_NAMES);

export function isStatementClass(name: string): name is StatementClass {
  return CLASS_SET.has(name);
}

/** The server-file functions: a rule naming any of them also catches COPY to/from a file or PROGRAM. */
export const FILE_FUNCTIONS: ReadonlySet<string> = new Set(STATEMENT_CLASSES.FILE.functions);

// Each kind and function is in exactly one class (statement-classes.test.ts), so one map each answers both
// "which class is this in" and "is this statement in that class".
const KIND_CLASS = new Map<string, StatementClass>();
const FUNCTION_CLASS = new Map<string, StatementClass>();
for (const c of STATEMENT_CLASS_NAMES) {
  for (const k of STATEMENT_CLASSES[c].kinds) KIND_CLASS.set(k, c);
  for (const f of STATEMENT_CLASSES[c].functions) FUNCTION_CLASS.set(f, c);
}

/** Is a statement with these kinds and functions in the class? Functions are matched by their last name part. */
export function inStatementClass(cls: StatementClass, kinds: readonly string[], functions: readonly string[]): boolean {
  return kinds.some((k) => KIND_CLASS.get(k) === cls) || functions.some((f) => classOfFunction(f) === cls);
}

/** The class of a statement kind (undefined for a kind the table does not know). */
export function classOfKind(kind: string): StatementClass | undefined {
  return KIND_CLASS.get(kind);
}

/** The class of a function with a side effect (by its last name part); undefined for other functions. */
export function classOfFunction(name: string): StatementClass | undefined {
  return FUNCTION_CLASS.get(lastPart(name));
}

function lastPart(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? name : name.slice(dot + 1);
}

/** The class table as Markdown, for docs/policy-reference.md (a test keeps the two equal). */
export function statementClassesMarkdown(): string {
  const rows = STATEMENT_CLASS_NAMES.map((c) => {
    const e = STATEMENT_CLASSES[c];
    const kinds = e.kinds.length > 0 ? e.kinds.map((k) => `\`${k}\``).join(', ') : '—';
    const functions = e.functions.length > 0 ? e.functions.map((f) => `\`${f}\``).join(', ') : '—';
    return `| \`${c}\` | ${e.description} | ${kinds} | ${functions} |`;
  });
  return ['| class | what it covers | statement kinds | side-effect functions |', '|---|---|---|---|', ...rows].join('\n');
}
