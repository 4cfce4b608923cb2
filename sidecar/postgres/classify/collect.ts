// What a walk over one statement accumulates, and the name helpers that fill it.
// Names are lower-cased: PostgreSQL folds unquoted identifiers, and a quoted "Secrets" matching a
// rule for `secrets` is a false deny we accept rather than a miss.
import type { CopyOutInfo } from '../../../common/policy/types';

export interface Collected {
  kinds: Set<string>;
  tables: Set<string>;
  functions: Set<string>;
  columns: Set<string>;
  /** Prepared-statement names run (`EXECUTE p`, also inside EXPLAIN / CREATE TABLE AS). */
  executes: Set<string>;
  /** Prepared-statement names dropped (`DEALLOCATE p`); `*` for all. */
  deallocates: Set<string>;
  /** Runs SQL text we could not see (DYNAMIC with a non-literal or unreadable text). */
  opaque: boolean;
  /** How the statement could turn a read-only session read-write (read-only.ts), if it could. */
  readWrite: Set<string>;
  /** Relation names and aliases in scope somewhere in the statement (a bare column reference to one is a whole row). */
  rowNames: Set<string>;
  /** One-part column references (`c` in `SELECT c FROM customers c`). */
  bareRefs: Set<string>;
  /** A `*` inside an expression (`to_jsonb(c.*)`): a whole row as one value. */
  starInExpr: boolean;
  copyOut?: CopyOutInfo;
  /** What a RENAME / SET SCHEMA renames or moves (see SqlStatementInfo.renames). */
  renames: Set<string>;
  /** Relations a CREATE TRIGGER attaches a trigger to. */
  triggers: Set<string>;
  /** CREATE FUNCTION / PROCEDURE: the kinds and functions collected include its body's. */
  definesFunction: boolean;
  stores: boolean;
  star: boolean;
  setColumns: Set<string>;
  /** One-part references in UPDATE SET values (a whole row when one names a relation). */
  setBareRefs: Set<string>;
}

export function newCollected(): Collected {
  return {
    kinds: new Set(),
    tables: new Set(),
    functions: new Set(),
    columns: new Set(),
    executes: new Set(),
    deallocates: new Set(),
    opaque: false,
    readWrite: new Set(),
    rowNames: new Set(),
    bareRefs: new Set(),
    starInExpr: false,
    renames: new Set(),
    triggers: new Set(),
    definesFunction: false,
    stores: false,
    star: false,
    setColumns: new Set(),
    setBareRefs: new Set(),
  };
}

/** `sval` of a `{String: {sval}}` node, else undefined. */
export function stringNode(node: unknown): string | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  const s = (node as { String?: { sval?: unknown } }).String;
  if (s === undefined) return undefined;
  // An empty string is omitted from protobuf JSON: `{String: {}}` is ''.
  return typeof s.sval === 'string' ? s.sval : '';
}

/** The identifier parts of a name list (`[{String}, {String}]`); A_Star becomes `*`. */
export function nameParts(list: unknown): string[] {
  const out: string[] = [];
  if (!Array.isArray(list)) return out;
  for (const item of list) {
    const s = stringNode(item);
    if (s !== undefined) out.push(s.toLowerCase());
    else if (item !== null && typeof item === 'object' && 'A_Star' in item) out.push('*');
  }
  return out;
}

/** Adds `rel`, `schema.rel` and `catalog.schema.rel` for the parts given. */
export function addQualified(into: Set<string>, parts: string[]): void {
  if (parts.length === 0) return;
  into.add(parts[parts.length - 1]);
  for (let i = parts.length - 2; i >= 0; i--) into.add(parts.slice(i).join('.'));
}

export function addRangeVar(c: Collected, rv: Record<string, unknown>): void {
  const parts: string[] = [];
  for (const k of ['catalogname', 'schemaname', 'relname']) {
    const v = rv[k];
    if (typeof v === 'string' && v !== '') parts.push(v.toLowerCase());
  }
  addQualified(c.tables, parts);
  if (parts.length > 0) c.rowNames.add(parts[parts.length - 1]);
}

/** Names the UPDATE SET values read; `*` stands for a whole row. */
export function setColumnsOf(c: Collected): string[] {
  const out = new Set(c.setColumns);
  for (const r of c.setBareRefs) if (c.rowNames.has(r)) out.add('*');
  return [...out].sort();
}

/** Does the statement read some row as one value? Only known once the whole tree was walked (aliases follow their use). */
export function readsWholeRow(c: Collected): boolean {
  if (c.starInExpr) return true;
  for (const r of c.bareRefs) if (c.rowNames.has(r)) return true;
  return false;
}

/** Column name (last part) plus the qualified form as written (`c.card_number`, `c.*`). */
export function addColumnRef(c: Collected, fields: unknown): void {
  const parts = nameParts(fields);
  if (parts.length === 0) return;
  c.columns.add(parts[parts.length - 1]);
  if (parts.length > 1) c.columns.add(parts.join('.'));
  else c.bareRefs.add(parts[0]);
}

/** Parses a relation name given as text (`'public.secrets'::regclass`), quoting rules included. */
export function relationNameParts(text: string): string[] | undefined {
  const parts: string[] = [];
  const re = /\s*(?:"((?:[^"]|"")*)"|([^".\s]+))\s*(\.|$)/y;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (m === null) return undefined;
    parts.push(m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]);
    pos = re.lastIndex;
    if (m[3] === '') break;
  }
  return parts.length > 0 && parts.length <= 3 ? parts.map((p) => p.toLowerCase()) : undefined;
}
