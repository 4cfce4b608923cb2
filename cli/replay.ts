// `warden replay SESSION` and `warden replay --list`: what an agent did in one session (a PostgreSQL
// connection, an HTTP client connection) or one trace, read from the sidecar's audit spool.
// The spool is read without the writer's lock, so this works while the sidecar runs; a record
// being written at that moment is simply not shown yet. Records are masked when they are written;
// this command prints them as stored and never has anything to unmask.
import fs from 'node:fs';
import type { AuditRecord } from '../common/audit/record';
import { PATHS } from '../common/k8s/names';
import { decodeRecord } from '../sidecar/audit/binary';
import { readSpoolDir, type SpoolEntry } from '../sidecar/audit/segment';
import { CliError, type CliContext, type CliIo } from './context';
import { fsReason } from './fs-errors';
import { renderData, type OutputFormat } from './output';

export const SPOOL_DIR_ENV = 'WARDEN_SPOOL_DIR';

export interface ReplayRecord {
  /** Position in the spool: the order records were written in. */
  spoolSeq: number;
  record: AuditRecord;
}

export interface SessionSummary {
  session: string;
  kind: AuditRecord['kind'];
  targets: string[];
  subject: string;
  first: number;
  last: number;
  operations: number;
  denied: number;
  held: number;
}

// ---------------------------------------------------------------------------------------------
// Pure parts: records in, selections and text out.

function isAuditRecord(v: unknown): v is AuditRecord {
  const r = v as Partial<AuditRecord> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.id === 'string' &&
    typeof r.session === 'string' &&
    typeof r.seq === 'number' &&
    typeof r.start === 'number' &&
    typeof r.target === 'string' &&
    typeof r.decision === 'string'
  );
}

/**
 * Decodes spool payloads: the binary format (sidecar/audit/binary.ts), or the JSON one that
 * sidecars before it wrote, so an older spool replays the same; anything else is counted, not fatal.
 */
export function parseRecords(
  entries: Iterable<SpoolEntry>,
  keep: (payload: Buffer) => boolean = () => true,
): { records: ReplayRecord[]; invalid: number } {
  const records: ReplayRecord[] = [];
  let invalid = 0;
  for (const e of entries) {
    if (!keep(e.payload)) continue;
    let v: unknown;
    try {
      v = decodeRecord(e.payload);
    } catch {
      v = undefined;
    }
    if (isAuditRecord(v)) records.push({ spoolSeq: e.seq, record: v });
    else invalid += 1;
  }
  return { records, invalid };
}

/**
 * The records of one session (by session id) or one trace (by trace id), each once (by record id).
 * A session's records come in their own order (`seq`); a trace spanning sessions in time order.
 */
export function selectSession(records: ReplayRecord[], id: string): ReplayRecord[] {
  const seen = new Set<string>();
  const out: ReplayRecord[] = [];
  for (const r of records) {
    if (r.record.session !== id && r.record.trace?.traceId !== id) continue;
    if (seen.has(r.record.id)) continue;
    seen.add(r.record.id);
    out.push(r);
  }
  const oneSession = out.every((r) => r.record.session === out[0]?.record.session);
  return out.sort((a, b) =>
    oneSession ? a.record.seq - b.record.seq || a.spoolSeq - b.spoolSeq : a.record.start - b.record.start || a.spoolSeq - b.spoolSeq,
  );
}

/** One line per session, oldest first. */
export function summarizeSessions(records: ReplayRecord[]): SessionSummary[] {
  const by = new Map<string, SessionSummary & { ids: Set<string> }>();
  for (const { record: r } of records) {
    let s = by.get(r.session);
    if (!s) {
      s = {
        session: r.session,
        kind: r.kind,
        targets: [],
        subject: r.identity?.subject ?? '',
        first: r.start,
        last: r.start,
        operations: 0,
        denied: 0,
        held: 0,
        ids: new Set(),
      };
      by.set(r.session, s);
    }
    if (s.ids.has(r.id)) continue;
    s.ids.add(r.id);
    if (!s.targets.includes(r.target)) s.targets.push(r.target);
    s.first = Math.min(s.first, r.start);
    s.last = Math.max(s.last, r.start + (r.durationMs ?? 0));
    s.operations += 1;
    if (r.decision === 'deny') s.denied += 1;
    if (r.approval) s.held += 1;
  }
  return [...by.values()].map(({ ids: _ids, ...s }) => s).sort((a, b) => a.first - b.first || a.session.localeCompare(b.session));
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** Sessions whose ids look most like `id` (a typo, a truncated paste), closest first. */
export function nearestSessions(id: string, sessions: SessionSummary[], n = 5): string[] {
  const needle = id.toLowerCase();
  return sessions
    .map((s) => {
      const hay = s.session.toLowerCase();
      // A prefix or substring of the real id counts as very close: people paste the first part.
      const distance = hay.startsWith(needle) || hay.includes(needle) ? 0 : levenshtein(needle, hay.slice(0, needle.length + 8));
      return { id: s.session, distance, last: s.last };
    })
    .sort((a, b) => a.distance - b.distance || b.last - a.last)
    .slice(0, n)
    .map((s) => s.id);
}

// Recorded text comes from the agent and its upstreams: control characters (terminal escapes) and
// bidirectional overrides must not reach the reader's terminal as such.
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

function clean(s: string): string {
  return s.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}

function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

function field(name: string, value: string): string {
  const pad = `    ${name.padEnd(9)} `;
  const cont = ' '.repeat(pad.length);
  return pad + clean(value).replace(/\r?\n/g, `\n${cont}`);
}

/** The block printed for one operation. */
export function formatOperation(r: AuditRecord): string {
  const lines: string[] = [];
  const what = r.kind === 'postgres' ? 'postgres' : r.kind === 'egress' ? 'egress' : 'http';
  lines.push(`#${r.seq}  ${iso(r.start)}  ${what} ${clean(r.target)}  ${r.decision}  (${duration(r.durationMs)})`);
  if (r.identity)
    lines.push(field('identity', `${r.identity.subject}${r.identity.groups?.length ? ` [groups: ${r.identity.groups.join(', ')}]` : ''}`));
  lines.push(field('decision', `${r.decision}${r.rule ? ` by rule ${r.rule}` : ''}${r.reason ? `: ${r.reason}` : ''}`));
  if (r.approval) {
    const a = r.approval;
    const who = a.decidedBy ? ` by ${a.decidedBy}` : '';
    lines.push(
      field(
        'approval',
        `${a.id ?? '(no id)'} ${a.approved ? 'approved' : 'not approved'}${who} after ${duration(a.waitMs)}${a.reason ? `: ${a.reason}` : ''}`,
      ),
    );
  }
  if (r.db) {
    lines.push(field('sql', r.db.text));
    if (r.db.params?.length) lines.push(field('params', JSON.stringify(r.db.params)));
  }
  if (r.http) {
    const h = r.http;
    const target = h.tunnel
      ? `CONNECT ${h.serverAddress ?? h.route ?? ''}${h.serverPort ? `:${h.serverPort}` : ''}`
      : `${h.method} ${h.path}`;
    lines.push(field('http', `${target} -> ${h.status}${h.url ? `  (${h.url})` : ''}`));
  }
  const result: string[] = [];
  if (r.db) result.push(`${r.db.rows} row${r.db.rows === 1 ? '' : 's'}`);
  if (r.masked > 0) {
    const by = r.maskedBy
      ? ` (${Object.entries(r.maskedBy)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')})`
      : '';
    result.push(`${r.masked} value${r.masked === 1 ? '' : 's'} masked${by}`);
  }
  if (result.length) lines.push(field('result', result.join(', ')));
  if (r.genAi) {
    const g = r.genAi;
    const model =
      g.responseModel && g.responseModel !== g.requestModel
        ? `${g.requestModel ?? '?'} -> ${g.responseModel}`
        : (g.requestModel ?? g.responseModel ?? '');
    const tokens =
      g.inputTokens !== undefined || g.outputTokens !== undefined
        ? `, tokens in ${g.inputTokens ?? '?'} / out ${g.outputTokens ?? '?'}`
        : '';
    lines.push(field('gen_ai', [g.provider, g.operation, model].filter(Boolean).join(' ') + tokens + (g.streamed ? ', streamed' : '')));
  }
  if (r.payload?.request !== undefined) lines.push(field('request', r.payload.request));
  if (r.payload?.response !== undefined) lines.push(field('response', r.payload.response + (r.payload.truncated ? '\n[truncated]' : '')));
  if (r.error) lines.push(field('error', r.error));
  if (r.trace) lines.push(field('trace', `${r.trace.traceId} span ${r.trace.spanId}`));
  return lines.join('\n');
}

export function formatReplay(id: string, selected: ReplayRecord[]): string {
  const first = selected[0].record;
  const sessions = new Set(selected.map((r) => r.record.session));
  const last = selected[selected.length - 1].record;
  const head =
    sessions.size === 1 && first.session === id
      ? `session ${clean(id)}  ${first.kind}, policy ${clean(first.policy)}`
      : `trace ${clean(id)}  ${sessions.size} session${sessions.size === 1 ? '' : 's'}`;
  const span = `  ${selected.length} operation${selected.length === 1 ? '' : 's'}, ${iso(first.start)} .. ${iso(last.start + last.durationMs)}`;
  return [head, span, '', ...selected.map((r) => formatOperation(r.record) + '\n')].join('\n');
}

export function formatSessionList(sessions: SessionSummary[]): string {
  if (sessions.length === 0) return 'No sessions in the spool.';
  const header = ['SESSION', 'KIND', 'TARGET', 'FIRST', 'LAST', 'OPS', 'DENIED', 'HELD', 'SUBJECT'];
  const rows = sessions.map((s) =>
    [
      s.session,
      s.kind,
      s.targets.join(','),
      iso(s.first),
      iso(s.last),
      String(s.operations),
      String(s.denied),
      String(s.held),
      s.subject,
    ].map(clean),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// The command.

function readAll(dir: string, keep?: (payload: Buffer) => boolean): { records: ReplayRecord[]; invalid: number } {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch (e) {
    throw new CliError(`no audit spool at ${dir} (${fsReason(e)}); pass --spool-dir DIR or set ${SPOOL_DIR_ENV}`);
  }
  if (!stat.isDirectory()) throw new CliError(`${dir} is not a directory; pass the audit spool directory with --spool-dir DIR`);
  try {
    return parseRecords(readSpoolDir(dir), keep);
  } catch (e) {
    throw new CliError(`cannot read the audit spool at ${dir} (${fsReason(e)})`);
  }
}

export interface ReplayOptions {
  list?: boolean;
  spoolDir?: string;
  /** table (text for a session), json or yaml; "text" is the older name of table. */
  output: OutputFormat | 'text';
}

/** Exit code: 0 printed, 1 not found or unreadable, 2 usage. */
export async function runReplay(session: string | undefined, o: ReplayOptions, ctx: CliContext): Promise<number> {
  const { io } = ctx;
  const output = o.output === 'text' ? 'table' : o.output;
  if (o.list ? session !== undefined : session === undefined) {
    throw new CliError(o.list ? '--list takes no SESSION' : 'give exactly one SESSION (or --list)', 2);
  }
  const dir = o.spoolDir ?? (ctx.env[SPOOL_DIR_ENV] || PATHS.spoolDir);
  if (session === undefined) {
    const { records, invalid } = readAll(dir);
    warnInvalid(io, invalid);
    const sessions = summarizeSessions(records);
    io.stdout(output === 'table' ? `${formatSessionList(sessions)}\n` : renderData(sessions, output));
    return 0;
  }
  // Cheap pre-filter: a matching record carries the id verbatim, in either format (ids need no JSON escaping).
  const needle = /^[\w.:-]+$/.test(session) ? Buffer.from(session) : undefined;
  const { records, invalid } = readAll(dir, needle ? (p) => p.includes(needle) : undefined);
  const selected = selectSession(records, session);
  if (selected.length === 0) {
    const all = summarizeSessions(readAll(dir).records);
    const near = nearestSessions(session, all);
    const hint = near.length
      ? `; nearest: ${near.join(', ')} (warden replay --list shows all ${all.length})`
      : '; the spool holds no sessions';
    throw new CliError(`no session or trace "${clean(session)}" in the audit spool at ${dir}${hint}`);
  }
  warnInvalid(io, invalid);
  io.stdout(
    output === 'table'
      ? formatReplay(session, selected)
      : renderData(
          selected.map((r) => r.record),
          output,
        ),
  );
  return 0;
}

function warnInvalid(io: CliIo, invalid: number): void {
  if (invalid > 0)
    io.stderr(
      `warden replay: skipped ${invalid} spool ${invalid === 1 ? 'record that is not an audit record' : 'records that are not audit records'}\n`,
    );
}
