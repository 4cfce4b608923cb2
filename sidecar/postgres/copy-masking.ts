// Masks COPY ... TO STDOUT rows by column. The server sends one row per CopyData message, in the
// text or CSV format the COPY asked for; the columns come from describing the COPY's query (see
// CopyOutInfo.select), planned like result rows. Masked values are re-encoded in the same format,
// and a value replaced by SQL NULL gets the COPY's NULL marker.
import type { CopyOutInfo } from '../../common/policy/types';
import { maskWhole } from '../../common/masking/masker';
import { ActionKind, type RowPlan, type TargetMasking } from './row-masking';

export interface CopyPlan {
  plan: RowPlan;
  format: 'text' | 'csv';
  delimiter: number;
  quote: number;
  escape: number;
  nullMarker: string;
  /** The next row is the header line (CSV, and text since PostgreSQL 15): names, passed untouched. */
  header: boolean;
}

const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
const CR = 0x0d;

export function copyPlan(info: CopyOutInfo, plan: RowPlan): CopyPlan {
  const csv = info.format === 'csv';
  const quote = (info.quote ?? '"').charCodeAt(0);
  return {
    plan,
    format: csv ? 'csv' : 'text',
    delimiter: (info.delimiter ?? (csv ? ',' : '\t')).charCodeAt(0),
    quote,
    escape: info.escape !== undefined ? info.escape.charCodeAt(0) : quote,
    nullMarker: info.null ?? (csv ? '' : '\\N'),
    header: info.header === true,
  };
}

interface Field {
  start: number;
  end: number;
  /** CSV: the field was quoted (so it is never the NULL marker). */
  quoted: boolean;
}

/** Splits one row (without its line end) into fields: raw byte ranges, escapes left in place. */
function splitRow(row: Buffer, p: CopyPlan): Field[] {
  const fields: Field[] = [];
  let start = 0;
  let quoted = false;
  let inQuotes = false;
  for (let i = 0; i < row.length; i++) {
    const b = row[i];
    if (p.format === 'text') {
      if (b === BACKSLASH) i++;
      else if (b === p.delimiter) {
        fields.push({ start, end: i, quoted: false });
        start = i + 1;
      }
      continue;
    }
    if (inQuotes) {
      if (b === p.escape && p.escape !== p.quote && i + 1 < row.length && (row[i + 1] === p.quote || row[i + 1] === p.escape)) i++;
      else if (b === p.quote) {
        if (p.escape === p.quote && row[i + 1] === p.quote) i++;
        else inQuotes = false;
      }
    } else if (b === p.quote) {
      inQuotes = true;
      quoted = true;
    } else if (b === p.delimiter) {
      fields.push({ start, end: i, quoted });
      start = i + 1;
      quoted = false;
    }
  }
  fields.push({ start, end: row.length, quoted });
  return fields;
}

/** The value a text-format field stands for (backslash escapes decoded). */
function decodeText(raw: Buffer): string {
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b !== BACKSLASH || i + 1 >= raw.length) {
      out.push(b);
      continue;
    }
    const c = String.fromCharCode(raw[++i]);
    const simple: Record<string, number> = { b: 8, f: 12, n: 10, r: 13, t: 9, v: 11 };
    if (c in simple) out.push(simple[c]);
    else if (c >= '0' && c <= '7') {
      let v = raw[i] - 0x30;
      for (let k = 0; k < 2 && i + 1 < raw.length && raw[i + 1] >= 0x30 && raw[i + 1] <= 0x37; k++) v = v * 8 + (raw[++i] - 0x30);
      out.push(v & 0xff);
    } else if (c === 'x' && i + 1 < raw.length && /[0-9a-fA-F]/.test(String.fromCharCode(raw[i + 1]))) {
      let hex = String.fromCharCode(raw[++i]);
      if (i + 1 < raw.length && /[0-9a-fA-F]/.test(String.fromCharCode(raw[i + 1]))) hex += String.fromCharCode(raw[++i]);
      out.push(parseInt(hex, 16));
    } else out.push(raw[i]);
  }
  return Buffer.from(out).toString('utf8');
}

function decodeCsv(raw: Buffer, p: CopyPlan): string {
  const out: number[] = [];
  let inQuotes = false;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (!inQuotes) {
      if (b === p.quote) inQuotes = true;
      else out.push(b);
    } else if (
      b === p.escape &&
      i + 1 < raw.length &&
      (raw[i + 1] === p.quote || raw[i + 1] === p.escape) &&
      !(p.escape === p.quote && raw[i + 1] !== p.quote)
    ) {
      out.push(raw[++i]);
    } else if (b === p.quote) inQuotes = false;
    else out.push(b);
  }
  return Buffer.from(out).toString('utf8');
}

function encodeText(value: string, p: CopyPlan): string {
  let out = '';
  for (const ch of value) {
    const c = ch.charCodeAt(0);
    if (c === BACKSLASH) out += '\\\\';
    else if (c === NEWLINE) out += '\\n';
    else if (c === CR) out += '\\r';
    else if (c === p.delimiter) out += `\\${ch}`;
    else out += ch;
  }
  return out;
}

function encodeCsv(value: string, p: CopyPlan): string {
  const q = String.fromCharCode(p.quote);
  const e = String.fromCharCode(p.escape);
  let out = q;
  for (const ch of value) out += ch === q || ch === e ? e + ch : ch;
  return out + q;
}

/** Masks one CopyData payload (one row, with its line end) by column; undefined when nothing changed. */
export function maskCopyRow(data: Buffer, p: CopyPlan, masking: TargetMasking): { data: Buffer; count: number } | undefined {
  if (p.header) {
    p.header = false;
    return undefined;
  }
  let end = data.length;
  if (end > 0 && data[end - 1] === NEWLINE) end--;
  if (end > 0 && data[end - 1] === CR) end--;
  const row = data.subarray(0, end);
  const fields = splitRow(row, p);
  if (fields.length !== p.plan.actions.length) {
    // Not the row we planned for (never expected): fail closed, every column becomes NULL.
    const nulls = Array.from({ length: p.plan.actions.length }, () => p.nullMarker).join(String.fromCharCode(p.delimiter));
    return { data: Buffer.from(`${nulls}\n`, 'utf8'), count: p.plan.actions.length };
  }
  const parts: Buffer[] = [];
  let count = 0;
  let at = 0;
  for (let i = 0; i < fields.length; i++) {
    const action = p.plan.actions[i];
    if (action === undefined || action.kind !== ActionKind.Whole) continue;
    const f = fields[i];
    const raw = row.subarray(f.start, f.end);
    const isNull = !f.quoted && raw.toString('utf8') === p.nullMarker;
    if (isNull) continue;
    let replacement: string;
    if (action.nullify) replacement = p.nullMarker;
    else {
      const value = p.format === 'text' ? decodeText(raw) : decodeCsv(raw, p);
      const masked = maskWhole(value, action.strategy!, masking.hashKey);
      replacement = p.format === 'text' ? encodeText(masked, p) : encodeCsv(masked, p);
    }
    parts.push(row.subarray(at, f.start), Buffer.from(replacement, 'utf8'));
    at = f.end;
    count++;
  }
  if (count === 0) return undefined;
  parts.push(data.subarray(at));
  return { data: Buffer.concat(parts), count };
}
