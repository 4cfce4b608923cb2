// Masks result rows as they stream: a plan per RowDescription says, for each column, whether the
// whole value is masked (a column rule), scanned by the content detectors, or passed untouched.
// Rows without any masked column are forwarded as the original bytes.
import { globToRegExp } from '../../common/policy/compile';
import { parseColumnPattern } from '../../common/policy/syntax';
import type { MaskingSpec, MaskStrategy, SqlStatementInfo } from '../../common/policy/types';
import { createTextMasker, maskWhole, type TextMasker } from '../../common/masking/masker';
import { encodeDataRow, type FieldDescription } from './protocol/backend';
import type { Frame } from './protocol/frame-reader';
import type { CatalogCache, ViewInfo } from './catalog';
import { ProtocolError } from './protocol/errors';
import { tallyMasked } from '../../common/masking/tally';

interface ColumnRule {
  rule: string;
  schema?: RegExp;
  table: RegExp;
  column: RegExp;
  strategy: MaskStrategy;
}

export interface TargetMasking {
  columnRules: ColumnRule[];
  detectors: Array<{ rule: string; masker: TextMasker }>;
  /** Lower-cased column names that column rules protect: a query that uses one inside an expression gets its computed columns masked. */
  protectedNames: Set<string>;
  anyProtectedName: boolean;
  hashKey: Buffer;
  /**
   * Lower-cased names of views that read a protected column (from the catalog): naming one counts
   * as naming the column. `all`: the catalog could not list them, so every relation counts.
   */
  protectedRelations?: ReadonlySet<string> | 'all';
}

const withViewsCache = new WeakMap<TargetMasking, { list: readonly ViewInfo[] | 'unavailable'; derived: TargetMasking }>();

/** `masking` with the views that read its protected columns (see TargetMasking.protectedRelations). */
export function withViews(masking: TargetMasking, list: readonly ViewInfo[] | 'unavailable'): TargetMasking {
  const cached = withViewsCache.get(masking);
  if (cached?.list === list) return cached.derived;
  let protectedRelations: ReadonlySet<string> | 'all' = 'all';
  if (list !== 'unavailable') {
    const names = new Set<string>();
    for (const v of list) {
      if (v.sources.some((src) => columnRuleFor(masking, src.schema, src.table, src.column))) names.add(v.name.toLowerCase());
    }
    protectedRelations = names;
  }
  const derived = { ...masking, protectedRelations };
  withViewsCache.set(masking, { list, derived });
  return derived;
}

/** Does a relation name, as a statement writes it, name a view over protected columns? */
export function protectedRelation(masking: TargetMasking, name: string): boolean {
  const p = masking.protectedRelations;
  if (p === undefined) return false;
  if (p === 'all') return true;
  const parts = name.split('.');
  return p.has(parts[parts.length - 1]);
}

export function compileTargetMasking(specs: MaskingSpec[], target: string, hashKey: Buffer): TargetMasking | undefined {
  const applicable = specs.filter((s) => !s.targets || s.targets.includes(target));
  if (applicable.length === 0) return undefined;
  const columnRules: ColumnRule[] = [];
  const detectors: TargetMasking['detectors'] = [];
  const protectedNames = new Set<string>();
  let anyProtectedName = false;
  for (const s of applicable) {
    const strategy = s.strategy ?? 'redact';
    for (const c of s.columns ?? []) {
      const parsed = parseColumnPattern(c); // validated when the policy loaded
      columnRules.push({
        rule: s.name,
        schema: parsed.schema ? globToRegExp(parsed.schema, '.') : undefined,
        table: globToRegExp(parsed.table, '.'),
        column: globToRegExp(parsed.column, '.'),
        strategy,
      });
      if (parsed.column.includes('*')) anyProtectedName = true;
      else protectedNames.add(parsed.column);
    }
    if (s.detectors && s.detectors.length > 0) {
      detectors.push({ rule: s.name, masker: createTextMasker({ detectors: s.detectors, strategy, hashKey }) });
    }
  }
  return { columnRules, detectors, protectedNames, anyProtectedName, hashKey };
}

// Types whose text form cannot carry the values our detectors look for (a bool, a date, a
// UUID, a 10-digit int4 is at most a bare number). Everything else in text format is scanned.
const UNSCANNED_TEXT_TYPES = new Set([16, 21, 23, 26, 700, 701, 1082, 1083, 1114, 1184, 1186, 1266, 2950, 17, 18, 28, 29, 3220]);
// Types whose binary form is their UTF-8 text (jsonb adds one version byte): safe to scan or replace.
const TEXTUAL_BINARY_TYPES = new Set([25, 1043, 1042, 19, 114, 142, 705]);
const JSONB = 3802;
const JSON_TYPE = 114;
// User-defined types (citext, enums, domains over text) start here; their text form is free text.
const FIRST_USER_OID = 16384;

/**
 * Can a masked value (`[REDACTED]`, `****1111`) stand in for this type without breaking the client's
 * decoder? In binary format a user-defined type may be a composite or an array, whose bytes are a
 * structure, not text.
 */
function holdsText(typeOid: number, format: number): boolean {
  return TEXTUAL_BINARY_TYPES.has(typeOid) || typeOid === JSONB || (format === 0 && typeOid >= FIRST_USER_OID);
}

export const enum ActionKind {
  None = 0,
  Whole = 1,
  Detect = 2,
}

/**
 * How a detector scan reads a value that is not plain UTF-8 text: `int8`/`numeric` binary as their
 * decimal digits, `bytea-hex` text as the bytes it spells, `raw` (any other binary value: records,
 * arrays, tsvector...) as its bytes, text inside included. A match in a value that cannot hold a
 * marker makes it NULL.
 */
export type ScanAs = 'int8' | 'numeric' | 'bytea-hex' | 'raw';

export interface ColumnAction {
  kind: ActionKind;
  scan?: ScanAs;
  strategy?: MaskStrategy;
  /** Whole-value replacement for a non-textual type: SQL NULL, since any bytes would break the client's decoder. */
  nullify?: boolean;
  /** Bytes to skip before the text (jsonb binary version byte). */
  skip: number;
  /** json/jsonb: the masked value goes out as a JSON string, so the client can still parse it. */
  json?: boolean;
}

export interface RowPlan {
  actions: ColumnAction[];
  active: boolean;
}

export const NO_MASKING: RowPlan = { actions: [], active: false };

const NONE: ColumnAction = { kind: ActionKind.None, skip: 0 };
/** When we cannot tell which protected column a value is, the strictest strategy applies. */
const FAIL_CLOSED: { strategy: MaskStrategy } = { strategy: 'redact' };

/** Table OIDs the plan needs from the catalog that it does not have yet. */
export function missingTables(fields: FieldDescription[], masking: TargetMasking, catalog: CatalogCache): number[] {
  if (masking.columnRules.length === 0) return [];
  const out: number[] = [];
  for (const f of fields) {
    if (f.tableOid !== 0 && catalog.get(f.tableOid) === undefined && !out.includes(f.tableOid)) out.push(f.tableOid);
  }
  return out;
}

function columnRuleFor(masking: TargetMasking, schema: string, table: string, column: string): ColumnRule | undefined {
  for (const r of masking.columnRules) {
    if (r.schema && !r.schema.test(schema)) continue;
    if (r.table.test(table) && r.column.test(column)) return r;
  }
  return undefined;
}

export interface PlanInput {
  fields: FieldDescription[];
  /** Result formats from Bind, overriding the (statement-level) RowDescription's; empty = as described. */
  formats?: number[];
  /** Whether the statement reads a protected column anywhere (see readsProtectedColumn). */
  readsProtected: boolean;
}

type StatementColumns = Pick<SqlStatementInfo, 'columns' | 'tables' | 'wholeRow'> & { kinds?: readonly string[] };

/**
 * Does a statement touch a column a rule protects: by name, or by reading a whole row (`to_jsonb(c)`,
 * `SELECT c FROM customers c`) of a table that has protected columns?
 */
export function readsProtectedColumn(masking: TargetMasking, statements: readonly StatementColumns[]): boolean {
  if (masking.columnRules.length === 0) return false;
  if (masking.anyProtectedName) return true;
  for (const s of statements) {
    // SQL run from text (query_to_xml, schema_to_xml, cursor_to_xml, EXECUTE in DO): we cannot see what it reads.
    if (s.kinds?.includes('DYNAMIC')) return true;
    for (const c of s.columns) if (masking.protectedNames.has(c)) return true;
    if (s.tables.some((t) => protectedRelation(masking, t))) return true;
    if (s.wholeRow && s.tables.some((t) => hasMaskedColumns(masking, t))) return true;
  }
  return false;
}

const schemaFree = new WeakMap<TargetMasking, TargetMasking>();

/**
 * The same rules with their schemas ignored. COPY's columns are described on the control
 * connection, whose search_path may resolve an unqualified name to another schema than the agent's
 * session would: masking every table of a protected name is the safe side of that doubt.
 */
export function ignoringSchemas(masking: TargetMasking): TargetMasking {
  let m = schemaFree.get(masking);
  if (!m) {
    m = { ...masking, columnRules: masking.columnRules.map((r) => ({ ...r, schema: undefined })) };
    schemaFree.set(masking, m);
  }
  return m;
}

/** Does the statement name a table with masked columns, or read a protected column (COPY must then be masked by column)? */
export function touchesMaskedColumns(masking: TargetMasking, s: StatementColumns): boolean {
  if (masking.columnRules.length === 0) return false;
  return s.tables.some((t) => hasMaskedColumns(masking, t)) || readsProtectedColumn(masking, [s]);
}

/** Could a column rule apply to a table of this name (as a statement writes it)? */
export function hasMaskedColumns(masking: TargetMasking, name: string): boolean {
  return masking.columnRules.some((r) => coversTable(r, name)) || (masking.columnRules.length > 0 && protectedRelation(masking, name));
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

function formatOf(i: number, field: FieldDescription, formats?: number[]): number {
  if (!formats || formats.length === 0) return field.format;
  return formats.length === 1 ? formats[0] : (formats[i] ?? 0);
}

export function planRow(input: PlanInput, masking: TargetMasking, catalog: CatalogCache): RowPlan {
  const { fields } = input;
  const usesProtected = input.readsProtected;
  const actions = new Array<ColumnAction>(fields.length);
  let active = false;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    const format = formatOf(i, f, input.formats);
    const textual = format === 0 || TEXTUAL_BINARY_TYPES.has(f.typeOid) || f.typeOid === JSONB;
    const skip = format === 1 && f.typeOid === JSONB ? 1 : 0;
    let rule: { strategy: MaskStrategy } | undefined;
    if (f.tableOid !== 0 && masking.columnRules.length > 0) {
      const t = catalog.get(f.tableOid);
      if (t === undefined) {
        // Fail closed: the catalog could not tell us which column this is.
        rule = FAIL_CLOSED;
      } else if (t !== null) {
        const col = t.columns.get(f.columnAttr);
        if (col !== undefined) rule = columnRuleFor(masking, t.schema, t.table, col);
        // A partition or inheritance child: its ancestors' rules apply to the columns it inherits.
        if (!rule && col !== undefined) for (const a of t.ancestors ?? []) rule ??= columnRuleFor(masking, a.schema, a.table, col);
        // A view that reads a masked column: which of its columns carries it is not known, so all are masked.
        if (!rule && t.sources?.some((src) => columnRuleFor(masking, src.schema, src.table, src.column))) rule = FAIL_CLOSED;
        // Column 0 is the whole row (`SELECT c FROM customers c`): it carries every masked column of the table.
        else if (f.columnAttr === 0 && [...t.columns.values()].some((c) => columnRuleFor(masking, t.schema, t.table, c)))
          rule = FAIL_CLOSED;
      }
    } else if (f.tableOid === 0 && usesProtected) {
      // A computed column in a query that reads a protected column (`upper(card_number)`, `card_number || ''`):
      // we cannot tell which output carries it, so every computed output is masked.
      rule = FAIL_CLOSED;
    }
    if (rule) {
      const json = f.typeOid === JSONB || f.typeOid === JSON_TYPE;
      actions[i] = { kind: ActionKind.Whole, strategy: rule.strategy, nullify: !holdsText(f.typeOid, format), skip, json };
      active = true;
    } else if (masking.detectors.length > 0 && textual && !(format === 0 && UNSCANNED_TEXT_TYPES.has(f.typeOid))) {
      actions[i] = { kind: ActionKind.Detect, skip };
      active = true;
    } else if (masking.detectors.length > 0 && scanAs(f.typeOid, format) !== undefined) {
      actions[i] = { kind: ActionKind.Detect, skip: 0, scan: scanAs(f.typeOid, format) };
      active = true;
    } else {
      actions[i] = NONE;
    }
  }
  return { actions, active };
}

const INT8 = 20;
const NUMERIC = 1700;
const BYTEA = 17;

/** Values the plain text scan misses but that can carry what detectors look for. */
function scanAs(typeOid: number, format: number): ScanAs | undefined {
  if (format === 0) return typeOid === BYTEA ? 'bytea-hex' : undefined;
  if (typeOid === INT8) return 'int8';
  if (typeOid === NUMERIC) return 'numeric';
  if (typeOid === BYTEA) return 'raw';
  return UNSCANNED_TEXT_TYPES.has(typeOid) ? undefined : 'raw';
}

/** Binary numeric (ndigits, weight, sign, dscale, base-10000 digits) as decimal text. */
function numericText(b: Buffer): string | undefined {
  if (b.length < 8) return undefined;
  const ndigits = b.readInt16BE(0);
  const weight = b.readInt16BE(2);
  if (b.length !== 8 + 2 * ndigits || ndigits < 0) return undefined;
  let out = '';
  for (let i = 0; i < ndigits; i++) {
    const d = String(b.readInt16BE(8 + 2 * i));
    out += i === 0 && weight >= 0 ? d : d.padStart(4, '0');
    if (i === weight && i + 1 < ndigits) out += '.';
  }
  // Groups between the last digit and the decimal point are zeros.
  for (let i = ndigits; i <= weight; i++) out += '0000';
  return out;
}

/** Detector scan of a value read per `scan`: the replacement (null = SQL NULL) or undefined when nothing matched. */
function detectSpecial(
  value: Buffer,
  scan: ScanAs,
  masking: TargetMasking,
  by: Record<string, number>,
): { value: Buffer | null; count: number } | undefined {
  switch (scan) {
    case 'int8': {
      if (value.length !== 8) return undefined;
      const r = detectAll(Buffer.from(value.readBigInt64BE(0).toString(), 'latin1'), masking, by);
      return r ? { value: null, count: r.count } : undefined;
    }
    case 'numeric': {
      const text = numericText(value);
      const r = text === undefined ? undefined : detectAll(Buffer.from(text, 'latin1'), masking, by);
      return r ? { value: null, count: r.count } : undefined;
    }
    case 'bytea-hex': {
      const hex = value.toString('latin1');
      if (!hex.startsWith('\\x')) return undefined;
      const r = detectAll(Buffer.from(hex.slice(2), 'hex'), masking, by);
      return r ? { value: Buffer.from(`\\x${r.buf.toString('hex')}`, 'latin1'), count: r.count } : undefined;
    }
    case 'raw': {
      const r = detectAll(value, masking, by);
      return r ? { value: null, count: r.count } : undefined;
    }
  }
}

export interface MaskResult {
  /** Replacement frame, or undefined when the row passes unchanged. */
  frame?: Buffer;
  count: number;
  /** Masked values by detector (`column` for column rules); only when count > 0. */
  by?: Record<string, number>;
}

/** Masks one DataRow; values are read in place and the row is re-encoded only if something changed. */
export function maskDataRow(f: Frame, plan: RowPlan, masking: TargetMasking): MaskResult {
  const buf = f.buf;
  let pos = f.body;
  if (pos + 2 > f.end) throw new ProtocolError('DataRow is too short for its column count');
  const n = buf.readInt16BE(pos);
  pos += 2;
  let values: Array<Buffer | null> | undefined;
  let count = 0;
  let by: Record<string, number> | undefined;
  for (let i = 0; i < n; i++) {
    if (pos + 4 > f.end) throw new ProtocolError('DataRow ends before its last column');
    const len = buf.readInt32BE(pos);
    pos += 4;
    if (len < -1) throw new ProtocolError(`DataRow column has an invalid length ${len}`);
    const start = pos;
    if (len > 0) pos += len;
    if (pos > f.end) throw new ProtocolError('DataRow column exceeds the message');
    const action = plan.actions[i] ?? NONE;
    if (len < 0 || action.kind === ActionKind.None) continue;
    let replacement: Buffer | null | undefined;
    const text = buf.subarray(start + action.skip, pos);
    if (action.kind === ActionKind.Whole) {
      if (action.nullify) replacement = null;
      else {
        const masked = maskWhole(text.toString('utf8'), action.strategy!, masking.hashKey);
        replacement = Buffer.from(action.json ? JSON.stringify(masked) : masked, 'utf8');
      }
      count++;
      by ??= {};
      by.column = (by.column ?? 0) + 1;
    } else if (action.scan !== undefined) {
      const masked = detectSpecial(text, action.scan, masking, (by ??= {}));
      if (masked) {
        replacement = masked.value;
        count += masked.count;
      }
    } else {
      const masked = detectAll(text, masking, (by ??= {}));
      if (masked) {
        replacement = masked.buf;
        count += masked.count;
      }
    }
    if (replacement === undefined) continue;
    if (!values) values = readAll(f, n);
    values[i] =
      replacement === null || action.skip === 0 ? replacement : Buffer.concat([buf.subarray(start, start + action.skip), replacement]);
  }
  if (!values) return { count };
  return { frame: encodeDataRow(values), count, by };
}

function readAll(f: Frame, n: number): Array<Buffer | null> {
  const out = new Array<Buffer | null>(n);
  let pos = f.body + 2;
  for (let i = 0; i < n; i++) {
    if (pos + 4 > f.end) throw new ProtocolError('DataRow ends before its last column');
    const len = f.buf.readInt32BE(pos);
    pos += 4;
    if (len < -1 || pos + Math.max(len, 0) > f.end) throw new ProtocolError('DataRow column exceeds the message');
    out[i] = len < 0 ? null : f.buf.subarray(pos, pos + len);
    if (len > 0) pos += len;
  }
  return out;
}

/** Runs every detector rule over one value; undefined when nothing matched. */
export function detectAll(value: Buffer, masking: TargetMasking, by: Record<string, number>): { buf: Buffer; count: number } | undefined {
  let current = value;
  let count = 0;
  for (const d of masking.detectors) {
    const r = d.masker.maskUtf8(current);
    if (r) {
      current = r.buf;
      count += r.count;
      tallyMasked(by, r.detectors, r.count);
    }
  }
  return count > 0 ? { buf: current, count } : undefined;
}
