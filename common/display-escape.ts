// Text an approver reads (a held statement, an HTTP request, reasons) goes through here before it
// is shown: in `warden approvals list`, notifications, ApprovalRequest objects and kubectl output.
// Terminals, browsers, Slack and YAML viewers act on some characters instead of showing them: ESC
// starts terminal sequences, CR and BS move the cursor back over text, bidirectional overrides
// reorder it, zero-width and other ignorable characters hide it, combining marks draw over it. So
// `DELETE … WHERE id > 0 /*‮ … */` could read as `WHERE id = 3`. Each such character is shown as
// a visible escape instead: `\x1b`, `\r`, `\u202e`, `\u{e0041}`.
//
// What stays as it is: tab and line feed (multi-line SQL must stay readable; neither can move back
// over text already written). A carriage return is shown as `\r` followed by a real line break,
// because PostgreSQL ends a `--` comment at a CR just as at a line feed: the text after it must not
// look like part of the comment. Backslashes are not doubled, so escaping is idempotent (every
// layer may apply it again) and SQL stays readable; the data path says when it escaped anything
// (see `escapeForDisplay().escaped`) so an approver knows a `\u…` may stand for a hidden character.
//
// Display only: digests and approvals always bind the original bytes.

/** Combining marks allowed on one letter before the rest are escaped: stacked marks draw over neighbouring text. */
export const MAX_COMBINING_MARKS = 4;

// Controls (C0, DEL, C1), format characters (bidi embeddings, overrides and isolates, LRM/RLM/ALM,
// zero-width space/joiners, BOM, tags), line and paragraph separators, lone surrogates, private-use
// and unassigned code points, and everything Unicode says a renderer may draw as nothing.
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}\p{Default_Ignorable_Code_Point}]/u;
const MARK = /\p{M}/u;
const LETTER = /\p{L}/u;
// Anything that may need a look; most text has none of these, so the common case is one regex test.
const SUSPECT = /[^\t\n\x20-\x7e]/u;

function hex(cp: number, width: number): string {
  return cp.toString(16).padStart(width, '0');
}

/** The visible escape of one code point: `\r`, `\xHH` below U+0100, `\uHHHH` in the BMP, else `\u{HHHHH}`. */
export function escapeCodePoint(cp: number): string {
  if (cp === 0x0d) return '\\r';
  if (cp < 0x100) return `\\x${hex(cp, 2)}`;
  if (cp < 0x10000) return `\\u${hex(cp, 4)}`;
  return `\\u{${hex(cp, 5)}}`;
}

export interface EscapedText {
  text: string;
  /** How many characters were replaced by escapes (0: the text is shown exactly as it is). */
  escaped: number;
}

/** Escapes every character that could hide, move or reorder text; see the header of this file. */
export function escapeForDisplay(s: string): EscapedText {
  return rewrite(s, escapeCodePoint, true);
}

/** The common walk: `escape` writes one hidden code point; `crBreak` adds the line break after a CR. */
function rewrite(s: string, escape: (cp: number) => string, crBreak: boolean): EscapedText {
  if (!SUSPECT.test(s)) return { text: s, escaped: 0 };
  let out = '';
  let escaped = 0;
  // Marks on the current base character, and whether that base may carry marks at all.
  let marks = 0;
  let baseTakesMarks = false;
  const chars = Array.from(s);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    const cp = ch.codePointAt(0)!;
    if (ch === '\t' || ch === '\n' || (cp >= 0x20 && cp < 0x7f)) {
      out += ch;
      marks = 0;
      baseTakesMarks = false;
      continue;
    }
    if (HIDDEN.test(ch)) {
      escaped++;
      out += escape(cp);
      // A CR ends a line (and a `--` comment) for PostgreSQL: show that, unless a line feed follows anyway.
      if (crBreak && cp === 0x0d && chars[i + 1] !== '\n') out += '\n';
      marks = 0;
      baseTakesMarks = false;
      continue;
    }
    if (MARK.test(ch)) {
      // Marks belong on letters (é, ệ, क्ष); on ASCII, digits, punctuation or in a long stack they
      // are drawing tricks (`>` with U+0338 reads as `≯`).
      marks++;
      if (!baseTakesMarks || marks > MAX_COMBINING_MARKS) {
        escaped++;
        out += escape(cp);
      } else {
        out += ch;
      }
      continue;
    }
    out += ch;
    marks = 0;
    baseTakesMarks = LETTER.test(ch);
  }
  return { text: out, escaped };
}

/** `escapeForDisplay(s).text`: for every place that shows text to a person. */
export function displaySafe(s: string): string {
  return escapeForDisplay(s).text;
}

/** Every string in a JSON-like value passed through displaySafe (a deep copy; other values kept). */
export function displaySafeDeep<T>(value: T): T {
  if (typeof value === 'string') return displaySafe(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => displaySafeDeep(v)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = displaySafeDeep(v);
    return out as T;
  }
  return value;
}

/** A code point as JSON `\uXXXX` escape(s): a surrogate pair beyond the BMP. */
function jsonEscape(cp: number): string {
  return String.fromCodePoint(cp)
    .split('')
    .map((unit) => `\\u${hex(unit.charCodeAt(0), 4)}`)
    .join('');
}

/**
 * JSON.stringify, with every character escapeForDisplay would escape written as a JSON `\uXXXX`
 * escape instead (JSON.stringify itself escapes only C0 controls): the same JSON value (parsing
 * gives back the original strings), but safe to print to a terminal or a viewer. Outside strings
 * JSON is plain ASCII, so only string contents change.
 */
export function displaySafeJson(value: unknown, space?: number): string {
  return rewrite(JSON.stringify(value, null, space), jsonEscape, false).text;
}
