// Where the Kubernetes commands find a cluster, checked before any client loads: without one the
// client library silently falls back to http://localhost:8080 (or throws a raw ENOENT), so the user
// is told in one line instead, naming KUBECONFIG.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fsReason } from './fs-errors';

export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface KubeconfigCheck {
  /** --kubeconfig FILE, when given. */
  explicit?: string;
  env: NodeJS.ProcessEnv;
  /** For tests: whether the in-cluster token file exists. */
  inClusterToken?: () => boolean;
}

/** undefined when a kubeconfig (or the in-cluster config) is there to load; otherwise why not, in one line. */
export function kubeconfigProblem(check: KubeconfigCheck): string | undefined {
  const { explicit, env } = check;
  if (explicit !== undefined) return unreadable(explicit, '--kubeconfig');
  const listed = (env.KUBECONFIG ?? '').split(path.delimiter).filter(Boolean);
  if (listed.length > 0) {
    for (const f of listed) {
      const problem = unreadable(f, 'KUBECONFIG');
      if (problem) return problem;
    }
    return undefined;
  }
  if (env.KUBERNETES_SERVICE_HOST) return undefined; // in a pod: the in-cluster configuration
  const home = env.HOME || os.homedir();
  if (home && fs.existsSync(path.join(home, '.kube', 'config'))) return undefined;
  if ((check.inClusterToken ?? (() => fs.existsSync(SERVICE_ACCOUNT_TOKEN)))()) return undefined;
  return 'no Kubernetes configuration: set KUBECONFIG, pass --kubeconfig FILE, or create ~/.kube/config (in a pod, the in-cluster configuration is used)';
}

function unreadable(file: string, from: string): string | undefined {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    if (fs.statSync(file).isDirectory()) return `cannot read the kubeconfig ${file} (from ${from}): is a directory`;
    return undefined;
  } catch (e) {
    return `cannot read the kubeconfig ${file} (from ${from}): ${fsReason(e)}`;
  }
}
