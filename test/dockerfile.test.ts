// The Dockerfile cannot be built here (no Docker engine), so its promises are checked statically:
// multi-stage, non-root, nothing secret passed in, every copied path present and not ignored, and
// the copied sources self-contained with only production dependencies on the runtime path.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { builtinModules } from 'node:module';
import { SIDECAR_UID } from '../common/k8s/names';
import { SIDECAR_RUNTIME_ENV } from '../operator/inject/sidecar';

const ROOT = path.resolve(__dirname, '..');

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}
interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** Dockerfile text → instructions (continuations joined, comments dropped). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line) || (line.trim() === '' && !pending)) return;
    const continued = line.endsWith('\\');
    const body = continued ? line.slice(0, -1) : line;
    pending = pending ? { text: `${pending.text} ${body.trim()}`, line: pending.line } : { text: body.trim(), line: i + 1 };
    if (continued) return;
    const m = /^(\S+)\s*(.*)$/.exec(pending.text);
    if (m) out.push({ keyword: m[1].toUpperCase(), args: m[2], line: pending.line });
    pending = undefined;
  });
  return out;
}

function stages(instructions: Instruction[]): Stage[] {
  const result: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`line ${ins.line}: cannot parse FROM ${ins.args}`);
      result.push({ from: m[1], name: m[2], instructions: [] });
    } else {
      if (result.length === 0) throw new Error(`line ${ins.line}: ${ins.keyword} before the first FROM`);
      result[result.length - 1].instructions.push(ins);
    }
  }
  return result;
}

/** COPY/ADD arguments → flags, sources and destination (shell or JSON form). */
function copyArgs(args: string): { flags: string[]; sources: string[]; dest: string } {
  const words = args.trim().startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  return { flags, sources: paths.slice(0, -1), dest: paths[paths.length - 1] };
}

/** A minimal .dockerignore matcher: exact paths, leading path segments, `**` and `*` globs. */
function ignoredBy(patterns: string[], rel: string): boolean {
  return patterns.some((p) => {
    const body = p
      .split('**/')
      .map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*'))
      .join('(?:.*/)?');
    const re = new RegExp(`^${body}(?:/.*)?$`);
    return re.test(rel);
  });
}

function walk(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? walk(full) : [full];
  });
}

/** Module specifiers a TypeScript file loads at run time (type-only imports are erased). */
function runtimeImports(source: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /(?:^|\n)\s*(?:import|export)\s+(?!type\s)[^'";]*?\sfrom\s+['"]([^'"]+)['"]/g,
    /(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) specs.push(m[1]);
  return specs;
}

function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const instructions = parseDockerfile(dockerfile);
const allStages = stages(instructions);
const final = allStages[allStages.length - 1];
const dockerignore = fs
  .readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const contextCopies = instructions
  .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
  .map((i) => ({ ins: i, ...copyArgs(i.args) }))
  .filter((c) => !c.flags.some((f) => f.startsWith('--from')));
const copiedSourceDirs = contextCopies
  .flatMap((c) => c.sources)
  .filter((s) => fs.existsSync(path.join(ROOT, s)) && fs.statSync(path.join(ROOT, s)).isDirectory());

describe('parseDockerfile', () => {
  test('joins continuation lines and drops comments', () => {
    expect(parseDockerfile('FROM a AS b\n# note\nRUN x \\\n  && y\n\nUSER 1:1\n')).toEqual([
      { keyword: 'FROM', args: 'a AS b', line: 1 },
      { keyword: 'RUN', args: 'x && y', line: 3 },
      { keyword: 'USER', args: '1:1', line: 6 },
    ]);
  });
});

describe('Dockerfile', () => {
  test('is multi-stage: a named build stage, and a runtime stage from the same pinned Node LTS slim image', () => {
    expect(allStages.length).toBeGreaterThanOrEqual(2);
    expect(allStages[0].name).toBe('build');
    for (const s of allStages) expect(s.from).toMatch(/^node:24-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/);
    expect(final.name).toBeUndefined();
    // The runtime stage takes the build output, not the build tools.
    const fromBuild = final.instructions
      .filter((i) => i.keyword === 'COPY' && i.args.includes('--from=build'))
      .map((i) => copyArgs(i.args).dest);
    expect(fromBuild).toEqual(expect.arrayContaining(['./node_modules', './dist', './package.json']));
    const build = allStages[0].instructions.map((i) => i.args).join('\n');
    expect(build).toMatch(/npm prune --omit=dev/);
    expect(final.instructions.some((i) => i.keyword === 'RUN' && /\bnpm (install|ci)\b/.test(i.args))).toBe(false);
  });

  test('installs dependencies the way the Makefile does', () => {
    const makefile = fs.readFileSync(path.join(ROOT, 'Makefile'), 'utf8');
    const makeInstall = /\$\(NPM\) ((?:ci|install)\b[^\n]*)/.exec(makefile)?.[1].trim();
    expect(makeInstall).toBeDefined();
    expect(allStages[0].instructions.some((i) => i.keyword === 'RUN' && i.args.includes(`npm ${makeInstall}`))).toBe(true);
  });

  test(`runs as the non-root sidecar user ${SIDECAR_UID}, which exists in the image`, () => {
    const users = final.instructions.filter((i) => i.keyword === 'USER');
    expect(users.map((u) => u.args)).toEqual([`${SIDECAR_UID}:${SIDECAR_UID}`]);
    const userAt = final.instructions.indexOf(users[0]);
    // Nothing after USER runs as root, and the entrypoint comes after it.
    expect(final.instructions.slice(userAt).filter((i) => i.keyword === 'RUN')).toEqual([]);
    expect(final.instructions.findIndex((i) => i.keyword === 'ENTRYPOINT')).toBeGreaterThan(userAt);
    // A passwd entry, so os.userInfo() (local approvals, logs) works.
    expect(dockerfile).toContain(`useradd --uid ${SIDECAR_UID} --gid ${SIDECAR_UID}`);
  });

  test('the entrypoint is `warden` (exec form) on PATH, with iptables for the lockdown init container', () => {
    const entry = final.instructions.filter((i) => i.keyword === 'ENTRYPOINT');
    expect(entry.map((e) => JSON.parse(e.args))).toEqual([['warden']]);
    expect(dockerfile).toContain('ln -s /app/bin/warden /usr/local/bin/warden');
    expect(final.instructions.some((i) => i.keyword === 'RUN' && /apt-get install [^&]*\biptables\b/.test(i.args))).toBe(true);
    expect(final.instructions.filter((i) => i.keyword === 'HEALTHCHECK').map((i) => i.args)).toEqual(['NONE']);
  });

  test('sets the memory settings that keep sidecar RSS down', () => {
    const env = final.instructions
      .filter((i) => i.keyword === 'ENV')
      .map((i) => i.args)
      .join(' ');
    // The same settings as the injected sidecar container's env.
    for (const [name, value] of Object.entries(SIDECAR_RUNTIME_ENV)) expect(env).toContain(`${name}=${value}`);
  });

  test('node accepts the memory settings in NODE_OPTIONS (it refuses some V8 flags there, e.g. --liftoff-only)', () => {
    const r = spawnSync(process.execPath, ['-e', 'process.exit(0)'], { env: { ...process.env, ...SIDECAR_RUNTIME_ENV }, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  test('passes no secrets: no build ARGs, no secret-looking ENV, no credential files copied', () => {
    expect(instructions.filter((i) => i.keyword === 'ARG')).toEqual([]);
    for (const i of instructions.filter((x) => x.keyword === 'ENV'))
      expect(i.args).not.toMatch(/(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|CREDENTIAL)/i);
    for (const c of contextCopies) for (const s of c.sources) expect(s).not.toMatch(/(^|\/)(\.npmrc|\.env|secrets?)(\/|$)/);
    expect(dockerignore).toEqual(expect.arrayContaining(['.git', 'node_modules', 'dist', '.env', '.npmrc']));
  });

  test('every path it copies from the build context exists and is not excluded by .dockerignore', () => {
    expect(contextCopies.length).toBeGreaterThan(0);
    for (const c of contextCopies) {
      for (const src of c.sources) {
        expect({ src, exists: fs.existsSync(path.join(ROOT, src)), ignored: ignoredBy(dockerignore, src) }).toEqual({
          src,
          exists: true,
          ignored: false,
        });
      }
    }
    // The runtime layout findRepoRoot() and the sidecar's schema loader rely on.
    const finalCopies = final.instructions.filter((i) => i.keyword === 'COPY').map((i) => copyArgs(i.args));
    expect(finalCopies.map((c) => c.dest)).toEqual(expect.arrayContaining(['./crds', './bin', './package.json', './dist']));
  });

  test('the copied sources are self-contained: every relative import resolves inside what is copied', () => {
    const missing: string[] = [];
    for (const dir of copiedSourceDirs) {
      for (const file of walk(path.join(ROOT, dir)).filter((f) => f.endsWith('.ts'))) {
        const rel = path.relative(ROOT, file);
        if (ignoredBy(dockerignore, rel)) continue;
        for (const spec of runtimeImports(fs.readFileSync(file, 'utf8')).filter((s) => s.startsWith('.'))) {
          const base = path.resolve(path.dirname(file), spec);
          const target = ['.ts', '/index.ts', '.js', '.json', '']
            .map((ext) => base + ext)
            .find((p) => fs.existsSync(p) && fs.statSync(p).isFile());
          const targetRel = target && path.relative(ROOT, target);
          const inside =
            targetRel !== undefined &&
            copiedSourceDirs.some((d) => targetRel.startsWith(d + path.sep)) &&
            !ignoredBy(dockerignore, targetRel);
          if (!inside) missing.push(`${rel} imports ${spec}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  test('code reachable from the `warden` command imports only production dependencies (dev ones are pruned)', () => {
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const builtins = new Set(builtinModules);
    const offenders: string[] = [];
    // Follow relative imports (static and dynamic) from the CLI entry point. The demo (embedded
    // PostgreSQL, a dev dependency) is development-only and loaded lazily by `warden demo`.
    const queue = [path.join(ROOT, 'cli', 'main.ts')];
    const seen = new Set<string>();
    while (queue.length > 0) {
      const file = queue.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const rel = path.relative(ROOT, file);
      for (const spec of runtimeImports(fs.readFileSync(file, 'utf8'))) {
        if (spec.startsWith('.')) {
          if (rel === path.join('cli', 'commands', 'demo.ts') && spec === '../demo') continue;
          const base = path.resolve(path.dirname(file), spec);
          const target = ['.ts', '/index.ts'].map((ext) => base + ext).find((p) => fs.existsSync(p));
          if (target) queue.push(target);
          continue;
        }
        if (spec.startsWith('node:') || builtins.has(spec)) continue;
        const entry = lock.packages[`node_modules/${packageName(spec)}`];
        if (!entry || entry.dev) offenders.push(`${rel} imports ${spec} (${entry ? 'a dev dependency' : 'not installed'})`);
      }
    }
    expect(seen.size).toBeGreaterThan(20); // the sidecar's modules were reached
    expect(offenders).toEqual([]);
    const demoCommand = fs.readFileSync(path.join(ROOT, 'cli', 'commands', 'demo.ts'), 'utf8');
    expect(demoCommand).not.toMatch(/^import[^\n]*from '\.\.\/demo'/m);
  });
});
