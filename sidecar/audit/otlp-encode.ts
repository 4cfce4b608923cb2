// OTLP protobuf (ExportTraceServiceRequest / ExportLogsServiceRequest) straight from audit records.
// Hand-written because it is the audit trail's largest cost: the SDK's generic serializer spends
// ~30 µs per record (ReadableSpan objects, a size-estimation pass, hex decoding, measured with
// `node dist/bench/audit.js`); this writes the fixed shape of our spans in one pass. Field numbers
// are opentelemetry-proto's (trace/v1, logs/v1, common/v1, resource/v1); the test decodes the
// output with those definitions and compares it with the SDK serializer's.
import type { Attributes } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { AuditApproval, AuditRecord } from '../../common/audit/record';
import type { MetricsSnapshot } from '../../common/metrics';
import { ATTR, SCOPE, SPAN } from '../../common/audit/names';
import { errorType, mcpSummary, spanName, spanStatus } from './to-otlp';
import { copyAscii } from './ascii';

/** A key's bytes inside a KeyValue: field 1 (key), its length, its UTF-8. */
type KeyBytes = Uint8Array;

/** A growable protobuf writer; nested messages reserve 5 bytes for their length and close up after. */
class Writer {
  buf = Buffer.allocUnsafe(64 * 1024);
  pos = 0;
  private readonly stack: number[] = [];

  /** Starts a new message in the same buffer (the encoders reuse one writer: no regrowing per batch). */
  reset(): void {
    this.pos = 0;
    this.stack.length = 0;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  varint(v: number): void {
    this.ensure(10);
    while (v > 0x7f) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  string(field: number, s: string): void {
    const len = utf8Length(s);
    this.tag(field, 2);
    this.varint(len);
    this.raw(s, len);
  }

  /** Writes s, whose UTF-8 length is len: short ASCII by hand (a native call costs more). */
  raw(s: string, len: number): void {
    this.ensure(len);
    if (len === s.length && len < 64) {
      for (let i = 0; i < len; i++) this.buf[this.pos + i] = s.charCodeAt(i);
      this.pos += len;
    } else {
      this.pos += this.buf.write(s, this.pos, 'utf8');
    }
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    const buf = this.buf;
    const p = this.pos;
    if (b.length < 64) for (let i = 0; i < b.length; i++) buf[p + i] = b[i];
    else buf.set(b, p);
    this.pos += b.length;
  }

  /** Trace and span ids: hex pairs decoded by hand (Buffer#write 'hex' costs a native call and an encoding lookup per id). */
  hexBytes(field: number, hex: string): void {
    const n = hex.length >>> 1;
    if ((hex.length & 1) === 0 && n < 128) {
      this.ensure(n + 2);
      const buf = this.buf;
      const p = this.pos + 2;
      let ok = true;
      for (let i = 0; i < n; i++) {
        const hi = hexDigit(hex.charCodeAt(2 * i));
        const lo = hexDigit(hex.charCodeAt(2 * i + 1));
        if ((hi | lo) < 0) {
          ok = false;
          break;
        }
        buf[p + i] = (hi << 4) | lo;
      }
      if (ok) {
        buf[this.pos] = (field << 3) | 2;
        buf[this.pos + 1] = n;
        this.pos = p + n;
        return;
      }
    }
    // Not hex (never for our ids): as Buffer#write does it.
    this.tag(field, 2);
    this.varint(hex.length / 2);
    this.ensure(hex.length / 2);
    this.pos += this.buf.write(hex, this.pos, 'hex');
  }

  fixed64(field: number, nanos: bigint): void {
    this.tag(field, 1);
    this.ensure(8);
    this.buf.writeBigUInt64LE(nanos, this.pos);
    this.pos += 8;
  }

  /**
   * A time as fixed64 nanoseconds from epoch milliseconds (fractional): the same value as
   * nanos(ms), without BigInt arithmetic (profiled: BigInt per timestamp cost ~1 µs per record).
   */
  time(field: number, ms: number): void {
    const whole = Math.floor(ms);
    const frac = Math.round((ms - whole) * 1e6);
    // whole * 1e6 + frac in two 32-bit halves, every step exact in a double.
    const lo32 = whole % 4294967296;
    const hi32 = Math.floor(whole / 4294967296);
    const low = lo32 * 1e6 + frac; // < 2^53
    const lo = low % 4294967296;
    const hi = hi32 * 1e6 + Math.floor(low / 4294967296);
    this.tag(field, 1);
    this.ensure(8);
    this.buf.writeUInt32LE(lo, this.pos);
    this.buf.writeUInt32LE(hi, this.pos + 4);
    this.pos += 8;
  }

  fixed32(field: number, v: number): void {
    this.tag(field, 5);
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  /** A fixed64 without its tag (inside a packed repeated field). */
  raw64(v: bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(v, this.pos);
    this.pos += 8;
  }

  /** A double without its tag (inside a packed repeated field). */
  rawDouble(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  double(field: number, v: number): void {
    this.tag(field, 1);
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  int64(field: number, v: number): void {
    this.tag(field, 0);
    if (v >= 0) return this.varint(v);
    // Two's complement in 10 bytes for negative int64.
    let n = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (n > 0x7fn) {
      this.buf[this.pos++] = Number(n & 0x7fn) | 0x80;
      n >>= 7n;
    }
    this.buf[this.pos++] = Number(n);
  }

  begin(field: number): void {
    this.tag(field, 2);
    this.ensure(5);
    this.stack.push(this.pos);
    this.pos += 5;
  }

  end(): void {
    const start = this.stack.pop()!;
    const len = this.pos - start - 5;
    let n = 1;
    for (let v = len; v > 0x7f; v = Math.floor(v / 128)) n++;
    if (n < 5) this.buf.copyWithin(start + n, start + 5, this.pos);
    let v = len;
    let p = start;
    while (v > 0x7f) {
      this.buf[p++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[p] = v;
    this.pos -= 5 - n;
  }

  /**
   * A KeyValue (as field `field`) with a string value. Short ASCII, nearly every attribute, in one
   * pass: every length then fits one byte and is filled in after the copy.
   */
  kvString(field: number, key: KeyBytes, s: string): void {
    const n = s.length;
    const klen = key.length;
    if (klen + n + 4 < 128) {
      this.ensure(klen + n + 6);
      const buf = this.buf;
      let p = this.pos;
      buf[p++] = (field << 3) | 2;
      const totalAt = p++;
      for (let i = 0; i < klen; i++) buf[p++] = key[i];
      buf[p++] = 0x12; // KeyValue.value
      buf[p++] = n + 2;
      buf[p++] = 0x0a; // AnyValue.string_value
      buf[p++] = n;
      if (copyAscii(buf, p, s)) {
        buf[totalAt] = klen + 2 + n + 2;
        this.pos = p + n;
        return;
      }
    }
    const vlen = utf8Length(s);
    const inner = 1 + varintSize(vlen) + vlen;
    this.tag(field, 2);
    this.varint(klen + 1 + varintSize(inner) + inner);
    this.bytes(key);
    this.tag(2, 2);
    this.varint(inner);
    this.tag(1, 2);
    this.varint(vlen);
    this.raw(s, vlen);
  }

  /** A KeyValue with any value (null: an empty AnyValue, as the SDK writes it). */
  kv(field: number, key: KeyBytes, v: unknown): void {
    if (typeof v === 'string') return this.kvString(field, key, v);
    if (typeof v === 'number' && v >= 0 && Number.isSafeInteger(v)) {
      const inner = 1 + varintSize(v);
      this.tag(field, 2);
      this.varint(key.length + 1 + varintSize(inner) + inner);
      this.bytes(key);
      this.tag(2, 2);
      this.varint(inner);
      this.tag(3, 0);
      this.varint(v);
      return;
    }
    this.begin(field);
    this.bytes(key);
    anyValue(this, 2, v);
    this.end();
  }

  /** A copy of what was written (the exporter keeps it for retries; the buffer is reused). */
  result(): Uint8Array {
    const out = new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.pos).slice();
    // A batch of huge records does not keep its buffer for good.
    if (this.buf.length > 4 * 1024 * 1024) this.buf = Buffer.allocUnsafe(64 * 1024);
    return out;
  }
}

/** A hex digit's value, -1 for anything else. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  c |= 0x20; // lower case
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** The encoders' writer, reused (they run synchronously, one at a time). */
const shared = new Writer();

function writer(): Writer {
  shared.reset();
  return shared;
}

function anyValue(w: Writer, field: number, v: unknown): void {
  w.begin(field);
  if (v === null || v === undefined) {
    // an empty AnyValue, as the SDK writes for null
  } else if (typeof v === 'string') w.string(1, v);
  else if (typeof v === 'boolean') {
    w.tag(2, 0);
    w.varint(v ? 1 : 0);
  } else if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) w.int64(3, v);
    else w.double(4, v);
  } else if (Array.isArray(v)) {
    w.begin(5);
    for (const item of v) anyValue(w, 1, item);
    w.end();
  } else if (v !== null && typeof v === 'object') {
    w.begin(6);
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (x !== undefined) keyValue(w, 1, k, x);
    w.end();
  } else {
    // What is left (bigint, symbol, function) never occurs in a record; a bigint keeps its digits.
    w.string(1, typeof v === 'bigint' ? v.toString() : '');
  }
  w.end();
}

function varintSize(v: number): number {
  let n = 1;
  while (v > 0x7f) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** UTF-8 length without a native call for ASCII (nearly every attribute here). */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s);
  return s.length;
}

/** A key's encoded bytes (field 1 of KeyValue), built once per key name. */
function encodeKey(k: string): KeyBytes {
  const len = Buffer.byteLength(k);
  const out = Buffer.allocUnsafe(1 + varintSize(len) + len);
  let p = 0;
  out[p++] = 0x0a;
  let v = len;
  while (v > 0x7f) {
    out[p++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out[p++] = v;
  out.write(k, p, 'utf8');
  return out;
}

const keyCache = new Map<string, KeyBytes>();
/** Key names seen at run time (resource, labels, detector names) are cached up to this many. */
const KEY_CACHE_MAX = 1024;

function keyBytes(k: string): KeyBytes {
  let b = keyCache.get(k);
  if (b === undefined) {
    b = encodeKey(k);
    if (keyCache.size < KEY_CACHE_MAX) keyCache.set(k, b);
  }
  return b;
}

function keyValue(w: Writer, field: number, key: string, v: unknown): void {
  w.kv(field, keyBytes(key), v);
}

function attributes(w: Writer, field: number, attrs: Attributes | Record<string, unknown>): void {
  for (const k in attrs) {
    const v = attrs[k];
    if (v !== undefined && v !== null) keyValue(w, field, k, v);
  }
}

/** The resource message's bytes, per resource (constant once its attributes are settled). */
const resourceCache = new WeakMap<Resource, Uint8Array>();

function writeResource(w: Writer, resource: Resource): void {
  let b = resourceCache.get(resource);
  if (b === undefined) {
    const tmp = new Writer();
    tmp.begin(1); // resource
    attributes(tmp, 1, resource.attributes);
    tmp.end();
    b = tmp.result();
    if (!resource.asyncAttributesPending) resourceCache.set(resource, b);
  }
  w.bytes(b);
}

const SCOPE_BYTES = ((): Uint8Array => {
  const tmp = new Writer();
  tmp.begin(1);
  tmp.string(1, SCOPE.name);
  tmp.string(2, SCOPE.version);
  tmp.end();
  return tmp.result();
})();

function scope(w: Writer): void {
  w.bytes(SCOPE_BYTES);
}

function nanos(ms: number): bigint {
  const whole = Math.floor(ms);
  return BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
}

const SERVER = 2; // SpanKind SERVER in the proto enum (SPAN_KIND_SERVER = 2)
const STATUS_ERROR = 2;

/** Every fixed attribute key, encoded once. */
const K = Object.fromEntries(Object.entries(ATTR).map(([name, key]) => [name, encodeKey(key)])) as Record<keyof typeof ATTR, KeyBytes>;

/** Span.attributes */
const SPAN_ATTR = 9;

/** An attribute set only when it has a value (to-otlp.ts's `set`: not undefined, not ''). */
function opt(w: Writer, field: number, key: KeyBytes, v: unknown): void {
  if (v === undefined || v === '' || v === null) return;
  w.kv(field, key, v);
}

/** An attribute assigned as it is (skipped only when undefined or null, as attributes() did). */
function put(w: Writer, field: number, key: KeyBytes, v: unknown): void {
  if (v === undefined || v === null) return;
  w.kv(field, key, v);
}

/**
 * The operation span's attributes, written straight from the record: the same keys, order and
 * values as to-otlp.ts's spanAttributes() (kept for the http/json path; the test compares the two
 * through the SDK serializer), without building the object first.
 */
function spanAttributes(w: Writer, r: AuditRecord): void {
  const F = SPAN_ATTR;
  opt(w, F, K.policy, r.policy);
  opt(w, F, K.target, r.target);
  opt(w, F, K.decision, r.decision);
  opt(w, F, K.rule, r.rule);
  opt(w, F, K.reason, r.reason);
  put(w, F, K.maskedCount, r.masked);
  opt(w, F, K.session, r.session);
  put(w, F, K.seq, r.seq);
  opt(w, F, K.auditId, r.id);
  opt(w, F, K.subject, r.identity.subject);
  if (r.identity.groups.length > 0) put(w, F, K.groups, r.identity.groups);
  if (r.upstreamMs !== undefined) put(w, F, K.upstreamMs, Math.round(r.upstreamMs * 1000) / 1000);
  if (r.approval) {
    opt(w, F, K.approvalId, r.approval.id);
    opt(w, F, K.approvalDecidedBy, r.approval.decidedBy);
    opt(w, F, K.approvalOutcome, r.approval.outcome);
  }
  const db = r.db;
  if (db) {
    put(w, F, K.dbSystem, db.system);
    opt(w, F, K.dbNamespace, db.namespace);
    opt(w, F, K.dbQueryText, db.text);
    if (db.operations.length > 0) put(w, F, K.dbOperation, db.operations.length === 1 ? db.operations[0] : `BATCH ${db.operations[0]}`);
    put(w, F, K.dbRows, db.rows);
  }
  const h = r.http;
  if (h) {
    opt(w, F, K.httpMethod, h.method);
    if (h.status > 0) put(w, F, K.httpStatus, h.status);
    opt(w, F, K.httpRoute, h.route);
    opt(w, F, K.urlPath, h.path);
    opt(w, F, K.urlFull, h.url);
    opt(w, F, K.serverAddress, h.serverAddress);
    if (h.serverPort) put(w, F, K.serverPort, h.serverPort);
  }
  const g = r.genAi;
  if (g) {
    opt(w, F, K.genAiProvider, g.provider);
    opt(w, F, K.genAiOperation, g.operation);
    opt(w, F, K.genAiRequestModel, g.requestModel);
    opt(w, F, K.genAiResponseModel, g.responseModel);
    opt(w, F, K.genAiResponseId, g.responseId);
    if (g.inputTokens !== undefined) put(w, F, K.genAiInputTokens, g.inputTokens);
    if (g.outputTokens !== undefined) put(w, F, K.genAiOutputTokens, g.outputTokens);
    if (g.finishReasons?.length) put(w, F, K.genAiFinishReasons, g.finishReasons);
  }
  const m = r.mcp;
  if (m) {
    opt(w, F, K.mcpMethod, m.method);
    opt(w, F, K.jsonrpcRequestId, m.requestId);
    opt(w, F, K.mcpSession, m.sessionId);
    opt(w, F, K.mcpProtocolVersion, m.protocolVersion);
    opt(w, F, K.mcpResourceUri, m.resource);
    opt(w, F, K.genAiToolName, m.tool);
    opt(w, F, K.genAiPromptName, m.prompt);
    if (m.method === 'tools/call') put(w, F, K.genAiOperation, 'execute_tool');
    if (m.errorCode !== undefined) put(w, F, K.rpcStatusCode, String(m.errorCode));
    if (m.pinChanges?.length) {
      put(
        w,
        F,
        K.mcpPinTools,
        m.pinChanges.map((p) => p.tool),
      );
      put(
        w,
        F,
        K.mcpPinExpected,
        m.pinChanges.map((p) => p.expected),
      );
      put(
        w,
        F,
        K.mcpPinActual,
        m.pinChanges.map((p) => p.actual),
      );
    }
    if (m.batch !== undefined) put(w, F, K.mcpBatch, m.batch);
  }
  if (r.error || m) opt(w, F, K.errorType, errorType(r));
}

/** The approval-wait span's attributes: to-otlp.ts's approvalWaitAttributes(), written directly. */
function approvalWaitAttributes(w: Writer, r: AuditRecord, a: AuditApproval): void {
  const F = SPAN_ATTR;
  put(w, F, K.policy, r.policy);
  put(w, F, K.target, r.target);
  put(w, F, K.approvalOutcome, a.outcome);
  opt(w, F, K.rule, r.rule);
  opt(w, F, K.approvalId, a.id);
  opt(w, F, K.approvalDecidedBy, a.decidedBy);
  opt(w, F, K.reason, a.reason);
}

/** Opens a span: its ids (then spanTimes, the attributes, spanTail). */
function spanIds(w: Writer, traceId: string, spanId: string, state: string | undefined, parent: string | undefined): void {
  w.begin(2); // ScopeSpans.spans
  w.hexBytes(1, traceId);
  w.hexBytes(2, spanId);
  if (state) w.string(3, state);
  if (parent) w.hexBytes(4, parent);
}

function spanTimes(w: Writer, name: string, start: number, durationMs: number): void {
  w.string(5, name);
  w.tag(6, 0);
  w.varint(SERVER);
  w.time(7, start);
  w.time(8, start + durationMs);
}

function spanTail(w: Writer, status: { code: number; message?: string }, flags: number, remoteParent: boolean): void {
  if (status.code !== 0) {
    w.begin(15);
    if (status.message) w.string(2, status.message);
    w.tag(3, 0);
    w.varint(status.code);
    w.end();
  }
  w.fixed32(16, (flags & 0xff) | (remoteParent ? 0x300 : 0x100)); // W3C flags + the "parent is remote" bits
  w.end();
}

const UNSET = { code: 0 };

/** Opens a request (traces or logs: the same two levels): the resource, then its one scope. */
function openRequest(w: Writer, resource: Resource): void {
  w.begin(1); // resource_spans / resource_logs
  writeResource(w, resource);
  w.begin(2); // scope_spans / scope_logs
  scope(w);
}

function closeRequest(w: Writer): void {
  w.end();
  w.end();
}

/** A record's span, plus its approval-wait child span. */
function writeSpans(w: Writer, r: AuditRecord): void {
  const t = r.trace;
  spanIds(w, t.traceId, t.spanId, t.state, t.parentSpanId);
  spanTimes(w, spanName(r), r.start, r.durationMs);
  spanAttributes(w, r);
  spanTail(w, spanStatus(r), t.flags, t.parentSpanId !== undefined);
  const a = r.approval;
  if (a) {
    spanIds(w, t.traceId, a.spanId, undefined, t.spanId);
    spanTimes(w, SPAN.approvalWait, a.waitStart, a.waitMs);
    approvalWaitAttributes(w, r, a);
    spanTail(w, a.approved ? UNSET : { code: STATUS_ERROR, message: a.reason }, t.flags, false);
  }
}

/** ExportTraceServiceRequest for these records: one span each, plus the approval-wait child spans. */
export function encodeTraces(records: readonly AuditRecord[], resource: Resource): Uint8Array {
  const w = writer();
  openRequest(w, resource);
  for (const r of records) writeSpans(w, r);
  closeRequest(w);
  return w.result();
}

const SEVERITY_INFO = 9;
const SEVERITY_WARN = 13;

const B = Object.fromEntries(
  [
    'id',
    'kind',
    'session',
    'seq',
    'decision',
    'rule',
    'reason',
    'subject',
    'statement',
    'params',
    'request',
    'status',
    'requestBody',
    'responseBody',
    'truncated',
    'mcp',
  ].map((k) => [k, encodeKey(k)]),
) as Record<string, KeyBytes>;

/** A body entry: kept unless undefined (null: an empty value), as anyValue() writes an object. */
function body(w: Writer, key: KeyBytes, v: unknown): void {
  if (v !== undefined) w.kv(1, key, v);
}

/** The log body: to-otlp.ts's logBody() as a kvlist, written directly. */
function logBody(w: Writer, r: AuditRecord): void {
  w.begin(5); // LogRecord.body
  w.begin(6); // AnyValue.kvlist_value
  body(w, B.id, r.id);
  body(w, B.kind, r.kind);
  body(w, B.session, r.session);
  body(w, B.seq, r.seq);
  body(w, B.decision, r.decision);
  body(w, B.rule, r.rule);
  body(w, B.reason, r.reason);
  body(w, B.subject, r.identity.subject);
  if (r.db) body(w, B.statement, r.db.text);
  if (r.db?.params) body(w, B.params, r.db.params);
  if (r.http) {
    body(w, B.request, `${r.http.method} ${r.http.path}`);
    body(w, B.status, r.http.status);
  }
  if (r.mcp) body(w, B.mcp, mcpSummary(r.mcp));
  if (r.payload?.request !== undefined) body(w, B.requestBody, r.payload.request);
  if (r.payload?.response !== undefined) body(w, B.responseBody, r.payload.response);
  if (r.payload?.truncated) body(w, B.truncated, true);
  w.end();
  w.end();
}

/** LogRecord.attributes */
const LOG_ATTR = 6;

/** The log record's attributes: to-otlp.ts's logAttributes(), written directly. */
function logAttributes(w: Writer, r: AuditRecord): void {
  const F = LOG_ATTR;
  put(w, F, K.auditId, r.id);
  put(w, F, K.decision, r.decision);
  put(w, F, K.target, r.target);
  put(w, F, K.policy, r.policy);
  if (r.rule) put(w, F, K.rule, r.rule);
  if (r.maskedBy) for (const k of Object.keys(r.maskedBy)) put(w, F, keyBytes(`warden.masked.by.${k}`), r.maskedBy[k]);
}

/** A record's log record, linked to its span. */
function writeLogRecord(w: Writer, r: AuditRecord): void {
  const denied = r.decision === 'deny' || (r.approval !== undefined && !r.approval.approved);
  const warn = denied || r.error !== undefined;
  const time = r.start + r.durationMs;
  w.begin(2); // log_records
  w.time(1, time);
  w.tag(2, 0);
  w.varint(warn ? SEVERITY_WARN : SEVERITY_INFO);
  w.string(3, warn ? 'WARN' : 'INFO');
  logBody(w, r);
  logAttributes(w, r);
  w.fixed32(8, r.trace.flags & 0xff);
  w.hexBytes(9, r.trace.traceId);
  w.hexBytes(10, r.trace.spanId);
  w.time(11, time);
  w.string(12, 'warden.audit');
  w.end();
}

/** ExportLogsServiceRequest: one log record per audit record, linked to its span. */
export function encodeLogs(records: readonly AuditRecord[], resource: Resource): Uint8Array {
  const w = writer();
  openRequest(w, resource);
  for (const r of records) writeLogRecord(w, r);
  closeRequest(w);
  return w.result();
}

/**
 * Both requests of an export batch (the same bytes as encodeTraces and encodeLogs), written record
 * by record as the batch is decoded: each decoded record is garbage as soon as it is written.
 * Decoding the whole batch first kept ~1,000 records alive across young-generation collections
 * (1 MB semi-spaces): they were promoted and collected by mark-compacts (--trace-gc under
 * pg-bench, prepared c=8: 13 mark-compacts in the export thread's isolate in 5 s, scavenges
 * freeing 48 MB of 134).
 */
export class BatchEncoder {
  private readonly traces = new Writer();
  private readonly logs = new Writer();
  /** Records added since begin(). */
  count = 0;

  constructor(private readonly resource: Resource) {}

  begin(): void {
    this.traces.reset();
    this.logs.reset();
    this.count = 0;
    openRequest(this.traces, this.resource);
    openRequest(this.logs, this.resource);
  }

  add(r: AuditRecord): void {
    writeSpans(this.traces, r);
    writeLogRecord(this.logs, r);
    this.count++;
  }

  /** The two request bodies (copies: the writers are reused by the next batch). */
  finish(): { traces: Uint8Array; logs: Uint8Array } {
    closeRequest(this.traces);
    closeRequest(this.logs);
    return { traces: this.traces.result(), logs: this.logs.result() };
  }
}

const TEMPORALITY_CUMULATIVE = 2;

/**
 * ExportMetricsServiceRequest for a registry snapshot, as the SDK's reader over registryProducer
 * (otlp-metrics.ts) sends it: monotonic counters as cumulative sums, gauges as gauges, histograms
 * with explicit bounds, every value a double, no min/max. Hand-written so the export thread needs
 * neither the metrics SDK nor the protobuf runtime of the SDK's proto exporter (memory).
 */
export function encodeMetrics(snap: MetricsSnapshot, resource: Resource, startMs: number, nowMs: number): Uint8Array {
  const w = writer();
  const start = nanos(startMs);
  const now = nanos(nowMs);
  w.begin(1); // resource_metrics
  writeResource(w, resource);
  w.begin(2); // scope_metrics
  scope(w);
  for (const c of snap.counters) {
    if (c.points.length === 0) continue;
    w.begin(2); // metrics
    w.string(1, c.name);
    w.string(2, c.help);
    w.begin(c.monotonic ? 7 : 5); // sum | gauge
    for (const p of c.points) {
      w.begin(1); // data_points (NumberDataPoint)
      attributes(w, 7, p.labels);
      w.fixed64(2, start);
      w.fixed64(3, now);
      w.double(4, p.value);
      w.end();
    }
    if (c.monotonic) {
      w.tag(2, 0);
      w.varint(TEMPORALITY_CUMULATIVE);
      w.tag(3, 0);
      w.varint(1);
    }
    w.end();
    w.end();
  }
  for (const h of snap.histograms) {
    if (h.points.length === 0) continue;
    w.begin(2); // metrics
    w.string(1, h.name);
    w.string(2, h.help);
    w.string(3, 's');
    w.begin(9); // histogram
    for (const p of h.points) {
      w.begin(1); // data_points (HistogramDataPoint)
      attributes(w, 9, p.labels);
      w.fixed64(2, start);
      w.fixed64(3, now);
      w.fixed64(4, BigInt(p.count));
      w.double(5, p.sum);
      w.begin(6); // bucket_counts, packed fixed64
      for (const n of p.counts) {
        w.raw64(BigInt(n));
      }
      w.end();
      w.begin(7); // explicit_bounds, packed double
      for (const b of h.bounds) w.rawDouble(b);
      w.end();
      w.end();
    }
    w.tag(2, 0);
    w.varint(TEMPORALITY_CUMULATIVE);
    w.end();
    w.end();
  }
  w.end();
  w.end();
  return w.result();
}
