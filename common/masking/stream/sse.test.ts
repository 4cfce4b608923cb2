import { DETECTOR_NAMES } from '../detectors';
import { createTextMasker } from '../masker';
import { createSseMasker } from './sse';
import { byteChunks, readClient, stream, type Fmt } from '../../../test/support/common/sse-testkit';

const hashKey = Buffer.from('0123456789abcdef0123456789abcdef');
const masker = createTextMasker({ detectors: DETECTOR_NAMES, strategy: 'redact', hashKey });
const run = (src: string | Buffer[], opts: Partial<Parameters<typeof createSseMasker>[0]> = {}): string => {
  const m = createSseMasker({ masker, ...opts });
  let out = '';
  for (const c of typeof src === 'string' ? [src] : src) out += m.push(c);
  return out + m.end();
};
const CARD = ['Pay with 4111', ' 1111', ' 1111', ' 1111', ' today.'];

describe.each<Fmt>(['openai', 'responses', 'anthropic'])('%s stream', (fmt) => {
  it('masks a card split over four deltas and keeps the rest of the text', () => {
    const out = readClient(run(stream(fmt, CARD)));
    expect(out.text).toBe('Pay with [REDACTED] today.');
  });

  it('keeps every event and adds at most one synthesised delta per slot', () => {
    const src = stream(fmt, CARD);
    const before = readClient(src).events.length;
    const after = readClient(run(src)).events.length;
    expect(after - before).toBeLessThanOrEqual(1);
    expect(after).toBeGreaterThanOrEqual(before);
  });

  it('passes a stream with nothing sensitive through byte for byte, once past the window', () => {
    const src = stream(fmt, ['Hello', ' there', ', how are you?']);
    expect(readClient(run(src)).text).toBe('Hello there, how are you?');
  });

  it('works when the transport splits at every byte', () => {
    const out = readClient(run(byteChunks(stream(fmt, CARD), [1])));
    expect(out.text).toBe('Pay with [REDACTED] today.');
  });
});

describe('OpenAI chat specifics', () => {
  const chunk = (choices: unknown[]) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices })}\n\n`;

  it('keeps separate choices apart and flushes each at its finish_reason', () => {
    let src = '';
    for (const [a, b] of [
      ['card 4111', 'mail bob@'],
      [' 1111 1111', 'example.com'],
      [' 1111 ok', ' bye'],
    ]) {
      src += chunk([
        { index: 0, delta: { content: a }, finish_reason: null },
        { index: 1, delta: { content: b }, finish_reason: null },
      ]);
    }
    src +=
      chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]) +
      chunk([{ index: 1, delta: {}, finish_reason: 'stop' }]) +
      'data: [DONE]\n\n';
    const texts = ['', ''];
    for (const e of readClient(run(src)).events) for (const c of (e.data as any).choices) texts[c.index] += c.delta.content ?? '';
    expect(texts).toEqual(['card [REDACTED] ok', 'mail [REDACTED] bye']);
    const out = run(src);
    // the held text of choice 0 is released before its finish_reason chunk
    expect(out.indexOf('[REDACTED] ok')).toBeLessThan(out.indexOf('"finish_reason":"stop"'));
  });

  it('masks tool call arguments split across deltas, and text in the finishing chunk', () => {
    const args = ['{"to":"', 'al', 'ice@exa', 'mple.com","card":"5555', '-5555-5555-4444"}'];
    let src = chunk([
      { index: 0, delta: { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'send', arguments: '' } }] } },
    ]);
    for (const a of args) src += chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: a } }] } }]);
    src += chunk([{ index: 0, delta: { content: 'done sk-proj-' }, finish_reason: null }]);
    src += chunk([{ index: 0, delta: { content: 'Ab3dEf6hIj9kLmNoPqRsTuVwXyZ012345' }, finish_reason: 'tool_calls' }]) + 'data: [DONE]\n\n';
    let argsOut = '';
    let content = '';
    for (const e of readClient(run(src)).events) {
      const d = (e.data as any).choices[0].delta;
      for (const t of d.tool_calls ?? []) argsOut += t.function.arguments;
      content += d.content ?? '';
    }
    expect(JSON.parse(argsOut)).toEqual({ to: '[REDACTED]', card: '[REDACTED]' });
    expect(content).toBe('done [REDACTED]');
  });

  it('masks refusal deltas and CRLF streams', () => {
    const src =
      chunk([{ index: 0, delta: { refusal: '123-45' } }]).replace(/\n/g, '\r\n') +
      chunk([{ index: 0, delta: { refusal: '-6789 no' } }]) +
      'data: [DONE]\r\n\r\n';
    let refusal = '';
    for (const e of readClient(run(src)).events) refusal += (e.data as any).choices[0].delta.refusal ?? '';
    expect(refusal).toBe('[REDACTED] no');
  });

  it('emits events without held text immediately', () => {
    const m = createSseMasker({ masker, holdBackChars: 8 });
    const first = m.push(chunk([{ index: 0, delta: { role: 'assistant', content: '' } }]));
    expect(first).toContain('"role":"assistant"');
    expect(m.push(': keep-alive\n\n')).toBe(': keep-alive\n\n');
    const out = m.push(chunk([{ index: 0, delta: { content: 'Hello world, friend' } }]));
    expect(readClient(out).events).toHaveLength(1);
    // Only the last word (and the space glued to it) can still become part of a match.
    expect((readClient(out).events[0].data as any).choices[0].delta.content).toBe('Hello world,');
  });
});

describe('Responses API and Anthropic specifics', () => {
  it('masks the full text repeated in output_text.done and renumbers sequence numbers', () => {
    const out = readClient(run(stream('responses', CARD)));
    const done = out.events.find((e) => (e.data as any).type === 'response.output_text.done')!;
    expect((done.data as any).text).toBe('Pay with [REDACTED] today.');
    const seqs = out.events.map((e) => (e.data as any).sequence_number);
    expect(seqs).toEqual(seqs.map((_, i) => i));
  });

  it('masks input_json_delta partial_json per content block', () => {
    const ev = (o: unknown) => `event: content_block_delta\ndata: ${JSON.stringify(o)}\n\n`;
    let src = '';
    for (const p of ['{"ssn": "078-', '05-1120"}'])
      src += ev({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: p } });
    src += 'event: content_block_stop\ndata: {"type":"content_block_stop","index":1}\n\n';
    let json = '';
    for (const e of readClient(run(src)).events) json += (e.data as any).delta?.partial_json ?? '';
    expect(JSON.parse(json)).toEqual({ ssn: '[REDACTED]' });
  });
});

describe('other streams', () => {
  it('masks non-JSON data (held back per event name, as streamed text) and unknown JSON string values', () => {
    const out = run('event: log\ndata: card 4111111111111111\n\ndata: {"note":{"mail":"a@example.com"},"n":1}\n\n');
    // The card could still grow at the end of the first event: it goes out, masked, at the end.
    expect(out).toBe('event: log\ndata: card\n\ndata: {"note":{"mail":"[REDACTED]"},"n":1}\n\nevent: log\ndata:  [REDACTED]\n\n');
  });

  it('plain-text data split across events is masked whole, the text of each event name kept in order', () => {
    const out = run('data: mail a@exa\n\nevent: log\ndata: x\n\ndata: mple.com now\n\ndata: [DONE]\n\n');
    const events = out.split('\n\n').filter((e) => e !== '');
    const text = (name: string | null): string =>
      events
        .filter((e) => (name === null ? !e.startsWith('event:') : e.startsWith(`event: ${name}\n`)))
        .map((e) => e.replace(/^event: .*\n/, '').replace(/^data: ?/, ''))
        .join('');
    expect(text(null)).toBe('mail [REDACTED] now[DONE]');
    expect(text('log')).toBe('x');
    expect(out.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  it('counts masks and reports the largest hold-back', () => {
    const m = createSseMasker({ masker });
    m.push(stream('openai', CARD));
    m.end();
    expect(m.stats().masked).toBe(1);
    expect(m.stats().maxHeldChars).toBeLessThanOrEqual(masker.maxMatchLength - 1 + 16);
  });

  it('masks an unterminated last event at end()', () => {
    const out = run('data: {"x":1}\n\ndata: mail a@example.com');
    // the tail stays unterminated (no blank line), so a client still discards it
    expect(out).toBe('data: {"x":1}\n\ndata: mail [REDACTED]\n');
  });
});
