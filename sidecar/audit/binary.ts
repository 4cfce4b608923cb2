// The audit record's spool format: a compact binary encoding, written once on the data path and
// decoded only off it (the export thread, `warden replay`). Hand-written because it runs on the
// hot path, once per operation: JSON.stringify of a record cost ~14 µs and the shipper's
// JSON.parse ~11 µs; this writes the fixed shape of AuditRecord in one pass into a reused buffer
// (measured with `node dist-dev/bench/audit.js`).
//
// Layout (little-endian), one record:
//   u8   FORMAT (0xB1)
//   u16  presence bits (OPT_*) for the optional parts
//   str  id, kind, session      f64 seq, start, durationMs     [f64 upstreamMs]
//   str  trace.traceId, trace.spanId  [str parentSpanId]  f64 flags  [str state]
//   str  policy, target, decision, reason        [str rule]
//   str  identity.subject   u32 n  n × str groups
//   f64  masked
//   [json approval]   [u32 n, n × (str key, f64 count) maskedBy]   [str error]
//   [db:   u8 bits, str system, [str namespace], str text, u32 n × str operations, str protocol, f64 rows, [u32 n × nullable str params]]
//   [http: u8 bits, str method, [str route], str path, [str url], f64 status, [str serverAddress], [f64 serverPort], [u8 tunnel]]
//   [json genAi]
//   [payload: u8 bits, [str request], [str response], [u8 truncated]]
//   [json mcp]
// where str is u32 byte length + UTF-8 and json is a str holding JSON (the approval, gen_ai and
// mcp parts are small and open-ended: their key order must survive for replay's `-o json`).
//
// Decoding rebuilds the object with the keys in the order records.ts creates them, so
// JSON.stringify(decode(encode(r))) === JSON.stringify(r) (binary.test.ts). Keys holding
// `undefined` are not kept (JSON drops them as well).
//
// Spools written before this format hold one JSON document per record (first byte `{`): the
// decoder still reads them, so records left unacknowledged by an older sidecar are exported after
// an upgrade and `warden replay` shows them.
import type { AuditRecord } from '../../common/audit/record';
import { copyAscii } from './ascii';

export const FORMAT_BINARY_V1 = 0xb1;
const JSON_OPEN_BRACE = 0x7b;

const OPT_UPSTREAM = 1 << 0;
const OPT_PARENT = 1 << 1;
const OPT_STATE = 1 << 2;
const OPT_RULE = 1 << 3;
const OPT_APPROVAL = 1 << 4;
const OPT_MASKED_BY = 1 << 5;
const OPT_ERROR = 1 << 6;
const OPT_DB = 1 << 7;
const OPT_HTTP = 1 << 8;
const OPT_GENAI = 1 << 9;
const OPT_PAYLOAD = 1 << 10;
const OPT_MCP = 1 << 11;

const DB_NAMESPACE = 1;
const DB_PARAMS = 2;
const HTTP_ROUTE = 1;
const HTTP_URL = 2;
const HTTP_ADDRESS = 4;
const HTTP_PORT = 8;
const HTTP_TUNNEL = 16;
const PAYLOAD_REQUEST = 1;
const PAYLOAD_RESPONSE = 2;
const PAYLOAD_TRUNCATED = 4;

export class RecordFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordFormatError';
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding (hot path: one reused buffer, no per-field allocation).

let buf = Buffer.allocUnsafe(16 * 1024);
let pos = 0;

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  let size = buf.length * 2;
  while (size < pos + n) size *= 2;
  const next = Buffer.allocUnsafe(size);
  buf.copy(next, 0, 0, pos);
  buf = next;
}

function u8(v: number): void {
  ensure(1);
  buf[pos++] = v;
}

function u16(v: number): void {
  ensure(2);
  buf[pos++] = v & 0xff;
  buf[pos++] = v >>> 8;
}

function u32(v: number): void {
  ensure(4);
  buf.writeUInt32LE(v, pos);
  pos += 4;
}

function f64(v: number): void {
  ensure(8);
  buf.writeDoubleLE(v, pos);
  pos += 8;
}

function str(s: string): void {
  const n = s.length;
  // Short ASCII (nearly every field) by hand: a native call costs more than the loop.
  if (n < 128) {
    ensure(4 + n);
    if (copyAscii(buf, pos + 4, s)) {
      buf.writeUInt32LE(n, pos);
      pos += 4 + n;
      return;
    }
  }
  // A UTF-16 code unit is at most 3 UTF-8 bytes: write first, then fill in the length.
  ensure(4 + n * 3);
  const len = buf.write(s, pos + 4, 'utf8');
  buf.writeUInt32LE(len, pos);
  pos += 4 + len;
}

function presence(r: AuditRecord): number {
  const t = r.trace;
  let bits = 0;
  if (r.upstreamMs !== undefined) bits |= OPT_UPSTREAM;
  if (t.parentSpanId !== undefined) bits |= OPT_PARENT;
  if (t.state !== undefined) bits |= OPT_STATE;
  if (r.rule !== undefined) bits |= OPT_RULE;
  if (r.approval !== undefined) bits |= OPT_APPROVAL;
  if (r.maskedBy !== undefined) bits |= OPT_MASKED_BY;
  if (r.error !== undefined) bits |= OPT_ERROR;
  if (r.db !== undefined) bits |= OPT_DB;
  if (r.http !== undefined) bits |= OPT_HTTP;
  if (r.genAi !== undefined) bits |= OPT_GENAI;
  if (r.payload !== undefined) bits |= OPT_PAYLOAD;
  if (r.mcp !== undefined) bits |= OPT_MCP;
  return bits;
}

/**
 * The record in the spool format. The result is a view into a buffer reused by the next call:
 * copy it (Spool.append does) before encoding another record.
 */
export function encodeRecord(r: AuditRecord): Buffer {
  pos = 0;
  const t = r.trace;
  const bits = presence(r);
  u8(FORMAT_BINARY_V1);
  u16(bits);
  str(r.id);
  str(r.kind);
  str(r.session);
  f64(r.seq);
  f64(r.start);
  f64(r.durationMs);
  if (bits & OPT_UPSTREAM) f64(r.upstreamMs!);
  str(t.traceId);
  str(t.spanId);
  if (bits & OPT_PARENT) str(t.parentSpanId!);
  f64(t.flags);
  if (bits & OPT_STATE) str(t.state!);
  str(r.policy);
  str(r.target);
  str(r.decision);
  str(r.reason);
  if (bits & OPT_RULE) str(r.rule!);
  str(r.identity.subject);
  const groups = r.identity.groups;
  u32(groups.length);
  for (let i = 0; i < groups.length; i++) str(groups[i]);
  f64(r.masked);
  if (bits & OPT_APPROVAL) str(JSON.stringify(r.approval));
  if (bits & OPT_MASKED_BY) encodeCounts(r.maskedBy!);
  if (bits & OPT_ERROR) str(r.error!);
  if (bits & OPT_DB) encodeDb(r.db!);
  if (bits & OPT_HTTP) encodeHttp(r.http!);
  if (bits & OPT_GENAI) str(JSON.stringify(r.genAi));
  if (bits & OPT_PAYLOAD) encodePayload(r.payload!);
  if (bits & OPT_MCP) str(JSON.stringify(r.mcp));
  return buf.subarray(0, pos);
}

function encodeCounts(by: Record<string, number>): void {
  let n = 0;
  for (const k in by) if (by[k] !== undefined) n++;
  u32(n);
  for (const k in by) {
    if (by[k] === undefined) continue;
    str(k);
    f64(by[k]);
  }
}

function encodeDb(db: NonNullable<AuditRecord['db']>): void {
  u8((db.namespace !== undefined ? DB_NAMESPACE : 0) | (db.params !== undefined ? DB_PARAMS : 0));
  str(db.system);
  if (db.namespace !== undefined) str(db.namespace);
  str(db.text);
  u32(db.operations.length);
  for (let i = 0; i < db.operations.length; i++) str(db.operations[i]);
  str(db.protocol);
  f64(db.rows);
  if (db.params === undefined) return;
  u32(db.params.length);
  for (const p of db.params) {
    if (p === null || p === undefined) u8(0);
    else {
      u8(1);
      str(p);
    }
  }
}

function encodeHttp(h: NonNullable<AuditRecord['http']>): void {
  u8(
    (h.route !== undefined ? HTTP_ROUTE : 0) |
      (h.url !== undefined ? HTTP_URL : 0) |
      (h.serverAddress !== undefined ? HTTP_ADDRESS : 0) |
      (h.serverPort !== undefined ? HTTP_PORT : 0) |
      (h.tunnel !== undefined ? HTTP_TUNNEL : 0),
  );
  str(h.method);
  if (h.route !== undefined) str(h.route);
  str(h.path);
  if (h.url !== undefined) str(h.url);
  f64(h.status);
  if (h.serverAddress !== undefined) str(h.serverAddress);
  if (h.serverPort !== undefined) f64(h.serverPort);
  if (h.tunnel !== undefined) u8(h.tunnel ? 1 : 0);
}

function encodePayload(p: NonNullable<AuditRecord['payload']>): void {
  u8(
    (p.request !== undefined ? PAYLOAD_REQUEST : 0) |
      (p.response !== undefined ? PAYLOAD_RESPONSE : 0) |
      (p.truncated !== undefined ? PAYLOAD_TRUNCATED : 0),
  );
  if (p.request !== undefined) str(p.request);
  if (p.response !== undefined) str(p.response);
  if (p.truncated !== undefined) u8(p.truncated ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// Decoding (off the hot path: the export thread and `warden replay`).

class Reader {
  pos = 0;
  constructor(private readonly b: Buffer) {}

  private need(n: number): void {
    if (this.pos + n > this.b.length) throw new RecordFormatError(`audit record ends early (at byte ${this.pos} of ${this.b.length})`);
  }

  u8(): number {
    this.need(1);
    return this.b[this.pos++];
  }

  u16(): number {
    this.need(2);
    const v = this.b.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.b.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.b.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  str(): string {
    const n = this.u32();
    this.need(n);
    const s = this.b.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  json<T>(): T {
    return JSON.parse(this.str()) as T;
  }
}

function decodeBinary(b: Buffer): AuditRecord {
  const rd = new Reader(b);
  rd.u8(); // the format byte
  const bits = rd.u16();
  const id = rd.str();
  const kind = rd.str() as AuditRecord['kind'];
  const session = rd.str();
  const seq = rd.f64();
  const start = rd.f64();
  const durationMs = rd.f64();
  const upstreamMs = bits & OPT_UPSTREAM ? rd.f64() : undefined;
  // Key order as startTrace() builds it: traceId, spanId, parentSpanId, flags, state.
  const trace = { traceId: rd.str(), spanId: rd.str() } as AuditRecord['trace'];
  if (bits & OPT_PARENT) trace.parentSpanId = rd.str();
  trace.flags = rd.f64();
  if (bits & OPT_STATE) trace.state = rd.str();
  const r: AuditRecord = {
    v: 1,
    id,
    kind,
    session,
    seq,
    start,
    durationMs,
    trace,
    policy: rd.str(),
    target: rd.str(),
    decision: rd.str() as AuditRecord['decision'],
    reason: rd.str(),
    identity: { subject: '', groups: [] },
    masked: 0,
  };
  const rule = bits & OPT_RULE ? rd.str() : undefined;
  r.identity.subject = rd.str();
  for (let n = rd.u32(); n > 0; n--) r.identity.groups.push(rd.str());
  r.masked = rd.f64();
  // Optional keys in the order records.ts adds them.
  if (upstreamMs !== undefined) r.upstreamMs = upstreamMs;
  if (rule !== undefined) r.rule = rule;
  if (bits & OPT_APPROVAL) r.approval = rd.json();
  if (bits & OPT_MASKED_BY) {
    const by: Record<string, number> = {};
    for (let n = rd.u32(); n > 0; n--) {
      const k = rd.str();
      by[k] = rd.f64();
    }
    r.maskedBy = by;
  }
  if (bits & OPT_ERROR) r.error = rd.str();
  if (bits & OPT_DB) r.db = decodeDb(rd);
  if (bits & OPT_HTTP) r.http = decodeHttp(rd);
  if (bits & OPT_GENAI) r.genAi = rd.json();
  if (bits & OPT_PAYLOAD) r.payload = decodePayload(rd);
  if (bits & OPT_MCP) r.mcp = rd.json();
  if (rd.pos !== b.length) throw new RecordFormatError(`audit record has ${b.length - rd.pos} bytes left over after decoding`);
  return r;
}

function decodeDb(rd: Reader): NonNullable<AuditRecord['db']> {
  const f = rd.u8();
  const db = { system: rd.str() } as NonNullable<AuditRecord['db']>;
  if (f & DB_NAMESPACE) db.namespace = rd.str();
  db.text = rd.str();
  const ops: string[] = [];
  for (let n = rd.u32(); n > 0; n--) ops.push(rd.str());
  db.operations = ops;
  db.protocol = rd.str() as 'simple' | 'extended';
  db.rows = rd.f64();
  if (f & DB_PARAMS) {
    const params: Array<string | null> = [];
    for (let n = rd.u32(); n > 0; n--) params.push(rd.u8() ? rd.str() : null);
    db.params = params;
  }
  return db;
}

function decodeHttp(rd: Reader): NonNullable<AuditRecord['http']> {
  const f = rd.u8();
  const h: Partial<NonNullable<AuditRecord['http']>> = {};
  h.method = rd.str();
  if (f & HTTP_ROUTE) h.route = rd.str();
  h.path = rd.str();
  if (f & HTTP_URL) h.url = rd.str();
  h.status = rd.f64();
  if (f & HTTP_ADDRESS) h.serverAddress = rd.str();
  if (f & HTTP_PORT) h.serverPort = rd.f64();
  if (f & HTTP_TUNNEL) h.tunnel = rd.u8() === 1;
  return h as NonNullable<AuditRecord['http']>;
}

function decodePayload(rd: Reader): NonNullable<AuditRecord['payload']> {
  const f = rd.u8();
  const p: NonNullable<AuditRecord['payload']> = {};
  if (f & PAYLOAD_REQUEST) p.request = rd.str();
  if (f & PAYLOAD_RESPONSE) p.response = rd.str();
  if (f & PAYLOAD_TRUNCATED) p.truncated = rd.u8() === 1;
  return p;
}

/**
 * A spool payload as an audit record: the binary format, or the JSON one older sidecars wrote.
 * Throws RecordFormatError for anything else (the caller counts it and goes on).
 */
export function decodeRecord(payload: Buffer): AuditRecord {
  if (payload.length === 0) throw new RecordFormatError('empty audit record');
  const first = payload[0];
  if (first === FORMAT_BINARY_V1) return decodeBinary(payload);
  if (first === JSON_OPEN_BRACE) {
    try {
      return JSON.parse(payload.toString('utf8')) as AuditRecord;
    } catch (e) {
      throw new RecordFormatError(`audit record is neither binary nor JSON (${(e as Error).message})`);
    }
  }
  throw new RecordFormatError(`unknown audit record format 0x${first.toString(16).padStart(2, '0')}`);
}
