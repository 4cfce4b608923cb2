// Test fixture: an OpenAI-compatible chat model on 127.0.0.1:0 that plays a fixed script of tool
// calls, answering the tool-calling protocol the official openai clients speak (Python's through
// LangChain's ChatOpenAI): `POST /v1/chat/completions` with `tools`, answered with `tool_calls`
// (finish_reason "tool_calls"); the client runs them and sends the results back as `role: "tool"`
// messages; after the last step it answers with text. Streaming requests get the same turn as
// chat.completion.chunk SSE events.
//
// The turn is chosen by how many tool results the conversation already holds, so the script is
// replayed faithfully whatever the client resends. A step that names a tool the request did not
// offer is answered with a 400, so a client that lost a tool fails loudly. Every request is
// recorded (headers and parsed body): tests read what the model was shown.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type ScriptStep = { tool: string; args: Record<string, unknown> } | { answer: (toolResults: string[]) => string };

export interface ChatMessage {
  role: string;
  content?: unknown;
  tool_call_id?: string;
  tool_calls?: Array<{ id: string; function: { name: string; arguments: string } }>;
}

export interface ChatRequest {
  headers: http.IncomingHttpHeaders;
  body: { model?: string; messages?: ChatMessage[]; tools?: Array<{ function?: { name?: string } }>; stream?: boolean };
}

export interface ScriptedLlm {
  port: number;
  requests: ChatRequest[];
  close(): Promise<void>;
}

/** The text of a message's content (a string, or an array of text parts). */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === 'object' && p && 'text' in p ? String(p.text) : '')).join('');
  return '';
}

export async function startScriptedLlm(script: ScriptStep[]): Promise<ScriptedLlm> {
  const requests: ChatRequest[] = [];
  const json = (res: http.ServerResponse, status: number, obj: unknown): void => {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const turn = (body: ChatRequest['body']): { message: Record<string, unknown>; finish: string } | { error: string } => {
    const messages = body.messages ?? [];
    const results = messages.filter((m) => m.role === 'tool').map((m) => contentText(m.content));
    const step = script[Math.min(results.length, script.length - 1)];
    if ('answer' in step) return { message: { role: 'assistant', content: step.answer(results), refusal: null }, finish: 'stop' };
    const offered = (body.tools ?? []).map((t) => t.function?.name);
    if (!offered.includes(step.tool))
      return { error: `script step ${results.length} calls "${step.tool}", offered: ${offered.join(', ')}` };
    const call = {
      id: `call_step${results.length}`,
      type: 'function',
      function: { name: step.tool, arguments: JSON.stringify(step.args) },
    };
    return { message: { role: 'assistant', content: null, refusal: null, tool_calls: [call] }, finish: 'tool_calls' };
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== '/v1/chat/completions') {
        return json(res, 404, { error: { message: `no route ${req.method} ${req.url}`, type: 'invalid_request_error' } });
      }
      let body: ChatRequest['body'];
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ChatRequest['body'];
      } catch {
        return json(res, 400, { error: { message: 'invalid JSON body', type: 'invalid_request_error' } });
      }
      requests.push({ headers: req.headers, body });
      const t = turn(body);
      if ('error' in t) return json(res, 400, { error: { message: t.error, type: 'invalid_request_error' } });
      const base = { id: `chatcmpl-script${requests.length}`, created: Math.floor(Date.now() / 1000), model: body.model ?? 'scripted' };
      const usage = { prompt_tokens: 20, completion_tokens: 10, total_tokens: 30 };
      if (body.stream !== true) {
        return json(res, 200, {
          ...base,
          object: 'chat.completion',
          choices: [{ index: 0, message: t.message, logprobs: null, finish_reason: t.finish }],
          usage,
        });
      }
      const chunk = (delta: unknown, finish: string | null = null): string =>
        `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      const calls = (t.message.tool_calls ?? []) as Array<Record<string, unknown>>;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(chunk({ role: 'assistant', content: '' }));
      if (typeof t.message.content === 'string') res.write(chunk({ content: t.message.content }));
      calls.forEach((c, index) => res.write(chunk({ tool_calls: [{ index, ...c }] })));
      res.write(chunk({}, t.finish));
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
