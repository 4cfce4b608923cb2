import type { DetectorName, MaskStrategy } from '../policy/types';
import { DETECTOR_NAMES } from './detectors';
import { createTextMasker, maskWhole } from './masker';
import { hashToken } from './strategies';

const hashKey = Buffer.from('0123456789abcdef0123456789abcdef');
const all = (strategy: MaskStrategy = 'redact') => createTextMasker({ detectors: DETECTOR_NAMES, strategy, hashKey });

describe('createTextMasker().mask', () => {
  it('masks every match and counts them', () => {
    const r = all().mask('Card 4111 1111 1111 1111, mail bob@example.com, card again 5555555555554444.');
    expect(r.text).toBe('Card [REDACTED], mail [REDACTED], card again [REDACTED].');
    expect(r.count).toBe(3);
    expect(r.detectors).toEqual(['credit-card', 'email']);
  });

  it('returns the same string object and no detectors when nothing matched', () => {
    const m = all();
    for (const text of ['plain text', 'order 12345 shipped 2024-01-15', '', 'ünïcödé']) {
      const r = m.mask(text);
      expect(r.text).toBe(text);
      expect(r.count).toBe(0);
      expect(r.detectors).toEqual([]);
    }
    const s = ['order ', 12345].join('');
    expect(Object.is(m.mask(s).text, s)).toBe(true);
  });

  it('applies last4 and hash per match', () => {
    expect(all('last4').mask('pay with 4111-1111-1111-1111 or mail a@example.com').text).toBe(
      'pay with ****-****-****-1111 or mail ****@****',
    );
    expect(all('hash').mask('ssn 123-45-6789').text).toBe(`ssn ${hashToken('123456789', hashKey)}`);
  });

  it('masks only the value of a password assignment', () => {
    expect(all().mask('{"user":"bob","password":"hunter2"}').text).toBe('{"user":"bob","password":"[REDACTED]"}');
  });

  it('keeps unicode around matches intact', () => {
    const r = all('last4').mask('Ünïcødé → 4111111111111111 ✓ 日本 alice@example.com 😀');
    expect(r.text).toBe('Ünïcødé → ************1111 ✓ 日本 ****@**** 😀');
  });

  it('only uses the detectors it was given', () => {
    const m = createTextMasker({ detectors: ['email'], strategy: 'redact', hashKey });
    expect(m.mask('4111111111111111 a@example.com').text).toBe('4111111111111111 [REDACTED]');
    expect(m.detectors).toEqual(['email']);
  });

  it('with no detectors never masks', () => {
    const m = createTextMasker({ detectors: [], strategy: 'redact', hashKey });
    expect(m.mask('4111111111111111').count).toBe(0);
    expect(m.maskUtf8(Buffer.from('4111111111111111'))).toBeNull();
  });

  it('validates its spec', () => {
    expect(() => createTextMasker({ detectors: ['nope' as DetectorName], strategy: 'redact', hashKey })).toThrow(/unknown detector/);
    expect(() => createTextMasker({ detectors: [], strategy: 'nope' as MaskStrategy, hashKey })).toThrow(/unknown mask strategy/);
    expect(() => createTextMasker({ detectors: ['email'], strategy: 'hash', hashKey: Buffer.alloc(4) })).toThrow(RangeError);
    // a short key is fine when it is never used
    expect(() => createTextMasker({ detectors: ['email'], strategy: 'redact', hashKey: Buffer.alloc(0) })).not.toThrow();
  });

  it('exposes the streaming hold-back window', () => {
    expect(createTextMasker({ detectors: ['us-ssn'], strategy: 'redact', hashKey }).maxMatchLength).toBe(11);
  });
});

describe('raw JSON text', () => {
  it('treats backslash escapes as separators and keeps the JSON valid', () => {
    const doc = JSON.stringify({
      a: 'Card:\n4111111111111111',
      b: 'mail\nalice@example.com',
      c: 'key\tsk-proj-Ab3dEf6hIj9kLmNoPqRsTuVwXyZ012345',
      d: 'iban\rDE89370400440532013000',
      e: 'note password=abc"def and more',
      f: 'aws\nAKIAIOSFODNN7EXAMPLE',
    });
    for (const strategy of ['redact', 'last4', 'hash'] as const) {
      const r = all(strategy).mask(doc);
      expect(r.count).toBe(6);
      const parsed = JSON.parse(r.text) as Record<string, string>;
      expect(parsed.a.startsWith('Card:\n')).toBe(true);
      expect(parsed.b.startsWith('mail\n')).toBe(true);
      expect(r.text).not.toMatch(/4111111111111111|alice@|sk-proj|DE8937|abc|AKIA/);
    }
  });
});

describe('createTextMasker().maskUtf8', () => {
  it('returns null without decoding for values that cannot match', () => {
    const m = all();
    expect(m.maskUtf8(Buffer.from('Alice Smith'))).toBeNull();
    expect(m.maskUtf8(Buffer.from('Zürich, Straße'))).toBeNull();
  });

  it('returns null when the pre-check passes but nothing matches', () => {
    expect(all().maskUtf8(Buffer.from('order 12345'))).toBeNull();
  });

  it('masks and re-encodes, with the count', () => {
    const r = all('last4').maskUtf8(Buffer.from('Jürgen: 4111 1111 1111 1111 — ok'));
    expect(r).not.toBeNull();
    expect(r!.buf.toString('utf8')).toBe('Jürgen: **** **** **** 1111 — ok');
    expect(r!.count).toBe(1);
    expect(r!.detectors).toEqual(['credit-card']);
  });

  it('preserves bytes outside matches for invalid UTF-8', () => {
    const bad = Buffer.concat([Buffer.from([0xff, 0xfe, 0x41]), Buffer.from(' 4111111111111111 '), Buffer.from([0xc3])]);
    const r = all().maskUtf8(bad);
    expect(r).not.toBeNull();
    expect(r!.buf).toEqual(Buffer.concat([Buffer.from([0xff, 0xfe, 0x41]), Buffer.from(' [REDACTED] '), Buffer.from([0xc3])]));
  });

  it('agrees with mask() on valid UTF-8', () => {
    const m = all('hash');
    const text = 'naïve café: password=pässwort, card 4111-1111-1111-1111 😀';
    const r = m.maskUtf8(Buffer.from(text));
    expect(r!.buf.toString('utf8')).toBe(m.mask(text).text);
  });
});

describe('maskWhole', () => {
  it('masks the whole value with each strategy', () => {
    expect(maskWhole('anything at all', 'redact', hashKey)).toBe('[REDACTED]');
    expect(maskWhole('4111111111111111', 'last4', hashKey)).toBe('************1111');
    expect(maskWhole('Alice@Example.com', 'hash', hashKey)).toBe(hashToken('Alice@Example.com', hashKey));
  });

  it('rejects unknown strategies and short keys', () => {
    expect(() => maskWhole('x', 'nope' as MaskStrategy, hashKey)).toThrow();
    expect(() => maskWhole('x', 'hash', Buffer.alloc(8))).toThrow(RangeError);
  });
});
