// `warden operator`: the options; operator/cli.ts runs it.
import { Command } from 'commander';
import { CliError, EXIT_FAILURE } from '../context';
import { kubeconfigProblem } from '../kubeconfig';
import type { CommandFactory } from './factory';

interface OperatorOptions {
  kubeconfig?: string;
  config?: string;
  adminAddr: string;
  namespace?: string;
}

export const operatorCommand: CommandFactory = (ctx, exit) =>
  new Command('operator')
    .summary('run the controller and the admission webhooks (in the cluster, or against a kubeconfig)')
    .description('Run the controller and the admission webhooks. Runs until SIGTERM or SIGINT, then stops gracefully.')
    .option('--kubeconfig <file>', 'cluster credentials (default: in-cluster, else KUBECONFIG or ~/.kube/config)')
    .option('--config <file>', 'operator configuration YAML (the chart mounts /etc/warden-operator/config.yaml)')
    .option('--admin-addr <host:port>', '/healthz, /readyz and /metrics', '0.0.0.0:8080')
    .option('--namespace <ns>', "the operator's own namespace, for its Lease and webhook Secret (default: $POD_NAMESPACE)")
    .action(async (o: OperatorOptions) => {
      const problem = kubeconfigProblem({ explicit: o.kubeconfig, env: ctx.env });
      if (problem) throw new CliError(problem, EXIT_FAILURE);
      const { runOperator } = await import('../../operator/cli');
      exit(await runOperator(o, ctx.io, ctx.signals));
    });
