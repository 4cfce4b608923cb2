// Shared pieces of the hand-written scanners.
//
// Why hand-written: masking runs on every text column of every result row and on every
// JSON/SSE chunk the sidecar relays. One pass with charCodeAt tests and a 128-entry class
// table is several times cheaper than a regex per detector, and it lets the same
// recognisers run over UTF-16 strings and raw UTF-8 bytes (see `Src`).
//
// Detectors are ASCII-only on purpose: they match ASCII digits and letters, and treat every
// code unit >= 0x80 as "other". That keeps the string path and the byte path (where
// non-ASCII text is multi-byte) in agreement, and it means a value written in, say,
// full-width digits is not detected: content detection is a safety net, column rules are the
// boundary.

import type { DetectorName } from '../policy/types';

/** One detected sensitive value: `text.slice(start, end)` in UTF-16 code units. */
export interface DetectorMatch {
  detector: DetectorName;
  start: number;
  end: number;
}

/** Detector bits, so the scanners test a number instead of a list of names. */
export const BIT_CARD = 1;
export const BIT_EMAIL = 2;
export const BIT_SSN = 4;
export const BIT_PHONE = 8;
export const BIT_IBAN = 16;
export const BIT_SECRET = 32;
/** Detectors that can only match text containing an ASCII digit. */
export const DIGIT_BITS = BIT_CARD | BIT_SSN | BIT_PHONE | BIT_IBAN;

export const DETECTOR_BITS: Readonly<Record<DetectorName, number>> = {
  'credit-card': BIT_CARD,
  email: BIT_EMAIL,
  'us-ssn': BIT_SSN,
  phone: BIT_PHONE,
  iban: BIT_IBAN,
  'secret-key': BIT_SECRET,
};

// Character classes (bit flags in CLASS).
export const C_DIGIT = 1;
export const C_UPPER = 2;
export const C_LOWER = 4;
export const C_ALNUM = C_DIGIT | C_UPPER | C_LOWER;
/** [A-Za-z0-9_-]: the alphabet of API keys and of base64url (JWT segments). */
export const C_TOKEN = 8;
/** Email local part, practical subset: [A-Za-z0-9._%+-]. */
export const C_LOCAL = 16;
/** Domain label: [A-Za-z0-9-]. */
export const C_LABEL = 32;

export const CLASS: Uint8Array = (() => {
  const t = new Uint8Array(128);
  for (let c = 48; c <= 57; c++) t[c] = C_DIGIT | C_TOKEN | C_LOCAL | C_LABEL;
  for (let c = 65; c <= 90; c++) t[c] = C_UPPER | C_TOKEN | C_LOCAL | C_LABEL;
  for (let c = 97; c <= 122; c++) t[c] = C_LOWER | C_TOKEN | C_LOCAL | C_LABEL;
  t[95] |= C_TOKEN | C_LOCAL; // _
  t[45] |= C_TOKEN | C_LOCAL | C_LABEL; // -
  t[46] |= C_LOCAL; // .
  t[37] |= C_LOCAL; // %
  t[43] |= C_LOCAL; // +
  return t;
})();

/**
 * Class bits of a code unit. Out-of-range reads (charCodeAt past the end gives NaN, a typed
 * array gives undefined) fall through to 0, so scanners may look ahead without bounds checks.
 */
export function cls(c: number): number {
  return c < 128 ? CLASS[c] : 0;
}

export function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

export function isAlnum(c: number): boolean {
  return c < 128 && (CLASS[c] & C_ALNUM) !== 0;
}

/**
 * Is s[k] the letter of a backslash escape (\n \t \r \b \f)? In raw JSON text ("Card:\n4111...")
 * such a letter is a separator, not part of the word that follows; treating it as a letter
 * would hide the card, or widen an email match over the 'n' and break the escape.
 */
export function isEscapeLetter(s: string, k: number): boolean {
  if (s.charCodeAt(k - 1) !== 92) return false;
  const c = s.charCodeAt(k);
  return c === 110 || c === 116 || c === 114 || c === 98 || c === 102;
}

/** Is s[k] a letter or digit that glues to the character after it? */
export function gluedAt(s: string, k: number): boolean {
  return isAlnum(s.charCodeAt(k)) && !isEscapeLetter(s, k);
}

/** A string or the raw bytes of a UTF-8 value: recognisers shared by both paths read through `codeAt`. */
export type Src = string | Uint8Array;

export function codeAt(src: Src, i: number): number {
  return typeof src === 'string' ? src.charCodeAt(i) : src[i];
}

/** Does `src` hold the ASCII text `lit` at `i`? */
export function hasAt(src: Src, i: number, lit: string): boolean {
  for (let k = 0; k < lit.length; k++) if (codeAt(src, i + k) !== lit.charCodeAt(k)) return false;
  return true;
}
