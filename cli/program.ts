// The `warden` command tree (commander). Every command and subcommand: --help/-h on stdout with
// exit 0 and nothing started; a usage error (unknown option or command, missing argument) exits 2
// with one line naming the command's --help. The commands themselves live in commands/*.ts.
import { Argument, Command, CommanderError } from 'commander';
import { approvalsCommand, approveCommand, denyCommand } from './commands/approvals';
import { demoCommand } from './commands/demo';
import type { CommandFactory } from './commands/factory';
import { injectCommand } from './commands/inject';
import { operatorCommand } from './commands/operator';
import { replayCommand } from './commands/replay';
import { sidecarCommand } from './commands/sidecar';
import { validateCommand } from './commands/validate';
import { COMPLETION_SHELLS, type CompletionShell } from './completion';
import { programName, type CliContext } from './context';
import { packageVersion } from './version';

const COMMANDS: CommandFactory[] = [
  sidecarCommand,
  operatorCommand,
  validateCommand,
  injectCommand,
  approvalsCommand,
  approveCommand,
  denyCommand,
  replayCommand,
  demoCommand,
];

export interface ProgramOptions {
  /** Fixed help width (the generated docs); default: the terminal's, else 80. */
  helpWidth?: number;
}

/** The whole tree; `exit` receives the exit code of the command that ran. */
export function buildProgram(ctx: CliContext, exit: (code: number) => void, opts: ProgramOptions = {}): Command {
  const version = packageVersion();
  const program = new Command(programName(ctx.invokedAs))
    .description('Agent Warden: a policy-enforcing sidecar and operator that put AI agents on a leash.')
    .version(version, '-V, --version', 'print the version')
    .helpCommand('help [command]', 'show help for a command');
  for (const make of COMMANDS) program.addCommand(make(ctx, exit));
  program.addCommand(
    new Command('version').description('print the version').action(() => {
      ctx.io.stdout(version);
      exit(0);
    }),
  );
  program.addCommand(
    new Command('completion')
      .summary('print a shell completion script (bash, zsh or fish)')
      .description(
        'Print a completion script for SHELL, generated from this command tree. Load it with:\n' +
          '  bash:  source <(warden completion bash)      (or save it under /etc/bash_completion.d/)\n' +
          '  zsh:   source <(warden completion zsh)       (after compinit)\n' +
          '  fish:  warden completion fish | source       (or save it as ~/.config/fish/completions/warden.fish)',
      )
      .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(COMPLETION_SHELLS))
      .action(async (shell: CompletionShell) => {
        const { completionScript } = await import('./completion');
        ctx.io.stdout(completionScript(shell, program));
        exit(0);
      }),
  );
  configureTree(program, ctx, opts);
  return program;
}

/** What commander's own commands would inherit from `.command()`, set on every node of the tree. */
function configureTree(cmd: Command, ctx: CliContext, opts: ProgramOptions): void {
  const where = commandPath(cmd);
  cmd
    .exitOverride()
    .helpOption('-h, --help', 'show help')
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false, showGlobalOptions: false, ...(opts.helpWidth ? { helpWidth: opts.helpWidth } : {}) })
    .configureOutput({
      writeOut: (s) => ctx.io.stdout(s),
      writeErr: (s) => ctx.io.stderr(s),
      getOutHelpWidth: () => (process.stdout.isTTY ? process.stdout.columns : 80),
      getErrHelpWidth: () => (process.stderr.isTTY ? process.stderr.columns : 80),
      // One line: commander's "error: unknown option '--x'\n(Did you mean --y?)" becomes
      // "warden sidecar: unknown option '--x' (Did you mean --y?); see 'warden sidecar --help'".
      outputError: (s, write) => write(`${where}: ${oneLine(s)}; see '${where} --help'\n`),
    });
  for (const sub of cmd.commands) configureTree(sub, ctx, opts);
}

export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function oneLine(message: string): string {
  return message
    .replace(/^error: /, '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ')
    .replace(/\.$/, '');
}

/** Exit code for commander's own outcomes: help and version are successes, the rest usage errors. */
export function commanderExitCode(e: CommanderError): number {
  if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
  // `warden help CMD` (exit code 0) or a bare `warden` (help on stderr, a usage error)
  if (e.code === 'commander.help') return e.exitCode === 0 ? 0 : 2;
  return 2;
}
