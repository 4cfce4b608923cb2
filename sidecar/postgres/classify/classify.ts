// Classifies SQL text with the real PostgreSQL parser (libpg-query, PostgreSQL 18 grammar) into
// the SqlStatementInfo the policy engine matches rules against. Comments, case, quoting, dollar
// quotes, E'' and U&"" escapes are all the parser's business, so what we see is what the server
// will run. SQL hidden inside strings (DO bodies, function bodies, EXECUTE, query_to_xml('...'))
// is parsed again and merged into the statement that carries it.
import { loadModule, parsePlPgSQLSync, parseSync } from 'libpg-query';
import type { SqlOperation, SqlStatementInfo } from '../../../common/policy/types';
import { newCollected, readsWholeRow, setColumnsOf, type Collected } from './collect';
import { ParserFailure, rethrowFailure } from './failure';
import { MAX_NESTING_DEPTH, nestingDepth } from './prescan';
import { stmtKind } from './kinds';
import { walkPlpgsql } from './plpgsql';
import { walkTree, type WalkContext } from './walker';

/**
 * `parserFailure`: the text was not refused as a syntax error but because parsing it failed or was
 * not attempted (nesting or size limit, stack overflow, out of memory, a crashed or slow parser).
 * Such a statement is denied whatever the target's `unparseable` says.
 */
export type ClassifyResult = { statements: SqlStatementInfo[] } | { parseError: string; parserFailure?: boolean };

/** The refusal of a text nested deeper than the pre-scan allows; a parser failure, not a syntax error. */
export function nestingRefusal(depth: number): { parseError: string; parserFailure: true } {
  return {
    parseError: `the statement nests expressions deeper than the sidecar classifies (estimated ${depth} levels, limit ${MAX_NESTING_DEPTH})`,
    parserFailure: true,
  };
}

export interface DetailedClassification {
  result: ClassifyResult;
  /** The result read a constant's value: it must not be shared between texts that differ only in constants. */
  constSensitive: boolean;
}

/** How deep SQL-in-a-string-in-SQL is followed; deeper nesting is reported as DYNAMIC. */
const MAX_EMBED_DEPTH = 8;

let loading: Promise<void> | undefined;
let loaded = false;
/** Set by the first ParserFailure: this isolate's WASM instance is not trusted again (its owner replaces it). */
let failed: string | undefined;

/** Loads the parser (WASM) once; every classify function needs it. Safe to call repeatedly. */
export function initClassifier(): Promise<void> {
  loading ??= loadModule().then(
    () => {
      loaded = true;
    },
    (err: unknown) => {
      loading = undefined; // allow a retry
      throw err;
    },
  );
  return loading;
}

/** Records a ParserFailure met outside classifyDetailed (normalizing): the instance is not used again. */
export function noteParserFailure(err: ParserFailure): void {
  failed ??= err.message;
}

export function assertClassifierReady(): void {
  if (!loaded) throw new Error('SQL classifier used before initClassifier() resolved');
}

export function classifySql(text: string): ClassifyResult {
  return classifyDetailed(text).result;
}

/** The engine's view of a classified text, for `decide(policy, op, identity)`. */
export function toSqlOperation(target: string, result: ClassifyResult): SqlOperation {
  return 'parseError' in result
    ? { type: 'sql', target, statements: [], parseError: result.parseError }
    : { type: 'sql', target, statements: result.statements };
}

/**
 * Classifies one text. A failure of the parser itself (see ParserFailure) is thrown, never returned:
 * the caller must then stop using this WASM instance (the worker that owns it exits).
 */
export function classifyDetailed(query: string): DetailedClassification {
  assertClassifierReady();
  const text = cString(query);
  const flags = { constSensitive: false };
  // libpg-query rejects '' although the server answers it with EmptyQueryResponse.
  if (text === '') return { result: { statements: [] }, constSensitive: false };
  if (failed !== undefined) throw new ParserFailure(`the SQL parser failed earlier in this process (${failed}) and is not used again`);
  const depth = nestingDepth(text);
  if (depth > MAX_NESTING_DEPTH) return { result: nestingRefusal(depth), constSensitive: false };
  try {
    let tree: ParsedTree;
    try {
      tree = parseSync(text);
    } catch (err) {
      rethrowFailure(err);
      return { result: { parseError: errorMessage(err) }, constSensitive: false };
    }
    return { result: { statements: walkStatements(tree, text, flags) }, constSensitive: flags.constSensitive };
  } catch (err) {
    // The walkers recurse over the tree: a RangeError there is as much a parser failure as one inside it.
    const failure = err instanceof ParserFailure ? err : new ParserFailure(`the SQL parser failed: ${errorMessage(err)}`, { cause: err });
    failed = failure.message;
    throw failure;
  }
}

function walkStatements(tree: ParsedTree, text: string, flags: { constSensitive: boolean }): SqlStatementInfo[] {
  const statements: SqlStatementInfo[] = [];
  for (const raw of tree.stmts ?? []) {
    const out = newCollected();
    const [type, body] = unwrap(raw.stmt);
    const kind = type === undefined ? 'OTHER' : stmtKind(type, body);
    walkTree(raw.stmt, context(out, flags, text, raw, 0));
    const info = toInfo(kind, out);
    if (type === 'PrepareStmt' && typeof body.name === 'string') {
      // The session judges a later EXECUTE by what was prepared, so classify the body alone.
      info.prepares = body.name;
      const inner = newCollected();
      const [innerType, innerBody] = unwrap(body.query);
      walkTree(body.query, context(inner, flags, text, raw, 0));
      info.preparedBody = toInfo(innerType === undefined ? 'OTHER' : stmtKind(innerType, innerBody), inner);
    }
    if (type === 'CopyStmt') info.copy = body.is_from === true ? 'from' : 'to';
    statements.push(info);
  }
  return statements;
}

interface RawStmt {
  stmt?: unknown;
  stmt_location?: number;
  stmt_len?: number;
}
interface ParsedTree {
  stmts?: RawStmt[];
}

function context(out: Collected, flags: { constSensitive: boolean }, text: string, raw: RawStmt, depth: number): WalkContext {
  return {
    out,
    flags,
    stmtText: () => sliceUtf8(text, raw.stmt_location ?? 0, raw.stmt_len ?? 0),
    embedSql: (sql) => embedSql(sql, out, flags, depth + 1),
    embedPlpgsql: (source) => embedPlpgsql(source, out, flags, depth + 1),
  };
}

function embedSql(sql: string, out: Collected, flags: { constSensitive: boolean }, depth: number): boolean {
  if (depth > MAX_EMBED_DEPTH) return false;
  if (sql === '') return true;
  if (nestingDepth(sql) > MAX_NESTING_DEPTH) return false;
  let tree: ParsedTree;
  try {
    tree = parseSync(sql);
  } catch (err) {
    rethrowFailure(err);
    return false;
  }
  for (const raw of tree.stmts ?? []) walkTree(raw.stmt, context(out, flags, sql, raw, depth));
  return true;
}

function embedPlpgsql(source: string, out: Collected, flags: { constSensitive: boolean }, depth: number): boolean {
  if (depth > MAX_EMBED_DEPTH) return false;
  if (nestingDepth(source) > MAX_NESTING_DEPTH) return false;
  let tree: unknown;
  try {
    tree = parsePlPgSQLSync(source);
  } catch (err) {
    rethrowFailure(err);
    return false;
  }
  return walkPlpgsql(tree, {
    sql: (text) => embedSql(text, out, flags, depth + 1),
    parse: (text) => {
      if (nestingDepth(text) > MAX_NESTING_DEPTH) return undefined;
      try {
        return parseSync(text);
      } catch (err) {
        rethrowFailure(err);
        return undefined;
      }
    },
    addKind: (kind) => out.kinds.add(kind),
    markOpaque: () => {
      out.kinds.add('DYNAMIC');
      out.opaque = true;
    },
  });
}

function unwrap(node: unknown): [string | undefined, Record<string, unknown>] {
  if (node !== null && typeof node === 'object') {
    const keys = Object.keys(node);
    if (keys.length === 1) return [keys[0], (node as Record<string, Record<string, unknown>>)[keys[0]] ?? {}];
  }
  return [undefined, {}];
}

function toInfo(kind: string, c: Collected): SqlStatementInfo {
  c.kinds.delete(kind);
  const info: SqlStatementInfo = {
    kind,
    kinds: [kind, ...[...c.kinds].sort()],
    tables: [...c.tables].sort(),
    functions: [...c.functions].sort(),
    columns: [...c.columns].sort(),
  };
  // One name is the normal case. Several (only possible through SQL nested in strings) are joined
  // with NUL, which no identifier contains: the session then finds no such prepared statement and
  // refuses, rather than judging by one of them.
  if (c.executes.size > 0) info.executes = [...c.executes].sort().join('\u0000');
  // Several DEALLOCATEs: forget them all (a later EXECUTE of any is then refused as unknown).
  if (c.deallocates.size > 0) info.deallocates = c.deallocates.size === 1 ? [...c.deallocates][0] : '*';
  if (c.opaque) info.opaque = true;
  if (c.readWrite.size > 0) info.readWrite = [...c.readWrite].sort();
  if (readsWholeRow(c)) info.wholeRow = true;
  if (c.copyOut) info.copyOut = c.copyOut;
  if (c.stores) info.stores = true;
  if (c.renames.size > 0) info.renames = [...c.renames].sort();
  if (c.triggers.size > 0) info.triggers = [...c.triggers].sort();
  if (c.definesFunction) info.definesFunction = true;
  if (c.star) info.star = true;
  if (c.setColumns.size > 0) info.setColumns = setColumnsOf(c);
  return info;
}

/** Parser locations are UTF-8 byte offsets; a length of 0 means "to the end". */
function sliceUtf8(text: string, start: number, len: number): string {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.subarray(start, len > 0 ? start + len : bytes.length).toString('utf8');
}

/**
 * The server reads a query string up to its first NUL (it is a C string in the protocol), so that
 * prefix is what gets classified, whatever follows.
 */
export function cString(text: string): string {
  const nul = text.indexOf('\u0000');
  return nul < 0 ? text : text.slice(0, nul);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
