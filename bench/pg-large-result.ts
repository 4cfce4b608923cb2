// Streams a large result (default 1,000,000 rows of 1000 bytes, ~1 GB) through psql, directly and
// through the sidecar (and pgbouncer when installed), and reports time, throughput and the
// sidecar's peak RSS: memory must stay bounded however large the result is.
// Environment: BENCH_LARGE=0 skips it; BENCH_LARGE_ROWS, BENCH_LARGE_WIDTH change the size.
import * as os from 'node:os';
import type { PgServer } from '../tools/pg-server';
import {
  PSQL,
  checkInterrupted,
  clientEnv,
  envCount,
  findExecutable,
  fmt,
  hasExecutable,
  makeTempDir,
  pgSidecar,
  runCmd,
  runMain,
  startBenchPg,
  startPgbouncer,
  startSidecarProcess,
  table,
} from './support';

const DATABASE = 'bench';

async function main(): Promise<number> {
  if (process.env.BENCH_LARGE === '0') {
    process.stdout.write('large-result benchmark skipped (BENCH_LARGE=0)\n');
    return 0;
  }
  if (!hasExecutable(PSQL)) {
    process.stderr.write(`psql not found at ${PSQL} (apt-get install postgresql-client): skipping the large-result benchmark\n`);
    return 0;
  }
  const ROWS = envCount('BENCH_LARGE_ROWS', 1_000_000);
  const WIDTH = envCount('BENCH_LARGE_WIDTH', 1000);
  const payloadMb = (ROWS * WIDTH) / 1e6;
  process.stdout.write(
    `\nLarge result: ${fmt(ROWS)} rows x ${WIDTH} bytes (${fmt(payloadMb)} MB payload) via psql to /dev/null, ${os.cpus().length} CPUs\n`,
  );
  const pg: PgServer = await startBenchPg(DATABASE);
  const dir = makeTempDir('warden-bench-large-');
  const sc = await startSidecarProcess({ ...pgSidecar(pg, DATABASE), dir, profile: process.env.BENCH_PROFILE === '1' });
  const pgbouncerBin = findExecutable('pgbouncer');
  if (!pgbouncerBin) process.stdout.write('pgbouncer not installed (apt-get install pgbouncer): skipping peer\n');
  const bouncer = pgbouncerBin ? await startPgbouncer({ bin: pgbouncerBin, pg, database: DATABASE }) : undefined;

  const sql = `SELECT repeat('x', ${WIDTH}) FROM generate_series(1, ${ROWS})`;
  const targets = [
    { name: 'direct', port: pg.port, user: pg.user, password: pg.password as string | undefined },
    { name: 'sidecar', port: sc.port, user: 'agent', password: undefined },
    ...(bouncer ? [{ name: 'pgbouncer', port: bouncer.port, user: pg.user, password: pg.password as string | undefined }] : []),
  ];
  const idleMb = sc.rss.initialMb;
  const rows: string[][] = [];
  const results: Array<{ target: string; seconds: number; mbPerSec: number; error?: string }> = [];
  let sidecarPeakMb = 0;
  let rssBeforeMb = 0;
  for (const t of targets) {
    checkInterrupted();
    if (t.name === 'sidecar') {
      sc.rss.resetSampled();
      rssBeforeMb = sc.rss.maxSampledMb();
    }
    const r = await runCmd(
      PSQL,
      [
        '-X',
        '-q',
        '-A',
        '-t',
        '-v',
        'ON_ERROR_STOP=1',
        '-h',
        '127.0.0.1',
        '-p',
        String(t.port),
        '-U',
        t.user,
        '-d',
        DATABASE,
        '-o',
        '/dev/null',
        '-c',
        sql,
      ],
      {
        env: clientEnv(t.password),
        timeoutMs: 300_000,
      },
    );
    if (t.name === 'sidecar') {
      sc.rss.sample();
      sidecarPeakMb = sc.rss.maxSampledMb();
    }
    checkInterrupted();
    const seconds = r.ms / 1000;
    const error = r.code !== 0 ? `psql exited ${r.code ?? r.signal}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` : undefined;
    results.push({ target: t.name, seconds, mbPerSec: payloadMb / seconds, ...(error ? { error } : {}) });
    rows.push([t.name, error ? 'ERROR' : seconds.toFixed(2), error ? '-' : fmt(payloadMb / seconds), error ?? '']);
    const ex = sc.exited();
    if (ex) throw new Error(`the sidecar exited (${JSON.stringify(ex)}); log tail:\n${sc.tail()}`);
  }
  const direct = results.find((r) => r.target === 'direct');
  const side = results.find((r) => r.target === 'sidecar');
  const hwmMb = sc.rss.hwmMb();
  const out: string[] = [];
  out.push(table(['target', 'seconds', 'MB/s', ''], rows, [false, true, true, false]));
  if (direct && side && !direct.error && !side.error)
    out.push(`sidecar throughput ${(side.mbPerSec / direct.mbPerSec).toFixed(2)}x direct`);
  out.push(
    `Sidecar RSS: idle ${idleMb.toFixed(1)} MB, highest sampled during the sidecar run ${sidecarPeakMb.toFixed(1)} MB, VmHWM ${hwmMb.toFixed(1)} MB`,
  );
  // Bounded = the growth while streaming is a small fraction of the result, not proportional to it.
  const growthMb = sidecarPeakMb - rssBeforeMb;
  const bounded = growthMb < payloadMb / 4;
  out.push(
    `${bounded ? 'PASS' : 'MISS'}  sidecar memory bounded while streaming ${fmt(payloadMb)} MB: grew ${growthMb.toFixed(1)} MB (from ${rssBeforeMb.toFixed(1)} MB), must be < ${fmt(payloadMb / 4)} MB`,
  );
  out.push(`${hwmMb < 80 ? 'PASS' : 'MISS'}  sidecar RSS < 80 MB (project target): VmHWM ${hwmMb.toFixed(1)} MB`);
  const problems = sc.problemLines();
  if (problems.length) {
    out.push(`Sidecar logged ${problems.length} warning/error line(s); last ones:`);
    for (const l of problems.slice(-10)) out.push('  ' + l.slice(0, 400));
  }
  process.stdout.write(out.join('\n') + '\n');
  return results.some((r) => r.error) ? 1 : 0;
}

runMain(main);
