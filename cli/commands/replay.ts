// `warden replay`: the options; cli/replay.ts runs it.
import { Command, Option } from 'commander';
import { OUTPUT_FORMATS } from '../output';
import type { ReplayOptions } from '../replay';
import type { CommandFactory } from './factory';

export const replayCommand: CommandFactory = (ctx, exit) =>
  new Command('replay')
    .summary('print a recorded session (or trace) from the audit spool, masked')
    .description(
      'Print the operations of a session (or of a trace id), in order, as recorded in the audit spool; ' +
        'with --list, the sessions in the spool. Records are masked when written: nothing here unmasks.',
    )
    .argument('[session]', 'a session id or a trace id (see --list)')
    .option('--list', 'list the sessions in the spool')
    .option('--spool-dir <dir>', 'the audit spool (default: $WARDEN_SPOOL_DIR, else /var/lib/warden/spool)')
    // "text" is what this option was called before -o meant the same everywhere.
    .addOption(
      new Option('-o, --output <format>', 'table for people (a session reads as text); json or yaml for programs')
        .choices([...OUTPUT_FORMATS, 'text'])
        .default('table'),
    )
    .addHelpText('after', '\nIn a pod:\n  kubectl exec POD -c warden-sidecar -- warden replay --list')
    .action(async (session: string | undefined, o: ReplayOptions) => {
      const { runReplay } = await import('../replay');
      exit(await runReplay(session, o, ctx));
    });
