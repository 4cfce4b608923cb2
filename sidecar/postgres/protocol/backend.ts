// Messages the server sends: typed decoding of those the proxy inspects, and encoders for those the
// sidecar originates towards the agent (its own startup answer, denials, masked rows).
import { ProtocolError } from './errors';
import type { Frame } from './frame-reader';
import { BE } from './codes';
import { BodyReader } from './reader';
import { Writer } from './writer';

export type AuthenticationMessage =
  | { name: 'authOk' }
  | { name: 'authCleartext' }
  | { name: 'authMd5'; salt: Buffer }
  | { name: 'authSasl'; mechanisms: string[] }
  | { name: 'authSaslContinue'; data: Buffer }
  | { name: 'authSaslFinal'; data: Buffer }
  | { name: 'authOther'; code: number };

export function decodeAuthentication(f: Frame): AuthenticationMessage {
  const r = new BodyReader(f.buf, f.body, f.end);
  const code = r.int32('authentication code');
  switch (code) {
    case 0:
      return { name: 'authOk' };
    case 3:
      return { name: 'authCleartext' };
    case 5:
      return { name: 'authMd5', salt: Buffer.from(r.bytes(4, 'md5 salt')) };
    case 10: {
      const mechanisms: string[] = [];
      for (;;) {
        const m = r.cstring('SASL mechanism');
        if (m === '') break;
        mechanisms.push(m);
      }
      return { name: 'authSasl', mechanisms };
    }
    case 11:
      return { name: 'authSaslContinue', data: Buffer.from(r.rest()) };
    case 12:
      return { name: 'authSaslFinal', data: Buffer.from(r.rest()) };
    default:
      return { name: 'authOther', code };
  }
}

export interface FieldDescription {
  name: string;
  tableOid: number;
  columnAttr: number;
  typeOid: number;
  typeSize: number;
  typeMod: number;
  format: number;
}

export function decodeRowDescription(f: Frame): FieldDescription[] {
  const r = new BodyReader(f.buf, f.body, f.end);
  const n = r.int16('field count');
  if (n < 0) throw new ProtocolError('negative field count in RowDescription');
  const fields: FieldDescription[] = [];
  for (let i = 0; i < n; i++) {
    fields.push({
      name: r.cstring('field name'),
      tableOid: r.uint32('table oid'),
      columnAttr: r.int16('column number'),
      typeOid: r.uint32('type oid'),
      typeSize: r.int16('type size'),
      typeMod: r.int32('type modifier'),
      format: r.int16('format code'),
    });
  }
  r.expectEnd('RowDescription');
  return fields;
}

/** Field values as views into the frame (null = SQL NULL). */
export function decodeDataRow(f: Frame): Array<Buffer | null> {
  const r = new BodyReader(f.buf, f.body, f.end);
  const n = r.int16('column count');
  if (n < 0) throw new ProtocolError('negative column count in DataRow');
  const values = new Array<Buffer | null>(n);
  for (let i = 0; i < n; i++) {
    const len = r.int32('column length');
    values[i] = len === -1 ? null : r.bytes(len, 'column value');
  }
  r.expectEnd('DataRow');
  return values;
}

/** ErrorResponse/NoticeResponse fields keyed by their one-letter code (S, V, C, M, D, H, ...). */
export type NoticeFields = Record<string, string>;

export function decodeNoticeFields(f: Frame): NoticeFields {
  const r = new BodyReader(f.buf, f.body, f.end);
  const out: NoticeFields = {};
  for (;;) {
    const t = r.byte('field type');
    if (t === 0) break;
    out[String.fromCharCode(t)] = r.cstring('field value');
  }
  return out;
}

export function decodeReadyForQuery(f: Frame): 'I' | 'T' | 'E' {
  if (f.end - f.body !== 1) throw new ProtocolError('ReadyForQuery must carry exactly one status byte');
  const s = String.fromCharCode(f.buf[f.body]);
  if (s !== 'I' && s !== 'T' && s !== 'E') throw new ProtocolError(`invalid transaction status "${s}"`);
  return s;
}

export function decodeParameterStatus(f: Frame): { key: string; value: string } {
  const r = new BodyReader(f.buf, f.body, f.end);
  return { key: r.cstring('parameter name'), value: r.cstring('parameter value') };
}

export function decodeBackendKeyData(f: Frame): { processId: number; secretKey: Buffer } {
  const r = new BodyReader(f.buf, f.body, f.end);
  const processId = r.int32('process id');
  return { processId, secretKey: Buffer.from(r.rest()) };
}

export function decodeCommandComplete(f: Frame): string {
  return new BodyReader(f.buf, f.body, f.end).cstring('command tag');
}

/** CopyOutResponse / CopyInResponse: overall format (0 text, 1 binary) and per-column formats. */
export function decodeCopyResponse(f: Frame): { format: number; columnFormats: number[] } {
  const r = new BodyReader(f.buf, f.body, f.end);
  const format = r.byte('copy format');
  const n = r.int16('column count');
  const columnFormats: number[] = [];
  for (let i = 0; i < n; i++) columnFormats.push(r.int16('column format'));
  return { format, columnFormats };
}

// ---- encoders for what the sidecar answers the agent ----

export interface ErrorFields {
  severity: 'ERROR' | 'FATAL' | 'WARNING' | 'NOTICE';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function encodeFields(e: ErrorFields, type: number): Buffer {
  const w = new Writer(e.message.length + 64);
  w.int8(0x53).cstring(e.severity); // S
  w.int8(0x56).cstring(e.severity); // V: non-localized severity
  w.int8(0x43).cstring(e.code); // C
  w.int8(0x4d).cstring(e.message); // M
  if (e.detail) w.int8(0x44).cstring(e.detail);
  if (e.hint) w.int8(0x48).cstring(e.hint);
  return w.int8(0).flush(type);
}

export function encodeErrorResponse(e: ErrorFields): Buffer {
  return encodeFields(e, BE.ErrorResponse);
}

export function encodeNoticeResponse(e: ErrorFields): Buffer {
  return encodeFields(e, BE.NoticeResponse);
}

export function encodeReadyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return new Writer(8).int8(status.charCodeAt(0)).flush(BE.ReadyForQuery);
}

export function encodeAuthenticationOk(): Buffer {
  return new Writer(12).int32(0).flush(BE.Authentication);
}

export function encodeAuthenticationCleartext(): Buffer {
  return new Writer(12).int32(3).flush(BE.Authentication);
}

export function encodeParameterStatus(key: string, value: string): Buffer {
  return new Writer(key.length + value.length + 8).cstring(key).cstring(value).flush(BE.ParameterStatus);
}

export function encodeBackendKeyData(processId: number, secretKey: Buffer): Buffer {
  return new Writer(16).int32(processId).bytes(secretKey).flush(BE.BackendKeyData);
}

export function encodeNegotiateProtocolVersion(minor: number, unrecognized: string[]): Buffer {
  const w = new Writer(64).int32(minor).int32(unrecognized.length);
  for (const o of unrecognized) w.cstring(o);
  return w.flush(BE.NegotiateProtocolVersion);
}

export function encodeDataRow(values: Array<Buffer | null>): Buffer {
  let size = 8;
  for (const v of values) size += 4 + (v ? v.length : 0);
  const w = new Writer(size).int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else w.int32(v.length).bytes(v);
  }
  return w.flush(BE.DataRow);
}

export function encodeCopyData(data: Buffer): Buffer {
  return new Writer(data.length + 8).bytes(data).flush(BE.CopyData);
}
