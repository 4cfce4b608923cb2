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
// jsonPaths of the masking rule apply to each event's parsed JSON (before the slots see it): a
// selected value is masked whole, in every event it appears in.
//
// Several masking rules on one stream: the proxy parses each event once (sseItem), runs its
// response-rule check on that parse, and feeds the same item through every rule's
// SseEventMasker (createSsePipeline); each event is serialised once at the end.
//
// Everything else passes through: events without JSON-parsable data have their data masked as
// text (per event: no cross-event hold-back for unknown streams); JSON events have every string
// value that is not a slot's delta masked by the detectors (e.g. response.output_text.done
// repeats the full text, tool call names, Anthropic content_block_start). Unchanged events are
// re-emitted byte for byte; changed ones are re-serialised with LF line endings.

import { jsonTooDeep, JsonTooDeepError } from '../../policy/jsonpath';
import type { JsonPathSegment } from '../../policy/syntax';
import type { TextMasker } from '../masker';
import { createHeldText, type HeldText } from './held-text';
import { findDuplicateKey } from './json-duplicates';
import { maskJsonDocument, maskNumberText, renameKeys } from './json';
import { planEvent, type SseFormat, type SynthEvent, type TextField } from './sse-formats';
import { createSseParser, serializeBlock, serializeEvent, type SseBlock } from './sse-parser';

export type { SseFormat } from './sse-formats';
export type { HeldText } from './held-text';

export interface SseMaskerOptions {
  masker: TextMasker;
  /** The masking rule's jsonPaths: selected values in each event's JSON are masked whole. */
  jsonPaths?: readonly (readonly JsonPathSegment[])[];
  /**
   * Most characters held back per slot (unless a match still touching the end needs more);
   * default masker.maxMatchLength - 1 (safe on its own). Within it only the tail that can still
   * become part of a match is held (holdFrom in ../detectors.ts).
   */
  holdBackChars?: number;
  format?: SseFormat;
  /** The hold-back window of one slot; default createHeldText(masker, holdBackChars). For maskers that are not detectors (the credential scrubber). */
  heldText?: () => HeldText;
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

/** Marks an event whose data is absent or not JSON. */
export const NOT_JSON: unique symbol = Symbol('not JSON');

/** One event on its way through the maskers: parsed once, serialised once (serializeItem). */
export interface SseItem {
  /** The block it was read from; null for a synthesised event. */
  block: SseBlock | null;
  event: string | null;
  /** The data buffer (null without data lines); replaced when masked as text. */
  data: string | null;
  /** The parsed data, or NOT_JSON. Maskers change it in place. */
  doc: unknown;
  /** Changed since read: re-serialised instead of re-emitted byte for byte. */
  dirty: boolean;
}

/** Parses one block's data (once, for the rule check and every masker). */
export function sseItem(block: SseBlock): SseItem {
  let doc: unknown = NOT_JSON;
  let dirty = false;
  if (block.data !== null) {
    try {
      doc = JSON.parse(block.data);
      // A repeated key: the parse (last value wins) is what gets checked and masked, so it is
      // what is sent; the upstream's text could carry an unmasked first value.
      dirty = findDuplicateKey(block.data) !== undefined;
    } catch {
      /* not JSON: masked as text */
    }
  }
  return { block, event: block.event, data: block.data, doc, dirty };
}

export function serializeItem(item: SseItem): string {
  if (!item.dirty && item.block) return item.block.raw;
  const data = item.doc !== NOT_JSON ? JSON.stringify(item.doc) : item.data;
  return item.block ? serializeBlock(item.block, data) : serializeEvent(item.event, data ?? '');
}

/** One masking rule over parsed events. */
export interface SseEventMasker {
  /** A complete event; returns the events to send now, in order (synthesised flushes first). */
  push(item: SseItem): SseItem[];
  /** Releases everything every slot holds, masked, as synthesised events (end of stream, or before a denial). */
  flush(): SseItem[];
  /** An unterminated last event (clients discard it): its data is masked as text. */
  maskTail(item: SseItem): SseItem;
  stats(): SseMaskerStats;
}

/** Several rules' maskers in a row over one parse of the stream. */
export interface SsePipeline {
  /** Complete events (sseItem); returns the SSE text to send now. */
  push(items: readonly SseItem[]): string;
  /** Releases all held text (each masker's flush goes through the maskers after it); then the unterminated tail. */
  end(tail?: readonly SseItem[]): string;
  /** Values masked so far, over all maskers. */
  masked(): number;
}

/** serialize: how an item is written (default SSE; ndjson.ts serializeNdjsonItem for NDJSON). */
export function createSsePipeline(maskers: readonly SseEventMasker[], serialize: (item: SseItem) => string = serializeItem): SsePipeline {
  const through = (items: SseItem[], from: number): SseItem[] => {
    for (let i = from; i < maskers.length; i++) {
      const next: SseItem[] = [];
      for (const it of items) for (const o of maskers[i].push(it)) next.push(o);
      items = next;
    }
    return items;
  };
  return {
    push(items) {
      let out = '';
      for (const it of items) for (const o of through([it], 0)) out += serialize(o);
      return out;
    },
    end(tail = []) {
      let out = '';
      for (let i = 0; i < maskers.length; i++) for (const o of through(maskers[i].flush(), i + 1)) out += serialize(o);
      for (let it of tail) {
        for (const m of maskers) it = m.maskTail(it);
        out += serialize(it);
      }
      return out;
    },
    masked() {
      let n = 0;
      for (const m of maskers) n += m.stats().masked;
      return n;
    },
  };
}

/** The byte-level masker for one rule (its own parser): tests, and callers with a single rule. */
export function createSseMasker(opts: SseMaskerOptions): SseMasker {
  const parser = createSseParser();
  const em = createSseEventMasker(opts);
  const pipeline = createSsePipeline([em]);
  return {
    push(chunk) {
      return pipeline.push(parser.push(chunk).map(sseItem));
    },
    end() {
      const blocks = parser.end();
      const out = pipeline.push(blocks.filter((b) => b.complete).map(sseItem));
      return out + pipeline.end(blocks.filter((b) => !b.complete).map(sseItem));
    },
    stats: () => em.stats(),
  };
}

interface Slot {
  held: HeldText;
  synth: (text: string) => SynthEvent;
  sequenced: boolean;
  /** Set for the plain-text data of events of this name (not JSON): released as text events. */
  plain?: { event: string | null };
}

/**
 * One rule's masker over parsed events. Throws JsonTooDeepError for an event nested deeper than
 * the JSONPath depth limit (it cannot be masked; the caller refuses the stream).
 */
export function createSseEventMasker(opts: SseMaskerOptions): SseEventMasker {
  const { masker } = opts;
  const jsonPaths = opts.jsonPaths ?? [];
  const format = opts.format ?? 'auto';
  const newHeld = opts.heldText ?? ((): HeldText => createHeldText(masker, opts.holdBackChars));
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
  const endSlots = (prefixes: string[], extra: Map<string, string>): SseItem[] => {
    const out: SseItem[] = [];
    for (const [key, slot] of slots) {
      if (!prefixes.some((p) => key.startsWith(p))) continue;
      const text = slot.held.push(extra.get(key) ?? '') + slot.held.flush();
      masked += slot.held.masked;
      slots.delete(key);
      if (text === '') continue;
      if (slot.plain) {
        out.push({ block: null, event: slot.plain.event, data: text, doc: NOT_JSON, dirty: true });
        continue;
      }
      const ev = slot.synth(text);
      if (slot.sequenced) {
        ev.data.sequence_number = lastSeq + 1;
        lastSeq++;
        seqShift++;
      }
      out.push({ block: null, event: ev.event, data: null, doc: ev.data, dirty: true });
    }
    return out;
  };

  const onField = (f: TextField, sequenced: boolean): string => {
    let slot = slots.get(f.slot);
    if (slot === undefined) {
      slot = { held: newHeld(), synth: f.synth, sequenced };
      slots.set(f.slot, slot);
    }
    slot.synth = f.synth; // the newest event is the best template (ids, model, created)
    const released = slot.held.push(f.text);
    if (slot.held.held > maxHeld) maxHeld = slot.held.held;
    return released;
  };

  /**
   * Plain-text data (not JSON) is streamed text too (`data: <token>` streams): held back per event
   * name like a text field, so a value split across events is masked whole. What an event cannot
   * release yet goes out with a later one (or at the end, as an event of its own).
   */
  const holdPlain = (item: SseItem & { data: string }): SseItem => {
    const key = `p:${item.event ?? ''}`;
    let slot = slots.get(key);
    if (slot === undefined) {
      slot = { held: newHeld(), synth: () => ({ event: item.event, data: {} }), sequenced: false, plain: { event: item.event } };
      slots.set(key, slot);
    }
    const released = slot.held.push(item.data);
    if (slot.held.held > maxHeld) maxHeld = slot.held.held;
    if (released !== item.data) {
      item.data = released;
      item.dirty = true;
    }
    return item;
  };

  const maskText = (item: SseItem): SseItem => {
    if (item.data === null) return item;
    const r = masker.mask(item.data);
    masked += r.count;
    if (r.count > 0) {
      item.data = r.text;
      item.doc = NOT_JSON; // serialised from the masked text
      item.dirty = true;
    }
    return item;
  };

  /** Non-data lines of a read block: masked as text (they reach readers that show the raw stream). */
  const maskLines = (item: SseItem): void => {
    if (!item.block) return;
    const n = maskOtherLines(item.block, masker);
    if (n === 0) return;
    masked += n;
    item.dirty = true;
  };

  const push = (item: SseItem): SseItem[] => {
    maskLines(item);
    if (item.doc === NOT_JSON) {
      if (item.data === null) return [item];
      if (item.data.trim() === '[DONE]') return [...endSlots([''], new Map()), item];
      return [holdPlain(item as SseItem & { data: string })];
    }
    let obj = item.doc;
    if (jsonTooDeep(obj)) throw new JsonTooDeepError();
    if (jsonPaths.length > 0) {
      const r = maskJsonDocument(obj, { masker, jsonPaths, detectors: false });
      if (r.count > 0) {
        masked += r.count;
        obj = r.doc;
        item.dirty = true;
      }
    }
    const plan = planEvent(obj, item.event, format);
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
        if (!slots.has(f.slot)) slots.set(f.slot, { held: newHeld(), synth: f.synth, sequenced: plan.sequenced });
        next = '';
      } else {
        next = onField(f, plan.sequenced);
      }
      if (next !== f.text) {
        f.owner[f.key] = next;
        changed = true;
      }
    }
    const before = plan.ends.length > 0 ? endSlots(plan.ends, extra) : [];
    if (plan.sequenced && renumber(obj as Record<string, unknown>)) changed = true;
    item.doc = obj;
    if (changed) item.dirty = true;
    before.push(item);
    return before;
  };

  return {
    push,
    flush: () => endSlots([''], new Map()),
    maskTail: (item) => {
      maskLines(item);
      return maskText(item);
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
    } else if (typeof v === 'number') {
      const r = maskNumberText(v, masker);
      if (r) {
        (owner as Record<string | number, unknown>)[key] = r.text;
        count(r.count);
        changed = true;
      }
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) visit(v, i);
    } else if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      let renamed: Map<string, string> | null = null;
      for (const k of Object.keys(o)) {
        visit(o, k);
        const r = masker.mask(k);
        if (r.count > 0) {
          count(r.count);
          (renamed ??= new Map()).set(k, r.text);
        }
      }
      if (renamed) {
        // Keys carry data too (a map keyed by email). Renamed in place: slot fields hold this object.
        const entries = Object.entries(renameKeys(o, renamed));
        for (const k of Object.keys(o)) delete o[k];
        for (const [k, val] of entries) Object.defineProperty(o, k, { value: val, enumerable: true, writable: true, configurable: true });
        changed = true;
      }
    }
  };
  visit(holder, 'root');
  return changed;
}

/**
 * Every line of a block but its data lines (comments, `id:`, `event:`, `retry:`, and lines that
 * are no field at all, which a naive reader still sees) masked as text, in place. Returns the count.
 */
export function maskOtherLines(block: SseBlock, masker: TextMasker): number {
  let n = 0;
  for (const l of block.lines) {
    if (l.name === 'data') continue;
    const r = masker.mask(l.text);
    if (r.count === 0) continue;
    n += r.count;
    l.text = r.text;
    const colon = r.text.indexOf(':');
    l.name = colon < 0 ? r.text : r.text.slice(0, colon);
    l.value = colon < 0 ? '' : r.text.slice(colon + 1).replace(/^ /, '');
  }
  return n;
}
