// `warden validate`: the options; cli/validate.ts runs it.
import { Command } from 'commander';
import { outputOption, type OutputFormat } from '../output';
import type { CommandFactory } from './factory';

export const validateCommand: CommandFactory = (ctx, exit) =>
  new Command('validate')
    .summary('check AccessPolicy YAML offline against the CRD schema')
    .description(
      'Check AccessPolicy YAML offline against the CRD schema and the rules a schema cannot say. ' +
        'Reads multi-document YAML and `kind: List` (as kubectl get -o yaml prints); other kinds are skipped. ' +
        'A DIR is searched for *.yaml, *.yml and *.json as kubectl apply -f DIR reads them (not recursively); - reads standard input.\n\n' +
        'Exit code: 0 all valid, 1 something invalid (or no AccessPolicy in an input), 2 usage or unreadable input.',
    )
    .argument('<input...>', 'FILE, DIR or - (standard input)')
    .addOption(outputOption())
    .option('--allow-empty', 'an input with no AccessPolicy is not an error')
    .action(async (inputs: string[], o: { output: OutputFormat; allowEmpty?: boolean }) => {
      const { runValidate } = await import('../validate');
      exit(await runValidate(inputs, o, ctx.io));
    });
