// A real HTTP receiver on 127.0.0.1:0 that records every request (webhook and Slack notifications).
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  at: number;
  /** Path and query, as requested. */
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface Receiver {
  port: number;
  /** Every request so far, in arrival order. */
  got: Received[];
  close(): Promise<void>;
}

/** `respond` answers each request by its index in `got` (leave `res` open to never answer); default 200 ok. */
export async function startReceiver(
  respond: (n: number, res: http.ServerResponse) => void = (_n, res) => void res.end('ok'),
): Promise<Receiver> {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ at: Date.now(), path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      respond(got.length - 1, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    got,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
