// The last step of `make bench`: merges what pg-bench, http-bench, mcp-bench and startup wrote
// (dist-dev/bench-results.json, bench-http-results.json, bench-mcp-results.json,
// bench-startup-results.json) into ONE
// table, the issue-12 targets with PASS/MISS, and dist-dev/bench-summary.json (the same figures, to
// compare runs: `node dist-dev/bench/summary.js` can be re-run on older files). Every ratio is
// between figures of the same run, peers interleaved with the sidecar in rounds.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fmt, table } from './support';

const DIR = path.resolve(__dirname, '..');

function read<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8')) as T;
  } catch {
    return undefined;
  }
}

interface PgSummary {
  mode: string;
  clients: number;
  target: string;
  tps: number;
  p50Us?: number;
  proxyCpuUsPerTx?: number;
}
interface PgResults {
  date: string;
  settings: unknown;
  environment: { loadAverageBefore: number[] };
  summary: PgSummary[];
  sidecarAudit: { idleRssMb: number; peakRssMb: number } | null;
}
interface HttpRow {
  mode: string;
  target: string;
  rps: number;
  p50Us: number;
  p99Us: number;
  proxyCpuUsPerReq?: number;
}
interface HttpResults {
  date: string;
  settings: unknown;
  environment: { loadAverageBefore: number[] };
  summary: HttpRow[];
  sidecarAudit: { idleRssMb: number; peakRssMb: number };
}
interface McpResults {
  date: string;
  summary: Array<HttpRow & { answers: string }>;
  sidecarAudit: { peakRssMb: number };
}
interface StartupResults {
  date: string;
  startMs: number;
  starts: number[];
  idleRssMb: number;
}

/** One row of the table: a measure at one point, per target, with ratios of the audited sidecar. */
interface Row {
  measure: string;
  point: string;
  direct?: number;
  peer?: number;
  floor?: number;
  off?: number;
  on?: number;
  onVsPeer?: number;
  onVsFloor?: number;
  onVsOff?: number;
}

function row(measure: string, point: string, v: Omit<Row, 'measure' | 'point' | 'onVsPeer' | 'onVsFloor' | 'onVsOff'>): Row {
  const r = (a?: number, b?: number): number | undefined =>
    a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : undefined;
  return { measure, point, ...v, onVsPeer: r(v.on, v.peer), onVsFloor: r(v.on, v.floor), onVsOff: r(v.on, v.off) };
}

export function summarize(): {
  rows: Row[];
  memory: Record<string, number | undefined>;
  startup?: StartupResults;
  targets: Array<{ target: string; value: string; ok?: boolean }>;
  sources: Record<string, string | null>;
} {
  const pg = read<PgResults>('bench-results.json');
  const http = read<HttpResults>('bench-http-results.json');
  const startup = read<StartupResults>('bench-startup-results.json');
  const mcp = read<McpResults>('bench-mcp-results.json');
  const rows: Row[] = [];
  const pgPoints = pg ? [...new Set(pg.summary.map((s) => `${s.mode} c=${s.clients}`))] : [];
  const pgGet = (point: string, target: string): PgSummary | undefined =>
    pg?.summary.find((s) => `${s.mode} c=${s.clients}` === point && s.target === target);
  for (const p of pgPoints) {
    const v = (t: string, k: 'tps' | 'proxyCpuUsPerTx'): number | undefined => pgGet(p, t)?.[k];
    rows.push(
      row('pg TPS', p, {
        direct: v('direct', 'tps'),
        peer: v('pgbouncer', 'tps'),
        floor: v('node-relay', 'tps'),
        off: v('sidecar', 'tps'),
        on: v('sidecar-audit', 'tps'),
      }),
    );
  }
  for (const p of pgPoints) {
    const v = (t: string): number | undefined => pgGet(p, t)?.proxyCpuUsPerTx;
    rows.push(row('pg CPU µs/tx', p, { peer: v('pgbouncer'), floor: v('node-relay'), off: v('sidecar'), on: v('sidecar-audit') }));
  }
  const httpModes = http ? [...new Set(http.summary.map((s) => s.mode))] : [];
  const hGet = (mode: string, target: string): HttpRow | undefined => http?.summary.find((s) => s.mode === mode && s.target === target);
  const hRow = (measure: string, mode: string, k: 'rps' | 'p50Us' | 'p99Us' | 'proxyCpuUsPerReq'): Row =>
    row(measure, mode, {
      ...(k === 'proxyCpuUsPerReq' ? {} : { direct: hGet(mode, 'direct')?.[k] }),
      peer: hGet(mode, 'nginx')?.[k],
      floor: hGet(mode, 'node-proxy')?.[k],
      off: hGet(mode, 'sidecar')?.[k],
      on: hGet(mode, 'sidecar-audit')?.[k],
    });
  const saturation = httpModes.filter((m) => m.startsWith('c='));
  for (const m of saturation) rows.push(hRow('http req/s', m, 'rps'));
  for (const m of httpModes) rows.push(hRow('http p50 µs', m, 'p50Us'));
  for (const m of httpModes) rows.push(hRow('http p99 µs', m, 'p99Us'));
  for (const m of httpModes) rows.push(hRow('http CPU µs/req', m, 'proxyCpuUsPerReq'));
  rows.push(...mcpRows(mcp));

  const peaks = [pg?.sidecarAudit?.peakRssMb, http?.sidecarAudit?.peakRssMb].filter((x): x is number => x !== undefined);
  const memory = {
    idleRssMb: startup?.idleRssMb,
    peakRssPgMb: pg?.sidecarAudit?.peakRssMb,
    peakRssHttpMb: http?.sidecarAudit?.peakRssMb,
    peakRssMb: peaks.length ? Math.max(...peaks) : undefined,
  };

  const worst = (xs: Array<number | undefined>): number | undefined => {
    const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
    return v.length ? Math.min(...v) : undefined;
  };
  const best = (xs: Array<number | undefined>): number | undefined => {
    const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
    return v.length ? Math.max(...v) : undefined;
  };
  const x = (n?: number): string => (n === undefined ? '-' : `${fmt(n, 2)}x`);
  const pgTps = rows.filter((r) => r.measure === 'pg TPS');
  const pgCpu = rows.filter((r) => r.measure === 'pg CPU µs/tx');
  const httpRps = rows.filter((r) => r.measure === 'http req/s');
  const httpCpu = rows.filter((r) => r.measure === 'http CPU µs/req' && saturation.includes(r.point));
  const c1 = hGet('c=1', 'sidecar-audit');
  const c1d = hGet('c=1', 'direct');
  const addedP50 = c1 && c1d ? c1.p50Us - c1d.p50Us : undefined;
  const t = (
    target: string,
    value: number | undefined,
    show: string,
    ok: (v: number) => boolean,
  ): { target: string; value: string; ok?: boolean } => ({
    target,
    value: value === undefined ? 'not measured' : show,
    ok: value === undefined ? undefined : ok(value),
  });
  const pgPeer = worst(pgTps.map((r) => r.onVsPeer));
  const onOff = worst(pgTps.map((r) => r.onVsOff));
  const pgCpuFloor = best(pgCpu.map((r) => r.onVsFloor));
  const httpPeer = worst(httpRps.map((r) => r.onVsPeer));
  const httpCpuFloor = best(httpCpu.map((r) => r.onVsFloor));
  const targets = [
    t('pg audit on >= 0.6x pgbouncer TPS (every point)', pgPeer, `worst ${x(pgPeer)}`, (v) => v >= 0.6),
    t('pg audit on/off >= 0.85x TPS (every point)', onOff, `worst ${x(onOff)}`, (v) => v >= 0.85),
    t('pg CPU/tx audit on <= 1.3x node relay (process CPU)', pgCpuFloor, `worst ${x(pgCpuFloor)}`, (v) => v <= 1.3),
    t('http saturation >= 0.4x nginx (audit on)', httpPeer, `worst ${x(httpPeer)}`, (v) => v >= 0.4),
    t('http added p50 <= 500 µs at one connection', addedP50, `${fmt(addedP50)} µs`, (v) => v <= 500),
    t('http CPU/req <= 1.5x node + undici proxy', httpCpuFloor, `worst ${x(httpCpuFloor)}`, (v) => v <= 1.5),
    t('RSS idle <= 80 MB (audit on, typical policy)', memory.idleRssMb, `${fmt(memory.idleRssMb, 1)} MB`, (v) => v <= 80),
    t('RSS peak <= 100 MB under the bench load (audit on)', memory.peakRssMb, `${fmt(memory.peakRssMb, 1)} MB`, (v) => v <= 100),
    t('start to /readyz < 1 s (median)', startup?.startMs, `${fmt(startup?.startMs)} ms`, (v) => v < 1000),
  ];
  return {
    rows,
    memory,
    startup,
    targets,
    sources: { pg: pg?.date ?? null, http: http?.date ?? null, startup: startup?.date ?? null, mcp: mcp?.date ?? null },
  };
}

/** MCP tools/call (bench/mcp-bench.ts): direct, the Node floor and the sidecar with audit on; no peer, no audit-off run. */
function mcpRows(mcp: McpResults | undefined): Row[] {
  if (!mcp) return [];
  const modes = [...new Set(mcp.summary.map((s) => s.mode))];
  const get = (mode: string, target: string): HttpRow | undefined => mcp.summary.find((s) => s.mode === mode && s.target === target);
  const mRow = (measure: string, mode: string, k: 'rps' | 'p50Us' | 'p99Us' | 'proxyCpuUsPerReq'): Row =>
    row(measure, mode, {
      ...(k === 'proxyCpuUsPerReq' ? {} : { direct: get(mode, 'direct')?.[k] }),
      floor: get(mode, 'node-proxy')?.[k],
      on: get(mode, 'sidecar-audit')?.[k],
    });
  const added = (mode: string): Row => {
    const on = get(mode, 'sidecar-audit')?.p50Us;
    const direct = get(mode, 'direct')?.p50Us;
    const floor = get(mode, 'node-proxy')?.p50Us;
    return row('mcp added p50 µs', mode, {
      floor: floor !== undefined && direct !== undefined ? floor - direct : undefined,
      on: on !== undefined && direct !== undefined ? on - direct : undefined,
    });
  };
  return [
    ...modes.map((m) => mRow('mcp calls/s', m, 'rps')),
    ...modes.map((m) => mRow('mcp p50 µs', m, 'p50Us')),
    ...modes.filter((m) => m.endsWith('c=1')).map(added),
    ...modes.map((m) => mRow('mcp p99 µs', m, 'p99Us')),
    ...modes.map((m) => mRow('mcp CPU µs/call', m, 'proxyCpuUsPerReq')),
  ];
}

function main(): void {
  const s = summarize();
  const num = (v?: number, d = 0): string => (v === undefined || !Number.isFinite(v) ? '' : fmt(v, d));
  const x = (v?: number): string => (v === undefined ? '' : `${fmt(v, 2)}x`);
  const rows = s.rows.map((r) => [
    r.measure,
    r.point,
    num(r.direct),
    num(r.peer),
    num(r.floor),
    num(r.off),
    num(r.on),
    x(r.onVsPeer),
    x(r.onVsFloor),
    x(r.onVsOff),
  ]);
  rows.push(['RSS MB idle', 'start, typical policy', '', '', '', '', num(s.memory.idleRssMb, 1), '', '', '']);
  rows.push([
    'RSS MB peak',
    'pg bench / http bench',
    '',
    '',
    '',
    '',
    `${num(s.memory.peakRssPgMb, 1)} / ${num(s.memory.peakRssHttpMb, 1)}`,
    '',
    '',
    '',
  ]);
  if (s.startup)
    rows.push(['start ms to /readyz', `median of ${s.startup.starts.length}`, '', '', '', '', num(s.startup.startMs), '', '', '']);
  const out: string[] = [''];
  out.push(
    'Summary: peer = pgbouncer (pg) / nginx (http); Node floor = bare Node relay (pg) / node:http + undici proxy (http, mcp); mcp = tools/call;',
  );
  out.push('sidecar = one process, all its threads; on = audit on (spool + OTLP export). CPU = proxy process CPU per operation.');
  out.push(
    table(['measure', 'point', 'direct', 'peer', 'Node floor', 'sidecar off', 'sidecar on', 'on/peer', 'on/floor', 'on/off'], rows, [
      false,
      false,
    ]),
  );
  out.push('');
  out.push('Targets (issue 12, same-run ratios, audit on):');
  for (const t of s.targets) out.push(`  ${t.ok === undefined ? 'n/a ' : t.ok ? 'PASS' : 'MISS'}  ${t.target.padEnd(52)} ${t.value}`);
  process.stdout.write(out.join('\n') + '\n');
  const file = path.join(DIR, 'bench-summary.json');
  fs.writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), ...s }, null, 2) + '\n');
  process.stdout.write(`Wrote ${path.relative(process.cwd(), file)}\n`);
}

if (require.main === module) main();
