// docs/cli.md is the commands' own --help: regenerated here and compared, so it never drifts.
import fs from 'node:fs';
import path from 'node:path';
import { findRepoRoot } from '../common/policy/schema';
import { CLI_DOC_PATH, renderCliDoc } from './cli-doc';
import { buildProgram } from './program';

test('docs/cli.md is up to date (regenerate: npx tsc -p tsconfig.json && node dist/cli/cli-doc.js)', () => {
  const onDisk = fs.readFileSync(path.join(findRepoRoot(), CLI_DOC_PATH), 'utf8');
  expect(onDisk).toBe(renderCliDoc());
});

test('the page has a section for every command and subcommand', () => {
  const doc = renderCliDoc();
  const program = buildProgram(
    { io: { stdout: () => undefined, stderr: () => undefined }, env: {}, invokedAs: 'warden', signals: process },
    () => {},
  );
  for (const cmd of program.commands) {
    expect(doc).toContain(`## warden ${cmd.name()}\n`);
    for (const sub of cmd.commands) expect(doc).toContain(`## warden ${cmd.name()} ${sub.name()}\n`);
  }
  // help text that is added after the options (approvals' two modes, replay in a pod) is on the page too
  expect(doc).toContain('kubectl warden approve NAME [-n NAMESPACE] [--reason TEXT]');
  expect(doc).toContain('kubectl exec POD -c warden-sidecar -- warden replay --list');
});
