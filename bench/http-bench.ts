// `make bench` (HTTP part): requests/s, latency and proxy CPU per request of an OpenAI-style JSON
// API called directly, through nginx as a reverse proxy (when installed), through a bare Node.js
// proxy (bench/node-proxy.ts: node:http + undici, no policy: the floor of a Node proxy) and
// through the sidecar's egress route with its audit trail on (its own process; a realistic policy:
// rule check, credential injection, JSON response parsed and masked, every request spooled and
// exported to an OTLP receiver). Each at saturation (closed loop, BENCH_CLIENTS connections) and
// at a fixed rate (open loop, wrk2-style: BENCH_RATE requests/s whether or not answers came back).
// Interleaved in rounds in one run; prints the median of the rounds and writes
// dist-dev/bench-http-results.json (bench/summary.ts merges it into the one table).
//
// Every server and the load generator run in their own processes: this file is also the entry
// point of the upstream and the load generator (`node dist-dev/bench/http-bench.js --role
// upstream|load ...`), the OTLP receiver is bench/otlp-sink.ts, so nothing competes with the
// measured process inside the bench process itself.
//
// Environment: BENCH_HTTP_SECONDS or BENCH_SECONDS (per run, default 3), BENCH_ROUNDS (default 2),
// BENCH_CLIENTS (connections, e.g. "1,8"), BENCH_RATE (requests/s, default 500; 0 skips),
// BENCH_WARMUP (seconds per target before the rounds, default 1), BENCH_HTTP_AUDIT_OFF=1 (the
// sidecar with audit off too), BENCH_NGINX=0 (skip nginx), BENCH_HTTP=0 (skip this benchmark),
// BENCH_PROFILE=1 (the audit sidecar runs under --cpu-prof, profiles in bench/profiles/; read them
// with dist-dev/bench/profile-top.js), BENCH_HTTP_BASELINE=<dir> (also a sidecar with audit on from
// another build, e.g. a copy of dist-dev/ made before a change: target "baseline-audit", same run).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Pool, request } from 'undici';
import { freePort } from '../tools/pg-server';
import { listenAndAnnounce } from './child';
import {
  assertAlive,
  benchEnv,
  checkInterrupted,
  envClients,
  envCount,
  envNum,
  findExecutable,
  fmt,
  makeTempDir,
  median,
  percentile,
  procCpuSeconds,
  procStatus,
  rotate,
  runCmd,
  runMain,
  sleep,
  startListeningChild,
  startOtlpSink,
  startSidecarProcess,
  supervise,
  table,
  tcpAccepts,
  track,
  waitUntilReady,
  type OtlpSink,
  type SidecarSetup,
  type Supervised,
} from './support';

const TOKEN = 'sk-bench-0123456789';
const EMAIL = 'jane.doe@example.com';
const ROUTE = 'api';
const CHAT_PATH = '/v1/chat/completions';
const REQUEST_BODY = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Who is the account owner?' }] });

// ---------------------------------------------------------------------------------------------
// Child roles

/** Pads a JSON document with a filler field to about `bytes` bytes. */
function padJson(doc: Record<string, unknown>, bytes: number): Buffer {
  const base = JSON.stringify({ ...doc, system_fingerprint: '' });
  return Buffer.from(JSON.stringify({ ...doc, system_fingerprint: 'fp_' + 'x'.repeat(Math.max(0, bytes - base.length - 3)) }));
}

function upstreamBodies(): { chat: Buffer; items: Buffer } {
  const chat = padJson(
    {
      id: 'chatcmpl-bench0001',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'gpt-4o-mini-2024-07-18',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: `The account owner is Jane Doe. You can reach her at ${EMAIL} during business hours; she handles renewals, invoices and seat changes for the whole organisation.`,
            refusal: null,
          },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: { prompt_tokens: 21, completion_tokens: 38, total_tokens: 59 },
    },
    1024,
  );
  const items = padJson(
    {
      object: 'list',
      data: Array.from({ length: 6 }, (_, i) => ({ id: `item_${i}`, name: `Widget ${i}`, price_cents: 1999 + i, in_stock: i % 2 === 0 })),
      has_more: false,
    },
    1024,
  );
  return { chat, items };
}

/** An OpenAI-style JSON API: credentials checked, keep-alive, ~1 KB responses. */
function roleUpstream(): void {
  const { chat, items } = upstreamBodies();
  const json = (res: http.ServerResponse, status: number, body: Buffer): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    req.resume(); // the body is not needed, only its end
    req.on('end', () => {
      // Proves the sidecar injected the credential (the agent's requests carry none).
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(res, 401, Buffer.from('{"error":{"message":"bad token"}}'));
      if (req.method === 'POST' && req.url === CHAT_PATH) return json(res, 200, chat);
      if (req.method === 'GET' && req.url?.startsWith('/v1/items')) return json(res, 200, items);
      return json(res, 404, Buffer.from('{"error":{"message":"not found"}}'));
    });
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  listenAndAnnounce(server);
}

export interface LoadResult {
  /** Requests completed in the measured window. */
  requests: number;
  /** Requests completed in all, warm-up included (for CPU per request). */
  totalRequests: number;
  errors: number;
  firstError?: string;
  seconds: number;
  rps: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
}

/** Closed-loop load: `connections` workers, one request in flight each, on an undici Pool. */
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
  const rate = args.includes('--rate') ? Number(opt('rate')) : 0;
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}) };
  const pool = new Pool(url.origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const startNs = process.hrtime.bigint();
  const measureFrom = startNs + BigInt(Math.round(warmup * 1e9));
  const endAt = measureFrom + BigInt(Math.round(seconds * 1e9));
  const latencies: number[] = [];
  let totalRequests = 0;
  let errors = 0;
  let firstError: string | undefined;
  const worker = async (): Promise<void> => {
    while (process.hrtime.bigint() < endAt && errors < 100) {
      const t0 = process.hrtime.bigint();
      try {
        const res = await pool.request({ path: url.pathname, method: 'POST', headers, body: REQUEST_BODY });
        const body = await res.body.arrayBuffer();
        if (res.statusCode !== 200) {
          errors++;
          firstError ??= `HTTP ${res.statusCode}: ${Buffer.from(body).toString('utf8').slice(0, 300)}`;
          continue;
        }
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
  // Open loop (wrk2-style): request i is sent at start + i/rate whether or not earlier ones have
  // answered (a request waiting for a free connection waits in the pool, and that counts), so a
  // proxy that falls behind shows its queueing in the tail instead of slowing the client down (no
  // coordinated omission). Latency counts from when the request was handed to the pool: the
  // client's timer lateness (up to ~1 ms; it sleeps between sends) is not the proxy's.
  const openLoop = async (): Promise<void> => {
    const intervalNs = 1e9 / rate;
    let next = 0;
    let outstanding = 0;
    let done: () => void = () => {};
    const allDone = new Promise<void>((r) => (done = r));
    let scheduling = true;
    const fire = (due: bigint): void => {
      outstanding++;
      const t0 = process.hrtime.bigint();
      pool
        .request({ path: url.pathname, method: 'POST', headers, body: REQUEST_BODY })
        .then(async (res) => {
          const body = await res.body.arrayBuffer();
          if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${Buffer.from(body).toString('utf8').slice(0, 300)}`);
          const t1 = process.hrtime.bigint();
          totalRequests++;
          if (due >= measureFrom && due < endAt) latencies.push(Number(t1 - t0) / 1000);
        })
        .catch((err: Error) => {
          errors++;
          firstError ??= err.message;
        })
        .finally(() => {
          outstanding--;
          if (!scheduling && outstanding === 0) done();
        });
    };
    while (scheduling) {
      const now = process.hrtime.bigint();
      for (;;) {
        const due = startNs + BigInt(Math.round(next * intervalNs));
        if (due >= endAt) {
          scheduling = false;
          break;
        }
        if (due > now) break;
        next++;
        if (outstanding >= 10_000 || errors >= 100) {
          errors++;
          firstError ??= 'more than 10000 requests outstanding: the target cannot keep up';
          continue;
        }
        fire(due);
      }
      if (scheduling) {
        const waitMs = Number(startNs + BigInt(Math.round(next * intervalNs)) - process.hrtime.bigint()) / 1e6;
        await new Promise((r) => setTimeout(r, Math.max(0, Math.floor(waitMs))));
      }
    }
    if (outstanding > 0) await Promise.race([allDone, new Promise((r) => setTimeout(r, 5_000))]);
  };
  if (rate > 0) await openLoop();
  else await Promise.all(Array.from({ length: connections }, () => worker()));
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
    meanUs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

// ---------------------------------------------------------------------------------------------
// Starting the children

function httpPolicy(upstreamPort: number): string {
  return `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata:
  name: bench-http
spec:
  defaultAction: deny
  targets:
    - name: ${ROUTE}
      http:
        baseUrl: http://127.0.0.1:${upstreamPort}
        credentialsSecret: api-token
        auth:
          header: Authorization
          valuePrefix: "Bearer "
  rules:
    - name: no-file-uploads
      action: deny
      message: the agent may not upload files or delete anything
      match:
        target: ${ROUTE}
        http:
          methods: [POST, PUT, DELETE]
          paths: ["/v1/files/**", "/v1/uploads/**", "/v1/items/**"]
    - name: chat-and-reads
      action: allow
      match:
        target: ${ROUTE}
        http:
          methods: [POST]
          paths: ["/v1/**"]
    - name: reads
      action: allow
      match:
        target: ${ROUTE}
        http:
          methods: [GET]
  masking:
    - name: pii
      detectors: [email]
      strategy: redact
`;
}

/** `warden sidecar` serving an egress route to the upstream. */
function httpSidecar(upstreamPort: number): SidecarSetup {
  return { policy: () => httpPolicy(upstreamPort), secrets: { 'api-token/token': TOKEN + '\n' }, egress: true };
}

/** nginx as a reverse proxy with the same /api/ route shape; one process (master_process off) so its CPU is measurable. */
async function startNginx(bin: string, upstreamPort: number): Promise<Supervised & { port: number }> {
  const dir = makeTempDir('warden-bench-nginx-');
  const port = await freePort();
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, d));
  const asRoot = process.getuid?.() === 0;
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `${asRoot ? 'user root;\n' : ''}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream api {
    server 127.0.0.1:${upstreamPort};
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${port};
    location /${ROUTE}/ {
      proxy_pass http://api/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer ${TOKEN}";
    }
  }
}
`,
  );
  // daemon and master_process come from -g: nginx rejects a directive set both in the file and in -g.
  const child = track(
    spawn(bin, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off; master_process off;'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: benchEnv(),
    }),
  );
  const c = supervise('nginx', child, { logFile: path.join(dir, 'error.log') });
  await waitUntilReady(c, () => tcpAccepts(port), 15_000);
  return { ...c, port };
}

// ---------------------------------------------------------------------------------------------
// The benchmark

type TargetName = 'direct' | 'nginx' | 'node-proxy' | 'sidecar' | 'sidecar-audit' | 'baseline-audit';

interface Target {
  name: TargetName;
  url: string;
  /** Whether the agent sends the API key itself (direct), or the proxy attaches it. */
  auth: boolean;
  /** The proxy process, whose CPU time is attributed to the requests. */
  proxy?: Supervised;
}

/** Saturation: `clients` connections, one request in flight each; rate: an open-loop client at `rate` requests/s. */
interface Mode {
  label: string;
  clients: number;
  rate?: number;
}

interface Run extends Partial<LoadResult> {
  round: number;
  mode: string;
  target: TargetName;
  proxyCpuUsPerReq?: number;
  proxyRssMb?: number;
  error?: string;
}

export interface HttpSummary {
  mode: string;
  clients: number;
  rate?: number;
  target: TargetName;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50Us: number;
  p99Us: number;
  proxyCpuUsPerReq?: number;
  okRuns: number;
}

async function load(t: Target, mode: Mode, seconds: number, warmup: number): Promise<Omit<Run, 'round'>> {
  const args = [
    __filename,
    '--role',
    'load',
    '--url',
    t.url,
    '--connections',
    String(mode.clients),
    '--seconds',
    String(seconds),
    '--warmup',
    String(warmup),
  ];
  if (mode.rate) args.push('--rate', String(mode.rate));
  if (t.auth) args.push('--auth');
  const cpu0 = t.proxy ? procCpuSeconds(t.proxy.pid) : undefined;
  const r = await runCmd(process.execPath, args, { env: benchEnv(), timeoutMs: (seconds + warmup + 60) * 1000 });
  const cpu1 = t.proxy ? procCpuSeconds(t.proxy.pid) : undefined;
  const base = { mode: mode.label, target: t.name };
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
  const rss = t.proxy ? { proxyRssMb: (procStatus(t.proxy.pid)?.rssKb ?? 0) / 1024 } : {};
  if (res.errors > 0) return { ...base, ...res, ...cpu, ...rss, error: `${res.errors} failed request(s); first: ${res.firstError}` };
  return { ...base, ...res, ...cpu, ...rss };
}

/** Checks a target answers like the real thing: 200, and for the sidecars the e-mail masked and the deny rule firing. */
async function checkTarget(t: Target): Promise<string[]> {
  const problems: string[] = [];
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(t.auth ? { authorization: `Bearer ${TOKEN}` } : {}) };
  const chat = await request(t.url, { method: 'POST', headers, body: REQUEST_BODY });
  const text = await chat.body.text();
  if (chat.statusCode !== 200) problems.push(`POST ${CHAT_PATH}: HTTP ${chat.statusCode}: ${text.slice(0, 300)}`);
  else {
    try {
      JSON.parse(text);
    } catch {
      problems.push(`POST ${CHAT_PATH}: the response is not JSON: ${text.slice(0, 200)}`);
    }
    const isSidecar = t.name.startsWith('sidecar') || t.name === 'baseline-audit';
    if (isSidecar && text.includes(EMAIL)) problems.push('the e-mail address in the response was NOT masked: is the masking rule applied?');
    if (!isSidecar && !text.includes(EMAIL)) problems.push('the e-mail address is missing from the unproxied response');
  }
  const base = t.url.slice(0, -CHAT_PATH.length);
  const items = await request(`${base}/v1/items`, { method: 'GET', headers });
  await items.body.dump();
  if (items.statusCode !== 200) problems.push(`GET /v1/items: HTTP ${items.statusCode}`);
  if (t.name.startsWith('sidecar') || t.name === 'baseline-audit') {
    const del = await request(`${base}/v1/items/item_1`, { method: 'DELETE', headers });
    const body = await del.body.text();
    if (del.statusCode !== 403 || !body.includes('no-file-uploads'))
      problems.push(`DELETE /v1/items/item_1 was not denied by rule no-file-uploads: HTTP ${del.statusCode} ${body.slice(0, 200)}`);
  }
  return problems;
}

/** Waits until the audit sidecar stops exporting (at most maxMs), so its backlog does not steal CPU from the next run. */
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

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : fs.statSync(p).size;
  }
  return total;
}

async function main(): Promise<number> {
  if (process.env.BENCH_HTTP === '0') {
    process.stdout.write('HTTP bench skipped (BENCH_HTTP=0)\n');
    return 0;
  }
  const t0 = Date.now();
  const SECONDS = envNum('BENCH_HTTP_SECONDS', envNum('BENCH_SECONDS', 3));
  const ROUNDS = envCount('BENCH_ROUNDS', 2);
  const WARMUP = envNum('BENCH_WARMUP', 1);
  const RATE = envNum('BENCH_RATE', 500);
  const RUN_WARMUP = 0.3;
  const CLIENTS = envClients();
  /** The sidecar with its audit trail off too (BENCH_HTTP_AUDIT_OFF=1): what the trail costs. */
  const AUDIT_OFF = process.env.BENCH_HTTP_AUDIT_OFF === '1';
  /** Another build's sidecar beside this one (BENCH_HTTP_BASELINE=<its dist-dev>): before/after in one run. */
  const BASELINE = process.env.BENCH_HTTP_BASELINE ? path.resolve(process.env.BENCH_HTTP_BASELINE, 'cli', 'main.js') : undefined;
  if (BASELINE && !fs.existsSync(BASELINE)) throw new Error(`BENCH_HTTP_BASELINE: ${BASELINE} does not exist`);
  const PROFILE = process.env.BENCH_PROFILE === '1';
  const modes: Mode[] = [
    ...CLIENTS.map((c) => ({ label: `c=${c}`, clients: c })),
    ...(RATE > 0 ? [{ label: `${RATE}/s`, clients: 16, rate: RATE }] : []),
  ];

  const nginxBin = process.env.BENCH_NGINX === '0' ? undefined : (process.env.NGINX ?? findExecutable('nginx'));
  if (!nginxBin)
    process.stdout.write(
      process.env.BENCH_NGINX === '0'
        ? 'nginx skipped (BENCH_NGINX=0)\n'
        : 'nginx not installed (apt-get install nginx-light): skipping peer\n',
    );

  const targetCount = 3 + (AUDIT_OFF ? 1 : 0) + (BASELINE ? 1 : 0) + (nginxBin ? 1 : 0);
  const estimate = Math.round(modes.length * targetCount * ROUNDS * (SECONDS + RUN_WARMUP + 0.5) + targetCount * (WARMUP + 0.5) + 5);
  process.stdout.write(
    `HTTP: POST ${CHAT_PATH} (~1 KB JSON response), ${SECONDS} s per run, ${ROUNDS} rounds, ${modes.map((m) => m.label).join(' / ')}, ${os.cpus().length} CPUs shared by load generator, proxy and upstream (about ${estimate} s)\n`,
  );
  const loadBefore = os.loadavg();
  if (loadBefore[0] > 0.5)
    process.stdout.write(
      `note: load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before starting: other work on this machine adds noise\n`,
    );

  const upstream = await startListeningChild('upstream', [__filename, '--role', 'upstream']);
  const sink = await startOtlpSink();
  const auditDir = makeTempDir('warden-bench-http-audit-');
  const spoolDir = path.join(auditDir, 'spool');
  fs.mkdirSync(spoolDir);
  const sca = await startSidecarProcess({
    ...httpSidecar(upstream.port),
    name: 'sidecar-audit',
    dir: auditDir,
    args: ['--spool-dir', spoolDir],
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url },
    profile: PROFILE,
  });
  const baseDir = makeTempDir('warden-bench-http-baseline-');
  const baseSpool = path.join(baseDir, 'spool');
  fs.mkdirSync(baseSpool);
  const base = BASELINE
    ? await startSidecarProcess({
        ...httpSidecar(upstream.port),
        name: 'baseline-audit',
        dir: baseDir,
        cli: BASELINE,
        args: ['--spool-dir', baseSpool],
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url },
      })
    : undefined;
  const sc = AUDIT_OFF ? await startSidecarProcess({ ...httpSidecar(upstream.port), dir: makeTempDir('warden-bench-http-') }) : undefined;
  const nginx = nginxBin ? await startNginx(nginxBin, upstream.port) : undefined;
  const nodeProxy = await startListeningChild('node-proxy', [
    path.resolve(__dirname, 'node-proxy.js'),
    '0',
    `http://127.0.0.1:${upstream.port}`,
    `Bearer ${TOKEN}`,
  ]);

  const route = (port: number): string => `http://127.0.0.1:${port}/${ROUTE}${CHAT_PATH}`;
  const targets: Target[] = [
    { name: 'direct', url: `http://127.0.0.1:${upstream.port}${CHAT_PATH}`, auth: true },
    ...(nginx ? [{ name: 'nginx' as const, url: route(nginx.port), auth: false, proxy: nginx }] : []),
    { name: 'node-proxy', url: route(nodeProxy.port), auth: false, proxy: nodeProxy },
    ...(sc ? [{ name: 'sidecar' as const, url: route(sc.port), auth: false, proxy: sc }] : []),
    { name: 'sidecar-audit', url: route(sca.port), auth: false, proxy: sca },
    ...(base ? [{ name: 'baseline-audit' as const, url: route(base.port), auth: false, proxy: base }] : []),
  ];
  const children: Supervised[] = [upstream, sink, sca, nodeProxy, ...(sc ? [sc] : []), ...(base ? [base] : []), ...(nginx ? [nginx] : [])];

  for (const t of targets) {
    const problems = await checkTarget(t);
    for (const p of problems) process.stdout.write(`WARNING: ${t.name}: ${p}\n`);
  }
  const idleRssMb = (procStatus(sca.pid)?.rssKb ?? 0) / 1024;

  // Warm-up: JIT of the proxies and the load generator's path, connection pools.
  if (WARMUP > 0) {
    for (const t of targets) {
      checkInterrupted();
      const w = await load(t, { label: 'warm-up', clients: Math.max(...CLIENTS) }, WARMUP, 0);
      checkInterrupted();
      if (w.error)
        throw new Error(`warm-up against ${t.name} failed: ${w.error}${t.proxy ? `\n${t.name} output tail:\n${t.proxy.tail()}` : ''}`);
    }
    await waitForExportQuiet(sink);
  }

  const runs: Run[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const [mi, mode] of modes.entries()) {
      for (const t of rotate(targets, round + mi)) {
        checkInterrupted();
        const r: Run = { round, ...(await load(t, mode, SECONDS, RUN_WARMUP)) };
        checkInterrupted();
        runs.push(r);
        process.stdout.write(
          `  round ${round + 1}/${ROUNDS}  ${mode.label.padEnd(6)} ${t.name.padEnd(13)} ` +
            (r.error && r.rps === undefined
              ? `ERROR ${r.error}`
              : `${fmt(r.rps).padStart(6)} req/s  p50 ${fmt(r.p50Us)} µs  p99 ${fmt(r.p99Us)} µs`) +
            (r.proxyCpuUsPerReq !== undefined ? `  proxy CPU ${r.proxyCpuUsPerReq.toFixed(0)} µs/req` : '') +
            (r.error && r.rps !== undefined ? `  ERROR ${r.error}` : '') +
            '\n',
        );
        if (t.name === 'sidecar-audit' || t.name === 'baseline-audit') await waitForExportQuiet(sink);
        assertAlive(children);
      }
    }
  }
  const peakRssMb = sca.rss.hwmMb();

  // Aggregate: median over rounds.
  const summaries: HttpSummary[] = [];
  for (const mode of modes) {
    for (const t of targets) {
      const rs = runs.filter((r) => r.mode === mode.label && r.target === t.name && !r.error);
      const cpu = rs.map((r) => r.proxyCpuUsPerReq).filter((x): x is number => x !== undefined);
      summaries.push({
        mode: mode.label,
        clients: mode.clients,
        ...(mode.rate ? { rate: mode.rate } : {}),
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
  const out: string[] = [];
  out.push('');
  out.push(
    `HTTP results (median of ${ROUNDS} rounds, ${SECONDS} s each; proxy CPU = proxy process user+system time / requests, warm-up included)`,
  );
  out.push(
    table(
      ['mode', 'target', 'req/s', 'req/s range', 'p50 µs', 'p99 µs', 'proxy CPU µs/req', 'ok runs'],
      summaries.map((s) => [
        s.mode,
        s.target,
        fmt(s.rps),
        s.okRuns ? `${fmt(s.rpsMin)}..${fmt(s.rpsMax)}` : '-',
        fmt(s.p50Us),
        fmt(s.p99Us),
        s.proxyCpuUsPerReq !== undefined ? fmt(s.proxyCpuUsPerReq) : '',
        `${s.okRuns}/${ROUNDS}`,
      ]),
      [false, false],
    ),
  );
  const sinkNow = await sink.stats();
  const exported = Object.entries(sinkNow)
    .map(([p, c]) => `${p} ${c.requests} req / ${fmt(c.bytes / 1024)} KiB`)
    .join(', ');
  const spoolBytes = dirBytes(spoolDir);
  out.push('');
  out.push(`sidecar-audit RSS: ${fmt(idleRssMb, 1)} MB idle, ${fmt(peakRssMb, 1)} MB peak (VmHWM)`);
  out.push(`OTLP sink received: ${exported || 'nothing (the audit sidecar exported nothing!)'}; spool left ${fmt(spoolBytes / 1024)} KiB`);
  const errors = runs.filter((r) => r.error);
  if (errors.length) {
    out.push('');
    out.push(`${errors.length} run(s) failed:`);
    for (const e of errors) out.push(`  round ${e.round + 1} ${e.mode} ${e.target}: ${e.error}`);
  }
  const logProblems: Record<string, string[]> = {};
  for (const s of [sca, ...(sc ? [sc] : []), ...(base ? [base] : [])]) {
    const p = s.problemLines();
    logProblems[s.name] = p.slice(-50);
    if (p.length) {
      out.push(`${s.name} logged ${p.length} warning/error line(s); last ones:`);
      for (const l of p.slice(-5)) out.push('  ' + l.slice(0, 400));
    } else out.push(`${s.name} log: no warnings or errors.`);
  }
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
      request: `POST ${CHAT_PATH}`,
      responseBytes: upstreamBodies().chat.length,
    },
    environment: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      node: process.version,
      nginx: nginxBin ? (await runCmd(nginxBin, ['-v'], { timeoutMs: 5000 })).stderr.trim() || 'unknown' : null,
      loadAverageBefore: loadBefore,
      loadAverageAfter: os.loadavg(),
    },
    summary: summaries,
    sidecarAudit: { idleRssMb, peakRssMb },
    otlpSink: sinkNow,
    spoolBytesLeft: spoolBytes,
    logProblems,
    runs,
  };
  const jsonFile = path.resolve(__dirname, '..', 'bench-http-results.json');
  fs.writeFileSync(jsonFile, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(`Wrote ${path.relative(process.cwd(), jsonFile)}\n`);
  return errors.length ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------

const roleAt = process.argv.indexOf('--role');
if (roleAt >= 0) {
  const role = process.argv[roleAt + 1];
  if (role === 'upstream') roleUpstream();
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
