// Runs one `warden` command line and turns every outcome into an exit code and at most one error
// line: 0 done, 1 failed, 2 usage. Errors are printed once, prefixed once ("warden approve: ...").
import path from 'node:path';
import { CommanderError, type Command } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_USAGE, programName, type CliContext, type CliIo } from './context';
import { buildProgram, commandPath, commanderExitCode } from './program';
import { displaySafe } from '../common/display-escape';

/** The name kubectl looks for on PATH to complete `kubectl warden ...` (kubectl 1.26 and later). */
export const KUBECTL_COMPLETE = 'kubectl_complete-warden';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** argv[1]: `kubectl-warden` makes the approval commands speak Kubernetes. */
  invokedAs?: string;
  signals?: NodeJS.EventEmitter;
}

/** argv without node and the script: ['validate', 'policy.yaml']. */
export async function runCli(argv: string[], io: CliIo, opts: RunOptions = {}): Promise<number> {
  const ctx: CliContext = {
    io,
    env: opts.env ?? process.env,
    invokedAs: opts.invokedAs ?? process.argv[1] ?? 'warden',
    signals: opts.signals ?? process,
  };
  let code = 0;
  let running: Command | undefined;
  if (path.basename(ctx.invokedAs) === KUBECTL_COMPLETE) {
    // kubectl runs kubectl_complete-warden with the words after `kubectl warden` (the last is being completed)
    const { cobraOutput, completeWords, completionTree } = await import('./completion');
    const tree = completionTree(buildProgram({ ...ctx, invokedAs: 'kubectl-warden' }, () => {}));
    io.stdout(cobraOutput(completeWords(tree, argv)));
    return 0;
  }
  const program = buildProgram(ctx, (c) => (code = c));
  program.hook('preAction', (_root, action) => {
    running = action;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return commanderExitCode(e);
    const prefix = errorPrefix(running, ctx.invokedAs);
    const message = withoutPrefix((e as Error)?.message ?? String(e));
    const usage = e instanceof CliError && e.exitCode === EXIT_USAGE && running ? `; see '${commandPath(running)} --help'` : '';
    // Messages can carry what a server or the user sent (admin API errors, API server refusals, IDs): escaped.
    io.stderr(`${prefix}: ${displaySafe(message)}${usage}\n`);
    return e instanceof CliError ? e.exitCode : EXIT_FAILURE;
  }
}

/** "warden approvals" for `warden approvals list`: the command the user typed first. */
function errorPrefix(cmd: Command | undefined, invokedAs: string): string {
  let top = cmd;
  while (top?.parent?.parent) top = top.parent;
  return top ? `${programName(invokedAs)} ${top.name()}` : programName(invokedAs);
}

/** A message that already starts with "warden:" or "warden CMD:" is not prefixed twice. */
function withoutPrefix(message: string): string {
  return message.replace(/^(kubectl )?warden( [a-z-]+)?: /, '');
}

// The entry points the suites and the demo used before the one command line; each runs that command line.

export function runApprovalsCli(
  argv: string[],
  io: CliIo,
  env: NodeJS.ProcessEnv = process.env,
  opts: { invokedAs?: string } = {},
): Promise<number> {
  return runCli(argv, io, { env, invokedAs: opts.invokedAs ?? 'warden' });
}
