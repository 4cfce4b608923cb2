// A thin shell over the real tools (docker, kind, helm, kubectl) for the end-to-end suite. Every
// command runs with the suite's own KUBECONFIG, so it never touches the user's current context.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { K8sTools } from '../test/support/k8s-tools';
import type { E2ePlan } from './preflight';

export const ROOT = path.resolve(__dirname, '..');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Cluster {
  kubeconfig: string;
  tools: K8sTools;
  /** PATH with a `kubectl-warden` plugin (this checkout's bin/warden) and the extracted kubectl first. */
  env: NodeJS.ProcessEnv;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): RunResult {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    env: opts.env ?? process.env,
    input: opts.input,
    timeout: opts.timeoutMs ?? 300_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs and throws with the command's stderr when it fails. */
export function must(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): string {
  const r = run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`\`${path.basename(cmd)} ${args.join(' ')}\` exited ${r.code}:\n${r.stderr || r.stdout}`);
  return r.stdout;
}

/** A workspace with a kubeconfig file and a plugin folder so `kubectl warden` finds bin/warden. */
export function clusterEnv(tools: K8sTools, kubeconfigText?: string): Cluster {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-e2e-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  if (kubeconfigText !== undefined) fs.writeFileSync(kubeconfig, kubeconfigText, { mode: 0o600 });
  else fs.copyFileSync(process.env.KUBECONFIG || path.join(os.homedir(), '.kube', 'config'), kubeconfig);
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(path.join(ROOT, 'bin', 'warden'), path.join(bin, 'kubectl-warden'));
  fs.symlinkSync(tools.kubectl, path.join(bin, 'kubectl'));
  const env = { ...process.env, KUBECONFIG: kubeconfig, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` };
  return { kubeconfig, tools, env };
}

export function kubectl(c: Cluster, args: string[], input?: string): string {
  return must(c.tools.kubectl, args, { env: c.env, input });
}

export function kubectlJson<T>(c: Cluster, args: string[]): T {
  return JSON.parse(kubectl(c, [...args, '-o', 'json'])) as T;
}

export function helm(c: Cluster, args: string[]): string {
  return must(c.tools.helm, args, { env: c.env, timeoutMs: 600_000 });
}

/** `sh -c SCRIPT` in a container, so the container's own env ($DATABASE_URL) is expanded there. */
export function execIn(c: Cluster, target: { namespace: string; pod: string; container: string }, script: string): RunResult {
  return run(c.tools.kubectl, ['exec', '-n', target.namespace, target.pod, '-c', target.container, '--', 'sh', '-c', script], {
    env: c.env,
    timeoutMs: 120_000,
  });
}

/** The same, in the background: for a statement that waits on a human's approval. */
export function execInBackground(
  c: Cluster,
  target: { namespace: string; pod: string; container: string },
  script: string,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(c.tools.kubectl, ['exec', '-n', target.namespace, target.pod, '-c', target.container, '--', 'sh', '-c', script], {
      env: c.env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(
  what: string,
  check: () => T | undefined,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  let last: unknown;
  for (;;) {
    try {
      const value = check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 2_000));
  }
}

/**
 * The kind cluster of a kind plan, with the image built and loaded into it. `created` says whether
 * this call made the cluster (so the suite deletes it afterwards, unless asked to keep it).
 */
export function setUpKind(plan: Extract<E2ePlan, { mode: 'kind' }>): { cluster: Cluster; created: boolean } {
  const existing = must('kind', ['get', 'clusters']).split('\n').includes(plan.clusterName);
  if (!existing)
    must(
      'kind',
      ['create', 'cluster', '--name', plan.clusterName, '--config', path.join(__dirname, 'kind-config.yaml'), '--wait', '180s'],
      { timeoutMs: 600_000 },
    );
  must('docker', ['build', '-t', plan.image, ROOT], { timeoutMs: 1_200_000 });
  must('kind', ['load', 'docker-image', plan.image, '--name', plan.clusterName], { timeoutMs: 600_000 });
  return { cluster: clusterEnv(plan.tools, must('kind', ['get', 'kubeconfig', '--name', plan.clusterName])), created: !existing };
}

/** Deletes the kind cluster setUpKind made, unless the plan keeps it (nothing for a cluster it found). */
export function tearDownKind(plan: E2ePlan, created: boolean): void {
  if (!plan.run || plan.mode !== 'kind' || !created || plan.keepCluster) return;
  run('kind', ['delete', 'cluster', '--name', plan.clusterName], { timeoutMs: 300_000 });
}
