import { readStrictJson, readStrictJsonText } from './strict-json';

const read = (s: string | Buffer): ReturnType<typeof readStrictJson> => readStrictJson(typeof s === 'string' ? Buffer.from(s, 'utf8') : s);

describe('readStrictJson', () => {
  it('reads a message, escapes decoded as the server reads them', () => {
    const r = read('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete\\u005fcustomer"}}');
    expect(r).toMatchObject({ ok: true, value: { params: { name: 'delete_customer' } } });
  });

  it.each([
    ['a repeated key', '{"a":1,"a":2}', /"a" is repeated/],
    ['a repeated key spelled with an escape', '{"name":"x","n\\u0061me":"y"}', /repeated/],
    ['a repeated key deep inside', '{"params":{"arguments":{"x":{"db":"dev","db":"prod"}}}}', /repeated/],
    ['keys equal once case-folded', '{"params":{"Name":"a","name":"b"}}', /repeated/],
    ['a lone high surrogate', '{"a":"\\ud800"}', /lone surrogate/],
    ['a lone low surrogate in a key', '{"\\udc00":1}', /lone surrogate/],
    ['a __proto__ key', '{"params":{"__proto__":{"name":"x"}}}', /__proto__/],
    ['an escaped __proto__ key', '{"params":{"\\u005f_proto__":{"name":"x"}}}', /__proto__/],
    ['not JSON', '{"a":', /not valid JSON/],
    ['an empty body', '', /not valid JSON/],
    ['a byte order mark', '\ufeff{}', /byte order mark/],
    ['nesting past the limit', '['.repeat(129) + ']'.repeat(129), /nested deeper/],
  ])('refuses %s', (_what, text, message) => {
    const r = read(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(message);
  });

  it('accepts nesting at the limit and a surrogate pair', () => {
    expect(read('['.repeat(128) + ']'.repeat(128)).ok).toBe(true);
    expect(read('{"a":"\\ud83d\\ude00"}')).toMatchObject({ ok: true, value: { a: '😀' } });
  });

  it('refuses invalid UTF-8 instead of reading it as U+FFFD', () => {
    const bad = Buffer.concat([Buffer.from('{"method":"tools/call","params":{"name":"del'), Buffer.from([0xff]), Buffer.from('"}}')]);
    expect(read(bad)).toEqual({ ok: false, message: 'body is not valid UTF-8' });
    const overlong = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]);
    expect(read(overlong).ok).toBe(false);
  });

  it('reads decoded text the same way', () => {
    expect(readStrictJsonText('{"a":1}')).toMatchObject({ ok: true, value: { a: 1 } });
    expect(readStrictJsonText('{"a":1,"A":2}').ok).toBe(false);
  });
});
