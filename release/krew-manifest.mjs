#!/usr/bin/env node
// Renders krew/warden.yaml.tmpl for one release, as krew-release-bot would: `{{ .TagName }}` becomes
// the tag and `{{ addURIAndSha "URL" .TagName }}` the archive's uri and sha256 (of the local file
// that is uploaded to URL). Prints the manifest for a pull request to kubernetes-sigs/krew-index.
//
//   node release/krew-manifest.mjs --tag v0.1.0 --tarball .tmp/pack/agent-warden-0.1.0.tgz
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    tag: { type: 'string' },
    tarball: { type: 'string' },
    template: { type: 'string', default: path.join(ROOT, 'krew', 'warden.yaml.tmpl') },
  },
});
if (!values.tag || !/^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(values.tag) || !values.tarball) {
  process.stderr.write(
    'usage: node release/krew-manifest.mjs --tag vX.Y.Z --tarball FILE.tgz (krew wants a v-prefixed semantic version)\n',
  );
  process.exit(2);
}
const tag = values.tag;
const sha256 = createHash('sha256').update(fs.readFileSync(values.tarball)).digest('hex');

const rendered = fs
  .readFileSync(values.template, 'utf8')
  .replace(/^(\s*)\{\{\s*addURIAndSha\s+"([^"]+)"\s+\.TagName\s*\}\}\s*$/gm, (_m, indent, url) => {
    const uri = url.replace(/\{\{\s*\.TagName\s*\}\}/g, tag);
    return `${indent}uri: ${uri}\n${indent}sha256: ${sha256}`;
  })
  .replace(/\{\{\s*\.TagName\s*\}\}/g, tag);
if (/\{\{|\}\}/.test(rendered.replace(/^#.*$/gm, ''))) {
  process.stderr.write('krew-manifest: the template holds a placeholder this script does not know\n');
  process.exit(1);
}
process.stdout.write(rendered.replace(/^#.*\n/gm, ''));
