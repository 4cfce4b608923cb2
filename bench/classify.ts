// Microbenchmark of the classifier: `npx tsc -p tsconfig.dev.json && node dist-dev/bench/classify.js`
// (also run, with smaller counts, by cache.test.ts). Prints microseconds per classify call.
import { parseSync, normalizeSync } from 'libpg-query';
import { createClassifier } from '../sidecar/postgres/classify/cache';
import { classifySql, initClassifier } from '../sidecar/postgres/classify/classify';

export interface BenchResult {
  parseUs: number;
  normalizeUs: number;
  uncachedClassifyUs: number;
  exactHitUs: number;
  normalizedHitUs: number;
  missUs: number;
}

/** CPU time (user + system) per call: steadier than wall time on a shared, busy machine. */
function timeUs(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 2000); i++) fn(i + 1_000_000); // warm up the JIT
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) fn(i);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

export async function runBench(n = 20_000): Promise<BenchResult> {
  await initClassifier();
  const pgbench = (i: number): string => `SELECT abalance FROM pgbench_accounts WHERE aid = ${i};`;
  const parseUs = timeUs(n, (i) => parseSync(pgbench(i)));
  const normalizeUs = timeUs(n, (i) => normalizeSync(pgbench(i)));
  const uncachedClassifyUs = timeUs(n, (i) => classifySql(pgbench(i)));
  const hot = createClassifier({ maxEntries: 10_000 });
  const exactHitUs = timeUs(n, () => hot.classify(pgbench(42)));
  const normalizedHitUs = timeUs(n, (i) => hot.classify(pgbench(i)));
  // Misses: every text has a different shape (a new column alias), so nothing is shared.
  const cold = createClassifier({ maxEntries: 10_000 });
  const missUs = timeUs(n, (i) => cold.classify(`SELECT abalance AS a${i} FROM pgbench_accounts WHERE aid = ${i};`));
  return { parseUs, normalizeUs, uncachedClassifyUs, exactHitUs, normalizedHitUs, missUs };
}

if (require.main === module) {
  void runBench().then((r) => {
    for (const [k, v] of Object.entries(r) as Array<[string, number]>) console.log(`${k.padEnd(20)} ${v.toFixed(2)} µs`);
  });
}
