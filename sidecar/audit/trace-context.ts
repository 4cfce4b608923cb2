// W3C trace context (https://www.w3.org/TR/trace-context/): the agent's `traceparent` parents the
// sidecar's span, so the agent's own trace shows what its sidecar decided. For PostgreSQL the
// header travels in a SQL comment, sqlcommenter style (`/*traceparent='00-...-...-01'*/`), leading
// or trailing. Hand-written: this runs per statement, and the OTel propagator needs a Context.
import type { AuditTrace } from '../../common/audit/record';
import { newSpanId, newTraceId } from './ids';

export interface ParentContext {
  traceId: string;
  spanId: string;
  flags: number;
  state?: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** Parses a `traceparent` value; undefined when absent or invalid (then a new trace starts). */
export function parseTraceparent(value: string | undefined, state?: string): ParentContext | undefined {
  if (!value || value.length < 55 || value.length > 512) return undefined;
  const m = TRACEPARENT.exec(value.trim().toLowerCase());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === 'ff') return undefined;
  // Version 00 has exactly four fields; later versions may append more, which we ignore.
  if (version === '00' && rest !== undefined) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  const validState = state && state.length <= 512 && !/[\r\n]/.test(state) ? state : undefined;
  return { traceId, spanId, flags: parseInt(flags, 16), state: validState };
}

/** The `traceparent` to send upstream: same trace, our span as the parent. */
export function formatTraceparent(t: AuditTrace): string {
  return `00-${t.traceId}-${t.spanId}-${(t.flags & 0xff).toString(16).padStart(2, '0')}`;
}

/** A new span for this operation, in the agent's trace when it sent one. */
export function startTrace(parent: ParentContext | undefined): AuditTrace {
  if (!parent) return { traceId: newTraceId(), spanId: newSpanId(), flags: 1 };
  return { traceId: parent.traceId, spanId: newSpanId(), parentSpanId: parent.spanId, flags: parent.flags, state: parent.state };
}

const COMMENT_KEY = /\b(traceparent|tracestate)\s*=\s*'([^']*)'/g;

/**
 * sqlcommenter: `key='url-encoded value'` pairs in a block comment, at the start or the end of the
 * statement. Cheap when there is none: one `includes` on the text.
 */
export function traceparentFromSql(sql: string): ParentContext | undefined {
  if (!sql.includes('traceparent')) return undefined;
  const comments = [leadingComment(sql), trailingComment(sql)];
  for (const c of comments) {
    if (!c || !c.includes('traceparent')) continue;
    let parent: string | undefined;
    let state: string | undefined;
    for (const m of c.matchAll(COMMENT_KEY)) {
      const value = safeDecode(m[2]);
      if (m[1] === 'traceparent') parent = value;
      else state = value;
    }
    const ctx = parseTraceparent(parent, state);
    if (ctx) return ctx;
  }
  return undefined;
}

function leadingComment(sql: string): string | undefined {
  const start = sql.search(/\S/);
  if (start < 0 || !sql.startsWith('/*', start)) return undefined;
  const end = sql.indexOf('*/', start + 2);
  return end < 0 ? undefined : sql.slice(start + 2, end);
}

function trailingComment(sql: string): string | undefined {
  const trimmed = sql.replace(/[\s;]+$/, '');
  if (!trimmed.endsWith('*/')) return undefined;
  const start = trimmed.lastIndexOf('/*');
  return start < 0 ? undefined : trimmed.slice(start + 2, trimmed.length - 2);
}

function safeDecode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}
