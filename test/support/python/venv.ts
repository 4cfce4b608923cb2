// Test support: a Python (>= 3.10) and a virtualenv with the example's requirements, cached under
// ~/.cache/agent-warden/ (XDG_CACHE_HOME respected) by a hash of requirements.txt, the Python
// version and the stand-in wheel's builder, so only the first run pays for `pip install`.
//
// The venv is built in place under a lock directory (two jest workers or a parallel `make
// example-python` wait for one build) and marked ready last: a build that died is removed and done
// again. pip runs with the machine's own configuration (index, mirrors, certificates); lookups that
// fail are not retried (`--retries 0` unless PIP_RETRIES says otherwise), as a closed index would
// otherwise cost minutes. langchain-core's dependency langchain-protocol is offered as a local
// stand-in wheel (see langchain-protocol-shim/build_wheel.py); a real release wins wherever an
// index serves one.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type PythonFound = { ok: true; python: string; version: string } | { ok: false; reason: string };

const SHIM_BUILDER = path.join(__dirname, 'langchain-protocol-shim', 'build_wheel.py');
const LOCK_STALE_MS = 15 * 60_000;
const LOCK_WAIT_MS = 15 * 60_000;

/** The first of WARDEN_PYTHON, python3, python (on env's PATH) that is Python 3.10 or newer. */
export function findPython(env: NodeJS.ProcessEnv = process.env): PythonFound {
  const candidates = [env.WARDEN_PYTHON, 'python3', 'python'].filter((c): c is string => !!c);
  const seen: string[] = [];
  for (const c of candidates) {
    const r = spawnSync(c, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], { encoding: 'utf8', env });
    if (r.status !== 0) {
      seen.push(`${c}: not found`);
      continue;
    }
    const version = r.stdout.trim();
    const [major, minor] = version.split('.').map(Number);
    if (major === 3 && minor >= 10) return { ok: true, python: c, version };
    seen.push(`${c}: ${version}`);
  }
  return { ok: false, reason: `needs python3 >= 3.10 (${seen.join('; ')}); set WARDEN_PYTHON to one` };
}

export interface Venv {
  /** The venv's python executable. */
  python: string;
  dir: string;
  /** Seconds `python -m venv` + `pip install` took; 0 when the cached venv was reused. */
  installSeconds: number;
  /** Installed distributions (name → version), from `pip list`. */
  packages: Record<string, string>;
}

export function cacheRoot(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'agent-warden');
}

function run(cmd: string, args: string[], what: string, env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: env ?? process.env, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) {
    const tail = `${r.stdout ?? ''}\n${r.stderr ?? ''}`
      .split('\n')
      .filter((l) => l.trim() && !l.includes('Retrying'))
      .slice(-15)
      .join('\n');
    throw new Error(`${what} failed (exit ${r.status ?? r.signal}): ${cmd} ${args.join(' ')}\n${tail}`);
  }
  return r.stdout;
}

function binPython(dir: string): string {
  return process.platform === 'win32' ? path.join(dir, 'Scripts', 'python.exe') : path.join(dir, 'bin', 'python');
}

async function withLock<T>(lock: string, fn: () => T): Promise<T> {
  const start = Date.now();
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const held = fs.statSync(lock, { throwIfNoEntry: false });
      if (held === undefined) continue; // released in between
      if (Date.now() - held.mtimeMs > LOCK_STALE_MS) fs.rmSync(lock, { recursive: true, force: true });
      else if (Date.now() - start > LOCK_WAIT_MS) throw new Error(`waited too long for ${lock} (remove it if no build runs)`);
      else await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** The cached venv for `requirements` (a requirements.txt path), built on first use. */
export async function ensureVenv(python: PythonFound & { ok: true }, requirements: string): Promise<Venv> {
  const key = createHash('sha256')
    .update(fs.readFileSync(requirements))
    .update(fs.readFileSync(SHIM_BUILDER))
    .update(`${python.version} ${process.platform} ${process.arch}`)
    .digest('hex')
    .slice(0, 16);
  const root = cacheRoot();
  fs.mkdirSync(root, { recursive: true });
  const dir = path.join(root, `python-langchain-${key}`);
  const ready = path.join(dir, '.ready');
  let installSeconds = 0;
  if (!fs.existsSync(ready)) {
    await withLock(`${dir}.lock`, () => {
      if (fs.existsSync(ready)) return;
      fs.rmSync(dir, { recursive: true, force: true });
      const started = performance.now();
      run(python.python, ['-m', 'venv', dir], 'creating the venv');
      const wheels = path.join(dir, 'stand-in-wheels');
      run(binPython(dir), [SHIM_BUILDER, wheels], 'building the langchain-protocol stand-in wheel');
      const pip = ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--retries', process.env.PIP_RETRIES ?? '0'];
      run(binPython(dir), [...pip, '--find-links', wheels, '-r', requirements], 'pip install of the example requirements');
      installSeconds = (performance.now() - started) / 1000;
      fs.writeFileSync(ready, `${new Date().toISOString()} ${installSeconds.toFixed(1)} s\n`);
    });
  }
  const listed = JSON.parse(
    run(binPython(dir), ['-m', 'pip', 'list', '--format', 'json', '--disable-pip-version-check'], 'pip list'),
  ) as Array<{
    name: string;
    version: string;
  }>;
  const packages = Object.fromEntries(listed.map((p) => [p.name.toLowerCase(), p.version]));
  return { python: binPython(dir), dir, installSeconds, packages };
}
