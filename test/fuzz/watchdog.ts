// The sidecar under test runs in the test's own process (like every other end-to-end suite). A
// sidecar that blocks the event loop (the parser looping on hostile input) would then also stop
// every timer the fuzzer has, and the run would never end. A watchdog thread sees the heartbeat
// stop and ends the process with a message, so a run is bounded whatever the sidecar does.
import { Worker } from 'node:worker_threads';

/** How long the event loop may be blocked before the watchdog ends the process. */
export const WATCHDOG_MS = 90_000;

const SOURCE = `
const { workerData } = require('node:worker_threads');
const beat = new Float64Array(workerData.buf);
const wait = new Int32Array(new SharedArrayBuffer(4));
for (;;) {
  Atomics.wait(wait, 0, 0, 1000);
  if (beat[1] === 1) break;
  if (Date.now() - beat[0] > workerData.limit) {
    process.stderr.write('fuzz watchdog: the event loop has been blocked for ' + workerData.limit / 1000 + ' s: the in-process sidecar hung on the last program (a failure: one client stopped the sidecar for everyone)\\n');
    process.kill(process.pid, 'SIGKILL');
  }
}
`;

export interface Watchdog {
  stop(): Promise<void>;
}

export function startWatchdog(limitMs = WATCHDOG_MS): Watchdog {
  const buf = new SharedArrayBuffer(16);
  const beat = new Float64Array(buf);
  beat[0] = Date.now();
  const timer = setInterval(() => (beat[0] = Date.now()), 250);
  timer.unref();
  const worker = new Worker(SOURCE, { eval: true, workerData: { buf, limit: limitMs } });
  worker.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      beat[1] = 1;
      await worker.terminate();
    },
  };
}
