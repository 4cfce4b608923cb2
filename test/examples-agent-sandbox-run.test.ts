// examples/agent-sandbox run for real, without a cluster: a real PostgreSQL with a small CRM schema,
// the sidecar started with the example's AccessPolicy (only the host rewritten to the local
// server), and the sandbox's own command from sandbox-template.yaml run once by sh and the real
// psql against DATABASE_URL exactly as injection sets it. The output is what docs/agent-sandbox.md
// promises: PII redacted, DROP TABLE refused by rule no-ddl, and the table still there. The database is
// examples/kubernetes' (its init.sql, and the role and password of this example's Secret).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { findRepoRoot } from '../common/policy/schema';
import { postgresUrl } from '../operator/inject/app-env';
import type { PodTemplate } from '../operator/inject/k8s-types';
import { podTemplateOf } from '../operator/inject/workloads';
import { hasPsql, startStack, type Stack } from './support/stack';

const EXAMPLE = path.join(findRepoRoot(), 'examples', 'agent-sandbox');
const read = (file: string): Record<string, any> => YAML.parse(fs.readFileSync(path.join(EXAMPLE, file), 'utf8'));

/** The CRM database of examples/kubernetes, which the example's policy names: its init.sql, and the sidecar's role. */
const K8S_EXAMPLE = path.join(findRepoRoot(), 'examples', 'kubernetes');
const secret = (): Record<string, string> => read('secrets.yaml').stringData as Record<string, string>;
const SETUP = (): string =>
  `CREATE ROLE ${secret().username} LOGIN PASSWORD '${secret().password}';\n` + fs.readFileSync(path.join(K8S_EXAMPLE, 'init.sql'), 'utf8');
const RAW = ['ada@example.com', 'grace@navy.example', '4111 1111 1111 1111', '5500-0000-0000-0004'];

/** The sandbox's command: sh -c SCRIPT, whose loop is cut after its first round. */
function sandboxScript(): string {
  const template = podTemplateOf(read('sandbox-template.yaml')) as PodTemplate;
  const [shell, flag, script] = template.spec!.containers[0].command as string[];
  expect([shell, flag]).toEqual(['sh', '-c']);
  const once = script.replace(/\bsleep \d+/, 'exit 0');
  expect(once).not.toBe(script);
  return once;
}

/** sh -c SCRIPT, asynchronously: the sidecar runs in this process and must keep serving meanwhile. */
function run(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (output += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

(hasPsql ? describe : describe.skip)('examples/agent-sandbox, run (needs psql)', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({
      setupSql: SETUP(),
      role: { name: secret().username, password: secret().password },
      policy: (pg) => {
        const policy = read('policy.yaml');
        const target = policy.spec.targets.find((t: Record<string, any>) => t.name === 'crm');
        expect(target.postgres.host).toBe('crm-db.crm.svc'); // the only change: where the database is
        target.postgres.host = '127.0.0.1';
        target.postgres.port = pg.port;
        return YAML.stringify(policy);
      },
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it("the sandbox command, logged in as the Secret's role, sees redacted PII and its DROP TABLE refused, and the table stays", async () => {
    // DATABASE_URL as injection writes it, on the port this test's sidecar listens on.
    const injected = postgresUrl(15432, 'crm');
    const url = injected.replace(':15432/', `:${stack.port}/`);
    expect(url).not.toBe(injected);
    const r = await run(sandboxScript(), { ...process.env, DATABASE_URL: url });
    const out = r.output;
    expect(r.code).toBe(0);
    expect(out).toContain('Ada Lovelace');
    expect(out).toContain('[REDACTED]');
    for (const raw of RAW) expect(out).not.toContain(raw);
    expect(out).toMatch(/no-ddl/);
    expect(out).toContain('sandboxes may not change the schema or privileges');
    expect(await stack.admin('SELECT count(*)::int AS n FROM orders')).toEqual([{ n: 4 }]);
    expect(stack.events.map((e) => e.decision)).toEqual(expect.arrayContaining(['deny']));
  }, 90_000);
});
