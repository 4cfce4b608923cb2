// GenAI attributes from real LLM payload shapes: the repo's fake OpenAI/Anthropic upstream over
// real HTTP (its SSE read with the same parser the data path uses), and stream chunks typed
// against the installed `openai` and `@anthropic-ai/sdk` SDKs so the fixtures stay real shapes.
import type { RawMessageStreamEvent } from '@anthropic-ai/sdk/resources/messages';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { ResponseStreamEvent } from 'openai/resources/responses/responses';
import type { AuditGenAi } from '../../common/audit/record';
import { createSseParser } from '../../common/masking/stream/sse-parser';
import { createGenAiResponseTap, genAiFromRequest, providerFromBaseUrl } from './genai';
import { startFakeOpenAI, type FakeOpenAI } from '../../test/support/sidecar/fake-openai';

describe('genAiFromRequest', () => {
  const openai = 'https://api.openai.com';
  test.each<[string, string, unknown, string | undefined, AuditGenAi | undefined]>([
    [
      'OpenAI chat',
      '/v1/chat/completions',
      { model: 'gpt-4o-mini', messages: [] },
      openai,
      { provider: 'openai', operation: 'chat', requestModel: 'gpt-4o-mini' },
    ],
    [
      'OpenAI chat, streamed',
      '/v1/chat/completions',
      { model: 'gpt-4o', stream: true, stream_options: { include_usage: true } },
      openai,
      { provider: 'openai', operation: 'chat', requestModel: 'gpt-4o', streamed: true },
    ],
    [
      'legacy completions',
      '/v1/completions',
      { model: 'gpt-3.5-turbo-instruct', prompt: 'x' },
      openai,
      { provider: 'openai', operation: 'text_completion', requestModel: 'gpt-3.5-turbo-instruct' },
    ],
    [
      'embeddings',
      '/v1/embeddings',
      { model: 'text-embedding-3-small', input: 'x' },
      openai,
      { provider: 'openai', operation: 'embeddings', requestModel: 'text-embedding-3-small' },
    ],
    [
      'Responses API',
      '/v1/responses',
      { model: 'gpt-4.1', input: 'x', stream: true },
      openai,
      { provider: 'openai', operation: 'chat', requestModel: 'gpt-4.1', streamed: true },
    ],
    [
      'Anthropic messages',
      '/v1/messages',
      { model: 'claude-sonnet-4-5', max_tokens: 10, messages: [] },
      'https://api.anthropic.com',
      { provider: 'anthropic', operation: 'chat', requestModel: 'claude-sonnet-4-5' },
    ],
    [
      'Anthropic path on an unknown host',
      '/v1/messages',
      { model: 'claude-haiku-4-5', stream: true },
      'http://127.0.0.1:9999',
      { provider: 'anthropic', operation: 'chat', requestModel: 'claude-haiku-4-5', streamed: true },
    ],
    [
      'OpenAI path on an unknown host (compatible server)',
      '/v1/chat/completions',
      { model: 'llama3' },
      'http://vllm.ml.svc:8000',
      { provider: 'openai', operation: 'chat', requestModel: 'llama3' },
    ],
    [
      'route with a base path',
      '/openai/v1/chat/completions?x=1',
      { model: 'm' },
      undefined,
      { provider: 'openai', operation: 'chat', requestModel: 'm' },
    ],
    [
      'Azure deployment (model from the path)',
      '/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21',
      { messages: [] },
      'https://contoso.openai.azure.com',
      { provider: 'azure.ai.openai', operation: 'chat', requestModel: 'prod-gpt4o' },
    ],
    [
      'Gemini',
      '/v1beta/models/gemini-2.5-flash:generateContent',
      { contents: [] },
      'https://generativelanguage.googleapis.com',
      { provider: 'gcp.gemini', operation: 'generate_content', requestModel: 'gemini-2.5-flash' },
    ],
    [
      'Gemini, streamed',
      '/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse',
      { contents: [] },
      'https://generativelanguage.googleapis.com',
      { provider: 'gcp.gemini', operation: 'generate_content', requestModel: 'gemini-2.5-pro', streamed: true },
    ],
    ['generic body with a model', '/api/generate', { model: 'mistral', prompt: 'x' }, 'http://ollama:11434', { requestModel: 'mistral' }],
    ['generic body at a known host', '/v1/audio/speech', { model: 'tts-1' }, openai, { provider: 'openai', requestModel: 'tts-1' }],
    ['known path, body not JSON', '/v1/chat/completions', undefined, openai, { provider: 'openai', operation: 'chat' }],
    ['not an LLM call', '/v1/refunds', { amount: 5 }, 'https://payments.internal', undefined],
    ['model that is not a string', '/v1/things', { model: 42 }, undefined, undefined],
  ])('%s', (_name, path, body, baseUrl, expected) => {
    expect(genAiFromRequest(path, body, baseUrl)).toEqual(expected);
  });

  test('providerFromBaseUrl knows the big hosts and nothing else', () => {
    expect(providerFromBaseUrl('https://api.openai.com/v1')).toBe('openai');
    expect(providerFromBaseUrl('https://api.anthropic.com')).toBe('anthropic');
    expect(providerFromBaseUrl('https://eastus.openai.azure.com/')).toBe('azure.ai.openai');
    expect(providerFromBaseUrl('https://generativelanguage.googleapis.com')).toBe('gcp.gemini');
    expect(providerFromBaseUrl('https://openai.example.com')).toBeUndefined();
    expect(providerFromBaseUrl('not a url')).toBeUndefined();
    expect(providerFromBaseUrl(undefined)).toBeUndefined();
  });
});

/** Feeds SSE text through the data path's parser into a fresh tap, in small chunks as a socket would. */
function tapSse(text: string, chunkSize = 37): Partial<AuditGenAi> {
  const tap = createGenAiResponseTap();
  const parser = createSseParser();
  const feed = (blocks: ReturnType<typeof parser.push>): void => {
    for (const b of blocks) if (b.data !== null) tap.sseEvent(b.event ?? undefined, b.data);
  };
  for (let i = 0; i < text.length; i += chunkSize) feed(parser.push(text.slice(i, i + chunkSize)));
  feed(parser.end());
  return tap.result();
}

function tapJson(doc: unknown): Partial<AuditGenAi> {
  const tap = createGenAiResponseTap();
  tap.json(doc);
  return tap.result();
}

function sse(events: Array<{ event?: string; data: unknown }>, tail = ''): string {
  return events.map((e) => `${e.event ? `event: ${e.event}\n` : ''}data: ${JSON.stringify(e.data)}\n\n`).join('') + tail;
}

describe('response tap against the fake OpenAI/Anthropic upstream', () => {
  let fake: FakeOpenAI;
  beforeAll(async () => {
    fake = await startFakeOpenAI();
    fake.chunkDelayMs = 0;
  });
  afterAll(async () => {
    await fake.close();
  });

  const call = async (path: string, body: unknown): Promise<{ type: string; text: string }> => {
    const res = await fetch(`http://127.0.0.1:${fake.port}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { type: res.headers.get('content-type') ?? '', text: await res.text() };
  };

  test('OpenAI chat completion (JSON)', async () => {
    const { text } = await call('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(tapJson(JSON.parse(text))).toEqual({
      responseId: 'chatcmpl-1',
      responseModel: 'gpt-4o-mini',
      inputTokens: 5,
      outputTokens: 7,
      finishReasons: ['stop'],
    });
  });

  test('OpenAI chat stream without include_usage: id, model and finish reason, no tokens', async () => {
    const { type, text } = await call('/v1/chat/completions', { model: 'gpt-4o-mini', stream: true, messages: [] });
    expect(type).toContain('text/event-stream');
    expect(tapSse(text)).toEqual({ responseId: 'chatcmpl-1', responseModel: 'gpt-4o-mini', finishReasons: ['stop'] });
  });

  test('OpenAI chat stream with include_usage: tokens from the final chunk', async () => {
    const { text } = await call('/v1/chat/completions', {
      model: 'gpt-4o-mini',
      stream: true,
      stream_options: { include_usage: true },
      messages: [],
    });
    expect(text).toContain('"usage":{"prompt_tokens":5,"completion_tokens":5');
    expect(tapSse(text)).toEqual({
      responseId: 'chatcmpl-1',
      responseModel: 'gpt-4o-mini',
      inputTokens: 5,
      outputTokens: 5,
      finishReasons: ['stop'],
    });
  });

  test('OpenAI chat stream that calls a tool ends with tool_calls', async () => {
    const { text } = await call('/v1/chat/completions', { model: 'tool-caller:lookup', stream: true, messages: [] });
    expect(tapSse(text)).toEqual({ responseId: 'chatcmpl-tool', responseModel: 'tool-caller:lookup', finishReasons: ['tool_calls'] });
  });

  test('embeddings: input tokens and model', async () => {
    const { text } = await call('/v1/embeddings', { model: 'text-embedding-3-small', input: ['a', 'b'] });
    expect(tapJson(JSON.parse(text))).toEqual({ responseModel: 'text-embedding-3-small', inputTokens: 3 });
  });

  test('Responses API, JSON and streamed (usage from response.completed)', async () => {
    const json = await call('/v1/responses', { model: 'gpt-4.1', input: 'hi' });
    const expected = { responseId: 'resp_fake0001', responseModel: 'gpt-4.1', inputTokens: 9, outputTokens: 7, finishReasons: ['stop'] };
    expect(tapJson(JSON.parse(json.text))).toEqual(expected);
    const streamed = await call('/v1/responses', { model: 'gpt-4.1', input: 'hi', stream: true });
    expect(streamed.text).toContain('event: response.completed');
    expect(tapSse(streamed.text)).toEqual(expected);
  });

  test('Anthropic message, JSON and streamed (message_start + message_delta)', async () => {
    const json = await call('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [] });
    const expected = {
      responseId: 'msg_01FakeAnthropic',
      responseModel: 'claude-sonnet-4-5',
      inputTokens: 12,
      outputTokens: 7,
      finishReasons: ['end_turn'],
    };
    expect(tapJson(JSON.parse(json.text))).toEqual(expected);
    const streamed = await call('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [], stream: true });
    expect(streamed.text).toContain('event: message_delta');
    expect(tapSse(streamed.text)).toEqual(expected);
  });
});

describe('response tap on SDK-typed streams', () => {
  const created = 1730000000;
  const chunk = (choices: ChatCompletionChunk['choices'], usage: ChatCompletionChunk['usage'] = null): ChatCompletionChunk => ({
    id: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT',
    object: 'chat.completion.chunk',
    created,
    model: 'gpt-4o-2024-08-06',
    system_fingerprint: 'fp_44709d6fcb',
    choices,
    usage,
  });

  test('OpenAI chat stream with include_usage: the final chunk carries usage; n=2 keeps reasons in choice order', () => {
    const chunks: ChatCompletionChunk[] = [
      chunk([
        { index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
        { index: 1, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
      ]),
      chunk([{ index: 1, delta: { content: 'Hi' }, logprobs: null, finish_reason: null }]),
      chunk([{ index: 1, delta: {}, logprobs: null, finish_reason: 'length' }]),
      chunk([{ index: 0, delta: { content: 'Hello' }, logprobs: null, finish_reason: null }]),
      chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]),
      chunk([], {
        prompt_tokens: 19,
        completion_tokens: 10,
        total_tokens: 29,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      }),
    ];
    expect(
      tapSse(
        sse(
          chunks.map((data) => ({ data })),
          'data: [DONE]\n\n',
        ),
      ),
    ).toEqual({
      responseId: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT',
      responseModel: 'gpt-4o-2024-08-06',
      inputTokens: 19,
      outputTokens: 10,
      finishReasons: ['stop', 'length'],
    });
  });

  test('a long chat stream is parsed only where ids, usage or finish reasons can be (3 of 102 events)', () => {
    const events = [
      chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
      // content that mentions the keys, quoted as JSON escapes them
      ...Array.from({ length: 99 }, (_, i) =>
        chunk([
          {
            index: 0,
            delta: { content: i === 5 ? 'say "usage": {x} and "finish_reason": "stop"' : ` word${i}` },
            logprobs: null,
            finish_reason: null,
          },
        ]),
      ),
      chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]),
      chunk([], { prompt_tokens: 3, completion_tokens: 100, total_tokens: 103 }),
    ];
    const parse = jest.spyOn(JSON, 'parse');
    try {
      const tap = createGenAiResponseTap();
      const texts = events.map((e) => JSON.stringify(e));
      parse.mockClear();
      for (const t of texts) tap.sseEvent(undefined, t);
      tap.sseEvent(undefined, '[DONE]');
      expect(parse).toHaveBeenCalledTimes(3);
      expect(tap.result()).toMatchObject({ inputTokens: 3, outputTokens: 100, finishReasons: ['stop'] });
    } finally {
      parse.mockRestore();
    }
  });

  test('Anthropic stream: cache tokens count as input, message_delta usage is cumulative, deltas are not parsed', () => {
    const events: RawMessageStreamEvent[] = [
      {
        type: 'message_start',
        message: {
          id: 'msg_014p7gG3wDgGV9EUtLvnow3U',
          type: 'message',
          role: 'assistant',
          model: 'claude-sonnet-4-5-20250929',
          content: [],
          container: null,
          diagnostics: null,
          stop_reason: null,
          stop_sequence: null,
          stop_details: null,
          usage: {
            input_tokens: 472,
            cache_creation_input_tokens: 100,
            cache_read_input_tokens: 2000,
            output_tokens: 2,
            cache_creation: null,
            inference_geo: null,
            output_tokens_details: null,
            server_tool_use: null,
            service_tier: 'standard',
            speed: 'standard',
          },
        },
      },
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '', citations: null } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Okay' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ', "stop_reason": "x"' } },
      { type: 'content_block_stop', index: 0 },
      {
        type: 'message_delta',
        delta: { stop_reason: 'max_tokens', stop_sequence: null, container: null, stop_details: null },
        usage: {
          output_tokens: 89,
          input_tokens: null,
          cache_creation_input_tokens: null,
          cache_read_input_tokens: null,
          output_tokens_details: null,
          server_tool_use: null,
        },
      },
      { type: 'message_stop' },
    ];
    const text = sse([{ event: 'ping', data: { type: 'ping' } }, ...events.map((data) => ({ event: data.type, data }))]);
    const parse = jest.spyOn(JSON, 'parse');
    try {
      expect(tapSse(text)).toEqual({
        responseId: 'msg_014p7gG3wDgGV9EUtLvnow3U',
        responseModel: 'claude-sonnet-4-5-20250929',
        inputTokens: 2572,
        outputTokens: 89,
        finishReasons: ['max_tokens'],
      });
      expect(parse).toHaveBeenCalledTimes(2);
    } finally {
      parse.mockRestore();
    }
  });

  test('Responses stream that ends incomplete reports why', () => {
    const response = {
      id: 'resp_67ccd2bed1ec8190',
      object: 'response',
      created_at: created,
      model: 'o4-mini-2025-04-16',
      status: 'in_progress',
      output: [],
      usage: null,
    };
    const events = [
      { type: 'response.created', sequence_number: 0, response },
      {
        type: 'response.output_text.delta',
        sequence_number: 1,
        item_id: 'msg_1',
        output_index: 0,
        content_index: 0,
        delta: 'Hi',
        logprobs: [],
      },
      {
        type: 'response.incomplete',
        sequence_number: 2,
        response: {
          ...response,
          status: 'incomplete',
          incomplete_details: { reason: 'max_output_tokens' },
          usage: {
            input_tokens: 30,
            output_tokens: 16,
            total_tokens: 46,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens_details: { reasoning_tokens: 16 },
          },
        },
      },
    ] as unknown as ResponseStreamEvent[]; // trimmed Response objects (the fake upstream test covers the full one)
    expect(tapSse(sse(events.map((data) => ({ event: data.type, data }))))).toEqual({
      responseId: 'resp_67ccd2bed1ec8190',
      responseModel: 'o4-mini-2025-04-16',
      inputTokens: 30,
      outputTokens: 16,
      finishReasons: ['max_output_tokens'],
    });
  });

  test('Gemini generateContent, JSON and SSE (usageMetadata, finishReason, modelVersion)', () => {
    const body = (text: string, finishReason?: string, candidatesTokenCount?: number): unknown => ({
      candidates: [{ content: { parts: [{ text }], role: 'model' }, ...(finishReason ? { finishReason } : {}), index: 0 }],
      usageMetadata: {
        promptTokenCount: 8,
        ...(candidatesTokenCount ? { candidatesTokenCount } : {}),
        totalTokenCount: 8 + (candidatesTokenCount ?? 0),
        thoughtsTokenCount: 4,
      },
      modelVersion: 'gemini-2.5-flash',
      responseId: 'mAitaLmkHPPlz7IPvtfUqQ4',
    });
    const expected = {
      responseId: 'mAitaLmkHPPlz7IPvtfUqQ4',
      responseModel: 'gemini-2.5-flash',
      inputTokens: 8,
      outputTokens: 16,
      finishReasons: ['STOP'],
    };
    expect(tapJson(body('Hello there', 'STOP', 12))).toEqual(expected);
    expect(tapSse(sse([{ data: body('Hello') }, { data: body(' there', 'STOP', 12) }]))).toEqual(expected);
  });
});

describe('malformed input never throws', () => {
  test.each<[string, unknown]>([
    ['null', null],
    ['a string', 'oops'],
    ['an array', [1, 2]],
    ['usage of the wrong type', { id: 5, model: {}, usage: 'many', choices: 'none' }],
    ['choices with junk', { choices: [null, 5, { finish_reason: 7 }], usage: { prompt_tokens: -1, completion_tokens: 'x' } }],
    ['an error body', { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } }],
    ['message_start without a message', { type: 'message_start', message: 'x' }],
    ['response.completed without a response', { type: 'response.completed' }],
  ])('json(%s)', (_name, doc) => {
    expect(tapJson(doc)).toEqual({});
  });

  test('SSE noise: [DONE], comments, non-JSON, truncated JSON, empty data, odd event names', () => {
    const tap = createGenAiResponseTap();
    expect(() => {
      tap.sseEvent(undefined, '[DONE]');
      tap.sseEvent(undefined, '');
      tap.sseEvent(undefined, 'plain text');
      tap.sseEvent(undefined, '{"id":"chatcmpl-1","model":"gpt');
      tap.sseEvent('message_delta', '{"type":"message_delta","usage":');
      tap.sseEvent('response.completed', 'null');
      tap.sseEvent('error', '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}');
      tap.sseEvent(undefined, undefined as unknown as string);
    }).not.toThrow();
    expect(tap.result()).toEqual({});
  });
});
