// What in a statement would turn a read-only session read-write: the checks behind a postgres
// target's `readOnly: true`. The upstream session starts with default_transaction_read_only = on;
// these find every statement form that could switch it (or transaction_read_only) off, so the
// sidecar refuses them before the server sees them. Values that keep it on pass (drivers send
// `BEGIN READ ONLY` and `SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY`).
import { stringLiteral } from './walker';

/** The settings that make a session or transaction read-only. */
export const READ_ONLY_SETTINGS: ReadonlySet<string> = new Set(['default_transaction_read_only', 'transaction_read_only']);

type Obj = Record<string, unknown>;

/** Spellings PostgreSQL's parse_bool reads as true (case-insensitive). */
const TRUE_WORDS = new Set(['on', 'true', 'yes', '1', 't', 'tr', 'tru', 'y', 'ye']);

/** True only for a constant that PostgreSQL reads as boolean true; anything else may be false. */
function isTrueConstant(node: unknown): boolean {
  const c = (node as { A_Const?: { sval?: { sval?: string }; ival?: { ival?: number }; boolval?: { boolval?: boolean } } } | null)?.A_Const;
  if (c === undefined) {
    const s = stringLiteral(node);
    return s !== undefined && TRUE_WORDS.has(s.trim().toLowerCase());
  }
  if (c.sval !== undefined) return TRUE_WORDS.has((c.sval.sval ?? '').trim().toLowerCase());
  if (c.ival !== undefined) return c.ival.ival === 1;
  if (c.boolval !== undefined) return c.boolval.boolval === true;
  return false;
}

/** `transaction_read_only` options of BEGIN/START TRANSACTION/SET TRANSACTION/SET SESSION CHARACTERISTICS. */
function readWriteOption(options: unknown): boolean {
  if (!Array.isArray(options)) return false;
  for (const o of options) {
    const d = (o as { DefElem?: { defname?: string; arg?: unknown } } | null)?.DefElem;
    if (d?.defname === 'transaction_read_only' && !isTrueConstant(d.arg)) return true;
  }
  return false;
}

/** Why a SET/RESET statement would turn read-only off, or undefined. */
export function variableSetTurnsOff(body: Obj): string | undefined {
  const kind = String(body.kind);
  // RESET ALL returns every setting to its session start value; for default_transaction_read_only
  // that is the startup parameter the sidecar sent (on), and transaction_read_only is not reset.
  if (kind === 'VAR_RESET_ALL') return undefined;
  if (kind === 'VAR_SET_MULTI') {
    return readWriteOption(body.args) ? `SET ${String(body.name)} READ WRITE` : undefined;
  }
  const name = typeof body.name === 'string' ? body.name.toLowerCase() : '';
  if (!READ_ONLY_SETTINGS.has(name)) return undefined;
  if (kind === 'VAR_SET_VALUE' && Array.isArray(body.args) && body.args.length === 1 && isTrueConstant(body.args[0])) return undefined;
  return kind === 'VAR_RESET' ? `RESET ${name}` : `SET ${name}`;
}

/** Why BEGIN / START TRANSACTION would start a read-write transaction, or undefined. */
export function transactionTurnsOff(body: Obj): string | undefined {
  const kind = String(body.kind);
  if (kind !== 'TRANS_STMT_BEGIN' && kind !== 'TRANS_STMT_START') return undefined;
  return readWriteOption(body.options) ? 'a READ WRITE transaction' : undefined;
}

/** Why a set_config(name, value, is_local) call could turn read-only off, or undefined. */
export function setConfigTurnsOff(args: unknown[]): string | undefined {
  const name = stringLiteral(args[0]);
  // A computed name could be either setting.
  if (name === undefined) return 'set_config with a setting name that is not a literal';
  if (!READ_ONLY_SETTINGS.has(name.trim().toLowerCase())) return undefined;
  return isTrueConstant(args[1]) ? undefined : `set_config('${name.trim().toLowerCase()}', ...)`;
}

/**
 * Functions that run SQL in another session (dblink's own connection, a background worker, a
 * scheduled job): that session does not start read-only, so the server would not stop a write
 * there. Matched on the unqualified name, except the pg_cron ones (schema `cron`).
 */
const OTHER_SESSION_FUNCTIONS: ReadonlySet<string> = new Set([
  'dblink',
  'dblink_exec',
  'dblink_open',
  'dblink_send_query',
  'dblink_connect',
  'dblink_connect_u',
  'pg_background_launch',
]);
const CRON_FUNCTIONS: ReadonlySet<string> = new Set(['schedule', 'schedule_in_database', 'alter_job']);

/** Why a call runs SQL outside this read-only session, or undefined. `parts` is the lower-cased name as written. */
export function otherSessionCall(parts: string[]): string | undefined {
  const name = parts[parts.length - 1];
  if (OTHER_SESSION_FUNCTIONS.has(name) || (CRON_FUNCTIONS.has(name) && parts[parts.length - 2] === 'cron')) {
    return `${name}(), which runs SQL in another session that is not read-only,`;
  }
  return undefined;
}

/**
 * COPY TO/FROM PROGRAM runs a shell command as the server's OS user, outside this session: the
 * server allows COPY ... TO PROGRAM in a read-only transaction, and the command may write anything
 * (`psql -c 'DELETE ...'`).
 */
export function copyProgramTurnsOff(): string {
  return 'COPY ... PROGRAM, which runs a command outside this read-only session,';
}

/**
 * ALTER SYSTEM is allowed in a read-only transaction, but it rewrites the server's configuration
 * for every later session (settings that run programs, such as archive_command, included).
 */
export function alterSystemTurnsOff(): string {
  return "ALTER SYSTEM, which changes the server's configuration outside this read-only session,";
}
