// The hold-back window for one stream slot (a choice's content, a tool call's arguments, an
// Anthropic content block): text arrives in pieces, and only text that can no longer become
// part of a detector match is released, masked.
//
// Rule (the streaming contract in ../detectors.ts): after each piece, scan the unreleased text;
// holdFrom = end - holdBack, lowered to the start of any match that touches the end (it may
// still grow or vanish) or crosses holdFrom. Everything before holdFrom is released with its
// matches masked. A bounded match (card, SSN, phone, IBAN, email) is at most maxMatchLength
// long, so one that ends after the cut must start after it; an open-ended secret is recognised
// within maxMatchLength and then touches the end until it ends. So the default holdBack,
// maxMatchLength - 1, never releases any part of a value that is or may become a match.
//
// The scan also sees CONTEXT_CHARS of already released raw text, because detectors look at the
// character before a candidate ("x4111..." is not a card): with that context a slot's masked
// output matches what masker.mask would make of the whole text.

import { compileDetectors, mightMatch, scanMatches, type DetectorMatch } from '../detectors';
import type { TextMasker } from '../masker';
import { REDACTED } from '../strategies';

/** Raw released text kept as left context for the detectors. */
const CONTEXT_CHARS = 64;

export interface HeldText {
  /** Add text; return the masked text that is safe to release now (often ''). */
  push(text: string): string;
  /** End of the slot: release everything, masked. */
  flush(): string;
  /** Characters currently held back. */
  readonly held: number;
  /** Values masked so far in released text. */
  readonly masked: number;
}

export function createHeldText(masker: TextMasker, holdBack: number = masker.maxMatchLength - 1): HeldText {
  const compiled = compileDetectors(masker.detectors);
  let context = '';
  let pending = '';
  let masked = 0;

  const release = (final: boolean): string => {
    if (pending === '') return '';
    const window = context + pending;
    const base = context.length;
    const matches = compiled.bits !== 0 && mightMatch(window, compiled) ? scanMatches(window, compiled) : [];
    let cut = final ? window.length : window.length - Math.max(holdBack, 0);
    if (!final) {
      for (const m of matches) {
        if (m.end >= window.length || (m.start < cut && m.end > cut)) cut = Math.min(cut, m.start);
      }
      // Never split a surrogate pair: the two halves would be two invalid JSON strings.
      const c = window.charCodeAt(cut - 1);
      if (c >= 0xd800 && c <= 0xdbff) cut--;
    }
    if (cut <= base) return '';
    const out = maskRange(window, base, cut, matches);
    context = window.slice(Math.max(0, cut - CONTEXT_CHARS), cut);
    pending = window.slice(cut);
    return out;
  };

  /** window[from, to) with the matches in it masked like masker.mask would. */
  const maskRange = (window: string, from: number, to: number, matches: DetectorMatch[]): string => {
    // Preferred: let the masker itself see the piece with match-free context on both sides
    // (neighbours matter, and values like "password=..." are only found with their key), and
    // keep the middle if masking left the context untouched.
    let left = Math.max(0, from - CONTEXT_CHARS);
    let right = Math.min(window.length, to + CONTEXT_CHARS);
    for (const m of matches) {
      if (m.end <= from && m.end > left) left = m.end;
      if (m.start >= to && m.start < right) right = m.start;
    }
    const l = window.slice(left, from);
    const r = window.slice(to, right);
    const whole = masker.mask(window.slice(left, right));
    if (whole.text.length >= l.length + r.length && whole.text.startsWith(l) && whole.text.endsWith(r)) {
      masked += whole.count;
      return whole.text.slice(l.length, whole.text.length - r.length);
    }
    return maskEach(window, from, to, matches);
  };

  /** Fallback: replace each match in window[from, to) on its own, then re-check. */
  const maskEach = (window: string, from: number, to: number, matches: DetectorMatch[]): string => {
    let out = '';
    let last = from;
    for (const m of matches) {
      if (m.end <= from || m.start >= to) continue;
      // A match reaching into released context cannot happen with the default window; with a
      // smaller configured one, mask the unreleased part rather than let it through.
      const start = Math.max(m.start, from);
      out += window.slice(last, start) + maskOne(window.slice(start, m.end));
      last = m.end;
    }
    out += window.slice(last, to);
    // Masking changes neighbours (masker.ts MAX_PASSES): re-check the released piece.
    const again = masker.mask(out);
    masked += again.count;
    return again.text;
  };

  /** The strategy's replacement for one matched value (TextMasker does not expose its key). */
  const maskOne = (value: string): string => {
    masked++;
    const r = masker.mask(value);
    return r.count > 0 ? r.text : REDACTED;
  };

  return {
    push(text: string): string {
      pending += text;
      return release(false);
    },
    flush(): string {
      return release(true);
    },
    get held(): number {
      return pending.length;
    },
    get masked(): number {
      return masked;
    },
  };
}
