import { createCredentialScrubber, createScrubberSlot, CREDENTIAL_REDACTED, MIN_DERIVED_FORM_CHARS } from './credential-scrub';

const TOKEN = 'sk-test-9fQ2wE7rT4yU1iO8pA5sD3fG';
const scrubber = createCredentialScrubber([TOKEN, `Bearer ${TOKEN}`])!;

describe('credential scrubber', () => {
  const texts = [
    `{"authorization":"Bearer ${TOKEN}"}`,
    `token=${encodeURIComponent(TOKEN)}&x=1`,
    `b64:${Buffer.from(TOKEN).toString('base64')}.`,
    `url-safe:${Buffer.from(`Bearer ${TOKEN}`).toString('base64url')}`,
    `escaped:${JSON.stringify(`a/${TOKEN}`)}`,
  ];

  it.each(texts)('scrubs %s whole, and streamed split at every offset', (text) => {
    const whole = scrubber.text(text);
    expect(whole.count).toBeGreaterThan(0);
    expect(whole.text).not.toContain(TOKEN.slice(4, -4));
    for (let i = 0; i <= text.length; i++) {
      const s = scrubber.textStream();
      const out = s.push(text.slice(0, i)) + s.push(text.slice(i)) + s.end();
      expect(out).toBe(whole.text);
    }
  });

  it('byte streams: split inside UTF-8 and UTF-16 spellings, binary around it', () => {
    const bytes = Buffer.concat([
      Buffer.from([0, 255, 1]),
      Buffer.from(`é${TOKEN}é`, 'utf8'),
      Buffer.from(TOKEN, 'utf16le'),
      Buffer.from([0xfe]),
    ]);
    for (let i = 0; i <= bytes.length; i += 3) {
      const s = scrubber.byteStream();
      const out = Buffer.from(
        s.push(bytes.subarray(0, i).toString('latin1')) + s.push(bytes.subarray(i).toString('latin1')) + s.end(),
        'latin1',
      );
      expect(out.includes(Buffer.from(TOKEN))).toBe(false);
      expect(out.includes(Buffer.from(TOKEN, 'utf16le'))).toBe(false);
      expect(s.count).toBe(2);
    }
  });

  it('bytes: a body without a zero byte skips the UTF-16 spellings, one with a zero byte anywhere still finds them', () => {
    const plain = Buffer.from(`{"echo":"Bearer ${TOKEN}","b64":"${Buffer.from(TOKEN).toString('base64')}"}`);
    const r = scrubber.bytes(plain);
    expect(r.count).toBe(2);
    expect(r.buf.toString()).toBe(`{"echo":"${CREDENTIAL_REDACTED}","b64":"${CREDENTIAL_REDACTED}"}`);
    for (const utf16 of [Buffer.from(TOKEN, 'utf16le'), Buffer.from(TOKEN, 'utf16le').swap16()]) {
      const mixed = Buffer.concat([Buffer.from(`x ${TOKEN} `), utf16, Buffer.from(' y')]);
      const m = scrubber.bytes(mixed);
      expect(m.count).toBe(2);
      expect(m.buf.includes(utf16)).toBe(false);
      expect(m.buf.includes(Buffer.from(TOKEN))).toBe(false);
    }
    // A value with no character below U+0100 has UTF-16 spellings without a zero byte: always searched.
    const wide = '密钥密钥密钥密钥';
    const ws = createCredentialScrubber([wide])!;
    const be = Buffer.from(wide, 'utf16le').swap16();
    expect(be.includes(0)).toBe(false);
    const w = ws.bytes(Buffer.concat([Buffer.from('a '), be, Buffer.from(' b')]));
    expect(w.count).toBe(1);
    expect(w.buf.includes(be)).toBe(false);
  });

  it('holds back only what could still become the credential', () => {
    const s = scrubber.textStream();
    expect(s.push('hello world')).toBe('hello world');
    expect(s.push(' and sk-te')).toBe(' and ');
    expect(s.held).toBe(5);
    expect(s.push('a time')).toBe('sk-tea time');
    expect(s.end()).toBe('');
  });

  it('headers: values scrubbed, a header named after the credential dropped', () => {
    const h: Record<string, string | string[]> = {
      'x-echo': `Bearer ${TOKEN}`,
      [`x-${TOKEN.toLowerCase()}`]: '1',
      'set-cookie': [`a=${TOKEN}`, 'b=2'],
    };
    expect(scrubber.headers(h)).toBe(3);
    expect(h).toEqual({ 'x-echo': CREDENTIAL_REDACTED, 'set-cookie': [`a=${CREDENTIAL_REDACTED}`, 'b=2'] });
  });

  it('short derived spellings are not searched; no credential, no scrubber', () => {
    const short = createCredentialScrubber(['abc'])!;
    expect(short.text('abc YWJj').text).toBe(`${CREDENTIAL_REDACTED} YWJj`);
    expect(MIN_DERIVED_FORM_CHARS).toBe(8);
    expect(createCredentialScrubber([''])).toBeUndefined();
  });

  it('a slot reuses its scrubber while the values stay the same, and follows a rotated secret', () => {
    const slot = createScrubberSlot();
    const first = slot([TOKEN, `Bearer ${TOKEN}`])!;
    expect(slot([TOKEN, `Bearer ${TOKEN}`])).toBe(first);
    const rotated = slot(['sk-rotated-0123456789'])!;
    expect(rotated).not.toBe(first);
    expect(rotated.text(`old ${TOKEN} new sk-rotated-0123456789`).text).toBe(`old ${TOKEN} new ${CREDENTIAL_REDACTED}`);
    expect(slot([])).toBeUndefined();
  });
});
