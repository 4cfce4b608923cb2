// A small OpenAI-compatible upstream for tests, on 127.0.0.1 port 0. It records every request it
// receives (method, url, headers, body, client port) so tests can check what reached it.
//
//   POST /v1/chat/completions   non-streaming, or `stream: true` as SSE `data: {...}\n\n` chunks
//                               (one per entry of `chunks`) ending with `data: [DONE]`
//   POST /v1/chat/completions   with model `tool-caller` (tool `delete_database`) or
//        model `tool-caller:NAME`: the assistant asks to call tool NAME with `{"name":"prod"}`;
//        non-streaming (finish_reason tool_calls), or `stream: true` as a content delta "Sure.",
//        a tool_calls delta carrying the name, argument deltas, a finish event and [DONE]
//   POST /v1/embeddings         float arrays, or base64 float32 when encoding_format is base64
//   POST /v1/responses          a Responses API object, or `stream: true` as the real event
//                               sequence (`event: response.created` ... `response.completed`,
//                               one response.output_text.delta per entry of `chunks`)
//   POST /v1/messages           Anthropic Messages: a message object, or `stream: true` as
//                               message_start, content_block_start, ping, content_block_delta
//                               (text_delta, one per entry of `chunks`), content_block_stop,
//                               message_delta, message_stop
//   ANY  /echo[/...]            JSON: the method, url, headers and body size it received
//   GET  /slow                  answers after `slowMs` (timeout tests)
//   GET  /gzip-json             gzip-encoded JSON carrying `reply`
//   GET  /malformed-json        content-type JSON, body that does not parse
//   GET  /text                  text/plain carrying `reply`
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as zlib from 'node:zlib';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  remotePort: number;
}

export interface FakeOpenAI {
  port: number;
  requests: RecordedRequest[];
  /** Requests whose head arrived, counted before the body is read (a truncated request counts too). */
  arrivals: number;
  /** Text of the assistant's answer (non-streaming) and of the other PII-carrying routes. */
  reply: string;
  /** Content deltas of the streamed answer, one SSE event each. */
  chunks: string[];
  /** Milliseconds between streamed events. */
  chunkDelayMs: number;
  slowMs: number;
  /** When each streamed answer wrote its events, newest stream last. */
  streams: StreamTiming[];
  close(): Promise<void>;
}

export interface StreamTiming {
  path: string;
  /** Date.now() of the first and last event written. */
  firstSentAt: number;
  lastSentAt: number;
  /** performance.now() after each event was written (same process clock as the test's). */
  sentAt: number[];
}

export async function startFakeOpenAI(): Promise<FakeOpenAI> {
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  const state: Omit<FakeOpenAI, 'port' | 'close'> = {
    requests: [],
    arrivals: 0,
    reply: 'Hello from the fake model.',
    chunks: ['Hello', ' from', ' the', ' fake', ' model.'],
    chunkDelayMs: 5,
    slowMs: 5000,
    streams: [],
  };

  /** Writes pre-serialised SSE events `chunkDelayMs` apart, then `tail`, recording the timing. */
  const stream = (res: http.ServerResponse, path: string, events: string[], tail = ''): void => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const timing: StreamTiming = { path, firstSentAt: 0, lastSentAt: 0, sentAt: [] };
    state.streams.push(timing);
    let i = 0;
    const next = (): void => {
      if (res.destroyed) return;
      if (i < events.length) {
        res.write(events[i++]);
        timing.sentAt.push(performance.now());
        timing.lastSentAt = Date.now();
        if (timing.firstSentAt === 0) timing.firstSentAt = timing.lastSentAt;
        later(state.chunkDelayMs, next);
      } else {
        res.end(tail);
      }
    };
    next();
  };
  const sse = (event: string | null, data: unknown): string => `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`;

  const json = (res: http.ServerResponse, status: number, obj: unknown): void => {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const server = http.createServer((req, res) => {
    state.arrivals++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      state.requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        remotePort: req.socket.remotePort ?? 0,
      });
      const path = (req.url ?? '/').split('?')[0];
      let payload: Record<string, unknown> = {};
      if (body.length > 0 && String(req.headers['content-type'] ?? '').includes('json')) {
        try {
          payload = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
        } catch {
          return json(res, 400, { error: { message: 'invalid JSON body', type: 'invalid_request_error' } });
        }
      }
      const created = Math.floor(Date.now() / 1000);
      const model = typeof payload.model === 'string' ? payload.model : 'fake-model';

      if (req.method === 'POST' && path === '/v1/chat/completions' && (model === 'tool-caller' || model.startsWith('tool-caller:'))) {
        const tool = model === 'tool-caller' ? 'delete_database' : model.slice('tool-caller:'.length);
        const args = '{"name":"prod"}';
        if (payload.stream === true) {
          const chunk = (delta: unknown, finish: string | null = null): unknown => ({
            id: 'chatcmpl-tool',
            object: 'chat.completion.chunk',
            created,
            model,
            choices: [{ index: 0, delta, finish_reason: finish }],
          });
          const events: unknown[] = [
            chunk({ role: 'assistant', content: '' }),
            chunk({ content: 'Sure.' }),
            chunk({ tool_calls: [{ index: 0, id: 'call_fake1', type: 'function', function: { name: tool, arguments: '' } }] }),
            chunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(0, 8) } }] }),
            chunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(8) } }] }),
            chunk({}, 'tool_calls'),
          ];
          stream(
            res,
            path,
            events.map((e) => sse(null, e)),
            'data: [DONE]\n\n',
          );
          return;
        }
        return json(res, 200, {
          id: 'chatcmpl-tool',
          object: 'chat.completion',
          created,
          model,
          choices: [
            {
              index: 0,
              message: {
                role: 'assistant',
                content: null,
                refusal: null,
                tool_calls: [{ id: 'call_fake1', type: 'function', function: { name: tool, arguments: args } }],
              },
              logprobs: null,
              finish_reason: 'tool_calls',
            },
          ],
          usage: { prompt_tokens: 5, completion_tokens: 9, total_tokens: 14 },
        });
      }
      if (req.method === 'POST' && path === '/v1/chat/completions') {
        if (payload.stream === true) {
          const events: unknown[] = [
            {
              id: 'chatcmpl-1',
              object: 'chat.completion.chunk',
              created,
              model,
              choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
            },
            ...state.chunks.map((c) => ({
              id: 'chatcmpl-1',
              object: 'chat.completion.chunk',
              created,
              model,
              choices: [{ index: 0, delta: { content: c }, finish_reason: null }],
            })),
            {
              id: 'chatcmpl-1',
              object: 'chat.completion.chunk',
              created,
              model,
              choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
            },
          ];
          // As OpenAI does with stream_options.include_usage: one last chunk, no choices, the usage.
          const options = payload.stream_options as { include_usage?: boolean } | undefined;
          if (options?.include_usage)
            events.push({
              id: 'chatcmpl-1',
              object: 'chat.completion.chunk',
              created,
              model,
              choices: [],
              usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 },
            });
          stream(
            res,
            path,
            events.map((e) => sse(null, e)),
            'data: [DONE]\n\n',
          );
          return;
        }
        return json(res, 200, {
          id: 'chatcmpl-1',
          object: 'chat.completion',
          created,
          model,
          choices: [
            { index: 0, message: { role: 'assistant', content: state.reply, refusal: null }, logprobs: null, finish_reason: 'stop' },
          ],
          usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
        });
      }
      if (req.method === 'POST' && path === '/v1/embeddings') {
        const inputs = Array.isArray(payload.input) ? payload.input : [payload.input];
        const data = inputs.map((_, index) => {
          const vec = [0.25, -0.5, 0.125, index];
          const embedding = payload.encoding_format === 'base64' ? Buffer.from(new Float32Array(vec).buffer).toString('base64') : vec;
          return { object: 'embedding', index, embedding };
        });
        return json(res, 200, { object: 'list', data, model, usage: { prompt_tokens: 3, total_tokens: 3 } });
      }
      if (req.method === 'POST' && path === '/v1/responses') {
        const respId = 'resp_fake0001';
        const msgId = 'msg_fake0001';
        const text = payload.stream === true ? state.chunks.join('') : state.reply;
        const part = { type: 'output_text', text, annotations: [], logprobs: [] };
        const item = { id: msgId, type: 'message', status: 'completed', role: 'assistant', content: [part] };
        const response = (status: string, output: unknown[]): Record<string, unknown> => ({
          id: respId,
          object: 'response',
          created_at: created,
          status,
          background: false,
          error: null,
          incomplete_details: null,
          instructions: payload.instructions ?? null,
          max_output_tokens: null,
          model,
          output,
          parallel_tool_calls: true,
          previous_response_id: null,
          reasoning: { effort: null, summary: null },
          store: true,
          temperature: 1,
          text: { format: { type: 'text' }, verbosity: 'medium' },
          tool_choice: 'auto',
          tools: [],
          top_p: 1,
          truncation: 'disabled',
          usage:
            status === 'completed'
              ? {
                  input_tokens: 9,
                  input_tokens_details: { cached_tokens: 0 },
                  output_tokens: 7,
                  output_tokens_details: { reasoning_tokens: 0 },
                  total_tokens: 16,
                }
              : null,
          user: null,
          metadata: {},
        });
        if (payload.stream !== true) return json(res, 200, response('completed', [item]));
        let seq = 0;
        const ev = (type: string, body: Record<string, unknown>): string => sse(type, { type, sequence_number: seq++, ...body });
        const at = { item_id: msgId, output_index: 0, content_index: 0 };
        const events = [
          ev('response.created', { response: response('in_progress', []) }),
          ev('response.in_progress', { response: response('in_progress', []) }),
          ev('response.output_item.added', {
            output_index: 0,
            item: { id: msgId, type: 'message', status: 'in_progress', role: 'assistant', content: [] },
          }),
          ev('response.content_part.added', { ...at, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } }),
          ...state.chunks.map((delta) => ev('response.output_text.delta', { ...at, delta, logprobs: [] })),
          ev('response.output_text.done', { ...at, text, logprobs: [] }),
          ev('response.content_part.done', { ...at, part }),
          ev('response.output_item.done', { output_index: 0, item }),
          ev('response.completed', { response: response('completed', [item]) }),
        ];
        stream(res, path, events);
        return;
      }
      if (req.method === 'POST' && path === '/v1/messages') {
        const msg = { id: 'msg_01FakeAnthropic', type: 'message', role: 'assistant', model };
        const usage = { input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 7 };
        if (payload.stream !== true) {
          return json(res, 200, {
            ...msg,
            content: [{ type: 'text', text: state.reply }],
            stop_reason: 'end_turn',
            stop_sequence: null,
            usage,
          });
        }
        const events = [
          sse('message_start', {
            type: 'message_start',
            message: { ...msg, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
          }),
          sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
          sse('ping', { type: 'ping' }),
          ...state.chunks.map((text) =>
            sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }),
          ),
          sse('content_block_stop', { type: 'content_block_stop', index: 0 }),
          sse('message_delta', {
            type: 'message_delta',
            delta: { stop_reason: 'end_turn', stop_sequence: null },
            usage: { output_tokens: 7 },
          }),
          sse('message_stop', { type: 'message_stop' }),
        ];
        stream(res, path, events);
        return;
      }
      if (path === '/echo' || path.startsWith('/echo/')) {
        return json(res, 200, { method: req.method, url: req.url, headers: req.headers, bodyBytes: body.length });
      }
      if (path === '/slow') {
        later(state.slowMs, () => json(res, 200, { slow: true }));
        return;
      }
      if (path === '/gzip-json') {
        const gz = zlib.gzipSync(JSON.stringify({ note: state.reply, nested: [{ contact: state.reply }] }));
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-encoding': 'gzip', 'content-length': gz.length });
        return res.end(gz);
      }
      if (path === '/malformed-json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(`{"note": "${state.reply}", `);
      }
      if (path === '/text') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        return res.end(state.reply);
      }
      json(res, 404, { error: { message: `no route ${path}`, type: 'invalid_request_error' } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const fake = state as FakeOpenAI;
  fake.port = (server.address() as AddressInfo).port;
  fake.close = async () => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return fake;
}
