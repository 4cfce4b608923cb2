// Functions that run SQL handed to them as text (or read whole relations named by text), so the
// statement that calls them does more than its parse tree shows. A call to any of them adds the
// kind DYNAMIC; string-literal arguments are classified too (best effort: a computed string cannot
// be seen, which is why DYNAMIC itself is what a policy should deny).
// Matched on the unqualified, lower-cased name, so `myschema.query_to_xml` counts as well.

export const DYNAMIC_SQL_FUNCTIONS: ReadonlySet<string> = new Set([
  // XML export of query results / relations / whole schemas and databases (core).
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  // Text search functions whose argument is a query to run (core).
  'ts_stat',
  'ts_rewrite',
  // dblink: runs SQL on a (possibly loopback) connection, outside this proxy.
  'dblink',
  'dblink_exec',
  'dblink_open',
  'dblink_fetch',
  'dblink_send_query',
  'dblink_get_result',
  // tablefunc / xml2: build and run SQL from text arguments (a query, or table and column names).
  'crosstab',
  'crosstab2',
  'crosstab3',
  'crosstab4',
  'connectby',
  'xpath_table',
  // Extensions that run SQL text in another backend or later.
  'pg_background_launch',
  'schedule',
  'schedule_in_database',
  'alter_job',
]);

/**
 * Functions in `DYNAMIC_SQL_FUNCTIONS` whose unqualified name is too generic to match alone:
 * they count as DYNAMIC only when called with this schema.
 */
export const DYNAMIC_REQUIRES_SCHEMA: ReadonlyMap<string, string> = new Map([
  ['schedule', 'cron'],
  ['schedule_in_database', 'cron'],
  ['alter_job', 'cron'],
]);

/** `parts` is the lower-cased function name as written (`['cron', 'schedule']`). */
export function isDynamicSqlFunction(parts: string[]): boolean {
  const name = parts[parts.length - 1];
  if (!DYNAMIC_SQL_FUNCTIONS.has(name)) return false;
  const schema = DYNAMIC_REQUIRES_SCHEMA.get(name);
  return schema === undefined || parts[parts.length - 2] === schema;
}

/** Functions that read a relation named by a text argument without running SQL (pageinspect). */
export const RELATION_TEXT_FUNCTIONS: ReadonlySet<string> = new Set(['get_raw_page']);
