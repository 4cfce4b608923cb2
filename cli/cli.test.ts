// The built `warden` (bin/warden → dist/, as `make test` builds it) run as a user runs it: every
// command's help, usage errors and exit codes, stdin, the Kubernetes commands without a cluster, and
// shell completion sourced into a real bash. The command list comes from the tree itself, so a new
// command is covered without editing this file.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { buildProgram, commandPath } from './program';
import { packageVersion } from './version';

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'warden');
const EXAMPLE = path.join(ROOT, 'examples', 'policy.yaml');

let home: string;
beforeAll(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cli-home-'));
});
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

/** A clean environment: no kubeconfig, no cluster, an empty HOME. */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const { KUBECONFIG: _k, KUBERNETES_SERVICE_HOST: _h, WARDEN_TOKEN: _t, ...rest } = process.env;
  return { ...rest, HOME: home, ...extra };
}

function warden(args: string[], opts: { input?: string; bin?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(opts.bin ?? BIN, args, { encoding: 'utf8', input: opts.input ?? '', env: opts.env ?? env(), timeout: 30_000 });
}

/** Every command path in the tree, as words: [['sidecar'], ['approvals'], ['approvals', 'list'], ...]. */
function commandPaths(): string[][] {
  const program = buildProgram(
    { io: { stdout: () => undefined, stderr: () => undefined }, env: {}, invokedAs: 'warden', signals: process },
    () => {},
  );
  const out: string[][] = [];
  const walk = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      out.push(commandPath(sub).split(' ').slice(1));
      walk(sub);
    }
  };
  walk(program);
  return out;
}

const PATHS = commandPaths();

test('the tree has the commands the issue names', () => {
  expect(PATHS.map((p) => p.join(' '))).toEqual(
    expect.arrayContaining([
      'sidecar',
      'operator',
      'validate',
      'inject',
      'approvals',
      'approvals list',
      'approve',
      'deny',
      'replay',
      'demo',
      'version',
      'completion',
    ]),
  );
});

describe.each(PATHS.map((p) => [p.join(' '), p]))('warden %s', (name, words) => {
  test('--help and -h: usage on stdout, nothing on stderr, exit 0, nothing started', () => {
    for (const flag of ['--help', '-h']) {
      const r = warden([...words, flag]);
      expect({ flag, status: r.status, stderr: r.stderr }).toEqual({ flag, status: 0, stderr: '' });
      expect(r.stdout).toContain(`Usage: warden ${name}`);
    }
    // `warden help CMD`, `warden CMD help SUB`
    const viaHelp = warden([...words.slice(0, -1), 'help', words.at(-1)!]);
    expect({ status: viaHelp.status, stderr: viaHelp.stderr }).toEqual({ status: 0, stderr: '' });
    expect(viaHelp.stdout).toContain(`Usage: warden ${name}`);
  });

  test('an unknown option exits 2 with one line naming --help', () => {
    const r = warden([...words, '--no-such-option']);
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 2, stdout: '' });
    // `warden approvals` runs its default subcommand (list), which then names itself
    const handler = `${name}( [a-z]+)?`;
    expect(r.stderr).toMatch(new RegExp(`^warden ${handler}: unknown option '--no-such-option'; see 'warden ${handler} --help'\n$`));
  });
});

test('warden demo --help prints help only: the demo does not run', () => {
  const r = warden(['demo', '--help']);
  expect(r.status).toBe(0);
  expect(r.stdout).not.toMatch(/MASKED|DENIED|PostgreSQL started/);
});

test('the version: --version, -V and version print it alone', () => {
  for (const args of [['--version'], ['-V'], ['version']]) {
    const r = warden(args);
    expect({ args, status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
      args,
      status: 0,
      stdout: `${packageVersion()}\n`,
      stderr: '',
    });
  }
});

test('an unknown command exits 2 with one line; no command at all prints the help on stderr and exits 2', () => {
  const r = warden(['frobnicate']);
  expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
    status: 2,
    stdout: '',
    stderr: "warden: unknown command 'frobnicate'; see 'warden --help'\n",
  });
  const typo = warden(['valdate']);
  expect(typo.stderr).toBe("warden: unknown command 'valdate' (Did you mean validate?); see 'warden --help'\n");
  const none = warden([]);
  expect(none.status).toBe(2);
  expect(none.stdout).toBe('');
  expect(none.stderr).toContain('Usage: warden [options] [command]');
});

test('a missing argument, a missing required option and a bad -o value exit 2 with one line', () => {
  const cases: Array<[string[], string]> = [
    [['approve'], "warden approve: missing required argument 'name'; see 'warden approve --help'\n"],
    [['sidecar'], "warden sidecar: missing required option --policy FILE; see 'warden sidecar --help'\n"],
    [['inject', '--policy', EXAMPLE], "warden inject: missing required option -f FILE; see 'warden inject --help'\n"],
    [
      ['validate', '-o', 'xml', EXAMPLE],
      "warden validate: option '-o, --output <format>' argument 'xml' is invalid. Allowed choices are table, json, yaml; see 'warden validate --help'\n",
    ],
    [
      ['completion', 'tcsh'],
      "warden completion: command-argument value 'tcsh' is invalid for argument 'shell'. Allowed choices are bash, zsh, fish; see 'warden completion --help'\n",
    ],
  ];
  for (const [args, stderr] of cases) {
    const r = warden(args);
    expect({ args, status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ args, status: 2, stdout: '', stderr });
  }
});

test('errors name the file in words, once prefixed: no raw ENOENT, no "warden: warden:"', () => {
  const missing = path.join(home, 'missing.yaml');
  const cases: Array<[string[], number, string]> = [
    [['sidecar', '--policy', missing], 1, `warden sidecar: cannot read ${missing}: no such file\n`],
    [['validate', missing], 2, `cannot read ${missing}: no such file\n`],
    [['inject', '-f', missing, '--policy', EXAMPLE], 1, `warden inject: cannot read ${missing}: no such file\n`],
    [
      ['replay', '--list', '--spool-dir', missing],
      1,
      `warden replay: no audit spool at ${missing} (no such file); pass --spool-dir DIR or set WARDEN_SPOOL_DIR\n`,
    ],
    [['deny', 'x'], 2, "warden deny: needs --reason TEXT: the agent is told why; see 'warden deny --help'\n"],
  ];
  for (const [args, status, stderr] of cases) {
    const r = warden(args);
    expect({ args, status: r.status, stderr: r.stderr }).toEqual({ args, status, stderr });
    expect(r.stderr).not.toMatch(/ENOENT|EACCES|warden: warden|at .*\.js:\d+/);
  }
});

test('warden validate - reads standard input; a file with no AccessPolicy fails unless --allow-empty', () => {
  const text = fs.readFileSync(EXAMPLE, 'utf8');
  const ok = warden(['validate', '-'], { input: text });
  expect({ status: ok.status, stdout: ok.stdout, stderr: ok.stderr }).toEqual({
    status: 0,
    stdout: '<stdin>: AccessPolicy support-agent is valid\n',
    stderr: '',
  });
  const list = `apiVersion: v1\nkind: List\nitems:\n  - ${text
    .replace(/^#.*\n/gm, '')
    .trim()
    .replace(/\n/g, '\n    ')}\n`;
  const fromList = warden(['validate', '-', '-o', 'json'], { input: list });
  expect(fromList.status).toBe(0);
  expect(JSON.parse(fromList.stdout)).toEqual([
    expect.objectContaining({ source: '<stdin>', item: 1, name: 'support-agent', status: 'valid' }),
  ]);
  const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n';
  const empty = warden(['validate', '-'], { input: cm });
  expect({ status: empty.status, stderr: empty.stderr }).toEqual({
    status: 1,
    stderr: '<stdin>: no AccessPolicy found (only ConfigMap); pass --allow-empty if that is expected\n',
  });
  expect(warden(['validate', '-', '--allow-empty'], { input: cm }).status).toBe(0);
});

describe('Kubernetes commands without a kubeconfig', () => {
  const NO_CONFIG =
    'no Kubernetes configuration: set KUBECONFIG, pass --kubeconfig FILE, or create ~/.kube/config (in a pod, the in-cluster configuration is used)';
  const inCluster = fs.existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token');

  (inCluster ? test.skip : test)('say so in one line naming KUBECONFIG, exit 1', () => {
    for (const args of [
      ['approvals', '--kubernetes'],
      ['approve', 'x', '-n', 'agents'],
      ['deny', 'x', '--reason', 'no', '--kubernetes'],
      ['operator'],
    ]) {
      const r = warden(args);
      expect({ args, status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
        args,
        status: 1,
        stdout: '',
        stderr: `warden ${args[0]}: ${NO_CONFIG}\n`,
      });
    }
  });

  test('as kubectl-warden too; a KUBECONFIG that names a missing file is named', () => {
    const link = path.join(home, 'kubectl-warden');
    fs.symlinkSync(BIN, link);
    const r = warden(['approvals'], { bin: link, env: env({ KUBECONFIG: path.join(home, 'gone.yaml') }) });
    expect({ status: r.status, stderr: r.stderr }).toEqual({
      status: 1,
      stderr: `kubectl warden approvals: cannot read the kubeconfig ${path.join(home, 'gone.yaml')} (from KUBECONFIG): no such file\n`,
    });
    const help = warden(['approve', '--help'], { bin: link });
    expect(help.stdout).toContain('Usage: kubectl warden approve [options] <name>');
  });
});

describe('warden completion', () => {
  const script = (shell: string): string => {
    const r = warden(['completion', shell]);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    return r.stdout;
  };

  test.each(['bash', 'zsh', 'fish'])('%s: every command and subcommand of the tree appears', (shell) => {
    const text = script(shell);
    for (const words of PATHS) {
      const name = words.at(-1)!;
      // fish: -a 'NAME'; zsh: 'NAME:description'; bash: a word in a word list
      const pattern = shell === 'fish' ? `-a '${name}'` : shell === 'zsh' ? `'${name}:` : new RegExp(`['\\s]${name}['\\s]`);
      const found = typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
      expect({ command: words.join(' '), found }).toEqual({ command: words.join(' '), found: true });
    }
    expect(text).toContain('kubectl-warden');
  });

  /** What bash completes for the words typed so far (the last one is being completed). */
  function complete(line: string[]): string[] {
    const words = line.map((w) => `'${w}'`).join(' ');
    const r = spawnSync(
      'bash',
      [
        '-c',
        `source <("$WARDEN" completion bash) && COMP_WORDS=(${words}) && COMP_CWORD=${line.length - 1} && _warden && printf '%s\\n' "\${COMPREPLY[@]}"`,
      ],
      { encoding: 'utf8', env: env({ WARDEN: BIN }) },
    );
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    return r.stdout.split('\n').filter(Boolean).sort();
  }

  test('bash: sourced into a real bash, it completes commands, subcommands, options and their values', () => {
    const top = PATHS.filter((p) => p.length === 1).map((p) => p[0]);
    expect(complete(['warden', ''])).toEqual([...top, 'help'].sort());
    expect(complete(['warden', 'app'])).toEqual(['approvals', 'approve']);
    expect(complete(['warden', 'approvals', ''])).toEqual(['list']);
    expect(complete(['warden', 'approvals', 'list', '--all-'])).toEqual(['--all-namespaces']);
    expect(complete(['warden', 'validate', '--'])).toEqual(['--allow-empty', '--help', '--output']);
    expect(complete(['warden', 'validate', '-o', ''])).toEqual(['json', 'table', 'yaml']);
    expect(complete(['warden', 'replay', '--output', 'j'])).toEqual(['json']);
    expect(complete(['warden', 'completion', ''])).toEqual(['bash', 'fish', 'zsh']);
    expect(complete(['warden', 'help', 'sid'])).toEqual(['sidecar']);
    // an option's value is not taken for a command: `validate` here is the policy file's name
    expect(complete(['warden', 'sidecar', '--policy', 'validate', '--egress'])).toEqual(['--egress-addr']);
    // a file argument: nothing of ours, so bash falls back to file names (complete -o default)
    expect(complete(['warden', 'inject', '-f', ''])).toEqual([]);
    expect(complete(['kubectl-warden', 'ap'])).toEqual(['approvals', 'approve']);
    const registered = spawnSync('bash', ['-c', 'source <("$WARDEN" completion bash) && complete -p warden kubectl-warden'], {
      encoding: 'utf8',
      env: env({ WARDEN: BIN }),
    });
    expect(registered.stdout).toBe('complete -o default -F _warden warden\ncomplete -o default -F _warden kubectl-warden\n');
  });

  test('kubectl warden: as kubectl_complete-warden it answers in the protocol kubectl speaks to plugins', () => {
    const link = path.join(home, 'kubectl_complete-warden');
    fs.symlinkSync(BIN, link);
    const ask = (...words: string[]): string => {
      const r = warden(words, { bin: link });
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
      return r.stdout;
    };
    expect(ask('ap')).toBe('approvals\tlist held operations waiting for a decision\napprove\tapprove a held operation\n:4\n');
    expect(ask('approvals', 'list', '-o', '')).toBe('table\njson\nyaml\n:4\n');
    expect(ask('deny', 'x', '--re')).toBe('--reason\twhy, required (the agent is told)\n:4\n');
    expect(ask('validate', '')).toBe(':0\n'); // files
  });

  for (const shell of ['zsh', 'fish']) {
    const found = spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;
    (found ? test : test.skip)(`${shell}: the script parses (${found ? 'found' : `${shell} is not installed here`})`, () => {
      const file = path.join(home, `warden.${shell}`);
      fs.writeFileSync(file, script(shell));
      const r = spawnSync(shell, ['-n', file], { encoding: 'utf8' });
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    });
  }
});
