// The package an approver installs without cloning anything: `make pack` (release/pack.mjs), then
// `npm install -g` of the tarball into a temporary prefix, offline and with an empty npm cache, so
// the install can only use what the tarball carries; and krew's install of the same archive. The installed `warden` and `kubectl-warden`
// then run as a user would run them, the sidecar included (a real PostgreSQL behind it).
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import YAML from 'yaml';
import { crmPolicy } from './support/stack';
import { freePort, startPgServer, type PgServer } from '../tools/pg-server';

const ROOT = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
};
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
/** What the installed package may weigh on disk (file sizes added up). Today ~43 MB; the full
 * runtime tree from the registry was ~110 MB and `npm install -g` of the unbundled pack ~150 MB. */
const INSTALLED_BUDGET_MB = 60;
const PACKED_BUDGET_MB = 8;

interface KrewPlugin {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: { version: string; platforms: Array<{ uri: string; sha256: string; bin: string; files: Array<{ from: string; to: string }> }> };
}

let work: string;
let tarball: string;
let prefix: string;
let install: SpawnSyncReturns<string>;

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, ...opts });
}

/** The installed commands, as a shell would find them on PATH. */
function warden(name: 'warden' | 'kubectl-warden', args: string[]): SpawnSyncReturns<string> {
  return run(path.join(prefix, 'bin', name), args, { cwd: work, env: { ...process.env, KUBECONFIG: path.join(work, 'no-kubeconfig') } });
}

function bytesUnder(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += bytesUnder(p);
    else if (e.isFile()) total += fs.statSync(p).size;
  }
  return total;
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-pack-'));
  const packed = run(process.execPath, [path.join(ROOT, 'release', 'pack.mjs'), '--out', path.join(work, 'out')], { cwd: ROOT });
  if (packed.status !== 0) throw new Error(`release/pack.mjs failed:\n${packed.stderr}`);
  tarball = packed.stdout.trim().split('\n').pop()!;
  prefix = path.join(work, 'prefix');
  const cache = path.join(work, 'empty-npm-cache');
  fs.mkdirSync(cache);
  install = run('npm', ['install', '-g', '--prefix', prefix, '--cache', cache, '--offline', '--no-audit', '--no-fund', tarball], {
    cwd: work,
  });
}, 600_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('npm pack (release/pack.mjs)', () => {
  test('the tarball holds the commands, the compiled code, the CRD schema and the license, and no tests, sources or dev files', () => {
    const listing = run('tar', ['tzf', tarball]);
    expect(listing.status).toBe(0);
    const files = listing.stdout.split('\n').filter(Boolean);
    expect(files).toEqual(
      expect.arrayContaining([
        'package/package.json',
        'package/bin/warden',
        'package/dist/cli/main.js',
        'package/dist/sidecar/main.js',
        'package/dist/operator/main.js',
        'package/crds/accesspolicy.yaml',
        'package/LICENSE',
        'package/README.md',
      ]),
    );
    const ours = files.filter((f) => !f.startsWith('package/node_modules/'));
    expect(ours.filter((f) => /\.test\.|\/test\/|\/bench\/|\/e2e\/|dist-dev|\.ts$|\.map$|\.tgz$/.test(f))).toEqual([]);
    expect(files.filter((f) => /\.d\.[cm]?ts$|\.map$/.test(f))).toEqual([]);
    const mb = fs.statSync(tarball).size / 1e6;
    process.stdout.write(`packed: ${mb.toFixed(1)} MB, ${files.length} files\n`);
    expect(mb).toBeLessThan(PACKED_BUDGET_MB);
  });

  test('the published package.json bundles the production dependencies and declares no dev ones or scripts', () => {
    const listing = run('tar', ['-xzOf', tarball, 'package/package.json']);
    const published = JSON.parse(listing.stdout) as Record<string, unknown>;
    expect(published).toMatchObject({ name: 'agent-warden', version: pkg.version, bin: pkg.bin });
    expect(published.devDependencies).toBeUndefined();
    expect(published.scripts).toBeUndefined();
    expect(published.private).toBeUndefined();
    expect([...(published.bundleDependencies as string[])].sort()).toEqual(Object.keys(published.dependencies as object).sort());
  });
});

describe('the krew plugin (krew/warden.yaml.tmpl over the same tarball)', () => {
  test('renders to a manifest whose archive, checksum and files give a working kubectl-warden', () => {
    const rendered = run(process.execPath, [
      path.join(ROOT, 'release', 'krew-manifest.mjs'),
      '--tag',
      `v${pkg.version}`,
      '--tarball',
      tarball,
    ]);
    expect({ status: rendered.status, stderr: rendered.stderr }).toEqual({ status: 0, stderr: '' });
    const manifest = YAML.parse(rendered.stdout) as KrewPlugin;
    expect(manifest).toMatchObject({
      apiVersion: 'krew.googlecontainertools.github.com/v1alpha2',
      kind: 'Plugin',
      metadata: { name: 'warden' },
    });
    expect(manifest.spec.version).toBe(`v${pkg.version}`);
    const [platform] = manifest.spec.platforms;
    expect(manifest.spec.platforms).toHaveLength(1);
    // The release asset is the tarball uploaded as agent-warden-v<version>.tgz (release/RELEASING.md).
    expect(platform.uri).toBe(
      `https://github.com/agent-warden/agent-warden/releases/download/v${pkg.version}/agent-warden-v${pkg.version}.tgz`,
    );
    expect(platform.sha256).toBe(createHash('sha256').update(fs.readFileSync(tarball)).digest('hex'));
    // What krew does: unpack the archive, move `files` into the plugin's folder, link `bin` as kubectl-warden.
    const unpacked = path.join(work, 'krew-download');
    const store = path.join(work, 'krew-store');
    fs.mkdirSync(unpacked);
    fs.mkdirSync(store);
    expect(run('tar', ['-xzf', tarball, '-C', unpacked]).status).toBe(0);
    for (const { from, to } of platform.files) {
      expect(from.endsWith('/*')).toBe(true);
      const dir = path.join(unpacked, from.slice(0, -2));
      for (const name of fs.readdirSync(dir)) fs.renameSync(path.join(dir, name), path.join(store, to, name));
    }
    expect(fs.existsSync(path.join(store, 'LICENSE'))).toBe(true);
    const link = path.join(work, 'krew-bin', 'kubectl-warden');
    fs.mkdirSync(path.dirname(link));
    fs.symlinkSync(path.join(store, platform.bin), link);
    const version = run(link, ['--version'], { cwd: work });
    expect({ status: version.status, out: version.stdout.trim() }).toEqual({ status: 0, out: pkg.version });
    // Run as kubectl-warden, the approval commands speak Kubernetes.
    const help = run(link, ['approvals', '--help'], { cwd: work });
    expect(help.status).toBe(0);
    expect(help.stdout + help.stderr).toContain('kubectl warden approve NAME');
  });
});

describe('npm install -g of the tarball (offline, empty cache: nothing fetched)', () => {
  test('installs from the tarball alone, without dev dependencies, within the size budget', () => {
    expect({ status: install.status, stderr: install.stderr }).toMatchObject({ status: 0 });
    const installed = path.join(prefix, 'lib', 'node_modules', 'agent-warden');
    // Dev-only packages as the lock file marks them (some @types packages are production dependencies of
    // @kubernetes/client-node and others, so they travel, emptied of their declarations).
    const devOnly = Object.entries(lock.packages).filter(([key, e]) => key.startsWith('node_modules/') && e.dev);
    expect(devOnly.length).toBeGreaterThan(100);
    expect(devOnly.map(([key]) => key).filter((key) => fs.existsSync(path.join(installed, key)))).toEqual([]);
    const mb = bytesUnder(installed) / 1e6;
    process.stdout.write(`installed: ${mb.toFixed(1)} MB\n`);
    expect(mb).toBeLessThan(INSTALLED_BUDGET_MB);
  });

  test('warden --version and kubectl-warden print the version', () => {
    for (const name of ['warden', 'kubectl-warden'] as const) {
      const r = warden(name, ['--version']);
      expect({ name, status: r.status, stdout: r.stdout.trim() }).toEqual({ name, status: 0, stdout: pkg.version });
    }
  });

  test('kubectl-warden approvals --help explains approving, and exits 0', () => {
    const r = warden('kubectl-warden', ['approvals', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout + r.stderr).toContain('kubectl warden approve NAME');
  });

  test('warden validate judges policies with the shipped CRD schema', () => {
    const ok = warden('warden', ['validate', path.join(ROOT, 'examples', 'policy.yaml')]);
    expect({ status: ok.status, out: ok.stdout }).toMatchObject({ status: 0, out: expect.stringContaining('is valid') });
    const bad = warden('warden', ['validate', path.join(ROOT, 'examples', 'invalid-policy.yaml')]);
    expect(bad.status).toBe(1);
    expect(bad.stdout + bad.stderr).toContain('spec.');
  });

  test('warden demo (dev dependencies left out) says it needs a checkout, without a stack trace', () => {
    const r = warden('warden', ['demo']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('warden demo runs from a development checkout');
    expect(r.stderr).not.toContain('Require stack');
  });

  describe('warden sidecar from the installed package', () => {
    let pg: PgServer;
    beforeAll(async () => {
      pg = await startPgServer();
      const c = new Client({ connectionString: pg.url() });
      await c.connect();
      await c.query('CREATE DATABASE crm');
      await c.end();
    });
    afterAll(async () => {
      await pg?.stop();
    });

    test('serves a policy: queries pass, denied ones are refused by the parser worker, SIGTERM stops it', async () => {
      const listen = await freePort();
      const admin = await freePort();
      const secrets = path.join(work, 'secrets', 'crm-db');
      fs.mkdirSync(secrets, { recursive: true });
      fs.writeFileSync(path.join(secrets, 'username'), pg.user);
      fs.writeFileSync(path.join(secrets, 'password'), pg.password);
      const policy = path.join(work, 'policy.yaml');
      const rules = '  rules:\n    - name: no-ddl\n      action: deny\n      match: {sql: {statements: [DROP]}}\n';
      fs.writeFileSync(policy, crmPolicy(pg, rules).replace('listenPort: 15432', `listenPort: ${listen}`));
      const args = ['sidecar', '--policy', policy, '--secrets-dir', path.dirname(secrets), '--admin-addr', `127.0.0.1:${admin}`];
      const proc = spawn(path.join(prefix, 'bin', 'warden'), [...args, '--egress-addr', '127.0.0.1:0'], {
        cwd: work,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
      try {
        const deadline = Date.now() + 20_000;
        for (;;) {
          const up = await fetch(`http://127.0.0.1:${admin}/readyz`).then(
            (r) => r.status === 200,
            () => false,
          );
          if (up) break;
          if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`the sidecar did not become ready:\n${output}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        const c = new Client({ connectionString: `postgresql://anyone@127.0.0.1:${listen}/crm` });
        await c.connect();
        expect((await c.query('SELECT 40 + 2 AS n')).rows[0].n).toBe(42);
        await expect(c.query('DROP TABLE nothing')).rejects.toMatchObject({ code: '42501' });
        await c.end();
        proc.kill('SIGTERM');
        expect(await exited).toBe(0);
        expect(output).not.toContain(pg.password);
      } finally {
        proc.kill('SIGKILL');
      }
    }, 60_000);
  });
});
