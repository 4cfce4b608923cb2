// The demo's sample LLM API: an OpenAI-compatible chat endpoint on loopback that answers with
// personal data (so the demo can show masking) and records which credential reached it.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DemoLlm {
  port: number;
  /** Authorization headers the API received, in order. */
  seenAuthorization: string[];
  close(): Promise<void>;
}

export async function startDemoLlm(): Promise<DemoLlm> {
  const seenAuthorization: string[] = [];
  const server = http.createServer((req, res) => {
    seenAuthorization.push(String(req.headers.authorization ?? ''));
    req.resume();
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/chat/completions') {
        const body = JSON.stringify({
          id: 'chatcmpl-demo',
          object: 'chat.completion',
          model: 'demo-model',
          choices: [
            {
              index: 0,
              finish_reason: 'stop',
              message: {
                role: 'assistant',
                content: 'Ada Lovelace can be reached at ada@example.com; her card on file is 4111 1111 1111 1111.',
              },
            },
          ],
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"file-demo","object":"file"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seenAuthorization,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
