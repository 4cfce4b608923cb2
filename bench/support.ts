// Shared plumbing for the benchmarks: process bookkeeping and cleanup (also on Ctrl-C), a real
// PostgreSQL, the sidecar as a separate `warden sidecar` process with a realistic policy,
// pgbouncer as the peer, and a bare Node.js TCP relay as the runtime's floor. Everything started
// here is registered for cleanup.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { SIDECAR_RUNTIME_ENV } from '../operator/inject/sidecar';
import { freePort, runAsIds, startPgServer, type PgServer } from '../tools/pg-server';

export const PGBENCH = process.env.PGBENCH ?? '/usr/bin/pgbench';
export const PSQL = process.env.PSQL ?? '/usr/bin/psql';

// ---------------------------------------------------------------------------------------------
// Cleanup

type CleanupFn = () => Promise<void> | void;
const cleanups: CleanupFn[] = [];
const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let cleaning: Promise<void> | undefined;
let interrupted = false;

class Interrupted extends Error {}

/** Throws once Ctrl-C/SIGTERM was received, so loops stop starting new work. */
export function checkInterrupted(): void {
  if (interrupted) throw new Interrupted('interrupted');
}

function onCleanup(fn: CleanupFn): void {
  cleanups.push(fn);
}

/** Runs the registered cleanups in reverse order, once. */
function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const fn = cleanups.pop()!;
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`bench: cleanup step failed: ${(err as Error).message}\n`);
      }
    }
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  })();
  return cleaning;
}

/** Ctrl-C / SIGTERM: clean up and exit; a hard exit still kills children and removes temp dirs. */
function installSignalHandlers(): void {
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) return;
    signalled = true;
    interrupted = true;
    process.stderr.write(`\nbench: ${sig}: cleaning up...\n`);
    const hard = setTimeout(() => process.exit(130), 15_000);
    hard.unref();
    // Dropped on purpose: the process exits in finally, whether or not the cleanup failed.
    void cleanupAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  });
}

/** Runs main with cleanup on success, error and signals; sets the exit code. */
export function runMain(main: () => Promise<number>): void {
  installSignalHandlers();
  // Dropped on purpose: a failing cleanup surfaces as an unhandled rejection, which ends the run in error.
  void main()
    .then(
      (code) => code,
      (err: Error) => {
        // After Ctrl-C the failures are just the teardown racing the runs.
        if (!interrupted) process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
        return 1;
      },
    )
    .then(async (code) => {
      await cleanupAll();
      process.exitCode = code;
    });
}

export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function hasExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findExecutable(name: string, extra: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin', ...extra];
  for (const d of dirs) {
    if (d && hasExecutable(path.join(d, name))) return path.join(d, name);
  }
  return undefined;
}

/** A non-negative number from the environment (`whole`: an integer); a clear error for anything else. */
export function envNum(name: string, dflt: number, whole = false): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (whole && !Number.isInteger(n)))
    throw new Error(`${name} must be a non-negative ${whole ? 'whole ' : ''}number, got "${v}"`);
  return n;
}

/** A positive whole number from the environment (counts, rounds, sizes). */
export function envCount(name: string, dflt: number): number {
  return Math.max(1, Math.floor(envNum(name, dflt)));
}

/** BENCH_CLIENTS: a comma-separated list of connection counts, e.g. "1,8". */
export function envClients(dflt = '1,8'): number[] {
  const v = process.env.BENCH_CLIENTS || dflt;
  const clients = v.split(',').map((s) => Math.floor(Number(s.trim())));
  if (clients.some((c) => !Number.isFinite(c) || c < 1))
    throw new Error(`BENCH_CLIENTS must be a comma-separated list of positive numbers, got "${v}"`);
  return clients;
}

/** Environment for client tools: no inherited PG* settings, optionally a password. */
export function clientEnv(password?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.LC_ALL = 'C';
  if (password !== undefined) env.PGPASSWORD = password;
  return env;
}

export interface CmdResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function runCmd(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = track(spawn(file, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.once('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// /proc

export function procStatus(pid: number): { rssKb: number; hwmKb: number } | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0);
    return { rssKb: get('VmRSS'), hwmKb: get('VmHWM') };
  } catch {
    return undefined;
  }
}

let clkTck: number | undefined;
/** CPU time (user+system) of a process in seconds; with `thread`, of that thread only (its main thread: thread = pid). */
export function procCpuSeconds(pid: number, thread?: number): number | undefined {
  try {
    const s = fs.readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
    const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    const ticks = Number(fields[11]) + Number(fields[12]);
    if (clkTck === undefined) {
      try {
        clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
      } catch {
        clkTck = 100;
      }
    }
    return ticks / clkTck;
  } catch {
    return undefined;
  }
}

/** Samples a process's VmRSS every intervalMs; peak() also looks at VmHWM. */
export class RssSampler {
  private timer: NodeJS.Timeout;
  private maxRssKb = 0;
  private lastHwmKb = 0;
  /** VmRSS at the first sample (for the sidecar: idle, right after it became ready). */
  readonly initialMb: number;
  constructor(
    readonly pid: number,
    intervalMs = 200,
  ) {
    this.sample();
    this.initialMb = this.maxRssKb / 1024;
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }
  sample(): void {
    const s = procStatus(this.pid);
    if (!s) return;
    this.maxRssKb = Math.max(this.maxRssKb, s.rssKb);
    this.lastHwmKb = Math.max(this.lastHwmKb, s.hwmKb);
  }
  /** Highest VmRSS sampled since start/reset. */
  maxSampledMb(): number {
    return this.maxRssKb / 1024;
  }
  resetSampled(): void {
    this.maxRssKb = 0;
    this.sample();
  }
  /** Kernel-tracked peak RSS (VmHWM) over the process's whole life. */
  hwmMb(): number {
    this.sample();
    return this.lastHwmKb / 1024;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

export async function startBenchPg(database: string): Promise<PgServer> {
  const pg = await startPgServer();
  onCleanup(() => pg.stop());
  const su = new Client({ connectionString: pg.url() });
  await su.connect();
  try {
    await su.query(`CREATE DATABASE ${database}`);
  } finally {
    await su.end();
  }
  return pg;
}

// ---------------------------------------------------------------------------------------------
// The sidecar, as its own process

function benchPolicy(pg: PgServer, database: string, listenPort: number): string {
  return `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata:
  name: bench-policy
spec:
  defaultAction: allow
  targets:
    - name: bench
      postgres:
        host: 127.0.0.1
        port: ${pg.port}
        database: ${database}
        tls: disable
        credentialsSecret: bench-db
        listenPort: ${listenPort}
  rules:
    - name: no-ddl
      action: deny
      message: schema and privilege changes are not allowed for agents
      match:
        target: bench
        sql:
          statements: [DROP, TRUNCATE, ALTER, GRANT, REVOKE]
    - name: no-file-access
      action: deny
      message: reading or writing server files is not allowed
      match:
        target: bench
        sql:
          functions: [pg_read_file, pg_read_binary_file, pg_ls_dir, pg_stat_file, lo_import, lo_export, dblink, dblink_exec]
    - name: no-server-side-code
      action: deny
      match:
        target: bench
        sql:
          statements: [DO, CALL, LOAD]
    - name: deletes-need-approval
      action: hold
      message: deleting rows needs an SRE's approval
      approval:
        approvers:
          groups: [sre]
        timeout: 1m
      match:
        target: bench
        sql:
          statements: [DELETE]
  masking:
    - name: card-numbers
      columns: [customers.card_number]
      strategy: last4
      targets: [bench]
    - name: pii
      detectors: [credit-card, email, us-ssn, phone, iban, secret-key]
      strategy: redact
`;
}

/** What a sidecar serves: its policy (given the port it listens on for agents) and secret files. */
export interface SidecarSetup {
  policy(port: number): string;
  /** Files under --secrets-dir by relative path, e.g. `{ 'bench-db/password': '...' }`. */
  secrets: Record<string, string>;
  /** The port is the HTTP egress listener (--egress-addr), not a Postgres target's listenPort. */
  egress?: boolean;
}

/** The sidecar in front of the bench database, with benchPolicy(). */
export function pgSidecar(pg: PgServer, database: string): SidecarSetup {
  return {
    policy: (port) => benchPolicy(pg, database, port),
    secrets: { 'bench-db/username': pg.user, 'bench-db/password': pg.password + '\n' },
  };
}

export interface SidecarProcess extends Supervised {
  port: number;
  /** Process start (spawn) to the first /readyz 200 with the agent port accepting, in ms. */
  startMs: number;
  adminPort: number;
  logFile: string;
  rss: RssSampler;
  /** Log lines at warn/error level (or not JSON at all). */
  problemLines(): string[];
}

function httpStatus(port: number, pathname: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathname, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

export function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(1000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * The runtime settings the sidecar ships with (the Dockerfile's ENV, the injected container's env
 * in operator/inject/sidecar.ts, the README's standalone command), so the bench measures what
 * ships: glibc keeps at most 2 malloc arenas and V8's young generation stays at 1 MB semi-spaces.
 * (--liftoff-only, the third memory setting, is not allowed in NODE_OPTIONS: the sidecar sets it
 * itself, sidecar/runtime-flags.ts.) BENCH_SHIPPED_ENV=0 leaves them out, to see what they buy.
 */
export function shippedSidecarEnv(): Record<string, string> {
  return process.env.BENCH_SHIPPED_ENV === '0' ? {} : { ...SIDECAR_RUNTIME_ENV };
}

/** Environment for the processes under test: no inherited PG* or OTEL_* settings (only a sidecar given an endpoint exports). */
export function benchEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG') && !k.startsWith('OTEL_')) env[k] = v;
  return { ...env, LC_ALL: 'C', ...extra };
}

export async function startSidecarProcess(
  opts: SidecarSetup & {
    dir: string;
    /** For messages (default "sidecar"). */
    name?: string;
    profile?: boolean;
    /** Extra `warden sidecar` flags (e.g. --spool-dir). */
    args?: string[];
    /** Extra environment (e.g. OTEL_EXPORTER_OTLP_ENDPOINT). */
    env?: Record<string, string>;
    /** Another build's cli/main.js (a same-run baseline); this build's by default. */
    cli?: string;
  },
): Promise<SidecarProcess> {
  const { dir } = opts;
  const secretsDir = path.join(dir, 'secrets');
  const secrets = { ...opts.secrets, 'warden-masking/hash-key': 'bench-hash-key-' + process.pid };
  for (const [rel, content] of Object.entries(secrets)) {
    fs.mkdirSync(path.dirname(path.join(secretsDir, rel)), { recursive: true });
    fs.writeFileSync(path.join(secretsDir, rel), content, { mode: 0o600 });
  }
  const port = await freePort();
  const adminPort = await freePort();
  const policyFile = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policyFile, opts.policy(port));
  const logFile = path.join(dir, 'sidecar.log');
  const logFd = fs.openSync(logFile, 'a');
  const cli = opts.cli ?? path.resolve(__dirname, '..', 'cli', 'main.js');
  // BENCH_SIDECAR_NODE_ARGS: extra node/V8 flags for the sidecar process (experiments).
  const nodeArgs: string[] = (process.env.BENCH_SIDECAR_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  if (opts.profile) {
    const profDir = path.resolve(__dirname, '..', '..', 'bench', 'profiles');
    fs.mkdirSync(profDir, { recursive: true });
    nodeArgs.push('--cpu-prof', '--cpu-prof-dir', profDir);
  }
  const egress = `127.0.0.1:${opts.egress ? port : 0}`;
  const args = [
    ...nodeArgs,
    cli,
    'sidecar',
    '--policy',
    policyFile,
    '--secrets-dir',
    secretsDir,
    '--admin-addr',
    `127.0.0.1:${adminPort}`,
    '--egress-addr',
    egress,
    ...(opts.args ?? []),
  ];
  const t0 = process.hrtime.bigint();
  const child = track(
    spawn(process.execPath, args, { stdio: ['ignore', logFd, logFd], env: benchEnv({ ...shippedSidecarEnv(), ...opts.env }) }),
  );
  fs.closeSync(logFd);
  // A profiled sidecar needs time to write its profile on SIGTERM.
  const c = supervise(opts.name ?? 'sidecar', child, { logFile, graceMs: opts.profile ? 20_000 : 5_000 });
  // Polled every 5 ms: the time to ready is one of the figures.
  await waitUntilReady(c, async () => (await httpStatus(adminPort, '/readyz')) === 200 && (await tcpAccepts(port)), 30_000, 5);
  const startMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const rss = new RssSampler(child.pid!);
  onCleanup(() => rss.stop());
  return {
    ...c,
    port,
    startMs,
    adminPort,
    logFile,
    rss,
    problemLines: () =>
      c
        .output()
        .split('\n')
        .filter((l) => {
          if (!l.trim()) return false;
          try {
            const j = JSON.parse(l) as { level?: string };
            return j.level === 'warn' || j.level === 'error';
          } catch {
            return true;
          }
        }),
    stop: async () => {
      rss.stop();
      await c.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Long-running children

export interface Supervised {
  name: string;
  pid: number;
  /** Non-null once the process exited. */
  exited(): { code: number | null; signal: NodeJS.Signals | null } | null;
  /** The log file (if any) followed by what the process wrote to piped stdout/stderr. */
  output(): string;
  tail(lines?: number): string;
  /** SIGTERM, then SIGKILL after the grace period; also runs at cleanup. */
  stop(): Promise<void>;
}

/** Bookkeeping for a long-running child: output capture, exit, stop at cleanup. */
export function supervise(name: string, child: ChildProcess, opts: { logFile?: string; graceMs?: number } = {}): Supervised {
  let captured = '';
  const onData = (d: Buffer): void => {
    captured += d.toString('utf8');
    if (captured.length > 64_000) captured = captured.slice(-32_000);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitP = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve();
    }),
  );
  const output = (): string => {
    let log = '';
    if (opts.logFile) {
      try {
        log = fs.readFileSync(opts.logFile, 'utf8');
      } catch {
        /* not there (yet) */
      }
    }
    return log + captured;
  };
  const stop = async (): Promise<void> => {
    if (exit) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), opts.graceMs ?? 5_000);
    await exitP;
    clearTimeout(killer);
  };
  onCleanup(stop);
  return {
    name,
    pid: child.pid!,
    exited: () => exit,
    output,
    tail: (n = 20) => output().trimEnd().split('\n').slice(-n).join('\n'),
    stop,
  };
}

/** Polls `ready` until it says yes; throws with the child's output if it exits or times out first. */
export async function waitUntilReady(
  c: Supervised,
  ready: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  pollMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!c.exited()) {
    if (await ready()) return;
    if (Date.now() > deadline) throw new Error(`${c.name} not ready after ${timeoutMs / 1000} s; output tail:\n${c.tail()}`);
    await sleep(pollMs);
  }
  throw new Error(`${c.name} exited during startup (${JSON.stringify(c.exited())}); output tail:\n${c.tail()}`);
}

/** Throws if any of the children has exited (they should run until cleanup). */
export function assertAlive(children: Supervised[]): void {
  for (const c of children) {
    const ex = c.exited();
    if (ex) throw new Error(`${c.name} exited (${JSON.stringify(ex)}); output tail:\n${c.tail()}`);
  }
}

/**
 * Starts `node <args>` (a script that prints "listening <port>" once ready, e.g. after listening
 * on port 0). stdin stays a pipe: the child exits when it closes (exitWithParent in bench/child.ts),
 * even if this process is SIGKILLed.
 */
export async function startListeningChild(name: string, args: string[]): Promise<Supervised & { port: number }> {
  const child = track(spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env: benchEnv() }));
  const c = supervise(name, child);
  let port = 0;
  await waitUntilReady(
    c,
    () => {
      port = Number(/^listening (\d+)$/m.exec(c.output())?.[1] ?? 0);
      return port > 0;
    },
    15_000,
  );
  return { ...c, port };
}

// ---------------------------------------------------------------------------------------------
// pgbouncer

export interface Pgbouncer extends Supervised {
  port: number;
}

export async function startPgbouncer(opts: { bin: string; pg: PgServer; database: string }): Promise<Pgbouncer> {
  const { pg, database } = opts;
  // pgbouncer refuses to run as root: as root it runs as `postgres` (startPgServer made sure it exists).
  const ids = runAsIds();
  const dir = makeTempDir('warden-bench-pgb-');
  fs.chmodSync(dir, 0o700);
  const port = await freePort();
  const authFile = path.join(dir, 'userlist.txt');
  // A plain-text password lets pgbouncer answer SCRAM from the client and do SCRAM upstream.
  fs.writeFileSync(authFile, `"${pg.user}" "${pg.password}"\n`, { mode: 0o600 });
  const logFile = path.join(dir, 'pgbouncer.log');
  const ini = path.join(dir, 'pgbouncer.ini');
  fs.writeFileSync(
    ini,
    `[databases]
${database} = host=127.0.0.1 port=${pg.port} dbname=${database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${authFile}
pool_mode = session
max_client_conn = 100
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
logfile = ${logFile}
log_connections = 0
log_disconnections = 0
`,
  );
  fs.writeFileSync(logFile, '');
  if (ids.uid !== undefined) for (const f of [dir, authFile, ini, logFile]) fs.chownSync(f, ids.uid, ids.gid!);
  const child = track(spawn(opts.bin, [ini], { ...ids, stdio: ['ignore', 'ignore', 'pipe'], env: clientEnv() }));
  // SIGTERM is pgbouncer's immediate shutdown.
  const c = supervise('pgbouncer', child, { logFile });
  await waitUntilReady(c, () => tcpAccepts(port), 15_000);
  return { ...c, port };
}

// ---------------------------------------------------------------------------------------------
// A bare Node.js TCP relay (bench/node-relay.ts), as its own process: the floor of Node socket I/O

export function startNodeRelay(opts: { targetPort: number }): Promise<Supervised & { port: number }> {
  return startListeningChild('node-relay', [path.resolve(__dirname, 'node-relay.js'), '0', String(opts.targetPort)]);
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** xs rotated left by n: each round starts with a different target, so none always runs first. */
export function rotate<T>(xs: T[], n: number): T[] {
  const k = n % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function fmt(x: number | undefined, digits = 0): string {
  if (x === undefined || !Number.isFinite(x)) return '-';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function table(header: string[], rows: string[][], rightAlign: boolean[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (rightAlign[i] === false ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export interface SinkStats {
  [path: string]: { requests: number; bytes: number };
}

export interface OtlpSink extends Supervised {
  url: string;
  /** Requests and bytes received so far, per path ({} if the sink does not answer). */
  stats(): Promise<SinkStats>;
}

/** The OTLP/HTTP collector of bench/otlp-sink.ts, in its own process. */
export async function startOtlpSink(): Promise<OtlpSink> {
  const c = await startListeningChild('otlp-sink', [path.resolve(__dirname, 'otlp-sink.js')]);
  const url = `http://127.0.0.1:${c.port}`;
  return {
    ...c,
    url,
    stats: async () => {
      try {
        const res = await fetch(`${url}/stats`);
        return (await res.json()) as SinkStats;
      } catch {
        return {};
      }
    },
  };
}

/** Total export requests in a stats snapshot. */
export function sinkRequests(stats: SinkStats): number {
  return Object.values(stats).reduce((n, s) => n + s.requests, 0);
}
