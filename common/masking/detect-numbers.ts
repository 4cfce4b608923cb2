// Digit-bearing detectors: credit-card, us-ssn, phone, iban. One left-to-right pass; each
// candidate is tried only where it can start (a digit, '+', '(' or an upper-case letter that
// is not glued to a preceding letter or digit), and validated in place without slicing.

import { ibanChecksumValid, ibanLength, luhnValid } from './checksums';
import { BIT_CARD, BIT_IBAN, BIT_PHONE, BIT_SSN, type DetectorMatch, gluedAt, isAlnum, isDigit } from './scan-util';

// Scratch for card digit groups. Scanning is synchronous, so one module-level buffer is safe
// and saves an allocation per candidate.
const MAX_CARD_GROUPS = 8;
const groupEnd = new Int32Array(MAX_CARD_GROUPS);
const groupLen = new Int32Array(MAX_CARD_GROUPS);

/** Longest card match: 19 digits in at most 6 groups of >= 3 digits, so 5 separators. */
export const CARD_MAX_LENGTH = 24;
export const SSN_LENGTH = 11;
/** '+' and 15 digits in up to 15 tokens, 14 separators, and parentheses around all but the first. */
export const PHONE_MAX_LENGTH = 1 + 15 + 14 + 2 * 14;

export function scanNumbers(s: string, bits: number, out: DetectorMatch[]): void {
  const n = s.length;
  // Most digit-bearing values ("v2.14.3", "199.99", "Suite 400") have too few digits for any
  // of these: cards need 13, SSNs 9, phones 8 (E.164) or 10 (NANP). IBANs need 2 check digits
  // and more in every registered BBAN format, but keep them at the plain threshold of 2.
  let digits = 0;
  for (let k = 0; k < n && digits < 8; k++) {
    const c = s.charCodeAt(k);
    if (c >= 48 && c <= 57) digits++;
  }
  if (digits < 8) {
    if (digits < 2) return;
    bits &= BIT_IBAN;
    if (bits === 0) return;
  }
  let prev = 32; // code before i; the start of the text behaves like a space
  let cardEnd = 0; // no second card may start inside the last one
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (!isAlnum(prev) || !gluedAt(s, i - 1)) {
        if (bits & BIT_CARD && i >= cardEnd) {
          const e = matchCard(s, i);
          if (e > 0) {
            out.push({ detector: 'credit-card', start: i, end: e });
            cardEnd = e;
          }
        }
        if (bits & BIT_SSN) {
          const e = matchSsn(s, i);
          if (e > 0) out.push({ detector: 'us-ssn', start: i, end: e });
        }
        if (bits & BIT_PHONE) {
          const e = matchNanp(s, i);
          if (e > 0) out.push({ detector: 'phone', start: i, end: e });
        }
      }
    } else if (c === 43 /* + */) {
      if (bits & BIT_PHONE && (!isAlnum(prev) || !gluedAt(s, i - 1))) {
        const e = matchE164(s, i);
        if (e > 0) out.push({ detector: 'phone', start: i, end: e });
      }
    } else if (c === 40 /* ( */) {
      if (bits & BIT_PHONE) {
        const e = nanpCore(s, i, 0);
        if (e > 0) out.push({ detector: 'phone', start: i, end: e });
      }
    } else if (c >= 65 && c <= 90) {
      if (bits & BIT_IBAN && (!isAlnum(prev) || !gluedAt(s, i - 1))) {
        const e = matchIban(s, i);
        if (e > 0) out.push({ detector: 'iban', start: i, end: e });
      }
    }
    prev = c;
  }
}

/**
 * Card number starting at digit i: 13-19 digits, either one run or groups of 3-8 digits split
 * by one consistent ' ' or '-'; Luhn-valid; first digit 2-6 (Visa, Mastercard, Amex,
 * Discover, JCB, Diners, UnionPay, Maestro: this drops half of the random digit runs that pass
 * Luhn, e.g. epoch-millisecond timestamps and snowflake ids, which start with 1). Inside a
 * longer run of groups the longest valid prefix wins, so "qty 2 4111 1111 1111 1111" still
 * finds the card. Returns the end or -1.
 */
function matchCard(s: string, i: number): number {
  const first = s.charCodeAt(i);
  if (first < 50 || first > 54) return -1;
  const p = s.charCodeAt(i - 1);
  // A decimal fraction ("0.4111111111111111") is not a card.
  if ((p === 46 || p === 44) && isDigit(s.charCodeAt(i - 2))) return -1;
  // Our own hash token ("hash:" + 16 hex) can be all digits: masked output must not re-match.
  if (p === 58 && s.startsWith('hash', i - 5)) return -1;

  let groups = 0;
  let total = 0;
  let sep = 0;
  let j = i;
  for (;;) {
    let k = j;
    while (isDigit(s.charCodeAt(k))) k++;
    const len = k - j;
    if (total + len > 19) {
      if (groups === 0) return -1; // part of a longer digit run: an id, not a card
      break;
    }
    total += len;
    groupEnd[groups] = k;
    groupLen[groups] = len;
    groups++;
    const c = s.charCodeAt(k);
    if (groups === MAX_CARD_GROUPS) break;
    if (!((c === 32 || c === 45) && (sep === 0 || c === sep) && isDigit(s.charCodeAt(k + 1)))) break;
    sep = c;
    j = k + 1;
  }
  if (total < 13) return -1;

  for (let g = groups - 1; g >= 0; g--) {
    let digits = 0;
    let shapeOk = true;
    for (let x = 0; x <= g; x++) {
      digits += groupLen[x];
      if (g > 0 && (groupLen[x] < 3 || groupLen[x] > 8)) shapeOk = false;
    }
    if (digits < 13) return -1;
    if (!shapeOk) continue;
    const end = groupEnd[g];
    const q = s.charCodeAt(end);
    if (isAlnum(q) || (q === 46 && isDigit(s.charCodeAt(end + 1)))) continue; // glued to letters, or "4111....1111.5"
    if (luhnValid(s, i, end)) return end;
  }
  return -1;
}

function digitsAt(s: string, i: number, count: number): boolean {
  for (let k = i; k < i + count; k++) if (!isDigit(s.charCodeAt(k))) return false;
  return true;
}

function numAt(s: string, i: number, count: number): number {
  let v = 0;
  for (let k = i; k < i + count; k++) v = v * 10 + (s.charCodeAt(k) - 48);
  return v;
}

/** Is the candidate [i, end) glued to a longer dashed/dotted/spaced number ("2024-123-45-6789")? */
function inLongerNumber(s: string, i: number, end: number, sep: number): boolean {
  const p = s.charCodeAt(i - 1);
  if ((p === 45 || p === 46 || p === sep) && isDigit(s.charCodeAt(i - 2))) return true;
  const q = s.charCodeAt(end);
  if (isAlnum(q)) return true;
  return (q === 45 || q === 46 || q === sep) && isDigit(s.charCodeAt(end + 1));
}

/**
 * US SSN "ddd-dd-dddd" or "ddd dd dddd" (one separator, used twice). Invalid by SSA rules:
 * area 000, 666, 900-999; group 00; serial 0000. Bare nine-digit runs are not matched: too
 * many of them are not SSNs.
 */
function matchSsn(s: string, i: number): number {
  const sep = s.charCodeAt(i + 3);
  if (sep !== 45 && sep !== 32) return -1;
  if (!digitsAt(s, i, 3) || !digitsAt(s, i + 4, 2) || s.charCodeAt(i + 6) !== sep || !digitsAt(s, i + 7, 4)) return -1;
  const end = i + 11;
  if (inLongerNumber(s, i, end, sep)) return -1;
  const area = numAt(s, i, 3);
  if (area === 0 || area === 666 || area >= 900) return -1;
  if (numAt(s, i + 4, 2) === 0 || numAt(s, i + 7, 4) === 0) return -1;
  return end;
}

/** N in NANP: an area code or exchange starts with 2-9. */
function nxxAt(s: string, j: number): boolean {
  const c = s.charCodeAt(j);
  return c >= 50 && c <= 57 && isDigit(s.charCodeAt(j + 1)) && isDigit(s.charCodeAt(j + 2));
}

/**
 * NANP number at digit i: "415-555-2671", "415.555.2671", optionally after "1-"/"1."/"1 ",
 * or "(415) 555-2671" (see nanpCore). Ten bare digits are not matched: order ids look the same.
 */
function matchNanp(s: string, i: number): number {
  const p = s.charCodeAt(i - 1);
  if ((p === 45 || p === 46) && isDigit(s.charCodeAt(i - 2))) return -1;
  if (s.charCodeAt(i) === 49) {
    const c = s.charCodeAt(i + 1);
    if (c === 45 || c === 46 || c === 32) {
      const e = nanpCore(s, i + 2, c);
      if (e > 0) return e;
    }
  }
  return nanpCore(s, i, 0);
}

/** The ten-digit part at j; prefixSep is the separator after a leading "1" (0 if none). */
function nanpCore(s: string, j: number, prefixSep: number): number {
  let end: number;
  let sep: number;
  if (s.charCodeAt(j) === 40 /* ( */) {
    if (!nxxAt(s, j + 1) || s.charCodeAt(j + 4) !== 41) return -1;
    let k = j + 5;
    if (s.charCodeAt(k) === 32) k++;
    if (!nxxAt(s, k)) return -1;
    sep = s.charCodeAt(k + 3);
    if ((sep !== 45 && sep !== 46 && sep !== 32) || !digitsAt(s, k + 4, 4)) return -1;
    end = k + 8;
  } else {
    sep = s.charCodeAt(j + 3);
    if (sep !== 45 && sep !== 46) return -1;
    if (prefixSep !== 0 && prefixSep !== 32 && prefixSep !== sep) return -1;
    if (!nxxAt(s, j) || !nxxAt(s, j + 4) || s.charCodeAt(j + 7) !== sep || !digitsAt(s, j + 8, 4)) return -1;
    end = j + 12;
  }
  const q = s.charCodeAt(end);
  if (isAlnum(q) || ((q === 45 || q === 46) && isDigit(s.charCodeAt(end + 1)))) return -1;
  return end;
}

/**
 * E.164 at '+': country code starts 1-9; 8-15 digits in total, in groups split by single
 * ' ', '-' or '.', with optional parenthesised groups ("+1 (415) 555-2671", "+44 (0)20 ...").
 * Grouping stops before a group that would exceed 15 digits; an unbroken run longer than 15
 * digits is not a phone number.
 */
function matchE164(s: string, i: number): number {
  let j = i + 1;
  const f = s.charCodeAt(j);
  if (f < 49 || f > 57) return -1;
  let digits = 0;
  let end = -1;
  for (;;) {
    const c = s.charCodeAt(j);
    let len: number;
    let next: number;
    if (isDigit(c)) {
      let k = j;
      while (isDigit(s.charCodeAt(k))) k++;
      len = k - j;
      next = k;
    } else if (c === 40 && digits > 0) {
      let k = j + 1;
      while (isDigit(s.charCodeAt(k))) k++;
      len = k - j - 1;
      if (len === 0 || s.charCodeAt(k) !== 41) break;
      next = k + 1;
    } else {
      break;
    }
    if (digits + len > 15) {
      if (digits === 0) return -1;
      break;
    }
    digits += len;
    end = next;
    j = next;
    const d = s.charCodeAt(j);
    if (d === 32 || d === 45 || d === 46) {
      const e = s.charCodeAt(j + 1);
      if (!(isDigit(e) || e === 40)) break;
      j++;
    } else if (!(isDigit(d) || d === 40)) {
      break; // a digit directly after ")" or "(" directly after digits continues the number
    }
  }
  if (digits < 8 || isAlnum(s.charCodeAt(end))) return -1;
  return end;
}

/**
 * IBAN at upper-case letter i: registered country code, two check digits, then exactly the
 * country's length in [A-Z0-9], either unbroken or in print form (a space after every four
 * characters). Upper case only, as IBANs are written. Must pass mod-97.
 */
function matchIban(s: string, i: number): number {
  const len = ibanLength(s.charCodeAt(i), s.charCodeAt(i + 1));
  if (len === 0 || !isDigit(s.charCodeAt(i + 2)) || !isDigit(s.charCodeAt(i + 3))) return -1;
  const spaced = s.charCodeAt(i + 4) === 32;
  let pos = i + 4;
  for (let count = 4; count < len; count++) {
    if (spaced && (count & 3) === 0) {
      if (s.charCodeAt(pos) !== 32) return -1;
      pos++;
    }
    const c = s.charCodeAt(pos);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90))) return -1;
    pos++;
  }
  if (isAlnum(s.charCodeAt(pos))) return -1;
  return ibanChecksumValid(s, i, pos) ? pos : -1;
}

/** Characters a card, SSN or phone candidate is made of, and the only ones it reads past its end. */
function isNumberChar(c: number): boolean {
  return (c >= 48 && c <= 57) || c === 32 || c === 45 || c === 46 || c === 40 || c === 41 || c === 43;
}

function isIbanChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || c === 32;
}

/**
 * Streaming hold-back (see detectors.ts): the earliest index of `s` at which a card, SSN,
 * phone or IBAN match could still start, grow, shrink or vanish when text is appended.
 *
 * Card, SSN and phone candidates consist of digits, ' ', '-', '.', '(', ')' and '+', and look
 * past their end only through such characters (a letter there rejects, anything else ends
 * the candidate). So a candidate that starts before the trailing run of those characters is
 * decided; inside the run, candidates start at a digit, '+' or '('. IBANs likewise consist of
 * [A-Z0-9 ] and start at an upper-case letter.
 */
export function numbersHoldFrom(s: string, bits: number): number {
  const n = s.length;
  let hold = n;
  if (bits & (BIT_CARD | BIT_SSN | BIT_PHONE)) {
    let k = n;
    while (k > 0 && isNumberChar(s.charCodeAt(k - 1))) k--;
    for (; k < n; k++) {
      const c = s.charCodeAt(k);
      if ((c >= 48 && c <= 57) || c === 43 || c === 40) break;
    }
    hold = k;
  }
  if (bits & BIT_IBAN) {
    let k = n;
    while (k > 0 && isIbanChar(s.charCodeAt(k - 1))) k--;
    for (; k < hold; k++) {
      const c = s.charCodeAt(k);
      if (c >= 65 && c <= 90) break;
    }
    if (k < hold) hold = k;
  }
  return hold;
}
