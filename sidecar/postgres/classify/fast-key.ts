// A cheap cache key for the common case: ASCII SQL whose only varying parts are plain numbers and
// plain '...' strings (`SELECT ... WHERE aid = 12345`). Numbers become `0` and strings `''`;
// everything else is kept verbatim. Two texts with the same key then differ only in the values of
// such literals, so they have the same token structure and classify alike (unless the
// classification read a constant, which the cache checks). Anything this scanner does not fully
// understand — comments, quoted identifiers, dollar quotes, prefixed strings (E'', B'', U&''),
// doubled quotes, backslashes, parameters, non-ASCII, unusual number forms — returns undefined and
// the caller falls back to the real parser's normalization. Hand-written because it runs on every
// simple-protocol statement and costs a fraction of a WASM round trip.

const enum C {
  Quote = 0x27,
  Dot = 0x2e,
  Plus = 0x2b,
  Minus = 0x2d,
  E = 0x65,
  UpperE = 0x45,
}

// 1: identifier char, 2: digit, 4: allowed punctuation/whitespace outside literals.
const CLASS = new Uint8Array(128);
for (let c = 0x61; c <= 0x7a; c++) CLASS[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) CLASS[c] = 1;
CLASS[0x5f] = 1; // _
for (let c = 0x30; c <= 0x39; c++) CLASS[c] = 1 | 2;
for (const ch of ' \t\r\n,().;=<>*+-:[]') CLASS[ch.charCodeAt(0)] = 4;

const isIdent = (c: number): boolean => c < 128 && (CLASS[c] & 1) !== 0;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

export function fastLiteralKey(text: string): string | undefined {
  const n = text.length;
  let out = '';
  let last = 0; // start of the verbatim run not yet copied
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c >= 128) return undefined;
    const cls = CLASS[c];
    if (c === C.Quote) {
      if (i > 0 && isIdent(text.charCodeAt(i - 1))) return undefined; // E'..', B'..', N'..'
      let j = i + 1;
      for (; j < n; j++) {
        const d = text.charCodeAt(j);
        if (d === C.Quote || d === 0x5c /* \ */ || d === 0) break;
      }
      if (j >= n || text.charCodeAt(j) !== C.Quote) return undefined; // unterminated or backslash
      if (j + 1 < n && text.charCodeAt(j + 1) === C.Quote) return undefined; // doubled quote
      if (j + 1 < n && isIdent(text.charCodeAt(j + 1))) return undefined;
      out += text.slice(last, i) + "''";
      i = j + 1;
      last = i;
      continue;
    }
    if (cls & 2) {
      if (i > 0 && (isIdent(text.charCodeAt(i - 1)) || text.charCodeAt(i - 1) === C.Dot)) {
        // part of an identifier (t1) — or `x.5`, which we do not try to understand
        if (!isIdent(text.charCodeAt(i - 1))) return undefined;
        i++;
        continue;
      }
      let j = i;
      while (j < n && isDigit(text.charCodeAt(j))) j++;
      if (j < n && text.charCodeAt(j) === C.Dot) {
        j++;
        while (j < n && isDigit(text.charCodeAt(j))) j++;
      }
      if (j < n && (text.charCodeAt(j) === C.E || text.charCodeAt(j) === C.UpperE)) {
        let k = j + 1;
        if (k < n && (text.charCodeAt(k) === C.Plus || text.charCodeAt(k) === C.Minus)) k++;
        if (k >= n || !isDigit(text.charCodeAt(k))) return undefined;
        while (k < n && isDigit(text.charCodeAt(k))) k++;
        j = k;
      }
      // 0x1F, 1_000, 12abc: forms the lexer treats specially or rejects.
      if (j < n && (isIdent(text.charCodeAt(j)) || text.charCodeAt(j) === C.Dot)) return undefined;
      out += text.slice(last, i) + '0';
      i = j;
      last = i;
      continue;
    }
    if (cls & 1) {
      i++;
      continue;
    }
    if (cls & 4) {
      // `--` starts a comment; `.5` is a number we leave to the real parser.
      if (c === C.Minus && text.charCodeAt(i + 1) === C.Minus) return undefined;
      if (c === C.Dot && isDigit(text.charCodeAt(i + 1))) return undefined;
      i++;
      continue;
    }
    return undefined;
  }
  return out + text.slice(last);
}
