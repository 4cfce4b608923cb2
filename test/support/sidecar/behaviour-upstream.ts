// Test support: a real Node HTTP upstream on port 0 that does what each test asks. The first path
// segment naming a registered behaviour (`;params` and the query ignored) picks the handler;
// any other request gets `{"ok":true,"method":...,"url":...}`. Every request is recorded in `seen`.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method?: string;
  url?: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type Behaviour = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void | Promise<void>;

export interface BehaviourUpstream {
  port: number;
  seen: SeenRequest[];
  behaviours: Map<string, Behaviour>;
  /** Forgets what was seen and every behaviour (between tests). */
  reset(): void;
  close(): Promise<void>;
}

export async function startBehaviourUpstream(): Promise<BehaviourUpstream> {
  const seen: SeenRequest[] = [];
  const behaviours = new Map<string, Behaviour>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: body.toString('utf8') });
      const name = (req.url ?? '/')
        .split('/')
        .map((s) => s.split(/[;?]/)[0])
        .find((s) => behaviours.has(s));
      const b = name === undefined ? undefined : behaviours.get(name);
      if (!b) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: true, method: req.method, url: req.url }));
        return;
      }
      void Promise.resolve(b(req, body, res)).catch(() => res.destroy());
    });
  });
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
  return {
    port,
    seen,
    behaviours,
    reset() {
      seen.length = 0;
      behaviours.clear();
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
