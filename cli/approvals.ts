// `warden approvals list`, `warden approve ID`, `warden deny ID --reason TEXT`: against Kubernetes
// ApprovalRequest objects (as `kubectl warden ...`, or with --kubernetes, -n, -A, --context or
// --kubeconfig), otherwise against a sidecar's admin API (standalone sidecars and `warden demo`).
// In Kubernetes a decision is one entry appended to the object's status; the API server's
// admission webhook records who decided (from the caller's credentials) and refuses what is not
// allowed, and its refusal is printed as it comes.
import { parseAddr } from '../common/admin-server';
import type { ApprovalRequest } from '../sidecar/approvals/types';
import { APPROVAL_API, type ApprovalRequestObject, type ApprovalRequestList } from '../common/approvals/object';
import { apiStatus } from '../common/k8s/api-error';
import { displaySafe } from '../common/display-escape';
import { CliError, programName, type CliContext, type CliIo } from './context';
import { kubeconfigProblem } from './kubeconfig';
import { renderData, type OutputFormat } from './output';

const DEFAULT_ADMIN_ADDR = '127.0.0.1:15000';
const OPERATION_WIDTH = 60;

/** The admin API's base URL from `--admin-addr`, read exactly as the sidecar reads it (HOST:PORT or PORT). */
function baseUrl(addr: string): string {
  if (/^https?:\/\//.test(addr)) return addr.replace(/\/+$/, '');
  const { host, port } = parseAddr(addr);
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

async function call(addr: string, path: string, init: { method?: string; body?: unknown; token?: string }): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${baseUrl(addr)}${path}`, {
      method: init.method ?? 'GET',
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (e as Error).message;
    throw new CliError(`cannot reach the sidecar admin API at ${addr} (${why}); is the sidecar running, and is --admin-addr right?`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const err = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (err?.message) throw new CliError(`${err.message} (${err.code ?? res.status})`);
    throw new CliError(`admin API answered ${res.status}: ${text.trim().slice(0, 200) || res.statusText}`);
  }
  return body;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  const h = Math.floor(m / 60);
  return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
}

/** One line of at most n characters; hidden characters escaped first, so none survives the cut. */
function truncate(s: string, n: number): string {
  const one = displaySafe(s).replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

export interface TableOptions {
  /** First column's title: ID for a sidecar's requests, NAME for Kubernetes objects. */
  idHeader?: string;
  /** Adds a NAMESPACE column (kubectl's -A). */
  namespaceOf?: (r: ApprovalRequest) => string;
}

export function formatTable(items: ApprovalRequest[], now = Date.now(), all = false, opts: TableOptions = {}): string {
  if (items.length === 0) return all ? 'No approval requests.' : 'No pending approval requests.';
  const ns = opts.namespaceOf;
  const header = [...(ns ? ['NAMESPACE'] : []), opts.idHeader ?? 'ID', 'AGE', 'EXPIRES', 'RULE', 'TARGET', 'REQUESTER', 'OPERATION'];
  const rows = items.map((r) => {
    const left = Date.parse(r.expiresAt) - now;
    const expires = r.state === 'pending' ? (left > 0 ? `in ${ago(left)}` : 'now') : r.state;
    const votes = r.required > 1 ? ` [${r.decisions.filter((d) => d.verdict === 'approve').length}/${r.required}]` : '';
    const age = r.createdAt ? ago(now - Date.parse(r.createdAt)) : '-';
    const cells = [...(ns ? [ns(r)] : []), r.id, age, expires, r.rule + votes, r.target || '-', r.requester.subject || '-'];
    // Every cell: the objects may come from anywhere a user can create them, not only a sidecar.
    return [...cells.map((c) => displaySafe(c).replace(/\s+/g, ' ')), truncate(r.operation.display, OPERATION_WIDTH)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

/** The options `approvals list`, `approve` and `deny` share (cli/commands/approvals.ts). */
export interface ApprovalsOptions {
  kubernetes?: boolean;
  namespace?: string;
  allNamespaces?: boolean;
  context?: string;
  kubeconfig?: string;
  adminAddr?: string;
  token?: string;
  output: OutputFormat;
}

interface Decision {
  verdict: 'approve' | 'deny';
  /** NAME of the ApprovalRequest object, or the sidecar's request ID. */
  name: string;
  reason: string;
}

function printDecided(io: CliIo, id: string, rec: ApprovalRequest, output: OutputFormat, who?: string): void {
  if (output !== 'table') {
    io.stdout(renderData(rec, output));
  } else if (rec.state === 'pending') {
    const n = rec.decisions.filter((d) => d.verdict === 'approve').length;
    io.stdout(
      displaySafe(
        `approval recorded for ${id}${who ? ` as ${who}` : ''}: ${n} of ${rec.required} approvals; waiting for ${rec.required - n} more approver(s)`,
      ),
    );
  } else {
    io.stdout(displaySafe(`${id} ${rec.state}: ${rec.finalReason ?? rec.state}`));
  }
}

/** Kubernetes when run as kubectl-warden or when any Kubernetes option is given; else a sidecar's admin API. */
function kubeMode(o: ApprovalsOptions, ctx: CliContext): boolean {
  const kube =
    programName(ctx.invokedAs) === 'kubectl warden' ||
    o.kubernetes === true ||
    o.namespace !== undefined ||
    o.allNamespaces === true ||
    o.context !== undefined ||
    o.kubeconfig !== undefined;
  if (kube && (o.adminAddr !== undefined || o.token !== undefined)) {
    throw new CliError('--admin-addr and --token are for a standalone sidecar; in Kubernetes you decide as your kubeconfig user', 2);
  }
  return kube;
}

/** `approvals list`. Exit code: 0 listed, 1 failed, 2 usage. */
export async function listApprovals(o: ApprovalsOptions & { all?: boolean }, ctx: CliContext): Promise<number> {
  return kubeMode(o, ctx) ? kubeList(ctx, o) : localList(ctx, o);
}

/** `approve NAME` / `deny NAME --reason TEXT`. Exit code: 0 recorded, 1 refused or failed, 2 usage. */
export async function decideApproval(d: Decision, o: ApprovalsOptions, ctx: CliContext): Promise<number> {
  const reason = d.reason.trim();
  if (d.verdict === 'deny' && reason === '') throw new CliError('needs --reason TEXT: the agent is told why', 2);
  if (kubeMode(o, ctx)) return kubeDecide(ctx, o, { ...d, reason });
  const addr = o.adminAddr ?? DEFAULT_ADMIN_ADDR;
  const token = o.token ?? (ctx.env.WARDEN_TOKEN || undefined);
  const rec = (await call(addr, `/approvals/${encodeURIComponent(d.name)}/${d.verdict}`, {
    method: 'POST',
    body: { reason: d.reason },
    token,
  })) as ApprovalRequest;
  printDecided(ctx.io, d.name, rec, o.output);
  return 0;
}

async function localList(ctx: CliContext, o: ApprovalsOptions & { all?: boolean }): Promise<number> {
  const addr = o.adminAddr ?? DEFAULT_ADMIN_ADDR;
  const token = o.token ?? (ctx.env.WARDEN_TOKEN || undefined);
  const body = (await call(addr, `/approvals${o.all ? '?state=all' : ''}`, { token })) as { items: ApprovalRequest[] };
  ctx.io.stdout(o.output === 'table' ? formatTable(body.items, Date.now(), o.all === true) : renderData(body.items, o.output));
  return 0;
}

// ---- Kubernetes ---------------------------------------------------------------------------------

/** Optimistic-concurrency retries when another approver's decision lands at the same moment. */
const CONFLICT_RETRIES = 5;

interface KubeClient {
  api: import('@kubernetes/client-node').CustomObjectsApi;
  namespace: string;
  mergePatch: import('@kubernetes/client-node').ConfigurationOptions<import('@kubernetes/client-node').ObservableMiddleware>;
  where: string;
}

async function kubeClient(values: ApprovalsOptions, ctx: CliContext): Promise<KubeClient> {
  const problem = kubeconfigProblem({ explicit: values.kubeconfig, env: ctx.env });
  if (problem) throw new CliError(problem);
  // loaded only here, so the local mode (and `warden demo`) never loads the Kubernetes client
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  try {
    if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
    else kc.loadFromDefault();
    if (values.context) {
      if (!kc.getContextObject(values.context)) throw new Error(`context "${values.context}" is not in the kubeconfig`);
      kc.setCurrentContext(values.context);
    }
  } catch (e) {
    throw new CliError(`cannot load the kubeconfig: ${(e as Error).message}`);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new CliError('the kubeconfig has no current cluster; pass --context or --kubeconfig');
  const namespace = values.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  return {
    api: kc.makeApiClient(k8s.CustomObjectsApi),
    namespace,
    mergePatch: k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    where: cluster.server,
  };
}

function kubeError(c: KubeClient, e: unknown): CliError {
  const s = apiStatus(e);
  if (s.code === undefined) return new CliError(`cannot reach the Kubernetes API server at ${c.where}: ${s.message}`);
  return new CliError(s.message);
}

async function kubeList(ctx: CliContext, values: ApprovalsOptions & { all?: boolean }): Promise<number> {
  const { io } = ctx;
  const c = await kubeClient(values, ctx);
  const all = values.allNamespaces === true;
  let res: ApprovalRequestList;
  try {
    res = (
      all
        ? await c.api.listClusterCustomObject({ ...APPROVAL_API })
        : await c.api.listNamespacedCustomObject({ ...APPROVAL_API, namespace: c.namespace })
    ) as ApprovalRequestList;
  } catch (e) {
    throw kubeError(c, e);
  }
  const { objectToRecord } = await import('../sidecar/approvals/kube-backend');
  const namespaces = new Map<ApprovalRequest, string>();
  const items = (res.items ?? [])
    .map((o) => {
      const r = objectToRecord(o);
      namespaces.set(r, o.metadata.namespace ?? '');
      return r;
    })
    .filter((r) => values.all === true || r.state === 'pending')
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  if (values.output !== 'table') {
    io.stdout(
      renderData(
        items.map((r) => ({ namespace: namespaces.get(r), ...r })),
        values.output,
      ),
    );
  } else {
    const table = formatTable(items, Date.now(), values.all === true, {
      idHeader: 'NAME',
      ...(all ? { namespaceOf: (r: ApprovalRequest) => namespaces.get(r) ?? '' } : {}),
    });
    io.stdout(items.length === 0 && !all ? `${table.replace(/\.$/, '')} in namespace ${c.namespace}.` : table);
  }
  return 0;
}

async function kubeDecide(ctx: CliContext, values: ApprovalsOptions, d: Decision): Promise<number> {
  const { io } = ctx;
  const c = await kubeClient(values, ctx);
  const { objectToRecord } = await import('../sidecar/approvals/kube-backend');
  for (let attempt = 0; ; attempt++) {
    let current: ApprovalRequestObject;
    try {
      current = (await c.api.getNamespacedCustomObject({ ...APPROVAL_API, namespace: c.namespace, name: d.name })) as ApprovalRequestObject;
    } catch (e) {
      if (apiStatus(e).code === 404)
        throw new CliError(
          `no ApprovalRequest "${d.name}" in namespace ${c.namespace} (list them with kubectl warden approvals -n ${c.namespace})`,
        );
      throw kubeError(c, e);
    }
    // Append one entry with who-decided left out: the admission webhook fills it in from our
    // credentials. The resourceVersion makes the patch conditional; a concurrent decision is a 409.
    const decisions = [...(current.status?.decisions ?? []), { verdict: d.verdict, ...(d.reason ? { reason: d.reason } : {}) }];
    try {
      const updated = (await c.api.patchNamespacedCustomObjectStatus(
        {
          ...APPROVAL_API,
          namespace: c.namespace,
          name: d.name,
          body: { metadata: { resourceVersion: current.metadata.resourceVersion }, status: { decisions } },
        },
        c.mergePatch,
      )) as ApprovalRequestObject;
      const rec = objectToRecord(updated);
      printDecided(io, d.name, rec, values.output, rec.decisions.at(-1)?.by);
      return 0;
    } catch (e) {
      // A 409 from the webhook is a refusal (already decided); any other 409 is a lost race: retry.
      const s = apiStatus(e);
      if (s.code === 409 && !s.message.startsWith('admission webhook') && attempt < CONFLICT_RETRIES) continue;
      throw kubeError(c, e);
    }
  }
}
