// Real clients through a running sidecar's named routes: the official `openai` SDK (chat
// completions plain and streamed, embeddings, the Responses API plain and streamed), LangChain's
// ChatOpenAI (invoke and stream), and an Anthropic-compatible route (`auth: {header: x-api-key}`)
// used by `@anthropic-ai/sdk` and by plain fetch. Each check also asserts what reached the
// upstream: the target's credential injected, the agent's placeholder or stray key dropped.
import Anthropic from '@anthropic-ai/sdk';
import { ChatOpenAI } from '@langchain/openai';
import OpenAI from 'openai';
import { startSidecarFixture, type SidecarFixture } from '../../../test/support/sidecar/sidecar-fixture';

const OPENAI_KEY = 'sk-real-openai-key-0123456789abcdef';
const ANTHROPIC_KEY = 'sk-ant-real-anthropic-key-0123456789';
const AGENT_STRAY_KEY = 'sk-ant-agent-found-this-in-a-dotfile';
const CARD = '4111 1111 1111 1111';

let fx: SidecarFixture;

/** Event types with runs collapsed: the masker may re-split deltas (held-back text is flushed as a synthesised delta). */
const collapse = (types: string[]): string[] => types.filter((t, i) => t !== types[i - 1]);

beforeAll(async () => {
  fx = await startSidecarFixture({
    secrets: { openai: { token: OPENAI_KEY }, anthropic: { token: ANTHROPIC_KEY } },
    policy: (port) => `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: sdk-clients}
spec:
  defaultAction: deny
  targets:
    - name: openai
      http:
        baseUrl: http://127.0.0.1:${port}
        credentialsSecret: openai
        auth: {header: Authorization, valuePrefix: "Bearer "}
        timeout: 5s
    - name: anthropic
      http:
        baseUrl: http://127.0.0.1:${port}
        credentialsSecret: anthropic
        auth: {header: x-api-key}
        timeout: 5s
  rules:
    - name: llm-calls
      action: allow
      match: {http: {methods: [POST], paths: ["/v1/**"]}}
  masking:
    - name: pii
      detectors: [credit-card, email]
      strategy: redact
`,
  });
});

afterAll(async () => {
  await fx?.close();
});

beforeEach(() => {
  fx.upstream.reply = 'Hello from the fake model.';
  fx.upstream.chunks = ['Hello', ' from', ' the', ' fake', ' model.'];
  fx.upstream.chunkDelayMs = 2;
});

const openai = (): OpenAI => new OpenAI({ baseURL: `${fx.egress}/openai/v1`, apiKey: 'warden-managed', maxRetries: 0, timeout: 5000 });

/** The last request the upstream received, checked for the injected OpenAI credential. */
function lastOpenAIRequest(path: string) {
  const seen = fx.upstream.requests.at(-1)!;
  expect(seen.url).toBe(path);
  expect(seen.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
  expect(JSON.stringify(seen.headers)).not.toContain('warden-managed');
  return seen;
}

describe('openai SDK', () => {
  test('chat completions', async () => {
    const r = await openai().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.choices[0].message.content).toBe('Hello from the fake model.');
    expect(r.usage?.total_tokens).toBe(12);
    expect(JSON.parse(lastOpenAIRequest('/v1/chat/completions').body.toString()).messages[0].content).toBe('hi');
  });

  test('chat completions, stream: true', async () => {
    const stream = await openai().chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    let text = '';
    let finish: string | null = null;
    let n = 0;
    for await (const chunk of stream) {
      n++;
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe('Hello from the fake model.');
    expect(finish).toBe('stop');
    expect(n).toBeGreaterThanOrEqual(3);
    lastOpenAIRequest('/v1/chat/completions');
  });

  test('embeddings (float and the SDK default base64)', async () => {
    const floats = await openai().embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'], encoding_format: 'float' });
    expect(floats.data.map((d) => d.embedding)).toEqual([
      [0.25, -0.5, 0.125, 0],
      [0.25, -0.5, 0.125, 1],
    ]);
    const dflt = await openai().embeddings.create({ model: 'text-embedding-3-small', input: 'a' });
    expect(dflt.data[0].embedding).toEqual([0.25, -0.5, 0.125, 0]); // the SDK decoded base64 float32
    lastOpenAIRequest('/v1/embeddings');
  });

  test('Responses API', async () => {
    const r = await openai().responses.create({ model: 'gpt-4.1-mini', input: 'hi', instructions: 'be brief' });
    expect(r.object).toBe('response');
    expect(r.status).toBe('completed');
    expect(r.output_text).toBe('Hello from the fake model.');
    expect(r.usage?.total_tokens).toBe(16);
    expect(JSON.parse(lastOpenAIRequest('/v1/responses').body.toString())).toMatchObject({ input: 'hi', instructions: 'be brief' });
  });

  test('Responses API, stream: true: the full event sequence, in order', async () => {
    const stream = await openai().responses.create({ model: 'gpt-4.1-mini', input: 'hi', stream: true });
    const types: string[] = [];
    const seqs: number[] = [];
    let deltas = '';
    let done = '';
    let completed = '';
    for await (const ev of stream) {
      types.push(ev.type);
      seqs.push(ev.sequence_number);
      if (ev.type === 'response.output_text.delta') deltas += ev.delta;
      if (ev.type === 'response.output_text.done') done = ev.text;
      if (ev.type === 'response.completed') {
        // output_text is an SDK convenience that raw stream events do not carry: read the items.
        for (const item of ev.response.output)
          if (item.type === 'message') for (const c of item.content) if (c.type === 'output_text') completed += c.text;
      }
    }
    expect(collapse(types)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    expect(deltas).toBe('Hello from the fake model.');
    expect(done).toBe(deltas);
    expect(completed).toBe(deltas);
    lastOpenAIRequest('/v1/responses');
  });

  test('Responses API stream with a card split across deltas: masked in deltas, .done and response.completed; sequence stays valid', async () => {
    fx.upstream.chunks = ['Your card is 41', '11 1111 ', '1111 11', '11, thanks.'];
    const stream = openai().responses.stream({ model: 'gpt-4.1-mini', input: 'card?' });
    let deltas = '';
    const seqs: number[] = [];
    for await (const ev of stream) {
      seqs.push(ev.sequence_number);
      if (ev.type === 'response.output_text.delta') deltas += ev.delta;
    }
    const final = await stream.finalResponse();
    for (const s of [deltas, final.output_text]) {
      expect(s).not.toContain(CARD);
      expect(s.replace(/\D/g, '')).not.toContain('4111111111111111');
      expect(s.startsWith('Your card is ')).toBe(true);
      expect(s.endsWith(', thanks.')).toBe(true);
    }
    expect(final.output_text).toBe(deltas);
    expect(seqs).toEqual(seqs.map((_, i) => i));
  });
});

describe('LangChain ChatOpenAI', () => {
  const model = (): ChatOpenAI =>
    new ChatOpenAI({
      model: 'gpt-4o-mini',
      apiKey: 'warden-managed',
      maxRetries: 0,
      timeout: 5000,
      configuration: { baseURL: `${fx.egress}/openai/v1` },
    });

  test('invoke', async () => {
    const msg = await model().invoke('hi');
    expect(msg.content).toBe('Hello from the fake model.');
    lastOpenAIRequest('/v1/chat/completions');
  });

  test('stream', async () => {
    let text = '';
    let n = 0;
    for await (const chunk of await model().stream('hi')) {
      n++;
      text += typeof chunk.content === 'string' ? chunk.content : '';
    }
    expect(text).toBe('Hello from the fake model.');
    expect(n).toBeGreaterThanOrEqual(5);
    const seen = lastOpenAIRequest('/v1/chat/completions');
    expect(JSON.parse(seen.body.toString()).stream).toBe(true);
  });
});

describe('Anthropic-compatible route (auth: {header: x-api-key})', () => {
  const anthropic = (): Anthropic =>
    new Anthropic({ baseURL: `${fx.egress}/anthropic`, apiKey: 'warden-managed', maxRetries: 0, timeout: 5000 });

  function lastAnthropicRequest() {
    const seen = fx.upstream.requests.at(-1)!;
    expect(seen.url).toBe('/v1/messages');
    expect(seen.headers['x-api-key']).toBe(ANTHROPIC_KEY);
    expect(seen.headers.authorization).toBeUndefined();
    const all = JSON.stringify(seen.headers);
    expect(all).not.toContain('warden-managed');
    expect(all).not.toContain(AGENT_STRAY_KEY);
    return seen;
  }

  test('@anthropic-ai/sdk messages.create', async () => {
    const r = await anthropic().messages.create({
      model: 'fake-claude-model',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(r.content).toEqual([{ type: 'text', text: 'Hello from the fake model.' }]);
    expect(r.stop_reason).toBe('end_turn');
    expect(lastAnthropicRequest().headers['anthropic-version']).toBeDefined();
  });

  test('@anthropic-ai/sdk messages.stream: events in order, card split across deltas masked', async () => {
    fx.upstream.chunks = ['Card: 4111', ' 1111', ' 1111', ' 1111', ' on file.'];
    const stream = anthropic().messages.stream({ model: 'fake-claude-model', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    const types: string[] = [];
    let text = '';
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
    }
    const final = await stream.finalMessage();
    expect(types[0]).toBe('message_start');
    expect(types[1]).toBe('content_block_start');
    expect(types.slice(-3)).toEqual(['content_block_stop', 'message_delta', 'message_stop']);
    expect(types.filter((t) => t === 'content_block_delta').length).toBeGreaterThanOrEqual(1);
    expect(text).not.toContain('4111');
    expect(text.startsWith('Card: ')).toBe(true);
    expect(text.endsWith(' on file.')).toBe(true);
    expect(final.content[0]).toEqual({ type: 'text', text });
    lastAnthropicRequest();
  });

  test('plain fetch with a stray x-api-key and Authorization: both dropped, the target key injected', async () => {
    const res = await fetch(`${fx.egress}/anthropic/v1/messages`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'anthropic-version': '2023-06-01',
        'x-api-key': AGENT_STRAY_KEY,
        authorization: `Bearer ${AGENT_STRAY_KEY}`,
      },
      body: JSON.stringify({ model: 'fake-claude-model', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const raw = await res.text();
    const events = [...raw.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    expect(collapse(events)).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    lastAnthropicRequest();
    expect(fx.events.at(-1)).toMatchObject({ target: 'anthropic', method: 'POST', path: '/v1/messages', status: 200 });
    expect(JSON.stringify(fx.events)).not.toContain(ANTHROPIC_KEY);
  });
});
