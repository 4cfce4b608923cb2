// `warden sidecar`: starts the data path for one AccessPolicy and runs until SIGTERM/SIGINT.
import fs from 'node:fs';
import { CliError, type CliContext } from './context';
import { cannotRead } from './fs-errors';

export interface SidecarOptions {
  policy: string;
  secretsDir?: string;
  adminAddr: string;
  egressAddr: string;
  localApprovals?: boolean;
  healthAddr?: string;
  spoolDir?: string;
  spoolMaxBytes?: number;
  kubernetesKeys?: string;
}

/** Exit code: 0 after a graceful stop, 1 when the policy cannot be loaded. */
export async function runSidecar(o: SidecarOptions, ctx: CliContext): Promise<number> {
  try {
    fs.readFileSync(o.policy); // a clear "cannot read FILE" before anything starts
  } catch (e) {
    throw new CliError(cannotRead(o.policy, e));
  }
  const { startSidecar } = await import('../sidecar/main');
  const { PolicyLoadError } = await import('../common/policy/load');
  let running;
  try {
    running = await startSidecar({
      policyFile: o.policy,
      secretsDir: o.secretsDir,
      adminAddr: o.adminAddr,
      egressAddr: o.egressAddr,
      localApprovals: o.localApprovals === true,
      healthAddr: o.healthAddr,
      spoolDir: o.spoolDir ?? (ctx.env.WARDEN_SPOOL_DIR || undefined),
      spoolMaxBytes: o.spoolMaxBytes,
      ...(o.kubernetesKeys !== undefined ? { clusterKeysFile: o.kubernetesKeys } : {}),
    });
  } catch (err) {
    if (err instanceof PolicyLoadError) {
      ctx.io.stderr(err.message);
      return 1;
    }
    // A missing secrets or spool directory: say which path, not a raw errno message.
    const errno = err as NodeJS.ErrnoException;
    if (typeof errno.code === 'string' && typeof errno.path === 'string') throw new CliError(cannotRead(errno.path, err));
    throw err;
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      running.stop(10_000).then(resolve, resolve);
    };
    ctx.signals.once('SIGTERM', stop);
    ctx.signals.once('SIGINT', stop);
  });
  return 0;
}
