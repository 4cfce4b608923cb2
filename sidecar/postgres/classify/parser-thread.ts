// The parser worker thread: the only place the sidecar runs libpg-query. It answers one
// classification at a time; the main thread (parser-worker.ts) keeps the exact and shape caches,
// this thread the normalized one (normalizing needs the parser). A failure of the parser itself is
// reported and this thread is then replaced: its WASM instance is not trusted again.
import { parentPort, workerData } from 'node:worker_threads';
import { NormalizedCache } from './cache';
import { initClassifier } from './classify';
import { ParserFailure } from './failure';
import type { ParserReply, ParserRequest, ParserThreadData } from './parser-protocol';

const port = parentPort;
if (!port) throw new Error('parser-thread must run in a worker thread');
const data = workerData as ParserThreadData;
const cache = new NormalizedCache(data);

const reply = (m: ParserReply): void => port.postMessage(m);

initClassifier().then(
  () => reply({ type: 'ready' }),
  (err: Error) => reply({ type: 'failed', message: `loading the SQL parser failed: ${err.message}` }),
);

port.on('message', (m: ParserRequest) => {
  const hitsBefore = cache.hits;
  try {
    const { result, hints } = cache.classify(m.text);
    reply({ type: 'result', id: m.id, result, hints, normalizedHit: cache.hits > hitsBefore });
  } catch (err) {
    const message =
      err instanceof ParserFailure ? err.message : `the SQL parser failed: ${err instanceof Error ? err.message : String(err)}`;
    reply({ type: 'failure', id: m.id, message });
  }
});
