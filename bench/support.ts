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

export class Interrupted extends Error {}

/** Throws once Ctrl-C/SIGTERM was received, so loops stop starting new work. */
export function checkInterrupted(): void {
  if (interrupted) throw new Interrupted('interrupted');
}

export function onCleanup(fn: CleanupFn): void {
  cleanups.push(fn);
}

/** Runs the registered cleanups in reverse order, once. */
export function cleanupAll(): Promise<void> {
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
export function installSignalHandlers(): void {
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) return;
    signalled = true;
    interrupted = true;
    process.stderr.write(`\nbench: ${sig}: cleaning up...\n`);
    const hard = setTimeout(() => process.exit(130), 15_000);
    hard.unref();
    cleanupAll().finally(() => process.exit(130));
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
  main()
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

export function runCmd(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<CmdResult> {
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
/** CPU time (user+system) of a process in seconds. */
export function procCpuSeconds(pid: number): number | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
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

export function benchPolicy(pg: PgServer, database: string, listenPort: number): string {
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

export interface SidecarProcess {
  pid: number;
  port: number;
  adminPort: number;
  logFile: string;
  rss: RssSampler;
  /** Non-null once the process exited (unexpectedly, before stop()). */
  exited(): { code: number | null; signal: NodeJS.Signals | null } | null;
  /** Log lines at warn/error level (or not JSON at all). */
  problemLines(): string[];
  tail(lines?: number): string;
  stop(): Promise<void>;
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

export async function startSidecarProcess(opts: {
  pg: PgServer;
  database: string;
  dir: string;
  profile?: boolean;
  /** Extra `warden sidecar` flags (e.g. --spool-dir). */
  args?: string[];
  /** Extra environment (e.g. OTEL_EXPORTER_OTLP_ENDPOINT). */
  env?: Record<string, string>;
}): Promise<SidecarProcess> {
  const { pg, database, dir } = opts;
  const secretsDir = path.join(dir, 'secrets');
  fs.mkdirSync(path.join(secretsDir, 'bench-db'), { recursive: true });
  fs.writeFileSync(path.join(secretsDir, 'bench-db', 'username'), pg.user);
  fs.writeFileSync(path.join(secretsDir, 'bench-db', 'password'), pg.password + '\n', { mode: 0o600 });
  fs.mkdirSync(path.join(secretsDir, 'warden-masking'), { recursive: true });
  fs.writeFileSync(path.join(secretsDir, 'warden-masking', 'hash-key'), 'bench-hash-key-' + process.pid);
  const port = await freePort();
  const adminPort = await freePort();
  const policyFile = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policyFile, benchPolicy(pg, database, port));
  const logFile = path.join(dir, 'sidecar.log');
  const logFd = fs.openSync(logFile, 'a');
  const cli = path.resolve(__dirname, '..', 'cli', 'main.js');
  // BENCH_SIDECAR_NODE_ARGS: extra node/V8 flags for the sidecar process (experiments).
  const nodeArgs: string[] = (process.env.BENCH_SIDECAR_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  if (opts.profile) {
    const profDir = path.resolve(__dirname, '..', '..', 'bench', 'profiles');
    fs.mkdirSync(profDir, { recursive: true });
    nodeArgs.push('--cpu-prof', '--cpu-prof-dir', profDir);
  }
  const child = track(
    spawn(process.execPath, [...nodeArgs, cli, 'sidecar', '--policy', policyFile, '--secrets-dir', secretsDir, '--admin-addr', `127.0.0.1:${adminPort}`, '--egress-addr', '127.0.0.1:0', ...(opts.args ?? [])], {
      stdio: ['ignore', logFd, logFd],
      env: { ...clientEnv(), ...opts.env },
    }),
  );
  fs.closeSync(logFd);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitP = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve();
    });
  });
  const readLog = (): string => {
    try {
      return fs.readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const tail = (n = 20): string => readLog().trimEnd().split('\n').slice(-n).join('\n');
  let stopped = false;
  let rss: RssSampler | undefined;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    rss?.stop();
    if (exit) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), opts.profile ? 20_000 : 5_000);
    await exitP;
    clearTimeout(killer);
  };
  onCleanup(stop);
  const deadline = Date.now() + 30_000;
  while (!exit) {
    if ((await httpStatus(adminPort, '/readyz')) === 200 && (await tcpAccepts(port))) break;
    if (Date.now() > deadline) throw new Error(`sidecar not ready after 30 s; log tail:\n${tail()}`);
    await sleep(100);
  }
  if (exit) throw new Error(`sidecar exited during startup (${JSON.stringify(exit)}); log tail:\n${tail()}`);
  rss = new RssSampler(child.pid!);
  return {
    pid: child.pid!,
    port,
    adminPort,
    logFile,
    rss,
    exited: () => exit,
    problemLines: () =>
      readLog()
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
    tail,
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// pgbouncer

export interface Pgbouncer {
  pid: number;
  port: number;
  exited(): boolean;
  tail(lines?: number): string;
  stop(): Promise<void>;
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
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  let exited = false;
  const exitP = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const tail = (n = 20): string => {
    let log = '';
    try {
      log = fs.readFileSync(logFile, 'utf8');
    } catch {
      /* gone */
    }
    return (log + stderr).trimEnd().split('\n').slice(-n).join('\n');
  };
  const stop = async (): Promise<void> => {
    if (exited) return;
    child.kill('SIGTERM'); // immediate shutdown
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exitP;
    clearTimeout(killer);
  };
  onCleanup(stop);
  const deadline = Date.now() + 15_000;
  while (!exited && !(await tcpAccepts(port))) {
    if (Date.now() > deadline) throw new Error(`pgbouncer not listening after 15 s:\n${tail()}`);
    await sleep(100);
  }
  if (exited) throw new Error(`pgbouncer exited during startup:\n${tail()}`);
  return { pid: child.pid!, port, exited: () => exited, tail, stop };
}

// ---------------------------------------------------------------------------------------------
// A bare Node.js TCP relay (bench/node-relay.ts), as its own process: the floor of Node socket I/O

export interface NodeRelay {
  pid: number;
  port: number;
  exited(): { code: number | null; signal: NodeJS.Signals | null } | null;
  tail(lines?: number): string;
  stop(): Promise<void>;
}

export async function startNodeRelay(opts: { targetPort: number }): Promise<NodeRelay> {
  const port = await freePort();
  const script = path.resolve(__dirname, 'node-relay.js');
  // stdin stays a pipe: the relay exits when it closes, even if this process is SIGKILLed.
  const child = track(spawn(process.execPath, [script, String(port), String(opts.targetPort)], { stdio: ['pipe', 'pipe', 'pipe'], env: clientEnv() }));
  let output = '';
  let ready = false;
  const onData = (d: Buffer): void => {
    output += d.toString('utf8');
    if (output.length > 64_000) output = output.slice(-32_000);
    if (/^listening \d+$/m.test(output)) ready = true;
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitP = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve();
    }),
  );
  const tail = (n = 20): string => output.trimEnd().split('\n').slice(-n).join('\n');
  const stop = async (): Promise<void> => {
    if (exit) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exitP;
    clearTimeout(killer);
  };
  onCleanup(stop);
  const deadline = Date.now() + 15_000;
  while (!exit && !ready) {
    if (Date.now() > deadline) throw new Error(`node-relay not listening after 15 s:\n${tail()}`);
    await sleep(50);
  }
  if (exit) throw new Error(`node-relay exited during startup (${JSON.stringify(exit)}):\n${tail()}`);
  return { pid: child.pid!, port, exited: () => exit, tail, stop };
}

// ---------------------------------------------------------------------------------------------
// Formatting

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

export interface OtlpSink {
  url: string;
  pid: number;
  /** Export requests received so far (read from the sink's output). */
  requests(): number;
}

/**
 * A minimal OTLP/HTTP collector in its own process: reads each export and answers 200 with an empty
 * (valid) protobuf response. The audit bench points a sidecar at it, so the figures include the
 * spooling and the export of every record, not only building them.
 */
export async function startOtlpSink(): Promise<OtlpSink> {
  const port = await freePort();
  const code = `
    let n = 0;
    require('node:http').createServer((req, res) => {
      req.on('data', () => {});
      req.on('end', () => { n++; res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 }); res.end(); });
    }).listen(${port}, '127.0.0.1', () => process.stdout.write('listening\\n'));
    setInterval(() => process.stdout.write('requests ' + n + '\\n'), 500).unref();
  `;
  const child = track(spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out = (out + d.toString()).slice(-4096);
  });
  const deadline = Date.now() + 10_000;
  while (!out.includes('listening')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('the OTLP sink did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    requests: () => {
      const m = /requests (\d+)\n[^]*$/.exec(out);
      return m ? Number(m[1]) : 0;
    },
  };
}
