#!/usr/bin/env node
// `make pack`: the npm package that approvers and operators install with `npm install -g`, and the
// archive the krew plugin points at. It stands alone: the production dependencies travel inside
// it (bundleDependencies), copied from node_modules at exactly the lock file's versions, with
// what never runs (type declarations, source maps, TypeScript sources, docs) left out. So the
// install fetches nothing, pulls no dev dependency, and works offline; test/pack.test.ts checks it.
//
//   node release/pack.mjs [--out DIR]     prints the tarball's path last
//
// The production tree is platform-independent JavaScript and WebAssembly (libpg-query); the script
// refuses a production package limited to some platforms, which would make one tarball wrong on
// the others.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { out: { type: 'string', default: path.join(ROOT, '.tmp', 'pack') } } });
const OUT = path.resolve(values.out);
const STAGE = path.join(OUT, 'stage');

/** Files of a dependency that nothing requires at run time. */
const NOT_RUN = [/\.d\.[cm]?ts$/, /\.map$/, /(?<!\.d)\.[cm]?ts$/, /\.tsbuildinfo$/, /\.md$/i];
/** Folders of a dependency that Node never loads: the Bare runtime's native addons (bare-fs and kin come
 * with tar-fs, which picks them only under the "bare" import condition). */
const NOT_RUN_DIRS = (pkgKey, name) => name === 'prebuilds' && /(^|\/)bare-[^/]+$/.test(pkgKey);
/** Files of ours that ship besides dist/ and bin/ (crds/: the schema `warden validate` and the sidecar use). */
const SHIPPED = ['bin', 'crds', 'README.md', 'LICENSE', 'CHANGELOG.md', 'SECURITY.md'];

function fail(message) {
  process.stderr.write(`pack: ${message}\n`);
  process.exit(1);
}

function copyDir(from, to, keep) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    const dst = path.join(to, e.name);
    if (!keep(src, e)) continue;
    if (e.isDirectory()) copyDir(src, dst, keep);
    else if (e.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(src), dst);
    else fs.copyFileSync(src, dst);
  }
}

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));

fs.rmSync(OUT, { recursive: true, force: true });
fs.mkdirSync(STAGE, { recursive: true });

// Our code: compiled fresh from the production sources (tsconfig.json), so nothing stale in dist/
// and nothing from test/ or bench/ can ride along. Source maps stay out: the sources do not ship.
execFileSync(
  process.execPath,
  [
    path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
    '-p',
    path.join(ROOT, 'tsconfig.json'),
    '--outDir',
    path.join(STAGE, 'dist'),
    '--sourceMap',
    'false',
  ],
  {
    stdio: 'inherit',
  },
);
for (const f of SHIPPED) {
  const src = path.join(ROOT, f);
  if (!fs.existsSync(src)) fail(`${f} is missing`);
  if (fs.statSync(src).isDirectory()) copyDir(src, path.join(STAGE, f), () => true);
  else fs.copyFileSync(src, path.join(STAGE, f));
}

// The production dependencies, as the lock file places them (nested node_modules included).
let copied = 0;
for (const [key, entry] of Object.entries(lock.packages)) {
  if (key === '' || entry.dev || entry.devOptional || entry.link) continue;
  if (entry.os || entry.cpu || entry.libc) fail(`${key} is a production dependency limited to some platforms; one tarball cannot carry it`);
  const src = path.join(ROOT, key);
  const installed =
    fs.existsSync(path.join(src, 'package.json')) && JSON.parse(fs.readFileSync(path.join(src, 'package.json'), 'utf8')).version;
  if (installed !== entry.version) {
    if (entry.optional && !installed) continue;
    fail(`${key} is ${installed || 'not installed'}, the lock file says ${entry.version}: run \`make install\` first`);
  }
  copyDir(src, path.join(STAGE, key), (file, e) =>
    e.isDirectory()
      ? !(path.dirname(file) === src && (e.name === 'node_modules' || NOT_RUN_DIRS(key, e.name)))
      : !NOT_RUN.some((re) => re.test(e.name)),
  );
  copied++;
}

// The published package.json: what runs, nothing to build, no scripts.
const published = {
  name: pkg.name,
  version: pkg.version,
  description: pkg.description,
  license: pkg.license,
  bin: pkg.bin,
  engines: pkg.engines,
  files: ['bin', 'dist', 'crds', 'README.md', 'LICENSE', 'CHANGELOG.md', 'SECURITY.md'],
  dependencies: pkg.dependencies,
  bundleDependencies: Object.keys(pkg.dependencies),
};
fs.writeFileSync(path.join(STAGE, 'package.json'), JSON.stringify(published, null, 2) + '\n');

const out = execFileSync('npm', ['pack', '--json', '--pack-destination', OUT], {
  cwd: STAGE,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
});
const [info] = JSON.parse(out);
const tarball = path.join(OUT, info.filename);
const mb = (n) => (n / 1e6).toFixed(1);
process.stderr.write(
  `pack: ${copied} production packages bundled; ${info.entryCount} files, ${mb(info.size)} MB packed, ${mb(info.unpackedSize)} MB unpacked\n`,
);
process.stdout.write(tarball + '\n');
