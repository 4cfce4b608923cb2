// The bypasses issue 10 lists, as fuzzer programs: run first, every time, each under its own
// class name; the random phase then explores around them.
import type { Step } from './generators';
import type { Msg } from './wire';

const q = (conn: 0 | 1, tag: string, ...sql: string[]): Step => ({
  conn,
  msgs: sql.map((s): Msg => ({ k: 'Query', sql: s })),
  families: sql.map(() => tag),
});
const proto = (conn: 0 | 1, tag: string, ...msgs: Msg[]): Step => ({ conn, msgs, families: msgs.map(() => tag) });

/** Deep enough to overflow libpg-query's stack; dozens of them corrupted the shared parser. */
const DEEP_NOT = `SELECT ${'NOT '.repeat(9000)}true`;
/** A COLLATE chain the server takes but libpg-query fails on (a RangeError, not a syntax error). */
const COLLATE_CHAIN = `SELECT 'a' ${'COLLATE "C" '.repeat(10000)}`;

export interface Seed {
  name: string;
  program: Step[];
}

export const SEEDS: Seed[] = [
  {
    name: '42P05 duplicate-name Parse (sidecar follows the client, not the server)',
    program: [
      proto(0, 'approval', { k: 'Parse', name: 'p', sql: 'DELETE FROM ledger WHERE id = 7' }, { k: 'Sync' }),
      proto(0, 'approval', { k: 'Parse', name: 'p', sql: 'SELECT 1' }, { k: 'Sync' }),
      proto(0, 'approval', { k: 'Bind', portal: '', stmt: 'p', params: [] }, { k: 'Execute', portal: '' }, { k: 'Sync' }),
    ],
  },
  {
    name: 'unparseable tail after DROP (server accepts what the parser rejects)',
    // The parser fails on the tail; the server runs the whole string.
    program: [
      q(0, 'parser', `DROP TABLE canary; ${COLLATE_CHAIN}`),
      q(0, 'parser', ...Array.from({ length: 3 }, () => `DELETE FROM canary; ${DEEP_NOT}`)),
    ],
  },
  {
    name: 'SQL PREPARE approved, then protocol Bind/Execute with other parameters',
    program: [
      q(0, 'approval', 'PREPARE lp(int) AS DELETE FROM ledger WHERE id = $1'),
      q(0, 'approval', 'EXECUTE lp(3)'),
      proto(
        0,
        'approval',
        { k: 'Bind', portal: '', stmt: 'lp', params: ['4'] },
        { k: 'Execute', portal: '' },
        { k: 'Bind', portal: '', stmt: 'lp', params: ['5'] },
        { k: 'Execute', portal: '' },
      ),
    ],
  },
  {
    name: 'protocol statement approved once, executed again with other parameters',
    program: [
      proto(
        0,
        'approval',
        { k: 'Parse', name: 'd', sql: 'DELETE FROM ledger WHERE id = $1' },
        { k: 'Bind', portal: '', stmt: 'd', params: ['8'] },
        { k: 'Execute', portal: '' },
        { k: 'Sync' },
      ),
      proto(0, 'approval', { k: 'Bind', portal: '', stmt: 'd', params: ['9'] }, { k: 'Execute', portal: '' }),
    ],
  },
  {
    // Found by the random phase (FUZZ_SEED=4242): the approver is shown "EXECUTE lp(34)" and row 17 goes.
    name: 'protocol-prepared statement run by SQL EXECUTE (the approver sees only the name and arguments)',
    program: [
      proto(0, 'approval', { k: 'Parse', name: 'lp', sql: 'DELETE FROM ledger WHERE id = 17' }),
      q(0, 'approval', 'EXECUTE lp(34)'),
    ],
  },
  {
    name: 'whole-row references to the masked table (text and binary)',
    program: [
      q(
        0,
        'secret-read',
        'SELECT v FROM vault v',
        'SELECT v.* FROM vault v',
        'SELECT to_jsonb(v) FROM vault v',
        'SELECT row(v.*) FROM vault v',
        'SELECT array_agg(v) FROM vault v',
      ),
      proto(
        0,
        'secret-read',
        { k: 'Parse', name: '', sql: 'SELECT v FROM vault v' },
        { k: 'Bind', portal: '', stmt: '', params: [], binary: true },
        { k: 'Execute', portal: '' },
      ),
      proto(
        0,
        'secret-read',
        { k: 'Parse', name: '', sql: 'SELECT array_agg(secret) FROM vault' },
        { k: 'Bind', portal: '', stmt: '', params: [], binary: true },
        { k: 'Execute', portal: '' },
      ),
    ],
  },
  {
    name: 'reversible transforms of the masked column',
    program: [
      q(
        0,
        'secret-read',
        "SELECT translate(secret, 'abc', 'bcd') FROM vault",
        "SELECT encode(secret::bytea, 'base64') FROM vault",
        'SELECT reverse(secret) FROM vault',
        "SELECT encode(convert_to(secret, 'UTF8'), 'hex') FROM vault",
      ),
    ],
  },
  {
    name: 'card::int error echo (the masked value in an ErrorResponse)',
    program: [q(0, 'secret-read', 'SELECT secret::int FROM vault'), q(0, 'secret-read', 'INSERT INTO fz_u SELECT secret FROM vault')],
  },
  {
    name: 'pg_notify carries the masked value (NotificationResponse)',
    program: [
      q(1, 'secret-read', 'LISTEN fz'),
      q(0, 'secret-read', "SELECT pg_notify('fz', secret) FROM vault WHERE id = 1"),
      q(1, 'secret-read', 'SELECT 1'),
    ],
  },
  {
    name: "set_config('application_name') carries the masked value (ParameterStatus)",
    program: [q(0, 'secret-read', "SELECT set_config('application_name', secret, false) FROM vault WHERE id = 1")],
  },
  {
    name: 'RAISE NOTICE carries the masked value (NoticeResponse)',
    program: [q(0, 'secret-read', "DO $$DECLARE s text; BEGIN SELECT secret INTO s FROM vault WHERE id = 1; RAISE NOTICE '%', s; END$$")],
  },
  {
    name: 'COPY of the masked column (text, csv, binary, query)',
    program: [
      q(
        0,
        'secret-read',
        'COPY vault TO STDOUT',
        'COPY (SELECT note, secret FROM vault) TO STDOUT WITH (FORMAT csv)',
        'COPY vault TO STDOUT WITH (FORMAT binary)',
      ),
    ],
  },
  {
    name: 'masked column written into a large object by a side-effect built-in, read back with lo_get',
    program: [
      q(
        0,
        'secret-read',
        "SELECT lo_from_bytea(4242, convert_to(secret, 'UTF8')) FROM vault WHERE id = 1",
        "SELECT convert_from(lo_get(4242), 'UTF8')",
      ),
    ],
  },
  {
    name: "masked column read from the table's heap file on the server (pg_read_binary_file)",
    program: [q(0, 'secret-read', 'CHECKPOINT', "SELECT encode(pg_read_binary_file(pg_relation_filepath('vault')), 'escape')")],
  },
  {
    name: 'statistics of the masked column (pg_stats)',
    program: [q(0, 'secret-read', 'ANALYZE vault', "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'vault'")],
  },
  {
    name: 'DYNAMIC SQL in a DO block deletes from the canary',
    program: [q(0, 'canary-write', "DO $$BEGIN EXECUTE 'DELETE FROM ' || 'canary'; END$$")],
  },
  {
    name: 'writable CTE and multi-statement strings against the canary',
    program: [
      q(
        0,
        'canary-write',
        'WITH d AS (DELETE FROM canary RETURNING *) SELECT count(*) FROM d',
        "SELECT 'a;'; DELETE FROM canary",
        'SELECT 1; DELETE FROM canary; SELECT 2',
      ),
    ],
  },
  // Found by this fuzzer beyond the list: the masked column read back through an object the
  // agent creates (a view, a table, a function), whose result names the new relation.
  {
    name: 'masked column through a VIEW the agent creates',
    program: [q(0, 'secret-read', 'CREATE VIEW fz_v AS SELECT secret FROM vault', 'SELECT * FROM fz_v')],
  },
  {
    name: 'masked column through a MATERIALIZED VIEW',
    program: [q(0, 'secret-read', 'CREATE MATERIALIZED VIEW fz_m AS SELECT secret FROM vault', 'SELECT * FROM fz_m')],
  },
  {
    name: 'masked column copied by CREATE TABLE AS, then read',
    program: [q(0, 'secret-read', 'CREATE TABLE fz_c AS SELECT secret FROM vault', 'SELECT * FROM fz_c')],
  },
  {
    name: 'masked column through a SQL function the agent creates',
    program: [
      q(0, 'secret-read', "CREATE FUNCTION fz_f() RETURNS text LANGUAGE sql AS 'SELECT secret FROM vault LIMIT 1'", 'SELECT fz_f()'),
    ],
  },
  // Last: on a sidecar that is vulnerable, it breaks the parser for the rest of the process.
  {
    name: 'parser poisoning by deep NOT nesting, then DROP from another connection',
    program: [
      q(0, 'parser', ...Array.from({ length: 60 }, () => DEEP_NOT)),
      q(1, 'parser', 'DROP TABLE canary'),
      q(1, 'parser', 'DELETE FROM canary'),
    ],
  },
];
