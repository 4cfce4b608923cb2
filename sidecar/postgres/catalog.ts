// Resolves RowDescription's (table OID, column number) to schema.table.column names, which
// column masking rules are written in. Lookups go over a separate control connection with the
// sidecar's own credentials and are cached: OIDs are stable, names change only with DDL.
import { OBJECT_BYTES, SLOT_BYTES, stringBytes } from './bounded-cache';
import type { ControlConnection } from './control-query';
import type { FieldDescription } from './protocol/backend';

export interface TableInfo {
  schema: string;
  table: string;
  /** Column names by attribute number. */
  columns: Map<number, string>;
  /** A view or materialized view: the base-table columns its definition reads (through other views too). */
  sources?: Array<{ schema: string; table: string; column: string }>;
  /** Tables it inherits from (a partition's parents included): their column rules apply to its columns of the same name. */
  ancestors?: Array<{ schema: string; table: string }>;
}

export interface CatalogOptions {
  connect(): Promise<ControlConnection>;
  ttlMs: number;
  /** Called when cached names may be stale, so whatever was derived from them is dropped too. */
  onInvalidate?: () => void;
  /** After a failed lookup, lookups fail at once for this long instead of reconnecting for every result. */
  retryAfterMs?: number;
  /**
   * Estimated bytes of table entries kept (default 4 MiB): a client creating tables without end
   * cannot grow it further. The oldest entries go first, never those of the load in progress.
   */
  maxBytes?: number;
}

export const DEFAULT_CATALOG_BYTES = 4 * 1024 * 1024;

const DEFAULT_RETRY_AFTER_MS = 5_000;

// OIDs are integers we format ourselves, so inlining them in the simple protocol is safe.
const oidList = (oids: number[]): string => oids.map((o) => String(o >>> 0)).join(',');

const query = (oids: number[]): string => `SELECT c.oid::int8, n.nspname, c.relname, a.attnum, a.attname
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  WHERE c.oid IN (${oidList(oids)})`;

// Views store a query, not data: RowDescription names the view's columns, so masking follows the
// view's dependencies (pg_depend of its rewrite rule) down to base-table columns. A whole-row
// reference (refobjsubid 0) reads every column of the table. `deps(root, rel, att)`: every relation
// and column the views `v` (joined with `rootJoin`, chosen by `rootWhere`) read, through other views too.
const viewDeps = (rootJoin: string, rootWhere: string): string => `WITH RECURSIVE deps(root, rel, att) AS (
    SELECT v.oid, d.refobjid, d.refobjsubid
    FROM pg_catalog.pg_class v${rootJoin}
    JOIN pg_catalog.pg_rewrite r ON r.ev_class = v.oid
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
      AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> v.oid
    WHERE ${rootWhere} AND v.relkind IN ('v', 'm')
  UNION
    SELECT deps.root, d.refobjid, d.refobjsubid
    FROM deps
    JOIN pg_catalog.pg_class c ON c.oid = deps.rel AND c.relkind IN ('v', 'm')
    JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
      AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> c.oid
  )`;

/** The columns `deps.rel` / `deps.att` name (a whole-row reference: all of them). */
const DEPS_COLUMNS = `JOIN pg_catalog.pg_class c ON c.oid = deps.rel
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND NOT a.attisdropped
    AND (a.attnum = deps.att OR (deps.att = 0 AND a.attnum > 0))`;

const viewSources = (oids: number[]): string => `${viewDeps('', `v.oid IN (${oidList(oids)})`)}
  SELECT DISTINCT deps.root::int8, n.nspname, c.relname, a.attname
  FROM deps
  ${DEPS_COLUMNS}`;

/** A view or materialized view of the database and the base-table columns it reads. */
export interface ViewInfo {
  schema: string;
  name: string;
  sources: Array<{ schema: string; table: string; column: string }>;
}

// Every view and materialized view outside the system schemas, with the base-table columns it
// reads (through other views too): a statement that names one reading a masked column is treated
// like one that names the column itself.
const allViewSources = `${viewDeps(
  `
    JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace`,
  "vn.nspname NOT IN ('pg_catalog', 'information_schema')",
)}
  SELECT DISTINCT vn.nspname, v.relname, n.nspname, c.relname, a.attname
  FROM deps
  JOIN pg_catalog.pg_class v ON v.oid = deps.root
  JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
  ${DEPS_COLUMNS}`;

// Inheritance children and partitions hold their ancestors' rows under their own name.
const ancestorsOf = (oids: number[]): string => `WITH RECURSIVE anc(child, parent) AS (
    SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits WHERE inhrelid IN (${oidList(oids)})
  UNION
    SELECT anc.child, i.inhparent FROM anc JOIN pg_catalog.pg_inherits i ON i.inhrelid = anc.parent
  )
  SELECT anc.child::int8, n.nspname, c.relname
  FROM anc JOIN pg_catalog.pg_class c ON c.oid = anc.parent JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`;

// Every inheritance child and partition with its ancestors' columns: listed with the views, as a
// relation that reads them.
const allInherited = `WITH RECURSIVE anc(child, parent) AS (
    SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits
  UNION
    SELECT anc.child, i.inhparent FROM anc JOIN pg_catalog.pg_inherits i ON i.inhrelid = anc.parent
  )
  SELECT DISTINCT cn.nspname, c.relname, pn.nspname, p.relname, a.attname
  FROM anc
  JOIN pg_catalog.pg_class c ON c.oid = anc.child
  JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
  JOIN pg_catalog.pg_class p ON p.oid = anc.parent
  JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = p.oid AND a.attnum > 0 AND NOT a.attisdropped`;

export class CatalogCache {
  /** Every view with its sources (see allViewSources), or 'unavailable' after a failed lookup. */
  private views?: { list: readonly ViewInfo[] | 'unavailable'; at: number };
  private viewsLoading?: Promise<void>;
  /** Bumped by invalidate(): a view list loaded across a DDL is not kept. */
  private viewsGeneration = 0;

  private readonly entries = new Map<number, { info: TableInfo | null; at: number; bytes: number }>();
  /** Estimated bytes of `entries`. */
  private entryBytes = 0;
  private client: ControlConnection | undefined;
  private connecting: Promise<ControlConnection> | undefined;
  private failedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly opts: CatalogOptions) {}

  /** Cached entry, `null` for an OID that does not exist, undefined when not known yet. */
  get(oid: number): TableInfo | null | undefined {
    const e = this.entries.get(oid);
    if (!e) return undefined;
    if (Date.now() - e.at > this.opts.ttlMs) {
      this.delete(oid);
      return undefined;
    }
    return e.info;
  }

  /** Estimated bytes of the table entries held (never above maxBytes but for one load's own entries). */
  get bytes(): number {
    return this.entryBytes;
  }

  private delete(oid: number): void {
    const e = this.entries.get(oid);
    if (!e) return;
    this.entries.delete(oid);
    this.entryBytes -= e.bytes;
  }

  /** DDL went through: names may have changed. */
  invalidate(): void {
    this.entries.clear();
    this.entryBytes = 0;
    this.views = undefined;
    this.viewsGeneration++;
    this.opts.onInvalidate?.();
  }

  /** True for a while after a failed lookup: callers mask without waiting (see `retryAfterMs`). */
  get unavailable(): boolean {
    return Date.now() - this.failedAt < (this.opts.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS);
  }

  async load(oids: number[]): Promise<void> {
    if (this.unavailable) throw new Error('the catalog is unavailable after a failed lookup; retrying shortly');
    let rows: Array<Array<string | null>>;
    let sourceRows: Array<Array<string | null>>;
    let ancestorRows: Array<Array<string | null>>;
    try {
      const client = await this.control();
      rows = await client.query(query(oids));
      sourceRows = await client.query(viewSources(oids));
      ancestorRows = await client.query(ancestorsOf(oids));
    } catch (err) {
      this.failedAt = Date.now();
      this.drop();
      throw err;
    }
    this.failedAt = Number.NEGATIVE_INFINITY;
    const now = Date.now();
    const found = new Map<number, TableInfo>();
    for (const [oidText, schema, table, attnum, attname] of rows) {
      const oid = Number(oidText);
      let t = found.get(oid);
      if (!t) {
        t = { schema: schema!, table: table!, columns: new Map() };
        found.set(oid, t);
      }
      t.columns.set(Number(attnum), attname!);
    }
    for (const [oidText, schema, table, column] of sourceRows) {
      const t = found.get(Number(oidText));
      if (t) (t.sources ??= []).push({ schema: schema!, table: table!, column: column! });
    }
    for (const [oidText, schema, table] of ancestorRows) {
      const t = found.get(Number(oidText));
      if (t) (t.ancestors ??= []).push({ schema: schema!, table: table! });
    }
    for (const oid of oids) {
      this.delete(oid);
      const info = found.get(oid) ?? null;
      const bytes = tableBytes(info);
      this.entries.set(oid, { info, at: now, bytes });
      this.entryBytes += bytes;
    }
    // Oldest first (a Map iterates in insertion order); this load's entries were just inserted, so
    // they are last and the caller waiting for them finds them.
    const max = this.opts.maxBytes ?? DEFAULT_CATALOG_BYTES;
    const keep = new Set(oids);
    for (const oid of this.entries.keys()) {
      if (this.entryBytes <= max || keep.has(oid)) break;
      this.delete(oid);
    }
  }

  /**
   * The database's views and what they read: the list (a new array after each reload), 'unavailable'
   * while a failed lookup is recent, or a promise that settles once it is loaded (it never rejects).
   */
  viewList(): readonly ViewInfo[] | 'unavailable' | Promise<void> {
    const v = this.views;
    const ttl = v?.list === 'unavailable' ? (this.opts.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS) : this.opts.ttlMs;
    if (v && Date.now() - v.at <= ttl) return v.list;
    this.viewsLoading ??= this.loadViews().finally(() => {
      this.viewsLoading = undefined;
    });
    return this.viewsLoading;
  }

  private async loadViews(): Promise<void> {
    const generation = this.viewsGeneration;
    try {
      const client = await this.control();
      const rows = [...(await client.query(allViewSources)), ...(await client.query(allInherited))];
      const byName = new Map<string, ViewInfo>();
      for (const [vs, vn, schema, table, column] of rows) {
        const key = `${vs}.${vn}`;
        let view = byName.get(key);
        if (!view) {
          view = { schema: vs!, name: vn!, sources: [] };
          byName.set(key, view);
        }
        view.sources.push({ schema: schema!, table: table!, column: column! });
      }
      if (generation === this.viewsGeneration) this.views = { list: [...byName.values()], at: Date.now() };
    } catch {
      this.views = { list: 'unavailable', at: Date.now() };
      this.drop();
    }
  }

  /** The result columns of `sql` as the control connection's session resolves its names (COPY's query). */
  async describe(sql: string): Promise<FieldDescription[]> {
    if (this.unavailable) throw new Error('the catalog is unavailable after a failed lookup; retrying shortly');
    const client = await this.control();
    return client.describe(sql);
  }

  /** Attribute numbers of a table's generated columns, which `COPY table TO` leaves out. */
  async generatedColumns(oid: number): Promise<Set<number>> {
    const client = await this.control();
    const rows = await client.query(
      `SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = ${oid >>> 0} AND attnum > 0 AND attgenerated <> ''`,
    );
    return new Set(rows.map(([n]) => Number(n)));
  }

  private control(): Promise<ControlConnection> {
    if (this.client?.isOpen) return Promise.resolve(this.client);
    this.connecting ??= this.opts.connect().then(
      (c) => {
        this.client = c;
        this.connecting = undefined;
        return c;
      },
      (err) => {
        this.connecting = undefined;
        throw err;
      },
    );
    return this.connecting;
  }

  private drop(): void {
    const c = this.client;
    this.client = undefined;
    c?.close();
  }

  close(): void {
    const c = this.client;
    this.client = undefined;
    c?.close();
  }
}

/** An upper estimate of the heap a table entry holds (its Map entry included). */
function tableBytes(t: TableInfo | null): number {
  let n = 96;
  if (!t) return n;
  n += OBJECT_BYTES + stringBytes(t.schema) + stringBytes(t.table) + OBJECT_BYTES;
  for (const name of t.columns.values()) n += 4 * SLOT_BYTES + stringBytes(name);
  for (const x of t.sources ?? []) n += OBJECT_BYTES + stringBytes(x.schema) + stringBytes(x.table) + stringBytes(x.column);
  for (const x of t.ancestors ?? []) n += OBJECT_BYTES + stringBytes(x.schema) + stringBytes(x.table);
  return n;
}
