import fc from 'fast-check';
import { MAX_COMBINING_MARKS, displaySafe, displaySafeDeep, displaySafeJson, escapeCodePoint, escapeForDisplay } from './display-escape';

describe('escapeForDisplay', () => {
  test('plain SQL, tabs and line feeds are shown as they are', () => {
    const sql = 'SELECT *\n\tFROM orders\n WHERE id > 0 -- all of them\n';
    expect(escapeForDisplay(sql)).toEqual({ text: sql, escaped: 0 });
    expect(escapeForDisplay("SELECT 'café', 'naïve', 'ệ', 'क्षत्रिय', '日本語', '😀'").escaped).toBe(0);
  });

  test.each([
    ['ESC (terminal sequences)', '\x1b[2K', '\\x1b[2K'],
    ['backspace', 'a\bb', 'a\\x08b'],
    ['DEL', 'a\x7fb', 'a\\x7fb'],
    ['NUL', 'a\0b', 'a\\x00b'],
    ['vertical tab and form feed', '\v\f', '\\x0b\\x0c'],
    ['C1 CSI and NEL', '\u009b2J\u0085', '\\x9b2J\\x85'],
    ['right-to-left override', 'x\u202ey', 'x\\u202ey'],
    ['every bidi embedding and override', '\u202a\u202b\u202c\u202d\u202e', '\\u202a\\u202b\\u202c\\u202d\\u202e'],
    ['bidi isolates', '\u2066\u2067\u2068\u2069', '\\u2066\\u2067\\u2068\\u2069'],
    ['LRM, RLM, Arabic letter mark', '\u200e\u200f\u061c', '\\u200e\\u200f\\u061c'],
    ['zero-width space, non-joiner, joiner', '\u200b\u200c\u200d', '\\u200b\\u200c\\u200d'],
    ['byte order mark', '\ufeff', '\\ufeff'],
    ['line and paragraph separators', 'a\u2028b\u2029c', 'a\\u2028b\\u2029c'],
    ['soft hyphen and word joiner', '\u00ad\u2060', '\\xad\\u2060'],
    ['Hangul filler', '\u3164', '\\u3164'],
    ['variation selector', '\ufe0f', '\\ufe0f'],
    ['tag characters (invisible ASCII smuggling)', '\u{e0041}\u{e007f}', '\\u{e0041}\\u{e007f}'],
    ['private use', '\ue000', '\\ue000'],
    ['lone surrogate', 'a\ud800b', 'a\\ud800b'],
    ['interlinear annotation', '\ufff9', '\\ufff9'],
  ])('%s is escaped', (_name, input, shown) => {
    const r = escapeForDisplay(input);
    expect(r.text).toBe(shown);
    expect(r.escaped).toBeGreaterThan(0);
  });

  test('a CR is shown as \\r and ends the line, as it ends a -- comment for PostgreSQL', () => {
    expect(displaySafe('SELECT 1 -- note\rDELETE FROM t')).toBe('SELECT 1 -- note\\r\nDELETE FROM t');
    // CRLF: one line break, the CR still visible
    expect(displaySafe('SELECT 1\r\nFROM t')).toBe('SELECT 1\\r\nFROM t');
  });

  test('combining marks: kept on letters, escaped on ASCII punctuation, digits and in long stacks', () => {
    expect(displaySafe('cafe\u0301')).toBe('cafe\\u0301'); // on ASCII: escaped (composed é is the norm)
    expect(displaySafe('ca\u00e9\u0301')).toBe('ca\u00e9\u0301');
    expect(displaySafe('id >\u0338 0')).toBe('id >\\u0338 0');
    expect(displaySafe('3\u20e3')).toBe('3\\u20e3');
    const stack = 'ж' + '\u0300'.repeat(MAX_COMBINING_MARKS + 2);
    expect(displaySafe(stack)).toBe('ж' + '\u0300'.repeat(MAX_COMBINING_MARKS) + '\\u0300\\u0300');
    expect(displaySafe('\u0300')).toBe('\\u0300');
  });

  test('escape forms', () => {
    expect(escapeCodePoint(0x1b)).toBe('\\x1b');
    expect(escapeCodePoint(0x0d)).toBe('\\r');
    expect(escapeCodePoint(0x202e)).toBe('\\u202e');
    expect(escapeCodePoint(0xe0041)).toBe('\\u{e0041}');
  });

  test('the spoof of the issue: WHERE id > 0 cannot read as WHERE id = 3', () => {
    // Rendered by a bidi-aware viewer, the override shows the tail reversed ("… 3 = di EREHW" tricks);
    // escaped, every character after the override stays in logical order and the override is named.
    const sql = 'DELETE FROM t WHERE id > 0 /*\u202e 3 = di EREHW \u202c*/';
    const shown = displaySafe(sql);
    expect(shown).toBe('DELETE FROM t WHERE id > 0 /*\\u202e 3 = di EREHW \\u202c*/');
    expect(shown).not.toMatch(/[\u202a-\u202e\u2066-\u2069]/);
  });

  test('idempotent, and nothing it returns needs escaping again (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const once = escapeForDisplay(s);
        const twice = escapeForDisplay(once.text);
        expect(twice.text).toBe(once.text);
        expect(twice.escaped).toBe(0);
        // no character that moves the cursor or reorders text survives
        expect(once.text).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/);
      }),
      { numRuns: 2000, seed: 10 },
    );
  });

  test('text without escapes is unchanged (property)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[\t\n\x20-\x7e]*$/), (s) => {
        expect(escapeForDisplay(s)).toEqual({ text: s, escaped: 0 });
      }),
      { numRuns: 500, seed: 11 },
    );
  });
});

describe('displaySafeJson', () => {
  test('the same JSON value, with no raw hidden character left in the text', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string({ unit: 'binary' }), (v, s) => {
        const value = { v, s };
        const text = displaySafeJson(value, 2);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
        expect(text).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/);
      }),
      { numRuns: 1000, seed: 12 },
    );
    expect(displaySafeJson({ sql: 'x\u202ey\u{e0041}' })).toBe('{"sql":"x\\u202ey\\udb40\\udc41"}');
  });
});

describe('displaySafeDeep', () => {
  test('escapes every string, keeps numbers, booleans and null', () => {
    expect(displaySafeDeep({ a: ['\x1b', 1, null, true], b: { c: '\u202e' } })).toEqual({
      a: ['\\x1b', 1, null, true],
      b: { c: '\\u202e' },
    });
  });
});
