// `warden approvals list`, `warden approve ID`, `warden deny ID --reason TEXT`: against Kubernetes
// ApprovalRequest objects (as `kubectl warden ...`, or with --kubernetes, -n, -A, --context or
// --kubeconfig), otherwise against a sidecar's admin API (standalone sidecars and `warden demo`).
// In Kubernetes a decision is one entry appended to the object's status; the API server's
// admission webhook records who decided (from the caller's credentials) and refuses what is not
// allowed, and its refusal is printed as it comes.
import path from 'node:path';
import { parseAddr } from '../common/admin-server';
import { parseArgs } from 'node:util';
import type { ApprovalRequest } from '../sidecar/approvals/types';
import { APPROVAL_API, type ApprovalRequestObject, type ApprovalRequestList } from '../common/approvals/object';
import { apiStatus } from '../common/k8s/api-error';
import { displaySafe, displaySafeJson } from '../common/display-escape';

export interface CliIo {
  stdout(s: string): void;
  stderr(s: string): void;
}

const DEFAULT_ADMIN_ADDR = '127.0.0.1:15000';
const OPERATION_WIDTH = 60;

const USAGE = `Usage:
  Kubernetes (ApprovalRequest objects; the default when run as kubectl warden):
    kubectl warden approvals [list] [-n NAMESPACE | -A] [-o table|json] [--all]
    kubectl warden approve NAME [-n NAMESPACE] [--reason TEXT]
    kubectl warden deny NAME --reason TEXT [-n NAMESPACE]
      [--context NAME] [--kubeconfig FILE]; as warden, add --kubernetes (or -n/-A/--context/--kubeconfig)
    You decide as the user your kubeconfig authenticates as; nobody decides their own request.

  A standalone sidecar's admin API:
    warden approvals list [-o table|json] [--all] [--admin-addr HOST:PORT] [--token TOKEN]
    warden approve ID [--reason TEXT] [--admin-addr HOST:PORT] [--token TOKEN]
    warden deny ID --reason TEXT [--admin-addr HOST:PORT] [--token TOKEN]
    The approver token comes from --token or WARDEN_TOKEN and is sent as a Bearer token.`;

class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

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

type Values = {
  'admin-addr'?: string;
  token?: string;
  reason?: string;
  output?: string;
  all?: boolean;
  help?: boolean;
  kubernetes?: boolean;
  namespace?: string;
  'all-namespaces'?: boolean;
  context?: string;
  kubeconfig?: string;
};

export interface ApprovalsCliOptions {
  /** The program name it runs as (default: process.argv[1]); `kubectl-warden` means Kubernetes. */
  invokedAs?: string;
}

function printDecided(io: CliIo, id: string, rec: ApprovalRequest, output: string | undefined, who?: string): void {
  if (output === 'json') {
    io.stdout(displaySafeJson(rec, 2));
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

/** argv starts with the command: ['approvals', 'list', ...], ['approve', ID, ...] or ['deny', ID, ...]. */
export async function runApprovalsCli(
  argv: string[],
  io: CliIo,
  env: NodeJS.ProcessEnv = process.env,
  opts: ApprovalsCliOptions = {},
): Promise<number> {
  const [cmd, ...rest] = argv;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        'admin-addr': { type: 'string' },
        token: { type: 'string' },
        reason: { type: 'string' },
        output: { type: 'string', short: 'o', default: 'table' },
        all: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        kubernetes: { type: 'boolean', default: false },
        namespace: { type: 'string', short: 'n' },
        'all-namespaces': { type: 'boolean', short: 'A', default: false },
        context: { type: 'string' },
        kubeconfig: { type: 'string' },
      },
    });
  } catch (e) {
    io.stderr(`warden ${cmd}: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { positionals } = parsed;
  const values = parsed.values as Values;
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  const invokedAs = path.basename(opts.invokedAs ?? process.argv[1] ?? '');
  const kube =
    invokedAs === 'kubectl-warden' ||
    values.kubernetes === true ||
    values.namespace !== undefined ||
    values['all-namespaces'] === true ||
    values.context !== undefined ||
    values.kubeconfig !== undefined;
  try {
    if (values.output !== 'table' && values.output !== 'json') throw new CliError(`-o must be table or json, not "${values.output}"`, 2);
    if (kube && (values['admin-addr'] !== undefined || values.token !== undefined)) {
      throw new CliError('--admin-addr and --token are for a standalone sidecar; in Kubernetes you decide as your kubeconfig user', 2);
    }
    if (cmd === 'approvals') {
      const sub = positionals[0] ?? 'list';
      if (sub !== 'list' || positionals.length > 1)
        throw new CliError(`unknown approvals subcommand "${positionals.join(' ')}"\n\n${USAGE}`, 2);
      return kube ? await kubeList(io, values) : await localList(io, values, env);
    }
    if (cmd === 'approve' || cmd === 'deny') {
      if (positionals.length !== 1)
        throw new CliError(`warden ${cmd} needs exactly one approval request ${kube ? 'NAME' : 'ID'}\n\n${USAGE}`, 2);
      const reason = values.reason ?? '';
      if (cmd === 'deny' && reason.trim() === '') throw new CliError('warden deny needs --reason TEXT: the agent is told why', 2);
      if (kube) {
        if (values['all-namespaces']) throw new CliError(`-A does not apply to ${cmd}; name the namespace with -n`, 2);
        return await kubeDecide(io, values, { name: positionals[0], verdict: cmd, reason: reason.trim() });
      }
      const id = positionals[0];
      const addr = values['admin-addr'] ?? DEFAULT_ADMIN_ADDR;
      const token = values.token ?? (env.WARDEN_TOKEN || undefined);
      const rec = (await call(addr, `/approvals/${encodeURIComponent(id)}/${cmd}`, {
        method: 'POST',
        body: { reason },
        token,
      })) as ApprovalRequest;
      printDecided(io, id, rec, values.output);
      return 0;
    }
    throw new CliError(`unknown command "${cmd}"\n\n${USAGE}`, 2);
  } catch (e) {
    if (e instanceof CliError) {
      io.stderr(`warden ${cmd}: ${displaySafe(e.message)}`);
      return e.exitCode;
    }
    throw e;
  }
}

async function localList(io: CliIo, values: Values, env: NodeJS.ProcessEnv): Promise<number> {
  const addr = values['admin-addr'] ?? DEFAULT_ADMIN_ADDR;
  const token = values.token ?? (env.WARDEN_TOKEN || undefined);
  const body = (await call(addr, `/approvals${values.all ? '?state=all' : ''}`, { token })) as { items: ApprovalRequest[] };
  io.stdout(values.output === 'json' ? displaySafeJson(body.items, 2) : formatTable(body.items, Date.now(), values.all === true));
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

async function kubeClient(values: Values): Promise<KubeClient> {
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

async function kubeList(io: CliIo, values: Values): Promise<number> {
  const c = await kubeClient(values);
  const all = values['all-namespaces'] === true;
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
  if (values.output === 'json') {
    io.stdout(
      displaySafeJson(
        items.map((r) => ({ namespace: namespaces.get(r), ...r })),
        2,
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

async function kubeDecide(io: CliIo, values: Values, d: { name: string; verdict: 'approve' | 'deny'; reason: string }): Promise<number> {
  const c = await kubeClient(values);
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
