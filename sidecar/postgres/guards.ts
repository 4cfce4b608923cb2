// Checks that hold whatever the policy says, because without them a rule could be sidestepped:
// EXECUTE runs what was prepared (judged as such; names the server has not confirmed are refused), and COPY TO cannot
// stream a table whose columns must be masked (COPY rows carry no column descriptions).
import type { Decision, SqlOperation, SqlStatementInfo } from '../../common/policy/types';
import type { TargetMasking } from './row-masking';

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
        return { op, denial: { action: 'deny', reason: `EXECUTE of prepared statement "${s.executes}", which the sidecar has not seen prepared on this connection, is refused` } };
      }
      expanded ??= [...op.statements];
      expanded.push(...p.op.statements);
    }
    if (s.kind === 'COPY' && s.copy === 'to' && ctx.masking && ctx.masking.columnRules.length > 0) {
      const hit = s.tables.find((t) => ctx.masking!.columnRules.some((r) => coversTable(r, t)));
      if (hit) {
        return { op, denial: { action: 'deny', reason: `COPY ... TO of table "${hit}", which has masked columns, is refused; use SELECT so the columns can be masked` } };
      }
    }
  }
  const checked = expanded ? { ...op, statements: expanded } : op;
  if (ctx.readOnly) {
    if (ctx.serverReadOnly !== true) {
      // The policy was reloaded with readOnly after this session started without it.
      return { op: checked, denial: { action: 'deny', reason: 'this target is read-only (readOnly: true) but this session did not start read-only; reconnect' } };
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
 * Could a column rule apply to this table as the statement names it? An unqualified name may live
 * in any schema on the session's search_path, so only a qualified name can rule a schema out.
 */
function coversTable(rule: { schema?: RegExp; table: RegExp }, name: string): boolean {
  const parts = name.split('.');
  const table = parts[parts.length - 1];
  if (!rule.table.test(table)) return false;
  if (rule.schema && parts.length >= 2 && !rule.schema.test(parts[parts.length - 2])) return false;
  return true;
}
