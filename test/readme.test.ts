// The README and the docs are what a platform engineer pastes from: every link to a repository
// file must resolve (anchors included), every `make` target a shell block runs must exist, every
// `warden` command line must parse with the real command tree, every repository path a command
// names must be there, and every AccessPolicy shown must validate.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import YAML from 'yaml';
import { buildProgram, commanderExitCode } from '../cli/program';
import { validateAccessPolicy } from '../common/policy/schema';

const ROOT = path.resolve(__dirname, '..');

/** The Markdown pages users read: the README, docs/, and the READMEs of examples/. */
function pages(): string[] {
  const out = ['README.md', 'CONTRIBUTING.md', 'SECURITY.md'];
  const walk = (dir: string): void => {
    if (!fs.existsSync(path.join(ROOT, dir))) return;
    for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.md') && (dir.startsWith('docs') || e.name === 'README.md')) out.push(rel);
    }
  };
  walk('docs');
  walk('examples');
  return out;
}

interface Block {
  lang: string;
  body: string;
}

function fencedBlocks(md: string): Block[] {
  return [...md.matchAll(/^( *)```([\w-]*)[^\n]*\n([\s\S]*?)^\1```/gm)].map((m) => ({ lang: m[2], body: m[3] }));
}

/** The prose: fenced blocks and code spans removed, so a link shown as code is not followed. */
function prose(md: string): string {
  return md.replace(/^( *)```[\s\S]*?^\1```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(md: string): Set<string> {
  const ids = new Set<string>();
  const seen = new Map<string, number>();
  const text = md.replace(/^( *)```[\s\S]*?^\1```/gm, '');
  for (const m of text.matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = m[1]
      .replace(/`/g, '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    ids.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of text.matchAll(/<a (?:id|name)="([^"]+)"/g)) ids.add(m[1]);
  return ids;
}

function read(rel: string): string {
  return fs.readFileSync(path.join(ROOT, rel), 'utf8');
}

describe.each(pages())('%s', (page) => {
  const md = read(page);

  test('links to repository files resolve, anchors included', () => {
    const broken: string[] = [];
    for (const m of prose(md).matchAll(/\]\(([^)\s]+)(?: "[^"]*")?\)/g)) {
      const href = m[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(href)) continue; // https:, mailto:
      const [file, anchor] = href.split('#');
      const target = file === '' ? page : path.normalize(path.join(path.dirname(page), decodeURIComponent(file)));
      if (target.startsWith('..') || !fs.existsSync(path.join(ROOT, target))) {
        broken.push(`${href} (no ${target})`);
        continue;
      }
      if (anchor !== undefined && target.endsWith('.md') && !anchors(read(target)).has(anchor))
        broken.push(`${href} (no heading #${anchor} in ${target})`);
    }
    expect(broken).toEqual([]);
  });

  test('shell blocks run make targets that exist and name repository paths that exist', () => {
    const targets = makeTargets();
    const missing: string[] = [];
    for (const block of fencedBlocks(md).filter((b) => ['sh', 'bash', 'shell', 'console'].includes(b.lang))) {
      for (const line of commandLines(block.body)) {
        for (const m of line.matchAll(/(?:^|[;&|(]\s*)make((?:\s+[A-Za-z][\w-]*)+)/g)) {
          for (const t of m[1].trim().split(/\s+/)) if (!targets.has(t)) missing.push(`make ${t}`);
        }
        for (const word of line.split(/[\s=]+/)) {
          const p = word.replace(/^\.\//, '').replace(/[,;)]+$/, '');
          if (!REPO_PATH.test(p) || /[<>*$]/.test(p)) continue;
          if (!fs.existsSync(path.join(ROOT, p))) missing.push(p);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  test('warden command lines in shell blocks parse with the real command tree', async () => {
    const wrong: string[] = [];
    for (const block of fencedBlocks(md).filter((b) => ['sh', 'bash', 'shell', 'console'].includes(b.lang))) {
      for (const line of commandLines(block.body)) {
        for (const call of wardenInvocations(line)) {
          const error = await parseError(call.invokedAs, call.args);
          if (error !== undefined) wrong.push(`${line}: ${error}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  test('every AccessPolicy shown validates', () => {
    for (const block of fencedBlocks(md).filter((b) => b.lang === 'yaml')) {
      if (!/^kind: AccessPolicy$/m.test(block.body)) continue;
      for (const doc of YAML.parseAllDocuments(block.body)) {
        const result = validateAccessPolicy(doc.toJS());
        if (!result.ok) throw new Error(`an AccessPolicy in ${page} is invalid: ${JSON.stringify(result.errors)}\n${block.body}`);
      }
    }
  });
});

/** Paths into the repository as commands name them (examples/policy.yaml, charts/agent-warden, ./bin/warden). */
const REPO_PATH = /^(bin|charts|crds|docs|e2e|examples|krew|release|tools|bench|test)\/[\w./-]*$/;

/** A block's commands, one per line: comments dropped, continuation lines joined. */
function commandLines(body: string): string[] {
  return body
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter((l) => l !== '');
}

/** The `warden` invocations of a shell line, as argument lists (brackets of optional parts removed). */
function wardenInvocations(line: string): { invokedAs: string; args: string[] }[] {
  const out: { invokedAs: string; args: string[] }[] = [];
  // <placeholders> stand for one word; a bare > or | ends the command.
  const words = line.replace(/<[\w-]+>/g, 'PLACEHOLDER');
  for (const m of words.matchAll(/(?:^|[\s;&|(])(\.\/bin\/warden|bin\/warden|kubectl warden|kubectl-warden|warden)\s+([^|;&>)#]*)/g)) {
    const args = (m[2].match(/'[^']*'|"[^"]*"|\S+/g) ?? [])
      .map((t) => t.replace(/^\[+|\]+$/g, '').replace(/^(['"])(.*)\1$/, '$2'))
      .filter((t) => t !== '' && t !== '...');
    out.push({ invokedAs: m[1].startsWith('kubectl') ? 'kubectl-warden' : 'warden', args });
  }
  return out;
}

/** Parses `args` with the real command tree, every action replaced by nothing: the error commander gives, or undefined. */
async function parseError(invokedAs: string, args: string[]): Promise<string | undefined> {
  const errors: string[] = [];
  const ctx = {
    io: { stdout: (): void => undefined, stderr: (s: string): void => void errors.push(s) },
    env: {},
    invokedAs,
    signals: new EventEmitter(),
  };
  const program = buildProgram(ctx, () => undefined);
  const silence = (cmd: Command): void => {
    if (cmd.commands.length === 0) cmd.action(() => undefined);
    cmd.commands.forEach(silence);
  };
  silence(program);
  try {
    await program.parseAsync(args, { from: 'user' });
    return undefined;
  } catch (e) {
    if (e instanceof CommanderError && commanderExitCode(e) === 0) return undefined;
    return errors.join(' ').trim() || String(e);
  }
}

/** The Makefile's targets (rules at the start of a line, `name:` or `name: deps`). */
function makeTargets(): Set<string> {
  return new Set([...read('Makefile').matchAll(/^([A-Za-z][\w-]*)\s*:(?!=)/gm)].map((m) => m[1]));
}

test('the README keeps the users’ order: what, quickstart, install, policy, approve, traces, troubleshoot, then development', () => {
  const headings = [...read('README.md').matchAll(/^## (.+)$/gm)].map((m) => m[1]);
  expect(headings).toEqual([
    'Quickstart',
    'Install on Kubernetes',
    'Write a policy',
    'Approve held operations',
    'Traces, metrics and dashboards',
    'Troubleshoot',
    'Development',
    'Testing',
    'Benchmarks',
  ]);
});

test('the README says nothing stale: the operator is not "in progress", and shell line continuations are whole', () => {
  const md = read('README.md');
  expect(md).not.toMatch(/in progress/i);
  // A command continued with `\` must not have a line without one in its middle (a comment after
  // an unescaped line ends the command there): every line that starts with an env assignment and
  // is followed by another such line carries the continuation.
  for (const block of fencedBlocks(md).filter((b) => b.lang === 'sh')) {
    const lines = block.body.split('\n');
    for (let i = 0; i + 1 < lines.length; i++) {
      const assignsOnly = /^[A-Z_][A-Z0-9_]*=\S*(\s+#.*)?$/.test(lines[i].trim());
      if (assignsOnly) expect(`${lines[i]} ⏎ ${lines[i + 1]}`).toMatch(/^export |\\ ⏎/);
    }
  }
});

test('the image tags the README names are the version make image builds', () => {
  const version = (JSON.parse(read('package.json')) as { version: string }).version;
  const tags = [...read('README.md').matchAll(/agent-warden:(\d+\.\d+\.\d+)/g)].map((m) => m[1]);
  expect(tags.length).toBeGreaterThan(0);
  expect(tags.filter((t) => t !== version)).toEqual([]);
});
