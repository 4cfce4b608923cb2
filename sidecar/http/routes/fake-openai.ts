// A small OpenAI-compatible upstream for tests, on 127.0.0.1 port 0. It records every request it
// receives (method, url, headers, body, client port) so tests can check what reached it.
//
//   POST /v1/chat/completions   non-streaming, or `stream: true` as SSE `data: {...}\n\n` chunks
//                               (one per entry of `chunks`) ending with `data: [DONE]`
//   POST /v1/embeddings         float arrays, or base64 float32 when encoding_format is base64
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
  /** Text of the assistant's answer (non-streaming) and of the other PII-carrying routes. */
  reply: string;
  /** Content deltas of the streamed answer, one SSE event each. */
  chunks: string[];
  /** Milliseconds between streamed events. */
  chunkDelayMs: number;
  slowMs: number;
  close(): Promise<void>;
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
    reply: 'Hello from the fake model.',
    chunks: ['Hello', ' from', ' the', ' fake', ' model.'],
    chunkDelayMs: 5,
    slowMs: 5000,
  };

  const json = (res: http.ServerResponse, status: number, obj: unknown): void => {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      state.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, remotePort: req.socket.remotePort ?? 0 });
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

      if (req.method === 'POST' && path === '/v1/chat/completions') {
        if (payload.stream === true) {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          const events: unknown[] = [
            { id: 'chatcmpl-1', object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
            ...state.chunks.map((c) => ({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: { content: c }, finish_reason: null }] })),
            { id: 'chatcmpl-1', object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
          ];
          let i = 0;
          const next = (): void => {
            if (res.destroyed) return;
            if (i < events.length) {
              res.write(`data: ${JSON.stringify(events[i++])}\n\n`);
              later(state.chunkDelayMs, next);
            } else {
              res.end('data: [DONE]\n\n');
            }
          };
          next();
          return;
        }
        return json(res, 200, {
          id: 'chatcmpl-1',
          object: 'chat.completion',
          created,
          model,
          choices: [{ index: 0, message: { role: 'assistant', content: state.reply, refusal: null }, logprobs: null, finish_reason: 'stop' }],
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
