// `warden operator [--kubeconfig F] [--config F] [--admin-addr A] [--namespace NS]`: runs until
// SIGTERM/SIGINT, then stops gracefully (finish reconciles, release the Lease, close servers).
import { parseArgs } from 'node:util';
import { OperatorConfigError } from './config';

export const OPERATOR_USAGE =
  'Usage: warden operator [--kubeconfig FILE] [--config FILE] [--admin-addr HOST:PORT] [--namespace NS]\n' +
  '  --kubeconfig  cluster credentials (default: in-cluster, else KUBECONFIG or ~/.kube/config)\n' +
  '  --config      operator configuration YAML (the chart mounts /etc/warden-operator/config.yaml)\n' +
  '  --admin-addr  /healthz, /readyz and /metrics (default 0.0.0.0:8080)\n' +
  "  --namespace   the operator's own namespace, for its Lease and webhook Secret (default POD_NAMESPACE)";

export interface OperatorCliIo {
  stderr(s: string): void;
}

/** Exit code: 0 after a graceful stop, 1 when startup failed, 2 on a usage error. */
export async function runOperatorCli(argv: string[], io: OperatorCliIo, signals: NodeJS.EventEmitter = process): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: 'string' },
        config: { type: 'string' },
        'admin-addr': { type: 'string', default: '0.0.0.0:8080' },
        namespace: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    io.stderr(`warden operator: ${(e as Error).message}\n${OPERATOR_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stderr(OPERATOR_USAGE);
    return 0;
  }
  const { startOperator } = await import('./main');
  // Listen before starting: a SIGTERM during startup must still lead to a graceful stop.
  let requested!: () => void;
  const stopRequested = new Promise<void>((resolve) => (requested = resolve));
  signals.once('SIGTERM', requested);
  signals.once('SIGINT', requested);
  let running;
  try {
    running = await startOperator({
      kubeconfigPath: values.kubeconfig,
      configPath: values.config,
      adminAddr: values['admin-addr'],
      namespace: values.namespace,
    });
  } catch (e) {
    signals.removeListener('SIGTERM', requested);
    signals.removeListener('SIGINT', requested);
    io.stderr(e instanceof OperatorConfigError ? e.message : `warden operator: ${(e as Error).message}`);
    return 1;
  }
  await stopRequested;
  await running.stop();
  return 0;
}
