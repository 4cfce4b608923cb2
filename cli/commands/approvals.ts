// `warden approvals [list]`, `warden approve NAME`, `warden deny NAME`: the options; cli/approvals.ts
// runs them, against Kubernetes ApprovalRequest objects or a standalone sidecar's admin API.
import { Command } from 'commander';
import { outputOption } from '../output';
import type { ApprovalsOptions } from '../approvals';
import type { CommandFactory } from './factory';

const WHERE = `
Where the requests are:
  In Kubernetes: ApprovalRequest objects. The default when run as kubectl warden;
  as warden, add --kubernetes (or -n, -A, --context or --kubeconfig). You decide
  as the user your kubeconfig authenticates as; nobody decides their own request.
    kubectl warden approvals [list] [-n NAMESPACE | -A] [-o table|json|yaml] [--all]
    kubectl warden approve NAME [-n NAMESPACE] [--reason TEXT]
    kubectl warden deny NAME --reason TEXT [-n NAMESPACE]
  On a standalone sidecar: its admin API (--admin-addr, default 127.0.0.1:15000).
  The approver token comes from --token or WARDEN_TOKEN (sent as a Bearer token).
    warden approvals list [--admin-addr HOST:PORT] [--token TOKEN]
    warden approve ID [--reason TEXT] [--admin-addr HOST:PORT] [--token TOKEN]
    warden deny ID --reason TEXT [--admin-addr HOST:PORT] [--token TOKEN]`;

function withTargetOptions(cmd: Command, opts: { allNamespaces: boolean }): Command {
  cmd
    .option('--kubernetes', 'use ApprovalRequest objects in Kubernetes (the default as kubectl warden)')
    .option('-n, --namespace <ns>', "Kubernetes namespace (default: the kubeconfig context's, else default)");
  if (opts.allNamespaces) cmd.option('-A, --all-namespaces', 'Kubernetes: every namespace');
  return cmd
    .option('--context <name>', 'Kubernetes: the kubeconfig context to use')
    .option('--kubeconfig <file>', 'Kubernetes: the kubeconfig file (default: KUBECONFIG or ~/.kube/config)')
    .option('--admin-addr <host:port>', 'standalone sidecar: its admin API (default 127.0.0.1:15000)')
    .option('--token <token>', 'standalone sidecar: the approver token (default: $WARDEN_TOKEN)')
    .addOption(outputOption())
    .addHelpText('after', WHERE);
}

export const approvalsCommand: CommandFactory = (ctx, exit) => {
  const list = withTargetOptions(
    new Command('list').description('list held operations waiting for a decision').option('--all', 'include decided and expired requests'),
    { allNamespaces: true },
  ).action(async (o: ApprovalsOptions & { all: boolean }) => {
    const { listApprovals } = await import('../approvals');
    exit(await listApprovals(o, ctx));
  });
  return new Command('approvals')
    .summary('list held operations waiting for a decision')
    .description('Held operations waiting for a decision (`approvals` alone lists them).')
    .addCommand(list, { isDefault: true })
    .addHelpText('after', WHERE);
};

function decideCommand(verdict: 'approve' | 'deny'): CommandFactory {
  return (ctx, exit) =>
    withTargetOptions(
      new Command(verdict)
        .summary(verdict === 'approve' ? 'approve a held operation' : 'deny a held operation (the agent is told the reason)')
        .argument('<name>', 'the approval request: its NAME in Kubernetes, its ID on a sidecar')
        .option('--reason <text>', verdict === 'deny' ? 'why, required (the agent is told)' : 'why (recorded with the decision)'),
      { allNamespaces: false },
    ).action(async (name: string, o: ApprovalsOptions & { reason?: string }) => {
      const { decideApproval } = await import('../approvals');
      exit(await decideApproval({ verdict, name, reason: o.reason ?? '' }, o, ctx));
    });
}

export const approveCommand = decideCommand('approve');
export const denyCommand = decideCommand('deny');
