// `make image` (release/image.sh) cannot build here (no container engine runs on this machine or in
// CI), so it runs against stand-in `docker` and `podman` commands that record their arguments: the
// command lines are what a real engine would be given. With no engine, or one that does not answer,
// it must stop with a clear message before building anything.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const SCRIPT = path.join(ROOT, 'release', 'image.sh');
const IMAGE = 'ghcr.io/agent-warden/agent-warden:9.9.9';
const BASH = ['/bin/bash', '/usr/bin/bash'].find((p) => fs.existsSync(p))!;

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-image-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Engine {
  name: 'docker' | 'podman';
  /** `docker buildx version` succeeds. */
  buildx?: boolean;
  /** `<engine> info` succeeds (the daemon or machine answers). */
  answers?: boolean;
}

/** A PATH holding only the given stand-in engines (and mkdir); each call is logged as one line. */
function standIns(engines: Engine[]): { bin: string; calls: () => string[] } {
  const bin = fs.mkdtempSync(path.join(dir, 'bin-'));
  const log = path.join(bin, 'calls.log');
  for (const e of engines) {
    const script = [
      `#!${BASH}`,
      `echo "${e.name} $*" >> ${JSON.stringify(log)}`,
      `if [[ "$1" == info ]]; then exit ${e.answers === false ? 1 : 0}; fi`,
      `if [[ "$1 $2" == "buildx version" ]]; then exit ${e.buildx ? 0 : 1}; fi`,
      'exit 0',
    ].join('\n');
    fs.writeFileSync(path.join(bin, e.name), script + '\n', { mode: 0o755 });
  }
  const mkdir = ['/bin/mkdir', '/usr/bin/mkdir'].find((p) => fs.existsSync(p))!;
  fs.symlinkSync(mkdir, path.join(bin, 'mkdir'));
  const calls = (): string[] =>
    fs.existsSync(log)
      ? fs
          .readFileSync(log, 'utf8')
          .split('\n')
          .filter((l) => l && !/ (info|buildx version)$/.test(l))
      : [];
  return { bin, calls };
}

function makeImage(engines: Engine[], env: Record<string, string> = {}): { status: number | null; stderr: string; calls: string[] } {
  const { bin, calls } = standIns(engines);
  const r = spawnSync(BASH, [SCRIPT], { encoding: 'utf8', env: { PATH: bin, IMAGE, ...env } });
  return { status: r.status, stderr: r.stderr, calls: calls() };
}

describe('make image (release/image.sh)', () => {
  test('without a container engine it stops with a clear message', () => {
    const r = makeImage([]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/no container engine: install Docker .*or Podman/);
  });

  test('a docker CLI whose daemon does not answer stops it before any build', () => {
    const r = makeImage([{ name: 'docker', buildx: true, answers: false }]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('docker is installed but does not answer');
    expect(r.calls).toEqual([]);
  });

  test('docker with buildx: this platform, loaded into the engine (what kind load docker-image needs)', () => {
    const r = makeImage([{ name: 'docker', buildx: true }]);
    expect(r.status).toBe(0);
    expect(r.calls).toEqual([`docker buildx build --load -t ${IMAGE} ${ROOT}`]);
  });

  test('docker with buildx, multi-arch and pushed', () => {
    const r = makeImage([{ name: 'docker', buildx: true }], { IMAGE_PLATFORMS: 'linux/amd64,linux/arm64', IMAGE_PUSH: '1' });
    expect(r.status).toBe(0);
    expect(r.calls).toEqual([`docker buildx build --platform linux/amd64,linux/arm64 -t ${IMAGE} --push ${ROOT}`]);
  });

  test('docker with buildx, multi-arch not pushed: written as an OCI archive (a local engine cannot load it)', () => {
    const r = makeImage([{ name: 'docker', buildx: true }], { IMAGE_PLATFORMS: 'linux/amd64,linux/arm64' });
    expect(r.status).toBe(0);
    expect(r.calls).toEqual([
      `docker buildx build --platform linux/amd64,linux/arm64 -t ${IMAGE} --output type=oci,dest=${ROOT}/.tmp/image.oci.tar ${ROOT}`,
    ]);
  });

  test('docker without buildx: the classic build; multi-arch is refused, saying what it needs', () => {
    expect(makeImage([{ name: 'docker' }]).calls).toEqual([`docker build -t ${IMAGE} ${ROOT}`]);
    const multi = makeImage([{ name: 'docker' }], { IMAGE_PLATFORMS: 'linux/amd64,linux/arm64' });
    expect(multi.status).toBe(2);
    expect(multi.stderr).toContain('needs docker buildx');
    expect(multi.calls).toEqual([]);
  });

  test('podman when docker is absent, multi-arch through a manifest list, pushed', () => {
    const r = makeImage([{ name: 'podman' }], { IMAGE_PLATFORMS: 'linux/amd64,linux/arm64', IMAGE_PUSH: '1' });
    expect(r.status).toBe(0);
    expect(r.calls).toEqual([
      `podman build --platform linux/amd64,linux/arm64 --manifest ${IMAGE} ${ROOT}`,
      `podman manifest push --all ${IMAGE} docker://${IMAGE}`,
    ]);
  });

  test('CONTAINER_ENGINE picks podman over docker', () => {
    const r = makeImage([{ name: 'docker', buildx: true }, { name: 'podman' }], { CONTAINER_ENGINE: 'podman' });
    expect(r.calls).toEqual([`podman build -t ${IMAGE} ${ROOT}`]);
  });

  test('the Makefile names the image as the chart does, tagged with the package version', () => {
    const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const chart = fs.readFileSync(path.join(ROOT, 'charts', 'agent-warden', 'values.yaml'), 'utf8');
    const repository = /^image:\n(?:\s+#.*\n)*\s+repository:\s*(\S+)/m.exec(chart)?.[1];
    expect(repository).toBeDefined();
    const r = spawnSync('make', ['--no-print-directory', '-n', 'image'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(`IMAGE=${repository}:${version} bash release/image.sh`);
  });
});
