// Mask strategies: what replaces a sensitive value.
//
//   redact  "[REDACTED]"  for every value: fixed, so neither length nor shape leaks.
//   last4   keeps the last four letters/digits and the separators, replaces every other
//           letter/digit with '*': "**** **** **** 1111", "***-**-6789", "+** ** **** 0958".
//           Values with fewer than 8 letters/digits are fully starred (a 4-digit PIN keeps
//           nothing). Per detector: email gives "****@****" (an address has no "last four"
//           worth showing) and secret-key gives "****" (no part of a credential is revealed,
//           and a fixed token hides its length). Non-ASCII characters count as letters.
//           last4 keeps the length and separators of the value: use redact or hash to hide them.
//   hash    "hash:" + the first 16 hex digits (64 bits) of HMAC-SHA256(key, value): equal
//           values give equal tokens, so joins and group-bys keep working, and without the key
//           the token cannot be brute-forced (a card number has < 2^50 candidates). For
//           detector matches the value is first canonicalised so formatting does not matter:
//           card, SSN, IBAN -> letters/digits upper-cased ("4111 1111 1111 1111" and
//           "4111-1111-1111-1111" hash alike); phone -> digits; email -> lower case;
//           secret-key -> as is. Whole-column masking hashes the exact value.
//
// Every output is built so that no detector matches it again: masking masked text is a no-op.

import { createHmac } from 'node:crypto';
import type { DetectorName, MaskStrategy } from '../policy/types';
import { isAlnum } from './scan-util';

export const REDACTED = '[REDACTED]';
const HIDDEN = '****';
const EMAIL_HIDDEN = '****@****';
/** Shortest key accepted for the hash strategy: shorter keys make tokens guessable. */
export const MIN_HASH_KEY_BYTES = 16;

export const MASK_STRATEGIES: readonly MaskStrategy[] = Object.freeze(['redact', 'last4', 'hash'] as MaskStrategy[]);

export function assertStrategy(strategy: string): asserts strategy is MaskStrategy {
  if (!(MASK_STRATEGIES as readonly string[]).includes(strategy)) {
    throw new Error(`unknown mask strategy "${strategy}"; known: ${MASK_STRATEGIES.join(', ')}`);
  }
}

export function assertHashKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length < MIN_HASH_KEY_BYTES) {
    throw new RangeError(`hash masking needs a key of at least ${MIN_HASH_KEY_BYTES} bytes`);
  }
}

/**
 * Mask one value. `detector` is the detector that found it, or undefined for a whole column
 * value. The caller has validated strategy and key (createTextMasker / maskWhole do).
 */
export function applyStrategy(strategy: MaskStrategy, value: string, detector: DetectorName | undefined, key: Buffer): string {
  switch (strategy) {
    case 'redact':
      return REDACTED;
    case 'last4':
      return last4(value, detector);
    case 'hash':
      return hashToken(detector === undefined ? value : canonical(value, detector), key);
  }
}

export function hashToken(value: string, key: Buffer): string {
  return 'hash:' + createHmac('sha256', key).update(value, 'utf8').digest().toString('hex', 0, 8);
}

function canonical(value: string, detector: DetectorName): string {
  switch (detector) {
    case 'credit-card':
    case 'us-ssn':
    case 'iban':
      return value.replace(/[^A-Za-z0-9]/g, '').toUpperCase();
    case 'phone':
      return value.replace(/[^0-9]/g, '');
    case 'email':
      return value.toLowerCase();
    case 'secret-key':
      return value;
  }
}

export function last4(value: string, detector?: DetectorName): string {
  if (detector === 'email') return EMAIL_HIDDEN;
  if (detector === 'secret-key') return HIDDEN;
  let maskable = 0;
  const n = value.length;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (isMaskable(c)) {
      maskable++;
      if (isSurrogatePair(value, i, c)) i++;
    }
  }
  const keepFrom = maskable >= 8 ? maskable - 4 : maskable; // index of the first kept character
  let out = '';
  let seen = 0;
  let runStart = 0; // start of the pending run of characters copied unchanged
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (!isMaskable(c)) continue;
    const width = isSurrogatePair(value, i, c) ? 2 : 1;
    if (seen >= keepFrom) {
      seen++;
      i += width - 1;
      continue;
    }
    out += value.slice(runStart, i) + '*';
    seen++;
    i += width - 1;
    runStart = i + 1;
  }
  return out + value.slice(runStart);
}

/** Letters and digits: ASCII alphanumerics and any non-ASCII character that is not a space. */
function isMaskable(c: number): boolean {
  if (c < 128) return isAlnum(c);
  return !isUnicodeSpace(c);
}

function isUnicodeSpace(c: number): boolean {
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200b) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

function isSurrogatePair(s: string, i: number, c: number): boolean {
  if (c < 0xd800 || c > 0xdbff) return false;
  const d = s.charCodeAt(i + 1);
  return d >= 0xdc00 && d <= 0xdfff;
}
