// The `warden` command (also installed as `kubectl-warden`); bin/warden calls main().
import { runCli } from './run';

const io = {
  stdout: (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : s + '\n'),
  stderr: (s: string): void => void process.stderr.write(s.endsWith('\n') ? s : s + '\n'),
};

let quietOnClosedPipe = false;

/** argv without node and the script. Resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  if (!quietOnClosedPipe) {
    quietOnClosedPipe = true;
    // `warden --help | head`: the reader went away; that is not an error worth a stack trace.
    for (const stream of [process.stdout, process.stderr]) {
      stream.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code !== 'EPIPE') throw e;
        process.exit(process.exitCode ?? 0);
      });
    }
  }
  return runCli(argv, io);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: Error) => {
      process.stderr.write(`warden: ${err.message}\n`);
      process.exitCode = 1;
    },
  );
}
