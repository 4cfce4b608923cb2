// What every command gets: where to write, the environment, how it was invoked. Commands write
// through `io` (never process.stdout directly), so tests run them in-process and capture output.
import type { EventEmitter } from 'node:events';

export interface CliIo {
  /** Writes text to standard output; a missing final line break is added. */
  stdout(s: string): void;
  /** Writes text to standard error; a missing final line break is added. */
  stderr(s: string): void;
  /** The whole of standard input, for `-` arguments (default: process.stdin). */
  readStdin?: () => Promise<string>;
}

export interface CliContext {
  io: CliIo;
  env: NodeJS.ProcessEnv;
  /** The program name it runs as (argv[1]); `kubectl-warden` means the approval commands speak Kubernetes. */
  invokedAs: string;
  /** SIGTERM/SIGINT source for the long-running commands (sidecar, operator). */
  signals: EventEmitter;
}

/** The name shown in usage lines: `kubectl warden` when run as the kubectl plugin. */
export function programName(invokedAs: string): string {
  return invokedAs.replace(/^.*[\\/]/, '') === 'kubectl-warden' ? 'kubectl warden' : 'warden';
}

/** Exit codes every command uses. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A failure the user can act on: printed as one line (no stack), with the command's exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = EXIT_FAILURE,
  ) {
    super(message);
  }
}

export async function readProcessStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A required option, checked when the command runs: so an unknown option is reported first. */
export function required<T>(value: T | undefined, flag: string): T {
  if (value === undefined || (Array.isArray(value) && value.length === 0))
    throw new CliError(`missing required option ${flag}`, EXIT_USAGE);
  return value;
}
