// Micro-benchmark for the audit spool's hot path: Spool.append() of 300-byte records.
//   npx tsc -p tsconfig.dev.json && node dist-dev/bench/spool.js [--dir DIR] [--records N]
// Each round appends N records (as a string, the way the audit trail handed over JSON before, and as
// a Buffer, the way it hands over binary records now: sidecar/audit/binary.ts), yielding to the
// event loop every 1000 appends so the batched fsync runs as it would in the sidecar. The figure is
// the best round; both wall-clock and CPU time are printed because on a shared machine wall-clock
// swings while CPU time stays put.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { silentLogger } from '../common/log';
import { Spool } from '../sidecar/audit/spool';

const RECORD_BYTES = 300;
const ROUNDS = 5;

interface Round {
  wallUs: number;
  cpuUs: number;
}

function record(i: number): string {
  const head = `{"v":1,"id":"${i.toString(16).padStart(32, '0')}","kind":"postgres","db":{"text":"SELECT * FROM customers WHERE id = $1","rows":1},"pad":"`;
  return head + 'x'.repeat(RECORD_BYTES - head.length - 2) + '"}';
}

async function round(spool: Spool, payloads: Array<string | Buffer>, n: number): Promise<Round> {
  const cpu0 = process.cpuUsage();
  let busyNs = 0n;
  for (let i = 0; i < n;) {
    const s = process.hrtime.bigint();
    const end = Math.min(n, i + 1000);
    for (; i < end; i++) {
      if (spool.append(payloads[i % payloads.length]) === undefined) throw new Error('spool refused a record: make --dir bigger');
    }
    busyNs += process.hrtime.bigint() - s;
    await new Promise((r) => setImmediate(r));
  }
  const cpu = process.cpuUsage(cpu0);
  await spool.flush();
  return { wallUs: Number(busyNs) / 1000, cpuUs: cpu.user + cpu.system };
}

function report(label: string, n: number, rounds: Round[]): void {
  const best = rounds.reduce((a, b) => (b.wallUs < a.wallUs ? b : a));
  const bestCpu = Math.min(...rounds.map((r) => r.cpuUs));
  const perWall = best.wallUs / n;
  const perCpu = bestCpu / n;
  process.stdout.write(
    `${label.padEnd(22)} ${Math.round(1e6 / perWall)
      .toLocaleString('en-US')
      .padStart(
        11,
      )} appends/s  ${perWall.toFixed(2).padStart(6)} µs/append (wall)  ${perCpu.toFixed(2).padStart(6)} µs/append (cpu, incl. fsync batches)\n`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, records: { type: 'string', default: '50000' } } });
  const n = Number(values.records);
  const base = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-spool-'));
  const strings = Array.from({ length: 64 }, (_, i) => record(i));
  const buffers = strings.map((s) => Buffer.from(s));
  process.stdout.write(
    `audit spool: ${n} appends of ${Buffer.byteLength(strings[0])}-byte records per round, best of ${ROUNDS}, in ${base}\n`,
  );
  try {
    for (const [label, payloads] of [
      ['append(string)', strings],
      ['append(Buffer)', buffers],
    ] as const) {
      const dir = path.join(base, label.replace(/\W+/g, '-'));
      // Large enough that no round reclaims: this measures the write path alone.
      const spool = Spool.open({ dir, maxBytes: 2 * ROUNDS * n * 400, segmentBytes: 16 << 20, whenFull: 'block', log: silentLogger });
      const rounds: Round[] = [];
      try {
        for (let r = 0; r < ROUNDS; r++) rounds.push(await round(spool, payloads, n));
      } finally {
        await spool.close();
      }
      report(label, n, rounds);
    }
  } finally {
    if (values.dir === undefined) fs.rmSync(base, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`bench/spool: ${e.message}\n`);
  process.exitCode = 1;
});
