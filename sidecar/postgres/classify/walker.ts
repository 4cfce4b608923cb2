// A generic walk over a libpg-query parse tree (protobuf JSON). It visits every object and array,
// so a node is found wherever the grammar puts it (subqueries, CTEs, DEFAULT/CHECK expressions,
// RETURNING, rule actions, EXPLAIN, COPY (...), PREPARE ...): nothing is hand-listed by position.
//
// Two shapes occur: wrapped nodes `{RangeVar: {...}}` (a field typed `Node`) and bare bodies in
// typed fields (`InsertStmt.relation`, `CallStmt.funccall`, `SelectStmt.larg`...). Bare bodies
// carry no type tag, so what matters for security is recognised by shape (a `relname` string is a
// relation, a `funcname` list is a function name), which works for both.
import { addColumnRef, addQualified, addRangeVar, nameParts, relationNameParts, stringNode, type Collected } from './collect';
import { scanSync } from 'libpg-query';
import type { CopyOutInfo } from '../../../common/policy/types';
import { isDynamicSqlFunction, RELATION_TEXT_FUNCTIONS } from './dynamic';
import { isStatementType, stmtKind } from './kinds';
import {
  alterSystemTurnsOff,
  copyProgramTurnsOff,
  otherSessionCall,
  setConfigTurnsOff,
  transactionTurnsOff,
  variableSetTurnsOff,
} from './read-only';

export interface WalkContext {
  out: Collected;
  /**
   * Set when the classification read the value of a constant (or would have, had a constant been
   * at that place). Normalized text replaces constants by $n, so such a result must not be cached
   * under the normalized text. Shared (by reference) with nested walks.
   */
  flags: { constSensitive: boolean };
  /** Source text of the current top-level statement: the PL/pgSQL parser wants CREATE FUNCTION text. */
  stmtText(): string;
  /** Classifies SQL text found inside this statement into `out`; false if it does not parse. */
  embedSql(sql: string): boolean;
  /** Runs the PL/pgSQL parser over a DO or CREATE FUNCTION text into `out`; false if it fails. */
  embedPlpgsql(source: string): boolean;
}

type Obj = Record<string, unknown>;

/** Relation-like object types whose name lists (DROP/COMMENT/... `objects`) name a relation. */
const RELATION_OBJECTS = new Set([
  'OBJECT_TABLE',
  'OBJECT_VIEW',
  'OBJECT_MATVIEW',
  'OBJECT_FOREIGN_TABLE',
  'OBJECT_SEQUENCE',
  'OBJECT_INDEX',
]);
/** Object types named `table.member`: the relation is every part but the last. */
const RELATION_MEMBER_OBJECTS = new Set(['OBJECT_COLUMN', 'OBJECT_TRIGGER', 'OBJECT_RULE', 'OBJECT_POLICY', 'OBJECT_TABCONSTRAINT']);
const OBJECT_TYPE_FIELDS = ['removeType', 'objtype', 'objectType', 'renameType'];

const COMMAND_TYPES: Record<string, string> = {
  CMD_UPDATE: 'UPDATE',
  CMD_INSERT: 'INSERT',
  CMD_DELETE: 'DELETE',
  CMD_MERGE: 'MERGE',
};

export function walkTree(root: unknown, ctx: WalkContext): void {
  // Explicit stacks (values and their known node types): parse trees can be deep, and a
  // recursive walk would risk the JS stack.
  const values: unknown[] = [root];
  const types: Array<string | undefined> = [undefined];
  while (values.length > 0) {
    const value = values.pop();
    const type = types.pop();
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      for (const item of value) {
        values.push(item);
        types.push(undefined);
      }
      continue;
    }
    const obj = value as Obj;
    if (type === undefined) {
      const wrapped = wrapperKey(obj);
      if (wrapped !== undefined) {
        values.push(obj[wrapped]);
        types.push(wrapped);
        continue;
      }
    }
    visit(type, obj, ctx);
    for (const key in obj) {
      const child = obj[key];
      if (child !== null && typeof child === 'object') {
        values.push(child);
        types.push(undefined);
      }
    }
  }
}

/** `{RangeVar: {...}}` -> 'RangeVar': one key, starting with an upper-case letter. */
function wrapperKey(obj: Obj): string | undefined {
  let only: string | undefined;
  for (const key in obj) {
    if (only !== undefined) return undefined;
    only = key;
  }
  if (only === undefined) return undefined;
  const c = only.charCodeAt(0);
  return c >= 65 && c <= 90 ? only : undefined;
}

function visit(type: string | undefined, obj: Obj, ctx: WalkContext): void {
  const out = ctx.out;
  // Shape-based: these fields appear in bare bodies as well as wrapped nodes.
  if (typeof obj.relname === 'string') addRangeVar(out, obj);
  if (Array.isArray(obj.funcname)) visitFunctionName(obj, nameParts(obj.funcname), ctx);
  // ObjectWithArgs: DROP/ALTER/GRANT ... ON FUNCTION, CREATE CAST ... WITH FUNCTION.
  if (Array.isArray(obj.objname)) addQualified(out.functions, nameParts(obj.objname));
  // MERGE ... WHEN ... THEN UPDATE/DELETE/INSERT.
  if (typeof obj.commandType === 'string') {
    const k = COMMAND_TYPES[obj.commandType];
    if (k !== undefined) out.kinds.add(k);
  }
  // INSERT ... ON CONFLICT DO UPDATE updates rows.
  if (obj.action === 'ONCONFLICT_UPDATE') out.kinds.add('UPDATE');
  // SELECT ... INTO creates a table; seen here too because a UNION keeps it on a bare branch.
  if (obj.intoClause !== undefined) {
    out.stores = true;
    out.kinds.add('CREATE');
    out.kinds.add('SELECT');
  }
  visitObjectNames(obj, out);
  // FROM customers c, (SELECT ...) s, WITH x AS (...): names a bare column reference may read as a whole row.
  const alias = (obj.alias as { aliasname?: unknown } | undefined)?.aliasname;
  if (typeof alias === 'string') out.rowNames.add(alias.toLowerCase());
  if (typeof obj.ctename === 'string') out.rowNames.add(obj.ctename.toLowerCase());
  // A select-list `*` / `c.*` is expanded into plain columns, which RowDescription traces to their table.
  if (Array.isArray(obj.targetList)) {
    for (const t of obj.targetList) {
      const ref = (t as { ResTarget?: { val?: { ColumnRef?: object } } } | null)?.ResTarget?.val?.ColumnRef;
      if (ref !== undefined) expandedStars.add(ref);
    }
  }
  if (type === undefined) return;
  if (isStatementType(type)) {
    out.kinds.add(stmtKind(type, obj));
    visitStore(type, obj, out);
    visitStatement(type, obj, ctx);
    return;
  }
  switch (type) {
    case 'LockingClause':
      // FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE lock rows other sessions then wait on, like LOCK TABLE.
      out.kinds.add('LOCK');
      break;
    case 'ColumnRef': {
      addColumnRef(out, obj.fields);
      const parts = nameParts(obj.fields);
      if (parts[parts.length - 1] === '*') {
        out.star = true;
        if (!expandedStars.has(obj)) out.starInExpr = true;
      }
      const selected = parts.slice(1);
      addFieldSelections(out, selected);
      // `t.query_to_xml` runs query_to_xml(t): its text is a value we cannot see.
      if (selected.some((n) => isDynamicSqlFunction([n]))) markOpaque(out);
      break;
    }
    case 'A_Indirection': {
      // (c).card_number: a field selected from a composite value.
      const names = nameParts(obj.indirection);
      addFieldSelections(out, names);
      for (const s of names) if (s !== '*') out.columns.add(s);
      // ('DELETE FROM t').dblink_exec is dblink_exec('DELETE FROM t').
      if (names.length > 0 && isDynamicSqlFunction([names[0]])) visitDynamicCall([obj.arg], ctx);
      break;
    }
    case 'JoinExpr':
      for (const s of nameParts(obj.usingClause)) out.columns.add(s);
      break;
    case 'TypeCast':
      visitTypeCast(obj, ctx);
      break;
  }
}

/**
 * PostgreSQL reads field selection as a call when no such field exists: `('/etc/passwd').pg_read_file`
 * runs pg_read_file('/etc/passwd'), and `t.f` runs f(t). So every selected name (all but the first
 * part of a qualified column reference) is also recorded as a function: a column that shares a
 * denied function's name is denied when written qualified, rather than a call slipping through.
 */
function addFieldSelections(out: Collected, names: string[]): void {
  for (const n of names) if (n !== '*') out.functions.add(n);
}

function visitStatement(type: string, obj: Obj, ctx: WalkContext): void {
  const out = ctx.out;
  switch (type) {
    case 'CopyStmt':
      // COPY t FROM writes rows into t; COPY t TO reads all of t. The file name is a constant, and
      // `FROM ''` parses like `FROM STDIN` (protobuf omits empty strings): never shared by normalized text.
      ctx.flags.constSensitive = true;
      if (obj.is_from === true) out.kinds.add('INSERT');
      else if (obj.relation !== undefined) out.kinds.add('SELECT');
      if (obj.is_program === true) {
        out.functions.add('copy_program');
        addReadWrite(out, copyProgramTurnsOff());
      } else if (typeof obj.filename === 'string') out.functions.add('copy_file');
      else if (obj.is_from !== true) visitCopyOut(obj, ctx);
      break;
    case 'AlterDefaultPrivilegesStmt': {
      const action = obj.action as Obj | undefined;
      out.kinds.add(action?.is_grant === true ? 'GRANT' : 'REVOKE');
      break;
    }
    case 'DropOwnedStmt':
      out.kinds.add('REVOKE');
      break;
    case 'ReassignOwnedStmt':
      out.kinds.add('ALTER');
      break;
    case 'ImportForeignSchemaStmt':
      out.kinds.add('CREATE');
      break;
    case 'DoStmt':
      visitDo(obj, ctx);
      break;
    case 'ExecuteStmt':
      // Prepared-statement names are identifiers the parser has already case-folded.
      if (typeof obj.name === 'string') out.executes.add(obj.name);
      break;
    case 'DeallocateStmt':
      out.deallocates.add(obj.isall === true || typeof obj.name !== 'string' ? '*' : obj.name);
      break;
    case 'DiscardStmt':
      // DISCARD ALL drops every prepared statement too.
      if (obj.target === 'DISCARD_ALL') out.deallocates.add('*');
      break;
    case 'CreateFunctionStmt':
      visitCreateFunction(obj, ctx);
      break;
    case 'DefineStmt':
      // CREATE OPERATOR / AGGREGATE / TYPE ... (FUNCTION = f, SFUNC = f, ...): the object calls f
      // whenever it is used, without naming it.
      for (const item of Array.isArray(obj.definition) ? obj.definition : []) {
        const d = (item as { DefElem?: { defname?: string; arg?: unknown } } | null)?.DefElem;
        if (d?.defname === undefined || !DEFINED_FUNCTION_OPTIONS.has(d.defname)) continue;
        const arg = d.arg as { TypeName?: { names?: unknown }; List?: { items?: unknown } } | undefined;
        const parts = nameParts(arg?.TypeName?.names ?? arg?.List?.items);
        if (parts.length > 0) addQualified(out.functions, parts);
      }
      break;
    case 'CreateTrigStmt': {
      const name = relationName(obj.relation as Obj | undefined);
      if (name !== undefined) out.triggers.add(name);
      break;
    }
    case 'RenameStmt':
    case 'AlterObjectSchemaStmt':
      visitRename(type, obj, out);
      break;
    case 'AlterSystemStmt':
      addReadWrite(out, alterSystemTurnsOff());
      break;
    case 'VariableSetStmt':
      // `SET x = on` and `SET x = off` normalize to the same text.
      ctx.flags.constSensitive = true;
      addReadWrite(out, variableSetTurnsOff(obj));
      break;
    case 'TransactionStmt':
      ctx.flags.constSensitive = true;
      addReadWrite(out, transactionTurnsOff(obj));
      break;
  }
}

/** DefineStmt options that name a function the defined object calls (operators, aggregates, types, text search). */
const DEFINED_FUNCTION_OPTIONS: ReadonlySet<string> = new Set([
  'function',
  'procedure',
  'restrict',
  'join',
  'sfunc',
  'finalfunc',
  'combinefunc',
  'serialfunc',
  'deserialfunc',
  'msfunc',
  'minvfunc',
  'mfinalfunc',
  'input',
  'output',
  'receive',
  'send',
  'typmod_in',
  'typmod_out',
  'analyze',
  'subscript',
  'start',
  'gettoken',
  'end',
  'lextypes',
  'headline',
  'init',
  'lexize',
]);

/** Renamed object kinds whose name masking rules use: relations, their columns, schemas. */
const RENAMED_RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE']);

/**
 * Masking rules name schemas, tables and columns: a rename takes the data away from the name.
 * Recorded as `schema:<name>`, `column:<column>:<relation>` or the relation as written.
 */
function visitRename(type: string, obj: Obj, out: Collected): void {
  const kind = String(type === 'RenameStmt' ? obj.renameType : obj.objectType);
  if (kind === 'OBJECT_SCHEMA') {
    if (typeof obj.subname === 'string') out.renames.add(`schema:${obj.subname}`);
    return;
  }
  const name = relationName(obj.relation as Obj | undefined);
  if (name === undefined) return;
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- libpg-query's JSON: subname is a string when present
  if (kind === 'OBJECT_COLUMN') out.renames.add(`column:${String(obj.subname ?? '').toLowerCase()}:${name}`);
  else if (RENAMED_RELATIONS.has(kind)) out.renames.add(name);
}

/** A RangeVar's name as written, lower case (`public.customers`). */
function relationName(rel: Obj | undefined | null): string | undefined {
  if (rel === undefined || rel === null) return undefined;
  return ['catalogname', 'schemaname', 'relname']
    .map((k) => rel[k])
    .filter((v): v is string => typeof v === 'string' && v !== '')
    .join('.')
    .toLowerCase();
}

function addReadWrite(out: Collected, why: string | undefined): void {
  if (why !== undefined) out.readWrite.add(why);
}

/**
 * Statements that store what a query reads somewhere column masking no longer applies: a relation,
 * a function body (`SELECT leak()` returns what it reads), a generated column (ALTER TABLE).
 */
const STORING_STATEMENTS = new Set(['CreateTableAsStmt', 'ViewStmt', 'RuleStmt', 'MergeStmt', 'CreateFunctionStmt', 'AlterTableStmt']);

function visitStore(type: string, obj: Obj, out: Collected): void {
  if (STORING_STATEMENTS.has(type)) out.stores = true;
  if (type === 'InsertStmt') {
    // INSERT ... VALUES of constants and parameters stores only what the agent sent.
    const select = (obj.selectStmt as { SelectStmt?: Obj } | undefined)?.SelectStmt;
    if (select !== undefined && (select.valuesLists === undefined || containsNode(select.valuesLists, READING_NODES))) out.stores = true;
    const conflict = obj.onConflictClause as Obj | undefined;
    const target = obj.relation as Obj | undefined;
    // ON CONFLICT DO UPDATE SET ... = EXCLUDED.x stores the proposed row (the agent's own values), unless the table is named so.
    const excludedIsProposed = target?.relname !== 'excluded' && (target?.alias as Obj | undefined)?.aliasname !== 'excluded';
    if (conflict !== undefined) addSetValues(conflict.targetList, out, excludedIsProposed);
  }
  if (type === 'UpdateStmt') addSetValues(obj.targetList, out, false);
}

/** Nodes through which a VALUES list reads stored data (a column, a subquery). */
const READING_NODES: ReadonlySet<string> = new Set(['ColumnRef', 'SubLink']);

/** Does `tree` hold a node of one of `types`? Walked without serializing it: a bulk INSERT's VALUES can be large. */
function containsNode(tree: unknown, types: ReadonlySet<string>): boolean {
  const stack: unknown[] = [tree];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      stack.push(...(v as unknown[]));
      continue;
    }
    for (const k in v) {
      if (types.has(k)) return true;
      stack.push((v as Obj)[k]);
    }
  }
  return false;
}

/** Column names read by SET values (not WHERE: a protected column there filters rows, it is copied nowhere). */
function addSetValues(targetList: unknown, out: Collected, skipExcluded: boolean): void {
  if (!Array.isArray(targetList)) return;
  const values: unknown[] = targetList.map((t) => (t as { ResTarget?: { val?: unknown } } | null)?.ResTarget?.val);
  while (values.length > 0) {
    const v = values.pop();
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      values.push(...(v as unknown[]));
      continue;
    }
    const ref = (v as { ColumnRef?: { fields?: unknown } }).ColumnRef;
    if (ref !== undefined) {
      const names = nameParts(ref.fields);
      if (skipExcluded && names.length === 2 && names[0] === 'excluded') continue;
      for (const n of names) out.setColumns.add(n);
      if (names.length === 1) out.setBareRefs.add(names[0]);
    }
    for (const k in v) values.push((v as Obj)[k]);
  }
}

/** Star column references that a select list expands (not whole-row values); per parse tree. */
const expandedStars = new WeakSet<object>();

/** `COPY t (cols) TO STDOUT` / `COPY (query) TO STDOUT`: what to describe to learn the columns, and the data format. */
function visitCopyOut(obj: Obj, ctx: WalkContext): void {
  let select: string | undefined;
  if (obj.relation !== undefined && obj.relation !== null) {
    const rel = obj.relation as Obj;
    const parts = ['catalogname', 'schemaname', 'relname'].map((k) => rel[k]).filter((v): v is string => typeof v === 'string' && v !== '');
    const cols = Array.isArray(obj.attlist) ? obj.attlist.map(stringNode).filter((v): v is string => v !== undefined) : [];
    select = `SELECT ${cols.length > 0 ? cols.map(quoteIdent).join(', ') : '*'} FROM ${parts.map(quoteIdent).join('.')}`;
  } else if (obj.query !== undefined) {
    // The query as written (its constants matter), so the result must not be shared across constants.
    ctx.flags.constSensitive = true;
    select = parenthesizedQuery(ctx.stmtText());
  }
  if (select === undefined) return;
  const opts = defElems(obj.options);
  const info: CopyOutInfo = { select, format: 'text' };
  if (obj.relation !== undefined && obj.relation !== null && !(Array.isArray(obj.attlist) && obj.attlist.length > 0))
    info.wholeTable = true;
  const format = stringNode(opts.get('format'))?.toLowerCase();
  if (format === 'csv' || format === 'binary') info.format = format;
  for (const k of ['delimiter', 'quote', 'escape', 'null', 'encoding'] as const) {
    const v = stringNode(opts.get(k));
    if (v !== undefined) info[k] = v;
  }
  if (opts.has('header')) info.header = defElemTrue(opts.get('header'));
  ctx.out.copyOut = info;
}

/** HEADER, HEADER true/on/1/match: a bare option has no argument. */
function defElemTrue(arg: unknown): boolean {
  if (arg === undefined || arg === null) return true;
  const b = (arg as { Boolean?: { boolval?: boolean } }).Boolean;
  if (b !== undefined) return b.boolval === true;
  const i = (arg as { Integer?: { ival?: number } }).Integer;
  if (i !== undefined) return (i.ival ?? 0) !== 0;
  const s = stringNode(arg)?.toLowerCase();
  return s !== undefined && s !== 'false' && s !== 'off' && s !== '0';
}

/** The text between COPY's first parenthesis and its match, found with the real scanner (comments, strings). */
function parenthesizedQuery(stmt: string): string | undefined {
  let tokens: Array<{ start: number; end: number; text: string }>;
  try {
    tokens = scanSync(stmt).tokens;
  } catch {
    return undefined;
  }
  const bytes = Buffer.from(stmt, 'utf8');
  let depth = 0;
  let start = -1;
  for (const t of tokens) {
    if (t.text === '(') {
      if (depth === 0) start = t.end;
      depth++;
    } else if (t.text === ')') {
      depth--;
      if (depth === 0 && start >= 0) return bytes.subarray(start, t.start).toString('utf8');
    }
  }
  return undefined;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function visitFunctionName(obj: Obj, parts: string[], ctx: WalkContext): void {
  addQualified(ctx.out.functions, parts);
  if (parts.length === 0) return;
  const args = Array.isArray(obj.args) ? obj.args : [];
  addReadWrite(ctx.out, otherSessionCall(parts));
  if (parts[parts.length - 1] === 'set_config') {
    ctx.flags.constSensitive = true;
    addReadWrite(ctx.out, setConfigTurnsOff(args));
  }
  if (isDynamicSqlFunction(parts)) visitDynamicCall(args, ctx);
  else if (RELATION_TEXT_FUNCTIONS.has(parts[parts.length - 1])) {
    ctx.flags.constSensitive = true;
    for (const arg of args) addRelationLiteral(stringLiteral(arg), ctx);
  }
}

/** False when the text is not a relation name. */
function addRelationLiteral(text: string | undefined, ctx: WalkContext): boolean {
  const rel = text === undefined ? undefined : relationNameParts(text);
  if (rel !== undefined) addQualified(ctx.out.tables, rel);
  return rel !== undefined;
}

/** DYNAMIC whose SQL we cannot see: restrictive rules assume the worst (engine `opaque`). */
function markOpaque(out: Collected): void {
  out.kinds.add('DYNAMIC');
  out.opaque = true;
}

function visitDynamicCall(args: unknown[], ctx: WalkContext): void {
  ctx.out.kinds.add('DYNAMIC');
  // Marked whatever the arguments are: `query_to_xml($1, ...)` and `query_to_xml('...', ...)`
  // normalize to the same text but classify differently.
  ctx.flags.constSensitive = true;
  for (const arg of args) {
    // Any argument that is not a constant may be (or build) the SQL text: `query_to_xml($1, ...)`,
    // `dblink('conn', format(...))`. Which position holds the text differs per function, so every
    // argument must be a constant for the call to count as seen.
    if (!isConstant(arg)) {
      markOpaque(ctx.out);
      continue;
    }
    const text = stringLiteral(arg);
    if (text === undefined) continue;
    // The argument may be a query (query_to_xml) or a relation name (table_to_xml); a literal
    // that is neither (the server may parse what our parser cannot) is text we cannot see.
    if (!ctx.embedSql(text) && !addRelationLiteral(text, ctx)) markOpaque(ctx.out);
  }
}

/** A constant of any type (string, number, boolean, NULL), looking through casts and named arguments. */
function isConstant(node: unknown): boolean {
  let n = node as Obj | undefined;
  for (let i = 0; i < 8 && n !== null && typeof n === 'object'; i++) {
    if (n.A_Const !== undefined) return true;
    const next = (n.TypeCast as Obj | undefined)?.arg ?? (n.NamedArgExpr as Obj | undefined)?.arg;
    if (next === undefined) return false;
    n = next as Obj;
  }
  return false;
}

function visitTypeCast(obj: Obj, ctx: WalkContext): void {
  const typeName = obj.typeName as Obj | undefined;
  const parts = nameParts(typeName?.names);
  if (parts[parts.length - 1] !== 'regclass') return;
  // 'secrets'::regclass names a relation in a constant.
  ctx.flags.constSensitive = true;
  addRelationLiteral(stringLiteral(obj.arg), ctx);
}

/** Name lists of DROP/COMMENT/ALTER ... OWNER/SECURITY LABEL on relation-like objects. */
function visitObjectNames(obj: Obj, out: Collected): void {
  if (obj.objects === undefined && obj.object === undefined) return;
  let objType: string | undefined;
  for (const f of OBJECT_TYPE_FIELDS) {
    if (typeof obj[f] === 'string') {
      objType = obj[f];
      break;
    }
  }
  if (objType === undefined) return;
  const whole = RELATION_OBJECTS.has(objType);
  if (!whole && !RELATION_MEMBER_OBJECTS.has(objType)) return;
  const lists = Array.isArray(obj.objects) ? obj.objects : obj.object !== undefined ? [obj.object] : [];
  for (const item of lists) {
    // Only `{List: {items}}` holds a dotted name; GRANT ... IN SCHEMA lists bare schema Strings.
    const items = (item as { List?: { items?: unknown } } | null)?.List?.items;
    if (!Array.isArray(items)) continue;
    const parts = nameParts(items);
    addQualified(out.tables, whole ? parts : parts.slice(0, -1));
  }
}

function visitDo(obj: Obj, ctx: WalkContext): void {
  // The body is a string constant (normalized to $n).
  ctx.flags.constSensitive = true;
  const opts = defElems(obj.args);
  const language = (stringNode(opts.get('language')) ?? 'plpgsql').toLowerCase();
  const body = stringNode(opts.get('as'));
  // Code we cannot read (another language, or a body our parser rejects) runs unseen: DYNAMIC.
  if (language !== 'plpgsql' || body === undefined || !ctx.embedPlpgsql(`DO ${dollarQuote(body)}`)) markOpaque(ctx.out);
}

function visitCreateFunction(obj: Obj, ctx: WalkContext): void {
  ctx.flags.constSensitive = true;
  ctx.out.definesFunction = true;
  const opts = defElems(obj.options);
  const language = (stringNode(opts.get('language')) ?? 'sql').toLowerCase();
  // AS 'body' is a List of one String (two for C: file, symbol). BEGIN ATOMIC bodies are parsed
  // already (sql_body) and reached by the walk.
  const as = (opts.get('as') as { List?: { items?: unknown[] } } | undefined)?.List?.items ?? [];
  const bodies = as.map(stringNode).filter((s): s is string => s !== undefined);
  if (bodies.length === 0) return;
  let ok = true;
  if (language === 'sql') ok = bodies.every((b) => ctx.embedSql(b));
  else if (language === 'plpgsql') ok = ctx.embedPlpgsql(ctx.stmtText());
  // LANGUAGE internal AS 'pg_read_file_all' wraps a built-in under a new name, and its symbol is
  // not the SQL name rules use (pg_read_file): recorded, and opaque like C (`AS '$libdir/dblink',
  // 'dblink_exec'` wraps any library function) and the other languages, whose code we cannot read.
  else {
    if (language === 'internal') for (const b of bodies) ctx.out.functions.add(b.toLowerCase());
    ok = false;
  }
  if (!ok) markOpaque(ctx.out);
}

function defElems(list: unknown): Map<string, unknown> {
  const m = new Map<string, unknown>();
  if (!Array.isArray(list)) return m;
  for (const item of list) {
    const d = (item as { DefElem?: { defname?: string; arg?: unknown } } | null)?.DefElem;
    if (d?.defname !== undefined) m.set(d.defname, d.arg);
  }
  return m;
}

/** The text of a string constant, looking through casts and named arguments (`q => 'x'::text`). */
export function stringLiteral(node: unknown): string | undefined {
  let n = node as Obj | undefined;
  for (let i = 0; i < 8 && n !== null && typeof n === 'object'; i++) {
    const c = n.A_Const as { sval?: { sval?: string }; isnull?: boolean } | undefined;
    if (c !== undefined) return c.sval !== undefined ? (c.sval.sval ?? '') : undefined;
    const next = (n.TypeCast as Obj | undefined)?.arg ?? (n.NamedArgExpr as Obj | undefined)?.arg;
    if (next === undefined) return undefined;
    n = next as Obj;
  }
  return undefined;
}

/** Wraps text in a dollar quote whose tag does not occur in it. */
export function dollarQuote(text: string): string {
  let tag = '$w$';
  for (let i = 0; text.includes(tag); i++) tag = `$w${i}$`;
  return `${tag}${text}${tag}`;
}
