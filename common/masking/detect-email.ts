// Email detector: a practical subset of RFC 5322 addr-spec. local@domain.tld where the local
// part is [A-Za-z0-9._%+-]{1,64} (no quoted forms), the domain is dot-separated labels of
// [A-Za-z0-9-] (each 1-63, not starting with '-'), at least two labels, and the last label is
// a TLD: two or more letters, or punycode "xn--...". Whitespace and anything outside those
// sets ends a part, so a match never spans words. ASCII-only like every detector: in an
// address with non-ASCII characters only the ASCII tail of the local part is matched.

import { C_LABEL, C_LOCAL, type DetectorMatch, cls, isDigit, isEscapeLetter } from './scan-util';

export const EMAIL_MAX_LENGTH = 64 + 1 + 253;

export function scanEmail(s: string, out: DetectorMatch[]): void {
  let at = s.indexOf('@');
  while (at !== -1) {
    let next = at + 1;
    let a = at;
    const lim = at > 64 ? at - 64 : 0;
    while (a > lim && (cls(s.charCodeAt(a - 1)) & C_LOCAL) !== 0 && !isEscapeLetter(s, a - 1)) a--;
    while (a < at && s.charCodeAt(a) === 46) a++; // a local part does not start with '.'
    if (a < at && !isUrlUserinfo(s, a)) {
      const e = domainEnd(s, at + 1);
      if (e > 0) {
        out.push({ detector: 'email', start: a, end: e });
        next = e;
      }
    }
    at = s.indexOf('@', next);
  }
}

/**
 * End of the longest dot-separated run of labels at j whose last label is a TLD, or -1.
 * "alice@example.com.123" gives "alice@example.com".
 */
function domainEnd(s: string, j: number): number {
  const lim = j + 253;
  let k = j;
  let labels = 0;
  let best = -1;
  for (;;) {
    const start = k;
    while (k < lim && (cls(s.charCodeAt(k)) & C_LABEL) !== 0) k++;
    const len = k - start;
    if (len === 0 || len > 63 || s.charCodeAt(start) === 45) break;
    // "icon@2x.png": retina asset names, not addresses.
    if (labels === 0 && isRetinaSuffix(s, start, k)) return -1;
    labels++;
    if (labels >= 2 && isTld(s, start, k)) best = k;
    if (s.charCodeAt(k) !== 46) break;
    k++;
  }
  return best;
}

function isTld(s: string, start: number, end: number): boolean {
  if (end - start < 2) return false;
  if (end - start > 4 && s.startsWith('xn--', start)) return true;
  for (let k = start; k < end; k++) {
    const c = s.charCodeAt(k) | 32;
    if (c < 97 || c > 122) return false;
  }
  return true;
}

function isRetinaSuffix(s: string, start: number, end: number): boolean {
  if (end - start < 2 || (s.charCodeAt(end - 1) | 32) !== 120 /* x */) return false;
  for (let k = start; k < end - 1; k++) if (!isDigit(s.charCodeAt(k))) return false;
  return true;
}

/**
 * "scheme://user@host" or "scheme://user:pass@host": the part before '@' is URL userinfo, not
 * an address. The password in it is the secret-key detector's business; calling the whole
 * thing an email would also mask the host name, which the agent legitimately needs.
 */
function isUrlUserinfo(s: string, localStart: number): boolean {
  let k = localStart - 1;
  const c = s.charCodeAt(k);
  if (c === 58 /* : */) {
    // skip the user name back to "//"
    const lim = k > 256 ? k - 256 : 0;
    k--;
    while (k >= lim) {
      const d = s.charCodeAt(k);
      if (d === 47 || d <= 32 || d === 64) break;
      k--;
    }
  }
  return s.charCodeAt(k) === 47 && s.charCodeAt(k - 1) === 47 && s.charCodeAt(k - 2) === 58;
}

/**
 * Streaming hold-back (see detectors.ts): the earliest index of `s` at which an email match
 * could still start or change when text is appended. A match is local-part characters, '@'
 * and domain characters, all within [A-Za-z0-9._%+-@], and its domain scan stops at the first
 * character outside that set. So only the trailing run of such characters is undecided, and
 * in it a match starts at most 64 characters before its '@' (the first '@' of the run, or one
 * still to come).
 */
export function emailHoldFrom(s: string): number {
  const n = s.length;
  let k = n;
  for (;;) {
    const c = s.charCodeAt(k - 1);
    if (k === 0 || !((cls(c) & C_LOCAL) !== 0 || c === 64)) break;
    k--;
  }
  const at = s.indexOf('@', k);
  return Math.max(k, (at < 0 ? n : at) - 64);
}
