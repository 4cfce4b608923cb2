import { JsonTooDeepError, MAX_JSON_DEPTH } from '../../policy/jsonpath';
import { parseJsonPath } from '../../policy/syntax';
import { DETECTOR_NAMES } from '../detectors';
import { createTextMasker } from '../masker';
import { hashToken } from '../strategies';
import { maskJsonDocument } from './json';

const hashKey = Buffer.from('0123456789abcdef0123456789abcdef');
const masker = createTextMasker({ detectors: DETECTOR_NAMES, strategy: 'redact', hashKey });
const paths = (...p: string[]) => p.map(parseJsonPath);

describe('maskJsonDocument', () => {
  const doc = {
    user: { email: 'x', name: 'Ann', ssn: 123456789, vip: true, note: 'card 4111 1111 1111 1111' },
    orders: [
      { email: 'a@b.io', total: 5 },
      { email: null, items: [{ email: 'deep' }] },
    ],
    'odd key': 'plain',
  };

  it('masks values selected by recursive descent whole, and strings by detectors', () => {
    const r = maskJsonDocument(doc, { masker, jsonPaths: paths('$..email') });
    expect(r.doc).toEqual({
      user: { email: '[REDACTED]', name: 'Ann', ssn: 123456789, vip: true, note: 'card [REDACTED]' },
      orders: [
        { email: '[REDACTED]', total: 5 },
        { email: null, items: [{ email: '[REDACTED]' }] },
      ],
      'odd key': 'plain',
    });
    expect(r.count).toBe(4); // three emails whole + one card; null is not counted
  });

  it('turns selected numbers and booleans into the masked string', () => {
    const r = maskJsonDocument(doc, { masker, jsonPaths: paths('$.user.ssn', "$['user'].vip", '$.orders[0].total') });
    const d = r.doc as any;
    expect([d.user.ssn, d.user.vip, d.orders[0].total]).toEqual(['[REDACTED]', '[REDACTED]', '[REDACTED]']);
  });

  it('masks every scalar inside a selected object, keeping its shape', () => {
    const d = maskJsonDocument(doc, { masker, jsonPaths: paths('$.orders[*]') }).doc as any;
    expect(d.orders[1]).toEqual({ email: null, items: [{ email: '[REDACTED]' }] });
    expect(d.orders[0]).toEqual({ email: '[REDACTED]', total: '[REDACTED]' });
  });

  it('masks keys that carry data (order kept, collisions suffixed), never mutates; the same object when nothing changed', () => {
    const keyed = { 'alice@example.com': 'hi', list: [1, 'two'], 'bob@example.com': { n: 1 }, '[REDACTED]': 0 };
    const r = maskJsonDocument(keyed, { masker, jsonPaths: paths('$.nothing') });
    expect(Object.keys(r.doc as object)).toEqual(['[REDACTED] #2', 'list', '[REDACTED] #3', '[REDACTED]']);
    expect(r.doc).toEqual({ '[REDACTED] #2': 'hi', list: [1, 'two'], '[REDACTED] #3': { n: 1 }, '[REDACTED]': 0 });
    expect(r.count).toBe(2);
    expect(Object.keys(keyed)).toContain('alice@example.com');
    // jsonPaths select by the original key.
    expect(maskJsonDocument({ 'c 4111 1111 1111 1111': 'x' }, { masker, jsonPaths: paths("$['c 4111 1111 1111 1111']") }).doc).toEqual({
      'c [REDACTED]': '[REDACTED]',
    });
    const clean = { name: 'hi', list: [1, 'two'] };
    const r0 = maskJsonDocument(clean, { masker, jsonPaths: paths('$.nothing') });
    expect(r0.doc).toBe(clean);
    expect(r0.count).toBe(0);
    const before = JSON.stringify(doc);
    const r2 = maskJsonDocument(doc, { masker, jsonPaths: paths('$..email') }) as any;
    expect(JSON.stringify(doc)).toBe(before);
    expect(r2.doc['odd key']).toBe('plain');
    expect(r2.doc.orders[1].items).not.toBe(doc.orders[1].items); // changed path copied
  });

  it('shares unchanged subtrees', () => {
    const d = { a: { deep: [1, 2] }, b: 'mail bob@example.com' };
    const r = maskJsonDocument(d, { masker, jsonPaths: [] }).doc as any;
    expect(r.a).toBe(d.a);
    expect(r.b).toBe('mail [REDACTED]');
  });

  it('$ alone masks a scalar root; hash uses the masker own key', () => {
    const hm = createTextMasker({ detectors: ['email'], strategy: 'hash', hashKey });
    expect(maskJsonDocument('secret', { masker: hm, jsonPaths: paths('$') }).doc).toBe(hashToken('secret', hashKey));
    expect(maskJsonDocument([7], { masker: hm, jsonPaths: paths('$[0]') }).doc).toEqual([hashToken('7', hashKey)]);
  });

  it('refuses a document nested beyond the JSONPath depth limit (JsonTooDeepError, not a stack overflow)', () => {
    let deep: unknown = 'a@b.io';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(() => maskJsonDocument(deep, { masker, jsonPaths: paths('$..email') })).toThrow(JsonTooDeepError);
    let ok: unknown = 'a@b.io';
    for (let i = 0; i < MAX_JSON_DEPTH; i++) ok = [ok];
    expect(maskJsonDocument(ok, { masker, jsonPaths: [] }).count).toBe(1);
  });
});
