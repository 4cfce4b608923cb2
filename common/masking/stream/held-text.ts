// The hold-back window for one stream slot (a choice's content, a tool call's arguments, an
// Anthropic content block): text arrives in pieces, and only text that can no longer become
// part of a detector match is released, masked.
//
// Rule (the streaming contract in ../detectors.ts): after each piece, scan the unreleased text;
// cut = max(holdFrom(text), end - holdBack), lowered to the start of any match that touches the
// end (it may still grow or vanish) or crosses the cut. Everything before the cut is released
// with its matches masked. holdFrom is the tight bound: only the tail that can still become
// (part of) a match, typically the last word of prose. holdBack caps the hold: a bounded match
// (card, SSN, phone, IBAN, email) is at most maxMatchLength long, so one that ends after the
// cut must start after it; an open-ended secret is recognised within maxMatchLength and then
// touches the end until it ends. So the default holdBack, maxMatchLength - 1, is safe on its
// own, and a smaller configured holdBack can release what holdFrom would still hold.
//
// The scan also sees CONTEXT_CHARS of already released raw text (more when a match in it needs
// its lookbehind), because detectors look at the character before a candidate ("x4111..." is
// not a card) and secret values at their key ("password=" may have been released before its
// value arrives). And masking is replayed pass by pass like masker.mask does (MAX_PASSES: a
// value can match only once its neighbour is masked), tracking which raw characters each
// masked value covers. With both, a slot's masked output is what masker.mask would make of the
// whole text.

import type { DetectorName } from '../../policy/types';
import { holdFrom, mightMatch, scanMatches, type DetectorMatch } from '../detectors';
import { MAX_PASSES, type TextMasker } from '../masker';

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
  const compiled = masker.compiled;
  let context = '';
  let pending = '';
  let masked = 0;

  const release = (final: boolean): string => {
    if (pending === '') return '';
    const window = context + pending;
    const n = window.length;
    const base = context.length;
    const segs = replay(window);
    const regions: DetectorMatch[] = [];
    for (const g of segs) if (g.detector !== null) regions.push({ detector: g.detector, start: g.a, end: g.b });
    let cut = final ? n : Math.max(n - Math.max(holdBack, 0), holdFrom(window, compiled, regions));
    if (!final) {
      for (let k = regions.length - 1; k >= 0; k--) {
        const m = regions[k];
        if (m.end >= n || (m.start < cut && m.end > cut)) cut = Math.min(cut, m.start);
      }
      // Never split a surrogate pair: the two halves would be two invalid JSON strings.
      const c = window.charCodeAt(cut - 1);
      if (c >= 0xd800 && c <= 0xdbff) cut--;
    }
    if (cut <= base) return '';
    let out = '';
    for (const g of segs) {
      if (g.b <= base || g.a >= cut) continue;
      if (g.detector === null) {
        out += window.slice(Math.max(g.a, base), Math.min(g.b, cut));
      } else {
        masked++;
        // A value reaching back into released text (only with a holdBack below the safe bound):
        // mask the part not yet released.
        out += g.a >= base ? g.text : maskValue(window.slice(base, g.b), g.detector);
      }
    }
    // Keep the lookbehind of every match still in the context (a secret value needs its key:
    // "password= -----BEGIN" without the "p" would turn the value into a PEM lead).
    let ctx = Math.max(0, cut - CONTEXT_CHARS);
    for (const m of regions) {
      if (m.start >= cut) break;
      if (m.end > ctx) ctx = Math.min(ctx, Math.max(0, m.start - CONTEXT_CHARS));
    }
    context = window.slice(ctx, cut);
    pending = window.slice(cut);
    return out;
  };

  const maskValue = masker.maskValue;

  /**
   * masker.mask on the window, pass by pass (masker.ts MAX_PASSES), as segments of raw text:
   * kept as is, or replaced by a masked value (a later pass's match that starts or ends inside
   * an earlier replacement takes all of it).
   */
  const replay = (window: string): Seg[] => {
    let segs: Seg[] = [{ a: 0, b: window.length, text: window, detector: null }];
    let current = window;
    let matches = compiled.bits !== 0 && mightMatch(current, compiled) ? scanMatches(current, compiled) : [];
    for (let pass = 0; pass < MAX_PASSES && matches.length > 0; pass++) {
      const offs: number[] = [];
      let o = 0;
      for (const g of segs) {
        offs.push(o);
        o += g.text.length;
      }
      // Each match, widened to whole segments where it starts or ends inside a masked value:
      // raw range [a, b) and current-text range [os, oe), so the new text is the masker's own
      // current.slice(os, start) + mask + current.slice(end, oe).
      const segAt = (pos: number, isEnd: boolean): number => {
        for (let k = 0; k < segs.length; k++) {
          const from = offs[k];
          const to = from + segs[k].text.length;
          if (isEnd ? pos > from && pos <= to : pos >= from && pos < to) return k;
        }
        return segs.length - 1;
      };
      const groups: Array<{ a: number; b: number; os: number; oe: number; ms: DetectorMatch[] }> = [];
      for (const m of matches) {
        const k1 = segAt(m.start, false);
        const k2 = segAt(m.end, true);
        const g1 = segs[k1];
        const g2 = segs[k2];
        const a = g1.detector !== null ? g1.a : g1.a + (m.start - offs[k1]);
        const os = g1.detector !== null ? offs[k1] : m.start;
        const b = g2.detector !== null ? g2.b : g2.a + (m.end - offs[k2]);
        const oe = g2.detector !== null ? offs[k2] + g2.text.length : m.end;
        const prev = groups[groups.length - 1];
        if (prev !== undefined && os < prev.oe) {
          prev.b = Math.max(prev.b, b);
          prev.oe = Math.max(prev.oe, oe);
          prev.ms.push(m);
        } else {
          groups.push({ a, b, os, oe, ms: [m] });
        }
      }
      const reps: Seg[] = groups.map((g) => {
        let text = '';
        let pos = g.os;
        for (const m of g.ms) {
          text += current.slice(pos, m.start) + maskValue(current.slice(m.start, m.end), m.detector);
          pos = m.end;
        }
        return { a: g.a, b: g.b, text: text + current.slice(pos, g.oe), detector: g.ms[0].detector };
      });
      const next: Seg[] = [];
      let k = 0;
      for (const r of reps) {
        for (; k < segs.length && segs[k].b <= r.a; k++) next.push(segs[k]);
        // segs[k] is the first that reaches past r.a: keep the raw text before r.a
        if (k < segs.length && segs[k].a < r.a && segs[k].detector === null) next.push(rawSeg(window, segs[k].a, r.a));
        for (; k < segs.length && segs[k].b <= r.b; k++);
        next.push(r);
        if (k < segs.length && segs[k].a < r.b) {
          // a raw segment straddling r.b keeps its tail (a masked one cannot: toRaw ends at its b)
          segs[k] = rawSeg(window, r.b, segs[k].b);
        }
      }
      for (; k < segs.length; k++) next.push(segs[k]);
      segs = next;
      current = segs.map((g) => g.text).join('');
      matches = mightMatch(current, compiled) ? scanMatches(current, compiled) : [];
    }
    return segs;
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

/** Raw window[a, b) (detector null) or a masked value covering it. */
interface Seg {
  a: number;
  b: number;
  text: string;
  detector: DetectorName | null;
}

function rawSeg(window: string, a: number, b: number): Seg {
  return { a, b, text: window.slice(a, b), detector: null };
}
