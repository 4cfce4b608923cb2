// Whether the end-to-end suite can run here, and against what. The decision is a pure function of
// what the probes found, so every reason to skip is explicit and testable without Docker.
import { spawnSync } from 'node:child_process';
import { findK8sTools, type K8sTools, type K8sToolsResult } from '../test/support/k8s-tools';

export interface Probe {
  ok: boolean;
  detail: string;
}

export interface Probes {
  /** `docker info` (a reachable Docker engine, not only the client). */
  docker: Probe;
  /** `kind version`. */
  kind: Probe;
  /** `kubectl version` against the current KUBECONFIG (only probed when asked for). */
  cluster: Probe;
  tools: K8sToolsResult;
  env: NodeJS.ProcessEnv;
}

export type E2ePlan =
  | { run: false; reason: string }
  | { run: true; mode: 'kind'; tools: K8sTools; clusterName: string; image: string; keepCluster: boolean }
  | { run: true; mode: 'existing'; tools: K8sTools; image: string };

export const KIND_CLUSTER = 'warden-e2e';
export const E2E_IMAGE = 'agent-warden:e2e';

/**
 * Runs only when asked (`make e2e` sets WARDEN_E2E=1), so `make test` never builds images or
 * creates clusters. kind (Docker engine + kind binary) by default; `WARDEN_E2E_CLUSTER=existing`
 * uses the current KUBECONFIG's cluster, which must be able to pull `WARDEN_E2E_IMAGE`.
 */
export function planE2e(p: Probes): E2ePlan {
  if (p.env.WARDEN_E2E !== '1') return { run: false, reason: 'it runs with `make e2e` (or WARDEN_E2E=1)' };
  if (!p.tools.ok) return { run: false, reason: p.tools.reason };
  if (p.env.WARDEN_E2E_CLUSTER === 'existing') {
    if (!p.cluster.ok) return { run: false, reason: `WARDEN_E2E_CLUSTER=existing but no cluster answers: ${p.cluster.detail}` };
    const image = p.env.WARDEN_E2E_IMAGE;
    if (!image)
      return { run: false, reason: 'WARDEN_E2E_CLUSTER=existing needs WARDEN_E2E_IMAGE (an Agent Warden image the cluster can pull)' };
    return { run: true, mode: 'existing', tools: p.tools.tools, image };
  }
  if (!p.docker.ok) return { run: false, reason: `no Docker engine (kind runs its nodes in Docker): ${p.docker.detail}` };
  if (!p.kind.ok)
    return { run: false, reason: `no kind binary: ${p.kind.detail} (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)` };
  return {
    run: true,
    mode: 'kind',
    tools: p.tools.tools,
    clusterName: p.env.WARDEN_E2E_KIND_CLUSTER || KIND_CLUSTER,
    image: E2E_IMAGE,
    keepCluster: p.env.WARDEN_E2E_KEEP === '1',
  };
}

function probe(cmd: string, args: string[], timeoutMs = 15_000): Probe {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.error)
    return { ok: false, detail: `${cmd}: ${(r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found on PATH' : r.error.message}` };
  if (r.status !== 0) return { ok: false, detail: `\`${cmd} ${args.join(' ')}\` exited ${r.status}: ${lastLine(r.stderr || r.stdout)}` };
  return { ok: true, detail: lastLine(r.stdout) };
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n').filter(Boolean);
  return (lines[lines.length - 1] ?? '').slice(0, 300);
}

/** Runs the probes this machine needs (the cluster probe only when an existing cluster is asked for). */
export function probeMachine(env: NodeJS.ProcessEnv = process.env): Probes {
  const asked = env.WARDEN_E2E === '1';
  const tools = asked ? findK8sTools() : ({ ok: false, reason: 'not probed' } as const);
  const existing = env.WARDEN_E2E_CLUSTER === 'existing';
  const skip: Probe = { ok: false, detail: 'not probed' };
  return {
    docker: !asked || existing ? skip : probe('docker', ['info', '--format', '{{.ServerVersion}}']),
    kind: !asked || existing ? skip : probe('kind', ['version']),
    cluster: existing && tools.ok ? probe(tools.tools.kubectl, ['version', '--request-timeout=5s']) : skip,
    tools,
    env,
  };
}
