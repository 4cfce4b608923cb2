// The shape of every command definition: options and help here, the work behind a lazy import, so
// `--help`, completion and the docs load nothing a command needs only when it runs.
import type { Command } from 'commander';
import type { CliContext } from '../context';

/** `exit` records the command's exit code (0 done, 1 failed, 2 usage). */
export type CommandFactory = (ctx: CliContext, exit: (code: number) => void) => Command;
