// The injected credential never comes back to the agent. An upstream that echoes request headers
// (debug endpoints, httpbin-style `/anything`, error pages quoting the request) would hand the
// agent the real key the sidecar injected. Every response of a route with a credential is scrubbed
// of the secret's value in the spellings an echo produces: as sent (with and without the header's
// value prefix), JSON-escaped (also as HTML-safe encoders escape it: `\u002B` for `+`),
// HTML-escaped, hex, URL-encoded (percent and form encoding), base64 and base64url (the whole
// value, and the part of it that is the same at any offset inside a longer base64 text), and
// UTF-16 (bytes only). Headers and bodies alike, streams included: a value split across chunks is
// held back until it can no longer complete (a stream keeps at most the longest form minus one
// character).
//
//   const scrub = createCredentialScrubber([token, 'Bearer ' + token]);
//   scrub.text(s) / scrub.bytes(buf) / scrub.textStream() / scrub.byteStream() / scrub.headers(h)
//
// Two alphabets: `text` works on decoded JS strings (JSON, SSE, text bodies after masking),
// `bytes` on raw bytes read as latin1 (one char per byte: binary-safe, and a UTF-8 needle matches
// its UTF-8 bytes exactly), for bodies passed through without being decoded as text.

import { compileDetectors } from '../../../common/masking/detectors';
import type { TextMasker } from '../../../common/masking/masker';
import { createSseEventMasker, type HeldText, type SseEventMasker } from '../../../common/masking/stream/sse';
import type { DetectorName } from '../../../common/policy/types';

/** What a scrubbed credential becomes. */
export const CREDENTIAL_REDACTED = '[REDACTED:credential]';

/** Derived spellings (base64 cores, encodings) shorter than this are not searched: too likely to occur by chance. */
export const MIN_DERIVED_FORM_CHARS = 8;

export interface StreamScrub {
  /** Feed text; returns what is safe to send now. */
  push(text: string): string;
  /** End of stream: everything still held, scrubbed. */
  end(): string;
  /** Credentials scrubbed so far. */
  readonly count: number;
  /** Characters held back now. */
  readonly held: number;
}

export interface CredentialScrubber {
  text(s: string): { text: string; count: number };
  /** Bytes in, bytes out (the same Buffer when nothing matched). */
  bytes(b: Buffer): { buf: Buffer; count: number };
  textStream(): StreamScrub;
  /** A stream over latin1-decoded bytes: push(buf.toString('latin1')), write Buffer.from(out, 'latin1'). */
  byteStream(): StreamScrub;
  /** Scrubs header values in place; a header whose name contains the credential is dropped. Returns the count. */
  headers(h: Record<string, string | string[]>): number;
  /**
   * An event masker for SSE and NDJSON streams: the credential is scrubbed from every string of
   * every event (keys too) and, in streamed text fields, held back across events like a detector
   * match, so a key an upstream echoes split over several events is found whole.
   */
  eventMasker(): SseEventMasker;
}

/** undefined when there is nothing to scrub (no credential injected). */
export function createCredentialScrubber(values: readonly string[]): CredentialScrubber | undefined {
  const secrets = values.filter((v) => v.length > 0);
  if (secrets.length === 0) return undefined;
  const textForms = new Set<string>();
  const utf8Forms = new Set<string>();
  const utf16Forms = new Set<string>();
  for (const v of secrets) {
    for (const f of textSpellings(v)) {
      textForms.add(f);
      utf8Forms.add(Buffer.from(f, 'utf8').toString('latin1'));
    }
    for (const f of utf16Spellings(v)) utf16Forms.add(f);
  }
  const textNeedles = finish(textForms);
  const byteNeedles = finish(new Set([...utf8Forms, ...utf16Forms]));
  const textRe = alternation(textNeedles);
  // Header names arrive lower-cased.
  const nameRe = new RegExp(textRe.source, 'i');
  const byteRe = alternation(byteNeedles);
  // The UTF-16 spellings of a value with any character below U+0100 (any real credential) all
  // hold a zero byte. A body without one cannot contain them, and the alternation without them
  // scans about five times faster (3.2 against 0.6 µs for 1 KiB): the same matches, found sooner.
  const utf16HasZero = [...utf16Forms].every((f) => f.includes('\0'));
  const utf8ByteRe = alternation(finish(utf8Forms));
  const replace = (re: RegExp, s: string): { text: string; count: number } => {
    let count = 0;
    const text = s.replace(re, () => {
      count++;
      return CREDENTIAL_REDACTED;
    });
    return { text: count > 0 ? text : s, count };
  };
  const text = (s: string): { text: string; count: number } => replace(textRe, s);
  return {
    text,
    bytes(b) {
      const r = replace(utf16HasZero && b.indexOf(0) === -1 ? utf8ByteRe : byteRe, b.toString('latin1'));
      return { buf: r.count > 0 ? Buffer.from(r.text, 'latin1') : b, count: r.count };
    },
    textStream: () => streamScrub(textNeedles, textRe),
    byteStream: () => streamScrub(byteNeedles, byteRe),
    eventMasker: () =>
      createSseEventMasker({ masker: asTextMasker(text, textNeedles), heldText: () => asHeldText(streamScrub(textNeedles, textRe)) }),
    headers(h) {
      let count = 0;
      for (const name of Object.keys(h)) {
        if (nameRe.test(name)) {
          delete h[name];
          count++;
          continue;
        }
        const v = h[name];
        if (Array.isArray(v)) {
          h[name] = v.map((x) => {
            const r = text(x);
            count += r.count;
            return r.text;
          });
        } else {
          const r = text(v);
          count += r.count;
          h[name] = r.text;
        }
      }
      return count;
    },
  };
}

/**
 * A scrubber per set of values, reused while they stay the same: secrets are read on every
 * request (they may rotate), but building a scrubber (every spelling, two alternations) costs far
 * more than the scans it makes, about 150 µs against 11 µs for a 4 KiB body. One per target.
 */
export function createScrubberSlot(): (values: readonly string[]) => CredentialScrubber | undefined {
  let key: string | undefined;
  let last: CredentialScrubber | undefined;
  return (values) => {
    const k = JSON.stringify(values);
    if (k !== key) {
      last = createCredentialScrubber(values);
      key = k;
    }
    return last;
  };
}

/** The spellings of one secret value an echo can produce, as text. */
function textSpellings(v: string): string[] {
  const out = [v];
  const derived: string[] = [];
  const json = JSON.stringify(v).slice(1, -1);
  derived.push(json, json.replace(/\//g, '\\/'));
  derived.push(...htmlSafeJsonSpellings(json), ...htmlSpellings(v));
  const pct = encodeURIComponent(v);
  derived.push(
    pct,
    pct.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    pct.replace(/%20/g, '+'),
  );
  derived.push(encodeURI(v));
  const bytes = Buffer.from(v, 'utf8');
  const hex = bytes.toString('hex');
  derived.push(hex, hex.toUpperCase());
  for (const b64 of base64Spellings(bytes)) derived.push(b64, b64.replace(/\+/g, '-').replace(/\//g, '_'), encodeURIComponent(b64));
  for (const d of derived) if (d.length >= MIN_DERIVED_FORM_CHARS) out.push(d);
  return out;
}

/**
 * The JSON spellings of HTML-safe encoders, which escape more than JSON.stringify: ASP.NET Core's
 * System.Text.Json (`+ & < > ' \``, `"` and non-ASCII as upper-case `\u00XX`), Go's
 * encoding/json (`< > &` as lower-case `\u003c`), Python's ensure_ascii (non-ASCII, lower case).
 * `json` is the JSON.stringify spelling without its quotes.
 */
function htmlSafeJsonSpellings(json: string): string[] {
  const u = (c: string, upper: boolean): string => {
    const hex = c.charCodeAt(0).toString(16).padStart(4, '0');
    return '\\u' + (upper ? hex.toUpperCase() : hex);
  };
  const dotnet = json.replace(/\\"/g, '"').replace(/[+&<>'`"\u0080-\uffff]/g, (c) => u(c, true));
  const go = json.replace(/[<>&\u2028\u2029]/g, (c) => u(c, false));
  const ascii = json.replace(/[\u0080-\uffff]/g, (c) => u(c, false));
  return [dotnet, go, ascii].filter((f) => f !== json);
}

/**
 * The value escaped for HTML, as error pages and templates quoting the request write it: the
 * named entities, and the numeric ones Go's html/template and others use (`+` as `&#43;`).
 */
function htmlSpellings(v: string): string[] {
  if (!/[&<>"'+]/.test(v)) return [];
  const basic = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };
  const escapers: Array<Record<string, string> | ((c: string) => string)> = [
    { ...basic, '"': '&quot;', "'": '&#x27;' }, // Python html.escape
    { ...basic, '"': '&#34;', "'": '&#39;' }, // Go html.EscapeString
    { ...basic, '"': '&#34;', "'": '&#39;', '+': '&#43;' }, // Go html/template
    (c) => `&#${c.charCodeAt(0)};`,
    (c) => `&#x${c.charCodeAt(0).toString(16)};`,
  ];
  return escapers.map((e) => v.replace(/[&<>"'+]/g, (c) => (typeof e === 'function' ? e(c) : (e[c] ?? c))));
}

/**
 * base64 of the value on its own (padded and unpadded), and for each of the three alignments the
 * value can have inside a longer base64 text, the characters that encode only the value's bytes.
 */
function base64Spellings(bytes: Buffer): string[] {
  const whole = bytes.toString('base64');
  const out = [whole, whole.replace(/=+$/, '')];
  for (let k = 0; k < 3; k++) {
    const shifted = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64');
    const firstGroup = Math.ceil(k / 3);
    const endGroup = Math.floor((k + bytes.length) / 3);
    if (endGroup > firstGroup) out.push(shifted.slice(firstGroup * 4, endGroup * 4));
  }
  return out;
}

/** UTF-16LE and UTF-16BE bytes of the value, as latin1 text. */
function utf16Spellings(v: string): string[] {
  const le = Buffer.from(v, 'utf16le');
  const be = Buffer.from(le);
  be.swap16();
  return [le.toString('latin1'), be.toString('latin1')];
}

/** Longest first, so at any position the longest spelling wins. */
function finish(forms: Set<string>): string[] {
  return [...forms].filter((f) => f.length > 0).sort((a, b) => b.length - a.length);
}

function alternation(needles: readonly string[]): RegExp {
  return new RegExp(needles.map((n) => n.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')).join('|'), 'g');
}

/**
 * Streaming: after each push, everything but the longest tail that is a proper prefix of some
 * needle is released (scrubbed); that tail waits for the next push.
 */
function streamScrub(needles: readonly string[], re: RegExp): StreamScrub {
  let pending = '';
  let count = 0;
  const maxHold = needles.length > 0 ? needles[0].length - 1 : 0;
  const holdFrom = (s: string): number => {
    for (let len = Math.min(maxHold, s.length); len > 0; len--) {
      const tail = s.slice(s.length - len);
      if (needles.some((n) => n.length > len && n.startsWith(tail))) return s.length - len;
    }
    return s.length;
  };
  const scrub = (s: string): string =>
    s.replace(re, () => {
      count++;
      return CREDENTIAL_REDACTED;
    });
  return {
    push(text) {
      if (text === '') return '';
      const all = pending + text;
      // Held: the tail that may still become a needle, and any match reaching into it (a longer
      // spelling, the padded base64 of a core already seen, may still complete there).
      let cut = holdFrom(all);
      re.lastIndex = 0;
      for (let m = re.exec(all); m !== null; m = re.exec(all)) {
        if (m.index + m[0].length > cut) {
          cut = Math.min(cut, m.index);
          break;
        }
      }
      pending = all.slice(cut);
      return scrub(all.slice(0, cut));
    },
    end() {
      const out = scrub(pending);
      pending = '';
      return out;
    },
    get count() {
      return count;
    },
    get held() {
      return pending.length;
    },
  };
}

/** The scrubber as a TextMasker (no detectors): what the event maskers call on whole strings. */
function asTextMasker(text: (s: string) => { text: string; count: number }, needles: readonly string[]): TextMasker {
  const NONE: readonly DetectorName[] = [];
  const HIT: readonly DetectorName[] = ['secret-key'];
  return {
    detectors: NONE,
    strategy: 'redact',
    maxMatchLength: needles.length > 0 ? needles[0].length : 0,
    mask(s) {
      const r = text(s);
      return { text: r.text, count: r.count, detectors: r.count > 0 ? HIT : NONE };
    },
    maskUtf8(buf) {
      const r = text(buf.toString('utf8'));
      return r.count > 0 ? { buf: Buffer.from(r.text, 'utf8'), count: r.count, detectors: HIT } : null;
    },
    maskValue: () => CREDENTIAL_REDACTED,
    maskWhole: () => CREDENTIAL_REDACTED,
    compiled: compileDetectors([]),
  };
}

function asHeldText(scrub: StreamScrub): HeldText {
  return {
    push: (t) => scrub.push(t),
    flush: () => scrub.end(),
    get held() {
      return scrub.held;
    },
    get masked() {
      return scrub.count;
    },
  };
}
