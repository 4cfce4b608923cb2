// examples/kubernetes run for real, without a cluster: a real PostgreSQL loaded with the example's
// init.sql as the example's database user, the sidecar enforcing the example's AccessPolicy (only
// the target's host and port pointed at that PostgreSQL, and the local approver added to the hold
// rule's approvers), and the example agent's own agent.sh run through it with the DATABASE_URL
// the operator's injection gives the agent's pod. Then the ways around the policy an agent would
// try next.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import YAML from 'yaml';
import { parsePolicyYaml, singlePolicy } from '../common/policy/load';
import { resolveInjectorConfig } from '../operator/inject/config';
import type { Pod } from '../operator/inject/k8s-types';
import { injectPod } from '../operator/inject/mutate';
import { podTemplateOf } from '../operator/inject/workloads';
import { LOCAL_APPROVERS_GROUP } from '../sidecar/approvals/admin-api';
import { decideOverApi, pendingApprovals } from './support/approvals';
import { one, resolveKustomization, secretValues, type K8sObject } from './support/kustomize';
import type { PgServer } from '../tools/pg-server';
import { hasPsql, startPg, startStack, type Stack } from './support/stack';

const EXAMPLE = path.resolve(__dirname, '..', 'examples', 'kubernetes');
const objects = resolveKustomization(EXAMPLE);
const policyObject = one(objects, 'AccessPolicy');
const dbSecret = secretValues(one(objects, 'Secret', 'crm-db', 'agents'));
const init = one(objects, 'ConfigMap', 'crm-init', 'crm').data as Record<string, string>;
const agentScript = path.join(EXAMPLE, 'agent.sh');

// The raw values the database holds; none may reach the agent.
const CLEAR_PII = [
  '4111 1111 1111 1111',
  '5500-0000-0000-0004',
  '340000000000009',
  '123-45-6789',
  '219-09-9999',
  '078-05-1120',
  'ada@example.com',
  'grace@navy.example',
  'alan@bletchley.example',
  '+1 415 555 2671',
  '(212) 555-0182',
  '+44 20 7946 0958',
  '4012888888881881',
  'GB82 WEST 1234 5698 7654 32',
];

/** The example policy with only what differs outside a cluster changed. */
function localPolicy(pgPort: number): string {
  const doc = structuredClone(policyObject) as K8sObject;
  const crm = doc.spec.targets.find((t: { name: string }) => t.name === 'crm');
  Object.assign(crm.postgres, { host: '127.0.0.1', port: pgPort });
  const hold = doc.spec.rules.find((r: { action: string }) => r.action === 'hold');
  hold.approval.approvers.groups = [...hold.approval.approvers.groups, LOCAL_APPROVERS_GROUP];
  return YAML.stringify(doc);
}

/** The DATABASE_URL the operator gives the example agent, on the port this test's sidecar listens on. */
function injectedDatabaseUrl(sidecarPort: number): string {
  const template = podTemplateOf(one(objects, 'Deployment', 'support-agent', 'agents'));
  const result = injectPod(template as Pod, {
    namespace: 'agents',
    namespaceLabels: one(objects, 'Namespace', 'agents').metadata.labels,
    policies: [singlePolicy(parsePolicyYaml(YAML.stringify(policyObject), 'policy.yaml'), 'policy.yaml')],
    config: resolveInjectorConfig({ image: 'ghcr.io/agent-warden/agent-warden:test' }),
  });
  if (result.outcome !== 'injected') throw new Error(`not injected: ${result.outcome}`);
  const agent = result.pod.spec!.containers.find((c) => c.name === 'agent')!;
  const url = new URL(agent.env!.find((e) => e.name === 'DATABASE_URL')!.value!);
  url.port = String(sidecarPort);
  return url.toString();
}

function runAgent(databaseUrl: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', [agentScript], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DATABASE_URL: databaseUrl, ROUNDS: '1', INTERVAL: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

let pg: PgServer;
let stack: Stack;

/**
 * What the postgres image does at first start, in its order: the database, 10-roles.sh (run for
 * real where psql is installed; the same statement otherwise), then 20-crm.sql as the owner.
 */
async function initDatabase(pg: PgServer): Promise<void> {
  const su = new Client({ connectionString: pg.url() });
  await su.connect();
  await su.query('CREATE DATABASE crm');
  await su.end();
  const db = new Client({ connectionString: pg.url('crm') });
  await db.connect();
  const agentPassword = secretValues(one(objects, 'Secret', 'crm-db', 'crm'))['agent-password'];
  if (hasPsql) {
    const r = spawnSync('sh', ['-c', init['10-roles.sh']], {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        POSTGRES_USER: pg.user,
        POSTGRES_DB: 'crm',
        AGENT_PASSWORD: agentPassword,
        PGHOST: pg.host,
        PGPORT: String(pg.port),
        PGPASSWORD: pg.password,
      },
    });
    expect({ code: r.status, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  } else {
    await db.query(`CREATE ROLE ${dbSecret.username} LOGIN PASSWORD '${agentPassword}'`);
  }
  await db.query(init['20-crm.sql']);
  await db.end();
}

beforeAll(async () => {
  pg = await startPg();
  await initDatabase(pg);
  stack = await startStack(
    {
      role: { name: dbSecret.username, password: dbSecret.password }, // exists: the sidecar logs in as it
      policy: (server) => localPolicy(server.port),
      sidecar: { localApprovals: true },
    },
    pg,
  );
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await pg?.stop();
});

(hasPsql ? test : test.skip)(
  'agent.sh through the sidecar: masked rows, a denied DROP, a held DELETE that runs once approved',
  async () => {
    const agent = runAgent(injectedDatabaseUrl(stack.port));
    const [held] = await pendingApprovals(stack.sidecar, 1, 20_000);
    expect(held.operation.display).toContain('DELETE FROM customers WHERE id = 3');
    expect(held.rule).toBe('writes-need-approval');
    expect(await decideOverApi(stack.sidecar, held.id, 'approve')).toBe(200);
    const { code, output } = await agent;
    expect({ code, output }).toEqual({ code: 0, output: expect.any(String) });

    // Masked: last four digits of card numbers, the rest redacted, in columns and in free text.
    expect(output).toContain('**** **** **** 1111');
    for (const clear of CLEAR_PII) expect({ clear, leaked: output.includes(clear) }).toEqual({ clear, leaked: false });
    expect(output).toContain('Ada Lovelace'); // not masked: the rows are there
    expect(output).toMatch(/Card on file \S+, call before shipping/); // free text: the card number in it is masked
    // Denied, naming the rule; the table is still there.
    expect(output).toContain('ERROR:  agent-warden: schema and privilege changes are not allowed for agents');
    expect(output).toContain('DETAIL:  policy "support-agent", rule "no-ddl", target "crm"');
    // Held, then run on approval.
    expect(output).toContain('[held DELETE] DELETE 1');
    expect(await stack.admin('SELECT count(*)::int AS n FROM orders')).toEqual([{ n: 3 }]); // customer 3's order went with it
    expect(await stack.admin('SELECT count(*)::int AS n FROM customers')).toEqual([{ n: 2 }]);
    const decisions = stack.events.map((e) => `${e.decision}:${e.rule ?? ''}`);
    expect(decisions).toEqual(expect.arrayContaining(['deny:no-ddl', 'hold:writes-need-approval']));
  },
  60_000,
);

describe('what an agent tries next is refused by the example policy', () => {
  let client: Client;
  beforeAll(async () => {
    client = new Client({ connectionString: stack.agentUrl() });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
  });

  async function refused(sql: string): Promise<string> {
    const err = await client.query(sql).then(
      () => undefined,
      (e: { code?: string; message: string; detail?: string }) => e,
    );
    if (!err) throw new Error(`${sql}: was allowed`);
    expect({ sql, code: err.code }).toEqual({ sql, code: '42501' });
    return `${err.message} (${err.detail ?? ''})`;
  }

  test.each([
    ["SELECT pg_read_file('/etc/passwd')", 'no-server-files'],
    ["COPY customers TO '/tmp/customers.csv'", 'no-server-files'],
    ["DO $$ BEGIN EXECUTE 'DROP TABLE orders'; END $$", 'no-ddl'],
    ['SELECT 1; DROP TABLE orders', 'no-ddl'],
    ['TRUNCATE orders', 'no-ddl'],
    ['SELECT 1; TRUNCATE orders', 'no-ddl'], // the README's examples/kubernetes/README.md "Try to go around it"
    ['GRANT ALL ON customers TO PUBLIC', 'no-ddl'],
  ])('%s (rule %s)', async (sql, rule) => {
    expect(await refused(sql)).toContain(`rule "${rule}"`);
  });

  test('what no rule allows is refused by defaultAction deny (settings, maintenance)', async () => {
    for (const sql of ["SET session_authorization = 'postgres'", 'VACUUM customers', "SELECT set_config('role', 'postgres', false)"])
      expect(await refused(sql)).toMatch(/agent-warden/);
  });

  test('the connection stays usable, and every other way out of the data is masked too', async () => {
    // The sidecar logs in as the example's least-privilege role, not as the database owner.
    expect((await client.query('SELECT current_user AS u')).rows).toEqual([{ u: dbSecret.username }]);
    const rows = (await client.query('SELECT card_number, ssn, email FROM customers WHERE id = 1')).rows;
    expect(rows).toEqual([
      { card_number: '**** **** **** 1111', ssn: expect.not.stringContaining('123-45-6789'), email: expect.any(String) },
    ]);
    const copy = await client.query("SELECT string_agg(notes, ' ') AS all FROM customers");
    for (const clear of CLEAR_PII) expect(JSON.stringify(copy.rows)).not.toContain(clear);
    // An error message that would echo a value is masked as well.
    const err = await client.query("SELECT 'ada@example.com'::int").catch((e: Error) => e);
    expect(String((err as Error).message)).not.toContain('ada@example.com');
    expect(await stack.admin('SELECT count(*)::int AS n FROM orders')).toEqual([{ n: hasPsql ? 3 : 4 }]); // every DROP above was refused
  });
});

test('the example database password reaches the sidecar only from its secrets dir', () => {
  const written = fs.readFileSync(path.join(stack.secretsDir, 'crm-db', 'password'), 'utf8').trim();
  expect(written).toBe(dbSecret.password);
  expect(fs.readFileSync(stack.policyFile, 'utf8')).not.toContain(dbSecret.password);
});
