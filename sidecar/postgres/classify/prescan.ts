// A cheap upper bound on how deeply a statement nests expressions, checked before the real parser
// sees the text. libpg-query turns a parse tree into JSON with recursive code on a small WASM stack:
// an operator chain of ~10,000 (`1+1+...`) overflows it, and after a few dozen overflows the shared
// WASM instance is corrupted ("memory access out of bounds" for every later statement). Texts that
// could nest that deep are refused here instead. Hand-written because it runs on every statement
// the caches miss: one pass over the characters, no allocation.
//
// The estimate: each open bracket adds a level, and within a bracket (between commas) every
// operator and every nesting keyword adds one more, because `a+b+c` and `NOT NOT x` nest one node
// per operator. Commas start a new list item (lists are flat), and so do AND and OR, one level
// down (the parser flattens their chains into one node whose arguments are siblings), except the
// AND of a BETWEEN, which belongs to it. Strings, quoted identifiers and comments are skipped. It
// over-counts (`a + b * c` is two levels, not three) but never under-counts a real chain, so a
// text that passes cannot nest deeper than the limit.

/** Deepest estimated nesting classified; the parser overflows near 10,000, real SQL stays far below. */
export const MAX_NESTING_DEPTH = 1000;

/** Keywords that build one more level around what follows or precedes them. */
const NESTING_KEYWORDS = new Set([
  'not',
  'is',
  'like',
  'ilike',
  'similar',
  'between',
  'collate',
  'at',
  'case',
  'array',
  'in',
  'escape',
  'overlaps',
  'isnull',
  'notnull',
]);

const enum C {
  Quote = 0x27,
  DoubleQuote = 0x22,
  Dollar = 0x24,
  ParenOpen = 0x28,
  ParenClose = 0x29,
  Star = 0x2a,
  Comma = 0x2c,
  Minus = 0x2d,
  Slash = 0x2f,
  Semicolon = 0x3b,
  BracketOpen = 0x5b,
  Backslash = 0x5c,
  BracketClose = 0x5d,
  E = 0x45,
  LowerE = 0x65,
}

// 1: identifier start, 2: identifier part, 4: operator character.
const CLASS = new Uint8Array(128);
for (let c = 0x61; c <= 0x7a; c++) CLASS[c] = 1 | 2;
for (let c = 0x41; c <= 0x5a; c++) CLASS[c] = 1 | 2;
CLASS[0x5f] = 1 | 2; // _
for (let c = 0x30; c <= 0x39; c++) CLASS[c] = 2;
CLASS[C.Dollar] = 2;
for (const ch of '+-*/<>=~!@#%^&|`?:') CLASS[ch.charCodeAt(0)] = 4;

const identStart = (c: number): boolean => c >= 128 || (CLASS[c] & 1) !== 0;
const identPart = (c: number): boolean => c >= 128 || (CLASS[c] & 2) !== 0;
const isOperator = (c: number): boolean => c < 128 && (CLASS[c] & 4) !== 0;

/**
 * The estimated nesting depth of `text`, or the first estimate past `limit` (scanning stops there).
 * Unterminated strings and comments end the scan: the parser reports them as syntax errors.
 */
export function nestingDepth(text: string, limit = MAX_NESTING_DEPTH): number {
  // chain[i]: operators seen in the current list item at bracket level i; total: their sum plus the levels.
  const chain: number[] = [0];
  // Per level: a BETWEEN waits for its AND, which then does not start a new item.
  const between: boolean[] = [false];
  let total = 0;
  let max = 0;
  const n = text.length;
  let i = 0;
  const bump = (): boolean => {
    chain[chain.length - 1]++;
    total++;
    if (total > max) max = total;
    return max > limit;
  };
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === C.Quote) {
      const escapes =
        i > 0 && (text.charCodeAt(i - 1) === C.E || text.charCodeAt(i - 1) === C.LowerE) && (i < 2 || !identPart(text.charCodeAt(i - 2)));
      i = skipQuoted(text, i + 1, C.Quote, escapes);
    } else if (c === C.DoubleQuote) {
      i = skipQuoted(text, i + 1, C.DoubleQuote, false);
    } else if (c === C.Minus && text.charCodeAt(i + 1) === C.Minus) {
      const eol = text.indexOf('\n', i);
      i = eol < 0 ? n : eol + 1;
    } else if (c === C.Slash && text.charCodeAt(i + 1) === C.Star) {
      i = skipBlockComment(text, i + 2);
    } else if (c === C.Dollar) {
      i = skipDollar(text, i);
    } else if (c === C.ParenOpen || c === C.BracketOpen) {
      chain.push(0);
      between.push(false);
      total++;
      if (total > max) max = total;
      if (max > limit) return max;
      i++;
    } else if (c === C.ParenClose || c === C.BracketClose) {
      if (chain.length > 1) {
        total -= 1 + chain.pop()!;
        between.pop();
      }
      i++;
    } else if (c === C.Comma || c === C.Semicolon) {
      total -= chain[chain.length - 1];
      chain[chain.length - 1] = 0;
      if (c === C.Semicolon) {
        // A new statement: whatever the last one left unbalanced does not carry over.
        chain.length = 1;
        chain[0] = 0;
        between.length = 1;
        between[0] = false;
        total = 0;
      }
      i++;
    } else if (isOperator(c)) {
      while (i < n && isOperator(text.charCodeAt(i))) {
        // A comment start inside an operator run ends the operator, as in the server's lexer.
        const d = text.charCodeAt(i);
        const next = text.charCodeAt(i + 1);
        if ((d === C.Minus && next === C.Minus) || (d === C.Slash && next === C.Star)) break;
        i++;
      }
      if (bump()) return max;
    } else if (identStart(c)) {
      const start = i;
      while (i < n && identPart(text.charCodeAt(i))) i++;
      const len = i - start;
      if (len < 2 || len > 8) continue;
      const word = text.slice(start, i).toLowerCase();
      const top = chain.length - 1;
      if ((word === 'and' && !between[top]) || word === 'or') {
        // The flattened AND/OR node is one level; its arguments start afresh.
        total -= chain[top] - 1;
        chain[top] = 1;
      } else if (word === 'and') {
        between[top] = false;
      } else if (NESTING_KEYWORDS.has(word)) {
        if (word === 'between') between[top] = true;
        if (bump()) return max;
      }
    } else {
      i++;
    }
  }
  return max;
}

/** Past the closing quote of a '...', E'...' or "..." starting at `i` (after the opening quote). */
function skipQuoted(text: string, i: number, quote: number, backslashEscapes: boolean): number {
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (backslashEscapes && c === C.Backslash) {
      i += 2;
    } else if (c === quote) {
      if (text.charCodeAt(i + 1) === quote)
        i += 2; // doubled quote
      else return i + 1;
    } else {
      i++;
    }
  }
  return n;
}

/** Past a (nested) block comment whose `/*` ends before `i`. */
function skipBlockComment(text: string, i: number): number {
  const n = text.length;
  let depth = 1;
  while (i < n && depth > 0) {
    const c = text.charCodeAt(i);
    if (c === C.Slash && text.charCodeAt(i + 1) === C.Star) {
      depth++;
      i += 2;
    } else if (c === C.Star && text.charCodeAt(i + 1) === C.Slash) {
      depth--;
      i += 2;
    } else {
      i++;
    }
  }
  return i;
}

/** Past a $tag$...$tag$ string starting at `i`, or just past a `$1` parameter or lone `$`. */
function skipDollar(text: string, i: number): number {
  const n = text.length;
  let j = i + 1;
  if (j < n && identStart(text.charCodeAt(j))) {
    while (j < n && identPart(text.charCodeAt(j)) && text.charCodeAt(j) !== C.Dollar) j++;
  }
  if (text.charCodeAt(j) !== C.Dollar) {
    // A parameter ($1) or a `$` inside an identifier: nothing to skip but the digits.
    while (j < n && text.charCodeAt(j) >= 0x30 && text.charCodeAt(j) <= 0x39) j++;
    return j;
  }
  const tag = text.slice(i, j + 1);
  const close = text.indexOf(tag, j + 1);
  return close < 0 ? n : close + tag.length;
}
