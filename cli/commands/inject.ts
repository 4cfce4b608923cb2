// `warden inject`: the options; cli/inject.ts runs it.
import { Command, Option } from 'commander';
import { required } from '../context';
import type { InjectCliOptions } from '../inject';
import type { CommandFactory } from './factory';

export const injectCommand: CommandFactory = (ctx, exit) =>
  new Command('inject')
    .summary('print a manifest with the sidecar injected, as the webhook would')
    .description(
      'Print the manifest with the sidecar injected into every Pod and workload pod template a policy selects, ' +
        'through the same code the admission webhook runs. Other documents pass through unchanged. ' +
        'For GitOps pipelines and for seeing what the webhook would do.',
    )
    .option('-f, --filename <file>', 'manifest to inject, required (multi-document YAML or JSON; - for standard input)')
    .option(
      '--policy <file>',
      'AccessPolicy YAML, required (repeatable; a file may hold several policies)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--image <image>', 'sidecar image (default: ghcr.io/agent-warden/agent-warden:<this version>)')
    .option('-n, --namespace <ns>', 'namespace of objects that name none (default: the policies\' namespace, else "default")')
    .option('--lockdown', 'add the egress lockdown init container to every injected pod')
    .addOption(new Option('-o, --output <format>', 'the manifest as yaml or json').choices(['yaml', 'json']).default('yaml'))
    .action(async (o: Partial<InjectCliOptions> & Pick<InjectCliOptions, 'output'>) => {
      const filename = required(o.filename, '-f FILE');
      const policy = required(o.policy, '--policy FILE');
      const { runInject } = await import('../inject');
      exit(await runInject({ ...o, filename, policy }, ctx.io));
    });
