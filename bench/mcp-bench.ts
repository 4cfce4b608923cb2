// `make bench` (MCP part): MCP `tools/call` requests/s, latency and proxy CPU per call against a
// real MCP server (the official SDK's McpServer over streamable HTTP, sessions, ~1 KB results with
// an e-mail address in them) called directly, through a bare Node.js proxy (bench/node-proxy.ts:
// node:http + undici, no policy: the floor of a Node proxy) and through the sidecar's MCP route
// with its audit trail on (its own process: every message parsed strictly and judged, tools/list
// filtered, tool results masked, every request spooled and exported to an OTLP receiver). Both
// answer modes of the server: JSON (`enableJsonResponse`) and an event stream per call (SSE, the
// SDK's default). Closed loop at BENCH_CLIENTS connections, each its own MCP session; interleaved
// in rounds in one run, so every ratio is between figures of the same run. Prints the median of
// the rounds and writes dist-dev/bench-mcp-results.json (bench/summary.ts adds it to the table).
//
// Every server and the load generator run in their own processes: this file is also the entry
// point of the upstream and the load generator (`node dist-dev/bench/mcp-bench.js --role
// upstream|load ...`).
//
// Environment: BENCH_MCP_SECONDS or BENCH_SECONDS (per run, default 3), BENCH_ROUNDS (default 2),
// BENCH_CLIENTS (connections, e.g. "1,8"), BENCH_MCP_MODES (answer modes, default "json,sse"),
// BENCH_WARMUP (seconds per target before the rounds, default 1), BENCH_MCP=0 (skip this benchmark),
// BENCH_PROFILE=1 (the sidecar runs with --cpu-prof into bench/profiles/; read it with profile-top.js).
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Pool } from 'undici';
import { z } from 'zod';
import { listenAndAnnounce } from './child';
import {
  assertAlive,
  benchEnv,
  checkInterrupted,
  envClients,
  envCount,
  envNum,
  fmt,
  makeTempDir,
  median,
  percentile,
  procCpuSeconds,
  rotate,
  runCmd,
  runMain,
  sleep,
  startListeningChild,
  startOtlpSink,
  startSidecarProcess,
  table,
  type OtlpSink,
  type Supervised,
} from './support';

const TOKEN = 'mcp-bench-token-0123456789';
const EMAIL = 'jane.doe@example.com';
const ROUTE = 'tools';
const PROTOCOL_VERSION = '2025-11-25';
const CALL = { name: 'search_customers', arguments: { query: 'Jane' } };
const ACCEPT = 'application/json, text/event-stream';

// ---------------------------------------------------------------------------------------------
// Child roles

/** The result of search_customers: ~1 KB of text and structured content, one e-mail address in each. */
function searchResult(query: string): { content: Array<{ type: 'text'; text: string }>; structuredContent: Record<string, unknown> } {
  const notes = 'Prefers e-mail; renewals in March; seat changes go through procurement. '.repeat(6);
  return {
    content: [{ type: 'text', text: `Found 1 customer for "${query}": Jane Doe <${EMAIL}>, account 4471, plan team. ${notes}` }],
    structuredContent: { customers: [{ id: 4471, name: 'Jane Doe', email: EMAIL, plan: 'team', notes }] },
  };
}

/** An MCP server (official SDK) with sessions; `--json` answers JSON, otherwise an event stream per call. */
function roleUpstream(args: string[]): void {
  const json = args.includes('--json');
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const newServer = (): McpServer => {
    const server = new McpServer({ name: 'bench-tools', version: '1.0.0' });
    server.registerTool('search_customers', { description: 'Search customers by name', inputSchema: { query: z.string() } }, ({ query }) =>
      searchResult(query),
    );
    server.registerTool('delete_customer', { description: 'Delete a customer', inputSchema: { id: z.number() } }, ({ id }) => ({
      content: [{ type: 'text', text: `deleted ${id}` }],
    }));
    return server;
  };
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    // Proves the proxies injected the credential (the agent's requests carry none).
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error":"bad token"}');
      return;
    }
    const sid = req.headers['mcp-session-id'];
    let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
    if (!transport) {
      if (typeof sid === 'string' || req.method !== 'POST') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}');
        return;
      }
      const t = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: json,
        onsessioninitialized: (id) => void transports.set(id, t),
      });
      t.onclose = () => void (t.sessionId && transports.delete(t.sessionId));
      await newServer().connect(t);
      transport = t;
    }
    await transport.handleRequest(req, res);
  };
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  listenAndAnnounce(server);
}

export interface LoadResult {
  requests: number;
  /** tools/call requests completed in all, warm-up included (for CPU per call). */
  totalRequests: number;
  errors: number;
  firstError?: string;
  seconds: number;
  rps: number;
  p50Us: number;
  p99Us: number;
}

/** One MCP session on `pool`: initialize, notifications/initialized; returns the headers its calls carry. */
async function openSession(pool: Pool, pathname: string, auth: boolean): Promise<Record<string, string>> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: ACCEPT,
    ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}),
  };
  const init = await pool.request({
    path: pathname,
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'bench-agent', version: '1.0.0' } },
    }),
  });
  const initBody = await init.body.text();
  const sid = init.headers['mcp-session-id'];
  if (init.statusCode !== 200 || typeof sid !== 'string') throw new Error(`initialize: HTTP ${init.statusCode} ${initBody.slice(0, 300)}`);
  const session = { ...headers, 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL_VERSION };
  const note = await pool.request({
    path: pathname,
    method: 'POST',
    headers: session,
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  await note.body.dump();
  if (note.statusCode !== 202) throw new Error(`notifications/initialized: HTTP ${note.statusCode}`);
  return session;
}

/** One tools/call; the answer's text (a JSON body, or the event stream), or throws. */
async function callTool(pool: Pool, pathname: string, headers: Record<string, string>, id: number, call: unknown): Promise<string> {
  const res = await pool.request({
    path: pathname,
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: call }),
  });
  const body = await res.body.text();
  if (res.statusCode !== 200 || !body.includes('"result"')) throw new Error(`tools/call: HTTP ${res.statusCode} ${body.slice(0, 300)}`);
  return body;
}

/** Closed-loop load: `connections` workers, each its own session, one tools/call in flight each. */
async function roleLoad(args: string[]): Promise<void> {
  const opt = (name: string): string => {
    const i = args.indexOf(`--${name}`);
    if (i < 0 || i + 1 >= args.length) throw new Error(`load: --${name} is required`);
    return args[i + 1];
  };
  const url = new URL(opt('url'));
  const connections = Number(opt('connections'));
  const seconds = Number(opt('seconds'));
  const warmup = Number(opt('warmup'));
  const auth = args.includes('--auth');
  const pool = new Pool(url.origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const sessions = await Promise.all(Array.from({ length: connections }, () => openSession(pool, url.pathname, auth)));
  const startNs = process.hrtime.bigint();
  const measureFrom = startNs + BigInt(Math.round(warmup * 1e9));
  const endAt = measureFrom + BigInt(Math.round(seconds * 1e9));
  const latencies: number[] = [];
  let totalRequests = 0;
  let errors = 0;
  let firstError: string | undefined;
  let id = 1;
  const worker = async (headers: Record<string, string>): Promise<void> => {
    while (process.hrtime.bigint() < endAt && errors < 100) {
      const t0 = process.hrtime.bigint();
      try {
        await callTool(pool, url.pathname, headers, id++, CALL);
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
        continue;
      }
      const t1 = process.hrtime.bigint();
      totalRequests++;
      if (t0 >= measureFrom && t1 <= endAt) latencies.push(Number(t1 - t0) / 1000);
    }
  };
  await Promise.all(sessions.map((s) => worker(s)));
  await pool.close();
  const sorted = Float64Array.from(latencies).sort();
  const measured = Math.max(1e-3, Math.min(Number(process.hrtime.bigint() - measureFrom), seconds * 1e9) / 1e9);
  const result: LoadResult = {
    requests: sorted.length,
    totalRequests,
    errors,
    ...(firstError ? { firstError } : {}),
    seconds: measured,
    rps: sorted.length / measured,
    p50Us: percentile(sorted, 50),
    p99Us: percentile(sorted, 99),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

// ---------------------------------------------------------------------------------------------
// The benchmark

function mcpPolicy(jsonPort: number, ssePort: number): string {
  const target = (name: string, port: number): string => `    - name: ${name}
      mcp:
        url: http://127.0.0.1:${port}/mcp
        credentialsSecret: tools-token
        auth:
          header: Authorization
          valuePrefix: "Bearer "`;
  return `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata:
  name: bench-mcp
spec:
  defaultAction: deny
  targets:
${target(`${ROUTE}-json`, jsonPort)}
${target(`${ROUTE}-sse`, ssePort)}
  rules:
    - name: no-deletes
      action: deny
      match:
        mcp:
          tools: ["delete_*"]
    - name: prod-needs-approval
      action: hold
      approval:
        approvers:
          groups: [sre]
      match:
        mcp:
          tools: [run_query]
          arguments:
            - path: $.database
              values: [prod]
    - name: search
      action: allow
      match:
        mcp:
          tools: [search_customers, run_query]
  masking:
    - name: pii
      detectors: [email]
      strategy: redact
`;
}

type TargetName = 'direct' | 'node-proxy' | 'sidecar-audit';

interface Target {
  name: TargetName;
  url: string;
  auth: boolean;
  proxy?: Supervised;
}

interface Mode {
  label: string;
  answers: 'json' | 'sse';
  clients: number;
}

interface Run extends Partial<LoadResult> {
  round: number;
  mode: string;
  target: TargetName;
  proxyCpuUsPerReq?: number;
  error?: string;
}

export interface McpSummary {
  mode: string;
  answers: 'json' | 'sse';
  clients: number;
  target: TargetName;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50Us: number;
  p99Us: number;
  proxyCpuUsPerReq?: number;
  okRuns: number;
}

async function load(t: Target, clients: number, label: string, seconds: number, warmup: number): Promise<Omit<Run, 'round'>> {
  const args = [__filename, '--role', 'load', '--url', t.url, '--connections', String(clients), '--seconds', String(seconds)];
  args.push('--warmup', String(warmup));
  if (t.auth) args.push('--auth');
  const cpu0 = t.proxy ? procCpuSeconds(t.proxy.pid) : undefined;
  const r = await runCmd(process.execPath, args, { env: benchEnv(), timeoutMs: (seconds + warmup + 60) * 1000 });
  const cpu1 = t.proxy ? procCpuSeconds(t.proxy.pid) : undefined;
  const base = { mode: label, target: t.name };
  let res: LoadResult;
  try {
    res = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as LoadResult;
  } catch {
    return {
      ...base,
      error: `load generator exited ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ')}`,
    };
  }
  const cpu =
    cpu0 !== undefined && cpu1 !== undefined && res.totalRequests > 0
      ? { proxyCpuUsPerReq: ((cpu1 - cpu0) * 1e6) / res.totalRequests }
      : {};
  if (res.errors > 0) return { ...base, ...res, ...cpu, error: `${res.errors} failed request(s); first: ${res.firstError}` };
  return { ...base, ...res, ...cpu };
}

/** Checks a target answers like the real thing; for the sidecar also that the policy is enforced (list filtered, delete refused, e-mail masked). */
async function checkTarget(t: Target): Promise<string[]> {
  const problems: string[] = [];
  const url = new URL(t.url);
  const pool = new Pool(url.origin, { connections: 1 });
  try {
    const session = await openSession(pool, url.pathname, t.auth);
    const found = await callTool(pool, url.pathname, session, 1, CALL);
    const isSidecar = t.name.startsWith('sidecar');
    if (isSidecar && found.includes(EMAIL))
      problems.push('the e-mail address in the tool result was NOT masked: is MCP result masking wired?');
    if (!isSidecar && !found.includes(EMAIL)) problems.push('the e-mail address is missing from the unproxied tool result');
    if (isSidecar) {
      const list = await pool.request({
        path: url.pathname,
        method: 'POST',
        headers: session,
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      const tools = await list.body.text();
      if (!tools.includes('search_customers') || tools.includes('delete_customer'))
        problems.push(`tools/list was not filtered (delete_customer shown or search_customers missing): ${tools.slice(0, 200)}`);
      const del = await callTool(pool, url.pathname, session, 3, { name: 'delete_customer', arguments: { id: 1 } });
      if (!del.includes('"isError":true') || !del.includes('no-deletes'))
        problems.push(`delete_customer was not refused by rule no-deletes: ${del.slice(0, 200)}`);
    }
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    await pool.close();
  }
  return problems;
}

async function waitForExportQuiet(sink: OtlpSink, maxMs = 2_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  let last = JSON.stringify(await sink.stats());
  while (Date.now() < deadline) {
    await sleep(300);
    const now = JSON.stringify(await sink.stats());
    if (now === last) return;
    last = now;
  }
}

async function main(): Promise<number> {
  if (process.env.BENCH_MCP === '0') {
    process.stdout.write('MCP bench skipped (BENCH_MCP=0)\n');
    return 0;
  }
  const t0 = Date.now();
  const SECONDS = envNum('BENCH_MCP_SECONDS', envNum('BENCH_SECONDS', 3));
  const ROUNDS = envCount('BENCH_ROUNDS', 2);
  const WARMUP = envNum('BENCH_WARMUP', 1);
  const RUN_WARMUP = 0.3;
  const CLIENTS = envClients();
  const ANSWERS = (process.env.BENCH_MCP_MODES ?? 'json,sse').split(',').map((s) => s.trim());
  if (ANSWERS.some((a) => a !== 'json' && a !== 'sse'))
    throw new Error(`BENCH_MCP_MODES must list json and/or sse, got "${ANSWERS.join(',')}"`);
  const modes: Mode[] = (ANSWERS as Array<'json' | 'sse'>).flatMap((answers) =>
    CLIENTS.map((c) => ({ label: `${answers} c=${c}`, answers, clients: c })),
  );
  const estimate = Math.round(modes.length * 3 * ROUNDS * (SECONDS + RUN_WARMUP + 0.7) + 6 * (WARMUP + 0.5) + 5);
  process.stdout.write(
    `MCP: tools/call ${CALL.name} (~1 KB result), ${SECONDS} s per run, ${ROUNDS} rounds, ${modes.map((m) => m.label).join(' / ')}, ${os.cpus().length} CPUs shared by load generator, proxy and server (about ${estimate} s)\n`,
  );
  const loadBefore = os.loadavg();
  if (loadBefore[0] > 0.5)
    process.stdout.write(
      `note: load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before starting: other work on this machine adds noise\n`,
    );

  const upJson = await startListeningChild('mcp-server-json', [__filename, '--role', 'upstream', '--json']);
  const upSse = await startListeningChild('mcp-server-sse', [__filename, '--role', 'upstream']);
  const sink = await startOtlpSink();
  const auditDir = makeTempDir('warden-bench-mcp-audit-');
  const spoolDir = path.join(auditDir, 'spool');
  fs.mkdirSync(spoolDir);
  const sca = await startSidecarProcess({
    policy: () => mcpPolicy(upJson.port, upSse.port),
    secrets: { 'tools-token/token': TOKEN + '\n' },
    egress: true,
    name: 'sidecar-audit',
    dir: auditDir,
    profile: process.env.BENCH_PROFILE === '1',
    args: ['--spool-dir', spoolDir],
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url },
  });
  const floors = {
    json: await startListeningChild('node-proxy-json', [
      path.resolve(__dirname, 'node-proxy.js'),
      '0',
      `http://127.0.0.1:${upJson.port}`,
      `Bearer ${TOKEN}`,
    ]),
    sse: await startListeningChild('node-proxy-sse', [
      path.resolve(__dirname, 'node-proxy.js'),
      '0',
      `http://127.0.0.1:${upSse.port}`,
      `Bearer ${TOKEN}`,
    ]),
  };
  const upstreams = { json: upJson, sse: upSse };
  const targetsFor = (answers: 'json' | 'sse'): Target[] => [
    { name: 'direct', url: `http://127.0.0.1:${upstreams[answers].port}/mcp`, auth: true },
    { name: 'node-proxy', url: `http://127.0.0.1:${floors[answers].port}/api/mcp`, auth: false, proxy: floors[answers] },
    { name: 'sidecar-audit', url: `http://127.0.0.1:${sca.port}/${ROUTE}-${answers}`, auth: false, proxy: sca },
  ];
  const children: Supervised[] = [upJson, upSse, sink, sca, floors.json, floors.sse];

  const warnings: string[] = [];
  for (const answers of ANSWERS as Array<'json' | 'sse'>) {
    for (const t of targetsFor(answers)) {
      for (const p of await checkTarget(t)) warnings.push(`${answers} ${t.name}: ${p}`);
    }
  }
  for (const w of warnings) process.stdout.write(`WARNING: ${w}\n`);

  if (WARMUP > 0) {
    for (const answers of ANSWERS as Array<'json' | 'sse'>) {
      for (const t of targetsFor(answers)) {
        checkInterrupted();
        const w = await load(t, Math.max(...CLIENTS), 'warm-up', WARMUP, 0);
        if (w.error)
          throw new Error(
            `warm-up against ${answers} ${t.name} failed: ${w.error}${t.proxy ? `\n${t.name} output tail:\n${t.proxy.tail()}` : ''}`,
          );
      }
    }
    await waitForExportQuiet(sink);
  }

  const runs: Run[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const [mi, mode] of modes.entries()) {
      for (const t of rotate(targetsFor(mode.answers), round + mi)) {
        checkInterrupted();
        const r: Run = { round, ...(await load(t, mode.clients, mode.label, SECONDS, RUN_WARMUP)) };
        runs.push(r);
        process.stdout.write(
          `  round ${round + 1}/${ROUNDS}  ${mode.label.padEnd(9)} ${t.name.padEnd(13)} ` +
            (r.error && r.rps === undefined
              ? `ERROR ${r.error}`
              : `${fmt(r.rps).padStart(6)} calls/s  p50 ${fmt(r.p50Us)} µs  p99 ${fmt(r.p99Us)} µs`) +
            (r.proxyCpuUsPerReq !== undefined ? `  proxy CPU ${r.proxyCpuUsPerReq.toFixed(0)} µs/call` : '') +
            (r.error && r.rps !== undefined ? `  ERROR ${r.error}` : '') +
            '\n',
        );
        if (t.name === 'sidecar-audit') await waitForExportQuiet(sink);
        assertAlive(children);
      }
    }
  }
  const peakRssMb = sca.rss.hwmMb();

  const summaries: McpSummary[] = [];
  for (const mode of modes) {
    for (const t of targetsFor(mode.answers)) {
      const rs = runs.filter((r) => r.mode === mode.label && r.target === t.name && !r.error);
      const cpu = rs.map((r) => r.proxyCpuUsPerReq).filter((x): x is number => x !== undefined);
      summaries.push({
        mode: mode.label,
        answers: mode.answers,
        clients: mode.clients,
        target: t.name,
        rps: median(rs.map((r) => r.rps!)),
        rpsMin: Math.min(...rs.map((r) => r.rps!)),
        rpsMax: Math.max(...rs.map((r) => r.rps!)),
        p50Us: median(rs.map((r) => r.p50Us!)),
        p99Us: median(rs.map((r) => r.p99Us!)),
        ...(cpu.length ? { proxyCpuUsPerReq: median(cpu) } : {}),
        okRuns: rs.length,
      });
    }
  }
  const get = (mode: string, target: TargetName): McpSummary | undefined => summaries.find((s) => s.mode === mode && s.target === target);
  const out: string[] = [
    '',
    `MCP results (median of ${ROUNDS} rounds, ${SECONDS} s each; proxy CPU = proxy process user+system time / tools/call, warm-up included)`,
  ];
  out.push(
    table(
      ['mode', 'target', 'calls/s', 'calls/s range', 'p50 µs', 'p99 µs', 'added p50 µs', 'vs direct', 'proxy CPU µs/call', 'ok runs'],
      summaries.map((s) => {
        const d = get(s.mode, 'direct');
        const added = s.target !== 'direct' && d ? s.p50Us - d.p50Us : undefined;
        return [
          s.mode,
          s.target,
          fmt(s.rps),
          s.okRuns ? `${fmt(s.rpsMin)}..${fmt(s.rpsMax)}` : '-',
          fmt(s.p50Us),
          fmt(s.p99Us),
          added !== undefined ? fmt(added) : '',
          s.target !== 'direct' && d && d.rps > 0 ? `${fmt(s.rps / d.rps, 2)}x` : '',
          s.proxyCpuUsPerReq !== undefined ? fmt(s.proxyCpuUsPerReq) : '',
          `${s.okRuns}/${ROUNDS}`,
        ];
      }),
      [false, false],
    ),
  );
  out.push('');
  out.push(`sidecar-audit RSS peak ${fmt(peakRssMb, 1)} MB (VmHWM)`);
  const errors = runs.filter((r) => r.error);
  if (errors.length) {
    out.push(`${errors.length} run(s) failed:`);
    for (const e of errors) out.push(`  round ${e.round + 1} ${e.mode} ${e.target}: ${e.error}`);
  }
  const problems = sca.problemLines();
  if (problems.length) {
    out.push(`sidecar-audit logged ${problems.length} warning/error line(s); last ones:`);
    for (const l of problems.slice(-5)) out.push('  ' + l.slice(0, 400));
  } else out.push('sidecar-audit log: no warnings or errors.');
  out.push(`Total time ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.stdout.write(out.join('\n') + '\n');

  const results = {
    date: new Date().toISOString(),
    settings: {
      seconds: SECONDS,
      rounds: ROUNDS,
      warmupSeconds: WARMUP,
      runWarmupSeconds: RUN_WARMUP,
      modes,
      call: CALL,
      protocolVersion: PROTOCOL_VERSION,
    },
    environment: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      node: process.version,
      loadAverageBefore: loadBefore,
      loadAverageAfter: os.loadavg(),
    },
    summary: summaries,
    sidecarAudit: { peakRssMb },
    warnings,
    otlpSink: await sink.stats(),
    logProblems: problems.slice(-50),
    runs,
  };
  const jsonFile = path.resolve(__dirname, '..', 'bench-mcp-results.json');
  fs.writeFileSync(jsonFile, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(`Wrote ${path.relative(process.cwd(), jsonFile)}\n`);
  return errors.length || warnings.length ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------

const roleAt = process.argv.indexOf('--role');
if (roleAt >= 0) {
  const role = process.argv[roleAt + 1];
  if (role === 'upstream') roleUpstream(process.argv.slice(roleAt + 2));
  else if (role === 'load')
    roleLoad(process.argv.slice(roleAt + 2)).catch((err: Error) => {
      process.stderr.write(`load: ${err.stack ?? err.message}\n`);
      process.exit(1);
    });
  else {
    process.stderr.write(`unknown role "${role}": upstream or load\n`);
    process.exit(2);
  }
} else {
  runMain(main);
}
