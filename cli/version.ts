// This build's version, from package.json (found from the source tree and from dist/ alike).
import fs from 'node:fs';
import path from 'node:path';
import { findRepoRoot } from '../common/policy/schema';

export function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(findRepoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}
