// Pure OTLP decoding for the test receiver: an Export*ServiceRequest body (protobuf, decoded with
// the official message definitions beside this file, or OTLP/JSON) in, flat records out. No I/O
// besides loading the .proto files once.
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

export type OtlpSignal = 'traces' | 'logs' | 'metrics';
export type OtlpEncoding = 'protobuf' | 'json';

/** An OTLP AnyValue as a plain JS value: kvlists become objects, arrays arrays, bytes Buffers. */
export type AttrValue = string | number | bigint | boolean | Buffer | null | AttrValue[] | { [key: string]: AttrValue };
export type Attributes = Record<string, AttrValue>;

export interface FlatScope {
  name: string;
  version?: string;
  attributes: Attributes;
}

export interface FlatSpanEvent {
  name: string;
  timeNs: bigint;
  attributes: Attributes;
}

export interface FlatSpanLink {
  traceId: string;
  spanId: string;
  traceState?: string;
  attributes: Attributes;
}

export interface FlatSpan {
  resource: Attributes;
  scope: FlatScope;
  /** 32 lower-case hex. */
  traceId: string;
  /** 16 lower-case hex. */
  spanId: string;
  /** 16 lower-case hex, absent for a root span. */
  parentSpanId?: string;
  traceState?: string;
  flags?: number;
  name: string;
  /** SpanKind as its enum number (1 internal, 2 server, 3 client, 4 producer, 5 consumer). */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  /** Epoch milliseconds (fractional), for convenience. */
  startMs: number;
  endMs: number;
  /** StatusCode as its enum number (0 unset, 1 ok, 2 error). */
  status: { code: number; message?: string };
  attributes: Attributes;
  events: FlatSpanEvent[];
  links: FlatSpanLink[];
}

export interface FlatLog {
  resource: Attributes;
  scope: FlatScope;
  timeNs: bigint;
  observedTimeNs: bigint;
  severityNumber: number;
  severityText?: string;
  /** A string body, or the structured body as a plain object / array. */
  body?: AttrValue;
  attributes: Attributes;
  eventName?: string;
  flags?: number;
  traceId?: string;
  spanId?: string;
}

export type FlatMetricType = 'sum' | 'gauge' | 'histogram' | 'exponentialHistogram' | 'summary';

export interface FlatDataPoint {
  attributes: Attributes;
  startNs: bigint;
  timeNs: bigint;
  /** Sum and gauge points. */
  value?: number;
  /** Histogram and summary points. */
  count?: number;
  sum?: number;
  min?: number;
  max?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
}

export interface FlatMetric {
  resource: Attributes;
  scope: FlatScope;
  name: string;
  description?: string;
  unit?: string;
  type: FlatMetricType;
  /** AggregationTemporality as its enum number (1 delta, 2 cumulative), for sums and histograms. */
  temporality?: number;
  isMonotonic?: boolean;
  dataPoints: FlatDataPoint[];
}

export interface DecodedExport {
  spans: FlatSpan[];
  logs: FlatLog[];
  metrics: FlatMetric[];
}

const SERVICE: Record<OtlpSignal, { file: string; request: string; response: string }> = {
  traces: {
    file: 'opentelemetry/proto/collector/trace/v1/trace_service.proto',
    request: 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest',
    response: 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse',
  },
  logs: {
    file: 'opentelemetry/proto/collector/logs/v1/logs_service.proto',
    request: 'opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest',
    response: 'opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse',
  },
  metrics: {
    file: 'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
    request: 'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest',
    response: 'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse',
  },
};

let root: protobuf.Root | undefined;

/** The OTLP messages, loaded once; imports resolve inside this folder, as protoc's include path would. */
function otlpRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => path.resolve(__dirname, target);
  r.loadSync(Object.values(SERVICE).map((s) => s.file));
  r.resolveAll();
  root = r;
  return r;
}

/** The empty Export*ServiceResponse (no partial_success) in the request's encoding. */
export function exportResponse(signal: OtlpSignal, encoding: OtlpEncoding): Buffer {
  if (encoding === 'json') return Buffer.from('{}');
  const type = otlpRoot().lookupType(SERVICE[signal].response);
  return Buffer.from(type.encode(type.create({})).finish());
}

/** Decodes one export request body (already decompressed). Throws with a clear message on bad input. */
export function decodeExport(signal: OtlpSignal, encoding: OtlpEncoding, body: Buffer): DecodedExport {
  const doc = encoding === 'protobuf' ? protobufToObject(signal, body) : jsonToObject(signal, body);
  const ids: IdEncoding = encoding === 'protobuf' ? 'bytes' : 'hex';
  const out: DecodedExport = { spans: [], logs: [], metrics: [] };
  if (signal === 'traces') out.spans = flattenSpans(doc, ids);
  else if (signal === 'logs') out.logs = flattenLogs(doc, ids);
  else out.metrics = flattenMetrics(doc);
  return out;
}

type Obj = Record<string, unknown>;

function protobufToObject(signal: OtlpSignal, body: Buffer): Obj {
  const type = otlpRoot().lookupType(SERVICE[signal].request);
  const msg = type.decode(body);
  // int64/fixed64 as decimal strings (exact), enums as numbers, bytes stay Buffers: the same
  // shape OTLP/JSON has, except for ids and bytes, which the flatteners handle per encoding.
  return type.toObject(msg, { longs: String, enums: Number, defaults: false, arrays: true }) as Obj;
}

function jsonToObject(signal: OtlpSignal, body: Buffer): Obj {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new Error(`OTLP/JSON ${signal} request is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObj(doc)) throw new Error(`OTLP/JSON ${signal} request must be a JSON object`);
  return doc;
}

/** protobuf carries ids as bytes; OTLP/JSON as hex strings (not base64, unlike proto3 JSON). */
type IdEncoding = 'bytes' | 'hex';

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

function list(v: unknown): Obj[] {
  return Array.isArray(v) ? v.filter(isObj) : [];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function num(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v !== '' && !Number.isNaN(Number(v))) return Number(v);
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

function big(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return BigInt(Math.trunc(v));
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  return 0n;
}

/** int64 attribute values: a number when exact, otherwise a bigint. */
function int(v: unknown): number | bigint {
  const b = big(v);
  return b <= BigInt(Number.MAX_SAFE_INTEGER) && b >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(b) : b;
}

function id(v: unknown, ids: IdEncoding): string | undefined {
  if (ids === 'bytes') return Buffer.isBuffer(v) || v instanceof Uint8Array ? nonEmpty(Buffer.from(v).toString('hex')) : undefined;
  return typeof v === 'string' ? nonEmpty(v.toLowerCase()) : undefined;
}

function nonEmpty(hex: string): string | undefined {
  return hex === '' || /^0+$/.test(hex) ? undefined : hex;
}

function nsToMs(ns: bigint): number {
  return Number(ns / 1000n) / 1000;
}

function anyValue(v: unknown, ids: IdEncoding): AttrValue {
  if (!isObj(v)) return null;
  if ('stringValue' in v) return String(v.stringValue);
  if ('boolValue' in v) return Boolean(v.boolValue);
  if ('intValue' in v) return int(v.intValue);
  if ('doubleValue' in v) return num(v.doubleValue) ?? null;
  if ('arrayValue' in v) return list(isObj(v.arrayValue) ? v.arrayValue.values : undefined).map((x) => anyValue(x, ids));
  if ('kvlistValue' in v) return attributes(isObj(v.kvlistValue) ? v.kvlistValue.values : undefined, ids);
  if ('bytesValue' in v) {
    const b = v.bytesValue;
    // OTLP/JSON keeps proto3's base64 for bytes values (only trace/span ids are hex).
    return Buffer.isBuffer(b) || b instanceof Uint8Array ? Buffer.from(b) : Buffer.from(String(b), 'base64');
  }
  return null;
}

function attributes(kvs: unknown, ids: IdEncoding): Attributes {
  const out: Attributes = {};
  for (const kv of list(kvs)) {
    if (typeof kv.key === 'string') out[kv.key] = anyValue(kv.value, ids);
  }
  return out;
}

function scopeOf(v: unknown, ids: IdEncoding): FlatScope {
  const s = isObj(v) ? v : {};
  return { name: typeof s.name === 'string' ? s.name : '', version: str(s.version), attributes: attributes(s.attributes, ids) };
}

function resourceOf(v: unknown, ids: IdEncoding): Attributes {
  return attributes(isObj(v) ? v.attributes : undefined, ids);
}

function flattenSpans(doc: Obj, ids: IdEncoding): FlatSpan[] {
  const out: FlatSpan[] = [];
  for (const rs of list(doc.resourceSpans)) {
    const resource = resourceOf(rs.resource, ids);
    for (const ss of list(rs.scopeSpans)) {
      const scope = scopeOf(ss.scope, ids);
      for (const s of list(ss.spans)) out.push(flatSpan(s, { resource, scope, ids }));
    }
  }
  return out;
}

function flatSpan(s: Obj, ctx: { resource: Attributes; scope: FlatScope; ids: IdEncoding }): FlatSpan {
  const { ids } = ctx;
  const startNs = big(s.startTimeUnixNano);
  const endNs = big(s.endTimeUnixNano);
  const status = isObj(s.status) ? s.status : {};
  return {
    resource: ctx.resource,
    scope: ctx.scope,
    traceId: id(s.traceId, ids) ?? '',
    spanId: id(s.spanId, ids) ?? '',
    parentSpanId: id(s.parentSpanId, ids),
    traceState: str(s.traceState),
    flags: num(s.flags),
    name: typeof s.name === 'string' ? s.name : '',
    kind: num(s.kind) ?? 0,
    startNs,
    endNs,
    startMs: nsToMs(startNs),
    endMs: nsToMs(endNs),
    status: { code: num(status.code) ?? 0, message: str(status.message) },
    attributes: attributes(s.attributes, ids),
    events: list(s.events).map((e) => ({
      name: String(e.name ?? ''),
      timeNs: big(e.timeUnixNano),
      attributes: attributes(e.attributes, ids),
    })),
    links: list(s.links).map((l) => ({
      traceId: id(l.traceId, ids) ?? '',
      spanId: id(l.spanId, ids) ?? '',
      traceState: str(l.traceState),
      attributes: attributes(l.attributes, ids),
    })),
  };
}

function flattenLogs(doc: Obj, ids: IdEncoding): FlatLog[] {
  const out: FlatLog[] = [];
  for (const rl of list(doc.resourceLogs)) {
    const resource = resourceOf(rl.resource, ids);
    for (const sl of list(rl.scopeLogs)) {
      const scope = scopeOf(sl.scope, ids);
      for (const r of list(sl.logRecords)) {
        out.push({
          resource,
          scope,
          timeNs: big(r.timeUnixNano),
          observedTimeNs: big(r.observedTimeUnixNano),
          severityNumber: num(r.severityNumber) ?? 0,
          severityText: str(r.severityText),
          body: r.body === undefined ? undefined : anyValue(r.body, ids),
          attributes: attributes(r.attributes, ids),
          eventName: str(r.eventName),
          flags: num(r.flags),
          traceId: id(r.traceId, ids),
          spanId: id(r.spanId, ids),
        });
      }
    }
  }
  return out;
}

const METRIC_TYPES: FlatMetricType[] = ['sum', 'gauge', 'histogram', 'exponentialHistogram', 'summary'];

function flattenMetrics(doc: Obj): FlatMetric[] {
  const out: FlatMetric[] = [];
  for (const rm of list(doc.resourceMetrics)) {
    // Metric payloads carry no trace/span ids outside exemplars (not flattened), so ids do not matter.
    const resource = resourceOf(rm.resource, 'hex');
    for (const sm of list(rm.scopeMetrics)) {
      const scope = scopeOf(sm.scope, 'hex');
      for (const m of list(sm.metrics)) {
        const type = METRIC_TYPES.find((t) => isObj(m[t]));
        if (!type) continue;
        const data = m[type] as Obj;
        out.push({
          resource,
          scope,
          name: String(m.name ?? ''),
          description: str(m.description),
          unit: str(m.unit),
          type,
          temporality: num(data.aggregationTemporality),
          isMonotonic: type === 'sum' ? data.isMonotonic === true : undefined,
          dataPoints: list(data.dataPoints).map(dataPoint),
        });
      }
    }
  }
  return out;
}

function dataPoint(p: Obj): FlatDataPoint {
  const point: FlatDataPoint = {
    attributes: attributes(p.attributes, 'hex'),
    startNs: big(p.startTimeUnixNano),
    timeNs: big(p.timeUnixNano),
  };
  const value = num(p.asDouble) ?? num(p.asInt);
  if (value !== undefined) point.value = value;
  if (p.count !== undefined) point.count = num(p.count);
  if (p.sum !== undefined) point.sum = num(p.sum);
  if (p.min !== undefined) point.min = num(p.min);
  if (p.max !== undefined) point.max = num(p.max);
  if (Array.isArray(p.bucketCounts)) point.bucketCounts = p.bucketCounts.map((c) => num(c) ?? 0);
  if (Array.isArray(p.explicitBounds)) point.explicitBounds = p.explicitBounds.map((b) => num(b) ?? 0);
  return point;
}
