// A bare Node.js TCP relay for the benchmark: no protocol parsing at all. Accepts on
// 127.0.0.1:<listenPort>, opens one connection to 127.0.0.1:<targetPort> per client, sets
// TCP_NODELAY on both and copies bytes both ways with 'data' handlers and write() (pausing the
// reader while the other side's buffer is full). It measures what Node.js socket I/O alone costs
// on this machine, so the sidecar's parsing and policy overhead can be told apart from the runtime's.
//
// Usage: node dist-dev/bench/node-relay.js <listenPort (0: any)> <targetPort>
// Prints "listening <port>" on stdout once ready; exits on SIGTERM/SIGINT, or when a piped stdin
// closes (the parent died), so it never outlives the benchmark.
import * as net from 'node:net';
import { exitWithParent } from './child';

const HOST = '127.0.0.1';

function portArg(i: number, what: string): number {
  const v = Number(process.argv[i]);
  if (!Number.isInteger(v) || v < 0 || v > 65535) {
    process.stderr.write(`node-relay: bad ${what} "${process.argv[i] ?? ''}"; usage: node-relay.js <listenPort> <targetPort>\n`);
    process.exit(2);
  }
  return v;
}

const listenPort = portArg(2, 'listen port');
const targetPort = portArg(3, 'target port');

/** Copies from → to; pauses `from` while `to` is backed up. */
function relay(from: net.Socket, to: net.Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
  // Whatever ends one side ends the other: no half-open bookkeeping, the peer just goes away.
  from.on('close', () => to.destroy());
  from.on('error', () => to.destroy());
}

const sockets = new Set<net.Socket>();
const server = net.createServer((client) => {
  const upstream = net.connect({ host: HOST, port: targetPort });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  for (const s of [client, upstream]) {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  }
  // Bytes from the client before upstream is connected are queued by net.Socket.
  relay(client, upstream);
  relay(upstream, client);
});

server.on('error', (err) => {
  process.stderr.write(`node-relay: ${err.message}\n`);
  process.exit(1);
});

server.listen(listenPort, HOST, () => {
  const addr = server.address() as net.AddressInfo;
  process.stdout.write(`listening ${addr.port}\n`);
});

function shutdown(): void {
  server.close();
  for (const s of sockets) s.destroy();
  process.exit(0);
}
exitWithParent(shutdown);
