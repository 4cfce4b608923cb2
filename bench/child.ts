// For the benchmark's helper processes (node-relay, the OTLP sink, http-bench's roles). Kept free
// of other imports so a bare process like node-relay stays bare.
import * as fs from 'node:fs';
import type { Server } from 'node:http';

/**
 * Calls onExit on SIGTERM/SIGINT, and when a piped stdin closes: the benchmark holds that pipe
 * open, so its end means the benchmark died (even by SIGKILL) and no child outlives it. A terminal
 * or /dev/null on stdin is left alone, so the script can also be run by hand.
 */
export function exitWithParent(onExit: () => void): void {
  process.on('SIGTERM', onExit);
  process.on('SIGINT', onExit);
  let pipe = false;
  try {
    const st = fs.fstatSync(0);
    pipe = st.isFIFO() || st.isSocket();
  } catch {
    /* no stdin */
  }
  if (pipe) {
    process.stdin.on('end', onExit);
    process.stdin.on('error', onExit);
    process.stdin.resume();
  }
}

/** A helper server's start: listen on a free loopback port, print `listening <port>`, exit with the parent. */
export function listenAndAnnounce(server: Server): void {
  server.on('error', (err) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`));
  exitWithParent(() => {
    server.closeAllConnections();
    process.exit(0);
  });
}
