// Test helpers (no jest imports): build LLM SSE streams and read back what a client would see.
import { createSseParser } from '../../../common/masking/stream/sse-parser';

export type Fmt = 'openai' | 'responses' | 'anthropic' | GenericFmt;
/** Formats the maskers read generically (sse-formats.ts planGeneric), plus OpenAI legacy completions. */
export type GenericFmt = 'legacy' | 'gemini' | 'tgi';

const ID = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-4o-mini' };

export function openaiStream(deltas: string[], eol = '\n'): string {
  const ev = (o: unknown): string => `data: ${JSON.stringify(o)}${eol}${eol}`;
  let s = ev({ ...ID, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
  for (const d of deltas) s += ev({ ...ID, choices: [{ index: 0, delta: { content: d }, finish_reason: null }] });
  s += ev({ ...ID, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
  return s + `data: [DONE]${eol}${eol}`;
}

export function anthropicStream(deltas: string[]): string {
  const ev = (name: string, o: unknown): string => `event: ${name}\ndata: ${JSON.stringify(o)}\n\n`;
  let s = ev('message_start', {
    type: 'message_start',
    message: { id: 'msg_1', type: 'message', role: 'assistant', content: [], model: 'claude' },
  });
  s += ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  s += ev('ping', { type: 'ping' });
  for (const d of deltas) s += ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: d } });
  s += ev('content_block_stop', { type: 'content_block_stop', index: 0 });
  s += ev('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 5 } });
  return s + ev('message_stop', { type: 'message_stop' });
}

export function responsesStream(deltas: string[]): string {
  let seq = 0;
  const ev = (o: Record<string, unknown>): string =>
    `event: ${String(o.type)}\ndata: ${JSON.stringify({ ...o, sequence_number: seq++ })}\n\n`;
  const base = { item_id: 'msg_1', output_index: 0, content_index: 0 };
  let s = ev({ type: 'response.created', response: { id: 'resp_1', status: 'in_progress' } });
  for (const d of deltas) s += ev({ type: 'response.output_text.delta', ...base, delta: d });
  s += ev({ type: 'response.output_text.done', ...base, text: deltas.join('') });
  return s + ev({ type: 'response.completed', response: { id: 'resp_1', status: 'completed' } });
}

/** OpenAI legacy completions: choices[].text, a final event with finish_reason. */
export function legacyStream(deltas: string[]): string {
  const ev = (text: string, finish: string | null): string =>
    `data: ${JSON.stringify({ id: 'cmpl-1', object: 'text_completion', model: 'gpt-3.5-turbo-instruct', choices: [{ index: 0, text, logprobs: null, finish_reason: finish }] })}\n\n`;
  return deltas.map((d) => ev(d, null)).join('') + ev('', 'length') + 'data: [DONE]\n\n';
}

/** Gemini streamGenerateContent?alt=sse: the last chunk carries text and finishReason. */
export function geminiStream(deltas: string[]): string {
  const ev = (text: string, last: boolean): string =>
    `data: ${JSON.stringify({ candidates: [{ content: { role: 'model', parts: [{ text }] }, index: 0, ...(last ? { finishReason: 'STOP' } : {}) }], modelVersion: 'gemini-2.0-flash' })}\r\n\r\n`;
  return deltas.map((d, i) => ev(d, i === deltas.length - 1)).join('');
}

/** Hugging Face TGI /generate_stream: token.text per event, generated_text in the last. */
export function tgiStream(deltas: string[]): string {
  const ev = (text: string, i: number, final: string | null): string =>
    `data:${JSON.stringify({ index: i, token: { id: i, text, logprob: -0.1, special: false }, generated_text: final, details: null })}\n\n`;
  return deltas.map((d, i) => ev(d, i, null)).join('') + ev('', deltas.length, deltas.join(''));
}

export function stream(fmt: Fmt, deltas: string[]): string {
  switch (fmt) {
    case 'openai':
      return openaiStream(deltas);
    case 'anthropic':
      return anthropicStream(deltas);
    case 'responses':
      return responsesStream(deltas);
    case 'legacy':
      return legacyStream(deltas);
    case 'gemini':
      return geminiStream(deltas);
    case 'tgi':
      return tgiStream(deltas);
  }
}

export interface ClientView {
  /** Concatenated delta text of slot 0, as a client assembles it. */
  text: string;
  /** Every event's data (except [DONE]) parsed. */
  events: Array<{ event: string | null; data: unknown }>;
  /** Number of delta events seen. */
  deltas: number;
}

/** Parse SSE text as a client would; throws if any event's data is not JSON (other than [DONE]). */
export function readClient(sse: string): ClientView {
  const p = createSseParser();
  const blocks = [...p.push(sse), ...p.end()];
  const events: ClientView['events'] = [];
  let text = '';
  let deltas = 0;
  for (const b of blocks) {
    if (!b.complete) throw new Error(`unterminated event: ${JSON.stringify(b.raw)}`);
    if (b.data === null || b.data === '[DONE]') continue;
    const data = JSON.parse(b.data) as Record<string, any>;
    events.push({ event: b.event, data });
    const piece = deltaText(data);
    if (piece !== null) {
      text += piece;
      deltas++;
    }
  }
  return { text, events, deltas };
}

function deltaText(d: Record<string, any>): string | null {
  if (Array.isArray(d.choices) && typeof d.choices[0]?.text === 'string') return d.choices[0].text;
  if (Array.isArray(d.candidates)) return d.candidates[0]?.content?.parts?.[0]?.text ?? null;
  if (d.token !== undefined) return d.token?.text ?? null;
  if (Array.isArray(d.choices)) return typeof d.choices[0]?.delta?.content === 'string' ? d.choices[0].delta.content : null;
  if (d.type === 'response.output_text.delta') return d.delta;
  if (d.type === 'content_block_delta') return d.delta?.text ?? null;
  return null;
}

/** Split a string's UTF-8 bytes into chunks of the given sizes (cycled). */
export function byteChunks(s: string, sizes: number[]): Buffer[] {
  const buf = Buffer.from(s, 'utf8');
  const out: Buffer[] = [];
  for (let i = 0, k = 0; i < buf.length; k++) {
    const n = Math.max(1, sizes[k % sizes.length]);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

/** Splits text at the given cut offsets (taken modulo length+1, deduplicated, sorted) into deltas. */
export function splitText(full: string, cuts: number[]): string[] {
  const points = [...new Set(cuts.map((c) => c % (full.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let last = 0;
  for (const p of points) {
    out.push(full.slice(last, p));
    last = p;
  }
  out.push(full.slice(last));
  return out;
}
