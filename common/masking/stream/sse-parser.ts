// Incremental Server-Sent Events parser (WHATWG HTML, "event stream interpretation") that keeps
// the raw text of every block, so events the masker does not change are re-emitted byte for
// byte (apart from the UTF-8 BOM, which the decoder drops, and invalid UTF-8, which becomes
// U+FFFD exactly as a browser would read it).
//
// A "block" is the lines up to and including a blank line: one event, or only comments, or a
// stray blank line. Chunks may split anything: a multi-byte character (TextDecoder in stream
// mode), a CRLF pair (a trailing CR waits for the next chunk), a line, a block.

export interface SseLine {
  /** Field name ('' for a comment line, which starts with ':'). */
  name: string;
  value: string;
  /** The line without its terminator, for re-emitting fields we do not change. */
  text: string;
}

export interface SseBlock {
  /** Exactly the text this block was read from, terminators included. */
  raw: string;
  lines: SseLine[];
  /** The data buffer as a client sees it (data lines joined by '\n'); null without data lines. */
  data: string | null;
  /** Value of the last `event:` field, or null. */
  event: string | null;
  /** False only for the unterminated tail given by end(): a client would discard it. */
  complete: boolean;
}

export interface SseParser {
  push(chunk: Buffer | Uint8Array | string): SseBlock[];
  end(): SseBlock[];
}

export function createSseParser(): SseParser {
  const decoder = new TextDecoder('utf-8');
  let buf = '';
  let raw = '';
  let lines: SseLine[] = [];
  /** Characters at the start of buf already known to hold no line terminator (a long line is not rescanned per chunk). */
  let clean = 0;

  const finish = (complete: boolean): SseBlock => {
    let data: string | null = null;
    let event: string | null = null;
    for (const l of lines) {
      if (l.name === 'data') data = data === null ? l.value : data + '\n' + l.value;
      else if (l.name === 'event') event = l.value;
    }
    const block: SseBlock = { raw, lines, data, event, complete };
    raw = '';
    lines = [];
    return block;
  };

  const consume = (final: boolean): SseBlock[] => {
    const out: SseBlock[] = [];
    let pos = 0;
    const n = buf.length;
    while (pos < n) {
      let i = pos === 0 ? clean : pos;
      while (i < n && buf.charCodeAt(i) !== 10 && buf.charCodeAt(i) !== 13) i++;
      if (i === n) {
        clean = n - pos; // no terminator yet
        break;
      }
      let eol = 1;
      if (buf.charCodeAt(i) === 13) {
        if (i + 1 === n && !final) {
          clean = i - pos; // CR at the end: maybe the first half of CRLF
          break;
        }
        if (buf.charCodeAt(i + 1) === 10) eol = 2;
      }
      clean = 0;
      const line = buf.slice(pos, i);
      raw += buf.slice(pos, i + eol);
      pos = i + eol;
      if (line === '') out.push(finish(true));
      else lines.push(parseLine(line));
    }
    buf = buf.slice(pos);
    return out;
  };

  return {
    push(chunk) {
      buf += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      return consume(false);
    },
    end() {
      buf += decoder.decode();
      const out = consume(true);
      if (buf !== '') {
        raw += buf;
        lines.push(parseLine(buf));
        buf = '';
      }
      if (raw !== '') out.push(finish(false));
      return out;
    },
  };
}

function parseLine(line: string): SseLine {
  const colon = line.indexOf(':');
  if (colon === 0) return { name: '', value: line.slice(1), text: line };
  if (colon < 0) return { name: line, value: '', text: line };
  let value = line.slice(colon + 1);
  if (value.charCodeAt(0) === 32) value = value.slice(1);
  return { name: line.slice(0, colon), value, text: line };
}

/**
 * Serialise a block whose data was replaced: fields keep their order and text, the data lines
 * are replaced (at the first one) by `data`, split on newlines. Synthesised or rewritten
 * events use LF, which every client accepts.
 */
export function serializeBlock(block: SseBlock, data: string | null): string {
  let out = '';
  let wrote = false;
  for (const l of block.lines) {
    if (l.name !== 'data') {
      out += l.text + '\n';
    } else if (!wrote && data !== null) {
      out += dataLines(data);
      wrote = true;
    }
  }
  // A block without data (comments only) gets none: an empty data line would dispatch an event.
  if (!wrote && data !== null) out += dataLines(data);
  return block.complete ? out + '\n' : out;
}

/** A new event: optional `event:` line, data lines, blank line. */
export function serializeEvent(event: string | null, data: string): string {
  return (event === null ? '' : `event: ${event}\n`) + dataLines(data) + '\n';
}

function dataLines(data: string): string {
  let out = '';
  for (const part of data.split(/\r\n|\r|\n/)) out += `data: ${part}\n`;
  return out;
}
