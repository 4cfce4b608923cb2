// Content detectors shared by the PostgreSQL (DataRow) and HTTP (JSON/text/SSE) data paths.
//
//   const d = compileDetectors(['credit-card', 'email']);
//   if (mightMatch(text, d)) for (const m of scanMatches(text, d)) ...
//
// Matches are { detector, start, end } in UTF-16 code units, sorted by start and
// non-overlapping: candidates from different detectors that overlap are merged into one
// region (so nothing any detector flagged is left unmasked) labelled with the detector of the
// earliest-starting candidate (the longer one on a tie).
//
// Pre-check: most values contain no ASCII digit, no '@' and no secret lead, and cannot match
// anything. `mightMatch` / `mightMatchUtf8` decide that in one pass over the string or raw
// bytes, using the same lead recogniser as the secret scanner, so a "no" is exact (a "yes"
// only means the detectors have to run).
//
// Streaming (SSE) contract, for the streaming masker. Detectors treat the end of the text as a
// boundary, so a match may touch the end (m.end === text.length) and still grow or vanish when
// more text arrives (a card followed by more digits is not a card; a PEM block, JWT, API key or
// password value that has not ended is reported up to the end). A streaming caller keeps a
// buffer of not-yet-emitted text and, after each chunk:
//   1. runs scanMatches(buffer);
//   2. cut = max(holdFrom(buffer), buffer.length - (maxMatchLength(detectors) - 1)), lowered to
//      the start of any match that touches the end or crosses it;
//   3. emits buffer[0, cut) with the matches inside it masked, keeps the rest;
//   4. at end of stream, masks and emits everything.
// holdFrom is the tight bound: each detector's matches are made of a few character classes
// and look only a character or two past their end, so only the trailing run of those classes
// (plus a few open constructs: an assignment whose value has not ended, a URL authority, a PEM
// header) can still change; ordinary prose is held back by about one word. maxMatchLength is
// the old, wide bound and caps the hold: the longest text that can be needed before a match is
// recognised (for bounded detectors the longest match; for secret-key, whose shapes are
// open-ended, the length within which every shape is recognised, after which rule 2 holds it).

import type { DetectorName } from '../policy/types';
import { CARD_MAX_LENGTH, PHONE_MAX_LENGTH, SSN_LENGTH, numbersHoldFrom, scanNumbers } from './detect-numbers';
import { EMAIL_MAX_LENGTH, emailHoldFrom, scanEmail } from './detect-email';
import { SECRET_LEAD_CHARS, SECRET_RECOGNITION_LENGTH, maybeLead, scanSecrets, secretLeadAt, secretsHoldFrom } from './detect-secrets';
import { IBAN_MAX_LENGTH } from './checksums';
import { BIT_EMAIL, BIT_SECRET, DETECTOR_BITS, DIGIT_BITS, isAlnum, type DetectorMatch } from './scan-util';

export type { DetectorMatch } from './scan-util';

export const DETECTOR_NAMES: readonly DetectorName[] = Object.freeze([
  'credit-card',
  'email',
  'us-ssn',
  'phone',
  'iban',
  'secret-key',
] as DetectorName[]);

const MAX_LENGTH: Readonly<Record<DetectorName, number>> = {
  'credit-card': CARD_MAX_LENGTH,
  email: EMAIL_MAX_LENGTH,
  'us-ssn': SSN_LENGTH,
  phone: PHONE_MAX_LENGTH,
  iban: IBAN_MAX_LENGTH + 8, // print form: a space after every four characters
  'secret-key': SECRET_RECOGNITION_LENGTH,
};

const TRIGGER_ANY = 1; // any occurrence may start a match: run the detectors
const TRIGGER_SECRET = 2; // may be a secret lead: confirm with secretLeadAt

export interface CompiledDetectors {
  readonly names: readonly DetectorName[];
  readonly bits: number;
  /** Per byte value: TRIGGER_ANY, TRIGGER_SECRET or 0. Only ASCII entries are ever set. */
  readonly triggers: Uint8Array;
}

/** Validate and compile a detector list once (per masking rule), not per value. */
export function compileDetectors(names: readonly DetectorName[]): CompiledDetectors {
  let bits = 0;
  for (const name of names) {
    const bit = Object.prototype.hasOwnProperty.call(DETECTOR_BITS, name) ? DETECTOR_BITS[name] : 0;
    if (bit === 0) throw new Error(`unknown detector "${String(name)}"; known: ${DETECTOR_NAMES.join(', ')}`);
    bits |= bit;
  }
  const triggers = new Uint8Array(256);
  if (bits & DIGIT_BITS) for (let c = 48; c <= 57; c++) triggers[c] = TRIGGER_ANY;
  if (bits & BIT_EMAIL) triggers[64] = TRIGGER_ANY;
  if (bits & BIT_SECRET) for (let k = 0; k < SECRET_LEAD_CHARS.length; k++) triggers[SECRET_LEAD_CHARS.charCodeAt(k)] = TRIGGER_SECRET;
  return { names: DETECTOR_NAMES.filter((n) => (bits & DETECTOR_BITS[n]) !== 0), bits, triggers };
}

/** False when `text` certainly holds no match for `d`: the fast path for most values. */
export function mightMatch(text: string, d: CompiledDetectors): boolean {
  const t = d.triggers;
  for (let i = 0, n = text.length; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 128) {
      const f = t[c];
      if (f === TRIGGER_ANY) return true;
      if (f === TRIGGER_SECRET && maybeLead(c, text.charCodeAt(i + 1)) && secretLeadAt(text, i, c) !== 0) return true;
    }
  }
  return false;
}

/**
 * `mightMatch` over the UTF-8 bytes of a value, without decoding. Every trigger is ASCII and
 * UTF-8 never uses bytes < 0x80 inside a multi-byte character, so the answer equals
 * `mightMatch(buf.toString('utf8'), d)`.
 */
export function mightMatchUtf8(buf: Uint8Array, d: CompiledDetectors): boolean {
  const t = d.triggers;
  for (let i = 0, n = buf.length; i < n; i++) {
    const c = buf[i];
    const f = t[c];
    if (f === TRIGGER_ANY) return true;
    if (f === TRIGGER_SECRET && maybeLead(c, buf[i + 1]) && secretLeadAt(buf, i, c) !== 0) return true;
  }
  return false;
}

/** All matches in `text` (no pre-check: call mightMatch first on hot paths). */
export function scanMatches(text: string, d: CompiledDetectors): DetectorMatch[] {
  const out: DetectorMatch[] = [];
  if (d.bits & DIGIT_BITS) scanNumbers(text, d.bits, out);
  if (d.bits & BIT_EMAIL) scanEmail(text, out);
  if (d.bits & BIT_SECRET) scanSecrets(text, out);
  return out.length > 1 ? mergeOverlaps(out) : out;
}

/** Convenience: pre-check and scan. */
export function findMatches(text: string, detectors: CompiledDetectors | readonly DetectorName[]): DetectorMatch[] {
  const d = isCompiled(detectors) ? detectors : compileDetectors(detectors);
  return mightMatch(text, d) ? scanMatches(text, d) : [];
}

/**
 * The longest text a streaming caller must hold back for these detectors (see the streaming
 * contract at the top of this file). 0 for an empty list.
 */
export function maxMatchLength(detectors: readonly DetectorName[]): number {
  let max = 0;
  for (const name of detectors) {
    const len = Object.prototype.hasOwnProperty.call(MAX_LENGTH, name) ? MAX_LENGTH[name] : 0;
    if (len === 0) throw new Error(`unknown detector "${String(name)}"`);
    if (len > max) max = len;
  }
  return max;
}

/**
 * Streaming hold-back (see the contract at the top of this file): the smallest index i of
 * `text` such that no match of `d` starting before i can still appear, grow, shrink or vanish
 * when text is appended, and no match can start before i. text.slice(0, i) can be emitted (with
 * its matches masked); text.slice(i) must be held. `matches` is scanMatches(text, d) when the
 * caller already has it. Pair it with the maxMatchLength cap (rule 2) for long runs.
 */
export function holdFrom(text: string, d: CompiledDetectors, matches?: readonly DetectorMatch[]): number {
  const n = text.length;
  let hold = n;
  if (d.bits & DIGIT_BITS) hold = Math.min(hold, numbersHoldFrom(text, d.bits));
  if (d.bits & BIT_EMAIL) hold = Math.min(hold, emailHoldFrom(text));
  if (d.bits & BIT_SECRET) hold = Math.min(hold, secretsHoldFrom(text));
  const ms = matches ?? (d.bits !== 0 && mightMatch(text, d) ? scanMatches(text, d) : []);
  for (let prev = -1; prev !== hold;) {
    prev = hold;
    for (const m of ms) {
      if (m.start < hold && (m.end >= n || m.end > hold)) hold = m.start;
    }
    hold = glueStart(text, hold, d.bits);
  }
  return hold;
}

/**
 * Masking re-scans (masker.ts MAX_PASSES): a number, IBAN or email that was no match only
 * because the next value was glued to it ("+44 20 7946 0958alice@example.com",
 * "bob@example.com-----BEGIN ...") becomes one once that value is masked. So when what is held
 * starts with a character that can glue (a letter, digit, '-' or '.'), the run before it that
 * such a candidate could end with is held too.
 */
function glueStart(s: string, i: number, bits: number): number {
  if (i >= s.length || i === 0) return i;
  const c = s.charCodeAt(i);
  if (!(isAlnum(c) || c === 45 || c === 46)) return i;
  let best = i;
  if (bits & DIGIT_BITS) {
    let k = i;
    while (k > 0 && isNumberGlue(s.charCodeAt(k - 1))) k--;
    best = Math.min(best, k);
  }
  if (bits & BIT_EMAIL) {
    let k = i;
    while (k > 0 && isEmailGlue(s.charCodeAt(k - 1))) k--;
    best = Math.min(best, k);
  }
  return best;
}

/** Card, SSN, phone and IBAN characters. */
function isNumberGlue(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || c === 32 || c === 45 || c === 46 || c === 40 || c === 41 || c === 43;
}

/** Email characters. */
function isEmailGlue(c: number): boolean {
  return isAlnum(c) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45 || c === 64;
}

function isCompiled(x: CompiledDetectors | readonly DetectorName[]): x is CompiledDetectors {
  return !Array.isArray(x);
}

/** Sort by start (longer first on ties) and union overlapping regions. */
function mergeOverlaps(ms: DetectorMatch[]): DetectorMatch[] {
  ms.sort((a, b) => a.start - b.start || b.end - a.end);
  const out: DetectorMatch[] = [ms[0]];
  for (let k = 1; k < ms.length; k++) {
    const m = ms[k];
    const last = out[out.length - 1];
    if (m.start < last.end) {
      if (m.end > last.end) out[out.length - 1] = { detector: last.detector, start: last.start, end: m.end };
    } else {
      out.push(m);
    }
  }
  return out;
}
