// Test double: a TCP relay that hands what the server sends to the client in small pieces, one
// piece per write with a pause between them (Nagle off), so the reader on the client side — the
// sidecar reading an MCP server's event stream — gets each event split across many TCP chunks,
// a value such as a card number included. Client → server bytes pass as they come.
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface ChunkingProxy {
  /** `http://127.0.0.1:<port><path>` for the server URL's path. */
  url(path: string): string;
  port: number;
  /** Pieces written towards the client so far. */
  pieces(): number;
  close(): Promise<void>;
}

export async function startChunkingProxy(
  target: { host: string; port: number },
  opts: { pieceBytes?: number; pauseMs?: number } = {},
): Promise<ChunkingProxy> {
  const pieceBytes = opts.pieceBytes ?? 7;
  const pauseMs = opts.pauseMs ?? 1;
  let pieces = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect(target.port, target.host);
    upstream.setNoDelay(true);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream);
    // Server → client: sequentially, piece by piece.
    let queue = Promise.resolve();
    upstream.on('data', (chunk: Buffer) => {
      upstream.pause();
      queue = queue.then(async () => {
        for (let i = 0; i < chunk.length; i += pieceBytes) {
          if (client.destroyed) return;
          client.write(chunk.subarray(i, i + pieceBytes));
          pieces++;
          await new Promise((r) => setTimeout(r, pauseMs));
        }
        upstream.resume();
      });
    });
    upstream.on('end', () => void queue.then(() => client.end()));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => void queue.then(() => client.destroy()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    pieces: () => pieces,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
