// docs/cli.md, generated from the command tree: every command's --help as the user sees it, so the
// page cannot drift from the code (cli/cli-doc.test.ts fails when it is out of date).
// Regenerate: npx tsc -p tsconfig.json && node dist/cli/cli-doc.js
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { findRepoRoot } from '../common/policy/schema';
import { buildProgram, commandPath } from './program';

/** The width help is wrapped at on the page. */
const DOC_WIDTH = 100;

export const CLI_DOC_PATH = path.join('docs', 'cli.md');

const INTRO = `# The \`warden\` command

<!-- Generated from the command tree (cli/program.ts) by cli/cli-doc.ts; do not edit by hand.
     Regenerate: npx tsc -p tsconfig.json && node dist/cli/cli-doc.js -->

One command, also installed as \`kubectl-warden\` (so \`kubectl warden approve\` works): run the sidecar
or the operator, check and inject policies offline, decide held operations, replay the audit spool.

Every command and subcommand works the same way:

- \`--help\` / \`-h\` (or \`warden help COMMAND\`) prints help on standard output and exits 0; it starts
  nothing.
- A usage error (unknown command or option, missing argument, bad value) exits **2** with one line
  on standard error naming the command's \`--help\`. A failure (invalid policy, unreachable server,
  unreadable file) exits **1**; \`warden validate\` exits 2 for an unreadable input.
- \`-o table|json|yaml\` wherever something is listed (\`approvals list\`, \`approve\`/\`deny\`,
  \`replay\`, \`validate\`): \`table\` for people; \`json\` (one document: an array of the items) and
  \`yaml\` carry the same fields for programs. Hidden characters in recorded text (terminal escapes,
  bidi overrides) are escaped in every format.
- Kubernetes commands (\`operator\`, \`approvals\`/\`approve\`/\`deny\` in Kubernetes mode) use
  \`--kubeconfig\`, else \`KUBECONFIG\`, else \`~/.kube/config\`, else the in-cluster configuration, and
  say so in one line when there is none.
- \`warden --version\`, \`warden -V\` and \`warden version\` print the version.

Shell completion, generated from the same tree:

\`\`\`sh
source <(warden completion bash)                          # bash (add to ~/.bashrc)
source <(warden completion zsh)                           # zsh, after compinit (add to ~/.zshrc)
warden completion fish > ~/.config/fish/completions/warden.fish
\`\`\`

For \`kubectl warden\` (kubectl 1.26 and later complete a plugin through an executable named
\`kubectl_complete-warden\` on the PATH; the npm package installs it, elsewhere link it):

\`\`\`sh
ln -s "$(command -v kubectl-warden)" ~/.local/bin/kubectl_complete-warden   # a directory on your PATH
\`\`\`
`;

/** Every command's help, depth first, in the order the tree lists them. */
export function renderCliDoc(): string {
  let captured = '';
  const io = { stdout: (s: string) => void (captured += s), stderr: (s: string) => void (captured += s) };
  const program = buildProgram({ io, env: {}, invokedAs: 'warden', signals: process }, () => {}, { helpWidth: DOC_WIDTH });
  const sections: string[] = [];
  const visit = (cmd: Command): void => {
    captured = '';
    cmd.outputHelp();
    const name = commandPath(cmd);
    sections.push(`## ${name}\n\n\`\`\`text\n${captured.trimEnd()}\n\`\`\`\n`);
    for (const sub of cmd.commands) visit(sub);
  };
  visit(program);
  return `${INTRO}\n${sections.join('\n')}`;
}

if (require.main === module) {
  const file = path.join(findRepoRoot(), CLI_DOC_PATH);
  fs.writeFileSync(file, renderCliDoc());
  process.stdout.write(`wrote ${file}\n`);
}
