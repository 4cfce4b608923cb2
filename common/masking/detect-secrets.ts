// secret-key detector: well-known credential shapes, each recognised by a distinctive lead
// (a prefix, "-----BEGIN", "eyJ", or a ':'/'=' after a credential-like key name).
//
// `secretLeadAt` is the single recogniser of those leads. The scanner only parses a secret
// where it returns non-zero, and the pre-checks (string and UTF-8 bytes) call the same
// function, so "pre-check says no" can never hide a match.
//
// Open-ended shapes (PEM blocks, JWTs, API-key runs, assignment values) extend to the end of
// the text when their end is not in it yet: a truncated secret is still masked, and a
// streaming caller sees a match touching the end and holds it back (see detectors.ts).

import { C_ALNUM, C_TOKEN, type DetectorMatch, type Src, cls, codeAt, gluedAt, hasAt, isAlnum, isDigit, isEscapeLetter } from './scan-util';

/**
 * A secret is recognised within this many characters of its start (prefix plus the minimum
 * body the checks below need); after that it is reported, running to the end of the text if
 * it has not ended. The streaming hold-back window for secret-key.
 */
export const SECRET_RECOGNITION_LENGTH = 256;

// Lead kinds.
const OPENAI = 1; // sk-..., sk-proj-..., sk-ant-... (Anthropic)
const STRIPE = 2; // sk_live_, sk_test_, rk_live_, rk_test_
const GITHUB = 3; // ghp_ gho_ ghu_ ghs_ ghr_
const GITHUB_PAT = 4; // github_pat_
const SLACK = 5; // xoxa- xoxb- xoxp- xoxr- xoxs-
const AWS = 6; // AKIA / ASIA + 16
const GOOGLE = 7; // AIza + 35
const PEM = 8; // -----BEGIN ... PRIVATE KEY-----
const JWT = 9; // eyJ...
const ASSIGN = 10; // password=..., "api_key": "..."
const URL_USERINFO = 11; // scheme://user:pass@host

/** Characters that can begin a lead (or, for ':' and '=', end a key name). */
export const SECRET_LEAD_CHARS = 'srgxA-e:=';

// Key names whose assigned value is a credential, lower case with '_'/'-' removed: the key
// is compared ignoring '_' and '-' and case, so DB_PASSWORD, dbPassword, x-api-key and
// "client_secret" all match. A key matches when it ends with one of these.
const KEY_NAMES = [
  'password',
  'passwd',
  'passphrase',
  'pwd',
  'secret',
  'apikey',
  'secretkey',
  'privatekey',
  'accesstoken',
  'refreshtoken',
  'authtoken',
  'sessiontoken',
];
/** Index of 'pwd' in KEY_NAMES: it must be the whole key or follow a separator (OLDPWD, cwd). */
const PWD = 3;
/** Last letters of the key names (lower case): a quick reject before comparing. */
const KEY_LAST: Uint8Array = (() => {
  const t = new Uint8Array(128);
  for (const k of KEY_NAMES) t[k.charCodeAt(k.length - 1)] = 1;
  return t;
})();

// First two characters a lead can start with, as a 128x128 bit table: 'e', 's' and 'r' are
// among the commonest letters, and one table read rejects "es", "st", "re" before any call.
// ':' and '=' (key names precede them) accept any following character.
const PAIRS: Uint8Array = (() => {
  const t = new Uint8Array(128 * 128);
  for (const p of ['sk', 'rk', 'gh', 'gi', 'xo', 'AK', 'AS', 'AI', '--', 'ey']) t[(p.charCodeAt(0) << 7) | p.charCodeAt(1)] = 1;
  for (const c of [58, 61]) for (let n = 0; n < 128; n++) t[(c << 7) | n] = 1;
  return t;
})();

/** SECRET_LEAD_CHARS as a table: most characters are rejected by this one read. */
const LEAD: Uint8Array = (() => {
  const t = new Uint8Array(128);
  for (let k = 0; k < SECRET_LEAD_CHARS.length; k++) t[SECRET_LEAD_CHARS.charCodeAt(k)] = 1;
  return t;
})();

/** Cheap filter before secretLeadAt: can a lead start with code c followed by n? (n may be NaN/undefined at the end.) */
export function maybeLead(c: number, n: number): boolean {
  return c < 128 && PAIRS[(c << 7) | (n & 127)] === 1;
}

/** Lead kind at i (c = code at i), or 0. Cheap: a few look-aheads at most. */
export function secretLeadAt(src: Src, i: number, c: number): number {
  switch (c) {
    case 115: // s
      if (codeAt(src, i + 1) !== 107) return 0;
      if (codeAt(src, i + 2) === 45) return OPENAI;
      return codeAt(src, i + 2) === 95 && (hasAt(src, i + 3, 'live_') || hasAt(src, i + 3, 'test_')) ? STRIPE : 0;
    case 114: // r
      return hasAt(src, i + 1, 'k_') && (hasAt(src, i + 3, 'live_') || hasAt(src, i + 3, 'test_')) ? STRIPE : 0;
    case 103: {
      // g
      if (codeAt(src, i + 1) !== 104) return hasAt(src, i + 1, 'ithub_pat_') ? GITHUB_PAT : 0;
      const k = codeAt(src, i + 2);
      return (k === 112 || k === 111 || k === 117 || k === 115 || k === 114) && codeAt(src, i + 3) === 95 ? GITHUB : 0;
    }
    case 120: {
      // x
      if (codeAt(src, i + 1) !== 111 || codeAt(src, i + 2) !== 120 || codeAt(src, i + 4) !== 45) return 0;
      const k = codeAt(src, i + 3);
      return k === 97 || k === 98 || k === 112 || k === 114 || k === 115 ? SLACK : 0;
    }
    case 65: // A
      if (hasAt(src, i + 1, 'KIA') || hasAt(src, i + 1, 'SIA')) return AWS;
      return hasAt(src, i + 1, 'Iza') ? GOOGLE : 0;
    case 45: // -
      return hasAt(src, i + 1, '----BEGIN ') ? PEM : 0;
    case 101: // e
      return codeAt(src, i + 1) === 121 && codeAt(src, i + 2) === 74 ? JWT : 0;
    case 58: // :
      if (codeAt(src, i + 1) === 47 && codeAt(src, i + 2) === 47) return userinfoEnd(src, i + 3) >= 0 ? URL_USERINFO : 0;
      return keyNameBefore(src, i) >= 0 ? ASSIGN : 0;
    case 61: // =
      return keyNameBefore(src, i) >= 0 ? ASSIGN : 0;
    default:
      return 0;
  }
}

/**
 * Index in KEY_NAMES of the credential-like key ending just before the ':' or '=' at sep
 * (allowing spaces, a closing quote and a JSON-escaped quote in between), or -1.
 */
function keyNameBefore(src: Src, sep: number): number {
  let j = sep - 1;
  for (let spaces = 0; spaces < 8 && (codeAt(src, j) === 32 || codeAt(src, j) === 9); spaces++) j--;
  const q = codeAt(src, j);
  if (q === 34 || q === 39) {
    j--;
    if (codeAt(src, j) === 92) j--; // \"password\": in JSON nested in a JSON string
  }
  const last = codeAt(src, j) | 32;
  if (!(last < 128 && KEY_LAST[last] === 1)) return -1;
  for (let n = 0; n < KEY_NAMES.length; n++) {
    const name = KEY_NAMES[n];
    let k = j;
    let x = name.length - 1;
    while (x >= 0) {
      const c = codeAt(src, k);
      if ((c === 95 || c === 45) && x < name.length - 1) {
        k--; // separators inside the name: access_token, api-key
        continue;
      }
      if ((c | 32) !== name.charCodeAt(x) || !(cls(c) & C_ALNUM)) break;
      k--;
      x--;
    }
    if (x >= 0) continue;
    if (n === PWD && (cls(codeAt(src, k)) & C_ALNUM) !== 0) continue;
    return n;
  }
  return -1;
}

export function scanSecrets(s: string, out: DetectorMatch[]): void {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || LEAD[c] === 0 || !maybeLead(c, s.charCodeAt(i + 1))) continue;
    const kind = secretLeadAt(s, i, c);
    if (kind === 0) continue;
    let start = i;
    let end = -1;
    switch (kind) {
      case OPENAI:
        end = matchOpenAi(s, i);
        break;
      case STRIPE:
        end = tokenBoundaryBefore(s, i) ? runEnd(s, i + 8, RUN_ALNUM, 16) : -1;
        break;
      case GITHUB:
        end = tokenBoundaryBefore(s, i) ? runEnd(s, i + 4, RUN_ALNUM, 30) : -1;
        break;
      case GITHUB_PAT:
        end = tokenBoundaryBefore(s, i) ? runEnd(s, i + 11, RUN_PAT, 22) : -1;
        break;
      case SLACK:
        end = matchSlack(s, i);
        break;
      case AWS:
        end = matchAws(s, i);
        break;
      case GOOGLE:
        end = tokenBoundaryBefore(s, i) ? runEnd(s, i + 4, RUN_TOKEN, 35) : -1;
        break;
      case PEM:
        end = matchPem(s, i);
        break;
      case JWT:
        end = matchJwt(s, i);
        break;
      case ASSIGN:
      case URL_USERINFO: {
        const v = kind === ASSIGN ? assignedValue(s, i) : userinfoPassword(s, i);
        if (v !== null) {
          start = v[0];
          end = v[1];
        }
        break;
      }
    }
    if (end > start) {
      out.push({ detector: 'secret-key', start, end });
      i = end - 1;
    }
  }
}

// Alphabets for runEnd.
const RUN_ALNUM = 0; // [A-Za-z0-9]
const RUN_TOKEN = 1; // [A-Za-z0-9_-]  (base64url)
const RUN_PAT = 2; // [A-Za-z0-9_]

function inRun(c: number, alphabet: number): boolean {
  if (isAlnum(c)) return true;
  if (alphabet === RUN_TOKEN) return c === 45 || c === 95;
  return alphabet === RUN_PAT && c === 95;
}

/** End of the run at j of `alphabet` characters; -1 if shorter than min. */
function runEnd(s: string, j: number, alphabet: number, min: number): number {
  let k = j;
  while (inRun(s.charCodeAt(k), alphabet)) k++;
  return k - j >= min ? k : -1;
}

/** A key must not be glued to a preceding [A-Za-z0-9_-] ("task-...", "desk-..."). */
function tokenBoundaryBefore(s: string, i: number): boolean {
  return (cls(s.charCodeAt(i - 1)) & C_TOKEN) === 0 || isEscapeLetter(s, i - 1);
}

/** "sk-" + >= 20 of [A-Za-z0-9_-] containing a digit and a letter: kebab-case words are not keys. */
function matchOpenAi(s: string, i: number): number {
  if (!tokenBoundaryBefore(s, i)) return -1;
  const end = runEnd(s, i + 3, RUN_TOKEN, 20);
  if (end < 0) return -1;
  let digit = false;
  let letter = false;
  for (let k = i + 3; k < end && !(digit && letter); k++) {
    const c = s.charCodeAt(k);
    if (isDigit(c)) digit = true;
    else if (isAlnum(c)) letter = true;
  }
  return digit && letter ? end : -1;
}

/** "xox[abprs]-" + >= 10 of [A-Za-z0-9-] containing a digit. */
function matchSlack(s: string, i: number): number {
  if (!tokenBoundaryBefore(s, i)) return -1;
  let k = i + 5;
  let digit = false;
  for (;;) {
    const c = s.charCodeAt(k);
    if (isDigit(c)) digit = true;
    else if (!(isAlnum(c) || c === 45)) break;
    k++;
  }
  return digit && k - (i + 5) >= 10 ? k : -1;
}

/** AWS access key id: AKIA/ASIA + exactly 16 of [A-Z0-9], standing alone. */
function matchAws(s: string, i: number): number {
  if (gluedAt(s, i - 1)) return -1;
  for (let k = i + 4; k < i + 20; k++) {
    const c = s.charCodeAt(k);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90))) return -1;
  }
  return isAlnum(s.charCodeAt(i + 20)) ? -1 : i + 20;
}

/**
 * "-----BEGIN <label>-----" where the label ([A-Z0-9 ], at most 64) contains "PRIVATE KEY",
 * through the matching "-----END ...-----". Without an END in the text the block runs to the
 * end (truncated, or still streaming). Works on raw JSON too: "\n" escapes are just characters.
 */
function matchPem(s: string, i: number): number {
  if (s.charCodeAt(i - 1) === 45) return -1;
  const labelStart = i + 11;
  let k = labelStart;
  while (k - labelStart <= 64) {
    const c = s.charCodeAt(k);
    if (!((c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 32)) break;
    k++;
  }
  if (!s.startsWith('-----', k)) return -1;
  const label = s.slice(labelStart, k);
  if (!label.includes('PRIVATE KEY')) return -1;
  const endMarker = s.indexOf('-----END ', k + 5);
  if (endMarker < 0) return s.length;
  const close = s.indexOf('-----', endMarker + 9);
  return close < 0 ? s.length : close + 5;
}

/**
 * JWT: "eyJ" + >= 10 base64url, '.', a payload starting "ey"/"ew" (base64 of '{' followed by
 * a quote, space or newline), '.', and a signature of >= 16 (or empty: alg "none"). Once
 * header and payload lead are seen, a token cut off by the end of the text is reported up to
 * the end. A lone "eyJ..." segment (base64 JSON such as a pagination cursor) is not a JWT.
 */
function matchJwt(s: string, i: number): number {
  if (!tokenBoundaryBefore(s, i)) return -1;
  const n = s.length;
  const h = runEnd(s, i, RUN_TOKEN, 13);
  if (h < 0 || s.charCodeAt(h) !== 46) return -1;
  const p0 = s.charCodeAt(h + 1);
  const p1 = s.charCodeAt(h + 2);
  if (p0 !== 101 || (p1 !== 121 && p1 !== 119)) return -1;
  const p = runEnd(s, h + 1, RUN_TOKEN, 2);
  if (p === n) return n;
  if (s.charCodeAt(p) !== 46) return -1;
  const sig = runEnd(s, p + 1, RUN_TOKEN, 0);
  if (sig === n) return n;
  const len = sig - (p + 1);
  if (len === 0) return p + 1;
  return len >= 16 ? sig : -1;
}

/** Value assigned at the ':'/'=' at sep to a credential-like key: [start, end) or null. */
function assignedValue(s: string, sep: number): [number, number] | null {
  const n = s.length;
  let v = sep + 1;
  if (s.charCodeAt(sep) === 61 && s.charCodeAt(v) === 62) v++; // "=>"
  for (let spaces = 0; spaces < 8 && (s.charCodeAt(v) === 32 || s.charCodeAt(v) === 9); spaces++) v++;
  if (v >= n) return null;
  const q = s.charCodeAt(v);
  if (q === 47 && keyNameBefore(s, sep) === PWD) return null; // PWD=/home/user is a directory
  let start: number;
  let end: number;
  if (q === 34 || q === 39) {
    start = v + 1;
    end = closingQuote(s, start, q);
  } else if (q === 92 && s.charCodeAt(v + 1) === 34) {
    start = v + 2; // \"value\" inside a JSON-encoded string
    const close = s.indexOf('\\"', start);
    end = close < 0 ? n : close;
  } else {
    if (q === 123 || q === 91) return null; // an object or list, not a value
    start = v;
    end = v;
    while (end < n && !isValueStop(s.charCodeAt(end))) end += s.charCodeAt(end) === 92 ? 2 : 1; // keep \" (raw JSON) inside
    if (end > n) end = n;
    if (isLiteral(s, start, end)) return null;
  }
  if (end <= start || isMaskToken(s, start, end)) return null;
  return [start, end];
}

function closingQuote(s: string, j: number, q: number): number {
  const n = s.length;
  for (let k = j; k < n; k++) {
    const c = s.charCodeAt(k);
    if (c === 92) k++;
    else if (c === q) return k;
  }
  return n; // unterminated: mask to the end
}

/** Ends an unquoted value: ASCII whitespace/control, & , ; quotes and closing brackets. */
function isValueStop(c: number): boolean {
  return c <= 32 || c === 38 || c === 44 || c === 59 || c === 34 || c === 39 || c === 125 || c === 93 || c === 41 || c === 60 || c === 62;
}

function isLiteral(s: string, start: number, end: number): boolean {
  const len = end - start;
  if (len !== 4 && len !== 5) return false;
  const w = s.slice(start, end);
  return w === 'null' || w === 'true' || w === 'false' || w === 'None';
}

/** Our own mask output ("[REDACTED]", "****", "hash:<16 hex>") is not a secret: masking is idempotent. */
export function isMaskToken(s: string, start: number, end: number): boolean {
  const len = end - start;
  if (len === 10 && s.startsWith('[REDACTED]', start)) return true;
  if (len === 21 && s.startsWith('hash:', start)) {
    for (let k = start + 5; k < end; k++) {
      const c = s.charCodeAt(k);
      if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
    }
    return true;
  }
  for (let k = start; k < end; k++) if (s.charCodeAt(k) !== 42) return false;
  return true;
}

/**
 * In "scheme://user:pass@host" with j just after "//": the index of '@' when a ':' precedes it
 * within the authority (at most 256 characters, no '/', '?', '#', whitespace or quotes); else -1.
 */
function userinfoEnd(src: Src, j: number): number {
  let colon = false;
  for (let k = j; k < j + 256; k++) {
    const c = codeAt(src, k);
    if (c === 64) return colon ? k : -1;
    if (!(c > 32) || c === 47 || c === 63 || c === 35 || c === 34 || c === 39 || c === 60 || c === 62) return -1;
    if (c === 58) colon = true;
  }
  return -1;
}

/** The password in "scheme://user:pass@host", at the ':' of "://". */
function userinfoPassword(s: string, colon: number): [number, number] | null {
  const at = userinfoEnd(s, colon + 3);
  if (at < 0) return null;
  const start = s.indexOf(':', colon + 3) + 1;
  if (start >= at || isMaskToken(s, start, at)) return null;
  return [start, at];
}

/**
 * Streaming hold-back (see detectors.ts): the earliest index of `s` at which a secret-key
 * match could still start, grow or vanish when text is appended. The lowest of:
 *   - the trailing run of [A-Za-z0-9_.-]: every key shape (sk-, ghp_, AKIA, AIza, xox?-,
 *     github_pat_, JWT) is made of those characters and looks at most one character past
 *     its run, so one that starts before the run is decided;
 *   - a key name at the end ("password", '"api_key" ', 'secret\\"'): its ':'/'=' may follow;
 *   - every credential assignment whose value has not visibly ended (no value yet, an open
 *     quote, an unquoted value running to the end, or one that is so far "null" or "****"):
 *     from its key name;
 *   - every "scheme://" whose authority has not reached its '@' or its end, and a trailing
 *     prefix of "://";
 *   - a trailing prefix of "-----BEGIN ", or a "-----BEGIN " whose label and closing "-----"
 *     have not fully arrived.
 * Matches that touch the end (open PEM bodies, quoted values) are the caller's to hold.
 */
export function secretsHoldFrom(s: string): number {
  const n = s.length;
  let hold = n;
  while (hold > 0 && ((cls(s.charCodeAt(hold - 1)) & C_TOKEN) !== 0 || s.charCodeAt(hold - 1) === 46)) hold--;

  let j = n;
  while (j > 0 && isKeyTail(s.charCodeAt(j - 1))) j--;
  if (keyNameBefore(s, j) >= 0) hold = Math.min(hold, keyStart(s, j));

  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 58 || c === 61) {
      if (c === 58 && n - i < 3 && '://'.startsWith(s.slice(i))) hold = Math.min(hold, i);
      const kind = secretLeadAt(s, i, c);
      if (kind === ASSIGN && assignmentOpen(s, i)) hold = Math.min(hold, keyStart(s, i));
      else if (c === 58 && s.charCodeAt(i + 1) === 47 && s.charCodeAt(i + 2) === 47 && userinfoOpen(s, i + 3)) hold = Math.min(hold, i);
    } else if (c === 45 && i >= n - 96 && i < hold && pemHeaderOpen(s, i)) {
      hold = i;
    }
  }
  return hold;
}

/** Between a key name and its ':'/'=': spaces, tabs, a quote, a backslash. */
function isKeyTail(c: number): boolean {
  return c === 32 || c === 9 || c === 34 || c === 39 || c === 92;
}

/** Start of the key name before the ':'/'=' (or end of text) at sep, generously: any [A-Za-z0-9_-] run. */
function keyStart(s: string, sep: number): number {
  let k = sep;
  while (k > 0 && isKeyTail(s.charCodeAt(k - 1))) k--;
  while (k > 0 && (cls(s.charCodeAt(k - 1)) & C_TOKEN) !== 0) k--;
  return k;
}

/** Can more text change what assignedValue(s, sep) returns? Mirrors its parsing. */
function assignmentOpen(s: string, sep: number): boolean {
  const n = s.length;
  let v = sep + 1;
  if (s.charCodeAt(sep) === 61 && s.charCodeAt(v) === 62) v++;
  for (let spaces = 0; spaces < 8 && (s.charCodeAt(v) === 32 || s.charCodeAt(v) === 9); spaces++) v++;
  if (v >= n) return true; // no value yet ("=" may still become "=>")
  const q = s.charCodeAt(v);
  if (q === 34 || q === 39) return closingQuote(s, v + 1, q) >= n;
  if (q === 92) return v + 1 >= n || (s.charCodeAt(v + 1) === 34 ? s.indexOf('\\"', v + 2) < 0 : unquotedRunsToEnd(s, v));
  if (q === 123 || q === 91) return false;
  return unquotedRunsToEnd(s, v);
}

function unquotedRunsToEnd(s: string, v: number): boolean {
  const n = s.length;
  let end = v;
  while (end < n && !isValueStop(s.charCodeAt(end))) end += s.charCodeAt(end) === 92 ? 2 : 1;
  return end >= n;
}

/** Has the authority after "scheme://" (at j) neither reached its '@' nor ended? Mirrors userinfoEnd. */
function userinfoOpen(s: string, j: number): boolean {
  const n = s.length;
  for (let k = j; k < j + 256; k++) {
    if (k >= n) return true;
    const c = s.charCodeAt(k);
    if (c === 64) return false;
    if (!(c > 32) || c === 47 || c === 63 || c === 35 || c === 34 || c === 39 || c === 60 || c === 62) return false;
  }
  return false;
}

const PEM_LEAD = '-----BEGIN ';

/** At a '-': a prefix of "-----BEGIN " at the end, or a PEM header whose label or closing dashes are still arriving. */
function pemHeaderOpen(s: string, i: number): boolean {
  const n = s.length;
  if (n - i < PEM_LEAD.length) return PEM_LEAD.startsWith(s.slice(i));
  if (!s.startsWith(PEM_LEAD, i)) return false;
  const labelStart = i + PEM_LEAD.length;
  let k = labelStart;
  while (k - labelStart <= 64) {
    if (k >= n) return true;
    const c = s.charCodeAt(k);
    if (!((c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 32)) break;
    k++;
  }
  return n - k < 5 && '-----'.startsWith(s.slice(k));
}
