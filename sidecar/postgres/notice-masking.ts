// Masks the server messages besides rows that can carry data: ErrorResponse and NoticeResponse
// fields (`invalid input syntax for type integer: "<card>"`, `Key (email)=(<email>)`, RAISE ...
// USING DETAIL = <value>), NotificationResponse payloads and ParameterStatus values. Content
// detectors always run; when the statement that caused the message reads a protected column
// ("strict"), every field that can carry a value is redacted, since a protected value need not look
// like anything a detector knows. The SQLSTATE, severity and positions always pass, so clients keep
// working and the frame stays well-formed.
import { BE } from './protocol/codes';
import { ProtocolError } from './protocol/errors';
import { Writer } from './protocol/writer';
import { detectAll, type TargetMasking } from './row-masking';

export const REDACTED = '[REDACTED]';

/** Severity, SQLSTATE, cursor positions, source file/line/routine: never data. */
const SAFE_FIELDS = new Set(['S', 'V', 'C', 'P', 'p', 'F', 'L', 'R']);
/** Object names (schema, table, column, type, constraint): server errors name real objects, but RAISE ... USING can set them to anything. */
const NAME_FIELDS = new Set(['s', 't', 'c', 'd', 'n']);
const MESSAGE = 'M';
const CONTEXT = 'W';

export interface MaskedMessage {
  frame?: Buffer;
  count: number;
  by?: Record<string, number>;
}

function readFields(buf: Buffer, start: number, end: number): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  let pos = start;
  for (;;) {
    if (pos >= end) throw new ProtocolError('error/notice message is not terminated');
    const t = buf[pos++];
    if (t === 0) break;
    const z = buf.indexOf(0, pos);
    if (z < 0 || z >= end) throw new ProtocolError('error/notice field is not terminated');
    out.push([t, buf.toString('utf8', pos, z)]);
    pos = z + 1;
  }
  return out;
}

function encodeFields(code: number, fields: Array<[number, string]>): Buffer {
  const w = new Writer();
  for (const [t, v] of fields) w.int8(t).cstring(v);
  return w.int8(0).flush(code);
}

/**
 * Server messages quote the values they echo (`value "..." is out of range`): those parts are
 * redacted, except names the statement itself contains (`column "nmae" does not exist` names what the
 * agent wrote, and the agent needs it to fix the query).
 */
function redactQuoted(message: string, sqlState: string | undefined, statement: string | undefined): string {
  // Only for class 42 (syntax error or access rule violation), which names objects: in other
  // classes (22 data exception, 23 integrity) the quoted part is data.
  const known = sqlState?.startsWith('42') ? statement?.toLowerCase() : undefined;
  return message.replace(/"((?:[^"]|"")*)"/g, (quoted, inner: string) =>
    inner !== '' && known?.includes(inner.toLowerCase()) ? quoted : `"${REDACTED}"`,
  );
}

/** Runs the detectors over one string; undefined when nothing matched. */
export function detectText(text: string, masking: TargetMasking, by: Record<string, number>): { text: string; count: number } | undefined {
  if (masking.detectors.length === 0 || text === '') return undefined;
  const r = detectAll(Buffer.from(text, 'utf8'), masking, by);
  return r ? { text: r.buf.toString('utf8'), count: r.count } : undefined;
}

/** An ErrorResponse or NoticeResponse frame body (`buf[start..end)` after the 5-byte header). */
/** `statement`: the text of the statement the message answers, when strict (see redactQuoted). */
export function maskNoticeMessage(
  code: number,
  buf: Buffer,
  start: number,
  end: number,
  masking: TargetMasking,
  strict: boolean,
  statement?: string,
): MaskedMessage {
  const fields = readFields(buf, start, end);
  // Raised from inside a function (RAISE, plperl's elog): the message and names are the function's own text.
  const fromFunction = fields.some(([t]) => String.fromCharCode(t) === CONTEXT);
  const sqlState = fields.find(([t]) => String.fromCharCode(t) === 'C')?.[1];
  const by: Record<string, number> = {};
  let count = 0;
  let changed = false;
  for (const field of fields) {
    const t = String.fromCharCode(field[0]);
    if (SAFE_FIELDS.has(t)) continue;
    let value = field[1];
    if (strict) {
      // A server message keeps its wording with the quoted values redacted; a function's own text goes whole.
      if (t === MESSAGE && !fromFunction) value = redactQuoted(value, sqlState, statement);
      else if (!(NAME_FIELDS.has(t) && !fromFunction)) value = REDACTED;
      if (value !== field[1]) {
        by.column = (by.column ?? 0) + 1;
        count++;
      }
    }
    const d = detectText(value, masking, by);
    if (d) {
      value = d.text;
      count += d.count;
    }
    if (value !== field[1]) {
      field[1] = value;
      changed = true;
    }
  }
  if (!changed) return { count: 0 };
  return { frame: encodeFields(code, fields), count, by };
}

/** NotificationResponse: process id, channel, payload. */
export function maskNotification(buf: Buffer, start: number, end: number, masking: TargetMasking, strict: boolean): MaskedMessage {
  if (end - start < 6) throw new ProtocolError('NotificationResponse is too short');
  const pid = buf.readInt32BE(start);
  const z1 = buf.indexOf(0, start + 4);
  const z2 = z1 < 0 ? -1 : buf.indexOf(0, z1 + 1);
  if (z1 < 0 || z2 < 0 || z2 >= end) throw new ProtocolError('NotificationResponse is not terminated');
  let channel = buf.toString('utf8', start + 4, z1);
  let payload = buf.toString('utf8', z1 + 1, z2);
  const by: Record<string, number> = {};
  let count = 0;
  if (strict && payload !== '') {
    payload = REDACTED;
    by.column = 1;
    count++;
  }
  for (const which of ['channel', 'payload'] as const) {
    const d = detectText(which === 'channel' ? channel : payload, masking, by);
    if (!d) continue;
    count += d.count;
    if (which === 'channel') channel = d.text;
    else payload = d.text;
  }
  if (count === 0) return { count: 0 };
  return { frame: new Writer().int32(pid).cstring(channel).cstring(payload).flush(BE.NotificationResponse), count, by };
}

/** ParameterStatus value (`set_config('application_name', ...)` reports it back). */
export function maskParameterValue(
  value: string,
  masking: TargetMasking,
  strict: boolean,
): { value: string; count: number; by?: Record<string, number> } {
  if (strict && value !== '') return { value: REDACTED, count: 1, by: { column: 1 } };
  const by: Record<string, number> = {};
  const d = detectText(value, masking, by);
  return d ? { value: d.text, count: d.count, by } : { value, count: 0 };
}
