// What the approver sees and what the approval is bound to. The digest covers exactly what will
// be forwarded if approved; a data path can recompute it before forwarding to prove that the
// operation it releases is the one that was approved.
import { createHash } from 'node:crypto';
import { canonicalJson } from '../../common/k8s/canonical-json';
import type { HttpOperationWithPort } from '../../common/policy/engine';
import type { McpOperation } from '../../common/policy/types';
import type { ApprovalOperation } from './types';
import { escapeForDisplay } from '../../common/display-escape';

const BODY_EXCERPT = 2000;

function sha256(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

export function sqlDigest(sql: string, params?: ReadonlyArray<string | null>): string {
  return sha256(JSON.stringify({ kind: 'sql', sql, params: params ?? [] }));
}

/** Starts the line `shown` adds (SQL and HTTP alike): a comment, so SQL stays SQL. */
export const ESCAPE_NOTE_PREFIX = '-- warden:';

/**
 * What the approver reads, with every character that could hide, move or reorder text shown as an
 * escape (display only: the digest binds the original), and a closing line saying so when there
 * were any, so a `\u202e` in the display is known to stand for a hidden character.
 */
function shown(display: string): string {
  const { text, escaped } = escapeForDisplay(display);
  if (escaped === 0) return text;
  return `${text}\n${ESCAPE_NOTE_PREFIX} ${escaped} invisible or control character(s) shown as \\x.., \\u.. or \\r escapes; the approval covers the original text`;
}

/** SQL text, then each bound parameter on its own line (`$1 = 'x'`, `$2 = NULL`). */
export function sqlOperation(sql: string, params?: ReadonlyArray<string | null>): ApprovalOperation {
  let display = sql;
  if (params && params.length > 0) {
    const lines = params.map((p, i) => `  $${i + 1} = ${p === null ? 'NULL' : `'${p.replace(/'/g, "''")}'`}`);
    display += `\n-- bound parameters:\n${lines.join('\n')}`;
  }
  return { kind: 'sql', display: shown(display), digest: sqlDigest(sql, params) };
}

/** Headers are deliberately left out of both: the sidecar injects credentials there. */
export function httpDigest(op: HttpOperationWithPort): string {
  return sha256(
    JSON.stringify({
      kind: 'http',
      target: op.target,
      method: op.method.toUpperCase(),
      host: op.host ?? null,
      port: op.port ?? null,
      path: op.path,
      body: typeof op.json === 'symbol' ? String(op.json) : op.json === undefined ? null : op.json,
    }),
  );
}

export function httpOperation(op: HttpOperationWithPort): ApprovalOperation {
  const where = op.host !== undefined ? `//${op.host}${op.port !== undefined ? `:${op.port}` : ''}${op.path}` : op.path;
  let display = `${op.method.toUpperCase()} ${where}`;
  if (typeof op.json === 'symbol') {
    display += '\n\n(the request body is not valid JSON)';
  } else if (op.json !== undefined) {
    const body = JSON.stringify(op.json, null, 2);
    display += `\n\n${body.length > BODY_EXCERPT ? `${body.slice(0, BODY_EXCERPT)}\n… (${body.length - BODY_EXCERPT} more characters)` : body}`;
  }
  return { kind: 'http', display: shown(display), digest: httpDigest(op) };
}

/**
 * An MCP call: sha256 of the canonical JSON (sorted keys, so the agent's key order does not
 * matter) of {target, tool, arguments} for tools/call, plus `params`: every other param the call
 * carries to the server (`_meta` and the rest, but `_meta.progressToken`), when there is any;
 * other held requests bind their method and resource too. Everything as it will be sent (after
 * request masking).
 */
export function mcpDigest(
  op: Pick<McpOperation, 'target' | 'method' | 'tool' | 'arguments' | 'resource'>,
  params?: Record<string, unknown>,
): string {
  const extra = params && Object.keys(params).length > 0 ? { params } : {};
  if (op.method === 'tools/call')
    return sha256(canonicalJson({ target: op.target, tool: op.tool ?? '', arguments: op.arguments, ...extra }));
  return sha256(canonicalJson({ target: op.target, method: op.method, resource: op.resource, arguments: op.arguments, ...extra }));
}

/** Longest string value shown whole to an approver; longer ones are cut with a marker, so every key stays visible. */
const SHOWN_VALUE = 200;

/** A value as the approver reads it: keys in canonical order, each long string cut (the digest binds the whole). */
function forDisplay(v: unknown): unknown {
  if (typeof v === 'string') return v.length <= SHOWN_VALUE ? v : `${v.slice(0, SHOWN_VALUE)}… (${v.length - SHOWN_VALUE} more characters)`;
  if (Array.isArray(v)) return v.map(forDisplay);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort())
      Object.defineProperty(out, k, { value: forDisplay((v as Record<string, unknown>)[k]), enumerable: true });
    return out;
  }
  return v;
}

/**
 * `tools/call run_query on MCP server "crm-tools"`, then the arguments as indented JSON (keys
 * sorted, every key shown, long strings cut), then any other params the call carries (`_meta`).
 */
export function mcpOperation(op: McpOperation, params?: Record<string, unknown>): ApprovalOperation {
  const what =
    op.method === 'tools/call' ? `tools/call ${op.tool ?? ''}` : `${op.method}${op.resource !== undefined ? ` ${op.resource}` : ''}`;
  let display = `${what} on MCP server "${op.target}"`;
  if (op.arguments !== undefined) display += `\narguments:\n${JSON.stringify(forDisplay(op.arguments), null, 2)}`;
  if (params && Object.keys(params).length > 0) display += `\nother params:\n${JSON.stringify(forDisplay(params), null, 2)}`;
  return { kind: 'mcp', display: shown(display), digest: mcpDigest(op, params) };
}
