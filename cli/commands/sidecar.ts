// `warden sidecar`: the options; cli/sidecar.ts runs it.
import { Command, InvalidArgumentError } from 'commander';
import { required } from '../context';
import type { SidecarOptions } from '../sidecar';
import type { CommandFactory } from './factory';

const MIN_SPOOL_BYTES = 1024 * 1024;

function spoolBytes(value: string): number {
  const n = Number(value);
  if (!(Number.isInteger(n) && n >= MIN_SPOOL_BYTES))
    throw new InvalidArgumentError('must be a whole number of bytes, at least 1048576 (1 MiB)');
  return n;
}

export const sidecarCommand: CommandFactory = (ctx, exit) =>
  new Command('sidecar')
    .summary('run the data path for one AccessPolicy (one sidecar per agent pod)')
    .description(
      'Run the data path for the AccessPolicy in FILE: PostgreSQL listeners, the HTTP egress proxy, MCP routes, ' +
        'approvals and audit. Runs until SIGTERM or SIGINT, then drains.',
    )
    .option('--policy <file>', 'the AccessPolicy YAML to enforce, required (reloaded when it changes)')
    .option('--secrets-dir <dir>', 'where the Secrets the policy names are mounted, one folder per Secret')
    .option('--admin-addr <host:port>', 'admin API: health, metrics, approvals', '127.0.0.1:15000')
    .option('--egress-addr <host:port>', 'HTTP egress proxy and named routes', '127.0.0.1:15001')
    .option('--local-approvals', 'loopback callers may decide holds as the local user (development and demos only)')
    .option('--health-addr <host:port>', 'serve only /healthz and /readyz here (kubelet probes reach the pod IP, not loopback)')
    .option(
      '--spool-dir <dir>',
      'audit records are written here before the agent sees a result, and kept until the OpenTelemetry collector (OTEL_EXPORTER_OTLP_ENDPOINT) acknowledges them (default: $WARDEN_SPOOL_DIR)',
    )
    .option(
      '--kubernetes-keys <file>',
      "spec.identity.kubernetes: the cluster's issuer and keys as the operator writes them (default: $WARDEN_KUBERNETES_KEYS, else kubernetes-keys.json next to the policy)",
    )
    .option('--spool-max-bytes <n>', 'bound on the spool (default 200 MiB); audit.whenSpoolFull says what happens when full', spoolBytes)
    .action(async (o: Omit<SidecarOptions, 'policy'> & { policy?: string }) => {
      const policy = required(o.policy, '--policy FILE');
      const { runSidecar } = await import('../sidecar');
      exit(await runSidecar({ ...o, policy }, ctx));
    });
