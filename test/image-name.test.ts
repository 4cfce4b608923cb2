// One image name everywhere: ghcr.io/agent-warden/agent-warden when published, agent-warden:<tag>
// when built locally (make image, kind load, e2e). Code, chart, fixtures and docs once disagreed
// (…/warden, warden:1); this scans every checked-in text file for the odd ones out.
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { DEFAULT_IMAGE_REPOSITORY } from '../operator/inject/config';
import { E2E_IMAGE } from '../e2e/preflight';

const ROOT = path.resolve(__dirname, '..');
const IMAGE = 'ghcr.io/agent-warden/agent-warden';
const SKIP_DIRS = new Set(['node_modules', '.git', 'dist', 'dist-dev', 'coverage', '.cache']);
const SKIP_FILES = new Set(['package-lock.json', path.relative(ROOT, __filename)]);

/** Every text file of the checkout (build output, dependencies and the lock file aside). */
function textFiles(dir = ROOT, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) textFiles(full, out);
    } else if (entry.isFile() && !SKIP_FILES.has(path.relative(ROOT, full))) {
      const buf = fs.readFileSync(full);
      if (buf.length < 4 << 20 && !buf.includes(0)) out.push(full);
    }
  }
  return out;
}

// An image whose last path component is `warden` (`warden:1`, `registry/warden:0.2.0`), or another
// repository under the project's ghcr.io namespace.
const ODD_ONES: RegExp[] = [
  /(?:^|[\s'"(=:/`])((?:[a-z0-9.-]+(?::[0-9]+)?\/)*warden:(?:[A-Za-z0-9._-]|\$\{[A-Za-z0-9_.]+\})+)/g,
  /(ghcr\.io\/agent-warden\/(?!agent-warden\b)[a-z0-9._-]+)/g,
];

function oddOnes(text: string): string[] {
  return ODD_ONES.flatMap((re) => [...text.matchAll(re)].map((m) => m[1]));
}

describe('the image name', () => {
  test('the detector finds the names that used to disagree, and passes the right ones', () => {
    const odd = ['ghcr.io/agent-warden/', 'war', 'den:0.2.0'].join('');
    expect(oddOnes(`image: ${odd}`)).toContain(odd);
    expect(oddOnes(`sidecar: {image: ${'war'}den:1}`)).toEqual([`${'war'}den:1`]);
    expect(oddOnes(`WARDEN_E2E_IMAGE: 'registry.example/${'war'}den:1'`)).toEqual([`registry.example/${'war'}den:1`]);
    expect(oddOnes(`docker build -t ${'war'}den:dev .`)).toEqual([`${'war'}den:dev`]);
    expect(oddOnes('`ghcr.io/x/' + 'war' + 'den:${version}`')).toEqual(['ghcr.io/x/' + 'war' + 'den:${version}']);
    for (const fine of [
      `${IMAGE}:0.1.0`,
      `${IMAGE}@sha256:${'0'.repeat(64)}`,
      'docker build -t agent-warden:dev .',
      'kind load docker-image agent-warden:e2e',
      'system:serviceaccount:agent-warden:agent-warden-operator',
      'kubectl-warden: the plugin',
      'registry.example.com/warden-iptables:1.0', // a separate lockdown image of the user's choosing
      'warden: {}',
    ]) {
      expect({ fine, odd: oddOnes(fine) }).toEqual({ fine, odd: [] });
    }
  });

  test('no checked-in file names the image any other way', () => {
    const files = textFiles();
    expect(files.length).toBeGreaterThan(100);
    const found = files.flatMap((f) => {
      const text = fs.readFileSync(f, 'utf8');
      return oddOnes(text).map((name) => `${path.relative(ROOT, f)}: ${name}`);
    });
    expect(found).toEqual([]);
  });

  test('the chart, the operator default, the e2e image and the Dockerfile agree', () => {
    const values = YAML.parse(fs.readFileSync(path.join(ROOT, 'charts', 'agent-warden', 'values.yaml'), 'utf8')) as {
      image: { repository: string };
    };
    expect(values.image.repository).toBe(IMAGE);
    expect(DEFAULT_IMAGE_REPOSITORY).toBe(IMAGE);
    // Local builds are the same name without the registry.
    const local = IMAGE.split('/').at(-1);
    expect(E2E_IMAGE.split(':')[0]).toBe(local);
    const dockerTags = [...fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').matchAll(/-t\s+(\S+)/g)].map((m) => m[1]);
    for (const tag of dockerTags) expect(tag.split(':')[0].split('/').at(-1)).toBe(local);
    // The tag the chart defaults to is the package's version.
    const chart = YAML.parse(fs.readFileSync(path.join(ROOT, 'charts', 'agent-warden', 'Chart.yaml'), 'utf8')) as { appVersion: string };
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(chart.appVersion).toBe(pkg.version);
  });
});
