// A bare Node.js HTTP proxy for the benchmark: node:http in front, undici to the upstream, no
// policy, no masking, no audit: the floor a Node.js egress proxy can reach on this machine, so the
// sidecar's own cost per request can be told apart from the runtime's. Routes /api/<path> to
// <upstream>/<path>, sets the Authorization header (as the sidecar injects the credential),
// buffers the request body (as the sidecar does) and streams the response back.
//
// Usage: node dist-dev/bench/node-proxy.js <listenPort (0: any)> <upstream origin> <authorization value>
// Prints "listening <port>" once ready; exits on SIGTERM/SIGINT or when a piped stdin closes.
import * as http from 'node:http';
import { Pool } from 'undici';
import { exitWithParent } from './child';

const [listenPort, origin, authorization] = [Number(process.argv[2]), process.argv[3], process.argv[4]];
if (!Number.isInteger(listenPort) || !origin || !authorization) {
  process.stderr.write('usage: node-proxy.js <listenPort> <upstream origin> <authorization value>\n');
  process.exit(2);
}
const PREFIX = '/api';
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'proxy-connection', 'upgrade', 'te', 'trailer']);
const pool = new Pool(origin, { connections: 128, keepAliveTimeout: 60_000 });

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    headers.authorization = authorization;
    const body = chunks.length ? Buffer.concat(chunks) : null;
    pool.request({ path: (req.url ?? '/').slice(PREFIX.length) || '/', method: req.method as 'GET', headers, body }).then(
      (up) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
        res.writeHead(up.statusCode, out);
        up.body.on('data', (c: Buffer) => res.write(c));
        up.body.on('end', () => res.end());
        up.body.on('error', () => res.destroy());
      },
      () => {
        res.writeHead(502);
        res.end();
      },
    );
  });
});
server.keepAliveTimeout = 120_000;
server.on('error', (err) => {
  process.stderr.write(`node-proxy: ${err.message}\n`);
  process.exit(1);
});
server.listen(listenPort, '127.0.0.1', () => process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`));
exitWithParent(() => {
  server.closeAllConnections();
  process.exit(0);
});
