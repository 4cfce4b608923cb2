// A minimal OTLP/HTTP collector for the benchmarks, in its own process: reads each export and
// answers 200 with an empty (valid) Export*ServiceResponse, so the figures include spooling and
// exporting every audit record, not only building them. GET /stats returns requests and bytes per
// path. Started by startOtlpSink() (bench/support.ts); prints "listening <port>" once ready.
import * as http from 'node:http';
import { exitWithParent } from './child';

const counts: Record<string, { requests: number; bytes: number }> = {};
const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(counts));
    return;
  }
  let bytes = 0;
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => {
    const c = (counts[req.url ?? ''] ??= { requests: 0, bytes: 0 });
    c.requests++;
    c.bytes += bytes;
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
    res.end();
  });
});
server.keepAliveTimeout = 120_000;
server.on('error', (err) => {
  process.stderr.write(`otlp-sink: ${err.message}\n`);
  process.exit(1);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`));
exitWithParent(() => {
  server.closeAllConnections();
  process.exit(0);
});
