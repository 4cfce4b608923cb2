// `warden approvals list`, `warden approve ID`, `warden deny ID --reason TEXT` against a sidecar's
// admin API. (Kubernetes ApprovalRequest objects come with the operator.)
import { parseAddr } from '../sidecar/admin-server';
import { parseArgs } from 'node:util';
import type { ApprovalRequest } from '../sidecar/approvals/types';

export interface CliIo {
  stdout(s: string): void;
  stderr(s: string): void;
}

const DEFAULT_ADMIN_ADDR = '127.0.0.1:15000';
const OPERATION_WIDTH = 60;

const USAGE = `Usage:
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

async function call(
  addr: string,
  path: string,
  init: { method?: string; body?: unknown; token?: string },
): Promise<unknown> {
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

function truncate(s: string, n: number): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

export function formatTable(items: ApprovalRequest[], now = Date.now(), all = false): string {
  if (items.length === 0) return all ? 'No approval requests.' : 'No pending approval requests.';
  const header = ['ID', 'AGE', 'EXPIRES', 'RULE', 'TARGET', 'REQUESTER', 'OPERATION'];
  const rows = items.map((r) => {
    const left = Date.parse(r.expiresAt) - now;
    const expires = r.state === 'pending' ? (left > 0 ? `in ${ago(left)}` : 'now') : r.state;
    const votes = r.required > 1 ? ` [${r.decisions.filter((d) => d.verdict === 'approve').length}/${r.required}]` : '';
    return [r.id, ago(now - Date.parse(r.createdAt)), expires, r.rule + votes, r.target || '-', r.requester.subject, truncate(r.operation.display, OPERATION_WIDTH)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

/** argv starts with the command: ['approvals', 'list', ...], ['approve', ID, ...] or ['deny', ID, ...]. */
export async function runApprovalsCli(argv: string[], io: CliIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [cmd, ...rest] = argv;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        'admin-addr': { type: 'string', default: DEFAULT_ADMIN_ADDR },
        token: { type: 'string' },
        reason: { type: 'string' },
        output: { type: 'string', short: 'o', default: 'table' },
        all: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    io.stderr(`warden ${cmd}: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  const addr = values['admin-addr']!;
  const token = values.token ?? (env.WARDEN_TOKEN || undefined);
  try {
    if (cmd === 'approvals') {
      const sub = positionals[0] ?? 'list';
      if (sub !== 'list' || positionals.length > 1) throw new CliError(`unknown approvals subcommand "${positionals.join(' ')}"\n\n${USAGE}`, 2);
      if (values.output !== 'table' && values.output !== 'json') throw new CliError(`-o must be table or json, not "${values.output}"`, 2);
      const body = (await call(addr, `/approvals${values.all ? '?state=all' : ''}`, { token })) as { items: ApprovalRequest[] };
      io.stdout(values.output === 'json' ? JSON.stringify(body.items, null, 2) : formatTable(body.items, Date.now(), values.all === true));
      return 0;
    }
    if (cmd === 'approve' || cmd === 'deny') {
      if (positionals.length !== 1) throw new CliError(`warden ${cmd} needs exactly one approval request ID\n\n${USAGE}`, 2);
      const reason = values.reason ?? '';
      if (cmd === 'deny' && reason.trim() === '') throw new CliError('warden deny needs --reason TEXT: the agent is told why', 2);
      if (values.output !== 'table' && values.output !== 'json') throw new CliError(`-o must be table or json, not "${values.output}"`, 2);
      const id = positionals[0];
      const rec = (await call(addr, `/approvals/${encodeURIComponent(id)}/${cmd}`, { method: 'POST', body: { reason }, token })) as ApprovalRequest;
      if (values.output === 'json') {
        io.stdout(JSON.stringify(rec, null, 2));
      } else if (rec.state === 'pending') {
        const n = rec.decisions.filter((d) => d.verdict === 'approve').length;
        io.stdout(`approval recorded for ${id}: ${n} of ${rec.required} approvals; waiting for ${rec.required - n} more approver(s)`);
      } else {
        io.stdout(`${id} ${rec.state}: ${rec.finalReason ?? rec.state}`);
      }
      return 0;
    }
    throw new CliError(`unknown command "${cmd}"\n\n${USAGE}`, 2);
  } catch (e) {
    if (e instanceof CliError) {
      io.stderr(`warden ${cmd}: ${e.message}`);
      return e.exitCode;
    }
    throw e;
  }
}
