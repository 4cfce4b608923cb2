// `warden operator`: runs until SIGTERM/SIGINT, then stops gracefully (finish reconciles, release
// the Lease, close servers). The options are parsed by the `warden` command line (cli/).
import { OperatorConfigError } from './config';

export interface OperatorCliOptions {
  kubeconfig?: string;
  config?: string;
  adminAddr: string;
  namespace?: string;
}

export interface OperatorCliIo {
  stderr(s: string): void;
}

/** Exit code: 0 after a graceful stop, 1 when startup failed. */
export async function runOperator(opts: OperatorCliOptions, io: OperatorCliIo, signals: NodeJS.EventEmitter = process): Promise<number> {
  const { startOperator } = await import('./main');
  // Listen before starting: a SIGTERM during startup must still lead to a graceful stop.
  let requested!: () => void;
  const stopRequested = new Promise<void>((resolve) => (requested = resolve));
  signals.once('SIGTERM', requested);
  signals.once('SIGINT', requested);
  let running;
  try {
    running = await startOperator({
      kubeconfigPath: opts.kubeconfig,
      configPath: opts.config,
      adminAddr: opts.adminAddr,
      namespace: opts.namespace,
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
