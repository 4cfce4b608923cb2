// Startup time and idle memory of `warden sidecar` with a typical policy (a PostgreSQL target, an
// HTTP route, masking, audit on: spool + OTLP export): process start (spawn) to the first /readyz
// 200, the native sidecar's gate on the agent's start; then VmRSS once it has idled a moment (the
// whole process: main thread, parser worker and audit threads share one address space).
//   npx tsc -p tsconfig.dev.json && node dist-dev/bench/startup.js
// Environment: BENCH_STARTS (default 5; the median is reported), BENCH_IDLE_SECONDS (default 1.5),
// BENCH_PROFILE=1 (the first start runs with --cpu-prof; prints where its time went).
// Writes dist-dev/bench-startup-results.json.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from '../tools/pg-server';
import { topSelf } from './profile-top';
import {
  envCount,
  envNum,
  fmt,
  makeTempDir,
  median,
  procStatus,
  runMain,
  sleep,
  startOtlpSink,
  startSidecarProcess,
  type SidecarSetup,
} from './support';

function typicalSidecar(pgPort: number, apiPort: number): SidecarSetup {
  return {
    policy: (port) => `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata:
  name: startup
spec:
  defaultAction: allow
  targets:
    - name: db
      postgres: {host: 127.0.0.1, port: ${pgPort}, database: app, tls: disable, credentialsSecret: db, listenPort: ${port}}
    - name: api
      http:
        baseUrl: http://127.0.0.1:${apiPort}
        credentialsSecret: api-token
        auth: {header: Authorization, valuePrefix: "Bearer "}
  rules:
    - name: no-ddl
      action: deny
      match: {target: db, sql: {statements: [DROP, TRUNCATE, ALTER, GRANT, REVOKE]}}
    - name: no-uploads
      action: deny
      match: {target: api, http: {methods: [POST, PUT, DELETE], paths: ["/v1/files/**"]}}
  masking:
    - name: card-numbers
      columns: [customers.card_number]
      strategy: last4
      targets: [db]
    - name: pii
      detectors: [credit-card, email, us-ssn, phone, iban, secret-key]
      strategy: redact
`,
    secrets: { 'db/username': 'app', 'db/password': 'pw\n', 'api-token/token': 'sk-startup\n' },
  };
}

export interface StartupResult {
  starts: number[];
  startMs: number;
  idleRssMb: number;
  idleRssAllMb: number[];
}

/** Starts the sidecar `starts` times, one after the other; the median start and idle RSS. */
export async function measureStartup(starts: number, idleSeconds: number, profile: boolean): Promise<StartupResult> {
  const sink = await startOtlpSink();
  const setup = typicalSidecar(await freePort(), await freePort());
  const times: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < starts + (profile ? 1 : 0); i++) {
    const dir = makeTempDir('warden-bench-startup-');
    const prof = profile && i === 0;
    const sc = await startSidecarProcess({
      ...setup,
      dir,
      name: 'sidecar-startup',
      profile: prof,
      args: ['--spool-dir', path.join(dir, 'spool')],
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url },
    });
    if (!prof) {
      times.push(sc.startMs);
      await sleep(idleSeconds * 1000);
      rss.push((procStatus(sc.pid)?.rssKb ?? 0) / 1024);
    }
    await sc.stop();
    if (prof) printProfile(sc.startMs);
  }
  await sink.stop();
  return { starts: times, startMs: median(times), idleRssMb: median(rss), idleRssAllMb: rss };
}

function printProfile(ms: number): void {
  const dir = path.resolve(__dirname, '..', '..', 'bench', 'profiles');
  const newest = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
  if (!newest) return;
  const p = JSON.parse(fs.readFileSync(newest, 'utf8'));
  process.stdout.write(`profiled start (${fmt(ms)} ms to ready, main thread; ${newest}); self time by file:\n`);
  for (const r of topSelf(p, 15, 'file'))
    process.stdout.write(`${r.ms.toFixed(0).padStart(8)} ms ${r.pct.toFixed(1).padStart(5)}%  ${r.name}\n`);
}

async function main(): Promise<number> {
  const STARTS = envCount('BENCH_STARTS', 5);
  const IDLE = envNum('BENCH_IDLE_SECONDS', 1.5);
  const r = await measureStartup(STARTS, IDLE, process.env.BENCH_PROFILE === '1');
  process.stdout.write(
    `Startup (spawn to /readyz 200, typical policy, audit on): median ${fmt(r.startMs)} ms of ${STARTS} (${r.starts.map((t) => fmt(t)).join(', ')}); idle RSS ${fmt(r.idleRssMb, 1)} MB\n`,
  );
  const jsonFile = path.resolve(__dirname, '..', 'bench-startup-results.json');
  fs.writeFileSync(
    jsonFile,
    JSON.stringify({ date: new Date().toISOString(), settings: { starts: STARTS, idleSeconds: IDLE }, ...r }, null, 2) + '\n',
  );
  return 0;
}

if (require.main === module) runMain(main);
