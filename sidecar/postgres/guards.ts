// Checks that hold whatever the policy says, because without them a rule could be sidestepped:
// EXECUTE runs what was prepared (judged as such; names the server has not confirmed are refused),
// a COPY TO whose columns must be masked runs only in a format the sidecar can mask by column, the
// planner's statistics (sample values of every column) are not readable where columns are masked,
// and a readOnly target's session cannot be switched read-write.
import type { Decision, SqlOperation, SqlStatementInfo } from '../../common/policy/types';
import { isSafeClientEncoding } from './startup-params';
import { STATEMENT_CLASSES, STATEMENT_CLASS_NAMES } from '../../common/policy/statement-classes';
import { hasMaskedColumns, protectedRelation, readsProtectedColumn, touchesMaskedColumns, type TargetMasking } from './row-masking';

/** Functions whose argument leaves by another channel than result rows (a notification, a reported setting). */
const SIDE_CHANNEL_FUNCTIONS = ['pg_notify', 'set_config'];
/** pageinspect functions that read raw pages of a relation named by text (tables, and indexes whose keys are column values). */
const RAW_PAGE_FUNCTIONS = ['get_raw_page', 'bt_page_items', 'bt_multi_page_items'];
/** Catalogs holding sample values of columns (most common values, histogram bounds, MCV lists). */
const STATISTICS_RELATIONS = ['pg_stats', 'pg_statistic', 'pg_stats_ext', 'pg_stats_ext_exprs', 'pg_statistic_ext_data'];

/** The last part of a qualified name (`pg_catalog.pg_stats` → `pg_stats`): rules for built-ins name them bare. */
const unqualified = (name: string): string => name.slice(name.lastIndexOf('.') + 1);

/** A prepared statement by name: known (undefined if there is none the sidecar can vouch for), or still being changed by an unanswered statement. */
export type PreparedLookup = (name: string) => { kind: 'known'; value: { op: SqlOperation } | undefined } | { kind: 'wait' | 'unsure' };

export interface GuardContext {
  prepared: PreparedLookup;
  masking: TargetMasking | undefined;
  /** The target is `readOnly: true`: nothing may turn the session's read-only mode off. */
  readOnly?: boolean;
  /** The server reported default_transaction_read_only = on for this session. */
  serverReadOnly?: boolean;
}

export interface GuardResult {
  /** The operation with every EXECUTE expanded into what it runs. */
  op: SqlOperation;
  denial?: Decision;
}

export function guardStatements(op: SqlOperation, ctx: GuardContext): GuardResult {
  let expanded: SqlStatementInfo[] | undefined;
  for (const s of op.statements) {
    if (s.executes !== undefined) {
      const found = ctx.prepared(s.executes);
      if (found.kind !== 'known') {
        const reason = `EXECUTE of prepared statement "${s.executes}", which a statement not yet answered by the server prepares or deallocates, is refused; send it after the previous results arrive`;
        return { op, denial: { action: 'deny', reason } };
      }
      const p = found.value;
      if (!p) {
        return {
          op,
          denial: {
            action: 'deny',
            reason: `EXECUTE of prepared statement "${s.executes}", which the sidecar has not seen prepared on this connection, is refused`,
          },
        };
      }
      expanded ??= [...op.statements];
      expanded.push(...p.op.statements);
    }
    const masking = ctx.masking;
    if (masking && masking.columnRules.length > 0) {
      const stats = s.tables.find((t) => STATISTICS_RELATIONS.includes(unqualified(t)));
      if (stats) {
        return {
          op,
          denial: {
            action: 'deny',
            reason: `reading planner statistics ("${stats}") is refused: they hold sample values of columns this target masks`,
          },
        };
      }
      if (s.opaque === true) {
        // What it runs could store masked columns in a table or function read back unmasked later.
        return {
          op,
          denial: {
            action: 'deny',
            reason:
              'SQL text the sidecar cannot see (EXECUTE of a computed string, a non-literal DYNAMIC call) is refused where columns are masked: it could copy them where masking no longer applies',
          },
        };
      }
      // CREATE OPERATOR / AGGREGATE / CAST over a side-effect built-in: later statements call it without naming it.
      const defined =
        (s.kind === 'CREATE' || s.kind === 'ALTER') && s.tables.length === 0
          ? s.functions.find((f) => SIDE_EFFECT_FUNCTIONS.has(unqualified(f)))
          : undefined;
      if (defined !== undefined && s.definesFunction !== true) {
        return {
          op,
          denial: {
            action: 'deny',
            reason: `an object that calls ${defined}() is refused where columns are masked: used on a masked column, it would store or send the value where masking no longer applies`,
          },
        };
      }
      const effect = s.definesFunction === true ? functionSideEffect(s) : undefined;
      if (effect !== undefined) {
        return {
          op,
          denial: {
            action: 'deny',
            reason: `a function whose body ${effect} is refused where columns are masked: called with a masked column, it would store or send the value where masking no longer applies`,
          },
        };
      }
      const triggered = s.triggers?.find((t) => hasMaskedColumns(masking, t));
      if (triggered) {
        return {
          op,
          denial: {
            action: 'deny',
            reason: `a trigger on "${triggered}" is refused: its function would get whole rows, masked columns included`,
          },
        };
      }
      const renamed = renamesMasked(s, masking);
      if (renamed)
        return {
          op,
          denial: {
            action: 'deny',
            reason: `renaming or moving "${renamed}" is refused: the masking rules name it, and under another name its columns would be read unmasked`,
          },
        };
      // Values longer than ~2 kB are stored out of line, in the table's TOAST relation, which the
      // superuser can read directly (chunk_data) under a name no rule uses.
      // The server's files hold the tables' data as stored (the heap files of masked tables among
      // them): reading them, or running a program that can, is refused. Writing a file is judged by
      // what is written (the side-effect check below).
      const file = s.functions.find((f) => {
        const name = unqualified(f);
        return FILE_READ_FUNCTIONS.has(name) || (name === 'copy_file' && s.copy !== 'to');
      });
      if (file) {
        return {
          op,
          denial: {
            action: 'deny',
            reason: `${file}() is refused where columns are masked: the server's files hold those columns unmasked`,
          },
        };
      }
      const raw = s.functions.find((f) => RAW_PAGE_FUNCTIONS.includes(unqualified(f)));
      if (raw) {
        return {
          op,
          denial: {
            action: 'deny',
            reason: `${raw}() is refused where columns are masked: raw table and index pages hold those columns unmasked`,
          },
        };
      }
      const toast = s.tables.find((t) => t.startsWith('pg_toast.') || unqualified(t).startsWith('pg_toast_'));
      if (toast) {
        return {
          op,
          denial: {
            action: 'deny',
            reason: `reading a TOAST relation ("${toast}") is refused where columns are masked: it holds long values of those columns`,
          },
        };
      }
      const stored = storesMaskedData(s, masking);
      if (stored) return { op, denial: { action: 'deny', reason: stored } };
      // Any side effect fed a masked value can be read back from what it changed (a large object, a
      // sequence, a lock, a notification, a setting).
      const side = s.functions.find((f) => SIDE_CHANNEL_FUNCTIONS.includes(unqualified(f)) || SIDE_EFFECT_FUNCTIONS.has(unqualified(f)));
      if (side && readsProtectedColumn(masking, [s])) {
        return {
          op,
          denial: {
            action: 'deny',
            reason: `${side}() in a statement that reads masked columns is refused: what it changes would carry the masked value unmasked`,
          },
        };
      }
    }
    if (s.kind === 'COPY' && s.copy === 'to' && masking) {
      const denial = guardCopyOut(s, masking);
      if (denial) return { op, denial };
    }
  }
  const checked = expanded ? { ...op, statements: expanded } : op;
  if (ctx.readOnly) {
    if (ctx.serverReadOnly !== true) {
      // The policy was reloaded with readOnly after this session started without it.
      return {
        op: checked,
        denial: { action: 'deny', reason: 'this target is read-only (readOnly: true) but this session did not start read-only; reconnect' },
      };
    }
    const denial = readOnlyDenial(checked.statements);
    if (denial) return { op: checked, denial };
  }
  return { op: checked };
}

/**
 * On a readOnly target, whatever could turn default_transaction_read_only or transaction_read_only
 * off is refused, and so is SQL the sidecar cannot see (it could do the same). The server enforces
 * read-only itself; this keeps the agent from switching that off.
 */
function readOnlyDenial(statements: SqlStatementInfo[]): Decision | undefined {
  for (const s of statements) {
    const why = s.readWrite?.[0] ?? (s.opaque === true ? 'SQL text the sidecar cannot see (it could turn read-only mode off)' : undefined);
    if (why !== undefined) {
      return { action: 'deny', reason: `this target is read-only (readOnly: true): ${why} is refused` };
    }
  }
  return undefined;
}

/**
 * Masking applies to what is read from the tables its rules name. Copying masked columns into another
 * relation (a table, a view, another column) would let them be read back unmasked, so a statement
 * that stores what it reads from masked columns is refused.
 */
function storesMaskedData(s: SqlStatementInfo, masking: TargetMasking): string | undefined {
  if (s.stores && (readsProtectedColumn(masking, [s]) || (s.star && s.tables.some((t) => hasMaskedColumns(masking, t))))) {
    return 'storing data read from masked columns into a table or view is refused: it could be read back unmasked';
  }
  const set = s.setColumns;
  // `*`: a SET value reads a whole row (`SET notes = c::text`, `row(c.*)`).
  const wholeRow = set?.includes('*') === true && s.tables.some((t) => hasMaskedColumns(masking, t));
  // A view over masked columns: its column names are not the protected ones.
  const view = set !== undefined && s.tables.some((t) => protectedRelation(masking, t));
  if (
    set &&
    (wholeRow || view || masking.anyProtectedName || s.kinds.includes('DYNAMIC') || set.some((c) => masking.protectedNames.has(c)))
  ) {
    return 'an UPDATE that copies masked columns into other columns is refused: they could be read back unmasked';
  }
  return undefined;
}

/** Statement kinds a function body may run where columns are masked: reads, the CREATE itself and SET (constants only, as in `SET search_path`). */
const READ_KINDS: ReadonlySet<string> = new Set([...STATEMENT_CLASSES.READ.kinds, 'CREATE', 'SET']);
/** Server-file functions that read files or run a program (which can); COPY FROM a file is checked by its direction. */
const FILE_READ_FUNCTIONS: ReadonlySet<string> = new Set(
  STATEMENT_CLASSES.FILE.functions.filter((f) => f.startsWith('pg_read_') || f === 'lo_import' || f === 'copy_program'),
);
/** Built-in functions with a side effect: every class but READ. */
const SIDE_EFFECT_FUNCTIONS: ReadonlySet<string> = new Set(
  STATEMENT_CLASS_NAMES.filter((c) => c !== 'READ').flatMap((c) => STATEMENT_CLASSES[c].functions),
);

/** What a function body does besides reading (a write, a notification, a setting), or undefined. */
function functionSideEffect(s: SqlStatementInfo): string | undefined {
  const kind = s.kinds.find((k) => !READ_KINDS.has(k));
  if (kind !== undefined) return `runs ${kind}`;
  const fn = s.functions.find((f) => SIDE_EFFECT_FUNCTIONS.has(unqualified(f)));
  return fn !== undefined ? `calls ${fn}()` : undefined;
}

/**
 * The table, schema or column a rename or SET SCHEMA takes away from a name the masking rules use
 * (rules follow names; the catalog then reports the new one), or undefined.
 */
function renamesMasked(s: SqlStatementInfo, masking: TargetMasking): string | undefined {
  for (const r of s.renames ?? []) {
    if (r.startsWith('schema:')) {
      const schema = r.slice('schema:'.length);
      // Every rule whose table could live in that schema: unqualified rules match any schema.
      if (masking.columnRules.some((rule) => rule.schema === undefined || rule.schema.test(schema))) return schema;
    } else if (r.startsWith('column:')) {
      const [, column, relation] = /^column:([^:]*):(.*)$/s.exec(r) ?? [];
      if (hasMaskedColumns(masking, relation ?? '') && (masking.anyProtectedName || masking.protectedNames.has(column ?? '')))
        return `${relation}.${column}`;
    } else if (hasMaskedColumns(masking, r)) {
      return r;
    }
  }
  return undefined;
}

/**
 * COPY TO rows carry no column descriptions: the session describes `copyOut.select` to learn them
 * and masks text and CSV rows by column. Binary rows cannot be masked (no types to tell text from
 * numbers, no room for a marker), so a binary COPY that would need it is refused before it starts.
 */
function guardCopyOut(s: SqlStatementInfo, masking: TargetMasking): Decision | undefined {
  const encoding = s.copyOut?.encoding;
  if (encoding !== undefined && !isSafeClientEncoding(encoding) && (masking.columnRules.length > 0 || masking.detectors.length > 0)) {
    // Rows are split and scanned as UTF8. In Shift JIS, Big5 or GBK the second byte of a character
    // can be a delimiter or a backslash the server leaves unescaped, so fields would shift.
    return {
      action: 'deny',
      reason: `COPY ... TO with ENCODING '${encoding}' cannot be masked by the sidecar (this target masks columns or content); leave ENCODING out (the session is UTF8)`,
    };
  }
  const byColumn = touchesMaskedColumns(masking, s);
  if (!byColumn && masking.detectors.length === 0) return undefined;
  if (s.copyOut?.format === 'binary') {
    return {
      action: 'deny',
      reason:
        'COPY ... TO in binary format cannot be masked by the sidecar (this target masks columns or content); use text or CSV format, or SELECT',
    };
  }
  if (byColumn && s.copyOut === undefined) {
    return {
      action: 'deny',
      reason:
        'COPY ... TO that reads masked columns is refused: the sidecar could not tell which columns it writes; use SELECT so the columns can be masked',
    };
  }
  return undefined;
}
