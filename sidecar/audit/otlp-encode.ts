// OTLP protobuf (ExportTraceServiceRequest / ExportLogsServiceRequest) straight from audit records.
// Hand-written because it is the audit trail's largest cost: the SDK's generic serializer spends
// ~30 µs per record (ReadableSpan objects, a size-estimation pass, hex decoding, measured with
// `node dist/bench/audit.js`); this writes the fixed shape of our spans in one pass. Field numbers
// are opentelemetry-proto's (trace/v1, logs/v1, common/v1, resource/v1); the test decodes the
// output with those definitions and compares it with the SDK serializer's.
import type { Attributes } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { AuditRecord } from '../../common/audit/record';
import type { MetricsSnapshot } from '../../common/metrics';
import { SCOPE, SPAN } from '../../common/audit/names';
import { approvalWaitAttributes, approvalWaitStatus, logAttributes, logBody, spanAttributes, spanName, spanStatus } from './to-otlp';

/** A growable protobuf writer; nested messages reserve 5 bytes for their length and close up after. */
class Writer {
  buf = Buffer.allocUnsafe(64 * 1024);
  pos = 0;
  private readonly stack: number[] = [];

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

  hexBytes(field: number, hex: string): void {
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

  result(): Uint8Array {
    return new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.pos).slice();
  }
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

function keyValue(w: Writer, field: number, key: string, v: unknown): void {
  // Strings and small non-negative integers, the common case, have lengths known up front: no
  // reserve-and-shift for the two nested messages.
  if (typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) {
    const klen = utf8Length(key);
    let inner: number;
    let vlen = 0;
    if (typeof v === 'string') {
      vlen = utf8Length(v);
      inner = 1 + varintSize(vlen) + vlen;
    } else {
      inner = 1 + varintSize(v);
    }
    const total = 1 + varintSize(klen) + klen + 1 + varintSize(inner) + inner;
    w.tag(field, 2);
    w.varint(total);
    w.tag(1, 2);
    w.varint(klen);
    w.raw(key, klen);
    w.tag(2, 2);
    w.varint(inner);
    if (typeof v === 'string') {
      w.tag(1, 2);
      w.varint(vlen);
      w.raw(v, vlen);
    } else {
      w.tag(3, 0);
      w.varint(v);
    }
    return;
  }
  w.begin(field);
  w.string(1, key);
  anyValue(w, 2, v);
  w.end();
}

function attributes(w: Writer, field: number, attrs: Attributes | Record<string, unknown>): void {
  for (const k in attrs) {
    const v = attrs[k];
    if (v !== undefined && v !== null) keyValue(w, field, k, v);
  }
}

function writeResource(w: Writer, resource: Resource): void {
  w.begin(1); // resource
  attributes(w, 1, resource.attributes);
  w.end();
}

function scope(w: Writer): void {
  w.begin(1);
  w.string(1, SCOPE.name);
  w.string(2, SCOPE.version);
  w.end();
}

function nanos(ms: number): bigint {
  const whole = Math.floor(ms);
  return BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
}

const SERVER = 2; // SpanKind SERVER in the proto enum (SPAN_KIND_SERVER = 2)

function span(w: Writer, s: { traceId: string; spanId: string; parent?: string; remoteParent: boolean; state?: string; name: string; start: number; durationMs: number; attrs: Attributes; status: { code: number; message?: string }; flags: number }): void {
  w.begin(2); // ScopeSpans.spans
  w.hexBytes(1, s.traceId);
  w.hexBytes(2, s.spanId);
  if (s.state) w.string(3, s.state);
  if (s.parent) w.hexBytes(4, s.parent);
  w.string(5, s.name);
  w.tag(6, 0);
  w.varint(SERVER);
  w.fixed64(7, nanos(s.start));
  w.fixed64(8, nanos(s.start + s.durationMs));
  attributes(w, 9, s.attrs);
  if (s.status.code !== 0) {
    w.begin(15);
    if (s.status.message) w.string(2, s.status.message);
    w.tag(3, 0);
    w.varint(s.status.code);
    w.end();
  }
  w.fixed32(16, (s.flags & 0xff) | (s.remoteParent ? 0x300 : 0x100)); // W3C flags + the "parent is remote" bits
  w.end();
}

/** ExportTraceServiceRequest for these records: one span each, plus the approval-wait child spans. */
export function encodeTraces(records: readonly AuditRecord[], resource: Resource): Uint8Array {
  const w = new Writer();
  w.begin(1); // resource_spans
  writeResource(w, resource);
  w.begin(2); // scope_spans
  scope(w);
  for (const r of records) {
    const t = r.trace;
    span(w, { traceId: t.traceId, spanId: t.spanId, parent: t.parentSpanId, remoteParent: t.parentSpanId !== undefined, state: t.state, name: spanName(r), start: r.start, durationMs: r.durationMs, attrs: spanAttributes(r), status: spanStatus(r), flags: t.flags });
    if (r.approval) {
      const a = r.approval;
      span(w, { traceId: t.traceId, spanId: a.spanId, parent: t.spanId, remoteParent: false, name: SPAN.approvalWait, start: a.waitStart, durationMs: a.waitMs, attrs: approvalWaitAttributes(r, a), status: approvalWaitStatus(a), flags: t.flags });
    }
  }
  w.end();
  w.end();
  return w.result();
}

const SEVERITY_INFO = 9;
const SEVERITY_WARN = 13;

/** ExportLogsServiceRequest: one log record per audit record, linked to its span. */
export function encodeLogs(records: readonly AuditRecord[], resource: Resource): Uint8Array {
  const w = new Writer();
  w.begin(1); // resource_logs
  writeResource(w, resource);
  w.begin(2); // scope_logs
  scope(w);
  for (const r of records) {
    const denied = r.decision === 'deny' || (r.approval !== undefined && !r.approval.approved);
    const warn = denied || r.error !== undefined;
    const time = nanos(r.start + r.durationMs);
    w.begin(2); // log_records
    w.fixed64(1, time);
    w.tag(2, 0);
    w.varint(warn ? SEVERITY_WARN : SEVERITY_INFO);
    w.string(3, warn ? 'WARN' : 'INFO');
    anyValue(w, 5, logBody(r));
    attributes(w, 6, logAttributes(r));
    w.fixed32(8, r.trace.flags & 0xff);
    w.hexBytes(9, r.trace.traceId);
    w.hexBytes(10, r.trace.spanId);
    w.fixed64(11, time);
    w.string(12, 'warden.audit');
    w.end();
  }
  w.end();
  w.end();
  return w.result();
}

const TEMPORALITY_CUMULATIVE = 2;

/**
 * ExportMetricsServiceRequest for a registry snapshot, as the SDK's reader over registryProducer
 * (otlp-metrics.ts) sends it: monotonic counters as cumulative sums, gauges as gauges, histograms
 * with explicit bounds, every value a double, no min/max. Hand-written so the export thread needs
 * neither the metrics SDK nor the protobuf runtime of the SDK's proto exporter (memory).
 */
export function encodeMetrics(snap: MetricsSnapshot, resource: Resource, startMs: number, nowMs: number): Uint8Array {
  const w = new Writer();
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
