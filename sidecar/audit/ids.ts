// Random trace, span and record ids. Drawn from a pooled buffer: one crypto call per few hundred
// ids instead of one per operation (every statement gets a span id and a record id).
import { randomFillSync } from 'node:crypto';

const pool = Buffer.allocUnsafe(4096);
let offset = pool.length;

function take(bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const s = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return s;
}

const ZERO_SPAN = '0000000000000000';
const ZERO_TRACE = '00000000000000000000000000000000';

/** 16 hex characters, never all zero (invalid in W3C trace context). */
export function newSpanId(): string {
  let id = take(8);
  while (id === ZERO_SPAN) id = take(8);
  return id;
}

/** 32 hex characters, never all zero. */
export function newTraceId(): string {
  let id = take(16);
  while (id === ZERO_TRACE) id = take(16);
  return id;
}

/** A record id: 32 hex characters. */
export const newRecordId = newTraceId;
