// Walks a PL/pgSQL parse tree (libpg-query parsePlPgSQLSync) and hands every piece of SQL in it to
// the SQL classifier. PL/pgSQL keeps SQL as text in PLpgSQL_expr nodes; which statement holds the
// expression does not matter (every one is found by the generic walk), except that EXECUTE-style
// statements run a computed string: those add DYNAMIC, and their text is classified too when it is
// a plain string literal.
import { scanSync } from 'libpg-query';
import { rethrowFailure } from './failure';
import { stringLiteral } from './walker';

/** RawParseMode values PL/pgSQL stores with each expression (src/include/parser/parser.h). */
const RAW_PARSE_DEFAULT = 0;
const RAW_PARSE_TYPE_NAME = 1;
const RAW_PARSE_PLPGSQL_EXPR = 2;

export interface PlpgsqlSink {
  /** Classify SQL text into the current result; false if it does not parse. */
  sql(text: string): boolean;
  /** Parse text and return the tree (for looking at an EXECUTE argument), or undefined. */
  parse(text: string): unknown;
  addKind(kind: string): void;
  /** The statement runs SQL text we cannot see (EXECUTE of a computed string). */
  markOpaque(): void;
}

/** Returns false if some SQL inside could not be parsed (the caller adds DYNAMIC). */
export function walkPlpgsql(tree: unknown, sink: PlpgsqlSink): boolean {
  let ok = true;
  const stack: Array<[unknown, string | undefined, string | undefined]> = [[tree, undefined, undefined]];
  while (stack.length > 0) {
    const [value, parentType, key] = stack.pop()!;
    if (Array.isArray(value)) {
      for (const item of value) stack.push([item, parentType, key]);
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    const obj = value as Record<string, unknown>;
    const expr = obj.PLpgSQL_expr as { query?: unknown; parseMode?: unknown } | undefined;
    if (expr !== undefined) {
      const dynamic = key === 'dynquery' || (parentType !== undefined && parentType.includes('dyn'));
      // The expression that yields the SQL text (not the USING parameters).
      const sqlText = key === 'dynquery' || (dynamic && key === 'query');
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- libpg-query's JSON: query is a string when present
      if (!expression(String(expr.query ?? ''), Number(expr.parseMode ?? 0), dynamic, sqlText, sink)) ok = false;
      continue;
    }
    const keys = Object.keys(obj);
    if (keys.length === 1 && /^[A-Z]/.test(keys[0])) {
      // `{PLpgSQL_stmt_x: body}`: the body's fields are seen with their statement type.
      stack.push([obj[keys[0]], keys[0], undefined]);
      continue;
    }
    for (const k in obj) stack.push([obj[k], parentType, k]);
  }
  return ok;
}

function expression(query: string, mode: number, dynamic: boolean, sqlText: boolean, sink: PlpgsqlSink): boolean {
  if (mode === RAW_PARSE_TYPE_NAME) return true;
  if (dynamic) sink.addKind('DYNAMIC');
  if (mode === RAW_PARSE_DEFAULT) return sink.sql(query);
  if (mode === RAW_PARSE_PLPGSQL_EXPR) {
    const text = `SELECT ${query}`;
    if (sqlText) {
      // EXECUTE 'drop table x': the literal is classified as SQL; anything else (a variable,
      // format(...), a concatenation, a literal our parser rejects) runs text we cannot see.
      const tree = sink.parse(text) as { stmts?: Array<{ stmt?: { SelectStmt?: { targetList?: unknown[] } } }> } | undefined;
      const target = tree?.stmts?.[0]?.stmt?.SelectStmt?.targetList;
      const lit = target?.length === 1 ? stringLiteral((target[0] as { ResTarget?: { val?: unknown } }).ResTarget?.val) : undefined;
      if (lit === undefined || !sink.sql(lit)) sink.markOpaque();
    }
    return sink.sql(text);
  }
  // Assignments (`x := expr`, `r.f := expr`, `a[i] := expr`): classify target and value as
  // expressions, split at the top-level `:=` found by the real scanner.
  const split = assignmentSplit(query);
  if (split === undefined) return sink.sql(`SELECT ${query}`);
  return sink.sql(`SELECT ${query.slice(0, split.start)}`) && sink.sql(`SELECT ${query.slice(split.end)}`);
}

function assignmentSplit(query: string): { start: number; end: number } | undefined {
  let depth = 0;
  let tokens;
  try {
    tokens = scanSync(query).tokens;
  } catch (err) {
    rethrowFailure(err);
    return undefined;
  }
  // Scanner offsets are UTF-8 byte offsets.
  const bytes = Buffer.from(query, 'utf8');
  for (const t of tokens) {
    if (t.text === '(' || t.text === '[') depth++;
    else if (t.text === ')' || t.text === ']') depth--;
    else if (depth === 0 && (t.text === ':=' || t.text === '=')) {
      return {
        start: bytes.subarray(0, t.start).toString('utf8').length,
        end: bytes.subarray(0, t.end).toString('utf8').length,
      };
    }
  }
  return undefined;
}
