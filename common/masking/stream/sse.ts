// Streaming masker for Server-Sent Events from LLM APIs (OpenAI chat.completions and Responses,
// Anthropic Messages). Bytes in, SSE text out, no sockets: the HTTP proxy feeds it upstream
// chunks and writes what it returns.
//
//   const sse = createSseMasker({ masker });
//   upstream.on('data', (c) => res.write(sse.push(c)));  upstream.on('end', () => res.end(sse.end()));
//
// Why not mask each event on its own: an LLM emits a card number as "4111", " 1111", " 1111",
// " 1111" in four events, none of which matches. Each stream slot (a choice's content, a tool
// call's arguments, a content block) keeps its concatenated text in a HeldText, which releases
// only text that can no longer become part of a match. Each delta event is re-emitted at once,
// in order, carrying the text released by it (possibly ""): the event count, ids and order are
// kept, and nothing waits for a later event except the held text. When a slot ends
// (finish_reason, content_block_stop, *.done, [DONE], message_stop, response.completed, end())
// its held text is released, masked, in a synthesised event of the same shape placed just
// before the ending event; Responses API sequence numbers after it are shifted by one.
//
// Everything else passes through: events without JSON-parsable data have their data masked as
// text (per event: no cross-event hold-back for unknown streams); JSON events have every string
// value that is not a slot's delta masked by the detectors (e.g. response.output_text.done
// repeats the full text, tool call names, Anthropic content_block_start). Unchanged events are
// re-emitted byte for byte; changed ones are re-serialised with LF line endings.

import type { TextMasker } from '../masker';
import { createHeldText, type HeldText } from './held-text';
import { planEvent, type SseFormat, type SynthEvent, type TextField } from './sse-formats';
import { createSseParser, serializeBlock, serializeEvent, type SseBlock } from './sse-parser';

export type { SseFormat } from './sse-formats';

export interface SseMaskerOptions {
  masker: TextMasker;
  /**
   * Most characters held back per slot (unless a match still touching the end needs more);
   * default masker.maxMatchLength - 1 (safe on its own). Within it only the tail that can still
   * become part of a match is held (holdFrom in ../detectors.ts).
   */
  holdBackChars?: number;
  format?: SseFormat;
}

export interface SseMaskerStats {
  /** Values masked in the output so far. */
  masked: number;
  /** Largest number of characters any one slot held back at once. */
  maxHeldChars: number;
}

export interface SseMasker {
  /** Feed upstream bytes; returns SSE text that is safe to send now. */
  push(chunk: Buffer | Uint8Array | string): string;
  /** Upstream ended: returns everything still held, masked. */
  end(): string;
  stats(): SseMaskerStats;
}

interface Slot {
  held: HeldText;
  synth: (text: string) => SynthEvent;
  sequenced: boolean;
}

export function createSseMasker(opts: SseMaskerOptions): SseMasker {
  const { masker } = opts;
  const format = opts.format ?? 'auto';
  const parser = createSseParser();
  const slots = new Map<string, Slot>();
  let masked = 0; // generic masks plus those of slots already ended
  let maxHeld = 0;
  let seqShift = 0; // synthesised Responses events so far
  let lastSeq = -1;

  const renumber = (obj: Record<string, unknown>): boolean => {
    if (typeof obj.sequence_number !== 'number') return false;
    lastSeq = obj.sequence_number + seqShift;
    if (seqShift === 0) return false;
    obj.sequence_number = lastSeq;
    return true;
  };

  /** Release what the ending slots hold, as synthesised events; `extra` is text of the ending event. */
  const endSlots = (prefixes: string[], extra: Map<string, string>): string => {
    let out = '';
    for (const [key, slot] of slots) {
      if (!prefixes.some((p) => key.startsWith(p))) continue;
      const text = slot.held.push(extra.get(key) ?? '') + slot.held.flush();
      masked += slot.held.masked;
      slots.delete(key);
      if (text === '') continue;
      const ev = slot.synth(text);
      if (slot.sequenced) {
        ev.data.sequence_number = lastSeq + 1;
        lastSeq++;
        seqShift++;
      }
      out += serializeEvent(ev.event, JSON.stringify(ev.data));
    }
    return out;
  };

  const onField = (f: TextField, sequenced: boolean): string => {
    let slot = slots.get(f.slot);
    if (slot === undefined) {
      slot = { held: createHeldText(masker, opts.holdBackChars), synth: f.synth, sequenced };
      slots.set(f.slot, slot);
    }
    slot.synth = f.synth; // the newest event is the best template (ids, model, created)
    const released = slot.held.push(f.text);
    if (slot.held.held > maxHeld) maxHeld = slot.held.held;
    return released;
  };

  const onBlock = (block: SseBlock): string => {
    const data = block.data;
    if (data === null) return block.raw;
    if (data.trim() === '[DONE]') return endSlots([''], new Map()) + block.raw;
    let obj: unknown;
    try {
      obj = JSON.parse(data);
    } catch {
      const r = masker.mask(data);
      masked += r.count;
      return r.count > 0 ? serializeBlock(block, r.text) : block.raw;
    }
    const plan = planEvent(obj, block.event, format);
    const holder = { root: obj };
    let changed = maskStringsInPlace(holder, masker, plan.fields, (n) => (masked += n));
    obj = holder.root;
    const ending = (slot: string): boolean => plan.ends.some((p) => slot.startsWith(p));
    const extra = new Map<string, string>();
    for (const f of plan.fields) {
      let next: string;
      if (ending(f.slot)) {
        // Its text joins the flush, which goes out before this event.
        extra.set(f.slot, (extra.get(f.slot) ?? '') + f.text);
        if (!slots.has(f.slot)) slots.set(f.slot, { held: createHeldText(masker, opts.holdBackChars), synth: f.synth, sequenced: plan.sequenced });
        next = '';
      } else {
        next = onField(f, plan.sequenced);
      }
      if (next !== f.text) {
        f.owner[f.key] = next;
        changed = true;
      }
    }
    const before = plan.ends.length > 0 ? endSlots(plan.ends, extra) : '';
    if (plan.sequenced && renumber(obj as Record<string, unknown>)) changed = true;
    return before + (changed ? serializeBlock(block, JSON.stringify(obj)) : block.raw);
  };

  return {
    push(chunk) {
      let out = '';
      for (const block of parser.push(chunk)) out += onBlock(block);
      return out;
    },
    end() {
      let out = '';
      const tail: SseBlock[] = [];
      for (const block of parser.end()) {
        if (block.complete) out += onBlock(block);
        else tail.push(block);
      }
      out += endSlots([''], new Map());
      // An unterminated last event is discarded by clients (WHATWG); still mask what it says.
      for (const block of tail) {
        const r = block.data === null ? null : masker.mask(block.data);
        if (r !== null) masked += r.count;
        out += r !== null && r.count > 0 ? serializeBlock(block, r.text) : block.raw;
      }
      return out;
    },
    stats() {
      let live = 0;
      for (const s of slots.values()) live += s.held.masked;
      return { masked: masked + live, maxHeldChars: maxHeld };
    },
  };
}

/**
 * Mask, in place, every string value of a freshly parsed event except the slot fields (those
 * go through their HeldText). Returns whether anything changed.
 */
function maskStringsInPlace(holder: { root: unknown }, masker: TextMasker, skip: TextField[], count: (n: number) => void): boolean {
  let changed = false;
  const visit = (owner: Record<string, unknown> | unknown[], key: string | number): void => {
    const v = (owner as Record<string | number, unknown>)[key];
    if (typeof v === 'string') {
      if (skip.some((f) => f.owner === owner && f.key === key)) return;
      const r = masker.mask(v);
      if (r.count > 0) {
        (owner as Record<string | number, unknown>)[key] = r.text;
        count(r.count);
        changed = true;
      }
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) visit(v, i);
    } else if (typeof v === 'object' && v !== null) {
      for (const k of Object.keys(v)) visit(v as Record<string, unknown>, k);
    }
  };
  visit(holder, 'root');
  return changed;
}
