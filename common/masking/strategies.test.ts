import { createHmac } from 'node:crypto';
import { MIN_HASH_KEY_BYTES, REDACTED, applyStrategy, assertHashKey, hashToken, last4 } from './strategies';

const key = Buffer.alloc(32, 7);

describe('redact', () => {
  it('gives a fixed token whatever the value', () => {
    expect(applyStrategy('redact', '4111111111111111', 'credit-card', key)).toBe(REDACTED);
    expect(applyStrategy('redact', 'x', undefined, key)).toBe('[REDACTED]');
  });
});

describe('last4', () => {
  it.each([
    ['4111 1111 1111 1111', 'credit-card', '**** **** **** 1111'],
    ['4111-1111-1111-1111', 'credit-card', '****-****-****-1111'],
    ['4111111111111111', 'credit-card', '************1111'],
    ['123-45-6789', 'us-ssn', '***-**-6789'],
    ['+44 20 7946 0958', 'phone', '+** ** **** 0958'],
    ['(415) 555-2671', 'phone', '(***) ***-2671'],
    ['DE89 3704 0044 0532 0130 00', 'iban', '**** **** **** **** **30 00'],
    ['alice@example.com', 'email', '****@****'],
    ['sk-proj-Ab3dEf6hIj9kLmNoPqRsTuVwXyZ012345', 'secret-key', '****'],
    ['hunter2', 'secret-key', '****'],
  ] as const)('%s (%s) -> %s', (value, detector, expected) => {
    expect(last4(value, detector)).toBe(expected);
  });

  it('keeps nothing of values shorter than 8 letters/digits', () => {
    expect(last4('1234')).toBe('****');
    expect(last4('ab-cd-ef')).toBe('**-**-**');
  });

  it('treats non-ASCII letters as letters, one star per code point', () => {
    expect(last4('Jöhn Smíth')).toBe('**** *míth');
    expect(last4('😀😀😀😀😀😀😀😀x')).toBe('*****😀😀😀x');
    expect(last4('名前は田中太郎です')).toBe('*****太郎です');
  });

  it('keeps separators, including Unicode spaces', () => {
    expect(last4('12\u00a034\u300056 78 90')).toBe('**\u00a0**\u3000** 78 90');
  });

  it('returns an empty value unchanged', () => {
    expect(last4('')).toBe('');
  });
});

describe('hash', () => {
  it('is "hash:" + the first 16 hex of HMAC-SHA256(key, value)', () => {
    const expected = 'hash:' + createHmac('sha256', key).update('alice').digest('hex').slice(0, 16);
    expect(hashToken('alice', key)).toBe(expected);
    expect(applyStrategy('hash', 'alice', undefined, key)).toBe(expected);
  });

  it('is stable and depends on the key', () => {
    expect(hashToken('v', key)).toBe(hashToken('v', key));
    expect(hashToken('v', key)).not.toBe(hashToken('v', Buffer.alloc(32, 8)));
    expect(hashToken('v', key)).toMatch(/^hash:[0-9a-f]{16}$/);
  });

  it('canonicalises detector matches so formatting does not change the token', () => {
    const h = (v: string, d: Parameters<typeof applyStrategy>[2]): string => applyStrategy('hash', v, d, key);
    expect(h('4111 1111 1111 1111', 'credit-card')).toBe(h('4111-1111-1111-1111', 'credit-card'));
    expect(h('4111 1111 1111 1111', 'credit-card')).toBe(hashToken('4111111111111111', key));
    expect(h('DE89 3704 0044 0532 0130 00', 'iban')).toBe(hashToken('DE89370400440532013000', key));
    expect(h('+1 (415) 555-2671', 'phone')).toBe(h('+1-415-555-2671', 'phone'));
    expect(h('Alice@Example.COM', 'email')).toBe(h('alice@example.com', 'email'));
    expect(h('Secret', 'secret-key')).not.toBe(h('secret', 'secret-key'));
  });

  it('refuses short keys', () => {
    expect(() => assertHashKey(Buffer.alloc(MIN_HASH_KEY_BYTES - 1))).toThrow(RangeError);
    expect(() => assertHashKey(Buffer.alloc(MIN_HASH_KEY_BYTES))).not.toThrow();
  });
});
