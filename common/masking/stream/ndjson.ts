// Newline-delimited JSON streams (application/x-ndjson, application/jsonl: Ollama's /api/chat and
// /api/generate, many batch APIs), read line by line as they stream, so the same event maskers
// as for SSE apply (sse.ts createSseEventMasker): each line is one event, and a value split
// across lines (Ollama streams a card number as "41", "11 1111", ...) is held back by the
// stream slots of sse-formats.ts (generic: `message.content`, `response`) until it can be masked.
//
//   const nd = createNdjsonReader();
//   for (const item of nd.push(chunk)) ...;  nd.end();   serializeNdjsonItem(item)
//
// Unchanged lines are re-emitted byte for byte; changed or synthesised ones are re-serialised
// with LF. A line longer than the reader's limit throws NdjsonLineTooLongError (the caller
// refuses the stream: it cannot be masked without holding it whole).
import { findDuplicateKey } from './json-duplicates';
import { NOT_JSON, type SseItem } from './sse';
import type { SseBlock } from './sse-parser';

export class NdjsonLineTooLongError extends Error {
  constructor(readonly limit: number) {
    super(`a line longer than ${limit} characters`);
  }
}

export interface NdjsonReader {
  /** Complete lines in the chunk (with what was buffered before). */
  push(chunk: Buffer | string): SseItem[];
  /** The unterminated last line, if any (complete: false). */
  end(): SseItem[];
}

export function createNdjsonReader(maxLineChars: number): NdjsonReader {
  const decoder = new TextDecoder('utf-8');
  let buf = '';
  const lines = (final: boolean): SseItem[] => {
    const out: SseItem[] = [];
    let pos = 0;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n', pos)) {
      out.push(ndjsonItem(buf.slice(pos, nl + 1), true));
      pos = nl + 1;
    }
    buf = buf.slice(pos);
    if (buf.length > maxLineChars) throw new NdjsonLineTooLongError(maxLineChars);
    if (final && buf !== '') {
      out.push(ndjsonItem(buf, false));
      buf = '';
    }
    return out;
  };
  return {
    push(chunk) {
      buf += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      return lines(false);
    },
    end() {
      buf += decoder.decode();
      return lines(true);
    },
  };
}

/** One line (its terminator included when complete) as an item for the event maskers. */
function ndjsonItem(raw: string, complete: boolean): SseItem {
  const text = raw.replace(/\r?\n$/, '');
  const block: SseBlock = { raw, lines: [], data: text, event: null, complete };
  let doc: unknown = NOT_JSON;
  let dirty = false;
  if (text.trim() !== '') {
    try {
      doc = JSON.parse(text);
      // Repeated key: the parse that was masked is what is sent (sse.ts sseItem says why).
      dirty = findDuplicateKey(text) !== undefined;
    } catch {
      /* not JSON: masked as text */
    }
  }
  return { block, event: null, data: text, doc, dirty };
}

export function serializeNdjsonItem(item: SseItem): string {
  if (!item.dirty && item.block) return item.block.raw;
  const text = item.doc !== NOT_JSON ? JSON.stringify(item.doc) : (item.data ?? '');
  return item.block && !item.block.complete ? text : text + '\n';
}
